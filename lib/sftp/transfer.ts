import * as fs from "node:fs/promises";
import * as path from "node:path";
import { createHash } from "node:crypto";
import type { SftpSession } from "./connect";
import type { Archive } from "../archive/archive";
import type { FileRecord, FileVersion } from "../archive/catalog";
import { DirSyncer, exists, fsyncDir, renameReplacing, sizeOf } from "../archive/fsutil";
import { Flusher, hashFile, hashInto, readLocal } from "../archive/local-io";
import { shortenName, type NameMap } from "../archive/names";
import { localPath, remotePath } from "../archive/paths";
import { BackupError } from "../errors";
import type { RemoteFile } from "./list";
import { closeRemote, openRemote, readRange, type ReadRangeOptions } from "./read-range";

export interface TransferContext {
  session: SftpSession;
  archive: Archive;
  remoteDir: string;
  read: ReadRangeOptions;
  now: () => Date;
  /** shared by a run's transfers: folders known to exist, and coalesced folder fsyncs */
  dirs: { known: Set<string>; syncer: DirSyncer };
  /** where each remote path is stored (the same path, unless the archive's filesystem cannot hold it) */
  names: NameMap;
}

export function runDirs(): TransferContext["dirs"] {
  return { known: new Set(), syncer: new DirSyncer() };
}

export interface TransferResult {
  kind: "new" | "grown" | "rewritten" | "touched";
  record: FileRecord;
  /** bytes that crossed the network for the file's content (checks included) */
  bytes: number;
  rewritten?: { keptAs: string; oldSha256: string; wasFinal: boolean };
}

/** How much of the already-archived end of a file is compared with the server before trusting it. */
const CHECK_WINDOW = 64 * 1024;
/** Smaller downloads are not worth a resume record: an interrupted one is simply fetched again. */
const RESUME_MIN = 1024 * 1024;

/**
 * A new file: downloaded into the state area under a temporary name (resuming what an earlier,
 * interrupted run left there), hashed while it streams, fsynced, and only then renamed into place.
 */
export async function pullNew(ctx: TransferContext, remote: RemoteFile, live: boolean, previous?: FileRecord): Promise<TransferResult> {
  const { part, bytes, sha256 } = await downloadToPartial(ctx, remote);
  const stored = ctx.names.storedFor(remote.rel);
  const dest = localPath(ctx.archive.root, stored);
  const versions = [...(previous?.versions ?? [])];
  if (await exists(dest)) {
    // A file the catalog does not know (copied in by hand, or placed just before a crash).
    const localSha = await hashFile(dest);
    if (localSha !== sha256) versions.push(await keepVersion(ctx, stored, dest, { size: (await sizeOf(dest)) ?? 0, mtime: 0, sha256: localSha, pulledAt: "" }, "unknown-local"));
  }
  await placeFile(ctx, part, dest);
  const at = ctx.now().toISOString();
  const record: FileRecord = {
    path: remote.rel,
    size: remote.size,
    mtime: remote.mtime,
    sha256,
    state: live ? "live" : "final",
    firstPulledAt: previous?.firstPulledAt ?? at,
    pulledAt: at,
    ...(versions.length > 0 ? { versions } : {}),
    ...(stored !== remote.rel ? { storedPath: stored } : {}),
  };
  return { kind: "new", record, bytes };
}

/**
 * A grown file: its archived bytes must still be the server's (a window before the old end is
 * compared), and still be what the catalog says; then only the new bytes are fetched and appended.
 * Returns undefined when the old bytes differ on the server: the caller treats it as rewritten.
 */
