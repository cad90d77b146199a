/**
 * The archive's disk, for real: a tmpfs stands for the backup disk and a bind mount of it for
 * "plugged in" at the archive path; unmounting the bind leaves the empty mount point on the root
 * filesystem, exactly what an unplugged USB disk leaves. Free space is measured by the real
 * check-disk-space (df) and checked against statfs. The pull runs against a real OpenSSH sshd.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import sinon from "sinon";
import * as path from "node:path";
import { Archive } from "../lib/archive/archive";
import { filesystemDifferences, type FsIdentity } from "../lib/archive/filesystem";
import { appendHistory, readHistory } from "../lib/archive/history";
import { checkDisk } from "../lib/disk/check";
import { DEFAULT_THRESHOLDS, levelOf, measurePath, parseSize } from "../lib/disk/space";
import { BackupError, ConfigError } from "../lib/errors";
import { pull } from "../lib/sftp/pull";
import { bindMount, mountMode, mountTmpfs, unmount, unmountAll } from "./support/mounts";
import { sshdServer } from "./support/pull-env";
import { startSshd, type Sshd } from "./support/sshd";
import { tempDir, tickLines, write } from "./support/tree";

const MiB = 1024 * 1024;
/** No level from space at all: for tests of mount states, on folders of whatever disk runs the tests. */
const NO_LEVELS = { ...DEFAULT_THRESHOLDS, warnPercent: 0, criticalPercent: 0, warnFree: 0, criticalFree: 0, warnDays: 0, criticalDays: 0 };

/** A backup "disk" (a tmpfs) and the archive path it is plugged in at. */
function disk(sizeMiB = 16) {
  const store = tempDir("tick-disk-");
  mountTmpfs(store, sizeMiB);
  const at = tempDir("tick-mountpoint-");
  const plug = () => bindMount(store, at);
  const unplug = () => unmount(at);
  plug();
  return { store, at, plug, unplug };
}

function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.push(`${r}:${fs.statSync(path.join(dir, r)).size}`);
    }
  };
  walk("");
  return out.sort();
}

const rejectsWith = (code: string, text?: RegExp) => (err: BackupError) => {
  assert.equal(err.code, code, err.message);
  if (text) assert.match(err.message, text);
  return true;
};

