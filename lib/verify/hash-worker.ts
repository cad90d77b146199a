/**
 * Worker thread of the Hasher: reads and hashes files with synchronous I/O, which is the cheapest
 * way per file (no promise or callback per read) and cannot freeze Node-RED, since it runs here
 * and not on the main event loop.
 */
import { parentPort } from "node:worker_threads";
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { localPaths } from "../archive/paths";
import { messageOf, type BackupError } from "../errors";
import { selectFiles, type Selection } from "./select";
import { batchesOf, type HashJob, type HashResult, type Judged, type WorkerReply } from "./hasher";
import { judge } from "./judge";

/**
 * 64 KiB reads: the bytes just copied from the page cache are still in the CPU's cache when SHA-256
 * reads them. Measured on a 256 MiB file, reading and hashing in 64 KiB steps on one thread beat
 * 1 MiB steps, synchronous or double-buffered through the thread pool (the second thread is not
 * free on a busy 2-core machine), by a third.
 */
const CHUNK = 64 * 1024;
const buf = Buffer.allocUnsafe(CHUNK);
/** big files report progress every this many bytes, so the status keeps moving */
const PROGRESS_EVERY = 64 * 1024 * 1024;

function hashOne(where: (rel: string) => string, job: HashJob, progress: (n: number) => void): HashResult {
  let fd: number;
  try {
    fd = fs.openSync(where(job.rel), "r");
  } catch (err) {
    return { id: job.id, size: -1, sha256: "", error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  try {
    const hash = createHash("sha256");
    // The first read also tells a small file's size (a short read is the end), so most files need no fstat.
    let n = fs.readSync(fd, buf, 0, CHUNK, 0);
    const size = n < CHUNK ? n : fs.fstatSync(fd).size;
    const want = job.length === undefined ? size : Math.min(size, job.length);
    let pos = 0;
    let unreported = 0;
    while (n > 0 && pos < want) {
      const take = Math.min(n, want - pos);
      hash.update(buf.subarray(0, take));
      pos += take;
      unreported += take;
      if (unreported >= PROGRESS_EVERY) {
        progress(unreported);
        unreported = 0;
      }
      if (pos < want) n = fs.readSync(fd, buf, 0, Math.min(CHUNK, want - pos), pos);
    }
    return { id: job.id, size, hashed: pos, sha256: hash.digest("hex"), reported: pos - unreported };
  } catch (err) {
    return { id: job.id, size: -1, sha256: "", error: (err as NodeJS.ErrnoException).code ?? String(err) };
  } finally {
    fs.closeSync(fd);
  }
}

const post = (reply: WorkerReply) => parentPort!.postMessage(reply);

function hashBatch(seq: number, root: string, jobs: HashJob[]): HashResult[] {
  const where = localPaths(root);
  return jobs.map((job) => hashOne(where, job, (n) => post({ seq, progress: n })));
}

/**
 * A scrub's whole read here: pick the files, say how many, then hash and judge them batch by batch.
 * Only what the main thread needs crosses over: an intact file's record, or a record with its
 * verdict; the main thread never receives (or sends back) the whole selection in one message.
 */
async function plan(sel: Selection): Promise<void> {
  const { records, extra, totalFiles } = await selectFiles(sel);
  const jobs = records.map((r, id) => ({ id, rel: r.storedPath ?? r.path, length: r.size, expect: r.size }));
  const batches = batchesOf(jobs);
  post({ planned: { files: records.length, bytes: jobs.reduce((s, j) => s + j.expect, 0), totalFiles, extra, batches: batches.length } });
  batches.forEach((batch, seq) => {
    const judged: Judged = { seq, bytes: 0, good: [], others: [] };
    for (const res of hashBatch(seq, sel.root, batch)) {
      const record = records[res.id];
      const verdict = judge(record, res);
      judged.bytes += (res.hashed ?? 0) - (res.reported ?? 0);
      if (verdict.kind === "ok") judged.good.push(record);
      else judged.others.push({ record, verdict });
    }
    post(judged);
  });
}

parentPort!.on("message", (msg: { seq: number; root: string; jobs: HashJob[] } | { plan: Selection }) => {
  if ("plan" in msg) {
    plan(msg.plan).catch((err) => post({ error: { code: (err as BackupError).code ?? "ERROR", message: messageOf(err) } }));
    return;
  }
  // Batches are handled in the order they come (the main thread queues the next while this one runs).
  post({ seq: msg.seq, results: hashBatch(msg.seq, msg.root, msg.jobs) });
});
