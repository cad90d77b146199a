import * as fs from "node:fs/promises";
import * as path from "node:path";
import { Catalog, storedPathOf, type FileRecord } from "../archive/catalog";
import { STATE_DIR } from "../archive/paths";
import { BackupError, messageOf } from "../errors";
import { partitionOf } from "./schedule";

/** What a run reads: partition `n` of `t`, or everything. */
export interface Selection {
  root: string;
  stateDir: string;
  t: number;
  n: number;
  full: boolean;
}

/**
 * The fields a run needs of a record: little to copy between threads. `storedPath` is where the
 * bytes are when the disk needed another name (docs/platforms.md).
 */
export type Checked = Pick<FileRecord, "path" | "size" | "sha256" | "storedPath" | "copies">;

export interface Selected {
  /** the catalog's records in the run's partition, sorted by path */
  records: Checked[];
  totalFiles: number;
  /** files on disk in the partition that the catalog does not know */
  extra: string[];
}

/**
 * Loads the catalog (without the lock, like Archive.readCatalog) and picks the run's files. Runs in
 * the hash worker: parsing a big catalog and walking the tree would otherwise hold up the event loop.
 */
export async function selectFiles(sel: Selection): Promise<Selected> {
  const inPart = (rel: string) => sel.full || partitionOf(rel, sel.t) === sel.n;
  // The walk's directory reads run on the thread pool while this thread parses the catalog.
  const [catalog, onDisk] = await Promise.all([Catalog.load(sel.stateDir), filesOnDisk(sel.root)]);
  const records = catalog
    .all()
    .filter((r) => inPart(r.path))
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((r): Checked => {
      const checked: Checked = { path: r.path, size: r.size, sha256: r.sha256, ...(r.storedPath ? { storedPath: r.storedPath } : {}) };
      return r.copies ? { ...checked, copies: r.copies } : checked;
    });
  const stored = new Set(catalog.all().map(storedPathOf));
  const extra = onDisk.filter((rel) => !stored.has(rel) && inPart(rel));
  return { records, totalFiles: catalog.size, extra };
}

/** Every regular file under the archive root, outside the state area, as archive-relative paths. */
async function filesOnDisk(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
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
