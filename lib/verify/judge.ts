import type { FileRecord } from "../archive/catalog";
import type { HashResult } from "./hasher";

export type Verdict = { kind: "ok" } | { kind: "growing"; extra: number } | { kind: "missing" } | { kind: "mismatch"; why: string };

/**
 * What a read-back of a file says about its record. Used by the hash worker on every file of a
 * scrub (only files that are not ok cross to the main thread in full) and by the scrub when it
 * judges a suspect again.
 */
export function judge(record: Pick<FileRecord, "size" | "sha256">, res: HashResult): Verdict {
  if (res.error === "ENOENT") return { kind: "missing" };
  if (res.error) return { kind: "mismatch", why: `cannot be read (${res.error})` };
  if (res.size < record.size) return { kind: "mismatch", why: `is ${res.size} bytes, the catalog says ${record.size} (truncated)` };
  if (res.sha256 !== record.sha256) return { kind: "mismatch", why: "no longer matches its catalog hash (bit rot, a disk error or tampering)" };
  if (res.size > record.size) return { kind: "growing", extra: res.size - record.size };
  return { kind: "ok" };
}
