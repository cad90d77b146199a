import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import picomatch from "picomatch";
import type { FileRecord } from "../archive/catalog";
import { localPath } from "../archive/paths";
import { fsyncDir, renameReplacing } from "../archive/fsutil";
import { hashFile } from "../archive/local-io";
import { Aborted, ConfigError, messageOf } from "../errors";
import { HashingStream, pump } from "../offsite/streams";
import type { RestoreSource } from "./source";

export interface RestoreOptions {
  source: RestoreSource;
  /** the folder to restore into (created if missing) */
  to: string;
  /** only paths matching one of these globs (picomatch, archive-relative) */
  include?: string[];
  /** only files whose server mtime is at or after this date */
  since?: Date;
  /** exactly these paths (a drill's sample) */
  paths?: string[];
  /** replace existing files that differ (default: refuse) */
  force?: boolean;
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (p: RestoreProgress) => void;
}

export interface RestoreProgress {
  files: number;
  filesTotal: number;
  bytes: number;
  bytesTotal: number;
}

export interface RestoreProblem {
  code: string;
  message: string;
  path?: string;
}

export interface RestoreReport {
  kind: "restore";
  source: string;
  to: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  counts: { selected: number; restored: number; present: number; mismatched: number; missing: number; refused: number; failed: number; notOnSource: number };
  bytes: number;
  restored: string[];
  mismatches: string[];
  missing: string[];
  refused: string[];
  problems: RestoreProblem[];
}

/**
 * Restores files from an archive folder or an offsite target. Each file is written under a
 * temporary name beside its place, its SHA-256 checked against the source's catalog (and, for an
 * encrypted copy, the stored object's too), fsynced, then renamed into place. An existing file is
 * never replaced unless `force`; one that already has the catalog's content counts as present. A bad
 * file is named and left out; the others are still restored.
 */
export async function restore(options: RestoreOptions): Promise<RestoreReport> {
  const started = Date.now();
  const to = path.resolve(options.to);
  const report: RestoreReport = {
    kind: "restore",
    source: options.source.description,
    to,
    startedAt: new Date(started).toISOString(),
    finishedAt: "",
    durationMs: 0,
    counts: { selected: 0, restored: 0, present: 0, mismatched: 0, missing: 0, refused: 0, failed: 0, notOnSource: 0 },
    bytes: 0,
    restored: [],
    mismatches: [],
    missing: [],
    refused: [],
    problems: [],
  };
  const selected = select(await options.source.records(), options);
  await fsp.mkdir(to, { recursive: true });
  const work: FileRecord[] = [];
  for (const record of selected) {
    if (options.source.has(record)) work.push(record);
    else if (record.state === "final") {
      report.counts.notOnSource++;
      report.problems.push({ code: "NOT_ON_SOURCE", path: record.path, message: `${record.path} has no copy of its current content on ${options.source.description}` });
    }
  }
  report.counts.selected = work.length;
  const bytesTotal = work.reduce((s, r) => s + r.size, 0);
  let done = 0;
  const tell = () => options.onProgress?.({ files: done, filesTotal: work.length, bytes: report.bytes, bytesTotal });
  tell();
  let next = 0;
  const worker = async () => {
    while (next < work.length) {
      if (options.signal?.aborted) throw new Aborted();
      const record = work[next++];
      await restoreOne(record, to, options, report);
      done++;
      tell();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, () => worker()));
  for (const list of [report.restored, report.mismatches, report.missing, report.refused]) list.sort();
  report.finishedAt = new Date().toISOString();
  report.durationMs = Date.now() - started;
  return report;
}

/** The records a restore is asked for: current files (not gone ones), filtered. */
export function select(records: FileRecord[], options: Pick<RestoreOptions, "include" | "since" | "paths">): FileRecord[] {
  const match = options.include && options.include.length > 0 ? picomatch(options.include, { dot: true }) : undefined;
  const since = options.since ? options.since.getTime() / 1000 : undefined;
  const wanted = options.paths ? new Set(options.paths) : undefined;
  if (options.since && Number.isNaN(options.since.getTime())) throw new ConfigError("--since is not a valid date");
  return records
    .filter((r) => !r.goneSince)
    .filter((r) => !wanted || wanted.has(r.path))
    .filter((r) => !match || match(r.path))
    .filter((r) => since === undefined || r.mtime >= since)
    .sort((a, b) => (a.path < b.path ? -1 : 1));
}

