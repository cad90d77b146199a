import picomatch from "picomatch";
import type { Catalog, FileRecord } from "../archive/catalog";
import type { Listing, RemoteFile } from "./list";

/**
 * What a run will do with each remote file:
 * - new: not in the archive yet
 * - grown: larger than archived (append-only growth; the old bytes are checked before appending)
 * - unchanged: same size and mtime
 * - settled: unchanged, was live, is now old enough to be final
 * - changed: same size, other mtime — the content decides (touched, or rewritten)
 * - rewritten: smaller than archived: the server's file is no longer what we hold
 */
export type PlanKind = "new" | "grown" | "unchanged" | "settled" | "changed" | "rewritten";

export interface PlanItem {
  kind: PlanKind;
  remote: RemoteFile;
  record?: FileRecord;
  /** younger than settleSeconds: still being written on the server */
  live: boolean;
}

export interface PullPlan {
  items: PlanItem[];
  /** archived files (in scope) that the server no longer has; they stay in the archive */
  gone: FileRecord[];
  /** new files older than maxAgeDays, not pulled */
  tooOld: number;
  /** files outside include/exclude */
  excluded: number;
}

export interface PlanOptions {
  include?: string[];
  exclude?: string[];
  settleSeconds?: number;
  maxAgeDays?: number;
  now?: Date;
}

/** Turns "a, b\nc" into ["a","b","c"]: the editor gives globs as one text field. */
export function parseGlobs(text: string | string[] | undefined): string[] {
  const list = Array.isArray(text) ? text : (text ?? "").split(/[,\n]/);
  return list.map((g) => g.trim()).filter((g) => g.length > 0);
}

export function makeFilter(include: string[] = [], exclude: string[] = []): (rel: string) => boolean {
  const inc = include.length > 0 ? picomatch(include) : () => true;
  const exc = exclude.length > 0 ? picomatch(exclude) : () => false;
  return (rel) => inc(rel) && !exc(rel);
}

export function planPull(listing: Listing, catalog: Catalog, options: PlanOptions = {}): PullPlan {
  const nowSec = (options.now ?? new Date()).getTime() / 1000;
  const settle = options.settleSeconds ?? 120;
  const maxAge = options.maxAgeDays ?? 0;
  const inScope = makeFilter(options.include, options.exclude);
  const plan: PullPlan = { items: [], gone: [], tooOld: 0, excluded: 0 };
  const seen = new Set<string>();

  for (const remote of listing.files) {
    if (!inScope(remote.rel)) {
      plan.excluded++;
      continue;
    }
    seen.add(remote.rel);
    const record = catalog.get(remote.rel);
    const live = nowSec - remote.mtime < settle;
    if (!record) {
      if (maxAge > 0 && nowSec - remote.mtime > maxAge * 86400) plan.tooOld++;
      else plan.items.push({ kind: "new", remote, live });
      continue;
    }
    plan.items.push({ kind: kindOf(remote, record, live), remote, record, live });
  }
  for (const record of catalog.all()) {
    if (!seen.has(record.path) && inScope(record.path)) plan.gone.push(record);
  }
  return plan;
}

function kindOf(remote: RemoteFile, record: FileRecord, live: boolean): PlanKind {
  if (remote.size > record.size) return "grown";
  if (remote.size < record.size) return "rewritten";
  if (remote.mtime !== record.mtime) return "changed";
  if (record.state === "live" && !live) return "settled";
  return "unchanged";
}
