/**
 * The origin check (the server's own sha256sum over SSH exec) and re-fetching damaged files,
 * against real OpenSSH sshd servers: one that runs commands, one that allows SFTP only, one
 * without sha256sum, and one whose sha256sum lies.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { startSshd, type Sshd } from "./support/sshd";
import { pullEnv, sshdServer } from "./support/pull-env";
import { sha256, tempDir, tickLines, write, writeMixedTree } from "./support/tree";
import { connect } from "../lib/sftp/connect";
import { originHashes } from "../lib/verify/origin";
import { originCheck } from "../lib/verify/origin-check";
import { scrub } from "../lib/verify/scrub";
import type { PullReport } from "../lib/sftp/pull";

const filesOf = (r: PullReport) => r.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 }));

function sha256sumCheck(dir: string): { status: number; out: string } {
  const r = spawnSync("sha256sum", ["-c", ".tick-backup/SHA256SUMS"], { cwd: dir, encoding: "utf8" });
  return { status: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

describe("verify: origin check and re-fetch against a real sshd", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let remote: string;

  before(async () => {
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
  });
  beforeEach(() => {
    remote = tempDir("tick-remote-");
    fs.chmodSync(remote, 0o755);
  });

  it("the server's sha256sum agrees with every pulled file; the pull leaves a SHA256SUMS that sha256sum -c accepts", async () => {
    writeMixedTree(remote);
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 0 });
    const pulled = await env.run();
    assert.deepEqual(pulled.problems, []);
    assert.equal(pulled.files.every((f) => f.state === "final"), true);
    const check = sha256sumCheck(env.dir);
    assert.equal(check.status, 0, check.out);
    assert.equal(check.out.trim().split("\n").length, pulled.files.length, "every pulled file is in the manifest");

    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files: filesOf(pulled) });
    assert.deepEqual(report.problems, []);
    assert.equal(report.mode, "origin");
    assert.equal(report.origin.unavailable, false);
    assert.equal(report.origin.checked, pulled.files.length);
    assert.equal(report.origin.matched, pulled.files.length);
    assert.equal(report.origin.mismatched, 0);
    assert.equal(report.counts.ok, pulled.files.length);
    assert.equal(report.bytes, pulled.files.reduce((s, f) => s + f.size, 0));
  });

  it("a file that grew on the server after the pull is compared on exactly the pulled bytes", async () => {
    const file = write(remote, "EURUSD/today.csv", tickLines("EURUSD", 3000));
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 3600 });
    const pulled = await env.run();
    assert.equal(pulled.files[0].state, "live");
    fs.appendFileSync(file, tickLines("EURUSD", 100, Date.UTC(2026, 10, 26, 15)));
    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files: filesOf(pulled) });
    assert.equal(report.origin.matched, 1, JSON.stringify(report));
    const live = fs.readFileSync(path.join(env.archive.stateDir, "SHA256SUMS.live"), "utf8");
    assert.match(live, /EURUSD\/today\.csv\n$/, "a live file is listed apart");
    assert.equal(fs.readFileSync(path.join(env.archive.stateDir, "SHA256SUMS"), "utf8"), "");
  });

  it("the pull keeps SHA256SUMS true while today's file grows, and moves it there once it settles", async () => {
    const today = write(remote, "EURUSD/today.csv", tickLines("EURUSD", 500));
    write(remote, "EURUSD/yesterday.csv", tickLines("EURUSD", 800));
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 3600 });
    fs.utimesSync(path.join(remote, "EURUSD/yesterday.csv"), new Date(Date.now() - 86_400_000), new Date(Date.now() - 86_400_000));
    await env.run();
    const manifest = () => fs.readFileSync(path.join(env.archive.stateDir, "SHA256SUMS"), "utf8");
    const live = () => fs.readFileSync(path.join(env.archive.stateDir, "SHA256SUMS.live"), "utf8");
    assert.match(manifest(), /  EURUSD\/yesterday\.csv\n$/);
    assert.match(live(), /  EURUSD\/today\.csv\n$/);
    for (let round = 0; round < 2; round++) {
      fs.appendFileSync(today, tickLines("EURUSD", 50, Date.UTC(2026, 10, 26, 14 + round)));
      const grown = await env.run();
      assert.equal(grown.counts.grown, 1);
      const check = sha256sumCheck(env.dir);
      assert.equal(check.status, 0, `round ${round}: ${check.out}`);
      assert.equal(live().split("\n")[0].slice(0, 64), sha256(path.join(env.dir, "EURUSD/today.csv")), "the live list follows the latest pull");
    }
    const after = await env.run({ settleSeconds: 0 }); // the recorder has stopped writing it
    assert.equal(after.counts.settled, 1, JSON.stringify(after.counts));
    assert.match(manifest(), /EURUSD\/today\.csv/);
    assert.equal(live(), "");
    assert.equal(sha256sumCheck(env.dir).status, 0);
  });

  it("a file the server rewrote loses the verify result of its old content", async () => {
    const file = write(remote, "GBPUSD/2026-11-24.csv", tickLines("GBPUSD", 300));
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 0 });
    await env.run();
    await scrub({ archive: env.archive, mode: "full", settleMs: 0 });
    assert.equal((await env.archive.readCatalog()).get("GBPUSD/2026-11-24.csv")?.verifyResult, "ok");
    fs.writeFileSync(file, tickLines("GBPUSD", 100, Date.UTC(2026, 10, 24, 9)));
    const rewritten = await env.run();
    assert.equal(rewritten.counts.rewritten, 1);
    const record = (await env.archive.readCatalog()).get("GBPUSD/2026-11-24.csv")!;
    assert.equal(record.verifyResult, undefined);
    assert.equal(record.verifiedAt, undefined);
    assert.equal(sha256sumCheck(env.dir).status, 0, "the manifest has the new content");
  });

  it("hostile names (quote, ;, $(), backticks, newline, leading dash) are hashed and run no command: the canary stays absent", async () => {
    const hostile = [
      "it's.csv",
      "a;touch PWNED;b.csv",
      "$(touch PWNED).csv",
      "`touch PWNED`.csv",
      "line\nbreak;touch PWNED.csv",
      "-rf",
      "--help",
      "' ; touch PWNED ; echo '",
      "back\\slash \"dq\" * ? [x].csv",
    ];
    const content = new Map(hostile.map((n) => [n, randomBytes(100 + Math.floor(Math.random() * 5000))]));
    for (const [name, data] of content) fs.writeFileSync(path.join(remote, name), data);
    const canary = path.join(remote, "PWNED");
    const session = await connect(sshdServer(sshd));
    try {
      const queries = [...hostile.map((n) => ({ path: n, size: content.get(n)!.length })), { path: "$(touch PWNED)", size: 1 }, { path: "`touch PWNED`", size: 1 }];
      const result = await originHashes(session, remote, queries);
      assert.equal(fs.existsSync(canary), false, "no name ran a command on the server (the canary file exists)");
      assert.ok(result.available, JSON.stringify(result));
      if (!result.available) return;
      assert.equal(result.answers.length, queries.length);
      for (const name of hostile) {
        const answer: { path: string } | undefined = result.answers.find((a) => a.path === name);
        assert.ok(answer && "sha256" in answer, `an answer for ${JSON.stringify(name)}`);
        assert.equal((answer as { sha256: string }).sha256, sha256(path.join(remote, name)), JSON.stringify(name));
      }
      assert.deepEqual(result.answers.filter((a) => "missing" in a).map((a) => a.path), ["$(touch PWNED)", "`touch PWNED`"]);
    } finally {
      await session.end();
    }
    assert.equal(fs.existsSync(canary), false, "no name ran a command on the server");
    assert.equal(fs.existsSync(path.join(process.cwd(), "PWNED")), false);
  });

  it("many files go in few commands, each answer is matched to its file", async () => {
    const names = Array.from({ length: 1500 }, (_, i) => `d${i % 10}/file-${i}-${"x".repeat(40)}.csv`);
    for (const n of names) write(remote, n, `${n}\n`);
    const session = await connect(sshdServer(sshd));
    const before = sshd.readLog().split("\n").filter((l) => /exec|Starting session: command/.test(l)).length;
    try {
      const result = await originHashes(session, remote, names.map((n) => ({ path: n, size: n.length + 1 })));
      assert.ok(result.available);
      if (!result.available) return;
      for (const a of result.answers) assert.equal((a as { sha256: string }).sha256, sha256(path.join(remote, a.path)));
      assert.equal(result.answers.length, names.length);
    } finally {
      await session.end();
    }
    const commands = sshd.readLog().split("\n").filter((l) => /Starting session: command/.test(l)).length - before;
    assert.ok(commands >= 1 && commands <= 5, `${commands} commands for 1500 files`);
  });

  it("the first download was bad (the server disagrees, a second download agrees with it): replaced, the bad copy quarantined", async () => {
    write(remote, "GBPUSD/2026-11-20.csv", tickLines("GBPUSD", 2000));
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 0 });
    const pulled = await env.run();
    const rel = "GBPUSD/2026-11-20.csv";
    const local = path.join(env.dir, rel);
    // Bytes that went wrong between the network and the disk, recorded as if downloaded so.
    const bad = Buffer.from(fs.readFileSync(local));
    bad[17] ^= 0x20;
    fs.writeFileSync(local, bad);
    const badSha = sha256(local);
    await env.archive.update((cat) => cat.patch(rel, { sha256: badSha }).then(() => undefined));
    const files = [{ path: rel, size: pulled.files[0].size, sha256: badSha }];

    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files });
    assert.deepEqual(report.problems, []);
    assert.equal(report.origin.mismatched, 1);
    assert.deepEqual(report.origin.repulled, [rel]);
    assert.equal(report.quarantined.length, 1);
    assert.ok(fs.readFileSync(path.join(env.dir, report.quarantined[0])).equals(bad), "the bad copy is kept");
    assert.equal(sha256(local), sha256(path.join(remote, rel)), "the archive now holds the server's bytes");
    const record = (await env.archive.readCatalog()).get(rel)!;
    assert.equal(record.sha256, sha256(path.join(remote, rel)));
    assert.equal(record.verifyResult, "ok");
    assert.equal(sha256sumCheck(env.dir).status, 0, "the manifest follows the repair");
  });

  it("a scrub re-fetches a damaged file the server still has, and says what is lost when it does not", async () => {
    writeMixedTree(remote);
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 0 });
    await env.run();
    const rel = "deep/a/b/c/d/e/leaf.bin";
    const local = path.join(env.dir, rel);
    const data = fs.readFileSync(local);
    data[100] ^= 1;
    fs.writeFileSync(local, data);
    const report = await scrub({ archive: env.archive, mode: "full", server: sshdServer(sshd), remoteDir: remote, settleMs: 0 });
    assert.deepEqual(report.mismatches, [rel]);
    assert.deepEqual(report.restored, [rel]);
    assert.equal(sha256(local), sha256(path.join(remote, rel)), "fetched again, byte-identical");
    assert.ok(fs.readFileSync(path.join(env.dir, report.quarantined[0])).equals(data));
    assert.equal((await env.archive.readCatalog()).get(rel)?.verifyResult, "ok");
    assert.match(report.problems[0].message, /fetched again from the server/);

    // Now the server has other bytes too: nothing to fetch; the copy is damaged and the report says so.
    const other = "EURUSD/2026-11-26.csv";
    fs.appendFileSync(path.join(env.dir, other), "x"); // a longer copy is fine; make it differ instead:
    const bytes = fs.readFileSync(path.join(env.dir, other));
    bytes[0] ^= 1;
    fs.writeFileSync(path.join(env.dir, other), bytes.subarray(0, bytes.length - 1));
    fs.writeFileSync(path.join(remote, other), randomBytes(bytes.length + 10));
    fs.rmSync(path.join(env.dir, "empty.csv"));
    fs.rmSync(path.join(remote, "empty.csv"));
    const second = await scrub({ archive: env.archive, mode: "full", server: sshdServer(sshd), remoteDir: remote, settleMs: 0 });
    assert.deepEqual(second.mismatches, [other]);
    assert.deepEqual(second.missing, ["empty.csv"]);
    assert.deepEqual(second.restored, []);
    const damaged = second.problems.filter((p) => p.code === "ARCHIVE_DAMAGED").map((p) => p.path).sort();
    assert.deepEqual(damaged, ["EURUSD/2026-11-26.csv", "empty.csv"]);
    assert.match(second.problems.find((p) => p.path === other)!.message, /server's copy has other bytes now.*no other copy is recorded/);
    assert.equal(fs.existsSync(path.join(env.dir, other)), false, "the bad copy is not left at its path");
    assert.equal(sha256sumCheck(env.dir).status, 1, "sha256sum -c keeps failing while the archive lacks good copies");
  });

  it("origin mode without a server is a clear configuration error", async () => {
    const env = await pullEnv(sshdServer(sshd), remote);
    await assert.rejects(originCheck({ archive: env.archive, remoteDir: remote, files: [] }), /needs an sftp-server/);
  });
});

describe("verify: origin check where the server will not or cannot help", function () {
  this.timeout(60_000);
  const servers: Sshd[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  async function pulledFrom(extraConfig: string[]) {
    const sshd = await startSshd({ extraConfig });
    servers.push(sshd);
    const remote = tempDir("tick-remote-");
    fs.chmodSync(remote, 0o755);
    write(remote, "EURUSD/2026-11-25.csv", tickLines("EURUSD", 500));
    write(remote, "GBPUSD/2026-11-25.csv", tickLines("GBPUSD", 500));
    const env = await pullEnv(sshdServer(sshd), remote, { settleSeconds: 0 });
    const pulled = await env.run();
    assert.deepEqual(pulled.problems, []);
    assert.equal(pulled.counts.new, 2);
    return { sshd, remote, env, pulled };
  }

  it("SFTP only (ForceCommand internal-sftp): origin unavailable, said once, not a failure", async () => {
    const { sshd, remote, env, pulled } = await pulledFrom(["ForceCommand internal-sftp"]);
    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files: filesOf(pulled) });
    assert.equal(report.origin.unavailable, true);
    assert.match(report.origin.reason!, /runs no commands|SFTP only/);
    assert.deepEqual(report.problems, []);
    assert.deepEqual(report.mismatches, []);
    assert.equal(report.origin.checked, 0);
  });

  it("no sha256sum on the server: origin unavailable with that reason", async () => {
    const { sshd, remote, env, pulled } = await pulledFrom(["SetEnv PATH=/nonexistent"]);
    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files: filesOf(pulled) });
    assert.equal(report.origin.unavailable, true);
    assert.match(report.origin.reason!, /sha256sum .*not installed/);
    assert.deepEqual(report.problems, []);
  });

  it("a server that hangs while hashing: unavailable after the batch's deadline, not a run that never ends", async () => {
    const fake = tempDir("tick-fakebin-");
    fs.writeFileSync(path.join(fake, "sha256sum"), "#!/bin/sh\nsleep 20\n", { mode: 0o755 });
    fs.chmodSync(fake, 0o755);
    const { sshd, remote, pulled } = await pulledFrom([`SetEnv PATH=${fake}:/usr/bin:/bin`]);
    const session = await connect(sshdServer(sshd));
    try {
      const started = Date.now();
      const result = await originHashes(session, remote, pulled.files.map((f) => ({ path: f.path, size: f.size })), undefined, 1000);
      assert.equal(result.available, false);
      assert.match((result as { reason: string }).reason, /did not answer within 1 s/);
      assert.ok(Date.now() - started < 10_000);
    } finally {
      await session.end();
      fs.rmSync(fake, { recursive: true, force: true });
    }
  });

  it("a server whose sha256sum disagrees with what its SFTP serves: suspect, downloaded again, reported", async () => {
    const fake = tempDir("tick-fakebin-");
    fs.writeFileSync(path.join(fake, "sha256sum"), `#!/bin/sh\ncat >/dev/null\necho "${"0".repeat(64)}  -"\n`, { mode: 0o755 });
    fs.chmodSync(fake, 0o755);
    const { sshd, remote, env, pulled } = await pulledFrom([`SetEnv PATH=${fake}:/usr/bin:/bin`]);
    const report = await originCheck({ archive: env.archive, server: sshdServer(sshd), remoteDir: remote, files: filesOf(pulled) });
    assert.equal(report.origin.unavailable, false);
    assert.equal(report.origin.mismatched, 2);
    assert.deepEqual(report.mismatches.sort(), ["EURUSD/2026-11-25.csv", "GBPUSD/2026-11-25.csv"]);
    assert.deepEqual(report.problems.map((p) => p.code), ["ORIGIN_MISMATCH", "ORIGIN_MISMATCH"]);
    assert.match(report.problems[0].message, /SFTP serves the bytes we archived/);
    const cat = await env.archive.readCatalog();
    for (const f of pulled.files) {
      assert.equal(cat.get(f.path)?.verifyResult, "suspect");
      assert.equal(sha256(path.join(env.dir, f.path)), f.sha256, "the archived copy is left as it was");
    }
    assert.deepEqual(fs.readdirSync(env.archive.partialDir), [], "the second download is not left behind");
    fs.rmSync(fake, { recursive: true, force: true });
  });
});
