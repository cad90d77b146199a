import type { Archive } from "../archive/archive";
import type { FsIdentity } from "../archive/filesystem";
import { readHistory } from "../archive/history";
import type { Problem } from "../report";
import * as path from "node:path";
import { BackupError, ConfigError } from "../errors";
import { levelOf, measurePath, worst, type Level, type PathSpace, type Thresholds } from "./space";
import { computeVolume, type VolumeStats } from "./volume";

export interface DiskCheckOptions {
  archiveName: string;
  archivePath: string;
  /** opens the archive (the backup-archive node's cached open) */
  open: () => Promise<Archive>;
  extraPaths: string[];
  thresholds: Thresholds;
  /** filesystems of the extra paths at the previous check; updated in place */
  seen?: Map<string, FsIdentity>;
  now?: () => Date;
  utc?: boolean;
}

/** The disk-space node's `msg.payload`. */
export interface DiskReport {
  kind: "disk";
  archive: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  level: Level;
  archiveDisk: Omit<PathSpace, "filesystem"> & { level: Level };
  extra: Array<Omit<PathSpace, "filesystem"> & { level: Level }>;
  volume: VolumeStats | null;
  problems: Problem[];
}

/** Errors that mean "the archive is not where it should be": a state of the disk to report, not a failed check. */
const PLACE_ERRORS: Record<string, PathSpace["state"]> = {
  ARCHIVE_MISSING: "missing",
  ARCHIVE_NOT_FOUND: "not mounted",
  ARCHIVE_FS_CHANGED: "not mounted",
  ARCHIVE_REPLACED: "not mounted",
};

/**
 * One check: where the archive stands (its disk mounted, the same filesystem as at its creation),
 * free space of it and of the extra paths, and the volume statistics. Never writes anything.
 */
export async function checkDisk(options: DiskCheckOptions): Promise<DiskReport> {
  const now = options.now ?? (() => new Date());
  const started = now();
  const report = blankDiskReport(options.archiveName, options.archivePath, started);
  for (const p of options.extraPaths) if (!path.isAbsolute(p)) throw new ConfigError(`watched path must be absolute, got ${JSON.stringify(p)}`);

  let archive: Archive | undefined;
  try {
    archive = await options.open();
    await archive.checkPlace();
  } catch (err) {
    const state = err instanceof BackupError ? PLACE_ERRORS[err.code] : undefined;
    if (!state || !(err instanceof BackupError)) throw err;
    report.archiveDisk = { path: options.archivePath, mounted: false, state, level: "critical", reason: err.message };
    report.problems.push({ code: err.code, message: err.message, path: options.archivePath });
    archive = undefined;
  }

  if (archive) {
    const { filesystem: _fs, ...space } = await measurePath(options.archivePath);
    const catalog = await archive.readCatalog();
    const history = await readHistory(archive.stateDir);
    report.volume = computeVolume(catalog.all(), history.entries, { now: now(), freeBytes: space.free, utc: options.utc, damagedHistory: history.damaged });
    const days = minOf(report.volume.daysUntilFull7, report.volume.daysUntilFull30);
    const { level, reasons } = space.mounted ? levelOf(space, options.thresholds, days) : { level: "critical" as Level, reasons: [space.reason ?? "not measurable"] };
    report.archiveDisk = { ...space, level };
    if (level !== "ok") report.problems.push({ code: level === "critical" ? "DISK_CRITICAL" : "DISK_LOW", message: `archive disk: ${reasons.join("; ")}`, path: options.archivePath });
  }

  for (const p of options.extraPaths) {
    const { filesystem, ...space } = await measurePath(p, options.seen?.get(p));
    // Remember only a mounted filesystem: an unmounted one must not become the new normal.
    if (filesystem && space.mounted) options.seen?.set(p, filesystem);
    const { level, reasons } = levelOf(space, options.thresholds);
    report.extra.push({ ...space, level });
    if (level !== "ok") {
      const code = space.mounted ? (level === "critical" ? "DISK_CRITICAL" : "DISK_LOW") : "NOT_MOUNTED";
      report.problems.push({ code, message: `${p}: ${reasons.join("; ")}`, path: p });
    }
  }

  report.level = worst(report.archiveDisk.level, ...report.extra.map((e) => e.level));
  const finished = now();
  report.finishedAt = finished.toISOString();
  report.durationMs = Math.max(0, finished.getTime() - started.getTime());
  return report;
}

/** A report with nothing checked yet: the shape of every answer, busy answers included. */
export function blankDiskReport(archive: string, archivePath: string, started = new Date()): DiskReport {
  return {
    kind: "disk",
    archive,
    startedAt: started.toISOString(),
    finishedAt: started.toISOString(),
    durationMs: 0,
    level: "ok",
    archiveDisk: { path: archivePath, mounted: false, state: "missing", level: "critical" },
    extra: [],
    volume: null,
    problems: [],
  };
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}
