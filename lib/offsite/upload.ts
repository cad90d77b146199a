import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import type { Archive } from "../archive/archive";
import type { FileRecord } from "../archive/catalog";
import { writeFileAtomic } from "../archive/fsutil";
import { localPath } from "../archive/paths";
import { Aborted, BackupError, isRetryable, messageOf } from "../errors";
import { Throttle } from "../sftp/throttle";
import { checkRecipient, encryptStream } from "./encrypt";
import { HashingStream, paced } from "./streams";
import { TARGET_STATE, type OffsiteCopy, type PutSource, type Target, type TargetKind } from "./target";

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
  problems: Array<{ code: string; message: string; path?: string }>;
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
  const saved: Partial<OffsiteTargetState> = await fsp
    .readFile(stateFile, "utf8")
    .then((t) => JSON.parse(t))
    .catch(() => ({}));
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
    problems: [],
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
  const ctx: FileContext = { archive, target, id, recipient, signal: options.signal, onBytes, pace: throttle ? () => paced(throttle) : undefined };

  let next = 0;
  const worker = async () => {
    while (next < jobs.length && !options.signal?.aborted) {
      const job = jobs[next++];
      try {
        const outcome = await withRetries(retry, options.signal, () => (job.live ? uploadLive(ctx, job.record) : uploadFinal(ctx, job.record)));
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
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
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

interface FileContext {
  archive: Archive;
  target: Target;
  id: string;
  recipient?: string;
  signal?: AbortSignal;
  onBytes: (n: number) => void;
  pace?: () => ReturnType<typeof paced>;
}

/** A final file not yet recorded on this target with its current content. */
function needsCopy(r: FileRecord, id: string | undefined): boolean {
  return r.state === "final" && (id === undefined || r.copies?.[id]?.sha256 !== r.sha256);
}

/**
 * Chooses where a final file goes without ever replacing what the target holds: its own path, or,
 * when something else is stored there (an earlier content of a rewritten file), a name that carries
 * the content's hash. Returns the key, and whether an object there is already this very content.
 */
async function chooseKey(ctx: FileContext, record: FileRecord): Promise<{ key: string; replace: boolean; adopt: boolean }> {
  const suffix = ctx.recipient ? ".age" : "";
  for (const key of [`${record.path}${suffix}`, `${record.path}.${record.sha256.slice(0, 12)}${suffix}`]) {
    const info = await ctx.target.head(key, ctx.signal);
    if (!info) return { key, replace: false, adopt: false };
    // An unrecorded upload of this same content by an interrupted run (S3 metadata says so): redo it in place.
    if (info.claimedSha256 === record.sha256) return { key, replace: true, adopt: false };
    // Placed after verification by an earlier run that stopped before recording it: prove it, then keep it.
    if (!ctx.recipient && info.claimedSha256 === undefined && info.size === record.size && (await ctx.target.hash(key, ctx.signal)) === record.sha256) {
      return { key, replace: false, adopt: true };
    }
  }
  throw new BackupError("OFFSITE_CONFLICT", `${record.path}: the target already holds other content under its name and its hash-named alternative; nothing replaced`);
}

async function uploadFinal(ctx: FileContext, record: FileRecord): Promise<"uploaded" | "skipped"> {
  const file = localPath(ctx.archive.root, record.path);
  const size = (await fsp.stat(file)).size;
  if (size !== record.size) return "skipped"; // changed since the catalog was read; the next run sees the new record
  const { key, replace, adopt } = await chooseKey(ctx, record);
  let copy: OffsiteCopy;
  const at = new Date().toISOString();
  if (adopt) {
    copy = { at, sha256: record.sha256, key, size };
  } else {
    const plain = new HashingStream();
    const source: PutSource = {
      open: () => {
        const stream = fs.createReadStream(file, { end: size - 1, highWaterMark: 1024 * 1024 }).pipe(plain);
        return ctx.recipient ? encryptStream(stream, ctx.recipient) : stream;
      },
      size: ctx.recipient ? undefined : size,
      sha256: record.sha256,
      encrypted: ctx.recipient !== undefined,
    };
    if (size === 0) source.open = () => emptyOrEncrypted(ctx.recipient);
    const put = await ctx.target.put(key, source, { mode: replace ? "replaceable" : "final", signal: ctx.signal, onBytes: ctx.onBytes, pace: ctx.pace });
    const plainSha = size === 0 ? record.sha256 : plain.result().sha256;
    if (plainSha !== record.sha256) {
      throw new BackupError("ARCHIVE_MISMATCH", `${record.path}: the archived file no longer matches its catalog hash (run hash-verify); not recorded as a copy`);
    }
    copy = { at, sha256: record.sha256, key, size, ...(ctx.recipient ? { objectSha256: put.objectSha256, encryption: "age" as const } : {}) };
  }
  await ctx.archive.update((cat) =>
    cat.patch(record.path, (current) => {
      if (current.sha256 !== record.sha256) return current; // rewritten meanwhile: this copy is of an older content
      const previous = current.copies?.[ctx.id];
      const earlier = previous ? [...(previous.earlier ?? []), { ...previous, earlier: undefined }] : undefined;
      return { ...current, copies: { ...current.copies, [ctx.id]: { ...copy, ...(earlier ? { earlier } : {}) } } };
    }),
  );
  return "uploaded";
}

/** A growing file goes to the live area as far as the catalog knows it, replacing its older state. */
async function uploadLive(ctx: FileContext, record: FileRecord): Promise<"uploaded" | "skipped"> {
  const file = localPath(ctx.archive.root, record.path);
  if ((await fsp.stat(file)).size < record.size || record.size === 0) return "skipped";
  const source: PutSource = {
    open: () => {
      const stream = fs.createReadStream(file, { start: 0, end: record.size - 1, highWaterMark: 1024 * 1024 });
      return ctx.recipient ? encryptStream(stream, ctx.recipient) : stream;
    },
    size: ctx.recipient ? undefined : record.size,
    sha256: record.sha256,
    encrypted: ctx.recipient !== undefined,
  };
  await ctx.target.put(`${TARGET_STATE}/live/${record.path}${ctx.recipient ? ".age" : ""}`, source, { mode: "replaceable", signal: ctx.signal, onBytes: ctx.onBytes, pace: ctx.pace });
  return "uploaded";
}

/**
 * The catalog (as recorded now, with this target's copies) and the archive's SHA256SUMS files go
 * to `.tick-backup/` on the target: with them a restore needs nothing from the home disk.
 */
async function uploadManifests(ctx: FileContext): Promise<void> {
  const catalog = await ctx.archive.readCatalog();
  const snapshot = Buffer.from(
    JSON.stringify({ format: 1, archive: ctx.archive.identity, target: ctx.id, writtenAt: new Date().toISOString(), records: catalog.all().sort((a, b) => (a.path < b.path ? -1 : 1)) }),
  );
  const items: Array<{ name: string; data: Buffer }> = [{ name: "catalog.json", data: snapshot }];
  for (const entry of await fsp.readdir(ctx.archive.root, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.startsWith("SHA256SUMS")) items.push({ name: entry.name, data: await fsp.readFile(path.join(ctx.archive.root, entry.name)) });
  }
  for (const item of items) {
    const sha256 = createHash("sha256").update(item.data).digest("hex");
    const source: PutSource = {
      open: () => {
        const stream = bufferStream(item.data);
        return ctx.recipient ? encryptStream(stream, ctx.recipient) : stream;
      },
      size: ctx.recipient ? undefined : item.data.length,
      sha256,
      encrypted: ctx.recipient !== undefined,
    };
    const key = `${TARGET_STATE}/${item.name}${ctx.recipient ? ".age" : ""}`;
    await ctx.target.put(key, source, { mode: "replaceable", signal: ctx.signal, pace: ctx.pace });
  }
}

async function withRetries<T>(retry: { attempts: number; baseDelayMs: number }, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (signal?.aborted || attempt >= retry.attempts || !isRetryable(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, retry.baseDelayMs * 2 ** (attempt - 1)));
    }
  }
}

function bufferStream(data: Buffer): Readable {
  return Readable.from([data]);
}

function emptyOrEncrypted(recipient: string | undefined): Readable {
  return recipient ? encryptStream(bufferStream(Buffer.alloc(0)), recipient) : bufferStream(Buffer.alloc(0));
}

async function saveState(file: string, state: OffsiteTargetState): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  const { id, lastConnectedAt, lastCompleteAt, kind, name } = state;
  await writeFileAtomic(file, JSON.stringify({ name, kind, id, lastConnectedAt, lastCompleteAt }, null, 2) + "\n");
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 100) || "target";
}
