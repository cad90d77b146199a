import * as fs from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import * as lockfile from "proper-lockfile";
import { ArchiveLocked, BackupError, ConfigError } from "../errors";
import { Catalog, storedPathOf, type FileRecord } from "./catalog";
import { describeFilesystem, filesystemDifferences, isRecordedFilesystem, matchesRecorded, probeFilesystem, type FsIdentity } from "./filesystem";
import { createOnce, exists, isAbsent, writeFileAtomic } from "./fsutil";
import { loadProfile, type FsProfile } from "./fs-probe";
import { readKnown, rememberKnown, knownFile } from "./known";
import { lockFs } from "./lock-fs";
import { NameMap } from "./names";
import { localPath, STATE_DIR } from "./paths";

/**
 * A held lock is refreshed every 5 s; one not refreshed for this long belongs to a holder that died.
 * Long, because another computer sees the refreshes through its share client's attribute cache
 * (sshfs 20 s, NFS up to 60 s): with 30 s, sshfs was seen to hand a held lock to a second mount.
 */
export const LOCK_STALE_MS = 120_000;

export interface ArchiveIdentity {
  id: string;
  name: string;
  createdAt: string;
  format: 1;
  /** the filesystem the archive lives on, recorded at creation (or at the first open by a version that records it) */
  filesystem?: FsIdentity;
}

export interface OpenOptions {
  name?: string;
  /**
   * A folder outside the archive where the caller remembers the archive it opened at this path
   * (Node-RED: its user directory). With it, a path that held an archive before and now holds none
   * (an unplugged disk's empty mount point) is refused instead of initialised.
   */
  knownDir?: string;
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
  static async open(root: string, options: OpenOptions = {}): Promise<Archive> {
    if (!root || !path.isAbsolute(root)) throw new ConfigError(`archive path must be an absolute folder, got ${JSON.stringify(root)}`);
    const stat = await fs.stat(root).catch(() => undefined);
    if (!stat) throw missing(root);
    if (!stat.isDirectory()) throw new ConfigError(`archive path ${root} is not a folder`);
    const stateDir = path.join(root, STATE_DIR);
    const identityFile = path.join(stateDir, "archive.json");
    const known = options.knownDir ? await readKnown(options.knownDir, root) : undefined;
    const initialise = !(await exists(identityFile));
    if (initialise) {
      // An empty `.tick-backup` folder made by hand is the way to start a new archive here on purpose.
      if (known && !(await exists(stateDir))) throw await notFound(root, known, options.knownDir!);
      await fs.mkdir(stateDir, { recursive: true });
      const identity: ArchiveIdentity = {
        id: randomUUID(),
        name: options.name ?? path.basename(root),
        createdAt: new Date().toISOString(),
        format: 1,
        filesystem: await probeFilesystem(root),
      };
      // Of two processes opening a new archive at once, one wins and both read its identity.
      await createOnce(identityFile, JSON.stringify(identity, null, 2) + "\n", JSON.parse);
    }
    let identity = parseIdentity(await fs.readFile(identityFile, "utf8"), stateDir);
    if (known && known.id !== identity.id && !initialise) throw replaced(root, identity, known, knownFile(options.knownDir!, root));
    identity = await checkOrRecordFilesystem(root, identityFile, identity);
    await Promise.all(["partial", "versions"].map((d) => fs.mkdir(path.join(stateDir, d), { recursive: true })));
    if (options.knownDir && (!known || known.id !== identity.id || known.filesystem?.dev !== identity.filesystem?.dev)) {
      await rememberKnown(options.knownDir, { path: path.resolve(root), id: identity.id, name: identity.name, filesystem: identity.filesystem, openedAt: new Date().toISOString() });
    }
    return new Archive(root, identity, await loadProfile(stateDir));
  }