export async function pullGrown(ctx: TransferContext, remote: RemoteFile, record: FileRecord, live: boolean): Promise<TransferResult | undefined> {
  const dest = localPath(ctx.archive.root, ctx.names.storedFor(remote.rel));
  const localSize = await sizeOf(dest);
  if (localSize === undefined) return pullNew(ctx, remote, live, record); // deleted locally by hand: fetch it whole again
  if (localSize < record.size) {
    throw new BackupError("ARCHIVE_DAMAGED", `${remote.rel}: archived copy is ${localSize} bytes, the catalog says ${record.size}; not appending to a damaged file`);
  }
  if (localSize > record.size) await fs.truncate(dest, record.size); // an append that a crash interrupted: redo it

  const sftp = ctx.session.sftp;
  const rpath = remotePath(ctx.remoteDir, remote.rel);
  const handle = await openRemote(ctx.session, rpath);
  try {
    // Our copy first: if it rotted, a difference from the server says nothing about the server.
    const hash = createHash("sha256");
    await hashInto(hash, dest, record.size);
    if (hash.copy().digest("hex") !== record.sha256) {
      throw new BackupError("ARCHIVE_DAMAGED", `${remote.rel}: archived copy no longer matches its catalog hash (disk error or tampering); not appending`);
    }
    const windowStart = Math.max(0, record.size - CHECK_WINDOW);
    const theirs = await readAll(ctx, handle, rpath, windowStart, record.size);
    const ours = await readLocal(dest, windowStart, record.size - windowStart);
    if (!theirs.equals(ours)) return undefined;

    const out = await fs.open(dest, "a");
    try {
      await readRange(sftp, handle, record.size, remote.size, async (chunk) => {
        hash.update(chunk);
        await out.write(chunk);
      }, { ...ctx.read, label: rpath });
      await out.sync();
    } finally {
      await out.close();
    }
    const at = ctx.now().toISOString();
    return {
      kind: "grown",
      record: { ...record, size: remote.size, mtime: remote.mtime, sha256: hash.digest("hex"), state: live ? "live" : "final", pulledAt: at, goneSince: undefined },
      bytes: remote.size - record.size + theirs.length,
    };
  } finally {
    await closeRemote(ctx.session, handle);
  }
}

/**
 * The server's file differs from the archived one in size or mtime without having grown. It is
 * fetched whole; same content means it was only touched. Otherwise the archived bytes are kept as a
 * version (a hard link, so they are never absent for an instant) and the new content takes the path.
 */
export async function pullRewritten(ctx: TransferContext, remote: RemoteFile, record: FileRecord, live: boolean): Promise<TransferResult> {
  const { part, bytes, sha256 } = await downloadToPartial(ctx, remote);
  const at = ctx.now().toISOString();
  if (sha256 === record.sha256) {
    await fs.rm(part, { force: true });
    return { kind: "touched", record: { ...record, mtime: remote.mtime, state: live ? "live" : "final", goneSince: undefined }, bytes };
  }
  const stored = ctx.names.storedFor(remote.rel);
  const dest = localPath(ctx.archive.root, stored);
  const versions = [...(record.versions ?? [])];
  let keptAs = "";
  if (await exists(dest)) {
    // Label the kept bytes with what they really are, even if the archived copy had rotted.
    const version = await keepVersion(ctx, stored, dest, { ...record, sha256: await hashFile(dest) }, "rewritten");
    versions.push(version);
    keptAs = version.storedAs;
  }
  await placeFile(ctx, part, dest);
  return {
    kind: "rewritten",
    // New content: what verify said of the old one no longer applies.
    record: { ...record, size: remote.size, mtime: remote.mtime, sha256, state: live ? "live" : "final", pulledAt: at, goneSince: undefined, versions, verifiedAt: undefined, verifyResult: undefined },
    bytes,
    rewritten: { keptAs, oldSha256: record.sha256, wasFinal: record.state === "final" },
  };
}

interface PartialMeta {
  rel: string;
  mtime: number;
  size: number;
}

