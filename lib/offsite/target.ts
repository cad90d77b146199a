import type { Readable, Transform } from "node:stream";
import { BackupError } from "../errors";

export type TargetKind = "s3" | "rclone" | "directory";

/** What a probe found: a target that cannot be reached now is `offline` (not an error). */
export interface Probe {
  state: "online" | "offline";
  /** why it is offline, for the report */
  reason?: string;
}

/** What is stored under a key, as cheaply as the target can tell. */
export interface ObjectInfo {
  size: number;
  /** the plaintext SHA-256 the object claims (S3 metadata); a claim, not a proof */
  claimedSha256?: string;
}

/** The bytes to store: a fresh stream each call (a retry reads the file again) and its length when known. */
export interface PutSource {
  open(): Readable;
  size?: number;
  /** the plaintext SHA-256, stored with the object where the target keeps metadata */
  sha256: string;
  encrypted: boolean;
}

export interface PutOptions {
  /** `final` objects may never replace anything; `replaceable` ones (live files, manifests) are refreshed */
  mode: "final" | "replaceable";
  signal?: AbortSignal;
  /** bytes of the source read so far (progress, bandwidth) */
  onBytes?: (n: number) => void;
  /** wraps the source stream (the bandwidth limit) */
  pace?: () => Transform;
}

/** A stored object proven equal to what was sent. */
export interface PutResult {
  key: string;
  size: number;
  /** SHA-256 of the stored bytes (the ciphertext when encrypted) */
  objectSha256: string;
}

/**
 * One offsite place. Every kind stores objects under `/`-separated keys below its own root or
 * prefix, verifies each one after it is stored, never deletes, and refuses to replace a final object.
 */
export interface Target {
  readonly kind: TargetKind;
  /** where it stores, for messages (no secrets) */
  readonly description: string;
  probe(signal?: AbortSignal): Promise<Probe>;
  /**
   * A stable id for the catalog's `copies` (valid after an online probe): the same bucket and
   * prefix, remote, or disk always gives the same id.
   */
  id(): string;
  /**
   * Optionally lists once what the target holds, so that the puts of this run need no existence
   * check each (one listing instead of a request per object, as rclone does).
   */
  scan?(signal?: AbortSignal): Promise<void>;
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined>;
  /** Stores the source under `key`, then proves the stored bytes match, or throws ObjectMismatch. */
  put(key: string, source: PutSource, options: PutOptions): Promise<PutResult>;
  /** SHA-256 of the stored object, read back from the target (or from a checksum it keeps). */
  hash(key: string, signal?: AbortSignal): Promise<string>;
  /**
   * The stored bytes as a stream (restore). An object the target says it does not hold rejects with
   * ObjectMissing; any other failure (network, permission, disk) is not that.
   */
  get(key: string, signal?: AbortSignal): Promise<Readable>;
  close(): Promise<void>;
}

/** The target holds other bytes than were sent: never recorded as a copy. */
export class ObjectMismatch extends BackupError {
  constructor(where: string, detail: string) {
    super("OFFSITE_MISMATCH", `${where}: stored object differs from what was sent (${detail})`, { retryable: true });
  }
}

/** A final object is already stored under that name: nothing was written. */
export class ObjectExists extends BackupError {
  constructor(where: string) {
    super("OFFSITE_EXISTS", `${where}: an object is already stored there; not replaced`);
  }
}

/**
 * The target says it holds no object under that key: each kind maps its own "not found" signal to
 * this and nothing else, so that a restore can tell a lost copy from a failure to read it.
 */
export class ObjectMissing extends BackupError {
  constructor(where: string, cause?: unknown) {
    super("OFFSITE_MISSING", `${where}: no such object`, { cause });
  }
}

/** The stored object is no age file that the key opens: damaged, altered, or encrypted to another key. */
export class ObjectUndecryptable extends BackupError {
  constructor(detail: string, cause?: unknown) {
    super("OFFSITE_UNDECRYPTABLE", `cannot decrypt the stored object (${detail})`, { cause });
  }
}

export class TargetFailed extends BackupError {
  constructor(where: string, detail: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super("OFFSITE_FAILED", `${where}: ${detail}`, options);
  }
}

/** The target's own bookkeeping area (catalog snapshot, live files, staging), beside the data tree. */
export const TARGET_STATE = ".tick-backup";

/** Joins a prefix and a key with exactly one "/" between them. */
export function joinKey(prefix: string, key: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  return p ? `${p}/${key}` : key;
}

/** Where a copy of one file lives on one target. */
export interface OffsiteCopy {
  at: string;
  /** the plaintext SHA-256 (the record's) */
  sha256: string;
  key: string;
  size: number;
  /** SHA-256 of the stored object when it differs from the plaintext (encrypted) */
  objectSha256?: string;
  encryption?: "age";
  /** copies of earlier contents of this path, kept on the target */
  earlier?: Array<Omit<OffsiteCopy, "earlier">>;
}
