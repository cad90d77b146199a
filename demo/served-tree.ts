// demo/served-tree.ts — what the fake SFTP server shows: a local directory as "/", never a byte
// outside it, plus virtual entries with hostile names that tests add to its listings.
import * as fs from "node:fs";
import * as path from "node:path";
import { utils } from "ssh2";
import type { Attributes, FileEntry } from "ssh2";

const { STATUS_CODE } = utils.sftp;

export interface VirtualEntry { name: string; content?: Buffer; symlink?: boolean; dir?: boolean }

export class ServedTree {
  readonly root: string;
  private readonly virtualMtime = Math.floor(Date.now() / 1000) - 86400; // old enough to count as settled

  // `extras` is read at every call, so that tests can change the entries while the server runs
  constructor(root: string, private readonly extras: () => Record<string, VirtualEntry[]> | undefined, private readonly owner: string) {
    this.root = fs.realpathSync(root);
  }

  /** Resolved against "/", so ".." stops at the root. */
  remoteOf(p: string): string {
    return path.posix.resolve("/", p);
  }

  /**
   * The local path of a remote one. Symlinks are resolved on disk, and whatever lands outside the
   * root is reported as missing, like a chrooted internal-sftp; `follow` false keeps the last
   * component itself (for LSTAT, READLINK).
   */
  async localOf(remote: string, follow: boolean): Promise<string> {
    if (remote === "/") return this.root;
    const joined = path.join(this.root, remote.slice(1));
    const real = await fs.promises.realpath(follow ? joined : path.dirname(joined));
    if (real !== this.root && !real.startsWith(this.root + path.sep)) throw codeError("ENOENT");
    return follow ? real : path.join(real, path.basename(joined));
  }

  /**
   * The virtual entry a request names. Matched on the raw request, before normalising, so that
   * names like "../x" are reachable exactly as listed: a careless client that opens one gets it.
   */
  virtualAt(raw: string): VirtualEntry | undefined {
    const norm = (p: string) => "/" + p.replace(/^\/+/, "");
    for (const [dir, entries] of Object.entries(this.extras() ?? {})) {
      const hit = entries.find((e) => norm(dir.replace(/\/+$/, "") + "/" + e.name) === norm(raw));
      if (hit) return hit;
    }
    return undefined;
  }

  /** Virtual entries listed in the remote directory `raw`. */
  extrasIn(raw: string): VirtualEntry[] {
    return Object.entries(this.extras() ?? {}).filter(([dir]) => this.remoteOf(dir) === this.remoteOf(raw)).flatMap(([, e]) => e);
  }

  virtualAttrs(e: VirtualEntry): Attributes {
    const mode = e.dir ? 0o40755 : e.symlink ? 0o120777 : 0o100644;
    return { mode, uid: 0, gid: 0, size: e.content?.length ?? 0, atime: this.virtualMtime, mtime: this.virtualMtime };
  }

  entryOf(name: string, attrs: Attributes): FileEntry {
    return { filename: name, longname: longname(name, attrs, this.owner), attrs };
  }
}

export function attrsOf(st: fs.Stats): Attributes {
  return { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, atime: Math.floor(st.atimeMs / 1000), mtime: Math.floor(st.mtimeMs / 1000) };
}

// Like OpenSSH's `ls -l` line; ssh2-sftp-client reads the entry type and rights from it.
function longname(name: string, a: Attributes, owner: string): string {
  const kind = ({ 0o040000: "d", 0o120000: "l" } as Record<number, string>)[a.mode & 0o170000] ?? "-";
  const rwx = [6, 3, 0].map((s) => ["r", "w", "x"].map((ch, i) => (a.mode >> s) & (4 >> i) ? ch : "-").join("")).join("");
  const d = new Date(a.mtime * 1000).toUTCString(); // "Fri, 27 Nov 2026 01:12:13 GMT"
  const recent = Math.abs(Date.now() - a.mtime * 1000) < 182 * 86400_000;
  const when = `${d.slice(8, 11)} ${d.slice(5, 7).replace(/^0/, " ")} ${recent ? d.slice(17, 22) : " " + d.slice(12, 16)}`;
  return `${kind}${rwx}    1 ${owner.padEnd(8)} ${owner.padEnd(8)} ${String(a.size).padStart(8)} ${when} ${name}`;
}

export function codeError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

// Fixed texts, not the fs message: that would tell the client where the root lies on this machine.
// A NUL in a path makes Node throw ERR_INVALID_ARG_VALUE: for the client that file does not exist.
export function statusOf(err: NodeJS.ErrnoException): [number, string] {
  const missing = ["ENOENT", "ENOTDIR", "ELOOP", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_TYPE"];
  if (missing.includes(err.code ?? "")) return [STATUS_CODE.NO_SUCH_FILE, "No such file"];
  if (err.code === "EACCES" || err.code === "EPERM") return [STATUS_CODE.PERMISSION_DENIED, "Permission denied"];
  return [STATUS_CODE.FAILURE, err.code === "EISDIR" ? "Is a directory" : err.code === "EBADF" ? "Invalid handle" : "Failure"];
}
