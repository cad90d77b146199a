import * as path from "node:path";
import { UnsafeName } from "../errors";

/** The archive's own bookkeeping lives here; no remote name may reach it. */
export const STATE_DIR = ".tick-backup";

/**
 * Checks one remote directory entry name. Remote names are untrusted input: a server (or an
 * attacker on it) chooses them, so anything that could climb out of the archive or not round-trip
 * through UTF-8 is refused rather than "cleaned". Control characters and backslash are legal names on
 * the server's filesystem; they are kept, and always stored escaped (names.ts).
 */
export function checkName(name: string): void {
  if (name.length === 0) throw new UnsafeName(name, "empty name");
  if (name === "." || name === "..") throw new UnsafeName(name, "dot entry");
  if (name.includes("/")) throw new UnsafeName(name, "contains a path separator");
  if (name.includes("\u0000")) throw new UnsafeName(name, "contains NUL");
  if (name.includes("\ufffd")) throw new UnsafeName(name, "not valid UTF-8");
  if (Buffer.byteLength(name, "utf8") > 255) throw new UnsafeName(name, "longer than 255 bytes");
}

/**
 * Checks one component of a stored (local) path: what names.ts makes never fails this. Stricter than
 * a remote name: no backslash and no control characters (escaped when stored), and on Windows no ":" (a
 * drive or an alternate data stream).
 */
export function checkStoredName(name: string, pathApi: path.PlatformPath = path): void {
  checkName(name);
  if (name.includes("\\")) throw new UnsafeName(name, "contains a path separator");
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new UnsafeName(name, "contains a control character");
  if (pathApi.sep === "\\" && name.includes(":")) throw new UnsafeName(name, "contains a drive or stream separator");
}

/** Joins checked names into the archive-relative path (always "/"-separated). */
export function joinRel(parent: string, name: string): string {
  checkName(name);
  const rel = parent === "" ? name : `${parent}/${name}`;
  if (rel.split("/")[0] === STATE_DIR) throw new UnsafeName(rel, `${STATE_DIR} is reserved for the archive's own state`);
  return rel;
}

/**
 * Maps a stored archive-relative path ("/"-separated, as records keep it: `storedPathOf(record)`) to
 * a local one, and proves the result is inside the root — the last line of defence should a bad name
 * ever get past the checks. `pathApi` is the platform's path module (tests pass path.win32).
 */
export function localPath(root: string, rel: string, pathApi: path.PlatformPath = path): string {
  const parts = rel.split("/");
  for (const part of parts) checkStoredName(part, pathApi);
  if (parts[0] === STATE_DIR) throw new UnsafeName(rel, `${STATE_DIR} is reserved for the archive's own state`);
  const resolvedRoot = pathApi.resolve(root);
  const full = pathApi.resolve(resolvedRoot, ...parts);
  if (!full.startsWith(resolvedRoot.endsWith(pathApi.sep) ? resolvedRoot : resolvedRoot + pathApi.sep)) throw new UnsafeName(rel, "leaves the archive");
  return full;
}

/**
 * localPath for many files of one root (a scrub's thousands): each directory is proven once, and a
 * file's own name, checked like every other part, is joined to its proven directory (a checked name
 * holds no separator and is not "." or "..", so the join cannot leave it).
 */
export function localPaths(root: string, pathApi: path.PlatformPath = path): (rel: string) => string {
  const dirs = new Map<string, string>();
  return (rel) => {
    const cut = rel.lastIndexOf("/");
    const name = rel.slice(cut + 1);
    if (cut < 0) return localPath(root, rel, pathApi);
    const dirRel = rel.slice(0, cut);
    let dir = dirs.get(dirRel);
    if (dir === undefined) dirs.set(dirRel, (dir = localPath(root, dirRel, pathApi)));
    checkStoredName(name, pathApi);
    return dir + pathApi.sep + name;
  };
}

/** Joins a remote directory and an archive-relative path into the remote (POSIX) path. */
export function remotePath(remoteDir: string, rel: string): string {
  const base = remoteDir.endsWith("/") ? remoteDir.slice(0, -1) : remoteDir;
  return rel === "" ? base || "/" : `${base}/${rel}`;
}
