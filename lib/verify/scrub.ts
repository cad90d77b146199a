import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as lockfile from "proper-lockfile";
import type { Archive } from "../archive/archive";
import type { Catalog, FileRecord } from "../archive/catalog";
import { STATE_DIR } from "../archive/paths";
import { Aborted, BackupError, ConfigError, messageOf } from "../errors";
import { connect, type ServerConfig, type SftpSession } from "../sftp/connect";
import { hashFiles, type HashResult } from "./hasher";
import { writeManifests } from "./manifest";
import { fetchCopy, placeCopy, quarantine } from "./repair";
import { blankVerifyReport, finish, type VerifyProgress, type VerifyReport } from "./report";
import { loadScrubState, partitionOf, recordProof, saveScrubState } from "./schedule";

export interface ScrubOptions {
  archive: Archive;
  mode: "scrub" | "full";
  /** t of n/t: a scrub reads one partition in t (default 7: a daily scrub covers the archive each week) */
  partitions?: number;
  /** where damaged or missing files can be fetched again (optional) */
  server?: ServerConfig;
  remoteDir?: string;
  signal?: AbortSignal;
  onProgress?: (p: VerifyProgress) => void;
  /** how long to let a running pull finish a file before judging it again (default 1 s) */
  settleMs?: number;
  now?: () => Date;
}

type Verdict = { kind: "ok" } | { kind: "growing"; extra: number } | { kind: "missing" } | { kind: "mismatch"; why: string };

/**
 * Reads archived files back and compares them with the catalog: one partition (scrub) or all
 * (full). Reading happens in a worker thread; the catalog is only read at the start and updated in
 * short steps, so a pull may run meanwhile. A bad copy is moved to quarantine, never repaired in
 * place, and fetched again when the server still has the catalog's bytes.
 */
export async function scrub(options: ScrubOptions): Promise<VerifyReport> {
  const { archive, mode } = options;
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const report = blankVerifyReport(archive.identity.name, mode, started);
  const t = Number(options.partitions ?? 7);
  if (!Number.isInteger(t) || t < 1 || t > 10_000) throw new ConfigError(`partitions must be a whole number from 1 to 10000, got ${options.partitions}`);
  const state = await loadScrubState(archive.stateDir, t);
  const n = state.next;
  if (mode === "scrub") report.partition = { n: n + 1, t };
  const inPart = (rel: string) => mode === "full" || partitionOf(rel, t) === n;
  const tell = (p: Omit<VerifyProgress, "elapsedMs">) => options.onProgress?.({ ...p, elapsedMs: Date.now() - started });

  tell({ phase: "listing", files: 0, filesTotal: 0, bytes: 0, bytesTotal: 0 });
  const { records, totalFiles, extra } = await selectFiles(archive, inPart, options.signal);
  report.coverage.totalFiles = totalFiles;
  report.extra = extra;
  report.counts.extra = report.extra.length;
  for (const rel of report.extra) report.problems.push({ code: "EXTRA_FILE", path: rel, message: `${rel} is in the archive folder but not in the catalog (copied in by hand?)` });

  const bytesTotal = records.reduce((s, r) => s + r.size, 0);
  let filesDone = 0;
  let lastTell = 0;
  const suspects: FileRecord[] = [];
  const verified: FileRecord[] = [];
  const verifiedAt = now().toISOString();
  await hashFiles(
    archive.root,
    records.map((r, id) => ({ id, rel: r.path, length: r.size, expect: r.size })),
    {
      signal: options.signal,
      onBytes: (b) => {
        report.bytes += b;
        if (Date.now() - lastTell > 250) (lastTell = Date.now()), tell({ phase: "hashing", files: filesDone, filesTotal: records.length, bytes: report.bytes, bytesTotal });
      },
      onResults: async (results) => {
        const good: FileRecord[] = [];
        for (const res of results) {
          const record = records[res.id];
          const verdict = judge(record, res);
          if (verdict.kind === "ok") good.push(record);
          else if (verdict.kind === "growing") growing(report);
          else suspects.push(record);
        }
        filesDone += results.length;
        report.counts.ok += good.length;
        verified.push(...good);
        // The catalog is written in few, large steps: each update loads it and may compact it.
        if (verified.length >= MARK_EVERY) await markVerified(archive, verified.splice(0), verifiedAt, "ok");
      },
    },
  );

  report.counts.checked = records.length;
  report.coverage.files = records.length;

  let session: SftpSession | undefined;
  try {
    for (const first of suspects) {
      if (options.signal?.aborted) throw new Aborted();
      tell({ phase: "checking", files: filesDone, filesTotal: records.length, bytes: report.bytes, bytesTotal });
      const { record, verdict } = await confirm(archive, first, options.settleMs ?? 1000);
      if (!record) report.counts.skipped++;
      else if (verdict.kind === "ok") {
        report.counts.ok++;
        await markVerified(archive, [record], verifiedAt, "ok");
      } else if (verdict.kind === "growing") growing(report);
      else {
        const getSession = async () => (session ??= await connect(options.server!, { signal: options.signal }));
        await handleDamage(archive, record, verdict, report, options.server ? getSession : undefined, options.remoteDir ?? "/", now, options.signal);
      }
    }
  } finally {
    await session?.end();
  }

  const clean = report.counts.mismatched + report.counts.missing === 0;
  const next = recordProof(state, mode === "full" ? "all" : [n], clean, report.startedAt);
  await saveScrubState(archive.stateDir, next);
  report.lastFullProofAt = next.lastFullProofAt;
  // One short update at the end: the marks of the files read, and the manifests from the catalog.
  await archive.update(async (cat) => {
    await markIn(cat, verified.splice(0), verifiedAt, "ok");
    await writeManifests(archive.stateDir, cat.all());
  });
  report.coverage.percent = report.coverage.totalFiles ? Math.round((report.coverage.files / report.coverage.totalFiles) * 1000) / 10 : 100;
  return finish(report, started);
}

