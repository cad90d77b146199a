import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Archive } from "../lib/archive/archive";
import { Catalog } from "../lib/archive/catalog";
import { pull } from "../lib/sftp/pull";
import { scrub } from "../lib/verify/scrub";
import { createTarget, uploadOffsite } from "../lib/offsite";
import { ArchiveLocked } from "../lib/errors";
import { mountImage, unmountAll, type ImageKind } from "./support/disk-image";
import { sshdServer } from "./support/pull-env";
import { startSshd, type Sshd } from "./support/sshd";
import { sha256, tempDir, tickLines, write } from "./support/tree";

/** Remote names a tick server may well have, that FAT32, exFAT and NTFS cannot hold as they are. */
const HOSTILE = [
  "EURUSD_2026-11-26T10:00.csv",
  'quotes<bid>|"ask"?*.csv',
  "CON",
  "aux.csv",
  "trailing dot.",
  "trailing space ",
  "back\\slash.csv",
  "100%.csv",
  "日本円 €.csv",
  `${"x".repeat(200)}${":".repeat(20)}.csv`, // 224 bytes on the server, 264 once escaped: shortened
  "Twin.csv",
  "TWIN.csv",
  "EURUSD/a.csv",
  "eurusd/a.csv",
  "eurusd/b:c.csv",
];

/**
 * The pull into archives on real exFAT, NTFS and FAT32 filesystems (FUSE images, as root) from a real
 * OpenSSH server: every remote name is kept and reads back through the catalog, case twins stay two
 * files, growth and rewrites work on disks without hard links, verification and `sha256sum -c` read
 * the stored names, and a file too large for FAT32 is
 * refused before a byte of it is read.
 */
