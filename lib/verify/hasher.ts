import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { Aborted, BackupError } from "../errors";
import type { Selected, Selection } from "./select";

export interface HashJob {
  id: number;
  /** archive-relative path (resolved and checked against the root in the worker, off the main thread) */
  rel: string;
  /** hash only the first `length` bytes (a file a pull may be appending to); all of it when absent */
  length?: number;
}

export interface HashResult {
  id: number;
  /** the file's size on disk, -1 when it could not be opened or read */
  size: number;
  /** bytes that went into sha256 */
  hashed?: number;
  sha256: string;
  /** errno code (ENOENT, EACCES, EIO …) when the file could not be read */
  error?: string;
  /** bytes already told through progress messages */
  reported?: number;
}

export type WorkerReply = { seq: number; results: HashResult[] } | { seq: number; progress: number };

/** A batch ends at this many files or bytes: small enough for steady progress, big enough to keep the worker busy. */
const BATCH_FILES = 512;
const BATCH_BYTES = 256 * 1024 * 1024;

/**
 * Hashes many files in a worker thread, a batch at a time with the next batch already queued, so
 * the worker never waits on the event loop and the event loop never waits on a hash.
 */
export async function hashFiles(
  root: string,
  jobs: Array<HashJob & { expect: number }>,
  options: { signal?: AbortSignal; onBytes?: (n: number) => void; onResults: (results: HashResult[]) => Promise<void> | void },
): Promise<void> {
  if (jobs.length === 0) return;
  const batches: HashJob[][] = [];
  let current: HashJob[] = [];
  let bytes = 0;
  for (const job of jobs) {
    current.push({ id: job.id, rel: job.rel, length: job.length });
    bytes += job.expect;
    if (current.length >= BATCH_FILES || bytes >= BATCH_BYTES) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
  }
  if (current.length > 0) batches.push(current);

  const worker = new Worker(path.join(__dirname, "hash-worker.js"));
  try {
    await new Promise<void>((resolve, reject) => {
      let sent = 0;
      let done = 0;
      let failed = false;
      let chain = Promise.resolve();
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        reject(err);
      };
      const send = () => {
        if (sent < batches.length) worker.postMessage({ seq: sent, root, jobs: batches[sent++] });
      };
      const onAbort = () => fail(new Aborted());
      options.signal?.addEventListener("abort", onAbort, { once: true });
      worker.on("error", fail);
      worker.on("exit", (code) => fail(new Error(`hash worker exited (code ${code})`)));
      worker.on("message", (reply: WorkerReply) => {
        if (failed) return;
        if ("progress" in reply) return options.onBytes?.(reply.progress);
        send();
        for (const r of reply.results) options.onBytes?.((r.hashed ?? 0) - (r.reported ?? 0));
        // Results are handed over in order; the worker goes on hashing meanwhile.
        chain = chain.then(() => (failed ? undefined : options.onResults(reply.results)));
        chain.then(() => {
          if (++done === batches.length) {
            options.signal?.removeEventListener("abort", onAbort);
            failed = true; // settled: the exit event that follows is ours
            resolve();
          }
        }, fail);
      });
      if (options.signal?.aborted) return onAbort();
      send();
      send();
    });
  } finally {
    await worker.terminate();
  }
}

/** Picks a run's files (catalog load, partition, tree walk for extra files) in a worker thread. */
export async function selectInWorker(selection: Selection, signal?: AbortSignal): Promise<Selected> {
  const worker = new Worker(path.join(__dirname, "hash-worker.js"));
  try {
    return await new Promise<Selected>((resolve, reject) => {
      const onAbort = () => reject(new Aborted());
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      worker.on("error", reject);
      worker.on("exit", (code) => reject(new Error(`worker exited (code ${code})`)));
      worker.on("message", (reply: { selected: Selected } | { error: { code: string; message: string } }) => {
        signal?.removeEventListener("abort", onAbort);
        if ("error" in reply) reject(new BackupError(reply.error.code, reply.error.message));
        else resolve(reply.selected);
      });
      worker.postMessage({ select: selection });
    });
  } finally {
    await worker.terminate();
  }
}