/** The catalog's records in this run's partition, and the files on disk it does not know (the catalog itself is let go). */
async function selectFiles(archive: Archive, inPart: (rel: string) => boolean, signal?: AbortSignal): Promise<{ records: FileRecord[]; totalFiles: number; extra: string[] }> {
  const catalog = await archive.readCatalog();
  const records = catalog.all().filter((r) => inPart(r.path)).sort((a, b) => (a.path < b.path ? -1 : 1));
  const extra = (await filesOnDisk(archive.root, signal)).filter((rel) => !catalog.get(rel) && inPart(rel));
  return { records, totalFiles: catalog.size, extra };
}

function judge(record: FileRecord, res: HashResult): Verdict {
  if (res.error === "ENOENT") return { kind: "missing" };
  if (res.error) return { kind: "mismatch", why: `cannot be read (${res.error})` };
  if (res.size < record.size) return { kind: "mismatch", why: `is ${res.size} bytes, the catalog says ${record.size} (truncated)` };
  if (res.sha256 !== record.sha256) return { kind: "mismatch", why: "no longer matches its catalog hash (bit rot, a disk error or tampering)" };
  if (res.size > record.size) return { kind: "growing", extra: res.size - record.size };
  return { kind: "ok" };
}

/** The catalog's bytes are intact and more follow: an append in progress, or one a crash cut short (the next pull settles it). */
function growing(report: VerifyReport): void {
  report.counts.skipped++;
}

/** Records verified kept for one catalog update (each update loads the catalog): a crash loses at most these marks, never data. */
const MARK_EVERY = 50_000;

/** Marks records verified, each only if it is still the content that was checked. */
function markVerified(archive: Archive, records: FileRecord[], at: string, result: "ok" | "mismatch" | "missing"): Promise<void> {
  return records.length === 0 ? Promise.resolve() : archive.update((cat) => markIn(cat, records, at, result));
}

async function markIn(cat: Catalog, records: FileRecord[], at: string, result: "ok" | "mismatch" | "missing"): Promise<void> {
  for (let i = 0; i < records.length; i += 500) {
    if (i > 0) await new Promise((r) => setImmediate(r)); // let other flows run between slices
    // Read and change in the same tick, as Catalog.patch does, but committed as one batch.
    const changed: FileRecord[] = [];
    for (const r of records.slice(i, i + 500)) {
      const current = cat.get(r.path);
      if (!current || current.sha256 !== r.sha256 || current.size !== r.size) continue;
      // An intact local copy does not clear "suspect": that is the server's disagreement, which a read-back cannot settle.
      changed.push({ ...current, verifiedAt: at, verifyResult: current.verifyResult === "suspect" && result === "ok" ? "suspect" : result });
    }
    if (changed.length > 0) await cat.commit(...changed);
  }
}

