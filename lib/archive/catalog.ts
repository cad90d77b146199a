import * as fs from "node:fs/promises";
import * as path from "node:path";
import { BackupError } from "../errors";
import { writeFileAtomic } from "./fsutil";
import type { OffsiteCopy } from "../offsite/target";

export type FileState = "live" | "final";

/** An earlier content of a path, kept because the server changed a file we had already archived. */
export interface FileVersion {
  size: number;
  mtime: number;
  sha256: string;
  pulledAt: string;
  keptAt: string;
  /** archive-relative location of the kept bytes */
  storedAs: string;
  reason: "rewritten" | "unknown-local";
}

/** One record per archived file: the single source of truth for what is safe where. */
export interface FileRecord {
  path: string;
  size: number;
  /** remote modification time, seconds since the epoch */
  mtime: number;
  sha256: string;
  state: FileState;
  firstPulledAt: string;
  pulledAt: string;
  goneSince?: string;
  versions?: FileVersion[];
  /** when hash-verify last read the archived copy back (or asked the server about it) */
  verifiedAt?: string;
  /** what it found: "suspect" while the server's hash disagrees with the download's */
  verifyResult?: "ok" | "mismatch" | "missing" | "suspect";
  /** verified copies on offsite targets, by target id; only those of the current content count (currentCopies) */
  copies?: Record<string, OffsiteCopy>;
  /** where the file is stored, archive-relative, when that differs from `path` (a name the disk cannot hold: names.ts) */
  storedPath?: string;
}

/**
 * The offsite targets that hold the record's current content: a copy of older bytes (the file grew
 * or was rewritten since) would restore other bytes, so it is no copy of this file. A file's copies
 * are the archive's plus these.
 */
export function currentCopies(record: Pick<FileRecord, "sha256" | "copies">): string[] {
  return Object.entries(record.copies ?? {})
    .filter(([, copy]) => copy.sha256 === record.sha256)
    .map(([id]) => id);
}

/** The archive-relative path of a record's bytes: what every reader of the archive opens (localPath(root, storedPathOf(r))). */
export function storedPathOf(record: Pick<FileRecord, "path" | "storedPath">): string {
  return record.storedPath ?? record.path;
}

const SNAPSHOT = "catalog.json";
const JOURNAL = "catalog.journal";
const FORMAT = 1;
/** Past this many journal lines the next compaction rewrites the snapshot. */
const COMPACT_AFTER = 2000;

/**
 * The catalog is a snapshot plus an append-only journal of whole records. A crash at any instant
 * leaves at worst a torn last journal line, which has no newline and is ignored: every record
 * before it was fsynced, and replaying whole records twice changes nothing.
 */
export class Catalog {
  private readonly records = new Map<string, FileRecord>();
  private journalLines = 0;
  private pending: Array<{ lines: string; count: number; resolve: () => void; reject: (err: unknown) => void }> = [];
  private flushing: Promise<void> | undefined;

  private constructor(private readonly stateDir: string) {}

  static async load(stateDir: string, options: { writable?: boolean } = {}): Promise<Catalog> {
    const catalog = new Catalog(stateDir);
    const snapshot = await readOptional(path.join(stateDir, SNAPSHOT));
    if (snapshot !== undefined) {
      let parsed: { format: number; records: FileRecord[] };
      try {
        parsed = (await parseByLine(snapshot)) ?? JSON.parse(snapshot);
      } catch (err) {
        throw new BackupError("CATALOG_DAMAGED", `catalog snapshot ${path.join(stateDir, SNAPSHOT)} is not valid JSON`, { cause: err });
      }
      if (parsed.format !== FORMAT) {
        throw new BackupError("CATALOG_FORMAT", `catalog format ${parsed.format} is not supported by this version (${FORMAT})`);
      }
      for (const record of parsed.records) catalog.records.set(record.path, record);
    }
    const journal = (await readOptional(path.join(stateDir, JOURNAL))) ?? "";
    const lines = journal.split("\n");
    lines.pop(); // the text after the last newline is empty, or a torn write that never completed
    lines.forEach((line, i) => {
      let record: FileRecord;
      try {
        record = JSON.parse(line);
      } catch (err) {
        throw new BackupError("CATALOG_DAMAGED", `catalog journal line ${i + 1} is damaged`, { cause: err });
      }
      catalog.records.set(record.path, record);
    });
    catalog.journalLines = lines.length;
    if (options.writable && journal.length > 0 && !journal.endsWith("\n")) await catalog.compact(true); // drop the torn tail for good
    return catalog;
  }

  get(p: string): FileRecord | undefined {
    return this.records.get(p);
  }

