import * as fs from "node:fs/promises";
import { createHash, type Hash } from "node:crypto";
import { TransferFailed } from "../errors";

/**
 * Starts writing a big download to disk while it still streams in, so that the final fsync finds
 * little left to do (and the disk works in parallel with the network rather than after it).
 */
export class Flusher {
  private unsynced = 0;
  private pending: Promise<void> | undefined;

  constructor(private readonly out: fs.FileHandle, private readonly every = 32 * 1024 * 1024) {}

  wrote(n: number): void {
    this.unsynced += n;
    if (this.unsynced < this.every || this.pending) return;
    this.unsynced = 0;
    this.pending = this.out.datasync().finally(() => (this.pending = undefined));
    this.pending.catch(() => undefined); // the final sync reports any error
  }

  async done(): Promise<void> {
    await this.pending?.catch(() => undefined);
  }
}

export async function readLocal(file: string, position: number, length: number): Promise<Buffer> {
  const h = await fs.open(file, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await h.read(buf, 0, length, position);
    if (bytesRead !== length) throw new TransferFailed(file, `local file is shorter than expected`);
    return buf;
  } finally {
    await h.close();
  }
}


/** Feeds the first `length` bytes of a local file into `hash`. */
export async function hashInto(hash: Hash, file: string, length: number): Promise<void> {
  const h = await fs.open(file, "r");
  try {
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; pos < length; ) {
      const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, length - pos), pos);
      if (bytesRead === 0) throw new TransferFailed(file, "local file ended early");
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await h.close();
  }
}

export async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  await hashInto(hash, file, (await fs.stat(file)).size);
  return hash.digest("hex");
}
