import * as fs from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import * as lockfile from "proper-lockfile";
import { ArchiveLocked, BackupError, ConfigError } from "../errors";
import { Catalog } from "./catalog";
import { exists, fsyncDir, writeFileAtomic } from "./fsutil";
import { STATE_DIR } from "./paths";

export interface ArchiveIdentity {
  id: string;
  name: string;
  createdAt: string;
  format: 1;
}

/**
 * A local directory holding the data files in the server's own tree, plus the state area
 * (`.tick-backup/`: identity, catalog, partial downloads, kept versions).
 */
export class Archive {
  readonly stateDir: string;

  private constructor(readonly root: string, readonly identity: ArchiveIdentity) {
    this.stateDir = path.join(root, STATE_DIR);
  }

  /**
   * Opens the archive in `root`, initialising its state area the first time. The root folder itself
   * must already exist: a missing folder usually means an unplugged disk, and creating it would fill
   * the wrong disk.
   */
  static async open(root: string, options: { name?: string } = {}): Promise<Archive> {
    if (!root || !path.isAbsolute(root)) throw new ConfigError(`archive path must be an absolute folder, got ${JSON.stringify(root)}`);
    const stat = await fs.stat(root).catch(() => undefined);
    if (!stat) {
      throw new BackupError("ARCHIVE_MISSING", `archive folder ${root} does not exist: is the backup disk mounted? Create the folder once by hand.`, {
        retryable: true,
      });
    }
    if (!stat.isDirectory()) throw new ConfigError(`archive path ${root} is not a folder`);
    const stateDir = path.join(root, STATE_DIR);
    const identityFile = path.join(stateDir, "archive.json");
    if (!(await exists(identityFile))) {
      await fs.mkdir(stateDir, { recursive: true });
      const identity: ArchiveIdentity = { id: randomUUID(), name: options.name ?? path.basename(root), createdAt: new Date().toISOString(), format: 1 };
      // Written aside, then linked into place: of two processes opening a new archive at once, one wins and both read its identity.
      const tmp = `${identityFile}.${randomUUID()}`;
      await writeFileAtomic(tmp, JSON.stringify(identity, null, 2) + "\n");
      await fs.link(tmp, identityFile).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "EEXIST") throw err;
      });
      await fs.rm(tmp, { force: true });
      await fsyncDir(stateDir);
    }
    const identity: ArchiveIdentity = JSON.parse(await fs.readFile(identityFile, "utf8"));
    await Promise.all(["partial", "versions"].map((d) => fs.mkdir(path.join(stateDir, d), { recursive: true })));
    return new Archive(root, identity);
  }

  get partialDir(): string {
    return path.join(this.stateDir, "partial");
  }

  get versionsDir(): string {
    return path.join(this.stateDir, "versions");
  }

  /** Reads the catalog without taking the lock (for status displays; may miss an in-flight run's last records). */
  readCatalog(): Promise<Catalog> {
    return Catalog.load(this.stateDir);
  }

  /**
   * Runs `fn` holding the archive's lock, with a freshly loaded catalog. The lock is a directory
   * (atomic on local disks and network shares) refreshed while held; a holder that died leaves it
   * stale after 30 s, so a crash never wedges the archive.
   */
  async withLock<T>(fn: (catalog: Catalog, signal: AbortSignal) => Promise<T>, options: { waitMs?: number } = {}): Promise<T> {
    const lost = new AbortController();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.stateDir, {
        lockfilePath: path.join(this.stateDir, "lock"),
        realpath: false,
        stale: 30_000,
        update: 5_000,
        retries: options.waitMs ? { retries: Math.ceil(options.waitMs / 500), factor: 1, minTimeout: 500, maxTimeout: 500 } : 0,
        onCompromised: (err) => lost.abort(new BackupError("LOCK_LOST", `lost the archive lock: ${err.message}`)),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") throw new ArchiveLocked(this.root, err);
      throw err;
    }
    try {
      const catalog = await Catalog.load(this.stateDir, { writable: true });
      const result = await fn(catalog, lost.signal);
      await catalog.compact();
      return result;
    } finally {
      await release().catch(() => undefined);
    }
  }
}
