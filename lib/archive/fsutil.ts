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
    await renameReplacing(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined); // a failed write leaves no stray file
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/** Errors Windows gives while another program (a virus scanner, the search indexer, a backup agent) briefly holds the target open. */
const WINDOWS_BUSY = new Set(["EPERM", "EACCES", "EBUSY"]);

/**
 * Renames `from` over `to`, replacing it. POSIX does that atomically; so does Windows (MoveFileEx
 * with replace), except that it refuses while another program holds `to` open, which a virus scanner
 * does for a moment after every write. There it is tried again for up to `waitMs` before giving up.
 */
export async function renameReplacing(from: string, to: string, options: { platform?: NodeJS.Platform; waitMs?: number } = {}): Promise<void> {
  const windows = (options.platform ?? process.platform) === "win32";
  const deadline = Date.now() + (options.waitMs ?? 10_000);
  for (let delay = 20; ; delay = Math.min(delay * 2, 1000)) {
    try {
      await fs.rename(from, to);
      return;
    } catch (err) {
      if (!windows || !WINDOWS_BUSY.has((err as NodeJS.ErrnoException).code ?? "") || Date.now() + delay > deadline) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Whether a failed stat, open or read says "nothing there": no such name, or a file where a folder of the path would be. */
export function isAbsent(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
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

/** Errors of link() on filesystems without hard links (FAT, exFAT, some network shares). */
export const NO_HARD_LINKS: ReadonlySet<string> = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EMLINK"]);

/**
 * Creates `file` holding `data` unless it exists, and returns what `file` holds afterwards, parsed:
 * of several processes creating it at once exactly one wins and all get the winner's. The data is
 * written aside and hard-linked into place; where the filesystem has no hard links, an exclusive
 * create picks the winner, and a loser rereads until the winner's write is complete.
 */
export async function createOnce<T>(file: string, data: string, parse: (text: string) => T): Promise<T> {
  const tmp = `${file}.tmp-${process.pid}-${randomUUID()}`;
  try {
    await writeFileAtomic(tmp, data);
    await fs.link(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (code !== "EEXIST") {
      if (!NO_HARD_LINKS.has(code)) throw err;
      await createExclusive(file, data);
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
  await fsyncDir(path.dirname(file));
  for (let attempt = 0; ; attempt++) {
    const text = await fs.readFile(file, "utf8");
    try {
      return parse(text);
    } catch (err) {
      if (attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20)); // another process is still writing it
    }
  }
}

async function createExclusive(file: string, data: string): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, "wx");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw err;
  }
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
