import type { Problem } from "../report";

export type VerifyMode = "origin" | "scrub" | "full";

/** The hash-verify node's `msg.payload`: what a run checked and what it found, in plain JSON. */
export interface VerifyReport {
  kind: "verify";
  archive: string;
  mode: VerifyMode;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  counts: { checked: number; ok: number; mismatched: number; missing: number; extra: number; skipped: number };
  /** bytes read back (scrub, full) or hashed by the server (origin) */
  bytes: number;
  mbPerSec: number;
  /** files this run read, of all the catalog holds */
  coverage: { files: number; totalFiles: number; percent: number };
  /** scrub: the partition read, as n/t with n counted from 1 */
  partition?: { n: number; t: number };
  /** when every archived file was last read back and found intact (scrub rotation or full run) */
  lastFullProofAt?: string;
  origin: { checked: number; matched: number; mismatched: number; unavailable: boolean; reason?: string; repulled: string[] };
  mismatches: string[];
  missing: string[];
  extra: string[];
  /** bad copies moved aside, archive-relative */
  quarantined: string[];
  /** damaged or missing files fetched again from the server with the catalog's hash */
  restored: string[];
  problems: Problem[];
}

export function blankVerifyReport(archive: string, mode: VerifyMode, started = Date.now()): VerifyReport {
  const at = new Date(started).toISOString();
  return {
    kind: "verify",
    archive,
    mode,
    startedAt: at,
    finishedAt: at,
    durationMs: 0,
    counts: { checked: 0, ok: 0, mismatched: 0, missing: 0, extra: 0, skipped: 0 },
    bytes: 0,
    mbPerSec: 0,
    coverage: { files: 0, totalFiles: 0, percent: 0 },
    origin: { checked: 0, matched: 0, mismatched: 0, unavailable: false, repulled: [] },
    mismatches: [],
    missing: [],
    extra: [],
    quarantined: [],
    restored: [],
    problems: [],
  };
}

export function finish(report: VerifyReport, started: number): VerifyReport {
  report.finishedAt = new Date().toISOString();
  report.durationMs = Date.now() - started;
  report.mbPerSec = report.durationMs > 0 ? Math.round((report.bytes / 1e6 / (report.durationMs / 1000)) * 10) / 10 : 0;
  return report;
}

/** Progress for the node's status: `scrub 34% · 410 MB/s`. */
export interface VerifyProgress {
  phase: "listing" | "hashing" | "checking" | "asking server";
  files: number;
  filesTotal: number;
  bytes: number;
  bytesTotal: number;
  elapsedMs: number;
}
