import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Archive } from "../archive/archive";
import type { Problem } from "../report";
import { currentCopies, type FileRecord } from "../archive/catalog";
import { writeFileAtomic } from "../archive/fsutil";
import { Aborted, BackupError, messageOf } from "../errors";
import { Throttle } from "../sftp/throttle";
import { checkRecipient, putSource } from "./encrypt";
import { bufferStream, HashingStream, paced } from "./streams";
import { uploadManifests } from "./manifests";
import { CopyRecorder } from "./recorder";
import { ObjectExists, TARGET_STATE, type OffsiteCopy, type Target, type TargetKind } from "./target";
import { withRetry } from "../retry";

export interface OffsiteOptions {
  archive: Archive;
  target: Target;
  /** the target's name, for the report */
  targetName: string;
  /** names this target's bookkeeping in the archive (last connected / brought up to date); default targetName */
  stateKey?: string;
  concurrency?: number;
  bwLimitKBps?: number;
  /** also upload growing files to `.tick-backup/live/` (refreshed, never recorded as copies) */
  includeLive?: boolean;
  /** age recipient: objects are encrypted on this machine before they leave it */
  encryptTo?: string;
  signal?: AbortSignal;
  onProgress?: (p: OffsiteProgress) => void;
  retry?: { attempts: number; baseDelayMs: number };
}

export interface OffsiteProgress {
  phase: "connecting" | "uploading" | "manifests";
  filesDone: number;
  filesTotal: number;
  bytes: number;
  elapsedMs: number;
}

export interface OffsiteTargetState {
  name: string;
  kind: TargetKind;
  id?: string;
  state: "online" | "offline";
  reason?: string;
  lastConnectedAt?: string;
  lastCompleteAt?: string;
  daysSinceConnected?: number;
  daysSinceComplete?: number;
}

export interface OffsiteReport {
  kind: "offsite";
  archive: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  target: OffsiteTargetState;
  encrypted: boolean;
  counts: { uploaded: number; pending: number; failed: number; skipped: number; live: number };
  bytes: number;
  problems: Problem[];
}

const DAY = 86_400_000;

/**
 * Uploads every final file the catalog does not yet record on the target, several at once, and
 * records each copy only after the target proved it holds the same bytes. Reads the catalog
 * without the lock and commits each copy in a short update, so a pull may run meanwhile.
 */
