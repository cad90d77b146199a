import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { Aborted, BackupError } from "../errors";
import type { Verdict } from "./judge";
import type { Checked, Selection } from "./select";

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

/** What a scrub's worker found to read, before it reads it. */
export interface Planned {
  files: number;
  bytes: number;
  /** records in the catalog, in any partition */
  totalFiles: number;
  /** files on disk in the partition that the catalog does not know */
  extra: string[];
  batches: number;
}

/** A scrub's batch, judged in the worker: the records found intact, and the others with what was found. */
export interface Judged {
  seq: number;
  /** bytes hashed and not yet told through progress messages */
  bytes: number;
  good: Checked[];
  others: Array<{ record: Checked; verdict: Verdict }>;
}

export type WorkerReply =
  | { seq: number; results: HashResult[] }
  | Judged
  | { seq: number; progress: number }
  | { planned: Planned }
  | { error: { code: string; message: string } };

/** A batch ends at this many files or bytes: small enough for steady progress and short messages, big enough to keep the worker busy. */
const BATCH_FILES = 512;
const BATCH_BYTES = 256 * 1024 * 1024;

export function batchesOf(jobs: Array<HashJob & { expect: number }>): HashJob[][] {
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
  return batches;
}

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
  const worker = new HashWorker();
  try {
    await worker.hash(root, jobs, options);
  } finally {
    await worker.close();
  }
}

/**
 * One worker thread for a whole run: it picks the files, then hashes them, so a run starts one
 * thread (and loads its modules) once. After a failed or aborted step it takes no more work.
 */
export class HashWorker {
  private readonly worker = new Worker(path.join(__dirname, "hash-worker.js"));
  private seq = 0;
  private broken = false;

  /** Runs one exchange with the worker: `start` sends, `onMessage` answers; listeners live as long as the step. */
  private step<T, R>(signal: AbortSignal | undefined, start: () => void, onMessage: (reply: R, settle: { resolve: (v: T) => void; fail: (err: unknown) => void }) => void): Promise<T> {
    if (this.broken) return Promise.reject(new Error("hash worker is no longer usable after a failed step"));
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const cleanup = () => {
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        this.worker.off("error", fail).off("exit", onExit).off("message", message);
      };
      const fail = (err: unknown) => {
        if (settled) return;
        this.broken = true;
        cleanup();
        reject(err);
      };
      const onAbort = () => fail(new Aborted());
      const onExit = (code: number) => fail(new Error(`hash worker exited (code ${code})`));
      const settle = {
        resolve: (v: T) => {
          if (settled) return;
          cleanup();
          resolve(v);
        },
        fail,
      };
      const message = (reply: R) => {
        if (!settled) onMessage(reply, settle);
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.worker.on("error", fail).on("exit", onExit).on("message", message);
      start();
    });
  }

  /**
   * A scrub's read: the worker loads the catalog, picks the partition's records and walks the tree
   * (onPlanned), then hashes and judges them; each batch comes back as its intact records and the
   * others with their verdicts (onResults), so a clean file costs the main thread one small object.
   */
  plan(
    selection: Selection,
    options: { signal?: AbortSignal; onPlanned: (p: Planned) => void; onBytes?: (n: number) => void; onResults: (good: Checked[], others: Judged["others"]) => Promise<void> | void },
  ): Promise<void> {
    let batches = -1;
    let done = 0;
    let chain = Promise.resolve();
    return this.step<void, WorkerReply>(
      options.signal,
      () => this.worker.postMessage({ plan: selection }),
      (reply, { resolve, fail }) => {
        if ("error" in reply) return fail(new BackupError(reply.error.code, reply.error.message));
        if ("planned" in reply) {
          batches = reply.planned.batches;
          options.onPlanned(reply.planned);
          if (batches === 0) resolve();
          return;
        }
        if ("progress" in reply) return options.onBytes?.(reply.progress);
        if (!("good" in reply)) return fail(new Error("hash worker answered out of turn"));
        options.onBytes?.(reply.bytes);
        // Batches are handed over in order; the worker goes on hashing meanwhile.
        chain = chain.then(() => (this.broken ? undefined : options.onResults(reply.good, reply.others)));
        chain.then(() => {
          if (++done === batches) resolve();
        }, fail);
      },
    );
  }

  async hash(
    root: string,
    jobs: Array<HashJob & { expect: number }>,
    options: { signal?: AbortSignal; onBytes?: (n: number) => void; onResults: (results: HashResult[]) => Promise<void> | void },
  ): Promise<void> {
    if (jobs.length === 0) return;
    const batches = batchesOf(jobs);
    const first = this.seq;
    this.seq += batches.length;
    let sent = 0;
    let done = 0;
    let chain = Promise.resolve();
    const send = () => {
      if (sent < batches.length) this.worker.postMessage({ seq: first + sent, root, jobs: batches[sent++] });
    };
    await this.step<void, WorkerReply>(
      options.signal,
      () => {
        send();
        send();
      },
      (reply: WorkerReply, { resolve, fail }) => {
        if ("error" in reply || "planned" in reply || "good" in reply) return fail(new Error("hash worker answered out of turn"));
        if ("progress" in reply) return options.onBytes?.(reply.progress);
        send();
        for (const r of reply.results) options.onBytes?.((r.hashed ?? 0) - (r.reported ?? 0));
        // Results are handed over in order; the worker goes on hashing meanwhile.
        chain = chain.then(() => (this.broken ? undefined : options.onResults(reply.results)));
        chain.then(() => {
          if (++done === batches.length) resolve();
        }, fail);
      },
    );
  }

  async close(): Promise<void> {
    this.broken = true;
    await this.worker.terminate();
  }
}