  /**
   * Proves the archive is still where it was opened: the folder exists, holds this archive's
   * identity, and sits on the filesystem recorded at creation. Runs before every lock, so that a
   * disk unplugged while Node-RED runs never lets a writer fill the disk beneath its mount point.
   */
  async checkPlace(): Promise<void> {
    // One round of reads in parallel: this runs before every lock.
    const [stat, text, sf] = await Promise.all([
      fs.stat(this.root).catch(() => undefined),
      fs.readFile(path.join(this.stateDir, "archive.json"), "utf8").catch((err: NodeJS.ErrnoException) => err),
      fs.statfs(this.root).catch(() => undefined),
    ]);
    if (!stat) throw missing(this.root);
    if (text instanceof Error) {
      if (isAbsent(text)) throw await notFound(this.root, this.identity);
      throw text;
    }
    const found = parseIdentity(text, this.stateDir);
    if (found.id !== this.identity.id) throw replaced(this.root, found, this.identity);
    if (found.filesystem && sf && matchesRecorded(stat, sf, found.filesystem)) return;
    // The identity on disk is compared, so that an adoption (its filesystem removed by hand) works without a restart.
    await checkOrRecordFilesystem(this.root, path.join(this.stateDir, "archive.json"), found);
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

  /** Whether a writer (in this or another process, on this or another computer) holds the lock now. */
  isLocked(): Promise<boolean> {
    return lockfile.check(this.stateDir, this.lockOptions()).catch(() => false);
  }

  private lockOptions() {
    return { fs: this.lockFs, lockfilePath: path.join(this.stateDir, "lock"), realpath: false, stale: LOCK_STALE_MS };
  }

  private async acquire(waitMs: number): Promise<void> {
    await this.checkPlace();
    const lost = new AbortController();
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.stateDir, {
        ...this.lockOptions(),
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

function missing(root: string): BackupError {
  return new BackupError("ARCHIVE_MISSING", `archive folder ${root} does not exist: is the backup disk mounted? Create the folder once by hand.`, {
    retryable: true,
  });
}

function parseIdentity(text: string, stateDir: string): ArchiveIdentity {
  try {
    const identity = JSON.parse(text) as ArchiveIdentity;
    if (typeof identity.id === "string") return identity;
  } catch {
    // reported below
  }
  throw new BackupError("ARCHIVE_IDENTITY_DAMAGED", `${path.join(stateDir, "archive.json")} is damaged: it does not name the archive. Restore it from a copy; nothing was written.`);
}

function replaced(root: string, found: { id: string; name: string }, expected: { id: string; name: string }, rememberedIn?: string): BackupError {
  const remedy = rememberedIn ? ` If the change is deliberate, delete ${rememberedIn}.` : "";
  return new BackupError(
    "ARCHIVE_REPLACED",
    `${root} holds archive "${found.name}" (${found.id}), not archive "${expected.name}" (${expected.id}) that was opened here before: ` +
      `is another disk mounted here? Nothing was written.${remedy}`,
    { retryable: true },
  );
}

/** There is no archive where one was: the usual cause is a disk that is not mounted. */
async function notFound(root: string, known: { id: string; name: string; filesystem?: FsIdentity }, knownDir?: string): Promise<BackupError> {
  const here = await probeFilesystem(root).then(describeFilesystem, () => "an unknown filesystem");
  const was = known.filesystem ? ` on ${describeFilesystem(known.filesystem)}` : "";
  const remedy = knownDir
    ? `If you want a new, empty archive here, create the folder ${path.join(root, STATE_DIR)} by hand (or delete ${knownFile(knownDir, root)}).`
    : "Mount the disk and try again.";
  return new BackupError(
    "ARCHIVE_NOT_FOUND",
    `archive "${known.name}" (${known.id}) was at ${root}${was}, but that folder now holds no such archive and is on ${here}: ` +
      `is the backup disk mounted? Nothing was written. ${remedy}`,
    { retryable: true },
  );
}

/**
 * Compares the archive's folder with the filesystem its identity records; an identity without one
 * (made by an earlier version, or adopted on purpose) records the current one.
 */
async function checkOrRecordFilesystem(root: string, identityFile: string, identity: ArchiveIdentity): Promise<ArchiveIdentity> {
  if (identity.filesystem) {
    await checkFilesystem(root, identity.filesystem);
    return identity;
  }
  const recorded = { ...identity, filesystem: await probeFilesystem(root) };
  await writeFileAtomic(identityFile, JSON.stringify(recorded, null, 2) + "\n");
  return recorded;
}

async function checkFilesystem(root: string, recorded: FsIdentity): Promise<void> {
  if (await isRecordedFilesystem(root, recorded)) return;
  const current = await probeFilesystem(root);
  const differences = filesystemDifferences(recorded, current);
  if (differences.length === 0) return;
  throw new BackupError(
    "ARCHIVE_FS_CHANGED",
    `archive folder ${root} is on ${describeFilesystem(current)}, but the archive was created on ${describeFilesystem(recorded)} ` +
      `(${differences.join("; ")}). Nothing was written. Mount the backup disk; if the archive was moved to this disk on purpose, ` +
      `remove "filesystem" from ${path.join(root, STATE_DIR, "archive.json")} and the next run records the current one.`,
    { retryable: true },
  );
}
