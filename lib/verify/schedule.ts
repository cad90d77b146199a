import * as fs from "node:fs/promises";
import * as path from "node:path";
import { writeFileAtomic } from "../archive/fsutil";
import { BackupError } from "../errors";

/**
 * Which of `t` partitions a path belongs to: a stable hash of the path (not of its content, size
 * or position in a listing), so that a file stays in its partition for life and t consecutive
 * scrubs read every file exactly once — the way restic's `check --read-data-subset n/t` works.
 * The hash is 32-bit FNV-1a over the path's UTF-8 bytes, mixed by MurmurHash3's finalizer so that
 * similar names spread evenly: fixed forever (changing it would reshuffle every archive's rotation),
 * and cheap enough for hundreds of thousands of paths on the main thread.
 */
export function partitionOf(rel: string, t: number): number {
  if (t <= 1) return 0;
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(rel, "utf8")) h = Math.imul(h ^ byte, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % t;
}

/** What verify remembers between runs, in the archive's state area (`verify.json`). */
export interface ScrubState {
  format: 1;
  partitions: number;
  /** the partition the next scrub reads (0-based) */
  next: number;
  /** per partition, the start of the last run that read all of it and found nothing wrong */
  provenAt: Array<string | null>;
  lastFullProofAt?: string;
}

const FILE = "verify.json";

export async function loadScrubState(stateDir: string, partitions: number): Promise<ScrubState> {
  const fresh: ScrubState = { format: 1, partitions, next: 0, provenAt: Array(partitions).fill(null) };
  let text: string;
  try {
    text = await fs.readFile(path.join(stateDir, FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return fresh;
    throw err;
  }
  let state: ScrubState;
  try {
    state = JSON.parse(text);
  } catch (err) {
    throw new BackupError("VERIFY_STATE_DAMAGED", `${path.join(stateDir, FILE)} is not valid JSON; delete it to start the scrub rotation afresh`, { cause: err });
  }
  if (state.partitions !== partitions) {
    // Another t puts files in other partitions: the old proofs say nothing about the new ones.
    return { ...fresh, lastFullProofAt: state.lastFullProofAt };
  }
  return { ...fresh, ...state, next: state.next % partitions };
}

export function saveScrubState(stateDir: string, state: ScrubState): Promise<void> {
  return writeFileAtomic(path.join(stateDir, FILE), JSON.stringify(state, null, 2) + "\n");
}

/**
 * Records a run's outcome: a clean partition is proven as of the run's start; once every partition
 * is proven, the whole archive was proven as of the oldest of those proofs.
 */
export function recordProof(state: ScrubState, partitions: number[] | "all", clean: boolean, startedAt: string): ScrubState {
  const next = { ...state, provenAt: [...state.provenAt] };
  const list = partitions === "all" ? state.provenAt.map((_, i) => i) : partitions;
  if (clean) for (const p of list) next.provenAt[p] = startedAt;
  if (partitions !== "all") next.next = (state.next + 1) % state.partitions;
  if (next.provenAt.every((at) => at !== null)) {
    const oldest = (next.provenAt as string[]).reduce((a, b) => (a < b ? a : b));
    if (!next.lastFullProofAt || oldest > next.lastFullProofAt) next.lastFullProofAt = oldest;
  }
  return next;
}
