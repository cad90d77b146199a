// The health of one archive as a person asks about it: when did each kind of copy last succeed, how
// much is there, how many copies does each file have, and is anything wrong. Built from the runs'
// reports (the report contract) and from the catalog; plain JSON so that it can be saved and sent.
import { currentCopies, type FileRecord } from "../archive/catalog";
import type { RunOutcome, RunReport } from "../report";

/**
 * What a node tells its archive after a run (a RunOutcome), read as it may come: from a node of
 * another version, or saved long ago. So only `kind` of the report is counted on; its other
 * fields, the kind-specific ones too, are read defensively.
 */
export type HealthOutcome = Omit<RunOutcome, "report"> & { report?: Partial<RunReport> & { kind: string } };

/** The last outcome of one node (several nodes of one kind are told apart by source). */
export interface RunSummary {
  kind: string;
  at: string;
  ok: boolean;
  /** the failure's code, or the first problem's */
  code?: string;
  message?: string;
  problems: number;
  /** true when the run ended in an error instead of a report */
  failed: boolean;
}

export interface HealthSnapshot {
  format: 1;
  archive: string;
  createdAt: string;
  updatedAt: string;
  lastSuccess: { pull?: string; verify?: string; offsite?: string; drill?: string; disk?: string };
  runs: Record<string, RunSummary>;
  pull?: { at: string; files: number; bytes: number; durationMs: number; rewritten: number };
  disk?: { at: string; level: string; path?: string; free?: number; total?: number; usedPercent?: number; daysUntilFull?: number | null; bytesPerDay7?: number | null };
  verify?: { at: string; mode?: string; mismatched: number; missing: number; paths: string[]; lastFullProofAt?: string };
  /** the last restore drill: offsite copies that did not restore to the archived bytes (the archive itself is not in question) */
  drill?: { at: string; mismatched: number; missing: number; paths: string[] };
  offsite?: Record<string, { at: string; state?: string; pending?: number; failed: number; lastCompleteAt?: string }>;
  catalog?: CatalogFigures;
}

export interface CatalogFigures {
  at: string;
  files: number;
  bytes: number;
  live: number;
  final: number;
  /** files by number of copies: the archive itself plus one per offsite target that holds it */
  copies: { one: number; two: number; threePlus: number };
  /** finished files the server changed within the last week (kept as versions: tampering or a broken disk there) */
  rewrittenRecently: number;
  rewrittenPaths: string[];
  /** files whose last verify found them changed, missing or suspect (the catalog's verifyResult) */
  verifyBad: number;
  verifyBadPaths: string[];
}

export interface ProblemReason {
  code: string;
  message: string;
  /** the node whose run this comes from, when one does */
  source?: string;
}

const LIST_LIMIT = 10;
const REWRITTEN_WINDOW_MS = 7 * 24 * 3600_000;

export function emptySnapshot(archive: string, now = new Date()): HealthSnapshot {
  return { format: 1, archive, createdAt: now.toISOString(), updatedAt: now.toISOString(), lastSuccess: {}, runs: {} };
}

