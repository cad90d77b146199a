import { createHash, type Hash } from "node:crypto";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Throttle } from "../sftp/throttle";

/**
 * Passes bytes through and hashes them on the way: SHA-256 always; MD5, and the MD5 of each part of
 * `partSize` bytes, when a target needs them to check an S3 ETag.
 */
export class HashingStream extends Transform {
  bytes = 0;
  private readonly sha = createHash("sha256");
  private readonly md5?: Hash;
  private part?: { hash: Hash; filled: number };
  readonly partMd5: Buffer[] = [];

  constructor(private readonly options: { md5?: boolean; partSize?: number; onBytes?: (n: number) => void } = {}) {
    super();
    if (options.md5) this.md5 = createHash("md5");
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.sha.update(chunk);
    this.md5?.update(chunk);
    if (this.options.partSize) this.hashParts(chunk, this.options.partSize);
    this.options.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  private hashParts(chunk: Buffer, partSize: number): void {
    for (let at = 0; at < chunk.length; ) {
      this.part ??= { hash: createHash("md5"), filled: 0 };
      const take = Math.min(partSize - this.part.filled, chunk.length - at);
      this.part.hash.update(chunk.subarray(at, at + take));
      this.part.filled += take;
      at += take;
      if (this.part.filled === partSize) this.closePart();
    }
  }

  private closePart(): void {
    if (!this.part) return;
    this.partMd5.push(this.part.hash.digest());
    this.part = undefined;
  }

  /** The digests, once the stream has ended. */
  result(): { bytes: number; sha256: string; md5?: string; partMd5: Buffer[] } {
    this.closePart();
    return { bytes: this.bytes, sha256: this.sha.digest("hex"), md5: this.md5?.digest("hex"), partMd5: this.partMd5 };
  }
}

/** A stream that lets bytes through no faster than the run's shared limit allows. */
export function paced(throttle: Throttle): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      const wait = throttle.book(chunk.length);
      if (wait <= 0) callback(null, chunk);
      else setTimeout(() => callback(null, chunk), wait);
    },
  });
}

/** Reads a whole stream and returns its SHA-256 (hex) and length. */
export async function hashStream(stream: NodeJS.ReadableStream): Promise<{ sha256: string; bytes: number }> {
  const sha = createHash("sha256");
  let bytes = 0;
  for await (const chunk of stream) {
    const b = chunk as Buffer;
    sha.update(b);
    bytes += b.length;
  }
  return { sha256: sha.digest("hex"), bytes };
}

/** Pipes streams into each other until the last has finished; an abort or any error destroys them all. */
export function pump(streams: Array<NodeJS.ReadableStream | NodeJS.WritableStream>, signal?: AbortSignal): Promise<void> {
  return pipeline(streams as ReadonlyArray<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream>, signal ? { signal } : {});
}

/** The source opened for one attempt, behind the bandwidth limit when there is one. */
export function sourceStreams(source: { open(): Readable }, options: { pace?: () => Transform }): Readable[] {
  const input = source.open();
  return options.pace ? [input, options.pace()] : [input];
}

/** A stream of one buffer. */
export function bufferStream(data: Buffer): Readable {
  return Readable.from([data]);
}
