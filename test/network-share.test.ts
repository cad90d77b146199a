import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Archive } from "../lib/archive/archive";
import { Catalog } from "../lib/archive/catalog";
import { ArchiveLocked } from "../lib/errors";
import { pull } from "../lib/sftp/pull";
import { unmountDir } from "./support/disk-image";
import { sshdServer } from "./support/pull-env";
import { startSshd, type Sshd } from "./support/sshd";
import { sha256, tempDir, tickLines, write } from "./support/tree";

const run = promisify(execFile);

/**
 * The archive on a real network filesystem: a folder of an OpenSSH server mounted twice through
 * sshfs, as two computers at home would mount one NAS share. (No SMB or NFS here: the kernel has
 * neither client; sshfs is the network filesystem these tests can run for real.)
 */
describe("archive on a network share (sshfs)", function () {
  this.timeout(120_000);
  let nas: Sshd;
  let ticks: Sshd;
  let share: string;
  const mounts: string[] = [];

  async function mountShare(): Promise<string> {
    const dir = tempDir("tick-share-mnt-");
    const ssh = ["ssh", ...nas.sshArgs()].join(" ");
    try {
      await run("sshfs", [`127.0.0.1:${share}`, dir, "-o", `ssh_command=${ssh}`]);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error("sshfs is missing: install the Debian package sshfs (.ci/run does)");
      throw err;
    }
    mounts.push(dir);
    return dir;
  }

  before(async () => {
    nas = await startSshd();
    ticks = await startSshd();
  });
  beforeEach(() => {
    share = tempDir("tick-share-");
  });
  afterEach(async () => {
    for (const dir of mounts.splice(0)) await unmountDir(dir).catch(() => undefined);
    fs.rmSync(share, { recursive: true, force: true });
  });
  after(async () => {
    await nas?.stop();
    await ticks?.stop();
  });

  it("pulls, grows and rewrites files on the share, and replaces the catalog snapshot over the old one", async () => {
    const remote = ticks.root;
    write(remote, "EURUSD/2026-11-26.csv", tickLines("EURUSD", 200));
    write(remote, "GBPUSD/2026-11-26T10:00.csv", tickLines("GBPUSD", 50));
    const archive = await Archive.open(await mountShare(), { name: "nas" });
    assert.equal(archive.profile.family, "posix", "a Linux share takes every name");
    const go = () => pull({ server: sshdServer(ticks), archive, remoteDir: remote, settleSeconds: 0 });
    assert.equal((await go()).counts.new, 2);
    fs.appendFileSync(path.join(remote, "EURUSD/2026-11-26.csv"), tickLines("EURUSD", 10, Date.UTC(2026, 10, 26, 12)));
    fs.writeFileSync(path.join(remote, "GBPUSD/2026-11-26T10:00.csv"), "rewritten\n");
    const second = await go();
    assert.equal(second.counts.grown, 1);
    assert.equal(second.counts.rewritten, 1);
    await archive.update(async (cat) => {
      await cat.compact(true); // the snapshot is written aside and renamed over the previous one: twice
      await cat.compact(true);
    });
    const catalog = await Catalog.load(path.join(share, ".tick-backup"));
    for (const rel of ["EURUSD/2026-11-26.csv", "GBPUSD/2026-11-26T10:00.csv"]) {
      assert.equal(catalog.get(rel)?.sha256, sha256(path.join(remote, rel)), rel);
      assert.equal(sha256(path.join(share, rel)), sha256(path.join(remote, rel)), `${rel} on the server's disk behind the share`);
    }
    assert.equal(catalog.get("GBPUSD/2026-11-26T10:00.csv")?.versions?.length, 1);
  });

  it("one writer at a time across two mounts of the share, as from two computers", async () => {
    const first = await mountShare();
    const second = await mountShare();
    const archive = await Archive.open(first);
    await archive.withLock(async () => {
      const script =
        `require(${JSON.stringify(path.join(__dirname, "../lib/archive/archive.js"))}).Archive.open(${JSON.stringify(second)})` +
        `.then(a => a.withLock(async () => 0)).then(() => process.exit(0), e => { console.log(e.code); process.exit(3); })`;
      const child = await run(process.execPath, ["-e", script]).then(
        () => ({ code: 0, out: "" }),
        (e) => ({ code: e.code, out: String(e.stdout) }),
      );
      assert.equal(child.code, 3, "the second computer is refused while the first writes");
      assert.match(child.out, /ARCHIVE_LOCKED/);
      const other = await Archive.open(second);
      await assert.rejects(other.withLock(async () => undefined), ArchiveLocked);
    });
    // Let go on the first mount: the second gets it once its cache of the share has caught up
    // (sshfs keeps names for up to 20 s; a held lock may look held a little longer, never free too soon).
    const other = await Archive.open(second);
    const started = Date.now();
    assert.equal(await other.withLock(async () => "held", { waitMs: 45_000 }), "held");
    console.log(`      (second mount got the lock ${Date.now() - started} ms after the first let go)`);
  });

  it("a lock held longer than the share's cache and the first stale time (30 s) is never taken over through the other mount", async function () {
    this.timeout(90_000);
    // An archive on the local disk (millisecond timestamps) locked first in this process: the share
    // (whole seconds) must not inherit what the lock learned there.
    await (await Archive.open(tempDir("tick-local-"))).withLock(async () => undefined);
    const first = await Archive.open(await mountShare());
    const second = await Archive.open(await mountShare());
    let attempts = 0;
    const lost = await first.withLock(async (_catalog, signal) => {
      // With a 30 s stale time, the other mount (20 s cache) was seen to take this lock over while held.
      const until = Date.now() + 40_000;
      while (Date.now() < until) {
        await assert.rejects(second.withLock(async () => undefined), ArchiveLocked, `attempt ${attempts} at ${40_000 - (until - Date.now())} ms; holder's lock lost: ${signal.aborted ? String(signal.reason) : "no"}`);
        attempts++;
        await new Promise((r) => setTimeout(r, 2_000));
      }
      return signal.aborted;
    });
    assert.equal(lost, false, "the holder never lost its lock");
    assert.ok(attempts >= 15);
  });
});
