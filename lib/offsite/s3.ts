import { createHash } from "node:crypto";
import { Writable, type Readable } from "node:stream";
import { GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type PutObjectCommandInput } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { BackupError, ConfigError, messageOf } from "../errors";
import { HashingStream, hashStream, pump, sourceStreams } from "./streams";
import { joinKey, ObjectExists, ObjectMismatch, ObjectMissing, TargetFailed, type ObjectInfo, type Probe, type PutOptions, type PutResult, type PutSource, type Target } from "./target";

export interface S3TargetConfig {
  /** empty for AWS itself; https://… for B2, Wasabi, R2, Hetzner, MinIO … */
  endpoint?: string;
  region?: string;
  bucket: string;
  prefix?: string;
  forcePathStyle?: boolean;
  storageClass?: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** send checksums only where S3 requires them (providers that reject the SDK's default ones) */
  compatibleChecksums?: boolean;
  /** Object Lock retention for finished files (the bucket must have Object Lock enabled) */
  objectLock?: { mode: "GOVERNANCE" | "COMPLIANCE"; days: number };
  /** multipart part size in bytes (at least 5 MiB) */
  partSize?: number;
  /** attempts per request, including the first (the SDK backs off between them) */
  maxAttempts?: number;
}

const MiB = 1024 * 1024;

/**
 * An S3-compatible bucket. Objects carry their SHA-256 in metadata and, unless the compatibility
 * switch is on, S3's own SHA-256 checksum; after each upload the stored object is proven equal to
 * what was sent (S3 checksum, else the ETag, else by reading it back) before it counts as a copy.
 */
export class S3Target implements Target {
  readonly kind = "s3" as const;
  private readonly client: S3Client;
  private readonly prefix: string;
  private readonly partSize: number;
  /** multipart uploads buffer their parts: at most this many at once, whatever the file concurrency */
  private readonly multipartSlots = new Slots(2);
  /** keys stored below the prefix, when scanned this run */
  private known: Set<string> | undefined;