async function restoreOne(record: FileRecord, to: string, options: RestoreOptions, report: RestoreReport): Promise<void> {
  const rel = record.path;
  let dest: string;
  try {
    dest = localPath(to, rel);
  } catch (err) {
    report.counts.failed++;
    report.problems.push({ code: "UNSAFE_NAME", path: rel, message: `${messageOf(err)}: not restored` });
    return;
  }
  let existing: fs.Stats | undefined;
  let same = false;
  try {
    existing = await fsp.lstat(dest).catch((err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? undefined : Promise.reject(err)));
    same = !!existing?.isFile() && existing.size === record.size && (await hashFile(dest)) === record.sha256;
  } catch (err) {
    // A file we cannot read is neither "the same" nor safe to replace: say so and write nothing.
    report.counts.failed++;
    report.problems.push({ code: "DESTINATION_UNREADABLE", path: rel, message: `${dest} is there but cannot be read (${messageOf(err)}): nothing written` });
    return;
  }
  if (existing) {
    if (same) {
      report.counts.present++;
      return;
    }
    if (!options.force || !existing.isFile()) {
      report.counts.refused++;
      report.refused.push(rel);
      report.problems.push({ code: "EXISTS", path: rel, message: `${dest} already exists with other content: not replaced (use --force)` });
      return;
    }
  }
  const temp = path.join(path.dirname(dest), `.${path.basename(dest).slice(0, 200)}.restore-${randomBytes(4).toString("hex")}`);
  try {
    // The source first: a copy that is missing or has an unsafe key leaves no folder behind.
    const object = await options.source.open(record, options.signal);
    await fsp.mkdir(path.dirname(dest), { recursive: true }).catch((err) => {
      object.stream.destroy();
      throw err;
    });
    const hashing = new HashingStream({ onBytes: (n) => (report.bytes += n) });
    const out = fs.createWriteStream(temp, { flags: "wx" });
    await pump([object.stream, hashing, out], options.signal);
    const got = hashing.result();
    const objectGot = object.objectDigest ? await object.objectDigest() : undefined;
    if (object.objectSha256 && objectGot !== object.objectSha256) {
      return mismatch(report, rel, `the stored object hashes to ${objectGot}, the catalog says ${object.objectSha256}`);
    }
    if (got.sha256 !== record.sha256 || got.bytes !== record.size) {
      return mismatch(report, rel, `restored bytes hash to ${got.sha256} (${got.bytes} bytes), the catalog says ${record.sha256} (${record.size} bytes)`);
    }
    const fh = await fsp.open(temp, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (record.mtime > 0) await fsp.utimes(temp, record.mtime, record.mtime);
    if (!options.force && (await fsp.lstat(dest).catch(() => undefined))) {
      report.counts.refused++;
      report.refused.push(rel);
      report.problems.push({ code: "EXISTS", path: rel, message: `${dest} appeared while restoring: not replaced` });
      return;
    }
    await renameReplacing(temp, dest);
    await fsyncDir(path.dirname(dest));
    report.counts.restored++;
    report.restored.push(rel);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    // The source says what happened by code (targets map their own "not found" to OFFSITE_MISSING); never by the text.
    const code = (err as { code?: unknown }).code;
    if (code === "OFFSITE_MISSING") {
      report.counts.missing++;
      report.missing.push(rel);
      report.problems.push({ code: "MISSING", path: rel, message: `${rel}: the copy is missing on the source (${messageOf(err)})` });
    } else if (code === "OFFSITE_UNDECRYPTABLE") {
      mismatch(report, rel, messageOf(err));
    } else {
      report.counts.failed++;
      report.problems.push({ code: typeof code === "string" ? code : "RESTORE_FAILED", path: rel, message: `${rel}: ${messageOf(err)}` });
    }
  } finally {
    await fsp.rm(temp, { force: true });
  }
}

function mismatch(report: RestoreReport, rel: string, why: string): void {
  report.counts.mismatched++;
  report.mismatches.push(rel);
  report.problems.push({ code: "MISMATCH", path: rel, message: `${rel}: ${why}; not restored` });
}
