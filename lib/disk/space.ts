import * as fs from "node:fs/promises";
import * as path from "node:path";
import checkDiskSpace from "check-disk-space";
import { ConfigError, messageOf } from "../errors";
import { filesystemDifferences, probeFilesystem, type FsIdentity } from "../archive/filesystem";
import { isAbsent } from "../archive/fsutil";

export type Level = "ok" | "warn" | "critical";

/** What a watched path looks like now. */
export interface PathSpace {
  path: string;
  mounted: boolean;
  /** ok; missing (no such folder); not mounted (an empty folder on the root disk, or another filesystem than last time); error */
  state: "ok" | "missing" | "not mounted" | "error";
  free?: number;
  total?: number;
  /** total − free: what this process cannot write to any more (reserved blocks included) */
  used?: number;
  usedPercent?: number;
  fsType?: string;
  mountPoint?: string;
  filesystem?: FsIdentity;
  reason?: string;
}

export interface Thresholds {
  /** used percent at or above which the level is warn / critical (0: off) */
  warnPercent: number;
  criticalPercent: number;
  /** free bytes below which the level is warn / critical (0: off) */
  warnFree: number;
  criticalFree: number;
  /** days until full below which the archive disk is warn / critical (0: off) */
  warnDays: number;
  criticalDays: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { warnPercent: 85, criticalPercent: 95, warnFree: 0, criticalFree: 0, warnDays: 30, criticalDays: 7 };

/**
 * Measures one folder. A missing folder is never measured through its parent (check-disk-space
 * would walk up to the first existing parent and report the root disk): it is `missing`. A folder
 * whose filesystem differs from the one seen last time (`previous`), or an empty folder on the root
 * filesystem, is `not mounted`: that is what an unmounted disk or share leaves behind.
 */
export async function measurePath(p: string, previous?: FsIdentity): Promise<PathSpace> {
  if (!path.isAbsolute(p)) throw new ConfigError(`watched path must be absolute, got ${JSON.stringify(p)}`); // C:\backup on Windows too
  const gone = (): PathSpace => ({ path: p, mounted: false, state: "missing", reason: `${p} does not exist` });
  // Only "no such folder" is missing; a share that answers EACCES or EIO is an error, with its reason.
  const statOf = () => fs.stat(p).catch((err: unknown) => (isAbsent(err) ? undefined : Promise.reject(err)));
  try {
    const stat = await statOf();
    if (!stat) return gone();
    const filesystem = await probeFilesystem(p);
    if (previous && filesystemDifferences(previous, filesystem).length > 0) {
      return { path: p, mounted: false, state: "not mounted", filesystem, mountPoint: filesystem.mountPoint, reason: `${p} is on another filesystem than at the last check (${filesystem.mountPoint} now)` };
    }
    if (stat.isDirectory() && filesystem.mountPoint === "/" && p !== "/" && (await fs.readdir(p)).length === 0) {
      return { path: p, mounted: false, state: "not mounted", filesystem, mountPoint: "/", reason: `${p} is an empty folder on the root filesystem: nothing is mounted there` };
    }
    const space = await checkDiskSpace(p);
    if (!(await statOf())) return gone(); // vanished while measured: the figures were its parent's
    const used = space.size - space.free;
    return {
      path: p,
      mounted: true,
      state: "ok",
      free: space.free,
      total: space.size,
      used,
      usedPercent: space.size > 0 ? round1((used / space.size) * 100) : 0,
      fsType: filesystem.fsType ?? filesystem.type,
      mountPoint: filesystem.mountPoint,
      filesystem,
    };
  } catch (err) {
    return { path: p, mounted: false, state: "error", reason: `cannot measure ${p}: ${messageOf(err)}` };
  }
}

/** The level of a measured path and why, against the thresholds (and days until full, for the archive disk). */
export function levelOf(space: PathSpace, t: Thresholds, daysUntilFull?: number | null): { level: Level; reasons: string[] } {
  const critical: string[] = [];
  const warn: string[] = [];
  if (!space.mounted || space.free === undefined || space.usedPercent === undefined) return { level: "warn", reasons: [space.reason ?? `${space.path} is not mounted`] };
  const pct = `${space.usedPercent}% used`;
  if (t.criticalPercent > 0 && space.usedPercent >= t.criticalPercent) critical.push(`${pct} (critical at ${t.criticalPercent}%)`);
  else if (t.warnPercent > 0 && space.usedPercent >= t.warnPercent) warn.push(`${pct} (warning at ${t.warnPercent}%)`);
  if (t.criticalFree > 0 && space.free < t.criticalFree) critical.push(`${space.free} bytes free (critical below ${t.criticalFree})`);
  else if (t.warnFree > 0 && space.free < t.warnFree) warn.push(`${space.free} bytes free (warning below ${t.warnFree})`);
  if (daysUntilFull !== undefined && daysUntilFull !== null) {
    if (t.criticalDays > 0 && daysUntilFull < t.criticalDays) critical.push(`full in ${daysUntilFull} days (critical below ${t.criticalDays})`);
    else if (t.warnDays > 0 && daysUntilFull < t.warnDays) warn.push(`full in ${daysUntilFull} days (warning below ${t.warnDays})`);
  }
  if (critical.length > 0) return { level: "critical", reasons: [...critical, ...warn] };
  return { level: warn.length > 0 ? "warn" : "ok", reasons: warn };
}

export function worst(...levels: Level[]): Level {
  return levels.includes("critical") ? "critical" : levels.includes("warn") ? "warn" : "ok";
}

const UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, k: 1e3, m: 1e6, g: 1e9, t: 1e12,
};

