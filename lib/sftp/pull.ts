import { setMaxListeners } from "node:events";
import type { Archive } from "../archive/archive";
import type { Problem } from "../report";
import type { Catalog, FileRecord } from "../archive/catalog";
import type { FsProfile } from "../archive/fs-probe";
import { BackupError, isRetryable, messageOf } from "../errors";
import { appendHistory } from "../archive/history";
import { describeServer, type ServerConfig } from "./connect";
import { listTree } from "./list";
import { planPull, type PlanItem, type PlanOptions } from "./plan";
import { SessionPool } from "./session-pool";
import { withRetry, type RetryPolicy } from "../retry";
import { Throttle } from "./throttle";
import { writeManifests } from "../verify/manifest";
import { pullGrown, pullNew, pullRewritten, runDirs, type TransferContext, type TransferResult } from "./transfer";

export interface PullOptions extends PlanOptions {
  server: ServerConfig;
  archive: Archive;
  remoteDir: string;
  /** files in flight at once (default 8) */
  concurrency?: number;
  bwLimitKBps?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PullProgress) => void;
  retry?: Partial<RetryPolicy>;
  /** no answer for this long counts as a stalled connection (default 30 s) */
  stallSeconds?: number;
}

export interface PullProgress {
  phase: "connecting" | "listing" | "pulling";
  filesDone: number;
  filesTotal: number;
  bytes: number;
  bytesTotal: number;
  elapsedMs: number;
}

export interface PulledFile {
  path: string;
  kind: "new" | "grown" | "rewritten";
  size: number;
  bytes: number;
  sha256: string;
  state: "live" | "final";
  /** where the archive stores it, when the disk cannot hold the remote name */
  storedPath?: string;
}

export type { Problem } from "../report";

/** The pull node's `msg.payload`: what a run did, in plain JSON. */
export interface PullReport {
  kind: "pull";
  archive: string;
  server: string;
  remoteDir: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  counts: {
    listed: number;
    new: number;
    grown: number;
    unchanged: number;
    settled: number;
    touched: number;
    rewritten: number;
    gone: number;
    tooOld: number;
    excluded: number;
    refused: number;
    notRegular: number;
    /** larger than the archive's filesystem can hold in one file (FAT32: 4 GiB): not downloaded */
    tooLarge: number;
    failed: number;
  };
  /** bytes that crossed the network for file content */
  bytes: number;
  files: PulledFile[];
  rewritten: Array<{ path: string; keptAs: string; oldSha256: string; newSha256: string; wasFinal: boolean }>;
  problems: Problem[];
}

/**
 * One pull run: connect, list, plan, transfer, record. Holds the archive lock throughout, so a
 * second process never sees a half-updated catalog. Per-file failures become problems in the
 * report and the other files go on; a failure to connect or list fails the run.
 */