/** Folds one run's outcome into the snapshot (returns a new snapshot; the old one is not changed). */
export function applyOutcome(previous: HealthSnapshot, outcome: HealthOutcome): HealthSnapshot {
  const s: HealthSnapshot = structuredClone(previous);
  const report = outcome.report as (HealthOutcome["report"] & Record<string, unknown>) | undefined;
  const first = report?.problems?.[0];
  s.updatedAt = outcome.at;
  s.runs[outcome.source] = {
    kind: outcome.kind,
    at: outcome.at,
    ok: outcome.ok,
    code: outcome.error?.code ?? first?.code,
    message: outcome.error?.message ?? first?.message,
    problems: report?.problems?.length ?? (outcome.error ? 1 : 0),
    failed: !report,
  };
  if (!report) return s;
  const finished = str(report.finishedAt) ?? outcome.at;
  const kind = report.kind ?? outcome.kind;
  if (kind === "pull") {
    const files = Array.isArray(report.files) ? report.files.length : 0;
    const rewritten = Array.isArray(report.rewritten) ? report.rewritten.length : 0;
    s.pull = { at: finished, files, bytes: num(report.bytes) ?? 0, durationMs: num(report.durationMs) ?? 0, rewritten };
    if (outcome.ok) s.lastSuccess.pull = finished;
  } else if (kind === "verify") {
    const counts = obj(report.counts);
    const mismatched = num(counts.mismatched) ?? 0;
    const missing = num(counts.missing) ?? 0;
    const paths = [...strings(report.mismatches), ...strings(report.missing)].slice(0, LIST_LIMIT);
    const clean = mismatched === 0 && missing === 0;
    if (report.mode === "drill") {
      // A drill proves the offsite copies, not the archive: what it finds is kept apart from the verify's findings.
      s.drill = { at: finished, mismatched, missing, paths };
      if (outcome.ok) s.lastSuccess.drill = finished;
    } else {
      s.verify = { at: finished, mode: str(report.mode), mismatched, missing, paths, lastFullProofAt: str(report.lastFullProofAt) ?? s.verify?.lastFullProofAt };
      if (clean && (num(counts.checked) ?? 0) > 0) s.lastSuccess.verify = finished;
    }
  } else if (kind === "drill" || kind === "restore-drill") {
    // a drill's report without the verify shape (from another version): only its time counts
    if (outcome.ok) s.lastSuccess.drill = finished;
  } else if (kind === "disk") {
    const disk = obj(report.archiveDisk);
    const volume = obj(report.volume);
    s.disk = {
      at: finished,
      level: str(report.level) ?? "ok",
      path: str(disk.path),
      free: num(disk.free),
      total: num(disk.total),
      usedPercent: num(disk.usedPercent),
      daysUntilFull: num(volume.daysUntilFull30) ?? num(volume.daysUntilFull7) ?? null, // the 30-day rate, as the disk-space status shows it
      bytesPerDay7: num(volume.bytesPerDay7) ?? null,
    };
    s.lastSuccess.disk = finished;
  } else if (kind === "offsite") {
    const target = obj(report.target);
    const counts = obj(report.counts);
    const name = str(target.name) ?? outcome.source;
    const failed = num(counts.failed) ?? 0;
    s.offsite = { ...s.offsite, [name]: { at: finished, state: str(target.state), pending: num(counts.pending), failed, lastCompleteAt: str(target.lastCompleteAt) } };
    if (outcome.ok && failed === 0 && target.state !== "offline") s.lastSuccess.offsite = finished;
  }
  return s;
}

/** What the catalog says about the archive as a whole; cheap enough to run after every outcome. */
export function catalogFigures(records: Iterable<FileRecord>, now = new Date()): CatalogFigures {
  const f: CatalogFigures = { at: now.toISOString(), files: 0, bytes: 0, live: 0, final: 0, copies: { one: 0, two: 0, threePlus: 0 }, rewrittenRecently: 0, rewrittenPaths: [], verifyBad: 0, verifyBadPaths: [] };
  const since = now.getTime() - REWRITTEN_WINDOW_MS;
  for (const r of records) {
    f.files++;
    f.bytes += r.size;
    if (r.state === "live") f.live++;
    else f.final++;
    const copies = 1 + currentCopies(r).length;
    if (copies >= 3) f.copies.threePlus++;
    else if (copies === 2) f.copies.two++;
    else f.copies.one++;
    if (r.verifyResult !== undefined && r.verifyResult !== "ok") {
      f.verifyBad++;
      if (f.verifyBadPaths.length < LIST_LIMIT) f.verifyBadPaths.push(r.path);
    }
    if (r.versions?.some((v) => v.reason === "rewritten" && Date.parse(v.keptAt) >= since)) {
      f.rewrittenRecently++;
      if (f.rewrittenPaths.length < LIST_LIMIT) f.rewrittenPaths.push(r.path);
    }
  }
  return f;
}