/** Downloads a whole file into the state area's partial folder, resuming an earlier attempt when it is safe to. */
async function downloadToPartial(ctx: TransferContext, remote: RemoteFile): Promise<{ part: string; bytes: number; sha256: string }> {
  const key = createHash("sha256").update(remote.rel).digest("hex").slice(0, 24);
  const part = path.join(ctx.archive.partialDir, `${key}.part`);
  const metaFile = path.join(ctx.archive.partialDir, `${key}.json`);
  const rpath = remotePath(ctx.remoteDir, remote.rel);
  const handle = await openRemote(ctx.session, rpath);
  let bytes = 0;
  try {
    const hash = createHash("sha256");
    const resumable = remote.size >= RESUME_MIN;
    const resumeFrom = resumable ? await resumablePrefix(ctx, handle, rpath, remote, part, metaFile) : 0;
    if (resumeFrom > 0) {
      bytes += Math.min(CHECK_WINDOW, resumeFrom);
      await hashInto(hash, part, resumeFrom);
    } else if (resumable) {
      await fs.writeFile(metaFile, JSON.stringify({ rel: remote.rel, mtime: remote.mtime, size: remote.size } satisfies PartialMeta));
    }
    const out = await fs.open(part, resumeFrom > 0 ? "r+" : "w");
    try {
      if (resumeFrom > 0) await out.truncate(resumeFrom);
      let pos = resumeFrom;
      const flusher = new Flusher(out);
      await readRange(ctx.session.sftp, handle, resumeFrom, remote.size, async (chunk) => {
        hash.update(chunk);
        await out.write(chunk, 0, chunk.length, pos);
        pos += chunk.length;
        flusher.wrote(chunk.length);
      }, { ...ctx.read, label: rpath });
      await flusher.done();
      await out.sync();
    } finally {
      await out.close();
    }
    bytes += remote.size - resumeFrom;
    if (resumable) await fs.rm(metaFile, { force: true });
    return { part, bytes, sha256: hash.digest("hex") };
  } finally {
    await closeRemote(ctx.session, handle);
  }
}

/** Bytes of an earlier partial download that still match the server (its last window is compared). */
async function resumablePrefix(ctx: TransferContext, handle: Buffer, rpath: string, remote: RemoteFile, part: string, metaFile: string): Promise<number> {
  const have = await sizeOf(part);
  if (!have) return 0;
  let meta: PartialMeta;
  try {
    meta = JSON.parse(await fs.readFile(metaFile, "utf8"));
  } catch {
    return 0;
  }
  if (meta.rel !== remote.rel || have > remote.size || remote.mtime < meta.mtime) return 0;
  const start = Math.max(0, have - CHECK_WINDOW);
  const [theirs, ours] = await Promise.all([readAll(ctx, handle, rpath, start, have), readLocal(part, start, have - start)]);
  return theirs.equals(ours) ? have : 0;
}

/** Renames a complete, fsynced file into its place in the archive tree, creating folders durably. */
async function placeFile(ctx: TransferContext, part: string, dest: string): Promise<void> {
  const dir = path.dirname(dest);
  if (!ctx.dirs.known.has(dir)) {
    const created = await fs.mkdir(dir, { recursive: true });
    if (created) {
      for (let d = dir; d !== path.dirname(created); d = path.dirname(d)) await ctx.dirs.syncer.sync(path.dirname(d));
    }
    ctx.dirs.known.add(dir);
  }
  await renameReplacing(part, dest);
  await ctx.dirs.syncer.sync(dir);
}

/** Keeps the bytes now at `dest` (stored as `stored`) under the versions folder, named by their hash (so a retry finds them). */
async function keepVersion(ctx: TransferContext, stored: string, dest: string, old: Pick<FileRecord, "size" | "mtime" | "sha256" | "pulledAt">, reason: FileVersion["reason"]): Promise<FileVersion> {
  const dirs = stored.split("/");
  const name = `${dirs.pop()}~${old.sha256.slice(0, 16)}`;
  const storedAs = [".tick-backup/versions", ...dirs, shortenName(name, name, ctx.archive.profile.rules)].join("/");
  const target = path.join(ctx.archive.root, ...storedAs.split("/"));
  await fs.mkdir(path.dirname(target), { recursive: true });
  try {
    await fs.link(dest, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      // Filesystems without hard links: a copy, fsynced, is as good (only slower).
      if ((err as NodeJS.ErrnoException).code !== "EPERM" && (err as NodeJS.ErrnoException).code !== "ENOTSUP") throw err;
      await fs.copyFile(dest, target, fs.constants.COPYFILE_EXCL);
      const h = await fs.open(target, "r");
      await h.sync().finally(() => h.close());
    }
  }
  await fsyncDir(path.dirname(target));
  return { size: old.size, mtime: old.mtime, sha256: old.sha256, pulledAt: old.pulledAt, keptAt: ctx.now().toISOString(), storedAs, reason };
}

async function readAll(ctx: TransferContext, handle: Buffer, rpath: string, start: number, end: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  await readRange(ctx.session.sftp, handle, start, end, (c) => void parts.push(c), { ...ctx.read, label: rpath });
  return Buffer.concat(parts);
}
