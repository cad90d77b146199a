import * as fs from "node:fs/promises";
import * as path from "node:path";
import { storedPathOf, type FileRecord } from "../archive/catalog";
import { writeFileAtomic } from "../archive/fsutil";

/** Names of the manifests in the archive's state area (never in the data tree, where a remote file could have the name). */
export const MANIFEST = "SHA256SUMS";
export const LIVE_MANIFEST = "SHA256SUMS.live";

/**
 * Rewrites the archive's SHA256SUMS files from the catalog, atomically. `SHA256SUMS` lists every
 * final file, so that in the archive folder
 *
 *     sha256sum -c .tick-backup/SHA256SUMS
 *
 * passes on a clean archive and fails exactly on a damaged or missing file. Live files (still
 * growing on the server) go to `SHA256SUMS.live` with their hash as of their last pull: the next
 * pull may append to them, so that list is a record, not a promise.
 */
export async function writeManifests(stateDir: string, records: Iterable<FileRecord>): Promise<{ final: number; live: number }> {
  // Stored names: sha256sum reads the files where they are (`10%3A00.csv` on a disk that cannot hold `10:00.csv`).
  const sorted = [...records].map((r) => ({ state: r.state, sha256: r.sha256, at: storedPathOf(r) })).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const final = sorted.filter((r) => r.state === "final");
  const live = sorted.filter((r) => r.state !== "final");
  await writeIfChanged(path.join(stateDir, MANIFEST), final.map((r) => manifestLine(r.sha256, r.at)).join(""));
  await writeIfChanged(path.join(stateDir, LIVE_MANIFEST), live.map((r) => manifestLine(r.sha256, r.at)).join(""));
  return { final: final.length, live: live.length };
}

/** Most runs change no hash: reading the old list back is much cheaper than an fsynced rewrite. */
async function writeIfChanged(file: string, text: string): Promise<void> {
  const old = await fs.readFile(file, "utf8").catch(() => undefined);
  if (old !== text) await writeFileAtomic(file, text);
}

/**
 * One line as GNU sha256sum writes it: two spaces (text mode), and for a name with a backslash or
 * a line break a leading backslash with those escaped (the pull refuses such names, but a manifest
 * must never be misread).
 */
export function manifestLine(sha256: string, rel: string): string {
  if (!/[\\\n\r]/.test(rel)) return `${sha256}  ${rel}\n`;
  return `\\${sha256}  ${rel.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}\n`;
}
