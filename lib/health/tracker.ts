// Keeps one archive's health snapshot up to date and on disk (`.tick-backup/health.json`), so that
// the picture in Home Assistant survives a Node-RED restart.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Archive } from "../archive/archive";
import { writeFileAtomic } from "../archive/fsutil";
import { messageOf } from "../errors";
import { applyOutcome, catalogFigures, emptySnapshot, problemsOf, type HealthOutcome, type HealthSnapshot, type ProblemReason } from "./snapshot";

export const HEALTH_FILE = "health.json";

export interface HealthTrackerOptions {
  name: string;
  /** opens the archive (it may be missing: an unplugged disk) */
  open: () => Promise<Archive>;
  /** a pull older than this many hours is a problem (0: never) */
  staleHours?: number;
  /** called after every change, with the problems as of now */
  onChange?: (snapshot: HealthSnapshot, problems: ProblemReason[]) => void;
  /** a failure to read or save the snapshot (the health goes on in memory) */
  onError?: (message: string) => void;
  /** whether the node that ran still exists: the last run of a node deleted from the flow stops counting */
  sourceExists?: (source: string) => boolean;
  now?: () => Date;
}

export class HealthTracker {
  private snapshot: HealthSnapshot;
  private savedRead = false;
  /** records waiting or running: a burst refreshes the catalog and saves once, after the last */
  private recordsQueued = 0;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: HealthTrackerOptions) {
    this.snapshot = emptySnapshot(options.name, this.now());
  }

  /** Reads the saved snapshot and the catalog's figures. Never throws: a missing disk is itself shown as a problem by the runs. */
  load(): Promise<void> {
    return this.enqueue(async () => {
      const archive = await this.archive();
      if (!archive) return;
      await this.readSaved(archive);
      await this.refreshCatalog(archive);
    });
  }

  /** Folds a run's outcome in, re-reads the catalog's figures, saves, and tells onChange. */
  record(outcome: HealthOutcome): Promise<void> {
    this.recordsQueued++;
    return this.enqueue(async () => {
      const archive = await this.archive();
      // A disk plugged in after the start: what it saved before comes first, then this outcome.
      if (archive) await this.readSaved(archive);
      this.snapshot = applyOutcome(this.snapshot, outcome);
      // Reading a big catalog costs (about 1 s for 100,000 files): a burst of outcomes reads it once, after the last.
      if (!archive || this.recordsQueued > 1) return;
      await this.refreshCatalog(archive);
      await this.save(archive);
    }).finally(() => this.recordsQueued--);
  }

  /**
   * Re-evaluates without a new outcome (staleness moves with the clock), forgets the runs of nodes
   * that no longer exist (a failing node deleted from the flow is no longer a problem), and tells onChange.
   */
  refresh(): Promise<void> {
    return this.enqueue(async () => {
      const exists = this.options.sourceExists;
      if (!exists) return;
      const runs = Object.entries(this.snapshot.runs);
      const kept = runs.filter(([source]) => exists(source));
      if (kept.length === runs.length) return;
      // What the archive saved comes in first, so that saving the pruned snapshot loses none of it.
      const archive = await this.archive();
      if (archive) await this.readSaved(archive);
      this.snapshot = { ...this.snapshot, runs: Object.fromEntries(Object.entries(this.snapshot.runs).filter(([source]) => exists(source))) };
      if (archive) await this.save(archive);
    });
  }

  get current(): { snapshot: HealthSnapshot; problems: ProblemReason[] } {
    return { snapshot: this.snapshot, problems: problemsOf(this.snapshot, { now: this.now(), staleHours: this.options.staleHours }) };
  }

  /** resolves when every queued update has been handled */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Runs tasks one after another; the queue never rejects (a failure, or a listener's, is reported), so no task is ever skipped. */
  private enqueue(task: () => Promise<void>): Promise<void> {
    const report = (err: unknown) => this.options.onError?.(messageOf(err));
    this.queue = this.queue
      .then(task)
      .catch(report)
      .then(() => {
        const { snapshot, problems } = this.current;
        this.options.onChange?.(snapshot, problems);
      })
      .catch(report);
    return this.queue;
  }

  /** Merges the saved snapshot in, once (outcomes seen before the disk came keep their place on top). */
  private async readSaved(archive: Archive): Promise<void> {
    if (this.savedRead) return;
    this.savedRead = true;
    try {
      const saved = JSON.parse(await fs.readFile(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot;
      if (saved.format !== 1 || typeof saved.runs !== "object" || typeof saved.lastSuccess !== "object" || !saved.runs || !saved.lastSuccess) throw new Error("not a health snapshot of this version");
      const seen = this.snapshot;
      this.snapshot = { ...saved, archive: this.options.name };
      // Anything learnt while the disk was away is newer than the file.
      if (Object.keys(seen.runs).length > 0) {
        this.snapshot = { ...this.snapshot, ...pick(seen), runs: { ...this.snapshot.runs, ...seen.runs }, lastSuccess: { ...this.snapshot.lastSuccess, ...seen.lastSuccess } };
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.options.onError?.(`health snapshot unreadable, starting afresh: ${messageOf(err)}`);
    }
  }

  private async archive(): Promise<Archive | undefined> {
    try {
      return await this.options.open();
    } catch {
      return undefined; // the run that needed the archive reports it; health keeps what it knows
    }
  }

  private async refreshCatalog(archive: Archive): Promise<void> {
    const catalog = await archive.readCatalog();
    this.snapshot = { ...this.snapshot, catalog: catalogFigures(catalog.all(), this.now()) };
  }

  private async save(archive: Archive): Promise<void> {
    await writeFileAtomic(path.join(archive.stateDir, HEALTH_FILE), JSON.stringify(this.snapshot, null, 1) + "\n");
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}

/** The per-kind figures a snapshot has learnt (those it has not learnt stay out, not undefined). */
function pick(s: HealthSnapshot): Partial<HealthSnapshot> {
  const out: Partial<HealthSnapshot> = {};
  for (const k of ["pull", "disk", "verify", "offsite"] as const) if (s[k] !== undefined) Object.assign(out, { [k]: s[k] });
  return out;
}