  constructor(private readonly config: S3TargetConfig) {
    if (!config.bucket) throw new ConfigError("s3 target needs a bucket");
    if (!config.accessKeyId || !config.secretAccessKey) throw new ConfigError("s3 target needs an access key id and a secret access key");
    if (config.objectLock && !(config.objectLock.days > 0)) throw new ConfigError("Object Lock needs a retention of at least one day");
    this.prefix = (config.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.partSize = Math.max(5 * MiB, config.partSize ?? 8 * MiB);
    const checksums = config.compatibleChecksums ? "WHEN_REQUIRED" : "WHEN_SUPPORTED";
    // Every setting is explicit, so that ambient AWS_* variables cannot change where or how we upload.
    this.client = new S3Client({
      endpoint: config.endpoint || undefined,
      region: config.region || "us-east-1",
      forcePathStyle: config.forcePathStyle ?? false,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      maxAttempts: config.maxAttempts ?? 5,
      retryMode: "standard",
      // No "Expect: 100-continue" on bodies of 2 MiB and more: it costs a round trip per PUT and per
      // part, to spare a body that a refusal (a wrong key, a missing bucket) would waste once.
      expectContinueHeader: false,
      requestHandler: { connectionTimeout: 15_000, requestTimeout: 300_000 },
      // The SDK would print retry notes to the console; failures reach the report instead.
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
    });
  }

  get description(): string {
    const host = this.config.endpoint ? new URL(this.config.endpoint).host : "aws";
    return `s3://${this.config.bucket}/${this.prefix}${this.prefix ? "/" : ""} (${host})`;
  }

  id(): string {
    const host = this.config.endpoint ? new URL(this.config.endpoint).host : "aws";
    return `s3:${host}/${this.config.bucket}/${this.prefix}`;
  }

  async probe(signal?: AbortSignal): Promise<Probe> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }), { abortSignal: signal });
      return { state: "online" };
    } catch (err) {
      const mapped = this.mapError("bucket", err);
      if (mapped.retryable) return { state: "offline", reason: mapped.message };
      throw mapped;
    }
  }

  async scan(signal?: AbortSignal): Promise<void> {
    const known = new Set<string>();
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.config.bucket, Prefix: this.prefix ? `${this.prefix}/` : undefined, ContinuationToken: token }),
          { abortSignal: signal },
        );
        for (const o of page.Contents ?? []) if (o.Key) known.add(o.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw this.mapError("bucket", err);
    }
    this.known = known;
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    try {
      const h = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key(key) }), { abortSignal: signal });
      return { size: h.ContentLength ?? 0, claimedSha256: h.Metadata?.sha256 };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw this.mapError(key, err);
    }
  }

  async put(key: string, source: PutSource, options: PutOptions): Promise<PutResult> {
    if (options.mode === "final" && (this.known ? this.known.has(this.key(key)) : await this.head(key, options.signal))) {
      throw new ObjectExists(this.where(key));
    }
    const singlePart = source.size !== undefined && source.size <= this.partSize;
    // MD5 of the whole and of each part: the ETag the server computes over what it stored is the
    // proof. A checksum in the answer may be only an echo of the one sent, on a server that checks none.
    const hashing = new HashingStream({ md5: true, partSize: singlePart ? undefined : this.partSize, onBytes: options.onBytes });
    const params: PutObjectCommandInput = {
      Bucket: this.config.bucket,
      Key: this.key(key),
      Body: hashing,
      Metadata: { sha256: source.sha256, ...(source.encrypted ? { encryption: "age" } : {}) },
      ...(this.config.storageClass ? { StorageClass: this.config.storageClass as PutObjectCommandInput["StorageClass"] } : {}),
      ...(this.config.compatibleChecksums ? {} : { ChecksumAlgorithm: "SHA256" as const }),
      // A whole plaintext object carries the catalog's own SHA-256 as S3's checksum: the provider
      // refuses the upload if the bytes it received differ from what the archive vouches for.
      ...(singlePart && !source.encrypted && !this.config.compatibleChecksums ? { ChecksumSHA256: Buffer.from(source.sha256, "hex").toString("base64") } : {}),
    };
    if (options.mode === "final" && this.config.objectLock) {
      params.ObjectLockMode = this.config.objectLock.mode;
      params.ObjectLockRetainUntilDate = new Date(Date.now() + this.config.objectLock.days * 86_400_000);
    }
    const answer = singlePart ? await this.putWhole(key, params, source, hashing, options) : await this.putInParts(key, params, source, hashing, options);
    const sent = hashing.result();
    if (source.size !== undefined && sent.bytes !== source.size) throw new ObjectMismatch(this.where(key), `read ${sent.bytes} bytes, expected ${source.size}`);
    await this.verify(key, sent, answer, options.signal);
    this.known?.add(this.key(key));
    return { key, size: sent.bytes, objectSha256: sent.sha256 };
  }

  /**
   * A source of one part or less is read into memory first (as lib-storage would buffer it) and
   * sent in one plain PUT: on many small files lib-storage's chunking was CPU spent for nothing.
   * Its length is checked before anything is sent: a file that came up short is never stored.
   */
  private async putWhole(key: string, params: PutObjectCommandInput, source: PutSource, hashing: HashingStream, options: PutOptions): Promise<Stated> {
    try {
      const chunks: Buffer[] = [];
      const sink = new Writable({
        write(chunk: Buffer, _enc, callback) {
          chunks.push(chunk);
          callback();
        },
      });
      await pump([...sourceStreams(source, options), hashing, sink], options.signal);
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks); // a small file is read in one chunk: no copy
      if (body.length !== source.size) throw new ObjectMismatch(this.where(key), `read ${body.length} bytes, expected ${source.size}`);
      return await this.client.send(new PutObjectCommand({ ...params, Body: body }), { abortSignal: options.signal });
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason ?? err;
      throw this.mapError(key, err);
    }
  }

  /** A bigger or unsized source streams in parts; at most two such uploads buffer parts at once. */
  private async putInParts(key: string, params: PutObjectCommandInput, source: PutSource, hashing: HashingStream, options: PutOptions): Promise<Stated> {
    const release = await this.multipartSlots.take(options.signal);
    const abort = new AbortController();
    const onAbort = () => abort.abort();
    options.signal?.addEventListener("abort", onAbort);
    try {
      const upload = new Upload({ client: this.client, params, partSize: this.partSize, queueSize: 2, leavePartsOnError: false, abortController: abort });
      const feeding = pump([...sourceStreams(source, options), hashing], abort.signal);
      try {
        const [answer] = await Promise.all([upload.done(), feeding]);
        return answer;
      } catch (err) {
        abort.abort();
        await feeding.catch(() => undefined);
        if (options.signal?.aborted) throw options.signal.reason ?? err;
        throw this.mapError(key, err);
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      release();
    }
  }

  /**
   * Proves the stored object equals the bytes sent. The proof is the ETag the server computed over
   * what it stored (the MD5, or for multipart the MD5 of the part MD5s), from the upload's answer or
   * else a HEAD. A SHA-256 checksum in an answer must match too, but alone it proves nothing on a
   * server that echoes what it was sent; it is accepted alone only where the ETag is no MD5 (objects
   * encrypted at rest with KMS on AWS, which checks checksums on receipt). Otherwise: read it back.
   */
  private async verify(key: string, sent: ReturnType<HashingStream["result"]>, answer: Stated, signal?: AbortSignal): Promise<void> {
    const where = this.where(key);
    const parts = Math.max(1, sent.partMd5.length);
    const multipart = sent.bytes > this.partSize;
    const judge = (stated: Stated): "ok" | "unknown" => {
      const full = Buffer.from(sent.sha256, "hex").toString("base64");
      if (stated.ChecksumSHA256 && !stated.ChecksumSHA256.includes("-") && stated.ChecksumSHA256 !== full) {
        throw new ObjectMismatch(where, `S3 SHA-256 checksum ${stated.ChecksumSHA256} does not match`);
      }
      const etag = (stated.ETag ?? "").replace(/"/g, "");
      const multipartEtag = `${createHash("md5").update(Buffer.concat(sent.partMd5)).digest("hex")}-${parts}`;
      if (etag === sent.md5 || (multipart && etag === multipartEtag)) return "ok";
      const kms = String(stated.ServerSideEncryption ?? "").includes("kms");
      if (/^[0-9a-f]{32}(-\d+)?$/.test(etag) && !kms) throw new ObjectMismatch(where, `ETag ${etag} does not match the MD5 of the bytes sent`);
      return kms && stated.ChecksumSHA256 === full ? "ok" : "unknown";
    };
    if (judge(answer) === "ok") return;
    let h;
    try {
      h = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.key(key), ChecksumMode: "ENABLED" }), { abortSignal: signal });
    } catch (err) {
      throw this.mapError(key, err);
    }
    if (h.ContentLength !== sent.bytes) throw new ObjectMismatch(where, `stored ${h.ContentLength} bytes, sent ${sent.bytes}`);
    if (judge(h) === "ok") return;
    // Nothing the server says proves the bytes here: read them back.
    const stored = await this.hash(key, signal);
    if (stored !== sent.sha256) throw new ObjectMismatch(where, `read back ${stored}, sent ${sent.sha256}`);
  }

  async hash(key: string, signal?: AbortSignal): Promise<string> {
    return (await hashStream(await this.get(key, signal))).sha256;
  }

  async get(key: string, signal?: AbortSignal): Promise<Readable> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.key(key) }), { abortSignal: signal });
      return r.Body as Readable;
    } catch (err) {
      // S3's own answer that the key holds nothing; a missing bucket is a setup failure, not a lost object.
      const name = (err as { name?: string }).name;
      if (name === "NoSuchKey" || (statusOf(err) === 404 && name !== "NoSuchBucket")) throw new ObjectMissing(this.where(key), err);
      throw this.mapError(key, err);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private key(key: string): string {
    return joinKey(this.prefix, key);
  }

  private where(key: string): string {
    return `s3://${this.config.bucket}/${this.key(key)}`;
  }

  /** Network trouble, throttling and 5xx are worth another try; refusals and missing buckets are not. */
  private mapError(key: string, err: unknown): BackupError {
    if (err instanceof BackupError) return err;
    const status = statusOf(err);
    const name = (err as { name?: string }).name ?? "";
    const where = key === "bucket" ? `s3://${this.config.bucket}` : this.where(key);
    if (["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"].includes(name)) {
      return new ObjectMismatch(where, `the provider refused the bytes it received (${name}): they do not match their checksum`);
    }
    if (status === 403) return new TargetFailed(where, `access denied (${name}): check the key and its permissions`, { cause: err });
    if (status === 404 || name === "NoSuchBucket") return new TargetFailed(where, `not found (${name || status}): check the bucket name and region`, { cause: err });
    const retryable = status === undefined || status >= 500 || status === 429 || name === "TimeoutError" || name === "RequestTimeout";
    return new TargetFailed(where, `${name || "error"}${status ? ` (HTTP ${status})` : ""}: ${messageOf(err)}`, { retryable, cause: err });
  }
}

/** What an upload's answer or a HEAD says about the stored object. */
type Stated = { ETag?: string; ChecksumSHA256?: string; ServerSideEncryption?: string };

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

/** A counting semaphore: `take` resolves with a release function once a slot is free. */
class Slots {
  private waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async take(signal?: AbortSignal): Promise<() => void> {
    while (this.free === 0) {
      if (signal?.aborted) throw signal.reason;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.free--;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.free++;
      this.waiting.shift()?.();
    };
  }
}
