import type { FileEntry, SFTPWrapper } from "ssh2";
import { isSftpStatus, messageOf, TransferFailed, UnsafeName } from "../errors";
import { joinRel, remotePath } from "../archive/paths";

export interface RemoteFile {
  /** archive-relative path, "/"-separated */
  rel: string;
  size: number;
  /** seconds since the epoch */
  mtime: number;
}

export interface Listing {
  files: RemoteFile[];
  dirs: number;
  refused: Array<{ path: string; reason: string }>;
  /** symlinks and other non-regular entries, not followed */
  skipped: string[];
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/** Lists the remote tree under `remoteDir`: one readdir per directory, several directories at once. */
export async function listTree(
  sftp: SFTPWrapper,
  remoteDir: string,
  options: { concurrency?: number; signal?: AbortSignal; onDir?: (dirs: number, files: number) => void } = {},
): Promise<Listing> {
  const listing: Listing = { files: [], dirs: 0, refused: [], skipped: [] };
  const queue: string[] = [""];
  let active = 0;
  return new Promise((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown) => {
      if (!failed) (failed = true), reject(err);
    };
    const pump = () => {
      if (failed) return;
      if (options.signal?.aborted) return fail(options.signal.reason);
      if (queue.length === 0 && active === 0) return resolve(listing);
      while (queue.length > 0 && active < (options.concurrency ?? 8)) {
        const rel = queue.shift()!;
        active++;
        sftp.readdir(remotePath(remoteDir, rel), (err: Error | undefined, entries: FileEntry[]) => {
          active--;
          if (err) return fail(new TransferFailed(remotePath(remoteDir, rel) || "/", `cannot list: ${messageOf(err)}`, { retryable: !isSftpStatus(err), cause: err }));
          listing.dirs++;
          for (const entry of entries) addEntry(rel, entry);
          options.onDir?.(listing.dirs, listing.files.length);
          pump();
        });
      }
    };
    const addEntry = (parent: string, entry: FileEntry) => {
      if (entry.filename === "." || entry.filename === "..") return;
      let rel: string;
      try {
        rel = joinRel(parent, entry.filename);
      } catch (err) {
        const shown = parent ? `${parent}/${entry.filename}` : entry.filename;
        listing.refused.push({ path: shown, reason: err instanceof UnsafeName ? err.message : messageOf(err) });
        return;
      }
      const type = (entry.attrs.mode ?? 0) & S_IFMT;
      if (type === S_IFDIR) queue.push(rel);
      else if (type === S_IFREG) listing.files.push({ rel, size: entry.attrs.size, mtime: entry.attrs.mtime });
      else listing.skipped.push(rel);
    };
    pump();
  });
}
