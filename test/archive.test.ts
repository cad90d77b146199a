import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Archive } from "../lib/archive/archive";
import { Catalog, type FileRecord } from "../lib/archive/catalog";
import { checkName, joinRel, localPath, localPaths } from "../lib/archive/paths";
import { ArchiveLocked, BackupError, UnsafeName } from "../lib/errors";
import { tempDir } from "./support/tree";

const run = promisify(execFile);

function record(p: string, size = 1): FileRecord {
  return { path: p, size, mtime: 1, sha256: "a".repeat(64), state: "final", firstPulledAt: "x", pulledAt: "x" };
}

describe("archive", () => {
  describe("remote names", () => {
    for (const bad of ["..", ".", "", "a/b", "x\u0000y", "bad\ufffdutf8", "é".repeat(200)]) {
      it(`refuses ${JSON.stringify(bad).slice(0, 30)}`, () => assert.throws(() => checkName(bad), UnsafeName));
    }
    it("accepts spaces, unicode, leading dashes and quotes", () => {
      for (const ok of ["file name.csv", "日本円 €.csv", "-rf", "it's;$(x).csv", "..hidden", "a..b"]) checkName(ok);
    });
    it("accepts control characters and backslashes (legal on the server; stored escaped) but never in a local path", () => {
      for (const odd of ["a\\b", "line\nbreak", "tab\there", "del\u007f"]) {
        checkName(odd);
        assert.throws(() => localPath("/archive", odd), UnsafeName);
      }
    });
    it("keeps the state area out of reach of remote names", () => {
      assert.throws(() => joinRel("", ".tick-backup"), UnsafeName);
      assert.throws(() => localPath("/archive", ".tick-backup/catalog.json"), UnsafeName);
      assert.equal(joinRel("sub", ".tick-backup"), "sub/.tick-backup"); // only the top level is reserved
    });
    it("maps to a path inside the root, never outside", () => {
      assert.equal(localPath("/a/root", "x/y.csv"), path.join("/a/root", "x", "y.csv"));
      assert.throws(() => localPath("/a/root", "../y"), UnsafeName);
      assert.throws(() => localPath("/a/root", "x//y"), UnsafeName);
    });
    it("localPaths (many files of one root) maps and refuses exactly as localPath does", () => {
      const many = localPaths("/a/root");
      for (const rel of ["x/y.csv", "x/z.csv", "top.csv", "x/deep/er/f.bin", "sub/.tick-backup"]) assert.equal(many(rel), localPath("/a/root", rel));
      for (const bad of ["../y", "x//y", "x/..", "x/.", "x/", "/x", ".tick-backup/catalog.json", "x/a\\b", "x/ctl\u0001", ".tick-backup"]) {
        assert.throws(() => localPath("/a/root", bad), UnsafeName, bad);
        assert.throws(() => many(bad), UnsafeName, bad);
      }
    });
  });

  describe("open", () => {
    it("refuses a folder that does not exist and does not create it", async () => {
      const missing = path.join(tempDir(), "unplugged-disk");
      await assert.rejects(Archive.open(missing), (err: BackupError) => err.code === "ARCHIVE_MISSING" && /mounted/.test(err.message));
      assert.equal(fs.existsSync(missing), false);
    });
    it("refuses a relative path", async () => {
      await assert.rejects(Archive.open("relative/dir"), /absolute/);
    });
    it("gives one identity to a new archive opened by many at once", async () => {
      const dir = tempDir();
      const opened = await Promise.all(Array.from({ length: 30 }, () => Archive.open(dir)));
      assert.equal(new Set(opened.map((a) => a.identity.id)).size, 1);
      assert.deepEqual(fs.readdirSync(path.join(dir, ".tick-backup")).sort(), ["archive.json", "fs-profile.json", "partial", "versions"]);
    });

    it("keeps its identity across opens", async () => {
      const dir = tempDir();
      const a = await Archive.open(dir, { name: "ticks" });
      const b = await Archive.open(dir, { name: "other" });
      assert.equal(a.identity.id, b.identity.id);
      assert.equal(b.identity.name, "ticks");
    });
  });

  describe("catalog", () => {
    it("survives reloads and compaction with every record", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await Promise.all(Array.from({ length: 300 }, (_, i) => cat.commit(record(`f${i}`, i))));
      assert.equal((await Catalog.load(dir)).size, 300);
      await cat.compact(true);
      assert.equal(fs.readFileSync(path.join(dir, "catalog.journal"), "utf8"), "");
      const again = await Catalog.load(dir);
      assert.equal(again.size, 300);
      assert.equal(again.get("f299")?.size, 299);
    });

    it("compacts after 2,000 journal lines, counted per record, not per commit", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commit(...Array.from({ length: 1999 }, (_, i) => record(`f${i}`)));
      await cat.compact();
      assert.equal(fs.existsSync(path.join(dir, "catalog.json")), false, "1,999 lines: no compaction yet");
      await cat.commit(record("last"));
      await cat.compact();
      assert.equal(fs.readFileSync(path.join(dir, "catalog.journal"), "utf8"), "");
      const snapshot = JSON.parse(fs.readFileSync(path.join(dir, "catalog.json"), "utf8")) as { format: number; records: FileRecord[] };
      assert.equal(snapshot.format, 1);
      assert.equal(snapshot.records.length, 2000);
    });

    it("commits many records at once into the snapshot, few into the journal", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commitAll(Array.from({ length: 10 }, (_, i) => record(`few${i}`)));
      assert.equal(fs.readFileSync(path.join(dir, "catalog.journal"), "utf8").split("\n").length - 1, 10, "a few: journal lines");
      await cat.commitAll(Array.from({ length: 2500 }, (_, i) => record(`many${i}`, i)));
      assert.equal(fs.readFileSync(path.join(dir, "catalog.journal"), "utf8"), "", "many: one snapshot, which also folds in the journal");
      const again = await Catalog.load(dir);
      assert.equal(again.size, 2510);
      assert.equal(again.get("many2499")?.size, 2499);
      assert.ok(again.get("few9"));
    });

    it("writes one record a line (read in slices); reads a one-line snapshot of older versions; refuses a damaged one", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commit(...Array.from({ length: 3 }, (_, i) => record(`f${i},\n}`, i)));
      await cat.compact(true);
      const text = fs.readFileSync(path.join(dir, "catalog.json"), "utf8");
      assert.equal(text.split("\n").length, 5, "head, three records, tail");
      assert.equal((await Catalog.load(dir)).get("f2,\n}")?.size, 2);
      fs.writeFileSync(path.join(dir, "catalog.json"), JSON.stringify(JSON.parse(text)));
      assert.equal((await Catalog.load(dir)).size, 3, "one line");
      fs.writeFileSync(path.join(dir, "catalog.json"), text.replace("},\n", "}\n"));
      await assert.rejects(Catalog.load(dir), (err: BackupError) => err.code === "CATALOG_DAMAGED");
    });

    it("keeps a record committed while a compaction is writing the snapshot", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commit(...Array.from({ length: 6000 }, (_, i) => record(`f${String(i).padStart(5, "0")}`)));
      const compacting = cat.compact(true);
      await new Promise((r) => setImmediate(r)); // the compaction has taken its records and yields between slices
      await cat.commit(record("late", 7));
      await compacting;
      const again = await Catalog.load(dir);
      assert.equal(again.size, 6001);
      assert.equal(again.get("late")?.size, 7);
    });

    it("ignores a torn last journal line (a crash mid-write) and keeps everything before it", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commit(record("a", 1), record("b", 2));
      fs.appendFileSync(path.join(dir, "catalog.journal"), JSON.stringify(record("c", 3)).slice(0, 25));
      const loaded = await Catalog.load(dir, { writable: true });
      assert.deepEqual(loaded.all().map((r) => r.path).sort(), ["a", "b"]);
      assert.ok(!fs.readFileSync(path.join(dir, "catalog.journal"), "utf8").includes('"c"'), "torn tail dropped on writable load");
    });

    it("replaying the journal over a newer snapshot changes nothing (crash during compaction)", async () => {
      const dir = tempDir();
      const cat = await Catalog.load(dir, { writable: true });
      await cat.commit(record("a", 1));
      const journal = fs.readFileSync(path.join(dir, "catalog.journal"));
      await cat.commit(record("a", 5));
      await cat.compact(true);
      fs.writeFileSync(path.join(dir, "catalog.journal"), journal); // old journal left behind
      await cat.commit(record("a", 5));
      assert.equal((await Catalog.load(dir)).get("a")?.size, 5);
    });

    it("reports a damaged line in the middle instead of guessing", async () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, "catalog.journal"), `${JSON.stringify(record("a"))}\n{not json\n${JSON.stringify(record("b"))}\n`);
      await assert.rejects(Catalog.load(dir), (err: BackupError) => err.code === "CATALOG_DAMAGED");
    });
  });

  describe("lock", () => {
    it("lets one run at a time hold the archive, also across processes", async () => {
      const dir = tempDir();
      const archive = await Archive.open(dir);
      let inside = false;
      await archive.withLock(async () => {
        inside = true;
        await assert.rejects(archive.withLock(async () => undefined), ArchiveLocked);
        const script = `require(${JSON.stringify(path.join(__dirname, "../lib/archive/archive.js"))}).Archive.open(${JSON.stringify(dir)})` +
          `.then(a => a.withLock(async () => 0)).then(() => process.exit(0), e => { console.log(e.code); process.exit(3); })`;
        const child = await run(process.execPath, ["-e", script]).then(() => ({ code: 0, out: "" }), (e) => ({ code: e.code, out: String(e.stdout) }));
        assert.equal(child.code, 3);
        assert.match(child.out, /ARCHIVE_LOCKED/);
      });
      assert.ok(inside);
      await archive.withLock(async () => undefined); // released
    });

    it("an update joins a run in this process and shares its catalog; the lock goes when the last leaves", async () => {
      const dir = tempDir();
      const archive = await Archive.open(dir);
      let release!: () => void;
      const pulling = archive.withLock(async (cat) => {
        await cat.commit(record("pulled"));
        await new Promise<void>((resolve) => (release = resolve));
        return cat.get("verified")?.size;
      });
      await new Promise((resolve) => setImmediate(resolve));
      await archive.update((cat) => cat.commit(record("verified")));
      const patched = await archive.update((cat) => cat.patch("pulled", { size: 99 }));
      assert.equal(patched?.size, 99);
      release();
      assert.equal(await pulling, record("verified").size, "the run saw the update at once");
      const other = await Archive.open(dir);
      const records = await other.withLock(async (cat) => cat.all().map((r) => `${r.path}:${r.size}`).sort());
      assert.deepEqual(records, ["pulled:99", `verified:${record("verified").size}`]);
    });

    it("a patch of a vanished record commits nothing", async () => {
      const archive = await Archive.open(tempDir());
      assert.equal(await archive.update((cat) => cat.patch("nothing", { size: 1 })), undefined);
      assert.equal((await archive.readCatalog()).size, 0);
    });

    it("a second process writing while the first holds no lock sees all records", async () => {
      const dir = tempDir();
      const archive = await Archive.open(dir);
      await archive.withLock((cat) => cat.commit(record("one")));
      const script = `const {Archive}=require(${JSON.stringify(path.join(__dirname, "../lib/archive/archive.js"))});` +
        `Archive.open(${JSON.stringify(dir)}).then(a=>a.withLock(c=>c.commit(${JSON.stringify(record("two"))})))`;
      await run(process.execPath, ["-e", script]);
      const paths = await archive.withLock(async (cat) => cat.all().map((r) => r.path).sort());
      assert.deepEqual(paths, ["one", "two"]);
    });
  });
});
