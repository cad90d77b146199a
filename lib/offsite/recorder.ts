import type { Archive } from "../archive/archive";
import type { OffsiteCopy } from "./target";

/**
 * Records verified copies in the catalog in batches: one short update (one lock, one journal
 * fsync) for many small files, at most a second or 200 files after each copy was proven. A crash
 * in between loses only the record; the next run finds the object and adopts or redoes it.
 */
export class CopyRecorder {
  private pending: Array<{ path: string; copy: OffsiteCopy }> = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly archive: Archive, private readonly id: string) {}

  add(path: string, copy: OffsiteCopy): Promise<void> {
    this.pending.push({ path, copy });
    if (this.pending.length >= 200) return this.flush();
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), 1000);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.flushing.then(() => (batch.length ? this.write(batch) : undefined));
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
