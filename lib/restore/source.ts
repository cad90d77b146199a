import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Readable } from "node:stream";
import type { FileRecord } from "../archive/catalog";
import { checkName, STATE_DIR } from "../archive/paths";
import { Archive } from "../archive/archive";
import { BackupError, ConfigError, UnsafeName, messageOf } from "../errors";
import { decryptBuffer, decryptStream } from "../offsite/encrypt";
import { bufferStream, HashingStream } from "../offsite/streams";
import { ObjectMissing, ObjectUndecryptable, TARGET_STATE, type OffsiteCopy, type Target } from "../offsite/target";

/** One file as a source can give it back, with what its bytes must hash to. */
export interface SourceObject {
  /** the plaintext; read it to the end before trusting it */
  stream: Readable;
  /** the stored object's SHA-256 that the ciphertext must have (encrypted copies) */
  objectSha256?: string;
  /** the ciphertext's SHA-256 once the stream has ended (encrypted copies) */
  objectDigest?: () => Promise<string>;
}

/** Where a restore reads from: the archive folder or one offsite target, each with its own catalog. */
export interface RestoreSource {
  readonly description: string;
  /** the catalog this source answers for (the one stored on the target for offsite) */
  records(): Promise<FileRecord[]>;
  /** whether the source holds a copy of the record's current content */
  has(record: FileRecord): boolean;
  /**
   * A copy the source does not hold fails with code OFFSITE_MISSING, bytes the key does not open
   * with OFFSITE_UNDECRYPTABLE (from the stream); anything else is a failure to read.
   */
  open(record: FileRecord, signal?: AbortSignal): Promise<SourceObject>;
  close(): Promise<void>;
}

export class ArchiveSource implements RestoreSource {
  readonly description: string;
  private constructor(private readonly archive: Archive) {
    this.description = `archive ${archive.root}`;
  }

  static async open(root: string): Promise<ArchiveSource> {
    const abs = path.resolve(root);
    if (!fs.existsSync(path.join(abs, STATE_DIR))) throw new ConfigError(`${abs} is not an archive (no ${STATE_DIR} folder)`);
    return new ArchiveSource(await Archive.open(abs));
  }

  async records(): Promise<FileRecord[]> {
    return (await this.archive.readCatalog()).all();
  }

  has(): boolean {
    return true;
  }

  /** The bytes the catalog vouches for: where the file is stored (an escaped name on some disks), up to its recorded size (a live file may have grown since). */
  async open(record: FileRecord): Promise<SourceObject> {
    const file = this.archive.fileOf(record);
    // Only "no such file" is a missing copy: a refused read or a disk error is a failure.
    const handle = await fsp.open(file, "r").catch((err: NodeJS.ErrnoException) => {
      throw err.code === "ENOENT" ? new ObjectMissing(file, err) : err;
    });
    if (record.size > 0) return { stream: handle.createReadStream({ end: record.size - 1 }) };
    await handle.close();
    return { stream: bufferStream(Buffer.alloc(0)) };
  }

  async close(): Promise<void> {}
}

interface StoredCatalog {
  format: number;
  archive?: { name?: string };
  target?: string;
  writtenAt?: string;
  records: FileRecord[];
}

/**
 * An offsite target as a restore source. Its own `.tick-backup/catalog.json` says what each file
 * must hash to and under which key it is stored: nothing from the home disk is needed. Keys are
 * remote input and are checked like any remote name.
 */
export class TargetSource implements RestoreSource {
  readonly description: string;
  private catalog?: StoredCatalog;
  private targetId = "";

  constructor(
    private readonly target: Target,
    private readonly identity?: string,
  ) {
    this.description = target.description;
  }

  async records(): Promise<FileRecord[]> {
    return (await this.load()).records;
  }

