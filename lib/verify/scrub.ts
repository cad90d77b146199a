import * as fs from "node:fs/promises";
import type { Archive } from "../archive/archive";
import { currentCopies, storedPathOf, type Catalog, type FileRecord } from "../archive/catalog";
import { Aborted, ConfigError, messageOf } from "../errors";
import { connect, type ServerConfig, type SftpSession } from "../sftp/connect";
import { HashWorker, hashFiles, type HashResult } from "./hasher";
import { judge, type Verdict } from "./judge";
import { writeManifests } from "./manifest";
import { fetchCopy, placeCopy, quarantine } from "./repair";
import type { Checked } from "./select";
import { blankVerifyReport, finish, type VerifyProgress, type VerifyReport } from "./report";
import { loadScrubState, recordProof, saveScrubState } from "./schedule";

export interface ScrubOptions {
  archive: Archive;
  mode: "scrub" | "full";
  /** t of n/t: a scrub reads one partition in t (default 7: a daily scrub covers the archive each week) */
  partitions?: number;
  /** read this partition (1..t) instead of the next in the rotation (the command's `--partition n/t`) */
  partition?: number;
  /** where damaged or missing files can be fetched again (optional) */
  server?: ServerConfig;
  remoteDir?: string;
  signal?: AbortSignal;
  onProgress?: (p: VerifyProgress) => void;
  /** how long to let a running pull finish a file before judging it again (default 1 s) */
  settleMs?: number;
  now?: () => Date;
}

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
  if (options.partition !== undefined && !(Number.isInteger(options.partition) && options.partition >= 1 && options.partition <= t)) throw new ConfigError(`partition must be from 1 to ${t}, got ${options.partition}`);
  const n = options.partition !== undefined ? options.partition - 1 : state.next;
  if (mode === "scrub") report.partition = { n: n + 1, t };
  const tell = (p: Omit<VerifyProgress, "elapsedMs">) => options.onProgress?.({ ...p, elapsedMs: Date.now() - started });

  tell({ phase: "listing", files: 0, filesTotal: 0, bytes: 0, bytesTotal: 0 });
  // One worker for the run: the plan (catalog load, partition, walk for extra files), then the hashing.
  let files = 0;
  let extra: string[] = [];
  let bytesTotal = 0;
  let filesDone = 0;
  let lastTell = 0;
  const suspects: Array<{ record: Checked; verdict: Verdict }> = [];
  const verified: Checked[] = [];
  const verifiedAt = now().toISOString();
  const worker = new HashWorker();
  try {
    await worker.plan(
      { root: archive.root, stateDir: archive.stateDir, t, n, full: mode === "full" },
      {
        signal: options.signal,
        onPlanned: (planned) => {
          ({ files, extra, bytes: bytesTotal } = planned);
          report.coverage.totalFiles = planned.totalFiles;
          tell({ phase: "hashing", files: 0, filesTotal: files, bytes: 0, bytesTotal });
        },
        onBytes: (b) => {
          report.bytes += b;
          if (Date.now() - lastTell > 250) (lastTell = Date.now()), tell({ phase: "hashing", files: filesDone, filesTotal: files, bytes: report.bytes, bytesTotal });
        },
        onResults: async (good, others) => {
          for (const { record, verdict } of others) {
            if (verdict.kind === "growing") growing(report);
            else suspects.push({ record, verdict });
          }
          filesDone += good.length + others.length;
          report.counts.ok += good.length;
          verified.push(...good);
          // The catalog is written in few, large steps: each update loads it and may compact it.
          if (verified.length >= MARK_EVERY) await markVerified(archive, verified.splice(0), verifiedAt, "ok");
        },
      },
    );
  } finally {
    await worker.close();
  }
  report.extra = extra;
  report.counts.extra = report.extra.length;
  for (const rel of report.extra) report.problems.push({ code: "EXTRA_FILE", path: rel, message: `${rel} is in the archive folder but not in the catalog (copied in by hand?)` });

  report.counts.checked = files;
  report.coverage.files = files;

  // Damage is rare; a file a pull changed meanwhile is judged again before anything is moved.
  tell({ phase: "checking", files: filesDone, filesTotal: files, bytes: report.bytes, bytesTotal });
  const marks: Mark[] = [];
  let session: SftpSession | undefined;
  try {
    for (const { record, verdict } of await confirm(archive, suspects, options.settleMs ?? 1000)) {
      if (options.signal?.aborted) throw new Aborted();
      if (!record) report.counts.skipped++;
      else if (verdict.kind === "ok") {
        report.counts.ok++;
        verified.push(record);
      } else if (verdict.kind === "growing") growing(report);
      else {
        const getSession = async () => (session ??= await connect(options.server!, { signal: options.signal }));
        marks.push(...(await handleDamage(archive, record, verdict, report, options.server ? getSession : undefined, options.remoteDir ?? "/", now, options.signal)));
      }
    }
  } finally {
    await session?.end();
  }

  const clean = report.counts.mismatched + report.counts.missing === 0;
  const next = recordProof(state, mode === "full" ? "all" : [n], clean, report.startedAt);
  report.lastFullProofAt = next.lastFullProofAt;
  // One short update at the end: the marks of the files read, and the manifests from the catalog.
  // Marks change no path, hash or state, so the manifests are written while the marks are synced;
  // the rotation's state is a file of its own, saved meanwhile (a crash between them loses a mark
  // or repeats a partition, never data).
  const marking = archive.update(async (cat) => {
    await Promise.all([markIn(cat, [...verified.splice(0).map((record): Mark => ({ record, result: "ok", at: verifiedAt })), ...marks]), writeManifests(archive.stateDir, cat.all())]);
  });
  await Promise.all([saveScrubState(archive.stateDir, next), marking]);
  report.coverage.percent = report.coverage.totalFiles ? Math.round((report.coverage.files / report.coverage.totalFiles) * 1000) / 10 : 100;
  return finish(report, started);
}

