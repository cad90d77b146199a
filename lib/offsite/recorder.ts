import type { Archive } from "../archive/archive";
import type { OffsiteCopy } from "./target";

/**
 * Records verified copies in the catalog in batches: one short update (one lock, one journal
 * fsync) for many small files, at most a second or 200 files after each copy was proven. A crash
 * in between loses only the record; the next run finds the object and adopts or redoes it.
 * A batch that cannot be written (the catalog's disk full a moment) goes back in the queue and is
 * tried again with the next one; only the last flush of a run reports that recording failed.
 */
export class CopyRecorder {
  private pending: Array<{ path: string; copy: OffsiteCopy }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly archive: Archive, private readonly id: string) {}

  /** Queues one proven copy; never fails (a failed batch waits for the next flush). */
  add(path: string, copy: OffsiteCopy): Promise<void> {
    this.pending.push({ path, copy });
    if (this.pending.length >= 200) return this.flush().catch(() => undefined);
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), 1000);
    return Promise.resolve();
  }

  /** Writes everything queued when its turn comes (after the flushes before it); rejects if that write fails. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing
      .catch(() => undefined)
      .then(() => {
        const batch = this.pending.splice(0);
        if (!batch.length) return;
        return this.write(batch).catch((err: unknown) => {
          this.pending.unshift(...batch);
          throw err;
        });
      });
    return this.flushing;
  }

  private write(batch: Array<{ path: string; copy: OffsiteCopy }>): Promise<void> {
    return this.archive.update(async (cat) => {
      await Promise.all(
        batch.map(({ path, copy }) =>
          cat.patch(path, (current) => {
            if (current.sha256 !== copy.sha256) return current; // rewritten meanwhile: this copy is of an older content
            const previous = current.copies?.[this.id];
            const earlier = previous ? [...(previous.earlier ?? []), { ...previous, earlier: undefined }] : undefined;
            return { ...current, copies: { ...current.copies, [this.id]: { ...copy, ...(earlier ? { earlier } : {}) } } };
          }),
        ),
      );
    });
  }
}
