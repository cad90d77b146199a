import * as fs from "node:fs/promises";
import * as path from "node:path";
import { createHash } from "node:crypto";
import type { Archive } from "../archive/archive";
import { fsyncDir, exists } from "../archive/fsutil";
import { localPath, remotePath } from "../archive/paths";
import type { SftpSession } from "../sftp/connect";
import { closeRemote, openRemote, readRange } from "../sftp/read-range";

/**
 * Moves a bad archived copy (at its stored path: storedPathOf(record)) into the state area's quarantine (never repaired in place, never
 * deleted: it is evidence, and may still be the best copy there is). Returns its archive-relative
 * new location.
 */
export async function quarantine(archive: Archive, rel: string, at: Date): Promise<string> {
  const stamp = at.toISOString().replace(/[:.]/g, "-");
  const storedAs = `.tick-backup/quarantine/${stamp}/${rel}`;
  const target = path.join(archive.root, ...storedAs.split("/"));
  await fs.mkdir(path.dirname(target), { recursive: true });
  const from = localPath(archive.root, rel);
  await fs.rename(from, target);
  await fsyncDir(path.dirname(target));
  await fsyncDir(path.dirname(from));
  return storedAs;
}

/**
 * Downloads the first `size` bytes of a remote file into the state area's partial folder and
 * hashes them on the way. The caller decides, by the hash, whether the copy may take the path.
 */
export async function fetchCopy(session: SftpSession, archive: Archive, remoteDir: string, rel: string, size: number, signal?: AbortSignal): Promise<{ part: string; sha256: string }> {
  const part = path.join(archive.partialDir, `verify-${createHash("sha256").update(rel).digest("hex").slice(0, 24)}.part`);
  const rpath = remotePath(remoteDir, rel);
  const handle = await openRemote(session, rpath);
  try {
    const out = await fs.open(part, "w");
    const hash = createHash("sha256");
    try {
      let pos = 0;
      await readRange(session.sftp, handle, 0, size, async (chunk) => {
        hash.update(chunk);
        await out.write(chunk, 0, chunk.length, pos);
        pos += chunk.length;
      }, { signal, label: rpath });
      await out.sync();
    } finally {
      await out.close();
    }
    return { part, sha256: hash.digest("hex") };
  } finally {
    await closeRemote(session, handle);
  }
}

/** Puts a fetched, checked copy at its stored path, unless something took the path meanwhile (a pull). */
export async function placeCopy(archive: Archive, part: string, rel: string): Promise<boolean> {
  const dest = localPath(archive.root, rel);
  if (await exists(dest)) {
    await fs.rm(part, { force: true });
    return false;
  }
  await fs.mkdir(path.dirname(dest), { recursive: true });
  await fs.rename(part, dest);
  await fsyncDir(path.dirname(dest));
  return true;
}
