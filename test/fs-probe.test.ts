import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { FAT_MAX_FILE_SIZE, probeFsProfile } from "../lib/archive/fs-probe";
import { encodeName, NameMap } from "../lib/archive/names";
import { mountImage, unmountAll, type ImageKind } from "./support/disk-image";
import { tempDir } from "./support/tree";

/**
 * The probe against real filesystems: FAT32, exFAT and NTFS images mounted through FUSE (as root),
 * and the test machine's own disk. Every name the mapping makes for the probed rules is then
 * written to that filesystem and read back, so the rules are checked against the disk itself.
 */
describe("filesystem probe", function () {
  this.timeout(120_000);
  after(unmountAll);

  const hostile = ["EURUSD_2026-11-26T10:00.csv", 'a<b>c"d|e?f*g.csv', "back\\slash", "trailing.", "trailing ", "CON", "nul.txt", "100%.csv", "日本円 €.csv", "line\nbreak.csv"];

  /** Writes every hostile name under its stored name and checks each reads back as its own file. */
  function roundTrip(dir: string, map: NameMap): void {
    const stored = hostile.map((name) => map.storedFor(name));
    stored.forEach((s, i) => fs.writeFileSync(path.join(dir, s), hostile[i]));
    const listed = fs.readdirSync(dir);
    stored.forEach((s, i) => {
      assert.ok(listed.includes(s), `${s} listed as itself in ${JSON.stringify(listed)}`);
      assert.equal(fs.readFileSync(path.join(dir, s), "utf8"), hostile[i]);
    });
  }

  const expectations: Record<ImageKind, { ascii: boolean; fat: boolean; unit: "utf16" | "bytes" }> = {
    fat32: { ascii: true, fat: true, unit: "bytes" }, // fusefat takes ASCII names only
    exfat: { ascii: false, fat: false, unit: "utf16" },
    ntfs: { ascii: false, fat: false, unit: "utf16" },
  };

  for (const kind of ["fat32", "exfat", "ntfs"] as ImageKind[]) {
    it(`${kind}: Windows rules, its own name limits and file size limit, found by trying`, async () => {
      const disk = await mountImage(kind);
      try {
        const profile = await probeFsProfile(disk.dir);
        const want = expectations[kind];
        assert.equal(profile.family, "windows");
        assert.equal(profile.rules.escapeChars, '<>:"|?*');
        assert.ok(profile.rules.trailingDotSpace && profile.rules.reservedNames && profile.rules.caseInsensitive);
        assert.equal(profile.rules.asciiOnly, want.ascii);
        assert.deepEqual(profile.rules.maxName, { max: 255, unit: want.unit });
        assert.equal(profile.maxFileSize, want.fat ? FAT_MAX_FILE_SIZE : undefined);
        assert.equal(profile.observed.mtimeResolutionMs >= 2000, want.fat);
        assert.deepEqual(fs.readdirSync(disk.dir), [], "the probe leaves nothing behind");
        roundTrip(disk.dir, new NameMap(profile.rules));
      } finally {
        await disk.unmount();
      }
    });
  }

  it("fat32: case twins are kept as two files (the disk itself would merge them)", async () => {
    const disk = await mountImage("fat32");
    try {
      const profile = await probeFsProfile(disk.dir);
      assert.equal(profile.observed.caseInsensitive, true);
      fs.writeFileSync(path.join(disk.dir, "Twin.csv"), "first");
      assert.equal(fs.readFileSync(path.join(disk.dir, "TWIN.CSV"), "utf8"), "first", "the disk merges case twins");
      fs.rmSync(path.join(disk.dir, "Twin.csv"));
      const map = new NameMap(profile.rules);
      const names = ["Twin.csv", "TWIN.csv", "twin.csv"];
      names.forEach((n) => fs.writeFileSync(path.join(disk.dir, map.storedFor(n)), n));
      assert.equal(fs.readdirSync(disk.dir).length, 3);
      names.forEach((n) => assert.equal(fs.readFileSync(path.join(disk.dir, map.storedFor(n)), "utf8"), n));
    } finally {
      await disk.unmount();
    }
  });

  it("ntfs through ntfs-3g tells case apart here, yet the archive treats it as Windows will", async () => {
    const disk = await mountImage("ntfs");
    try {
      const profile = await probeFsProfile(disk.dir);
      assert.equal(profile.observed.caseInsensitive, false);
      assert.equal(profile.rules.caseInsensitive, true);
      assert.equal(profile.observed.hardLinks, true);
    } finally {
      await disk.unmount();
    }
  });

  it("the test machine's own disk: POSIX rules, nothing escaped but what is always escaped", async () => {
    const dir = tempDir("tick-probe-");
    const profile = await probeFsProfile(dir);
    assert.equal(profile.family, "posix");
    assert.equal(profile.rules.escapeChars, "");
    assert.equal(profile.rules.caseInsensitive, false);
    assert.equal(profile.rules.reservedNames, false);
    assert.deepEqual(profile.rules.maxName, { max: 255, unit: "bytes" });
    assert.equal(profile.maxFileSize, undefined);
    assert.equal(encodeName("EURUSD_10:00.csv", profile.rules), "EURUSD_10:00.csv");
    roundTrip(dir, new NameMap(profile.rules));
    assert.deepEqual(fs.readdirSync(dir).length, hostile.length, "only the round-trip files: the probe folder is gone");
  });
});