describe("archives on Windows-family disks", function () {
  this.timeout(120_000);
  let sshd: Sshd;
  let remote: string;
  let serverLog: string;

  before(async () => {
    serverLog = path.join(tempDir("tick-sftp-log-"), "sftp-server.log");
    sshd = await startSshd({ extraConfig: [`Subsystem sftp /usr/lib/openssh/sftp-server -e -l INFO 2>>${serverLog}`] });
  });
  after(async () => {
    await unmountAll();
    await sshd?.stop();
    fs.rmSync(path.dirname(serverLog), { recursive: true, force: true });
  });
  beforeEach(() => {
    remote = tempDir("tick-remote-");
    fs.chmodSync(remote, 0o755);
  });
  afterEach(() => fs.rmSync(remote, { recursive: true, force: true }));

  /** Every remote file has a record, and the record's stored file holds exactly the remote bytes. */
  async function assertRoundTrip(archive: Archive, names: string[]): Promise<void> {
    const catalog = await Catalog.load(archive.stateDir);
    assert.equal(catalog.size, names.length, JSON.stringify(catalog.all().map((r) => r.path)));
    for (const name of names) {
      const record = catalog.get(name);
      assert.ok(record, `${JSON.stringify(name)} in the catalog`);
      assert.equal(sha256(archive.fileOf(record)), sha256(path.join(remote, name)), name);
      assert.equal(record.sha256, sha256(path.join(remote, name)));
    }
  }

  // Not fat32: fusefat, the only FAT driver usable here, cannot extend a file it has closed once (every
  // append after a reopen fails with EPERM; its write support is marked experimental), so the catalog's
  // journal cannot grow on it. FAT32 is covered by the probe tests and the size limit below.
  for (const kind of ["exfat", "ntfs"] as ImageKind[]) {
    it(`${kind}: keeps every hostile name, twins apart, through new, grown and rewritten files, verify and sha256sum -c`, async () => {
      HOSTILE.forEach((name, i) => write(remote, name, tickLines("EURUSD", 20 + i)));
      const disk = await mountImage(kind);
      try {
        const archive = await Archive.open(disk.dir, { name: kind });
        const server = sshdServer(sshd);
        const run = () => pull({ server, archive, remoteDir: remote, settleSeconds: 0, retry: { retries: 1, baseDelayMs: 50 } });

        const first = await run();
        assert.deepEqual(first.problems, []);
        assert.equal(first.counts.new, HOSTILE.length);
        await assertRoundTrip(archive, HOSTILE);
        const stored = first.files.filter((f) => f.storedPath).map((f) => f.path);
        for (const name of ["EURUSD_2026-11-26T10:00.csv", "CON", "trailing dot.", "eurusd/b:c.csv"]) assert.ok(stored.includes(name), `${name} stored under another name`);
        // Of two twins, the first in code-point order keeps its name.
        assert.deepEqual(HOSTILE.filter((n) => /^(twin\.csv|eurusd\/a\.csv)$/i.test(n) && stored.includes(n)), ["Twin.csv", "eurusd/a.csv"]);

        // Growth of a file stored under an escaped name appends to that file.
        fs.appendFileSync(path.join(remote, "EURUSD_2026-11-26T10:00.csv"), tickLines("EURUSD", 5, Date.UTC(2026, 10, 26, 11)));
        // A rewrite keeps the old bytes as a version: copied, as these disks may have no hard links.
        fs.writeFileSync(path.join(remote, "eurusd/b:c.csv"), "rewritten\n");
        const second = await run();
        assert.deepEqual(second.problems.map((p) => p.code), ["REWRITTEN"]);
        assert.equal(second.counts.grown, 1);
        assert.equal(second.counts.rewritten, 1);
        assert.equal(second.counts.unchanged, HOSTILE.length - 2);
        await assertRoundTrip(archive, HOSTILE);
        const version = (await Catalog.load(archive.stateDir)).get("eurusd/b:c.csv")!.versions![0];
        assert.equal(sha256(path.join(disk.dir, ...version.storedAs.split("/"))), version.sha256);

        const third = await run();
        assert.equal(third.counts.unchanged, HOSTILE.length, "a rerun does nothing");
        assert.deepEqual(fs.readdirSync(archive.partialDir), []);

        // Verification reads every file where it is stored, and SHA256SUMS lists the stored names.
        const full = await scrub({ archive, mode: "full" });
        assert.deepEqual(full.problems, []);
        assert.deepEqual([full.counts.ok, full.counts.extra], [HOSTILE.length, 0]);
        const sums = () => spawnSync("sha256sum", ["-c", ".tick-backup/SHA256SUMS"], { cwd: disk.dir, encoding: "utf8" });
        let check = sums();
        assert.equal(check.status, 0, check.stdout + check.stderr);
        assert.equal(check.stdout.split("\n").filter((l) => l.endsWith(": OK")).length, HOSTILE.length);
        assert.match(check.stdout, /^%43ON: OK$/m);
        // A damaged file under an escaped name is found, quarantined and fetched again from the server.
        const con = archive.fileOf((await archive.readCatalog()).get("CON")!);
        fs.writeFileSync(con, "damaged\n");
        const repaired = await scrub({ archive, mode: "full", server, remoteDir: remote });
        assert.deepEqual([repaired.mismatches, repaired.restored], [["CON"], ["CON"]]);
        assert.equal(sha256(con), sha256(path.join(remote, "CON")));
        check = sums();
        assert.equal(check.status, 0, check.stdout + check.stderr);
      } finally {
        await disk.unmount();
      }
    });
  }

  it("exfat to exfat: the offsite copy reads stored names and writes names its own disk can hold, twins kept", async () => {
    HOSTILE.forEach((name, i) => write(remote, name, tickLines("EURUSD", 20 + i)));
    const disk = await mountImage("exfat");
    const usb = await mountImage("exfat");
    try {
      const archive = await Archive.open(disk.dir);
      assert.equal((await pull({ server: sshdServer(sshd), archive, remoteDir: remote, settleSeconds: 0 })).counts.new, HOSTILE.length);
      const upload = () => uploadOffsite({ archive, target: createTarget({ kind: "directory", path: usb.dir }), targetName: "usb" });
      const first = await upload();
      assert.deepEqual(first.problems, []);
      assert.deepEqual([first.counts.uploaded, first.counts.failed], [HOSTILE.length, 0]);
      const catalog = await archive.readCatalog();
      for (const name of HOSTILE) assert.equal(Object.keys(catalog.get(name)?.copies ?? {}).length, 1, `${name} has its offsite copy`);
      assert.equal(sha256(path.join(usb.dir, "EURUSD_2026-11-26T10%3A00.csv")), sha256(path.join(remote, "EURUSD_2026-11-26T10:00.csv")));
      assert.equal(sha256(path.join(usb.dir, "%43ON")), sha256(path.join(remote, "CON")));
      assert.equal((await upload()).counts.uploaded, 0, "a rerun copies nothing again");
    } finally {
      await usb.unmount();
      await disk.unmount();
    }
  });

  it("fat32: a file over 4 GiB is refused before the download starts, with what to do; the rest is pulled", async () => {
    write(remote, "small.csv", tickLines("EURUSD", 10));
    fs.writeFileSync(path.join(remote, "huge-5GiB.bin"), "");
    fs.truncateSync(path.join(remote, "huge-5GiB.bin"), 5 * 2 ** 30); // sparse: costs the server no disk
    const disk = await mountImage("fat32");
    try {
      const archive = await Archive.open(disk.dir);
      assert.equal(archive.profile.maxFileSize, 2 ** 32 - 1);
      const report = await pull({ server: sshdServer(sshd), archive, remoteDir: remote, settleSeconds: 0 });
      assert.equal(report.counts.new, 1);
      assert.equal(report.counts.tooLarge, 1);
      assert.equal(report.problems.length, 1);
      const problem = report.problems[0];
      assert.equal(problem.code, "FILE_TOO_LARGE");
      assert.equal(problem.path, "huge-5GiB.bin");
      assert.match(problem.message, /5 GiB.*FAT32.*4 GiB.*not downloaded.*exFAT or NTFS/);
      assert.ok(report.bytes < 10_000, `only the small file crossed the network (${report.bytes} bytes)`);
      assert.deepEqual(fs.readdirSync(archive.partialDir), [], "no partial download");
      assert.ok(!fs.existsSync(path.join(disk.dir, "huge-5GiB.bin")));
      const log = fs.readFileSync(serverLog, "utf8");
      assert.match(log, /open ".*small\.csv"/, "the server log shows opens");
      assert.doesNotMatch(log, /open ".*huge-5GiB\.bin"/, "the server never opened the big file");
      assert.equal((await Catalog.load(archive.stateDir)).get("huge-5GiB.bin"), undefined);
    } finally {
      await disk.unmount();
    }
  });

  it("fat32: a lock held for 20 s stays held though the disk keeps even seconds only, after a local archive's lock", async function () {
    this.timeout(60_000);
    await (await Archive.open(tempDir("tick-local-"))).withLock(async () => undefined);
    const disk = await mountImage("fat32");
    try {
      const archive = await Archive.open(disk.dir);
      assert.equal(archive.profile.observed.mtimeResolutionMs, 2000);
      const other = await Archive.open(disk.dir);
      const lost = await archive.withLock(async (_catalog, signal) => {
        for (let t = 0; t < 20; t += 2) {
          await new Promise((r) => setTimeout(r, 2_000));
          assert.equal(signal.aborted, false, `lock lost after ${t + 2} s: ${String(signal.reason)}`);
        }
        await assert.rejects(other.withLock(async () => undefined), ArchiveLocked);
        return signal.aborted;
      });
      assert.equal(lost, false);
    } finally {
      await disk.unmount();
    }
  });

  it("exfat (no hard links): ten opens at once agree on one identity and one profile", async () => {
    const disk = await mountImage("exfat");
    try {
      const opened = await Promise.all(Array.from({ length: 10 }, () => Archive.open(disk.dir)));
      assert.equal(opened[0].profile.observed.hardLinks, false);
      assert.equal(new Set(opened.map((a) => a.identity.id)).size, 1);
      assert.equal(new Set(opened.map((a) => a.profile.probedAt)).size, 1);
      assert.deepEqual(fs.readdirSync(opened[0].stateDir).filter((n) => n.includes(".tmp-") || n.startsWith("probe-")), [], "no temporary files left");
    } finally {
      await disk.unmount();
    }
  });

  it("the profile is probed once and kept: a reopened archive does not probe again", async () => {
    const disk = await mountImage("fat32");
    try {
      const first = await Archive.open(disk.dir);
      const file = path.join(first.stateDir, "fs-profile.json");
      const written = fs.readFileSync(file, "utf8");
      const again = await Archive.open(disk.dir);
      assert.equal(fs.readFileSync(file, "utf8"), written);
      assert.deepEqual(again.profile, first.profile);
      assert.deepEqual(fs.readdirSync(first.stateDir).filter((n) => n.startsWith("probe-")), [], "no probe folder left");
    } finally {
      await disk.unmount();
    }
  });

  it("refuses to open an archive whose profile is damaged, rather than guess how names are stored", async () => {
    const dir = tempDir("tick-archive-");
    await Archive.open(dir);
    fs.writeFileSync(path.join(dir, ".tick-backup", "fs-profile.json"), "{ torn");
    await assert.rejects(Archive.open(dir), (err: Error & { code?: string }) => err.code === "PROFILE_DAMAGED" && /how names are stored/.test(err.message));
  });
});
