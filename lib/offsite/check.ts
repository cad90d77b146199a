// The editor's "Test" of an offsite target: reachable, and writable without needing delete rights.
import { createHash } from "node:crypto";
import { bufferStream } from "./streams";
import { TARGET_STATE, TargetFailed, type Target } from "./target";

/** One fixed key, replaced on every test: pressing Test many times leaves one small object, never a pile. */
export const WRITE_CHECK_KEY = `${TARGET_STATE}/editor-test.txt`;

export interface WriteCheck {
  /** where the target stores (no secrets) */
  description: string;
  /** the target's id in the catalog's `copies` */
  id: string;
  /** the key written, below the target's root or prefix */
  wrote: string;
  size: number;
}

/**
 * Probes the target (offline is a failure here: the person wants to know it works now), then stores
 * one small object at WRITE_CHECK_KEY. The put proves the stored bytes equal what was sent (read
 * back, checksum or ETag), as it does for every upload. Nothing is ever deleted.
 */
export async function checkWritable(target: Target, signal?: AbortSignal): Promise<WriteCheck> {
  const probe = await target.probe(signal);
  if (probe.state !== "online") throw new TargetFailed(target.description, `offline: ${probe.reason ?? "no answer"}`);
  const data = Buffer.from(`tick-backup: written by the editor's Test at ${new Date().toISOString()}; safe to delete.\n`);
  const sha256 = createHash("sha256").update(data).digest("hex");
  const put = await target.put(WRITE_CHECK_KEY, { open: () => bufferStream(data), size: data.length, sha256, encrypted: false }, { mode: "replaceable", signal });
  return { description: target.description, id: target.id(), wrote: put.key, size: put.size };
}
