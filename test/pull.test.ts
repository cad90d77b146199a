import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { startSshd, type Sshd } from "./support/sshd";
import { pullEnv, serverBytesRead, sshdServer } from "./support/pull-env";
import { sha256, tempDir, tickLines, treeHashes, write, writeMixedTree } from "./support/tree";
import { Catalog } from "../lib/archive/catalog";
import { Aborted } from "../lib/errors";

describe("pull from a real OpenSSH server", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let remote: string;
  let serverLog: string;

  before(async () => {
    // OpenSSH's own sftp-server, logging what it reads, so that transferred bytes are counted at the server.
    serverLog = path.join(tempDir("tick-sftp-log-"), "sftp-server.log");
    sshd = await startSshd({ extraConfig: [`Subsystem sftp /usr/lib/openssh/sftp-server -e -l INFO 2>>${serverLog}`] });
  });
  after(async () => {
    await sshd?.stop();
    fs.rmSync(path.dirname(serverLog), { recursive: true, force: true });
  });
  beforeEach(() => {
    remote = tempDir("tick-remote-");
    fs.chmodSync(remote, 0o755);
  });

  it("makes a byte-identical archive of a mixed tree, with the catalog agreeing", async () => {
    const files = writeMixedTree(remote);
    const env = await pullEnv(sshdServer(sshd), remote);
    const report = await env.run();
    assert.deepEqual(report.problems, []);
    assert.equal(report.counts.new, files.length);
    assert.deepEqual(treeHashes(env.dir), treeHashes(remote));
    const catalog = await Catalog.load(env.archive.stateDir);
    for (const rel of files) {
      assert.equal(catalog.get(rel)?.sha256, sha256(path.join(remote, rel)), rel);
      assert.equal(report.files.find((f) => f.path === rel)?.sha256, catalog.get(rel)?.sha256);
    }
    assert.deepEqual(fs.readdirSync(env.archive.partialDir), [], "no partial files left");
    const again = await env.run();
    assert.equal(again.counts.unchanged, files.length);
    assert.equal(again.bytes, 0);
  });

  it("transfers only the new bytes of a file grown three times (counted at the server)", async () => {
    const file = write(remote, "EURUSD/today.csv", tickLines("EURUSD", 20_000)); // ~1.3 MB
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    for (let round = 1; round <= 3; round++) {
      const before = serverBytesRead(fs.readFileSync(serverLog, "utf8"), file);
      const appended = tickLines("EURUSD", 300 * round, Date.UTC(2026, 10, 26, 12 + round));
      fs.appendFileSync(file, appended);
      const report = await env.run();
      await waitFor(() => serverBytesRead(fs.readFileSync(serverLog, "utf8"), file) > before);
      const served = serverBytesRead(fs.readFileSync(serverLog, "utf8"), file) - before;
      assert.equal(report.counts.grown, 1, `round ${round}`);
      assert.ok(served <= appended.length + 64 * 1024, `round ${round}: server read ${served} bytes for ${appended.length} appended`);
      assert.ok(served >= appended.length);
      assert.equal(sha256(path.join(env.dir, "EURUSD/today.csv")), sha256(file));
      assert.equal(report.files[0].sha256, sha256(file), "catalog hash is of the whole file");
    }
  });

  it("keeps a rewritten final file as a version and stores the new one", async () => {
    const file = write(remote, "a.csv", "original content, final\n".repeat(100));
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    const oldHash = sha256(file);
    fs.writeFileSync(file, "tampered\n");
    const report = await env.run();
    assert.equal(report.counts.rewritten, 1);
    assert.equal(report.rewritten[0].oldSha256, oldHash);
    assert.ok(report.problems.some((p) => p.code === "REWRITTEN" && /final/.test(p.message)));
    assert.equal(fs.readFileSync(path.join(env.dir, "a.csv"), "utf8"), "tampered\n");
    assert.equal(sha256(path.join(env.dir, ...report.rewritten[0].keptAs.split("/"))), oldHash);
    const rec = (await Catalog.load(env.archive.stateDir)).get("a.csv")!;
    assert.equal(rec.versions?.[0].sha256, oldHash);
  });

  it("detects a grown file whose old bytes changed, and a same-size change; a mere touch is not a change", async () => {
    const grown = write(remote, "g.csv", "A".repeat(100_000));
    const same = write(remote, "s.csv", "B".repeat(5_000));
    const touched = write(remote, "t.csv", "C".repeat(5_000));
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    fs.writeFileSync(grown, "A".repeat(99_000) + "X" + "A".repeat(999) + "more"); // inside the checked window
    fs.writeFileSync(same, "b".repeat(5_000));
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(same, later, later);
    fs.utimesSync(touched, later, later);
    const report = await env.run();
    assert.deepEqual(report.rewritten.map((r) => r.path).sort(), ["g.csv", "s.csv"]);
    assert.equal(report.counts.touched, 1);
    assert.deepEqual(treeHashes(env.dir), treeHashes(remote));
  });

  it("keeps files that vanished from the server, and counts them", async () => {
    write(remote, "keep/me.csv", "data\n");
    write(remote, "other.csv", "x\n");
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    fs.rmSync(path.join(remote, "keep"), { recursive: true });
    const report = await env.run();
    assert.equal(report.counts.gone, 1);
    assert.equal(fs.readFileSync(path.join(env.dir, "keep/me.csv"), "utf8"), "data\n");
    assert.ok((await Catalog.load(env.archive.stateDir)).get("keep/me.csv")?.goneSince);
  });

  it("marks young files live and makes them final once settled", async () => {
    write(remote, "live.csv", "tick\n");
    const env = await pullEnv(sshdServer(sshd), remote);
    const first = await env.run({ settleSeconds: 3600 });
    assert.equal(first.files[0].state, "live");
    const second = await env.run({ settleSeconds: 0 });
    assert.equal(second.counts.settled, 1);
    assert.equal((await Catalog.load(env.archive.stateDir)).get("live.csv")?.state, "final");
  });

  it("honours include, exclude and maxAgeDays", async () => {
    write(remote, "EURUSD/a.csv", "1\n");
    write(remote, "EURUSD/a.tmp", "2\n");
    write(remote, "tmp/b.csv", "3\n");
    const old = write(remote, "EURUSD/old.csv", "4\n");
    const longAgo = new Date(Date.now() - 40 * 86400_000);
    fs.utimesSync(old, longAgo, longAgo);
    const env = await pullEnv(sshdServer(sshd), remote, { include: ["**/*.csv"], exclude: ["tmp/**"], maxAgeDays: 30 });
    const report = await env.run();
    assert.deepEqual(Object.keys(treeHashes(env.dir)), ["EURUSD/a.csv"]);
    assert.equal(report.counts.tooOld, 1);
    assert.equal(report.counts.excluded, 2);
  });

  it("does not follow symlinks and refuses names that could leave or corrupt the archive", async () => {
    write(remote, "ok.csv", "fine\n");
    fs.symlinkSync("/etc", path.join(remote, "etc-link"));
    fs.symlinkSync("/etc/passwd", path.join(remote, "passwd.csv"));
    write(remote, "line\nbreak.csv", "evil\n");
    write(remote, ".tick-backup/catalog.journal", "{\"path\":\"x\"}\n");
    fs.writeFileSync(Buffer.concat([Buffer.from(remote + "/bad-"), Buffer.from([0xff, 0xfe]), Buffer.from(".csv")]), "latin1\n");
    const env = await pullEnv(sshdServer(sshd), remote);
    const report = await env.run();
    assert.deepEqual(Object.keys(treeHashes(env.dir)), ["line%0Abreak.csv", "ok.csv"], "a newline is kept, stored escaped");
    assert.equal(fs.readFileSync(path.join(env.dir, "line%0Abreak.csv"), "utf8"), "evil\n");
    assert.equal(report.counts.notRegular, 2);
    assert.equal(report.counts.refused, 2);
    assert.ok(report.problems.every((p) => p.code === "UNSAFE_NAME"));
    const catalog = await Catalog.load(env.archive.stateDir);
    assert.deepEqual(catalog.all().map((r) => [r.path, r.storedPath]).sort(), [["line\nbreak.csv", "line%0Abreak.csv"], ["ok.csv", undefined]], "state area untouched by the server's .tick-backup");
  });

  it("says at once that the remote folder does not exist, without retrying for nothing", async () => {
    const env = await pullEnv(sshdServer(sshd), path.join(remote, "no-such-folder"), { retry: { retries: 3, baseDelayMs: 2000 } });
    const started = Date.now();
    await assert.rejects(env.run(), (err: Error) => /no-such-folder: cannot list: No such file/.test(err.message));
    assert.ok(Date.now() - started < 1500, "no backoff for a missing folder");
  });

  it("resumes an interrupted download on the next run", async () => {
    const file = write(remote, "big.bin", randomBytes(40 * 1024 * 1024));
    const env = await pullEnv(sshdServer(sshd), remote);
    const stop = new AbortController();
    await assert.rejects(
      env.run({ signal: stop.signal, bwLimitKBps: 20 * 1024, onProgress: (p) => p.bytes > 10 * 1024 * 1024 && stop.abort() }),
      Aborted,
    );
    assert.equal(fs.existsSync(path.join(env.dir, "big.bin")), false, "nothing half-written in place");
    const resumed = await env.run();
    assert.ok(resumed.bytes < 35 * 1024 * 1024, `resumed run moved ${resumed.bytes} bytes`);
    assert.equal(sha256(path.join(env.dir, "big.bin")), sha256(file));
  });

  it("redoes an append that a crash interrupted, and refuses to append to a damaged copy", async () => {
    const file = write(remote, "g.csv", tickLines("X", 1000));
    const env = await pullEnv(sshdServer(sshd), remote);
    await env.run();
    fs.appendFileSync(path.join(env.dir, "g.csv"), "half an append that never got recorded");
    fs.appendFileSync(file, tickLines("X", 10, Date.UTC(2026, 10, 27)));
    assert.deepEqual((await env.run()).problems, []);
    assert.equal(sha256(path.join(env.dir, "g.csv")), sha256(file));

    const local = path.join(env.dir, "g.csv");
    const damaged = fs.readFileSync(local);
    damaged[10] ^= 0xff; // bit rot in the archived copy
    fs.writeFileSync(local, damaged);
    fs.appendFileSync(file, tickLines("X", 10, Date.UTC(2026, 10, 28)));
    const report = await env.run();
    assert.equal(report.counts.failed, 1);
    assert.equal(report.problems[0].code, "ARCHIVE_DAMAGED");
    assert.deepEqual(fs.readFileSync(local), damaged, "damaged copy left as it was for hash-verify to deal with");
  });

  it("adopts a file placed just before a crash, and keeps an unknown local file as a version", async () => {
    write(remote, "a.csv", "server bytes\n");
    write(remote, "b.csv", "server b\n");
    const env = await pullEnv(sshdServer(sshd), remote);
    write(env.dir, "a.csv", "server bytes\n"); // renamed into place, catalog record lost in the crash
    write(env.dir, "b.csv", "something a person copied here\n");
    const report = await env.run();
    assert.deepEqual(treeHashes(env.dir), treeHashes(remote));
    const catalog = await Catalog.load(env.archive.stateDir);
    assert.equal(catalog.get("a.csv")?.versions, undefined);
    const kept = catalog.get("b.csv")!.versions![0];
    assert.equal(kept.reason, "unknown-local");
    assert.equal(fs.readFileSync(path.join(env.dir, kept.storedAs), "utf8"), "something a person copied here\n");
    assert.equal(report.counts.new, 2);
  });
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
}