export async function uploadOffsite(options: OffsiteOptions): Promise<OffsiteReport> {
  const started = Date.now();
  const { archive, target } = options;
  const recipient = options.encryptTo ? checkRecipient(options.encryptTo) : undefined;
  const stateFile = path.join(archive.stateDir, "offsite", `${safeName(options.stateKey ?? options.targetName)}.json`);
  // No state yet is normal; a state file that cannot be read is said, and the run starts afresh.
  let stateProblem: string | undefined;
  const saved: Partial<OffsiteTargetState> = await fsp
    .readFile(stateFile, "utf8")
    .then((t) => JSON.parse(t))
    .catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") stateProblem = `${stateFile} could not be read (${messageOf(err)}); the last visit and last complete copy are unknown until this run saves them again`;
      return {};
    });
  const report: OffsiteReport = {
    kind: "offsite",
    archive: archive.identity.name,
    startedAt: new Date(started).toISOString(),
    finishedAt: "",
    durationMs: 0,
    target: { name: options.targetName, kind: target.kind, id: saved.id, state: "offline", lastConnectedAt: saved.lastConnectedAt, lastCompleteAt: saved.lastCompleteAt },
    encrypted: recipient !== undefined,
    counts: { uploaded: 0, pending: 0, failed: 0, skipped: 0, live: 0 },
    bytes: 0,
    problems: stateProblem ? [{ code: "OFFSITE_STATE_UNREADABLE", message: stateProblem }] : [],
  };
  const progress = (phase: OffsiteProgress["phase"], filesDone: number, filesTotal: number) =>
    options.onProgress?.({ phase, filesDone, filesTotal, bytes: report.bytes, elapsedMs: Date.now() - started });
  const finish = async (): Promise<OffsiteReport> => {
    const catalog = await archive.readCatalog();
    const id = report.target.id;
    report.counts.pending = catalog.all().filter((r) => needsCopy(r, id)).length;
    const now = Date.now();
    if (report.target.lastConnectedAt) report.target.daysSinceConnected = Math.floor((now - Date.parse(report.target.lastConnectedAt)) / DAY);
    if (report.target.lastCompleteAt) report.target.daysSinceComplete = Math.floor((now - Date.parse(report.target.lastCompleteAt)) / DAY);
    report.finishedAt = new Date(now).toISOString();
    report.durationMs = now - started;
    return report;
  };

  progress("connecting", 0, 0);
  const probe = await target.probe(options.signal);
  if (probe.state === "offline") {
    report.target.reason = probe.reason;
    // An unplugged disk is expected between its monthly visits; an unreachable cloud is a problem.
    if (target.kind !== "directory") report.problems.push({ code: "OFFSITE_OFFLINE", message: probe.reason ?? `${target.description} unreachable` });
    return finish();
  }
  const id = target.id();
  Object.assign(report.target, { state: "online", id, lastConnectedAt: new Date().toISOString() });
  await saveState(stateFile, report.target);

  await target.scan?.(options.signal);
  const catalog = await archive.readCatalog();
  const finals = catalog.all().filter((r) => needsCopy(r, id));
  const live = options.includeLive ? catalog.all().filter((r) => r.state === "live" && !r.goneSince) : [];
  const throttle = Throttle.fromKBps(options.bwLimitKBps);
  const retry = options.retry ?? { attempts: 4, baseDelayMs: 2000 };
  const jobs = [...finals.map((r) => ({ record: r, live: false })), ...live.map((r) => ({ record: r, live: true }))];
  let done = 0;
  let lastTick = 0;
  const onBytes = (n: number) => {
    report.bytes += n;
    if (Date.now() - lastTick > 250) {
      lastTick = Date.now();
      progress("uploading", done, jobs.length);
    }
  };
  const recorder = new CopyRecorder(archive, id);
  const ctx: FileContext = { archive, recorder, target, id, recipient, signal: options.signal, onBytes, pace: throttle ? () => paced(throttle) : undefined };

  let next = 0;
  const worker = async () => {
    while (next < jobs.length && !options.signal?.aborted) {
      const job = jobs[next++];
      try {
        const outcome = await withRetry({ retries: retry.attempts - 1, baseDelayMs: retry.baseDelayMs }, options.signal, () => (job.live ? uploadLive(ctx, job.record) : uploadFinal(ctx, job.record)));
        if (outcome === "skipped") report.counts.skipped++;
        else if (job.live) report.counts.live++;
        else report.counts.uploaded++;
      } catch (err) {
        if (options.signal?.aborted) break;
        report.counts.failed++;
        report.problems.push({ code: err instanceof BackupError ? err.code : "OFFSITE_FAILED", message: messageOf(err), path: job.record.path });
      }
      done++;
      progress("uploading", done, jobs.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  } finally {
    await recorder.flush(); // what was proven before a stop is recorded all the same
  }
  if (options.signal?.aborted) throw new Aborted();

  progress("manifests", done, jobs.length);
  await uploadManifests(ctx).catch((err) => {
    if (options.signal?.aborted) throw new Aborted();
    report.problems.push({ code: err instanceof BackupError ? err.code : "OFFSITE_FAILED", message: `catalog/SHA256SUMS upload: ${messageOf(err)}` });
  });
  const result = await finish();
  if (result.counts.pending === 0 && result.counts.failed === 0) {
    result.target.lastCompleteAt = result.finishedAt;
    result.target.daysSinceComplete = 0;
  }
  await saveState(stateFile, result.target);
  return result;
}

export interface FileContext {
  archive: Archive;
  recorder: CopyRecorder;
  target: Target;
  id: string;
  recipient?: string;
  signal?: AbortSignal;
  onBytes: (n: number) => void;
  pace?: () => ReturnType<typeof paced>;
}

/** A final file not yet recorded on this target with its current content. */
function needsCopy(r: FileRecord, id: string | undefined): boolean {
  return r.state === "final" && (id === undefined || !currentCopies(r).includes(id));
}

/**
 * Puts a final file under a free name, never replacing what the target holds: its own path, or,
 * when something else is stored there (an earlier content of a rewritten file), a name that carries
 * the content's hash. An object there that is this very content (left unrecorded by a run that
 * stopped) is adopted once proven, or redone in place when its metadata says it is ours.
 */
async function uploadFinal(ctx: FileContext, record: FileRecord): Promise<"uploaded" | "skipped"> {
  const file = ctx.archive.fileOf(record);
  const size = (await fsp.stat(file)).size;
  if (size !== record.size) return "skipped"; // changed since the catalog was read; the next run sees the new record
  const suffix = ctx.recipient ? ".age" : "";
  for (const key of [`${record.path}${suffix}`, `${record.path}.${record.sha256.slice(0, 12)}${suffix}`]) {
    let put = await putFile(ctx, record, file, key, "final");
    if (put === "exists") {
      const info = await ctx.target.head(key, ctx.signal);
      if (info?.claimedSha256 === record.sha256) {
        put = await putFile(ctx, record, file, key, "replaceable");
      } else if (!ctx.recipient && info && info.claimedSha256 === undefined && info.size === size && (await ctx.target.hash(key, ctx.signal)) === record.sha256) {
        await ctx.recorder.add(record.path, { at: new Date().toISOString(), sha256: record.sha256, key, size });
        return "uploaded";
      }
    }
    if (put !== "exists") {
      await ctx.recorder.add(record.path, put);
      return "uploaded";
    }
  }
  throw new BackupError("OFFSITE_CONFLICT", `${record.path}: the target already holds other content under its name and its hash-named alternative; nothing replaced`);
}

/** One put of an archived file, checking on the way that the bytes read are those the catalog vouches for. */
async function putFile(ctx: FileContext, record: FileRecord, file: string, key: string, mode: "final" | "replaceable"): Promise<OffsiteCopy | "exists"> {
  let plain: HashingStream | undefined;
  const source = putSource(() => {
    const input = record.size === 0 ? bufferStream(Buffer.alloc(0)) : fs.createReadStream(file, { end: record.size - 1, highWaterMark: readChunk(record.size) });
    if (!ctx.recipient) return input; // the target hashes what it sends: that is the plaintext
    plain = new HashingStream();
    input.on("error", (err: Error) => plain!.destroy(err));
    return input.pipe(plain);
  }, record, ctx.recipient);
  let put;
  try {
    put = await ctx.target.put(key, source, { mode, signal: ctx.signal, onBytes: ctx.onBytes, pace: ctx.pace });
  } catch (err) {
    if (err instanceof ObjectExists) return "exists";
    throw err;
  }
  const readSha256 = plain ? plain.result().sha256 : record.size === 0 ? record.sha256 : put.objectSha256;
  if (readSha256 !== record.sha256) {
    throw new BackupError("ARCHIVE_MISMATCH", `${record.path}: the archived file no longer matches its catalog hash (run hash-verify); not recorded as a copy`);
  }
  const encrypted = ctx.recipient ? { objectSha256: put.objectSha256, encryption: "age" as const } : {};
  return { at: new Date().toISOString(), sha256: record.sha256, key, size: record.size, ...encrypted };
}

/** A growing file goes to the live area as far as the catalog knows it, replacing its older state. */
async function uploadLive(ctx: FileContext, record: FileRecord): Promise<"uploaded" | "skipped"> {
  const file = ctx.archive.fileOf(record);
  if ((await fsp.stat(file)).size < record.size || record.size === 0) return "skipped";
  const source = putSource(() => fs.createReadStream(file, { start: 0, end: record.size - 1, highWaterMark: readChunk(record.size) }), record, ctx.recipient);
  const put = await ctx.target.put(`${TARGET_STATE}/live/${record.path}${ctx.recipient ? ".age" : ""}`, source, { mode: "replaceable", signal: ctx.signal, onBytes: ctx.onBytes, pace: ctx.pace });
  if (!ctx.recipient && put.objectSha256 !== record.sha256) {
    throw new BackupError("ARCHIVE_MISMATCH", `${record.path}: the archived bytes of this growing file no longer match its catalog hash (run hash-verify)`);
  }
  return "uploaded";
}

async function saveState(file: string, state: OffsiteTargetState): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const { id, lastConnectedAt, lastCompleteAt, kind, name } = state;
  await writeFileAtomic(file, JSON.stringify({ name, kind, id, lastConnectedAt, lastCompleteAt }, null, 2) + "\n");
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100) || "target";
}

/** Reads in chunks of up to 1 MiB, but no bigger than the file (a small file gets no 1 MiB buffer). */
function readChunk(size: number): number {
  return Math.max(16 * 1024, Math.min(1024 * 1024, size));
}