/** The catalog's bytes are intact and more follow: an append in progress, or one a crash cut short (the next pull settles it). */
function growing(report: VerifyReport): void {
  report.counts.skipped++;
}

/** Records verified kept for one catalog update (each update loads the catalog): a crash loses at most these marks, never data. */
const MARK_EVERY = 50_000;

type Mark = { record: Checked; result: "ok" | "mismatch" | "missing"; at: string };

/** Marks records verified, each only if it is still the content that was checked. */
function markVerified(archive: Archive, records: Checked[], at: string, result: Mark["result"]): Promise<void> {
  return records.length === 0 ? Promise.resolve() : archive.update((cat) => markIn(cat, records.map((record) => ({ record, result, at }))));
}

async function markIn(cat: Catalog, marks: Mark[]): Promise<void> {
  const changed = new Map<string, { from: FileRecord; to: FileRecord }>();
  for (let i = 0; i < marks.length; i += 2000) {
    if (i > 0) await new Promise((r) => setImmediate(r)); // let other flows run between slices
    for (const { record: r, result, at } of marks.slice(i, i + 2000)) {
      const current = changed.get(r.path)?.from ?? cat.get(r.path);
      if (!current || current.sha256 !== r.sha256 || current.size !== r.size) continue;
      // An intact local copy does not clear "suspect": that is the server's disagreement, which a read-back cannot settle.
      changed.set(r.path, { from: current, to: { ...current, verifiedAt: at, verifyResult: current.verifyResult === "suspect" && result === "ok" ? "suspect" : result } });
    }
  }
  // A record a pull beside us committed during the slices is left alone; the check and the commit
  // happen in one tick, as in Catalog.patch. Many marks (a whole scrub) go into one snapshot.
  await cat.commitAll([...changed.values()].filter((c) => cat.get(c.to.path) === c.from).map((c) => c.to));
}

/**
 * A file that failed may only have been changed by a pull running beside us (grown, rewritten):
 * after letting a running pull finish its file, each is judged against its record as it is now (one
 * fresh catalog read for all of them); a verdict against an unchanged record stands.
 */
async function confirm(archive: Archive, suspects: Array<{ record: Checked; verdict: Verdict }>, settleMs: number): Promise<Array<{ record?: Checked; verdict: Verdict }>> {
  if (suspects.length === 0) return [];
  if (settleMs > 0 && (await archive.isLocked())) await new Promise((r) => setTimeout(r, settleMs));
  const fresh = await archive.readCatalog();
  const out: Array<{ record?: Checked; verdict: Verdict }> = [];
  for (const s of suspects) {
    const current = fresh.get(s.record.path);
    if (!current) out.push({ verdict: s.verdict });
    else if (current.sha256 === s.record.sha256 && current.size === s.record.size) out.push(s);
    else out.push({ record: current, verdict: judge(current, await hashOne(archive.root, storedPathOf(current), current.size)) });
  }
  return out;
}

function hashOne(root: string, rel: string, length: number): Promise<HashResult> {
  let out: HashResult | undefined;
  return hashFiles(root, [{ id: 0, rel, length, expect: length }], { onResults: (r) => void (out = r[0]) }).then(() => out!);
}

/** Quarantines a bad copy, then tries the server; says plainly what is lost when it cannot help. */
async function handleDamage(
  archive: Archive,
  record: Checked,
  verdict: Verdict & { kind: "missing" | "mismatch" },
  report: VerifyReport,
  getSession: (() => Promise<SftpSession>) | undefined,
  remoteDir: string,
  now: () => Date,
  signal?: AbortSignal,
): Promise<Mark[]> {
  const rel = record.path;
  const at = now();
  if (verdict.kind === "missing") {
    report.counts.missing++;
    report.missing.push(rel);
  } else {
    report.counts.mismatched++;
    report.mismatches.push(rel);
    report.quarantined.push(await quarantine(archive, storedPathOf(record), at));
  }
  const marks: Mark[] = [{ record, result: verdict.kind, at: at.toISOString() }];
  const what = verdict.kind === "missing" ? `${rel} is missing from the archive` : `${rel} ${verdict.why}; the bad copy is in ${report.quarantined[report.quarantined.length - 1]}`;
  let why = "no server is set on this node to fetch it again";
  if (getSession) {
    try {
      const session = await getSession();
      const { part, sha256 } = await fetchCopy(session, archive, remoteDir, rel, record.size, signal);
      if (sha256 === record.sha256 && (await placeCopy(archive, part, storedPathOf(record)))) {
        report.restored.push(rel);
        report.problems.push({ code: verdict.kind === "missing" ? "MISSING" : "MISMATCH", path: rel, message: `${what}; fetched again from the server, it matches the catalog` });
        return [...marks, { record, result: "ok", at: now().toISOString() }];
      }
      await fs.rm(part, { force: true });
      why = sha256 === record.sha256 ? "a pull has put a file there meanwhile" : "the server's copy has other bytes now";
    } catch (err) {
      if (signal?.aborted) throw new Aborted();
      why = `the server could not provide it (${messageOf(err)})`;
    }
  }
  // Only copies of the content the catalog holds now: an older copy of a grown or rewritten file would restore other bytes.
  const copies = currentCopies(record);
  const from = copies.length > 0 ? `restore it from offsite copy ${copies.join(", ")}` : "no other copy is recorded";
  report.problems.push({ code: "ARCHIVE_DAMAGED", path: rel, message: `${what}; ${why}; ${from}` });
  return marks;
}