/** Everything that is wrong now, each with a reason a person understands. Empty means healthy. */
export function problemsOf(s: HealthSnapshot, options: { now?: Date; staleHours?: number } = {}): ProblemReason[] {
  const now = options.now ?? new Date();
  // What the reports of these kinds say in their own fields; a run's generic reason is added only
  // when its kind has none of these (a failure, or a problem the fields do not show).
  const specific: Record<string, ProblemReason[]> = { disk: [], verify: [], offsite: [], drill: [] };
  if (s.disk && (s.disk.level === "warn" || s.disk.level === "critical")) {
    const free = s.disk.free !== undefined ? `, ${(s.disk.free / 2 ** 30).toFixed(1)} GiB free` : "";
    specific.disk.push({ code: s.disk.level === "critical" ? "DISK_CRITICAL" : "DISK_LOW", message: `archive disk ${s.disk.usedPercent ?? "?"}% used${free}` });
  }
  if (s.verify && s.verify.mismatched + s.verify.missing > 0) {
    specific.verify.push({ code: "VERIFY_MISMATCH", message: `verify found ${s.verify.mismatched} mismatched and ${s.verify.missing} missing file(s): ${s.verify.paths.join(", ")}` });
  } else if (s.catalog && s.catalog.verifyBad > 0) {
    // The catalog remembers each file's last verdict, also when no verify report has been seen here.
    specific.verify.push({ code: "VERIFY_MISMATCH", message: `${s.catalog.verifyBad} file(s) failed their last verify: ${s.catalog.verifyBadPaths.join(", ")}` });
  }
  if (s.drill && s.drill.mismatched + s.drill.missing > 0) {
    specific.drill.push({ code: "DRILL_FAILED", message: `the restore drill found ${s.drill.mismatched} offsite copies that do not restore to the archived bytes and ${s.drill.missing} missing: ${s.drill.paths.join(", ")}` });
  }
  for (const [name, t] of Object.entries(s.offsite ?? {})) {
    if (t.failed > 0 || t.state === "offline") {
      specific.offsite.push({ code: "OFFSITE_FAILED", message: t.failed > 0 ? `offsite ${name}: ${t.failed} upload(s) failed` : `offsite ${name} is offline` });
    }
  }

  const reasons: ProblemReason[] = [];
  for (const [source, run] of Object.entries(s.runs)) {
    if (run.ok) continue;
    if (run.code === "HOST_KEY_CHANGED") {
      reasons.push({ code: "HOST_KEY_CHANGED", message: "the server's host key changed: pulls stop until a person confirms the new key", source });
      continue;
    }
    if (!run.failed && (specific[run.kind]?.length ?? 0) > 0) continue;
    const what = run.problems > 1 ? `${run.message ?? "failed"} (and ${run.problems - 1} more)` : (run.message ?? "failed");
    reasons.push({ code: `${run.kind.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_FAILED`, message: `last ${run.kind} at ${run.at}: ${what}`, source });
  }
  const c = s.catalog;
  if (c && c.rewrittenRecently > 0) {
    reasons.push({ code: "FILES_REWRITTEN", message: `${c.rewrittenRecently} finished file(s) changed on the server this week (old contents kept as versions): ${c.rewrittenPaths.join(", ")}` });
  }
  reasons.push(...specific.disk, ...specific.verify, ...specific.offsite, ...specific.drill);
  const staleHours = options.staleHours ?? 0;
  if (staleHours > 0) {
    const since = s.lastSuccess.pull ?? s.createdAt;
    const ageH = (now.getTime() - Date.parse(since)) / 3600_000;
    if (ageH > staleHours) {
      const last = s.lastSuccess.pull ? `the last successful pull was at ${s.lastSuccess.pull}` : `no successful pull since ${s.createdAt}`;
      reasons.push({ code: "PULL_STALE", message: `${last} (${ageH.toFixed(1)} h ago; expected within ${staleHours} h)` });
    }
  }
  return reasons;
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}