  all(): FileRecord[] {
    return [...this.records.values()];
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * Makes records durable. Callers that commit while a flush is running are gathered into the next
   * one, so that many small files cost few fsyncs.
   */
  commit(...records: FileRecord[]): Promise<void> {
    // Each record is serialized once: the journal line, and the kept copy parsed back from it
    // (cheaper than structuredClone, and exactly what a reload would give).
    const lines = records.map((r) => JSON.stringify(r) + "\n");
    lines.forEach((line, i) => this.records.set(records[i].path, JSON.parse(line)));
    return new Promise((resolve, reject) => {
      this.pending.push({ lines: lines.join(""), count: records.length, resolve, reject });
      if (!this.flushing) this.flushing = this.flushLoop();
    });
  }

  /**
   * Commits many records at once (a scrub's marks). When they would make the journal due for
   * compaction anyway, they go straight into a new snapshot: each record is written and
   * serialized once, instead of a journal line, its parse-back and the compaction that folds it
   * in. The records become the catalog's own; the caller must not change them afterwards.
   */
  async commitAll(records: FileRecord[]): Promise<void> {
    if (this.journalLines + records.length < COMPACT_AFTER) return this.commit(...records);
    for (const r of records) this.records.set(r.path, r);
    await this.compact(true);
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        const handle = await fs.open(path.join(this.stateDir, JOURNAL), "a");
        try {
          await handle.write(batch.map((b) => b.lines).join(""));
          await handle.sync();
        } finally {
          await handle.close();
        }
        this.journalLines += batch.reduce((n, b) => n + b.count, 0);
        batch.forEach((b) => b.resolve());
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    this.flushing = undefined;
  }

  /**
   * Changes some fields of one record and commits it. The read and the change happen in the same
   * tick, so a patch never undoes another writer's change made while the caller was busy.
   * Returns undefined (and commits nothing) when the record no longer exists.
   */
  patch(p: string, change: Partial<FileRecord> | ((current: FileRecord) => FileRecord)): Promise<FileRecord | undefined> {
    const current = this.records.get(p);
    if (!current) return Promise.resolve(undefined);
    const next = typeof change === "function" ? change(structuredClone(current)) : { ...current, ...change, path: p };
    return this.commit(next).then(() => next);
  }

  /** Folds the journal into a new snapshot when it has grown long (or always, with force). */
  async compact(force = false): Promise<void> {
    await this.flushing;
    if (!force && this.journalLines < COMPACT_AFTER) return;
    const linesBefore = this.journalLines;
    const records = [...this.records.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
    // JSON of { format, records } with one record a line, built in slices so that a big catalog
    // does not hold up the event loop in one piece (and read back in slices by parseByLine).
    const parts: string[] = [];
    for (let i = 0; i < records.length; i += 2000) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      parts.push(records.slice(i, i + 2000).map((r) => JSON.stringify(r)).join(",\n"));
    }
    await writeFileAtomic(path.join(this.stateDir, SNAPSHOT), `${SNAPSHOT_HEAD}${parts.join(",\n")}${SNAPSHOT_TAIL}`);
    // A record committed meanwhile is only in the journal: keep it (replaying it is harmless).
    if (this.flushing || this.pending.length > 0 || this.journalLines !== linesBefore) return;
    // A crash here replays the old journal over the new snapshot: whole records, so no harm.
    await writeFileAtomic(path.join(this.stateDir, JOURNAL), "");
    this.journalLines = 0;
  }
}

/** A snapshot as compact() writes it: valid JSON, one record a line (JSON text holds no raw line break). */
const SNAPSHOT_HEAD = `{"format":${FORMAT},"records":[\n`;
const SNAPSHOT_TAIL = "\n]}";

/**
 * Parses a snapshot of compact()'s layout a slice of lines at a time, yielding between slices, so
 * that loading a big catalog does not hold up the event loop in one piece. Any other text (an
 * older snapshot on one line, an empty catalog, one edited by hand) returns undefined: JSON.parse
 * takes it whole.
 */
async function parseByLine(text: string): Promise<{ format: number; records: FileRecord[] } | undefined> {
  if (!text.startsWith(SNAPSHOT_HEAD) || !text.endsWith(SNAPSHOT_TAIL)) return undefined;
  const lines = text.slice(SNAPSHOT_HEAD.length, -SNAPSHOT_TAIL.length).split("\n");
  const records: FileRecord[] = [];
  try {
    for (let i = 0; i < lines.length; i += 2000) {
      if (i > 0) await new Promise((r) => setImmediate(r));
      lines.slice(i, i + 2000).forEach((line, j) => {
        // Every record but the last ends in a comma: otherwise the text is not this layout's JSON.
        const last = i + j === lines.length - 1;
        if (line.endsWith(",") === last) throw new Error("not one record a line");
        records.push(JSON.parse(last ? line : line.slice(0, -1)));
      });
    }
  } catch {
    return undefined;
  }
  return { format: FORMAT, records };
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
