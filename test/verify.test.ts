/**
 * Scrub and full verification of a local archive, checked against the real `sha256sum -c`.
 * (The origin check and re-fetching from a server are in verify-origin.test.ts, against sshd.)
 */
import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { Archive } from "../lib/archive/archive";
import type { FileRecord } from "../lib/archive/catalog";
import { scrub, type ScrubOptions } from "../lib/verify/scrub";
import { LIVE_MANIFEST, MANIFEST, manifestLine, writeManifests } from "../lib/verify/manifest";
import { partitionOf } from "../lib/verify/schedule";
import { sha256, tempDir, write } from "./support/tree";
import { seededRandom } from "./support/tcp-fault-proxy"; // seeded: the trials are the same on every run and machine

/** An archive whose catalog holds `files` (written to disk and recorded as pulled). */
async function archiveOf(files: Record<string, Buffer | string>, live: string[] = []): Promise<{ dir: string; archive: Archive }> {
  const dir = tempDir("tick-verify-");
  const archive = await Archive.open(dir, { name: "test" });
  const at = new Date().toISOString();
  const records: FileRecord[] = Object.entries(files).map(([rel, content]) => {
    const file = write(dir, rel, content);
    return { path: rel, size: fs.statSync(file).size, mtime: 1_700_000_000, sha256: sha256(file), state: live.includes(rel) ? "live" : "final", firstPulledAt: at, pulledAt: at };
  });
  await archive.withLock(async (cat) => {
    await cat.commit(...records);
    await writeManifests(archive.stateDir, cat.all());
  });
  return { dir, archive };
}

const run = (archive: Archive, o: Partial<ScrubOptions> = {}) => scrub({ archive, mode: "full", settleMs: 0, ...o });

/** The real `sha256sum -c` over the archive's manifest, run in the archive folder as a person would. */
function sha256sumCheck(dir: string, manifest = MANIFEST): { status: number; failed: string[]; out: string } {
  const r = spawnSync("sha256sum", ["-c", path.join(".tick-backup", manifest)], { cwd: dir, encoding: "utf8" });
  const out = `${r.stdout}${r.stderr}`;
  const failed = r.stdout.split("\n").filter((l) => /: FAILED/.test(l)).map((l) => l.replace(/: FAILED.*$/, ""));
  return { status: r.status ?? -1, failed: failed.sort(), out };
}

function tree(n: number, rnd: () => number): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0; i < n; i++) out[`SYM${i % 5}/2026-11-${String(10 + i).padStart(2, "0")}.csv`] = randomBytes(1 + Math.floor(rnd() * 200_000));
  out["with space/ünïcødé €.csv"] = randomBytes(5000);
  out["empty.csv"] = Buffer.alloc(0);
  return out;
}

