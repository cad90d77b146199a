import * as fs from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";

/** fsync a directory so that a rename or create inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  let handle: fs.FileHandle | undefined;
  try {
    handle = await fs.open(dir, "r");
    await handle.sync();
  } catch (err) {
    // Some platforms and network filesystems cannot fsync a directory; the rename is still atomic.
    if (!["EISDIR", "EINVAL", "EPERM", "EACCES", "ENOTSUP"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
  } finally {
    await handle?.close();
  }
}

/** Writes a whole file under a temporary name, fsyncs it and renames it into place. */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomUUID()}`;
  const handle = await fs.open(tmp, "w");
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined); // a failed write leaves no stray file
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.lstat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

export async function sizeOf(p: string): Promise<number | undefined> {
  try {
    return (await fs.stat(p)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * fsyncs directories on behalf of many concurrent renames: a caller joins the next sync of its
 * directory (never one already running, which may have started before its rename), so a burst of
 * small files in one folder costs a few directory fsyncs, not one each.
 */
export class DirSyncer {
  private readonly state = new Map<string, { running?: Promise<void>; next?: Promise<void> }>();

  sync(dir: string): Promise<void> {
    let s = this.state.get(dir);
    if (!s) this.state.set(dir, (s = {}));
    const slot = s;
    const start = (): Promise<void> => {
      const run = fsyncDir(dir).finally(() => {
        if (slot.running === run) slot.running = undefined;
        if (!slot.running && !slot.next) this.state.delete(dir);
      });
      slot.running = run;
      return run;
    };
    if (!slot.running) return start();
    slot.next ??= slot.running.catch(() => undefined).then(() => {
      slot.next = undefined;
      return start();
    });
    return slot.next;
  }
}
