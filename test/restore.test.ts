/**
 * Restores and drills through the real `tick-backup` command (spawned as `node dist/cli/…`): pull
 * from a real sshd, upload to a real S3-compatible server (s3rver) and a folder target, delete the
 * archive, restore from offsite and compare with the server's tree byte for byte; then damage,
 * encryption, overwrite protection, filters, unsafe keys and bad arguments.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { DeleteObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createTarget, uploadOffsite } from "../lib/offsite";
import { loadAge } from "../lib/offsite/encrypt";
import { pullEnv, sshdServer } from "./support/pull-env";
import { startSshd, type Sshd } from "./support/sshd";
import { ACCESS_KEY, BUCKET, SECRET_KEY, startS3, type S3Server } from "./support/s3";
import { archiveWith } from "./support/offsite-env";
import { sha256, tempDir, treeHashes, write } from "./support/tree";

const CLI = path.join(__dirname, "../cli/tick-backup.js");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built command asynchronously (s3rver lives in this process and must keep answering). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

function json<T = any>(run: Run): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
}

const DAY = 86_400;
const T0 = Date.UTC(2026, 9, 1) / 1000;

/* eslint-disable @typescript-eslint/no-explicit-any */
describe("tick-backup restore and drill (the real command)", function () {
  this.timeout(120_000);
  let sshd: Sshd;
  let s3: S3Server;
  let prefixN = 0;
  before(async () => {
    sshd = await startSshd();
    s3 = await startS3();
  });
  after(async () => {
    await sshd?.stop();
    await s3?.stop();
  });

  const s3Env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
    TICK_BACKUP_S3_ENDPOINT: s3.endpoint,
    TICK_BACKUP_S3_PATH_STYLE: "1",
    TICK_BACKUP_S3_ACCESS_KEY_ID: ACCESS_KEY,
    TICK_BACKUP_S3_SECRET_ACCESS_KEY: SECRET_KEY,
    ...extra,
  });
  const s3Target = (prefix: string) => createTarget({ kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });

  /** A server tree with files of several ages, pulled, uploaded to S3 and to a folder. */
  async function backedUp() {
    const remote = tempDir("restore-remote-");
    fs.chmodSync(remote, 0o755);
    const files: Record<string, string | Buffer> = {
      "EURUSD/2026-10-01.csv": "t,bid,ask\n".repeat(5000),
      "EURUSD/2026-10-15.csv": "t,bid,ask\n1,2,3\n",
      "GBPUSD/2026-11-01.bin": randomBytes(3 * 1024 * 1024 + 17),
      "GBPUSD/2026-11-20.csv": "x".repeat(70_000),
      "empty.csv": "",
      "deep/a/b/c.csv": "nested\n",
    };
    Object.entries(files).forEach(([rel, content], i) => {
      const file = write(remote, rel, content);
      fs.utimesSync(file, T0 + i * 10 * DAY, T0 + i * 10 * DAY);
    });
    const env = await pullEnv(sshdServer(sshd), remote);
    const pulled = await env.run();
    assert.deepEqual(pulled.problems, []);
    const prefix = `cycle-${++prefixN}`;
    const folder = tempDir("restore-disk-");
    for (const [target, name] of [
      [s3Target(prefix), "s3"],
      [createTarget({ kind: "directory", path: folder }), "disk"],
    ] as const) {
      const up = await uploadOffsite({ archive: env.archive, target, targetName: name });
      assert.deepEqual(up.problems, []);
      assert.equal(up.counts.uploaded, Object.keys(files).length);
      await target.close();
    }
    return { remote, archive: env.dir, prefix, folder, files };
  }

  it("full cycle: pull → S3 and folder → archive deleted → restore from each → identical to the server's tree", async () => {
    const { remote, archive, prefix, folder } = await backedUp();
    const status = await cli(["status", archive, "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const s = json(status);
    assert.equal(s.final, 6);
    assert.equal(s.targets.length, 2);
    assert.deepEqual(s.copies, { one: 0, two: 0, threePlus: 6 });
    assert.equal(s.verdict.ok, true);
    const human = await cli(["status", archive]);
    assert.match(human.stdout, /OK: 3-2-1 met/);

    const drill = await cli(["drill", archive, "--target", folder, "--target", `s3://${BUCKET}/${prefix}`, "--files", "3", "--json"], s3Env());
    assert.equal(drill.code, 0, drill.stdout + drill.stderr);
    const d = json(drill);
    assert.equal(d.kind, "verify");
    assert.equal(d.mode, "drill");
    assert.deepEqual(d.sources.map((x: any) => [x.checked, x.ok]), [[3, 3], [3, 3], [3, 3]]);

    fs.rmSync(archive, { recursive: true, force: true });
    const expected = treeHashes(remote);
    assert.equal(Object.keys(expected).length, 6);

    const fromS3 = tempDir("restored-s3-");
    const r1 = await cli(["restore", "--from", `s3://${BUCKET}/${prefix}`, "--to", fromS3, "--json"], s3Env());
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.equal(json(r1).counts.restored, 6);
    assert.deepEqual(treeHashes(fromS3), expected);
    assert.equal(fs.statSync(path.join(fromS3, "EURUSD/2026-10-01.csv")).mtimeMs, T0 * 1000, "the server's mtime comes back");
    assert.deepEqual(fs.readdirSync(path.join(fromS3, "EURUSD")).sort(), ["2026-10-01.csv", "2026-10-15.csv"], "no temporary names left");

    const fromDisk = tempDir("restored-disk-");
    const r2 = await cli(["restore", "--from", folder, "--to", fromDisk]);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.match(r2.stdout, /restored/);
    assert.deepEqual(treeHashes(fromDisk), expected);
    assert.ok(!r1.stdout.includes(SECRET_KEY) && !r1.stderr.includes(SECRET_KEY));
  });

  it("a corrupted object: drill and restore name it and exit 1; the other files are restored", async () => {
    const { remote, archive, prefix, folder } = await backedUp();
    // Bit rot on the folder target, and an object replaced behind our back on S3.
    const rotten = path.join(folder, "GBPUSD/2026-11-20.csv");
    const bytes = fs.readFileSync(rotten);
    bytes[100] ^= 0x01;
    fs.chmodSync(rotten, 0o644);
    fs.writeFileSync(rotten, bytes);
    const direct = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/EURUSD/2026-10-15.csv`, Body: "t,bid,ask\n1,2,4\n" }));
    direct.destroy();

    const drill = await cli(["drill", "--target", folder, "--target", `s3://${BUCKET}/${prefix}`, "--percent", "100"], s3Env());
    assert.equal(drill.code, 1, drill.stdout + drill.stderr);
    assert.match(drill.stdout, /MISMATCH .*GBPUSD\/2026-11-20\.csv/);
    assert.match(drill.stdout, /MISMATCH .*EURUSD\/2026-10-15\.csv/);

    const expected = treeHashes(remote);
    for (const [from, bad, env] of [
      [folder, "GBPUSD/2026-11-20.csv", {}],
      [`s3://${BUCKET}/${prefix}`, "EURUSD/2026-10-15.csv", s3Env()],
    ] as const) {
      const to = tempDir("restored-bad-");
      const r = await cli(["restore", "--from", from, "--to", to, "--json"], env);
      assert.equal(r.code, 1, r.stderr);
      const report = json(r);
      assert.deepEqual(report.mismatches, [bad]);
      assert.equal(report.counts.restored, 5);
      const got = treeHashes(to);
      assert.equal(got[bad], undefined, "the bad file is not written");
      delete expected[bad];
      for (const [rel, sha] of Object.entries(treeHashes(remote))) if (rel !== bad) assert.equal(got[rel], sha, rel);
      assert.deepEqual(fs.readdirSync(path.dirname(path.join(to, bad))).filter((n) => n.includes(".restore-")), [], "no temporary file left");
    }
    assert.ok(fs.existsSync(archive));
  });

  it("a copy missing on the target: named as MISSING, exit 1, the rest restored", async () => {
    const { remote, prefix, folder } = await backedUp();
    fs.rmSync(path.join(folder, "deep/a/b/c.csv"));
    const direct = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
    await direct.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}/empty.csv` }));
    direct.destroy();
    for (const [from, gone, env] of [
      [folder, "deep/a/b/c.csv", {}],
      [`s3://${BUCKET}/${prefix}`, "empty.csv", s3Env()],
    ] as const) {
      const to = tempDir("restored-missing-");
      const r = await cli(["restore", "--from", from, "--to", to, "--json"], env);
      assert.equal(r.code, 1, r.stderr);
      const report = json(r);
      assert.deepEqual(report.missing, [gone]);
      assert.equal(report.counts.restored, 5);
      const expected = treeHashes(remote);
      delete expected[gone];
      assert.deepEqual(treeHashes(to), expected);
    }
  });

  it("encrypted target round trip: restores with the age key, refuses without it, detects a damaged object", async () => {
    const age = await loadAge();
    const identity: string = await age.generateIdentity();
    const recipient: string = await age.identityToRecipient(identity);
    const data = randomBytes(2 * 1024 * 1024 + 5);
    const archive = await archiveWith({ "secret/ticks.bin": data, "b.csv": "hello\n", "empty.csv": "" });
    const prefix = `enc-${++prefixN}`;
    const target = s3Target(prefix);
    const up = await uploadOffsite({ archive, target, targetName: "s3", encryptTo: recipient });
    assert.deepEqual(up.problems, []);
    await target.close();
    const spec = `s3://${BUCKET}/${prefix}`;

    const keyFile = path.join(tempDir("age-key-"), "key.txt");
    fs.writeFileSync(keyFile, `# created: 2026-11-27\n# public key: ${recipient}\n${identity}\n`, { mode: 0o600 });
    const to = tempDir("restored-enc-");
    const r = await cli(["restore", "--from", spec, "--to", to, "--identity", keyFile, "--json"], s3Env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(fs.readFileSync(path.join(to, "secret/ticks.bin")), data);
    assert.deepEqual(treeHashes(to), treeHashes(archive.root));
    assert.ok(!r.stdout.includes(identity) && !r.stderr.includes(identity), "the secret key is never printed");

    const noKey = await cli(["restore", "--from", spec, "--to", tempDir("restored-nokey-")], s3Env());
    assert.equal(noKey.code, 3);
    assert.match(noKey.stderr, /encrypted: give the age secret key/);
    const wrong = await cli(["restore", "--from", spec, "--to", tempDir("restored-wrong-")], s3Env({ TICK_BACKUP_AGE_IDENTITY: await age.generateIdentity() }));
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /cannot decrypt the catalog/);
    // A key left in the environment does not override the one named on the command line.
    const flagWins = await cli(["restore", "--from", spec, "--to", tempDir("restored-flag-"), "--identity", keyFile], s3Env({ TICK_BACKUP_AGE_IDENTITY: await age.generateIdentity() }));
    assert.equal(flagWins.code, 0, flagWins.stderr);

    // Replace one ciphertext with another valid age file of other plaintext: objectSha256 catches it.
    const encrypter = new age.Encrypter();
    encrypter.addRecipient(recipient);
    const forged = Buffer.from(await encrypter.encrypt(new TextEncoder().encode("hello!\n")));
    const direct = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
    await direct.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/b.csv.age`, Body: forged }));
    direct.destroy();
    const dr = await cli(["drill", "--target", spec, "--percent", "100", "--json"], s3Env({ TICK_BACKUP_AGE_IDENTITY: identity }));
    assert.equal(dr.code, 1, dr.stderr);
    assert.deepEqual(json(dr).mismatches, ["b.csv"]);
    assert.match(json(dr).problems[0].message, /stored object hashes to/);
  });

  it("refuses to overwrite a different file (exit 1, file untouched); --force replaces it; an identical file is left as present", async () => {
    const archive = await archiveWith({ "a.csv": "new content\n", "b.csv": "b\n" });
    const to = tempDir("restored-existing-");
    write(to, "a.csv", "my own edits\n");
    write(to, "b.csv", "b\n");
    const r = await cli(["restore", "--from", archive.root, "--to", to, "--json"]);
    assert.equal(r.code, 1);
    const report = json(r);
    assert.deepEqual(report.refused, ["a.csv"]);
    assert.equal(report.counts.present, 1);
    assert.equal(fs.readFileSync(path.join(to, "a.csv"), "utf8"), "my own edits\n");
    const forced = await cli(["restore", "--from", archive.root, "--to", to, "--force", "--json"]);
    assert.equal(forced.code, 0, forced.stdout);
    assert.equal(fs.readFileSync(path.join(to, "a.csv"), "utf8"), "new content\n");
  });

  it("restores from the archive a file stored under an escaped name, and a live file only up to its recorded bytes", async () => {
    const archive = await archiveWith({ "a.csv": "a\n" });
    // As a pull to a Windows-family disk leaves it: "10:00.csv" stored as "10%3A00.csv".
    const stored = write(archive.root, "EURUSD/10%3A00.csv", "t,bid\n1,2\n");
    const live = write(archive.root, "EURUSD/today.csv", "t,bid\n1,2\n");
    const now = new Date().toISOString();
    const rec = (p: string, file: string, state: "final" | "live", extra = {}) => ({ path: p, size: fs.statSync(file).size, mtime: 1_700_000_000, sha256: sha256(file), state, firstPulledAt: now, pulledAt: now, ...extra });
    await archive.update((cat) => cat.commit(rec("EURUSD/10:00.csv", stored, "final", { storedPath: "EURUSD/10%3A00.csv" }), rec("EURUSD/today.csv", live, "live")));
    fs.appendFileSync(live, "2,3\n"); // the pull goes on appending while we restore
    const to = tempDir("restored-stored-");
    const r = await cli(["restore", "--from", archive.root, "--to", to, "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(fs.readFileSync(path.join(to, "EURUSD/10:00.csv"), "utf8"), "t,bid\n1,2\n");
    assert.equal(fs.readFileSync(path.join(to, "EURUSD/today.csv"), "utf8"), "t,bid\n1,2\n", "the recorded bytes, not what was appended since");
  });

  it("status names a state file it cannot read instead of reporting 'never'", async () => {
    const archive = await archiveWith({ "a.csv": "a\n" });
    fs.writeFileSync(path.join(archive.stateDir, "health.json"), '{"format": 1, "lastSucc');
    const r = await cli(["status", archive.root]);
    assert.equal(r.code, 3, r.stdout);
    assert.match(r.stderr, /health\.json cannot be read/);
  });

  it("--include and --since pick the files", async () => {
    const { archive } = await backedUp();
    const a = tempDir("restored-include-");
    const r = await cli(["restore", "--from", archive, "--to", a, "--include", "EURUSD/**", "--include", "*.csv", "--json"]);
    assert.equal(r.code, 0, r.stdout);
    assert.deepEqual(Object.keys(treeHashes(a)).sort(), ["EURUSD/2026-10-01.csv", "EURUSD/2026-10-15.csv", "empty.csv"]);
    const b = tempDir("restored-since-");
    // files are dated T0 + i·10 days: since T0 + 25 days keeps the 4th to 6th
    const since = new Date((T0 + 25 * DAY) * 1000).toISOString();
    const r2 = await cli(["restore", "--from", archive, "--to", b, "--since", since, "--json"]);
    assert.equal(r2.code, 0, r2.stdout);
    assert.deepEqual(Object.keys(treeHashes(b)).sort(), ["GBPUSD/2026-11-20.csv", "deep/a/b/c.csv", "empty.csv"]);
  });

  it("never writes outside --to, whatever names a target's catalog holds", async () => {
    const archive = await archiveWith({ "ok.csv": "fine\n" });
    const folder = tempDir("restore-evil-disk-");
    const target = createTarget({ kind: "directory", path: folder });
    await uploadOffsite({ archive, target, targetName: "disk" });
    const file = path.join(folder, ".tick-backup/catalog.json");
    const cat = JSON.parse(fs.readFileSync(file, "utf8"));
    const good = cat.records[0];
    cat.records.push({ ...good, path: "../escaped.csv" }, { ...good, path: "x/evil.csv", copies: { [cat.target]: { ...good.copies[cat.target], key: "../../outside.csv" } } });
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, JSON.stringify(cat));
    const parent = tempDir("restore-parent-");
    const to = path.join(parent, "into");
    const r = await cli(["restore", "--from", folder, "--to", to, "--json"]);
    assert.equal(r.code, 1);
    const report = json(r);
    assert.equal(report.counts.restored, 1);
    assert.deepEqual(report.problems.map((p: any) => p.code).sort(), ["UNSAFE_NAME", "UNSAFE_NAME"]);
    assert.deepEqual(fs.readdirSync(parent), ["into"]);
    assert.deepEqual(fs.readdirSync(to), ["ok.csv"]);
  });

  it("a target from a config file (@name) with its secrets there, never printed", async () => {
    const archive = await archiveWith({ "c.csv": "config\n" });
    const prefix = `cfg-${++prefixN}`;
    const target = s3Target(prefix);
    await uploadOffsite({ archive, target, targetName: "s3" });
    await target.close();
    const config = path.join(tempDir("restore-config-"), "tick-backup.json");
    fs.writeFileSync(config, JSON.stringify({ targets: { b2: { kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: "S3RVER" } } }), { mode: 0o600 });
    const to = tempDir("restored-config-");
    const r = await cli(["restore", "--from", "@b2", "--config", config, "--to", to]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(fs.readFileSync(path.join(to, "c.csv"), "utf8"), "config\n");
    const missing = await cli(["restore", "--from", "@nope", "--config", config, "--to", to]);
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /no target named "nope"/);
  });

  it("bad arguments exit 2 with the usage; an unreachable source exits 3", async () => {
    for (const args of [[], ["frobnicate"], ["restore", "--to", "/tmp/x"], ["restore", "--from", "x", "--to", "y", "--since", "yesterday"], ["verify", "/tmp", "--full", "--partition", "1/7"], ["verify", "/tmp", "--partition", "8/7"], ["status", "--bogus"]]) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: tick-backup/);
    }
    const r = await cli(["restore", "--from", "s3://tick-offsite/none", "--to", tempDir("restored-off-")], { TICK_BACKUP_S3_ENDPOINT: "http://127.0.0.1:9", TICK_BACKUP_S3_ACCESS_KEY_ID: "k", TICK_BACKUP_S3_SECRET_ACCESS_KEY: "s", TICK_BACKUP_S3_PATH_STYLE: "1" });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /offline|NO_CATALOG|ECONNREFUSED/);
    const noArchive = await cli(["status", tempDir("not-an-archive-")]);
    assert.equal(noArchive.code, 3);
    assert.match(noArchive.stderr, /not an archive/);
  });

  it("verify --partition and --full, stats and plan", async () => {
    const { archive } = await backedUp();
    const full = await cli(["verify", archive, "--full", "--json"]);
    assert.equal(full.code, 0, full.stderr);
    assert.equal(json(full).counts.ok, 6);
    const part = json(await cli(["verify", archive, "--partition", "2/3", "--json"]));
    assert.deepEqual(part.partition, { n: 2, t: 3 });
    const rotten = path.join(archive, "EURUSD/2026-10-15.csv");
    const bytes = fs.readFileSync(rotten);
    bytes[3] ^= 0x20;
    fs.chmodSync(rotten, 0o644);
    fs.writeFileSync(rotten, bytes);
    const bad = await cli(["verify", archive, "--full"]);
    assert.equal(bad.code, 1, bad.stdout + bad.stderr);
    assert.match(bad.stdout, /EURUSD\/2026-10-15\.csv/);
    const stats = await cli(["stats", archive, "--json"]);
    assert.equal(stats.code, 0, stats.stderr);
    assert.equal(json(stats).files, 6);
    const table = await cli(["stats", archive]);
    assert.match(table.stdout, /days until full/);
    const plan = await cli(["plan", archive]);
    assert.equal(plan.code, 0);
    assert.match(plan.stdout, /^# Backup plan: /);
    assert.match(plan.stdout, /Offsite .*\(s3/);
    assert.match(plan.stdout, /Offsite .*\(directory/);
  });
});