export async function pull(options: PullOptions): Promise<PullReport> {
  const started = Date.now();
  const report = emptyReport(options, started);
  return options.archive.withLock(async (catalog, lockLost) => {
    const signal = options.signal ? AbortSignal.any([options.signal, lockLost]) : lockLost;
    setMaxListeners(0, signal); // every transfer in flight listens for the stop
    const policy: RetryPolicy = { retries: options.retry?.retries ?? 3, baseDelayMs: options.retry?.baseDelayMs ?? 1000 };
    const pool = new SessionPool(options.server, signal);
    const progress: PullProgress = { phase: "connecting", filesDone: 0, filesTotal: 0, bytes: 0, bytesTotal: 0, elapsedMs: 0 };
    const tell = () => options.onProgress?.({ ...progress, elapsedMs: Date.now() - started });
    try {
      tell();
      const listing = await withRetry(policy, signal, async () => {
        const session = await pool.get();
        progress.phase = "listing";
        tell();
        // A connection lost mid-listing may leave a READDIR unanswered for ever: fail it with the session.
        return session.whileOpen(listTree(session.sftp, options.remoteDir, { signal }));
      });
      const plan = planPull(listing, catalog, options);
      report.counts.listed = listing.files.length;
      report.counts.refused = listing.refused.length;
      report.counts.notRegular = listing.skipped.length;
      report.counts.tooOld = plan.tooOld;
      report.counts.excluded = plan.excluded;
      report.counts.gone = plan.gone.length;
      for (const r of listing.refused) report.problems.push({ code: "UNSAFE_NAME", message: r.reason, path: r.path });
      await recordBookkeeping(catalog, plan.items, plan.gone, new Date().toISOString(), report);

      const names = options.archive.names(catalog);
      const work = refuseTooLarge(
        plan.items.filter((i) => i.kind !== "unchanged" && i.kind !== "settled"),
        options.archive.profile,
        report,
      );
      // Stored names in a fixed order, so that of two names the disk cannot tell apart the same one keeps its name every time.
      for (const item of [...work].sort((a, b) => (a.remote.rel < b.remote.rel ? -1 : 1))) names.storedFor(item.remote.rel);
      progress.phase = "pulling";
      progress.filesTotal = work.length;
      progress.bytesTotal = work.reduce((sum, i) => sum + i.remote.size - (i.kind === "grown" ? i.record!.size : 0), 0);
      tell();
      const throttle = Throttle.fromKBps(options.bwLimitKBps);
      let lastTell = 0;
      const onBytes = (n: number) => {
        progress.bytes += n;
        if (Date.now() - lastTell > 250) (lastTell = Date.now()), tell();
      };

      const dirs = runDirs();
      const concurrency = Math.max(1, options.concurrency ?? 8);
      // Requests in flight per file: plenty for one big file, bounded memory when many run at once.
      const depth = Math.min(32, Math.max(8, Math.floor(128 / concurrency)));
      await forEachLimit(work, concurrency, async (item) => {
        try {
          const result = await withRetry(policy, signal, async () => {
            const session = await pool.get();
            const ctx: TransferContext = {
              session,
              archive: options.archive,
              remoteDir: options.remoteDir,
              now: () => new Date(),
              dirs,
              names,
              read: { depth, signal, throttle, onBytes, stallMs: (options.stallSeconds ?? 30) * 1000, cork: session.cork, uncork: session.uncork },
            };
            try {
              return await transferOne(ctx, item);
            } catch (err) {
              if (isRetryable(err)) pool.discard(session);
              throw err;
            }
          });
          await catalog.commit(keepCopies(catalog, result.record));
          addResult(report, result);
        } catch (err) {
          if (signal.aborted) throw err;
          report.counts.failed++;
          report.problems.push({ code: (err as BackupError).code ?? "ERROR", message: messageOf(err), path: item.remote.rel });
        }
        progress.filesDone++;
        tell();
      });
    } finally {
      await pool.close();
      // The SHA256SUMS files follow the catalog (also after a run that stopped half-way), so `sha256sum -c` in the archive proves this pull too.
      await writeManifests(options.archive.stateDir, catalog.all()).catch((err) => {
        report.problems.push({ code: "MANIFEST_FAILED", message: `SHA256SUMS not rewritten: ${messageOf(err)}` });
      });
      report.finishedAt = new Date().toISOString();
      report.durationMs = Date.now() - started;
      // Even a run that stopped half-way added what it committed; the volume statistics need it.
      await recordHistory(options.archive, catalog, report);
    }
    return report;
  });
}

/** One line of run history; a failure to write it is a problem of the run, never a failed run. */
async function recordHistory(archive: Archive, catalog: Catalog, report: PullReport): Promise<void> {
  const changedFiles = report.counts.grown + report.counts.rewritten;
  if (report.bytes === 0 && report.counts.new === 0 && changedFiles === 0 && report.counts.listed === 0) return;
  let totalFiles = 0;
  let totalBytes = 0;
  for (const r of catalog.all()) {
    totalFiles++;
    totalBytes += r.size + (r.versions ?? []).reduce((sum, v) => sum + v.size, 0);
  }
  const entry = { at: report.finishedAt, kind: "pull" as const, durationMs: report.durationMs, bytes: report.bytes, newFiles: report.counts.new, changedFiles, totalFiles, totalBytes };
  await appendHistory(archive.stateDir, entry).catch((err) => {
    report.problems.push({ code: "HISTORY_FAILED", message: `could not add the run to the archive's history: ${messageOf(err)}` });
  });
}

async function transferOne(ctx: TransferContext, item: PlanItem): Promise<TransferResult> {
  switch (item.kind) {
    case "new":
      return pullNew(ctx, item.remote, item.live);
    case "grown":
      return (await pullGrown(ctx, item.remote, item.record!, item.live)) ?? pullRewritten(ctx, item.remote, item.record!, item.live);
    default:
      return pullRewritten(ctx, item.remote, item.record!, item.live);
  }
}