/** "50 GB", "1.5TB", "200 GiB", "0" or "" (off) → bytes. Decimal units, as disks are sold and formatBytes shows. */
export function parseSize(text: string | number | undefined, field: string): number {
  if (text === undefined || text === null || text === "") return 0;
  if (typeof text === "number") return ok(text);
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[(m[2] || "b").toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigError(`${field}: ${JSON.stringify(text)} is not a size like "50 GB" or "1.5 TB"`);
  return ok(Number(m[1]) * unit);

  function ok(n: number): number {
    if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${field}: ${JSON.stringify(text)} is not a size`);
    return Math.round(n);
  }
}

/** The threshold fields as a node's settings hold them (text or numbers; empty means the default). */
export interface ThresholdFields {
  warnPercent?: number | string;
  criticalPercent?: number | string;
  warnFree?: string | number;
  criticalFree?: string | number;
  warnDays?: number | string;
  criticalDays?: number | string;
}

/** Thresholds from settings, each checked; a warn level above its critical level is a config error. */
export function parseThresholds(f: ThresholdFields): Thresholds {
  const t: Thresholds = {
    warnPercent: parsePercent(f.warnPercent, "warn percent", DEFAULT_THRESHOLDS.warnPercent),
    criticalPercent: parsePercent(f.criticalPercent, "critical percent", DEFAULT_THRESHOLDS.criticalPercent),
    warnFree: parseSize(f.warnFree, "warn below free"),
    criticalFree: parseSize(f.criticalFree, "critical below free"),
    warnDays: parseDays(f.warnDays, "warn days", DEFAULT_THRESHOLDS.warnDays),
    criticalDays: parseDays(f.criticalDays, "critical days", DEFAULT_THRESHOLDS.criticalDays),
  };
  if (t.warnPercent > 0 && t.criticalPercent > 0 && t.warnPercent > t.criticalPercent) throw new ConfigError(`warn percent ${t.warnPercent} is above critical percent ${t.criticalPercent}`);
  return t;
}

/** A days field: "" → fallback; a negative or non-number is a config error. */
function parseDays(value: unknown, field: string, fallback: number): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${field}: ${JSON.stringify(value)} is not a number of days`);
  return n;
}

/** A percent field: "" → fallback; anything but 0…100 is a config error. */
export function parsePercent(value: unknown, field: string, fallback: number): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 100) throw new ConfigError(`${field}: ${JSON.stringify(value)} is not a percent from 0 to 100`);
  return n;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
