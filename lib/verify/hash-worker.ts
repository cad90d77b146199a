/**
 * Worker thread of the Hasher: reads and hashes files with synchronous I/O, which is the cheapest
 * way per file (no promise or callback per read) and cannot freeze Node-RED, since it runs here
 * and not on the main event loop.
 */
import { parentPort } from "node:worker_threads";
import * as fs from "node:fs";
import { createHash } from "node:crypto";
import { localPath } from "../archive/paths";
import { messageOf, type BackupError } from "../errors";
import { selectFiles, type Selection } from "./select";
import type { HashJob, HashResult, WorkerReply } from "./hasher";

const CHUNK = 1024 * 1024;
const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
/** big files report progress every this many bytes, so the status keeps moving */
const PROGRESS_EVERY = 64 * 1024 * 1024;

/** Reads into `b` at `pos` on the thread pool, so the next chunk loads while this thread hashes the last. */
function readAsync(fd: number, b: Buffer, length: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, b, 0, length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

async function hashOne(root: string, job: HashJob, progress: (n: number) => void): Promise<HashResult> {
  let fd: number;
  try {
    fd = fs.openSync(localPath(root, job.rel), "r");
  } catch (err) {
    return { id: job.id, size: -1, sha256: "", error: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  try {
    const size = fs.fstatSync(fd).size;
    const want = job.length === undefined ? size : Math.min(size, job.length);
    const hash = createHash("sha256");
    if (want <= CHUNK) {
      // Small files: one synchronous read, no thread hop (the per-file cost is what counts here).
      const n = want > 0 ? fs.readSync(fd, bufs[0], 0, want, 0) : 0;
      hash.update(bufs[0].subarray(0, n));
      return { id: job.id, size, hashed: n, sha256: hash.digest("hex"), reported: 0 };
    }
    let pos = 0;
    let unreported = 0;
    let which = 0;
    let pending = readAsync(fd, bufs[0], Math.min(CHUNK, want), 0);
    while (pos < want) {
      const n = await pending;
      if (n === 0) break;
      const current = bufs[which];
      which ^= 1;
      const nextPos = pos + n;
      if (nextPos < want) pending = readAsync(fd, bufs[which], Math.min(CHUNK, want - nextPos), nextPos);
      hash.update(current.subarray(0, n));
      pos = nextPos;
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

// Batches are handled one after another (the main thread queues the next while this one runs).
let queue = Promise.resolve();
parentPort!.on("message", (batch: { seq: number; root: string; jobs: HashJob[] } | { select: Selection }) => {
  if ("select" in batch) {
    selectFiles(batch.select).then(
      (selected) => parentPort!.postMessage({ selected }),
      (err) => parentPort!.postMessage({ error: { code: (err as BackupError).code ?? "ERROR", message: messageOf(err) } }),
    );
    return;
  }
  queue = queue.then(async () => {
    const results: HashResult[] = [];
    for (const job of batch.jobs) results.push(await hashOne(batch.root, job, (n) => parentPort!.postMessage({ seq: batch.seq, progress: n } satisfies WorkerReply)));
    parentPort!.postMessage({ seq: batch.seq, results } satisfies WorkerReply);
  });
});