/**
 * A file that failed may only have been changed by a pull running beside us (grown, rewritten):
 * judge it again against the record as it is now, after letting a running pull finish the file.
 */
async function confirm(archive: Archive, first: FileRecord, settleMs: number): Promise<{ record?: FileRecord; verdict: Verdict }> {
  let record = first;
  let verdict: Verdict = { kind: "missing" };
  for (let attempt = 0; attempt < 3; attempt++) {
    if (settleMs > 0 && (await pullRunning(archive))) await new Promise((r) => setTimeout(r, settleMs));
    const current = (await archive.readCatalog()).get(record.path);
    if (!current) return { verdict };
    record = current;
    const res = await hashOne(archive.root, record.path, record.size);
    verdict = judge(record, res);
    if (verdict.kind === "ok" || verdict.kind === "growing") return { record, verdict };
    const after = (await archive.readCatalog()).get(record.path);
    if (after && after.sha256 === record.sha256 && after.size === record.size) return { record, verdict };
  }
  return { record, verdict };
}

function hashOne(root: string, rel: string, length: number): Promise<HashResult> {
  let out: HashResult | undefined;
  return hashFiles(root, [{ id: 0, rel, length, expect: length }], { onResults: (r) => void (out = r[0]) }).then(() => out!);
}

async function pullRunning(archive: Archive): Promise<boolean> {
  return lockfile.check(archive.stateDir, { lockfilePath: path.join(archive.stateDir, "lock"), realpath: false, stale: 30_000 }).catch(() => false);
}

/** Quarantines a bad copy, then tries the server; says plainly what is lost when it cannot help. */
async function handleDamage(
  archive: Archive,
  record: FileRecord,
  verdict: Verdict & { kind: "missing" | "mismatch" },
  report: VerifyReport,
  getSession: (() => Promise<SftpSession>) | undefined,
  remoteDir: string,
  now: () => Date,
  signal?: AbortSignal,
): Promise<void> {
  const rel = record.path;
  const at = now();
  if (verdict.kind === "missing") {
    report.counts.missing++;
    report.missing.push(rel);
  } else {
    report.counts.mismatched++;
    report.mismatches.push(rel);
    report.quarantined.push(await quarantine(archive, rel, at));
  }
  await markVerified(archive, [record], at.toISOString(), verdict.kind);
  const what = verdict.kind === "missing" ? `${rel} is missing from the archive` : `${rel} ${verdict.why}; the bad copy is in ${report.quarantined[report.quarantined.length - 1]}`;
  let why = "no server is set on this node to fetch it again";
  if (getSession) {
    try {
      const session = await getSession();
      const { part, sha256 } = await fetchCopy(session, archive, remoteDir, rel, record.size, signal);
      if (sha256 === record.sha256 && (await placeCopy(archive, part, rel))) {
        report.restored.push(rel);
        await markVerified(archive, [record], now().toISOString(), "ok");
        report.problems.push({ code: verdict.kind === "missing" ? "MISSING" : "MISMATCH", path: rel, message: `${what}; fetched again from the server, it matches the catalog` });
        return;
      }
      await fs.rm(part, { force: true });
      why = sha256 === record.sha256 ? "a pull has put a file there meanwhile" : "the server's copy has other bytes now";
    } catch (err) {
      if (signal?.aborted) throw new Aborted();
      why = `the server could not provide it (${messageOf(err)})`;
    }
  }
  const copies = Object.keys((record as FileRecord & { copies?: Record<string, unknown> }).copies ?? {});
  const from = copies.length > 0 ? `restore it from offsite copy ${copies.join(", ")}` : "no other copy is recorded";
  report.problems.push({ code: "ARCHIVE_DAMAGED", path: rel, message: `${what}; ${why}; ${from}` });
}

/** Every regular file under the archive root, outside the state area, as archive-relative paths. */
async function filesOnDisk(root: string, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    if (signal?.aborted) throw new Aborted();
    let entries;
    try {
      entries = await fs.readdir(rel ? path.join(root, rel) : root, { withFileTypes: true });
    } catch (err) {
      throw new BackupError("ARCHIVE_UNREADABLE", `cannot list ${rel || root}: ${messageOf(err)}`, { cause: err });
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && e.name === STATE_DIR) continue;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk("");
  return out;
}