  /** The catalog stored on the target (decrypted when it is an age file). */
  async load(signal?: AbortSignal): Promise<StoredCatalog> {
    if (this.catalog) return this.catalog;
    const probe = await this.target.probe(signal);
    if (probe.state !== "online") throw new BackupError("TARGET_OFFLINE", `${this.target.description} is offline${probe.reason ? `: ${probe.reason}` : ""}`, { retryable: true });
    let raw: Buffer;
    const plainKey = `${TARGET_STATE}/catalog.json`;
    if (await this.target.head(plainKey, signal)) {
      raw = await readAll(await this.target.get(plainKey, signal));
    } else if (await this.target.head(`${plainKey}.age`, signal)) {
      if (!this.identity) throw new ConfigError(`${this.target.description} is encrypted: give the age secret key (--identity file or TICK_BACKUP_AGE_IDENTITY)`);
      raw = await decryptBuffer(await readAll(await this.target.get(`${plainKey}.age`, signal)), this.identity).catch((err: BackupError) => {
        if (!(err instanceof ObjectUndecryptable)) throw err;
        throw new ConfigError(`cannot decrypt the catalog on ${this.target.description}: ${messageOf(err.cause ?? err)} (wrong secret key?)`);
      });
    } else {
      throw new BackupError("NO_CATALOG", `${this.target.description} holds no ${plainKey}: nothing was ever uploaded there, or the prefix is wrong`);
    }
    let parsed: StoredCatalog;
    try {
      parsed = JSON.parse(raw.toString("utf8")) as StoredCatalog;
    } catch (err) {
      throw new BackupError("BAD_CATALOG", `the catalog on ${this.target.description} is not valid JSON: ${messageOf(err)}`);
    }
    if (!parsed || !Array.isArray(parsed.records)) throw new BackupError("BAD_CATALOG", `the catalog on ${this.target.description} has no records`);
    this.targetId = typeof parsed.target === "string" && parsed.target ? parsed.target : this.target.id();
    this.catalog = parsed;
    return parsed;
  }

  has(record: FileRecord): boolean {
    const copy = this.copy(record);
    return copy !== undefined && copy.sha256 === record.sha256;
  }

  async open(record: FileRecord, signal?: AbortSignal): Promise<SourceObject> {
    const copy = this.copy(record);
    if (!copy) throw new BackupError("NOT_ON_TARGET", `${record.path} has no copy on ${this.target.description}`);
    checkKey(copy.key);
    const stored = await this.target.get(copy.key, signal);
    if (!copy.encryption) return { stream: stored };
    if (!this.identity) throw new ConfigError(`${record.path} is encrypted on ${this.target.description}: give the age secret key`);
    if (!copy.objectSha256) throw new BackupError("BAD_CATALOG", `${record.path}: the catalog records no objectSha256 for the encrypted copy`);
    const hashing = new HashingStream();
    stored.on("error", (err) => hashing.destroy(err));
    stored.pipe(hashing);
    let digest: string | undefined;
    hashing.on("end", () => (digest = hashing.result().sha256));
    const stream = decryptStream(hashing, this.identity);
    return { stream, objectSha256: copy.objectSha256, objectDigest: () => (digest !== undefined ? Promise.resolve(digest) : ended(hashing, () => digest)) };
  }

  async close(): Promise<void> {
    await this.target.close();
  }

  private copy(record: FileRecord): OffsiteCopy | undefined {
    const copies = (record as FileRecord & { copies?: Record<string, OffsiteCopy> }).copies;
    return copies?.[this.targetId];
  }
}

/** An object key from a catalog: plain `/`-separated names, never the target's own state area. */
export function checkKey(key: string): void {
  if (typeof key !== "string") throw new UnsafeName(String(key), "not a key");
  const parts = key.split("/");
  parts.forEach(checkName);
  if (parts[0] === TARGET_STATE) throw new UnsafeName(key, `${TARGET_STATE} is the target's own state`);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Waits for a hashing stream's end (the decrypter may finish before the ciphertext's last bytes are counted). */
function ended(hashing: HashingStream, digest: () => string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    hashing.once("end", () => resolve(digest() ?? ""));
    hashing.once("error", reject);
    hashing.resume();
  });
}
