/**
 * The upload run over a real archive: what it uploads and records, what it leaves alone, and what
 * happens when the target breaks (a 500 for one part, a dropped connection, stored bytes that
 * differ, a run killed half-way, an unplugged disk).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import sinon from "sinon";
import type { Archive } from "../lib/archive/archive";
import { createTarget, decryptBuffer, uploadOffsite, type OffsiteOptions } from "../lib/offsite";
import { loadAge } from "../lib/offsite/encrypt";
import type { Target } from "../lib/offsite/target";
import { add, archiveWith, tempDir } from "./support/offsite-env";
import { ACCESS_KEY, BUCKET, SECRET_KEY, isDataPut, partNumber, startS3, type S3Server } from "./support/s3";

const MiB = 1024 * 1024;
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function run(archive: Archive, target: Target, extra: Partial<OffsiteOptions> = {}) {
  return uploadOffsite({ archive, target, targetName: "test-target", retry: { attempts: 3, baseDelayMs: 20 }, ...extra });
}

describe("offsite upload", function () {
  this.timeout(60_000);
  let s3: S3Server;
  let prefixN = 0;
  const s3Target = (extra: Record<string, unknown> = {}) =>
    createTarget({ kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix: `run-${++prefixN}`, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, partSize: 5 * MiB, ...extra });

  before(async () => {
    s3 = await startS3();
  });
  after(() => s3.stop());
  afterEach(() => {
    s3.fault = undefined;
  });

  describe("to a directory (the monthly offline disk)", () => {
    it("copies every final file, records each verified copy, and sends the catalog and SHA256SUMS along", async () => {
      const archive = await archiveWith({ "EURUSD/2026-11-25.csv": "a,b\n1,2\n", "GBPUSD/2026-11-25.csv.gz": randomBytes(300_000), "empty.csv": "" });
      fs.writeFileSync(path.join(archive.root, "SHA256SUMS"), "abc  EURUSD/2026-11-25.csv\n");
      const disk = tempDir("offsite-disk-");
      const target = createTarget({ kind: "directory", path: disk });
      const report = await run(archive, target);
      assert.deepEqual(report.counts, { uploaded: 3, pending: 0, failed: 0, skipped: 0, live: 0 });
      assert.equal(report.target.state, "online");
      assert.equal(report.target.daysSinceComplete, 0);
      assert.deepEqual(report.problems, []);
      const catalog = await archive.readCatalog();
      for (const r of catalog.all()) {
        const copy = r.copies?.[target.id()];
        assert.ok(copy, `copy of ${r.path} recorded`);
        assert.equal(copy.sha256, r.sha256);
        assert.equal(sha(fs.readFileSync(path.join(disk, copy.key))), r.sha256);
      }
      const snapshot = JSON.parse(fs.readFileSync(path.join(disk, ".tick-backup", "catalog.json"), "utf8"));
      assert.equal(snapshot.records.length, 3);
      assert.ok(snapshot.records.every((r: { copies?: object }) => r.copies), "the snapshot on the target carries the copies");
      assert.equal(fs.readFileSync(path.join(disk, ".tick-backup", "SHA256SUMS"), "utf8"), "abc  EURUSD/2026-11-25.csv\n");

      const again = await run(archive, target);
      assert.deepEqual(again.counts, { uploaded: 0, pending: 0, failed: 0, skipped: 0, live: 0 }, "a rerun uploads nothing");
    });

    it("reports an unplugged disk as offline with the last time it was brought up to date, and creates no folder", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      const disk = tempDir("offsite-disk-");
      const first = await run(archive, createTarget({ kind: "directory", path: disk }));
      assert.equal(first.counts.uploaded, 1);
      // The state says the last visit was 40 days ago.
      const stateFile = path.join(archive.stateDir, "offsite", "test-target.json");
      const state = JSON.parse(fs.readFileSync(stateFile, "utf8"));
      const old = new Date(Date.now() - 40 * 86_400_000).toISOString();
      fs.writeFileSync(stateFile, JSON.stringify({ ...state, lastConnectedAt: old, lastCompleteAt: old }));
      await add(archive, { "b.csv": "2\n" });
      fs.rmSync(disk, { recursive: true });
      const report = await run(archive, createTarget({ kind: "directory", path: disk }));
      assert.equal(report.target.state, "offline");
      assert.match(report.target.reason ?? "", /not found \(disk not plugged in/);
      assert.equal(report.target.daysSinceComplete, 40);
      assert.equal(report.target.daysSinceConnected, 40);
      assert.equal(report.counts.pending, 1, "b.csv waits for the disk");
      assert.deepEqual(report.problems, [], "an unplugged disk is not a failure");
      assert.equal(fs.existsSync(disk), false, "the missing root was not created");
    });

    it("sends growing files to the live area only when asked, and never records them as copies", async () => {
      const archive = await archiveWith({ "done.csv": "x\n" });
      await add(archive, { "today.csv": "1\n2\n" }, "live");
      const disk = tempDir("offsite-disk-");
      const target = createTarget({ kind: "directory", path: disk });
      const without = await run(archive, target);
      assert.equal(without.counts.live, 0);
      assert.equal(fs.existsSync(path.join(disk, ".tick-backup", "live")), false);
      fs.appendFileSync(path.join(archive.root, "today.csv"), "3\n"); // grows beyond what the catalog knows
      const withLive = await run(archive, target, { includeLive: true });
      assert.equal(withLive.counts.live, 1);
      assert.equal(fs.readFileSync(path.join(disk, ".tick-backup", "live", "today.csv"), "utf8"), "1\n2\n", "as far as the catalog vouches for it");
      assert.equal((await archive.readCatalog()).get("today.csv")?.copies, undefined);
      await add(archive, { "today.csv": "1\n2\n3\n4\n" }, "live");
      await run(archive, target, { includeLive: true });
      assert.equal(fs.readFileSync(path.join(disk, ".tick-backup", "live", "today.csv"), "utf8"), "1\n2\n3\n4\n", "the live copy is refreshed");
    });

    it("keeps to the bandwidth limit", async () => {
      const archive = await archiveWith({ "a.bin": randomBytes(300_000), "b.bin": randomBytes(300_000) });
      const target = createTarget({ kind: "directory", path: tempDir("offsite-disk-") });
      const report = await run(archive, target, { bwLimitKBps: 200, concurrency: 2 });
      assert.equal(report.counts.uploaded, 2);
      // 600 kB at 200 KiB/s with one second of burst: at least two seconds, whatever the disk.
      assert.ok(report.durationMs >= 1800, `took ${report.durationMs} ms`);
    });

    it("keeps the copy of an earlier content and puts a rewritten file beside it", async () => {
      const archive = await archiveWith({ "EURUSD/day.csv": "old\n" });
      const disk = tempDir("offsite-disk-");
      const target = createTarget({ kind: "directory", path: disk });
      await run(archive, target);
      await add(archive, { "EURUSD/day.csv": "new content\n" });
      const report = await run(archive, target);
      assert.equal(report.counts.uploaded, 1);
      assert.equal(fs.readFileSync(path.join(disk, "EURUSD", "day.csv"), "utf8"), "old\n", "the recorded copy is untouched");
      const copy = (await archive.readCatalog()).get("EURUSD/day.csv")!.copies![target.id()];
      assert.equal(copy.key, `EURUSD/day.csv.${sha("new content\n").slice(0, 12)}`);
      assert.equal(fs.readFileSync(path.join(disk, copy.key), "utf8"), "new content\n");
      assert.equal(copy.earlier?.[0].key, "EURUSD/day.csv");
      assert.equal(copy.earlier?.[0].sha256, sha("old\n"));
    });

    it("adopts a verified object an interrupted run placed but never recorded", async () => {
      const archive = await archiveWith({ "a.csv": "same\n" });
      const disk = tempDir("offsite-disk-");
      fs.writeFileSync(path.join(disk, "a.csv"), "same\n");
      const target = createTarget({ kind: "directory", path: disk });
      const report = await run(archive, target);
      assert.equal(report.counts.uploaded, 1);
      assert.equal((await archive.readCatalog()).get("a.csv")!.copies![target.id()].key, "a.csv");
    });

    it("a catalog write that fails once is tried again with the next batch: every proven copy is recorded", async () => {
      const files: Record<string, string> = {};
      for (let i = 0; i < 450; i++) files[`2026/11/${String(i).padStart(3, "0")}.csv`] = `${i},1.1\n`;
      const archive = await archiveWith(files);
      const target = createTarget({ kind: "directory", path: tempDir("offsite-disk-") });
      const real = archive.update.bind(archive);
      let failed = 0;
      // Fault injection: the first batch's write fails as on a full disk.
      const update = sinon.stub(archive, "update").callsFake(((fn: Parameters<Archive["update"]>[0], o?: Parameters<Archive["update"]>[1]) => {
        if (failed++ === 0) return Promise.reject(Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" }));
        return real(fn, o);
      }) as Archive["update"]);
      try {
        const report = await run(archive, target, { concurrency: 8 });
        assert.deepEqual(report.problems, []);
        assert.equal(report.counts.uploaded, 450);
      } finally {
        update.restore();
      }
      assert.ok(failed >= 3, `the failed write was followed by others (${failed} writes)`);
      const unrecorded = (await archive.readCatalog()).all().filter((r) => !r.copies?.[target.id()]).map((r) => r.path);
      assert.deepEqual(unrecorded, [], "every copy is in the catalog");
    });

    it("a catalog that cannot be written at all fails the run clearly; the next run records the copies it finds", async () => {
      const archive = await archiveWith({ "a.csv": "1\n", "b.csv": "2\n" });
      const disk = tempDir("offsite-disk-");
      const target = createTarget({ kind: "directory", path: disk });
      const update = sinon.stub(archive, "update").rejects(Object.assign(new Error("EROFS: read-only file system, open"), { code: "EROFS" }));
      try {
        await assert.rejects(run(archive, target), /EROFS/);
      } finally {
        update.restore();
      }
      assert.equal(fs.readFileSync(path.join(disk, "a.csv"), "utf8"), "1\n", "the copy itself is on the disk");
      assert.equal((await archive.readCatalog()).get("a.csv")!.copies, undefined, "but not recorded");
      const again = await run(archive, target);
      assert.deepEqual(again.problems, []);
      const catalog = await archive.readCatalog();
      assert.deepEqual(["a.csv", "b.csv"].map((p) => catalog.get(p)!.copies?.[target.id()]?.key), ["a.csv", "b.csv"], "recorded under their own names");
      assert.deepEqual(fs.readdirSync(disk).filter((n) => n !== ".tick-backup").sort(), ["a.csv", "b.csv"], "no second copy beside them");
    });

    it("says so when its state file is unreadable, uploads all the same, and saves a good one", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      const target = createTarget({ kind: "directory", path: tempDir("offsite-disk-") });
      const stateFile = path.join(archive.stateDir, "offsite", "test-target.json");
      fs.mkdirSync(path.dirname(stateFile), { recursive: true });
      fs.writeFileSync(stateFile, '{"id": "dir-1", "lastComp'); // cut off mid-write by an old bug or a bad disk
      const report = await run(archive, target);
      assert.deepEqual(report.problems.map((p) => p.code), ["OFFSITE_STATE_UNREADABLE"]);
      assert.match(report.problems[0].message, /test-target\.json could not be read/);
      assert.equal(report.counts.uploaded, 1);
      assert.equal(JSON.parse(fs.readFileSync(stateFile, "utf8")).lastCompleteAt, report.finishedAt, "a good state is saved");
      assert.deepEqual((await run(archive, target)).problems, [], "the next run reads it");
    });

    it("a damaged identity file on the disk stops the run with a clear error and is left as it is, never replaced", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      const disk = tempDir("offsite-disk-");
      const first = await run(archive, createTarget({ kind: "directory", path: disk }));
      assert.equal(first.counts.uploaded, 1);
      const marker = path.join(disk, ".tick-backup", "target.json");
      fs.writeFileSync(marker, '{"id": "4f1c'); // a bad sector, a half-copied disk
      await assert.rejects(run(archive, createTarget({ kind: "directory", path: disk })), /target\.json is damaged .*repair it or move it away/);
      assert.equal(fs.readFileSync(marker, "utf8"), '{"id": "4f1c', "left for a person to repair");
    });

    it("does not record a copy when the archived file no longer matches its catalog hash", async () => {
      const archive = await archiveWith({ "rot.csv": "good bytes\n" });
      fs.writeFileSync(path.join(archive.root, "rot.csv"), "g00d bytes\n"); // same size, different bytes
      const target = createTarget({ kind: "directory", path: tempDir("offsite-disk-") });
      const report = await run(archive, target);
      assert.equal(report.counts.failed, 1);
      assert.equal(report.problems[0].code, "ARCHIVE_MISMATCH");
      assert.equal((await archive.readCatalog()).get("rot.csv")!.copies, undefined);
    });
  });

  describe("to S3 (s3rver behind a fault-injecting proxy)", () => {
    it("uploads big files in parts and retries a part the server answers with 500", async () => {
      const big = randomBytes(12 * MiB);
      const archive = await archiveWith({ "big.bin": big, "small.csv": "1\n" });
      const target = s3Target();
      let failed = 0;
      s3.requests.length = 0;
      s3.fault = (r) => (isDataPut(r) && partNumber(r) === 2 && failed++ === 0 ? "500" : undefined);
      const report = await run(archive, target);
      assert.deepEqual(report.problems, []);
      assert.equal(report.counts.uploaded, 2);
      assert.equal(failed, 2, "part 2 was sent again after the 500");
      assert.equal(s3.requests.filter((r) => isDataPut(r) && partNumber(r) !== undefined).length, 4, "three parts, one of them twice");
      assert.ok((await readAll(await target.get("big.bin"))).equals(big));
    });

    it("sends a file of one part in one PUT, with no HEAD and no multipart, and no body waits for '100 Continue'", async () => {
      const files = { "a.csv": "1\n", "b.csv": randomBytes(64 * 1024), "two-mib.bin": randomBytes(3 * MiB), "big.bin": randomBytes(11 * MiB) };
      const archive = await archiveWith(files);
      const target = s3Target();
      s3.requests.length = 0;
      const report = await run(archive, target);
      assert.deepEqual(report.problems, []);
      assert.equal(report.counts.uploaded, 4);
      const about = (key: string) => s3.requests.filter((r) => decodeURIComponent(r.url.split("?")[0]).endsWith(`/${key}`));
      for (const key of ["a.csv", "b.csv", "two-mib.bin"]) {
        assert.deepEqual(about(key).map((r) => [r.method, partNumber(r), r.url.includes("uploads")]), [["PUT", undefined, false]], key);
      }
      assert.equal(about("big.bin").filter((r) => isDataPut(r) && partNumber(r) !== undefined).length, 3, "11 MiB in 5 MiB parts");
      assert.deepEqual(s3.requests.filter((r) => r.headers.expect !== undefined).map((r) => `${r.method} ${r.url}`), []);
      for (const [key, data] of Object.entries(files)) assert.equal(await target.hash(key), sha(data));
    });

    it("survives a dropped connection in the middle of an upload", async () => {
      const data = randomBytes(6 * MiB);
      const archive = await archiveWith({ "drop.bin": data });
      const target = s3Target();
      let drops = 0;
      s3.fault = (r) => (isDataPut(r) && drops++ === 0 ? "drop" : undefined);
      const report = await run(archive, target);
      assert.deepEqual(report.problems, []);
      assert.equal(drops >= 2, true);
      assert.equal(await target.hash("drop.bin"), sha(data));
    });

    it("detects stored bytes that differ from those sent, and records no copy", async () => {
      const archive = await archiveWith({ "one.csv": randomBytes(200_000), "multi.bin": randomBytes(11 * MiB) });
      const target = s3Target({ compatibleChecksums: true });
      s3.fault = (r) => (isDataPut(r) ? "corrupt" : undefined);
      const report = await run(archive, target);
      assert.equal(report.counts.failed, 2);
      assert.ok(report.problems.every((p) => p.code === "OFFSITE_MISMATCH"), JSON.stringify(report.problems));
      assert.ok((await archive.readCatalog()).all().every((r) => !r.copies));
      // Once the server behaves, the next run replaces its own unrecorded objects and proves them.
      s3.fault = undefined;
      const rerun = await run(archive, target);
      assert.deepEqual(rerun.problems, []);
      assert.equal(rerun.counts.uploaded, 2);
    });

    it("completes and verifies on the next run after a run is killed half-way", async () => {
      const files: Record<string, Buffer> = {};
      for (let i = 0; i < 6; i++) files[`f${i}.bin`] = randomBytes(3 * MiB);
      const archive = await archiveWith(files);
      const target = s3Target();
      const stop = new AbortController();
      const killed = run(archive, target, { concurrency: 2, bwLimitKBps: 8 * 1024, signal: stop.signal, onProgress: (p) => p.bytes > 4 * MiB && stop.abort() });
      await assert.rejects(killed, (err: Error & { code?: string }) => err.code === "ABORTED");
      const between = (await archive.readCatalog()).all().filter((r) => r.copies).length;
      assert.ok(between < 6, `only part of the files were recorded (${between})`);
      const report = await run(archive, target);
      assert.deepEqual(report.problems, []);
      assert.equal(report.counts.uploaded, 6 - between);
      for (const [name, data] of Object.entries(files)) assert.equal(await target.hash(name), sha(data));
    });

    it("completes and verifies on the next run after the uploading process is killed", async () => {
      const files: Record<string, Buffer> = {};
      for (let i = 0; i < 5; i++) files[`k${i}.bin`] = randomBytes(7 * MiB);
      const archive = await archiveWith(files);
      const prefix = `run-${++prefixN}`;
      const config = { kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, partSize: 5 * MiB };
      const script = `
        const { Archive } = require(${JSON.stringify(path.join(__dirname, "../lib/archive/archive"))});
        const { createTarget, uploadOffsite } = require(${JSON.stringify(path.join(__dirname, "../lib/offsite"))});
        (async () => {
          const archive = await Archive.open(${JSON.stringify(archive.root)});
          await uploadOffsite({ archive, target: createTarget(${JSON.stringify(config)}), targetName: "test-target", concurrency: 2, bwLimitKBps: 4096 });
        })();`;
      const child = spawn(process.execPath, ["-e", script], { stdio: "ignore" });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      // Killed while parts are on their way: after the first object is complete, before the last.
      s3.requests.length = 0;
      for (let i = 0; i < 400 && s3.requests.filter((r) => r.method === "POST" && r.url.includes("uploadId")).length < 1; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(s3.requests.some((r) => r.method === "POST" && r.url.includes("uploadId")), "killed after the first object was complete");
      child.kill("SIGKILL");
      await exited;
      const between = (await archive.readCatalog()).all().filter((r) => r.copies).length;
      assert.ok(between < 5, `the run was killed before it finished (${between} recorded)`);
      const target = createTarget(config as Parameters<typeof createTarget>[0]);
      const report = await run(archive, target);
      assert.deepEqual(report.problems, []);
      assert.equal(report.counts.pending, 0);
      for (const [name, data] of Object.entries(files)) assert.equal(await target.hash(name), sha(data));
      const catalog = await archive.readCatalog();
      assert.ok(catalog.all().every((r) => r.copies?.[target.id()]?.sha256 === r.sha256));
    });

    it("asks for Object Lock on finished files only", async () => {
      const archive = await archiveWith({ "locked.csv": "1\n" });
      await add(archive, { "today.csv": "2\n" }, "live");
      s3.requests.length = 0;
      const report = await run(archive, s3Target({ objectLock: { mode: "COMPLIANCE", days: 30 } }), { includeLive: true });
      assert.deepEqual(report.problems, []);
      const puts = s3.requests.filter((r) => isDataPut(r));
      const locked = puts.filter((r) => r.headers["x-amz-object-lock-mode"] === "COMPLIANCE");
      assert.equal(locked.length, 1);
      assert.match(locked[0].url, /locked\.csv/);
      const until = Date.parse(String(locked[0].headers["x-amz-object-lock-retain-until-date"]));
      assert.ok(Math.abs(until - (Date.now() + 30 * 86_400_000)) < 3_600_000);
      const unlocked = puts.filter((r) => r.headers["x-amz-object-lock-mode"] === undefined).map((r) => decodeURIComponent(r.url));
      assert.equal(unlocked.length, 2, unlocked.join(", "));
      assert.ok(unlocked.some((u) => u.includes(".tick-backup/live/today.csv")));
      assert.ok(unlocked.some((u) => u.includes(".tick-backup/catalog.json")));
    });

    it("encrypts with age: the object decrypts with the secret key to the very bytes, and both hashes are kept", async () => {
      const age = await loadAge();
      const identity: string = await age.generateIdentity();
      const recipient: string = await age.identityToRecipient(identity);
      const data = randomBytes(7 * MiB + 123);
      const archive = await archiveWith({ "secret/ticks.bin": data, "empty.csv": "" });
      const target = s3Target();
      const report = await run(archive, target, { encryptTo: recipient });
      assert.deepEqual(report.problems, []);
      assert.equal(report.encrypted, true);
      const copy = (await archive.readCatalog()).get("secret/ticks.bin")!.copies![target.id()];
      assert.equal(copy.key, "secret/ticks.bin.age");
      const stored = await readAll(await target.get(copy.key));
      assert.ok(!stored.includes(data.subarray(0, 64)), "the object is ciphertext");
      assert.equal(copy.objectSha256, sha(stored));
      assert.equal(copy.sha256, sha(data));
      assert.ok((await decryptBuffer(stored, identity)).equals(data));
      const catalogObject = await readAll(await target.get(".tick-backup/catalog.json.age"));
      assert.equal(JSON.parse((await decryptBuffer(catalogObject, identity)).toString()).records.length, 2);
      const empty = await readAll(await target.get("empty.csv.age"));
      assert.equal((await decryptBuffer(empty, identity)).length, 0);
    });

    it("refuses a recipient that is not an age public key, before anything is sent", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      s3.requests.length = 0;
      await assert.rejects(run(archive, s3Target(), { encryptTo: "AGE-SECRET-KEY-1QQQ" }), /not an age recipient/);
      assert.equal(s3.requests.length, 0);
    });

    it("reports an unreachable S3 endpoint as offline, with a problem", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      const target = createTarget({ kind: "s3", endpoint: "http://127.0.0.1:9", bucket: BUCKET, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, maxAttempts: 1 });
      const report = await run(archive, target);
      assert.equal(report.target.state, "offline");
      assert.equal(report.counts.pending, 1);
      assert.equal(report.problems[0].code, "OFFSITE_OFFLINE");
    });

    it("fails clearly on a bucket that does not exist", async () => {
      const archive = await archiveWith({ "a.csv": "1\n" });
      const target = createTarget({ kind: "s3", endpoint: s3.endpoint, bucket: "no-such-bucket", forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
      await assert.rejects(run(archive, target), /not found .*check the bucket name/);
    });
  });
});
