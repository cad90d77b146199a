import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import type { FileRecord } from "../archive/catalog";
import { ConfigError, messageOf } from "../errors";
import { restore, select, type RestoreProblem, type RestoreProgress } from "./restore";
import type { RestoreSource } from "./source";
import type { VerifyReport } from "../verify/report";

export interface DrillOptions {
  archive: string;
  /** every copy to drill: the archive folder and/or offsite targets */
  sources: RestoreSource[];
  /** how many files per source (default 10) */
  files?: number;
  /** or this percentage of the files (whichever is larger) */
  percent?: number;
  /** where the temporary folder goes (default: the system's) */
  tempDir?: string;
  random?: () => number;
  signal?: AbortSignal;
  onProgress?: (p: RestoreProgress & { source: string }) => void;
}

export interface DrillSourceResult {
  source: string;
  checked: number;
  ok: number;
  mismatched: number;
  missing: number;
  failed: number;
  bytes: number;
  sample: string[];
}

/** A drill reports as a verify run in mode "drill": the health snapshot keeps its last success. */
export type DrillReport = Pick<VerifyReport, "kind" | "archive" | "startedAt" | "finishedAt" | "durationMs" | "counts" | "bytes" | "mbPerSec" | "coverage" | "mismatches" | "missing" | "extra"> & {
  mode: "drill";
  origin: Omit<VerifyReport["origin"], "repulled">;
  sources: DrillSourceResult[];
  problems: RestoreProblem[];
};

/**
 * Restores a random sample from every copy into a temporary folder, compares each file's SHA-256
 * with the copy's catalog, reports, and removes the folder. The sample always holds the newest and
 * the oldest files (recent uploads and long-untouched objects are where trouble hides) and a random
 * rest.
 */
export async function drill(options: DrillOptions): Promise<DrillReport> {
  if (options.sources.length === 0) throw new ConfigError("a drill needs at least one copy to read from (the archive or an offsite target)");
  const started = Date.now();
  const report: DrillReport = {
    kind: "verify",
    mode: "drill",
    archive: options.archive,
    startedAt: new Date(started).toISOString(),
    finishedAt: "",
    durationMs: 0,
    counts: { checked: 0, ok: 0, mismatched: 0, missing: 0, extra: 0, skipped: 0 },
    bytes: 0,
    mbPerSec: 0,
    coverage: { files: 0, totalFiles: 0, percent: 0 },
    origin: { checked: 0, matched: 0, mismatched: 0, unavailable: true, reason: "not asked in a drill" },
    mismatches: [],
    missing: [],
    extra: [],
    sources: [],
    problems: [],
  };
  const base = await fsp.mkdtemp(path.join(options.tempDir ?? os.tmpdir(), "tick-backup-drill-"));
  try {
    for (const [i, source] of options.sources.entries()) {
      const result: DrillSourceResult = { source: source.description, checked: 0, ok: 0, mismatched: 0, missing: 0, failed: 0, bytes: 0, sample: [] };
      report.sources.push(result);
      try {
        const candidates = select(await source.records(), {}).filter((r) => r.state === "final" && source.has(r));
        report.coverage.totalFiles = Math.max(report.coverage.totalFiles, candidates.length);
        result.sample = sample(candidates, options.files ?? 10, options.percent ?? 0, options.random ?? Math.random);
        const r = await restore({
          source,
          to: path.join(base, String(i)),
          paths: result.sample,
          signal: options.signal,
          onProgress: (p) => options.onProgress?.({ ...p, source: source.description }),
        });
        result.checked = r.counts.selected;
        result.ok = r.counts.restored + r.counts.present;
        result.mismatched = r.counts.mismatched;
        result.missing = r.counts.missing;
        result.failed = r.counts.failed;
        result.bytes = r.bytes;
        report.mismatches.push(...r.mismatches.map((p) => label(p, source, options.sources.length)));
        report.missing.push(...r.missing.map((p) => label(p, source, options.sources.length)));
        report.problems.push(...r.problems.map((p) => ({ ...p, message: `${source.description}: ${p.message}` })));
      } catch (err) {
        if (options.signal?.aborted) throw err;
        result.failed++;
        report.problems.push({ code: (err as { code?: string }).code ?? "DRILL_FAILED", message: `${source.description}: ${messageOf(err)}` });
      } finally {
        await fsp.rm(path.join(base, String(i)), { recursive: true, force: true });
      }
      report.counts.checked += result.checked;
      report.counts.ok += result.ok;
      report.counts.mismatched += result.mismatched;
      report.counts.missing += result.missing;
      report.counts.skipped += result.failed;
      report.bytes += result.bytes;
      report.coverage.files = Math.max(report.coverage.files, result.checked);
    }
  } finally {
    await fsp.rm(base, { recursive: true, force: true });
  }
  report.coverage.percent = report.coverage.totalFiles > 0 ? Math.round((report.coverage.files / report.coverage.totalFiles) * 1000) / 10 : 0;
  report.finishedAt = new Date().toISOString();
  report.durationMs = Date.now() - started;
  report.mbPerSec = report.durationMs > 0 ? Math.round((report.bytes / 1e6 / (report.durationMs / 1000)) * 10) / 10 : 0;
  return report;
}

/** The sample: the newest and the oldest (by server mtime) and random others, `max(n, percent)` in all. */
export function sample(records: FileRecord[], n: number, percent: number, random: () => number): string[] {
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`the drill sample must be at least 1 file, got ${n}`);
  if (!(percent >= 0 && percent <= 100)) throw new ConfigError(`the drill percentage must be from 0 to 100, got ${percent}`);
  const want = Math.min(records.length, Math.max(n, Math.ceil((records.length * percent) / 100)));
  const byAge = [...records].sort((a, b) => a.mtime - b.mtime || (a.path < b.path ? -1 : 1));
  const picked = new Set<string>();
  const ends = Math.min(want, Math.max(1, Math.floor(want / 4)));
  for (let k = 0; picked.size < ends * 2 && k < byAge.length; k++) {
    picked.add(byAge[byAge.length - 1 - k].path);
    if (picked.size < want) picked.add(byAge[k].path);
    if (picked.size >= want) break;
  }
  const rest = byAge.filter((r) => !picked.has(r.path));
  while (picked.size < want && rest.length > 0) {
    const [r] = rest.splice(Math.floor(random() * rest.length), 1);
    picked.add(r.path);
  }
  return [...picked].sort();
}

function label(p: string, source: RestoreSource, n: number): string {
  return n > 1 ? `${p} (${source.description})` : p;
}