describe("the archive's disk", function () {
  this.timeout(60_000);
  afterEach(() => unmountAll());

  describe("its filesystem", () => {
    it("is recorded when the archive is created", async () => {
      const d = disk();
      const archive = await Archive.open(d.at, { name: "t" });
      assert.equal(archive.identity.filesystem?.type, "tmpfs");
      assert.equal(archive.identity.filesystem?.totalBytes, 16 * MiB);
      assert.equal(archive.identity.filesystem?.mountPoint, d.at);
      const onDisk = JSON.parse(fs.readFileSync(path.join(d.at, ".tick-backup", "archive.json"), "utf8"));
      assert.deepEqual(onDisk.filesystem, archive.identity.filesystem);
    });

    it("an unplugged disk: nothing writes into the empty mount point, and the replugged disk works again", async () => {
      const d = disk();
      const known = tempDir("tick-known-");
      const archive = await Archive.open(d.at, { name: "t", knownDir: known });
      await archive.update((cat) => cat.commit({ path: "a.csv", size: 1, mtime: 1, sha256: "0".repeat(64), state: "final", firstPulledAt: "x", pulledAt: "x" }));
      d.unplug();
      assert.deepEqual(fs.readdirSync(d.at), [], "the mount point is empty");
      await assert.rejects(archive.withLock(async () => "wrote"), rejectsWith("ARCHIVE_NOT_FOUND", /mounted\?/));
      await assert.rejects(archive.update(async () => "wrote"), rejectsWith("ARCHIVE_NOT_FOUND"));
      // A fresh open (a restart of Node-RED) remembers the archive and refuses to start a new one here.
      await assert.rejects(Archive.open(d.at, { name: "t", knownDir: known }), rejectsWith("ARCHIVE_NOT_FOUND", /tmpfs.*create the folder .*\.tick-backup by hand/s));
      assert.deepEqual(fs.readdirSync(d.at), [], "nothing was written");
      d.plug();
      assert.equal(await archive.update(async (cat) => cat.get("a.csv")?.size), 1);
      assert.equal((await Archive.open(d.at, { knownDir: known })).identity.id, archive.identity.id);
    });

    it("a damaged memory of the archive is a clear error, not a reason to start a new archive on an empty mount point", async () => {
      const d = disk();
      const known = tempDir("tick-known-");
      await Archive.open(d.at, { name: "t", knownDir: known });
      d.unplug();
      const [file] = fs.readdirSync(known);
      fs.writeFileSync(path.join(known, file), '{"path": "/mnt'); // cut short
      await assert.rejects(Archive.open(d.at, { name: "t", knownDir: known }), rejectsWith("KNOWN_DAMAGED", /is damaged .*check the disk is mounted, then delete the file/));
      assert.deepEqual(fs.readdirSync(d.at), [], "nothing was written into the empty mount point");
      d.plug();
    });

    it("a deliberate new archive at a remembered path: an empty .tick-backup folder made by hand", async () => {
      const d = disk();
      const known = tempDir("tick-known-");
      const first = await Archive.open(d.at, { knownDir: known });
      d.unplug();
      fs.mkdirSync(path.join(d.at, ".tick-backup"));
      const second = await Archive.open(d.at, { knownDir: known });
      assert.notEqual(second.identity.id, first.identity.id);
      assert.notEqual(second.identity.filesystem?.dev, first.identity.filesystem?.dev);
      // and now the memory knows the new one: the old disk plugged back in is another archive
      d.plug();
      await assert.rejects(Archive.open(d.at, { knownDir: known }), rejectsWith("ARCHIVE_REPLACED", new RegExp(first.identity.id)));
    });

    it("a copy of the archive on another filesystem is refused until adopted on purpose", async () => {
      const d = disk();
      const archive = await Archive.open(d.at, { name: "t" });
      await archive.update((cat) => cat.commit({ path: "a.csv", size: 1, mtime: 1, sha256: "0".repeat(64), state: "final", firstPulledAt: "x", pulledAt: "x" }));
      d.unplug();
      fs.cpSync(path.join(d.store, ".tick-backup"), path.join(d.at, ".tick-backup"), { recursive: true });
      const before = listing(d.at);
      await assert.rejects(archive.withLock(async () => "wrote"), rejectsWith("ARCHIVE_FS_CHANGED", /created on tick-test-disk \(tmpfs\)/));
      await assert.rejects(Archive.open(d.at), rejectsWith("ARCHIVE_FS_CHANGED", /remove "filesystem" from/));
      assert.deepEqual(listing(d.at), before, "nothing was written");
      // The documented way to adopt a moved archive: drop the recorded filesystem; the next open records the current one.
      const file = path.join(d.at, ".tick-backup", "archive.json");
      const { filesystem: _old, ...rest } = JSON.parse(fs.readFileSync(file, "utf8"));
      fs.writeFileSync(file, JSON.stringify(rest));
      assert.equal(await archive.update(async (cat) => cat.get("a.csv")?.size), 1, "the open archive goes on without a restart");
      const adopted = await Archive.open(d.at);
      assert.equal(adopted.identity.id, archive.identity.id);
      assert.notEqual(adopted.identity.filesystem?.dev, archive.identity.filesystem?.dev);
      assert.ok(JSON.parse(fs.readFileSync(file, "utf8")).filesystem, "recorded anew");
      assert.equal(await adopted.update(async (cat) => cat.get("a.csv")?.size), 1);
    });

    it("another disk with its own archive mounted in place of the open one: refused, nothing written", async () => {
      const a = disk();
      const archive = await Archive.open(a.at, { name: "a" });
      a.unplug();
      const other = tempDir("tick-disk-");
      mountTmpfs(other, 8);
      const b = await Archive.open(other, { name: "b" });
      bindMount(other, a.at);
      const before = listing(a.at);
      await assert.rejects(archive.update(async () => "wrote"), rejectsWith("ARCHIVE_REPLACED", new RegExp(`holds archive "b" \\(${b.identity.id}\\), not archive "a"`)));
      assert.deepEqual(listing(a.at), before);
    });

    it("a damaged identity file is reported as such, at open and before a lock", async () => {
      const dir = tempDir();
      const archive = await Archive.open(dir);
      fs.writeFileSync(path.join(dir, ".tick-backup", "archive.json"), "{ torn");
      await assert.rejects(Archive.open(dir), rejectsWith("ARCHIVE_IDENTITY_DAMAGED", /archive\.json is damaged/));
      await assert.rejects(archive.withLock(async () => "wrote"), rejectsWith("ARCHIVE_IDENTITY_DAMAGED"));
    });

    it("a device number that changes alone (reboot, remount) is no alarm; with the size too it is", () => {
      const usb: FsIdentity = { dev: "8:17", type: "ext", totalBytes: 2e12, mountPoint: "/media/backup", source: "/dev/sdb1", fsType: "ext4" };
      assert.deepEqual(filesystemDifferences(usb, { ...usb, dev: "8:33", source: "/dev/sdc1" }), []);
      assert.deepEqual(filesystemDifferences(usb, { ...usb, mountPoint: "/media/usb1" }), []);
      const root: FsIdentity = { dev: "179:2", type: "ext", totalBytes: 3.2e10, mountPoint: "/", source: "/dev/mmcblk0p2", fsType: "ext4" };
      assert.equal(filesystemDifferences(usb, root).length, 1);
      assert.equal(filesystemDifferences(usb, { ...usb, type: "vfat" }).length, 1);
      const nfs: FsIdentity = { dev: "0:53", type: "nfs", totalBytes: 4e12, mountPoint: "/mnt/nas", source: "nas:/export/ticks", fsType: "nfs4" };
      assert.deepEqual(filesystemDifferences(nfs, { ...nfs, dev: "0:61", totalBytes: 4.1e12 }), [], "same export after a remount and a resize");
      assert.equal(filesystemDifferences(nfs, { ...nfs, dev: "0:61", totalBytes: 4.1e12, source: "other:/x" }).length, 1);
    });

    it("an archive made before filesystems were recorded learns its own at the first open", async () => {
      const dir = tempDir();
      fs.mkdirSync(path.join(dir, ".tick-backup"));
      const file = path.join(dir, ".tick-backup", "archive.json");
      fs.writeFileSync(file, JSON.stringify({ id: "old-id", name: "old", createdAt: "2026-01-01T00:00:00Z", format: 1 }));
      const archive = await Archive.open(dir);
      assert.equal(archive.identity.id, "old-id");
      assert.ok(JSON.parse(fs.readFileSync(file, "utf8")).filesystem?.dev);
    });
  });

  describe("free space", () => {
    it("measures a real filesystem with check-disk-space, agreeing with statfs", async () => {
      const d = disk(16);
      fs.writeFileSync(path.join(d.at, "four-mib.bin"), Buffer.alloc(4 * MiB, 1));
      const space = await measurePath(d.at);
      assert.equal(space.state, "ok");
      assert.equal(space.mounted, true);
      assert.equal(space.total, 16 * MiB);
      if (mountMode === "real") {
        const sf = fs.statfsSync(d.at);
        assert.equal(space.free, sf.bavail * sf.bsize);
      }
      assert.equal(space.used, 4 * MiB);
      assert.equal(space.usedPercent, 25);
      assert.equal(space.fsType, "tmpfs");
      assert.equal(space.mountPoint, d.at);
    });

    it("measures a folder on the machine's own disk with check-disk-space (df), agreeing with statfs", async () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, "a-file"), "x"); // an empty folder on the root disk would be "not mounted"
      const space = await measurePath(dir);
      const sf = fs.statfsSync(dir);
      assert.equal(space.state, "ok");
      assert.equal(space.total, sf.blocks * sf.bsize);
      // other processes may write meanwhile: agree within 64 MiB
      assert.ok(Math.abs(space.free! - sf.bavail * sf.bsize) < 64 * MiB, `df ${space.free} vs statfs ${sf.bavail * sf.bsize}`);
      assert.equal(space.used, space.total! - space.free!);
    });

    it("a path that answers an I/O error is an error with its reason, not \"missing\"", async () => {
      const dir = tempDir();
      // Fault injection: a failing share answers stat with EIO.
      const stat = sinon.stub(fs.promises, "stat").callsFake((async (p: fs.PathLike) => {
        if (String(p) === dir) throw Object.assign(new Error(`EIO: i/o error, stat '${dir}'`), { code: "EIO" });
        return fs.statSync(p);
      }) as typeof fs.promises.stat);
      try {
        const space = await measurePath(dir);
        assert.equal(space.state, "error");
        assert.equal(space.mounted, false);
        assert.match(space.reason ?? "", /cannot measure .*EIO/);
      } finally {
        stat.restore();
      }
    });

    it("a missing path is missing, never measured through its parent", async () => {
      const space = await measurePath(path.join(tempDir(), "not-there"));
      assert.equal(space.state, "missing");
      assert.equal(space.mounted, false);
      assert.equal(space.free, undefined);
    });

    it("a watched path that vanishes between runs: not mounted, then missing, then back", async () => {
      const d = disk(8);
      fs.writeFileSync(path.join(d.at, "offline-copy.bin"), "x");
      const seen = new Map<string, FsIdentity>();
      const archiveDir = tempDir();
      const check = () =>
        checkDisk({ archiveName: "t", archivePath: archiveDir, open: () => Archive.open(archiveDir), extraPaths: [d.at], thresholds: NO_LEVELS, seen });
      let r = await check();
      assert.equal(r.extra[0].state, "ok");
      assert.equal(r.extra[0].total, 8 * MiB);
      d.unplug();
      r = await check();
      assert.equal(r.extra[0].state, "not mounted");
      assert.match(r.extra[0].reason!, /empty folder on the root filesystem|another filesystem/);
      assert.equal(r.level, "warn");
      assert.deepEqual(r.problems.map((p) => p.code), ["NOT_MOUNTED"]);
      // a stray file in the mount point: no longer empty, but still not the filesystem seen before
      fs.writeFileSync(path.join(d.at, "stray"), "y");
      r = await check();
      assert.equal(r.extra[0].state, "not mounted");
      assert.match(r.extra[0].reason!, /another filesystem than at the last check/);
      fs.rmSync(d.at, { recursive: true });
      r = await check();
      assert.equal(r.extra[0].state, "missing");
      fs.mkdirSync(d.at);
      d.plug();
      r = await check();
      assert.equal(r.extra[0].state, "ok");
      assert.equal(r.level, "ok");
    });

    it("levels from percent, absolute free space and days until full", () => {
      const space = { path: "/x", mounted: true, state: "ok" as const, free: 10e9, total: 100e9, used: 90e9, usedPercent: 90 };
      const t = { ...DEFAULT_THRESHOLDS, warnPercent: 85, criticalPercent: 95, warnFree: 0, criticalFree: 0, warnDays: 30, criticalDays: 7 };
      assert.equal(levelOf(space, t).level, "warn");
      assert.equal(levelOf(space, { ...t, criticalFree: parseSize("20 GB", "f") }).level, "critical");
      assert.equal(levelOf(space, { ...t, warnPercent: 0 }).level, "ok");
      assert.equal(levelOf(space, { ...t, warnPercent: 0 }, 20).level, "warn");
      assert.equal(levelOf(space, { ...t, warnPercent: 0 }, 6.5).level, "critical");
      assert.match(levelOf(space, { ...t, warnPercent: 0 }, 6.5).reasons[0], /full in 6.5 days/);
    });

    it("reads sizes as people write them and refuses the rest", () => {
      assert.equal(parseSize("50 GB", "f"), 50e9);
      assert.equal(parseSize("1.5TB", "f"), 1.5e12);
      assert.equal(parseSize("200 GiB", "f"), 200 * 1024 ** 3);
      assert.equal(parseSize("", "f"), 0);
      for (const bad of ["lots", "-5 GB", "5 XB", "1e9"]) assert.throws(() => parseSize(bad, "warn below free"), (e: ConfigError) => e.code === "CONFIG" && /warn below free/.test(e.message));
    });
  });

  describe("run history", () => {
    it("skips a torn last line and a damaged one, and counts them", async () => {
      const dir = tempDir();
      const entry = { at: "2026-11-27T10:00:00.000Z", kind: "pull" as const, durationMs: 5, bytes: 10, newFiles: 1, changedFiles: 0, totalFiles: 1, totalBytes: 10 };
      await appendHistory(dir, entry);
      fs.appendFileSync(path.join(dir, "history.jsonl"), "{not json\n");
      await appendHistory(dir, { ...entry, bytes: 20 });
      fs.appendFileSync(path.join(dir, "history.jsonl"), '{"at":"2026-11-27T11:00');
      const h = await readHistory(dir);
      assert.deepEqual(h.entries.map((e) => e.bytes), [10, 20]);
      assert.equal(h.damaged, 2);
      assert.deepEqual(await readHistory(tempDir()), { entries: [], damaged: 0 });
      // the next run after the crash starts on a fresh line: only the torn one is lost
      await appendHistory(dir, { ...entry, bytes: 30 });
      const after = await readHistory(dir);
      assert.deepEqual(after.entries.map((e) => e.bytes), [10, 20, 30]);
      assert.equal(after.damaged, 2);
    });
  });

  describe("the check", () => {
    it("reports a healthy archive disk with its volume, and levels from the thresholds", async () => {
      const d = disk(16);
      const archive = await Archive.open(d.at, { name: "t" });
      fs.writeFileSync(path.join(d.at, "big.bin"), Buffer.alloc(14 * MiB, 1));
      await appendHistory(archive.stateDir, { at: "2026-11-26T10:00:00.000Z", kind: "pull", durationMs: 1, bytes: 14 * MiB, newFiles: 1, changedFiles: 0, totalFiles: 1, totalBytes: 14 * MiB });
      const base = { archiveName: "t", archivePath: d.at, open: async () => archive, extraPaths: [], now: () => new Date("2026-11-27T12:00:00Z"), utc: true };
      let r = await checkDisk({ ...base, thresholds: { ...DEFAULT_THRESHOLDS, warnPercent: 85, criticalPercent: 95 } });
      assert.equal(r.kind, "disk");
      assert.equal(r.archiveDisk.mounted, true);
      assert.equal(r.archiveDisk.total, 16 * MiB);
      // 14 of 16 MiB, plus the few pages the state area takes (identity, disk profile, history)
      assert.ok(r.archiveDisk.usedPercent! >= 87.5 && r.archiveDisk.usedPercent! < 88.5, String(r.archiveDisk.usedPercent));
      assert.equal(r.level, "warn");
      assert.deepEqual(r.problems.map((p) => p.code), ["DISK_LOW"]);
      assert.equal(r.volume?.history.runs, 1);
      assert.deepEqual(r.volume?.busiestDay, { day: "2026-11-26", files: 1, bytes: 14 * MiB });
      r = await checkDisk({ ...base, thresholds: { ...DEFAULT_THRESHOLDS, warnPercent: 0, criticalPercent: 0, criticalFree: parseSize("4 MB", "f") } });
      assert.equal(r.level, "critical");
      assert.deepEqual(r.problems.map((p) => p.code), ["DISK_CRITICAL"]);
    });

    it("reports an unplugged archive disk as critical, and writes nothing", async () => {
      const d = disk();
      const known = tempDir("tick-known-");
      const archive = await Archive.open(d.at, { name: "t", knownDir: known });
      d.unplug();
      for (const open of [async () => archive, () => Archive.open(d.at, { name: "t", knownDir: known })]) {
        const r = await checkDisk({ archiveName: "t", archivePath: d.at, open, extraPaths: [], thresholds: DEFAULT_THRESHOLDS });
        assert.equal(r.level, "critical");
        assert.equal(r.archiveDisk.mounted, false);
        assert.equal(r.archiveDisk.state, "not mounted");
        assert.deepEqual(r.problems.map((p) => p.code), ["ARCHIVE_NOT_FOUND"]);
        assert.equal(r.volume, null);
      }
      assert.deepEqual(fs.readdirSync(d.at), []);
    });
  });

  describe("the pull", () => {
    let sshd: Sshd;
    before(async () => {
      sshd = await startSshd();
    });
    after(async () => {
      await sshd?.stop();
    });

    it("adds a line of history per run, and refuses to write when the disk is unplugged or another one is there", async () => {
      const remote = tempDir("tick-remote-");
      fs.chmodSync(remote, 0o755);
      write(remote, "EURUSD/2026-11-26.csv", tickLines("EURUSD", 2000));
      const d = disk(32);
      const archive = await Archive.open(d.at, { name: "t", knownDir: tempDir("tick-known-") });
      const run = () => pull({ server: sshdServer(sshd), archive, remoteDir: remote, settleSeconds: 0, retry: { retries: 1, baseDelayMs: 50 } });
      const first = await run();
      assert.equal(first.counts.new, 1);
      let history = await readHistory(archive.stateDir);
      assert.equal(history.entries.length, 1);
      assert.equal(history.entries[0].bytes, first.bytes);
      assert.equal(history.entries[0].newFiles, 1);
      assert.equal(history.entries[0].totalBytes, fs.statSync(path.join(remote, "EURUSD/2026-11-26.csv")).size);

      write(remote, "EURUSD/2026-11-27.csv", tickLines("EURUSD", 500));
      d.unplug();
      await assert.rejects(run(), rejectsWith("ARCHIVE_NOT_FOUND"));
      assert.deepEqual(fs.readdirSync(d.at), [], "nothing reached the root disk");
      fs.cpSync(path.join(d.store, ".tick-backup"), path.join(d.at, ".tick-backup"), { recursive: true });
      const before = listing(d.at);
      await assert.rejects(run(), rejectsWith("ARCHIVE_FS_CHANGED"));
      assert.deepEqual(listing(d.at), before, "nothing written beside the stale copy");

      fs.rmSync(path.join(d.at, ".tick-backup"), { recursive: true });
      d.plug();
      const after = await run();
      assert.equal(after.counts.new, 1);
      assert.ok(fs.existsSync(path.join(d.at, "EURUSD/2026-11-27.csv")));
      history = await readHistory(archive.stateDir);
      assert.deepEqual(history.entries.map((e) => e.newFiles), [1, 1]);
    });
  });
});
