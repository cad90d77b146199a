import * as fs from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import * as lockfile from "proper-lockfile";
import { ArchiveLocked, BackupError, ConfigError } from "../errors";
import { Catalog, storedPathOf, type FileRecord } from "./catalog";
import { createOnce, exists } from "./fsutil";
import { loadProfile, type FsProfile } from "./fs-probe";
import { lockFs } from "./lock-fs";
import { NameMap } from "./names";
import { localPath, STATE_DIR } from "./paths";

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

  private constructor(
    readonly root: string,
    readonly identity: ArchiveIdentity,
    /** what the archive's filesystem can hold, probed once (fs-probe.ts) */
    readonly profile: FsProfile,
  ) {
    this.stateDir = path.join(root, STATE_DIR);
    this.lockFs = lockFs(profile.observed.mtimeResolutionMs);
  }

  /** Stored paths for remote paths: the catalog's, and new ones the filesystem can hold. */
  names(catalog: Catalog): NameMap {
    return new NameMap(this.profile.rules, catalog.all(), [STATE_DIR]);
  }

  /** The local file holding a record's bytes. */
  fileOf(record: Pick<FileRecord, "path" | "storedPath">): string {
    return localPath(this.root, storedPathOf(record));
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
      // Of two processes opening a new archive at once, one wins and both read its identity.
      await createOnce(identityFile, JSON.stringify(identity, null, 2) + "\n", JSON.parse);
    }
    const identity: ArchiveIdentity = JSON.parse(await fs.readFile(identityFile, "utf8"));
    await Promise.all(["partial", "versions"].map((d) => fs.mkdir(path.join(stateDir, d), { recursive: true })));
    return new Archive(root, identity, await loadProfile(stateDir));
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
   * Runs `fn` holding the archive's lock exclusively (a pull), with a freshly loaded catalog. The lock
   * is a directory (atomic on local disks and network shares) refreshed while held; a holder that
   * died leaves it stale after 2 minutes, so a crash never wedges the archive. A second exclusive run in
   * this process, or any run in another process, gets ArchiveLocked.
   */
  withLock<T>(fn: (catalog: Catalog, signal: AbortSignal) => Promise<T>, options: { waitMs?: number } = {}): Promise<T> {
    return this.hold(true, fn, options.waitMs ?? 0);
  }

  /**
   * Runs a short update `fn` on the catalog. Inside this process it joins a lock already held (a pull
   * running beside a verify or an upload shares one catalog, and each record change is a single
   * synchronous get-then-commit, so none is lost); otherwise it takes the lock, waiting up to
   * `waitMs` (default 60 s) for another process to let go.
   */
  update<T>(fn: (catalog: Catalog, signal: AbortSignal) => Promise<T>, options: { waitMs?: number } = {}): Promise<T> {
    return this.hold(false, fn, options.waitMs ?? 60_000);
  }

  /** the lock's own filesystem calls: its view of this disk's timestamps is not shared with other archives */
  private readonly lockFs: ReturnType<typeof lockFs>;
  private held: { catalog: Catalog; lost: AbortController; users: number; exclusive: boolean; release: () => Promise<void> } | undefined;
  private acquiring: Promise<void> | undefined;

  private async hold<T>(exclusive: boolean, fn: (catalog: Catalog, signal: AbortSignal) => Promise<T>, waitMs: number): Promise<T> {
    while (this.acquiring) await this.acquiring.catch(() => undefined);
    if (this.held) {
      if (exclusive && this.held.exclusive) throw new ArchiveLocked(this.root, new Error("another run in this process holds it"));
    } else {
      const acquiring = this.acquire(waitMs);
      this.acquiring = acquiring;
      try {
        await acquiring;
      } finally {
        this.acquiring = undefined;
      }
    }
    const held = this.held!;
    held.users++;
    if (exclusive) held.exclusive = true;
    try {
      return await fn(held.catalog, held.lost.signal);
    } finally {
      if (exclusive) held.exclusive = false;
      if (--held.users === 0) {
        this.held = undefined;
        // Whoever comes next waits until the catalog is compacted and the lock let go.
        const releasing = held.catalog.compact().finally(() => held.release().catch(() => undefined));
        this.acquiring = releasing;
        try {
          await releasing;
        } finally {
          if (this.acquiring === releasing) this.acquiring = undefined;
        }
      }
    }
  }

  private async acquire(waitMs: number): Promise<void> {
    const lost = new AbortController();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.stateDir, {
        fs: this.lockFs,
        lockfilePath: path.join(this.stateDir, "lock"),
        realpath: false,
        // Another computer judges staleness by the lock's mtime as its share client caches it (sshfs 20 s,
        // NFS up to 60 s): with 30 s, sshfs was seen to hand a held lock to a second mount.
        stale: 120_000,
        update: 5_000,
        retries: waitMs ? { retries: Math.ceil(waitMs / 500), factor: 1, minTimeout: 500, maxTimeout: 500 } : 0,
        onCompromised: (err) => lost.abort(new BackupError("LOCK_LOST", `lost the archive lock: ${err.message}`)),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ELOCKED") throw new ArchiveLocked(this.root, err);
      throw err;
    }
    try {
      const catalog = await Catalog.load(this.stateDir, { writable: true });
      this.held = { catalog, lost, users: 0, exclusive: false, release };
    } catch (err) {
      await release().catch(() => undefined);
      throw err;
    }
  }
}
