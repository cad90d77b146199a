/**
 * Worker thread of the Hasher: reads and hashes files with synchronous I/O, which is the cheapest
 * way per file (no promise or callback per read) and cannot freeze Node-RED, since it runs here
 * and not on the main event loop.
 */
import { parentPort } from "node:worker_threads";
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import type { HashJob, HashResult, WorkerReply } from "./hasher";

const CHUNK = 4 * 1024 * 1024;
const buf = Buffer.allocUnsafe(CHUNK);
/** big files report progress every this many bytes, so the status keeps moving */
const PROGRESS_EVERY = 64 * 1024 * 1024;

function hashOne(job: HashJob, progress: (n: number) => void): HashResult {
  let fd: number;
  try {
    fd = fs.openSync(job.file, "r");
  } catch (err) {
    return { id: job.id, size: -1, sha256: "", error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  try {
    const size = fs.fstatSync(fd).size;
    const want = job.length === undefined ? size : Math.min(size, job.length);
    const hash = createHash("sha256");
    let pos = 0;
    let unreported = 0;
    while (pos < want) {
      const n = fs.readSync(fd, buf, 0, Math.min(CHUNK, want - pos), pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
      unreported += n;
      if (unreported >= PROGRESS_EVERY) {
        progress(unreported);
        unreported = 0;
      }
    }
    return { id: job.id, size, hashed: pos, sha256: hash.digest("hex"), reported: pos - unreported };
  } catch (err) {
    return { id: job.id, size: -1, sha256: "", error: (err as NodeJS.ErrnoException).code ?? String(err) };
  } finally {
    fs.closeSync(fd);
  }
}

parentPort!.on("message", (batch: { seq: number; jobs: HashJob[] }) => {
  const results = batch.jobs.map((job) => hashOne(job, (n) => parentPort!.postMessage({ seq: batch.seq, progress: n } satisfies WorkerReply)));
  parentPort!.postMessage({ seq: batch.seq, results } satisfies WorkerReply);
});
