import * as fs from "node:fs/promises";
import * as path from "node:path";
import { createHash } from "node:crypto";
import { writeFileAtomic } from "./fsutil";
import type { FsIdentity } from "./filesystem";
import { BackupError } from "../errors";

/**
 * What a Node-RED (or any caller with a place of its own, outside the archive) remembers about the
 * archive it opened at a path. An unplugged disk leaves an empty mount point with no trace of the
 * archive in it, so only a memory kept elsewhere can tell "new archive" from "disk missing".
 * One small file per archive path, so that two archives never race on one file.
 */
export interface KnownArchive {
  path: string;
  id: string;
  name: string;
  filesystem?: FsIdentity;
  openedAt: string;
}

export function knownFile(knownDir: string, root: string): string {
  const key = createHash("sha256").update(path.resolve(root)).digest("hex").slice(0, 16);
  return path.join(knownDir, `archive-${key}.json`);
}

export async function readKnown(knownDir: string, root: string): Promise<KnownArchive | undefined> {
  try {
    const known = JSON.parse(await fs.readFile(knownFile(knownDir, root), "utf8")) as KnownArchive;
    return known.path === path.resolve(root) ? known : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    // Unreadable, it would let an unplugged disk's empty mount point pass for a new archive: say so instead.
    if (err instanceof SyntaxError) throw new BackupError("KNOWN_DAMAGED", `${knownFile(knownDir, root)} is damaged (${err.message}): it remembers the archive at ${path.resolve(root)}; check the disk is mounted, then delete the file`);
    throw err;
  }
}

export async function rememberKnown(knownDir: string, known: KnownArchive): Promise<void> {
  await fs.mkdir(knownDir, { recursive: true });
  await writeFileAtomic(knownFile(knownDir, known.path), JSON.stringify(known, null, 2) + "\n");
}