/** Files that need no bytes still change state: settled ones become final, returning ones lose goneSince, gone ones gain it. */
async function recordBookkeeping(catalog: Catalog, items: PlanItem[], gone: FileRecord[], at: string, report: PullReport): Promise<void> {
  const changes: FileRecord[] = [];
  for (const item of items) {
    if (item.kind === "unchanged") report.counts.unchanged++;
    if (item.kind === "settled") report.counts.settled++;
    if (item.kind === "settled" || (item.kind === "unchanged" && item.record!.goneSince)) {
      const { goneSince: _back, ...rest } = item.record!;
      changes.push({ ...rest, state: item.kind === "settled" ? "final" : item.record!.state });
    }
  }
  for (const record of gone) if (!record.goneSince) changes.push({ ...record, goneSince: at });
  if (changes.length > 0) await catalog.commit(...changes.map((r) => keepCopies(catalog, r)));
}

/**
 * Files the archive's filesystem cannot hold (a FAT32 disk takes at most 4 GiB − 1 byte in one file)
 * are refused before a byte is fetched: a download would fail at the limit after hours, or worse,
 * on the last byte. Each becomes a problem that says what to do.
 */
function refuseTooLarge(work: PlanItem[], profile: FsProfile, report: PullReport): PlanItem[] {
  const max = profile.maxFileSize;
  if (max === undefined) return work;
  return work.filter((item) => {
    if (item.remote.size <= max) return true;
    report.counts.tooLarge++;
    report.problems.push({
      code: "FILE_TOO_LARGE",
      path: item.remote.rel,
      message:
        `${item.remote.rel} is ${gib(item.remote.size)}; the archive's disk (FAT32) holds at most ${gib(max + 1)} − 1 byte in one file, so it was not downloaded. ` +
        "Reformat the archive disk as exFAT or NTFS (or use another disk), or exclude the file.",
    });
    return false;
  });
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(bytes % 2 ** 30 === 0 ? 0 : 1)} GiB`;
}

function addResult(report: PullReport, result: TransferResult): void {
  report.bytes += result.bytes;
  if (result.kind === "touched") {
    report.counts.touched++;
    return;
  }
  report.counts[result.kind]++;
  const r = result.record;
  report.files.push({ path: r.path, kind: result.kind, size: r.size, bytes: result.bytes, sha256: r.sha256, state: r.state, ...(r.storedPath ? { storedPath: r.storedPath } : {}) });
  if (result.rewritten) {
    report.rewritten.push({ path: r.path, keptAs: result.rewritten.keptAs, oldSha256: result.rewritten.oldSha256, newSha256: r.sha256, wasFinal: result.rewritten.wasFinal });
    report.problems.push({
      code: "REWRITTEN",
      path: r.path,
      message: `${r.path} changed on the server after it was archived${result.rewritten.wasFinal ? " (it was final)" : ""}; the old content is kept as ${result.rewritten.keptAs}`,
    });
  }
}

function emptyReport(options: PullOptions, started: number): PullReport {
  return blankPullReport(options.archive.identity.name, describeServer(options.server), options.remoteDir, started);
}

/** A report with nothing done yet: the shape every answer of the pull node has, busy answers included. */
export function blankPullReport(archive: string, server: string, remoteDir: string, started = Date.now()): PullReport {
  const at = new Date(started).toISOString();
  return {
    kind: "pull",
    archive,
    server,
    remoteDir,
    startedAt: at,
    finishedAt: at,
    durationMs: 0,
    counts: { listed: 0, new: 0, grown: 0, unchanged: 0, settled: 0, touched: 0, rewritten: 0, gone: 0, tooOld: 0, excluded: 0, refused: 0, notRegular: 0, tooLarge: 0, failed: 0 },
    bytes: 0,
    files: [],
    rewritten: [],
    problems: [],
  };
}

/** Runs `fn` over `items` with at most `limit` at once; the first thrown error stops the rest. */
async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/**
 * An offsite upload records copies while a pull runs (its short updates join the pull's lock); a
 * record the pull built from what it read earlier keeps the copies recorded since.
 */
function keepCopies(catalog: Catalog, record: FileRecord): FileRecord {
  const copies = catalog.get(record.path)?.copies;
  return copies ? { ...record, copies } : record;
}