describe("verify: scrub and full read-back", function () {
  this.timeout(120_000);
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it("a clean archive: every file ok, catalog marked, sha256sum -c passes, live files listed apart", async () => {
    const files = tree(12, seededRandom(1));
    const { dir, archive } = await archiveOf(files, ["SYM0/2026-11-10.csv"]);
    dirs.push(dir);
    await archive.update((cat) => cat.patch("SYM1/2026-11-11.csv", { verifyResult: "suspect" }).then(() => undefined));
    const report = await run(archive);
    assert.deepEqual(report.problems, []);
    assert.equal(report.kind, "verify");
    assert.equal(report.mode, "full");
    assert.equal(report.counts.checked, 14);
    assert.equal(report.counts.ok, 14);
    assert.deepEqual([report.counts.mismatched, report.counts.missing, report.counts.extra], [0, 0, 0]);
    assert.equal(report.bytes, Object.values(files).reduce((s, b) => s + b.length, 0));
    assert.deepEqual(report.coverage, { files: 14, totalFiles: 14, percent: 100 });
    assert.equal(report.lastFullProofAt, report.startedAt);
    const catalog = await archive.readCatalog();
    for (const r of catalog.all()) {
      assert.equal(r.verifyResult, r.path === "SYM1/2026-11-11.csv" ? "suspect" : "ok", `${r.path} (a suspect file stays suspect: the server's doubt is not settled by a read-back)`);
      assert.ok(r.verifiedAt && r.verifiedAt >= report.startedAt, r.path);
    }
    const check = sha256sumCheck(dir);
    assert.equal(check.status, 0, check.out);
    assert.equal(check.out.split("\n").filter((l) => l.endsWith(": OK")).length, 13, "the 13 final files are in SHA256SUMS");
    const live = fs.readFileSync(path.join(archive.stateDir, LIVE_MANIFEST), "utf8");
    assert.equal(live, manifestLine(sha256(path.join(dir, "SYM0/2026-11-10.csv")), "SYM0/2026-11-10.csv"));
    assert.doesNotMatch(fs.readFileSync(path.join(archive.stateDir, MANIFEST), "utf8"), /\.tick-backup|SYM0\/2026-11-10/, "no state files and no live file in SHA256SUMS");
  });

  it("50 seeded trials: one random bit flipped in one random file is found every time; sha256sum -c fails on exactly that file", async () => {
    const rnd = seededRandom(20261127);
    const files = tree(10, rnd);
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const candidates = Object.keys(files).filter((rel) => files[rel].length > 0);
    for (let trial = 0; trial < 50; trial++) {
      const rel = candidates[Math.floor(rnd() * candidates.length)];
      const file = path.join(dir, rel);
      const data = fs.readFileSync(file);
      const bit = Math.floor(rnd() * data.length * 8);
      data[bit >> 3] ^= 1 << (bit & 7);
      fs.writeFileSync(file, data);

      const check = sha256sumCheck(dir);
      assert.equal(check.status, 1, `trial ${trial}: sha256sum -c fails`);
      assert.deepEqual(check.failed, [rel], `trial ${trial}: sha256sum -c fails on exactly ${rel}`);

      const report = await run(archive);
      assert.deepEqual(report.mismatches, [rel], `trial ${trial}: bit ${bit} of ${rel}`);
      assert.equal(report.counts.ok, Object.keys(files).length - 1);
      assert.equal(report.quarantined.length, 1);
      assert.ok(fs.readFileSync(path.join(dir, report.quarantined[0])).equals(data), "the bad copy is kept in quarantine, unchanged");
      assert.ok(!fs.existsSync(file), "the bad copy is no longer at its path");
      assert.equal((await archive.readCatalog()).get(rel)?.verifyResult, "mismatch");
      assert.equal(report.problems.find((p) => p.path === rel)?.code, "ARCHIVE_DAMAGED");

      // Put the good bytes back for the next trial.
      fs.writeFileSync(file, files[rel]);
    }
    const clean = await run(archive);
    assert.equal(clean.counts.ok, Object.keys(files).length);
    assert.equal(sha256sumCheck(dir).status, 0);
  });

  it("truncation, deletion and an extra file: each reported by path; sha256sum -c fails on exactly the two damaged files", async () => {
    const files = tree(8, seededRandom(7));
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const [truncated, deleted] = ["SYM1/2026-11-11.csv", "SYM2/2026-11-12.csv"];
    fs.truncateSync(path.join(dir, truncated), files[truncated].length - 100);
    fs.rmSync(path.join(dir, deleted));
    write(dir, "SYM3/stray.csv", "copied in by hand\n");
    const check = sha256sumCheck(dir);
    assert.equal(check.status, 1);
    assert.deepEqual(check.failed, [deleted, truncated].sort(), check.out);

    const report = await run(archive);
    assert.deepEqual(report.mismatches, [truncated]);
    assert.deepEqual(report.missing, [deleted]);
    assert.deepEqual(report.extra, ["SYM3/stray.csv"]);
    assert.deepEqual([report.counts.mismatched, report.counts.missing, report.counts.extra, report.counts.ok], [1, 1, 1, 8]);
    assert.match(report.problems.find((p) => p.path === truncated)!.message, /truncated/);
    assert.equal(report.problems.find((p) => p.code === "EXTRA_FILE")?.path, "SYM3/stray.csv");
    assert.ok(fs.existsSync(path.join(dir, "SYM3/stray.csv")), "an extra file is reported, not touched");
    const cat = await archive.readCatalog();
    assert.equal(cat.get(deleted)?.verifyResult, "missing");
    assert.equal(cat.get(truncated)?.verifyResult, "mismatch");
    assert.equal(report.lastFullProofAt, undefined, "a run that found damage proves nothing");
  });

  it("much damage at once (500 of 2,000 files gone): every one reported and marked, in one catalog update", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 2000; i++) files[`S${i % 20}/f${i}.csv`] = `tick ${i}\n`;
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const gone = Object.keys(files).filter((_, i) => i % 4 === 0);
    for (const rel of gone) fs.rmSync(path.join(dir, rel));
    const report = await run(archive);
    assert.equal(report.counts.missing, 500);
    assert.deepEqual([...report.missing].sort(), [...gone].sort());
    assert.equal(report.counts.ok, 1500);
    const cat = await archive.readCatalog();
    assert.equal(cat.all().filter((r) => r.verifyResult === "missing").length, 500);
    assert.equal(cat.all().filter((r) => r.verifyResult === "ok").length, 1500);
    const check = sha256sumCheck(dir);
    assert.equal(check.status, 1);
    assert.equal(check.out.split("\n").filter((l) => /FAILED open or read/.test(l)).length, 500);
  });

  it("a damaged file names the offsite copies of its current content only, never a copy of older bytes", async () => {
    const { dir, archive } = await archiveOf({ "a.csv": "t,bid\n1,2\n", "b.csv": "t,bid\n3,4\n" });
    const copy = (sha: string) => ({ at: new Date().toISOString(), sha256: sha, key: "k", size: 10 });
    await archive.update((cat) =>
      Promise.all([
        cat.patch("a.csv", (r) => ({ ...r, copies: { "s3:current": copy(r.sha256), "directory:old": copy("0".repeat(64)) } })),
        cat.patch("b.csv", (r) => ({ ...r, copies: { "directory:old": copy("0".repeat(64)) } })),
      ]).then(() => undefined),
    );
    fs.writeFileSync(path.join(dir, "a.csv"), "t,bid\n1,9\n");
    fs.writeFileSync(path.join(dir, "b.csv"), "t,bid\n3,9\n");
    const report = await run(archive);
    const message = (p: string) => report.problems.find((x) => x.path === p && x.code === "ARCHIVE_DAMAGED")?.message ?? "";
    assert.match(message("a.csv"), /restore it from offsite copy s3:current$/);
    assert.match(message("b.csv"), /no other copy is recorded$/, "a copy of other bytes is no copy of this content");
  });

  it("rotating partitions: t scrubs cover every file exactly once, then the rotation starts over", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`S${i % 7}/f${i}.csv`] = `tick ${i}\n`;
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const t = 5;
    const seen = new Map<string, number>();
    const started: string[] = [];
    for (let k = 0; k < t; k++) {
      const at = new Date(Date.UTC(2026, 10, 1 + k));
      const report = await run(archive, { mode: "scrub", partitions: t, now: () => at });
      assert.deepEqual(report.partition, { n: k + 1, t });
      assert.equal(report.counts.mismatched + report.counts.missing, 0);
      started.push(report.startedAt);
      const cat = await archive.readCatalog();
      const read = cat.all().filter((r) => r.verifiedAt === at.toISOString()).map((r) => r.path);
      assert.equal(read.length, report.counts.checked, `run ${k + 1}: the files marked are the files read`);
      for (const rel of read) {
        seen.set(rel, (seen.get(rel) ?? 0) + 1);
        assert.equal(partitionOf(rel, t), k);
      }
      assert.equal(report.coverage.totalFiles, 300);
      if (k < t - 1) assert.equal(report.lastFullProofAt, undefined, `after ${k + 1} of ${t} partitions nothing is fully proven`);
      else assert.equal(report.lastFullProofAt, started[0], "once all t partitions are read, the archive is proven as of the first");
    }
    assert.equal(seen.size, 300, "every file was read");
    assert.ok([...seen.values()].every((c) => c === 1), "no file was read twice");
    const again = await run(archive, { mode: "scrub", partitions: t });
    assert.deepEqual(again.partition, { n: 1, t }, "the rotation starts over");
    const state = JSON.parse(fs.readFileSync(path.join(archive.stateDir, "verify.json"), "utf8"));
    assert.equal(state.next, 1);
    assert.equal(state.partitions, t);
  });

  it("a file a pull appends to, or rewrites while the scrub runs, is not a mismatch", async () => {
    const files = tree(4, seededRandom(3));
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const appending = "SYM0/2026-11-10.csv";
    const rewritten = "SYM1/2026-11-11.csv";
    fs.appendFileSync(path.join(dir, appending), "more ticks\n"); // bytes past the catalog's: an append in flight
    // A pull lands just after the scrub has read the catalog: new content, committed record.
    const original = archive.readCatalog.bind(archive);
    let first = true;
    archive.readCatalog = async () => {
      const cat = await original();
      if (first) {
        first = false;
        const fresh = randomBytes(4000);
        write(dir, rewritten, fresh);
        const old = cat.get(rewritten)!;
        await archive.update((c) => c.patch(rewritten, { ...old, size: fresh.length, sha256: sha256(path.join(dir, rewritten)) }).then(() => undefined));
      }
      return cat;
    };
    const report = await run(archive);
    assert.deepEqual(report.mismatches, [], JSON.stringify(report.problems));
    assert.deepEqual(report.quarantined, []);
    assert.equal(report.counts.skipped, 1, "the file with bytes past the catalog's is skipped");
    assert.equal(report.counts.ok, Object.keys(files).length - 1);
    assert.equal((await original()).get(rewritten)?.verifyResult, "ok", "judged against the record as it is now");
  });

  it("bad input: partitions that are not a whole number fail at once and change nothing", async () => {
    const { dir, archive } = await archiveOf({ "a.csv": "x\n" });
    dirs.push(dir);
    const before = fs.readdirSync(archive.stateDir).sort();
    for (const bad of [0, -3, 2.5, Number.NaN]) {
      await assert.rejects(run(archive, { mode: "scrub", partitions: bad }), /partitions must be a whole number/);
    }
    assert.deepEqual(fs.readdirSync(archive.stateDir).sort(), before, "no state written");
    assert.equal((await archive.readCatalog()).get("a.csv")?.verifiedAt, undefined);
  });

  it("an unreadable file is a mismatch, not a crash; the run goes on", async function () {
    if (process.getuid?.() === 0) {
      // root reads any file: make it unreadable another way (a directory where the file was).
      const { dir, archive } = await archiveOf({ "a.csv": "x\n", "b.csv": "y\n" });
      dirs.push(dir);
      fs.rmSync(path.join(dir, "a.csv"));
      fs.mkdirSync(path.join(dir, "a.csv"));
      const report = await run(archive);
      assert.deepEqual(report.mismatches, ["a.csv"]);
      assert.equal(report.counts.ok, 1);
      return;
    }
    const { dir, archive } = await archiveOf({ "a.csv": "x\n", "b.csv": "y\n" });
    dirs.push(dir);
    fs.chmodSync(path.join(dir, "a.csv"), 0);
    const report = await run(archive);
    assert.deepEqual(report.mismatches, ["a.csv"]);
    assert.match(report.problems[0].message, /cannot be read \(EACCES\)/);
    assert.equal(report.counts.ok, 1);
  });

  it("keeps the event loop responsive while hashing (sanity bound; the real figure is in the bench)", async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 3; i++) files[`big/${i}.bin`] = randomBytes(48 * 1024 * 1024);
    for (let i = 0; i < 2000; i++) files[`small/${i % 20}/${i}.csv`] = randomBytes(4096);
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const report = await run(archive);
    h.disable();
    assert.equal(report.counts.ok, 2003);
    const p99 = h.percentile(99) / 1e6;
    assert.ok(p99 < 500, `p99 event-loop delay ${p99.toFixed(1)} ms while hashing ${report.bytes} bytes`);
  });

  it("a stop (redeploy) ends the run at once with Aborted, and leaves the catalog and the rotation untouched", async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 4; i++) files[`big/${i}.bin`] = randomBytes(64 * 1024 * 1024);
    const { dir, archive } = await archiveOf(files);
    dirs.push(dir);
    const stop = new AbortController();
    const started = Date.now();
    const running = run(archive, { mode: "scrub", partitions: 1, signal: stop.signal, onProgress: (p) => p.phase === "hashing" && stop.abort() });
    await assert.rejects(running, (err: Error & { code?: string }) => err.code === "ABORTED");
    assert.ok(Date.now() - started < 10_000);
    assert.equal(fs.existsSync(path.join(archive.stateDir, "verify.json")), false, "the rotation did not advance");
    assert.ok((await archive.readCatalog()).all().every((r) => r.verifiedAt === undefined), "nothing marked verified");
    assert.deepEqual(fs.readdirSync(archive.partialDir), []);
  });

  it("a manifest that was lost or edited is written again from the catalog by the next run", async () => {
    const { dir, archive } = await archiveOf({ "a.csv": "a\n", "b/c.csv": "c\n" });
    dirs.push(dir);
    const manifest = path.join(archive.stateDir, MANIFEST);
    const good = fs.readFileSync(manifest, "utf8");
    fs.writeFileSync(manifest, good.replace(/^[0-9a-f]{8}/, "00000000"));
    fs.rmSync(path.join(archive.stateDir, LIVE_MANIFEST));
    await run(archive);
    assert.equal(fs.readFileSync(manifest, "utf8"), good);
    assert.equal(fs.readFileSync(path.join(archive.stateDir, LIVE_MANIFEST), "utf8"), "");
    assert.equal(sha256sumCheck(dir).status, 0);
  });

  it("manifest lines are what GNU sha256sum writes, escapes included", () => {
    const dir = tempDir("tick-manifest-");
    dirs.push(dir);
    write(dir, "plain.csv", "a\n");
    const odd = "back\\slash.csv";
    write(dir, odd, "b\n");
    const ours = manifestLine(sha256(path.join(dir, "plain.csv")), "plain.csv") + manifestLine(sha256(path.join(dir, odd)), odd);
    const theirs = execFileSync("sha256sum", ["plain.csv", odd], { cwd: dir, encoding: "utf8" });
    assert.equal(ours, theirs);
  });
});
