import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { ConfigError } from "../errors";
import { checkName } from "../archive/paths";
import { createOnce, exists, fsyncDir, isAbsent, NO_HARD_LINKS, renameReplacing } from "../archive/fsutil";
import { loadProfile } from "../archive/fs-probe";
import { encodeName, POSIX_RULES, shortenName, type NameRules } from "../archive/names";
import { hashFile } from "../archive/local-io";
import { HashingStream, pump, sourceStreams } from "./streams";
import { ObjectExists, ObjectMismatch, ObjectMissing, TARGET_STATE, TargetFailed, type ObjectInfo, type Probe, type PutOptions, type PutResult, type PutSource, type Target } from "./target";

export interface DirectoryTargetConfig {
  /** a folder on a second disk, USB stick or NAS share; never created by us */
  path: string;
}

/**
 * A folder on a disk that is plugged in now and then. Its root is never created: a missing root
 * means the disk is in the drawer (offline), and writing there would fill the wrong disk. The disk
 * carries its own id (in `.tick-backup/target.json`), so two disks rotated monthly are two targets.
 */
export class DirectoryTarget implements Target {
  readonly kind = "directory" as const;
  private targetId: string | undefined;
  /** what this disk can hold, probed once and kept on it: a key's file name is derived from it */
  private rules: NameRules = POSIX_RULES;

  constructor(private readonly config: DirectoryTargetConfig) {
    if (!config.path || !path.isAbsolute(config.path)) throw new ConfigError(`directory target needs an absolute folder, got ${JSON.stringify(config.path)}`);
  }

  get description(): string {
    return this.config.path;
  }

  async probe(): Promise<Probe> {
    const root = this.config.path;
    const stat = await fsp.stat(root).catch(() => undefined);
    if (!stat) return { state: "offline", reason: `folder ${root} not found (disk not plugged in or not mounted?)` };
    if (!stat.isDirectory()) throw new ConfigError(`directory target ${root} is not a folder`);
    const stateDir = path.join(root, TARGET_STATE);
    const marker = path.join(stateDir, "target.json");
    await fsp.mkdir(path.join(stateDir, "partial"), { recursive: true });
    // The disk's identity names every copy recorded on it: created once (two probes at once agree),
    // and never replaced because it cannot be read.
    const identity = await createOnce(marker, JSON.stringify({ id: randomUUID(), createdAt: new Date().toISOString() }, null, 2) + "\n", (t) => JSON.parse(t) as { id?: unknown }).catch((err: unknown) => {
      if (!(err instanceof SyntaxError)) throw err;
      throw new TargetFailed(this.description, `${marker} is damaged (${err.message}); it names the copies on this disk: repair it or move it away by hand`);
    });
    if (typeof identity.id !== "string" || !identity.id) throw new TargetFailed(this.description, `${marker} holds no id; it names the copies on this disk: repair it or move it away by hand`);
    this.rules = (await loadProfile(stateDir)).rules;
    this.targetId = `directory:${identity.id}`;
    return { state: "online" };
  }

  id(): string {
    if (!this.targetId) throw new TargetFailed(this.description, "not probed yet");
    return this.targetId;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    // Only "not there" is absent: a disk error must not read as a missing object.
    const stat = await fsp.stat(this.file(key)).catch((err: NodeJS.ErrnoException) => (isAbsent(err) ? undefined : Promise.reject(wrapIo(`${this.description}/${key}`, err))));
    return stat?.isFile() ? { size: stat.size } : undefined;
  }

  async put(key: string, source: PutSource, options: PutOptions): Promise<PutResult> {
    const dest = this.file(key);
    const staging = path.join(this.config.path, TARGET_STATE, "partial", randomUUID());
    try {
      const hashing = new HashingStream({ onBytes: options.onBytes });
      await pump([...sourceStreams(source, options), hashing, fs.createWriteStream(staging)], options.signal).catch((err) => {
        throw wrapIo(this.description, err);
      });
      const sent = hashing.result();
      const handle = await fsp.open(staging, "r+");
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      // Re-read what the disk holds: a flaky USB stick or share must not pass as a copy.
      const stored = await hashFile(staging);
      if (stored !== sent.sha256) throw new ObjectMismatch(`${this.description}/${key}`, `read back ${stored}, sent ${sent.sha256}`);
      if (source.size !== undefined && sent.bytes !== source.size) throw new ObjectMismatch(`${this.description}/${key}`, `sent ${sent.bytes} bytes, expected ${source.size}`);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      if (options.mode === "final") {
        // link() never replaces: an object already there stays as it is.
        await fsp.link(staging, dest).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code === "EEXIST") throw new ObjectExists(`${this.description}/${key}`);
          if (!NO_HARD_LINKS.has(err.code ?? "")) throw err;
          // exFAT and FAT have no hard links: the name is claimed by an exclusive create, then the copy renamed over the claim.
          await fsp.writeFile(dest, "", { flag: "wx" }).catch((e: NodeJS.ErrnoException) => {
            throw e.code === "EEXIST" ? new ObjectExists(`${this.description}/${key}`) : e;
          });
          await renameReplacing(staging, dest);
        });
      } else {
        await renameReplacing(staging, dest);
      }
      await fsyncDir(path.dirname(dest));
      return { key, size: sent.bytes, objectSha256: sent.sha256 };
    } finally {
      await fsp.rm(staging, { force: true });
    }
  }

  async hash(key: string): Promise<string> {
    return hashFile(this.file(key));
  }

  async get(key: string): Promise<Readable> {
    const where = `${this.description}/${key}`;
    // Only "no such file" is a missing object (as in head: no such name, or a file where a folder of
    // its path would be); a refused read or a disk error is a failure.
    const handle = await fsp.open(this.file(key), "r").catch(async (err: NodeJS.ErrnoException) => {
      if (!isAbsent(err)) throw wrapIo(where, err);
      // Without the disk's own marker the disk itself is gone (unplugged, unmounted): that loses no object.
      if (!(await exists(path.join(this.config.path, TARGET_STATE, "target.json")))) {
        throw new TargetFailed(where, `the disk is gone (no ${TARGET_STATE}/target.json any more): unplugged or unmounted?`, { retryable: true, cause: err });
      }
      throw new ObjectMissing(where, err);
    });
    return handle.createReadStream();
  }

  async close(): Promise<void> {}

  /**
   * The file of a key: each name escaped as this disk requires (`10:00` is `10%3A00` on exFAT), a pure
   * function of the key so that head, get and hash find what put wrote. Two keys this disk cannot
   * tell apart (case twins) meet as ObjectExists, and the upload stores the second under its
   * hash-named alternative: both are kept.
   */
  private file(key: string): string {
    const parts = key.split("/");
    parts.forEach(checkName);
    return path.join(this.config.path, ...parts.map((p) => shortenName(encodeName(p, this.rules), p, this.rules)));
  }
}

function wrapIo(where: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOSPC") return new TargetFailed(where, "disk full", { cause: err });
  if (code === "EIO" || code === "ENODEV" || code === "ENXIO") return new TargetFailed(where, `disk error (${code}): unplugged while writing?`, { retryable: true, cause: err });
  return err;
}
