// demo/sftp-server.ts — a read-only SFTP server inside this process, built on ssh2's Server.
// `npm start` serves the demo's tick data with it; tests use it because, unlike OpenSSH, it can be
// told to misbehave on purpose: cut the connection, stall, grow a file while it is read, or list
// hostile names.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { Server, utils } from "ssh2";
import type { Attributes, AuthContext, Connection, FileEntry, ParsedKey, SFTPWrapper } from "ssh2";
import { attrsOf, codeError, ServedTree, statusOf, type VirtualEntry } from "./served-tree";

const { OPEN_MODE, STATUS_CODE } = utils.sftp;
const WRITE_FLAGS = OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC | OPEN_MODE.EXCL;
const MAX_READ = 255 * 1024;   // clients drop packets over 256 KiB
const DIR_BATCH = 64;          // names per READDIR reply, so clients must page like with OpenSSH
const MAX_TIMER = 2 ** 31 - 1; // setTimeout fires at once beyond this: clamp, a "stall" must stall
const NO_ATTRS = {} as Attributes; // REALPATH/READLINK replies carry no attributes, as OpenSSH's

export interface FakeSftpOptions {
  root: string;                 // local directory served as "/" (read-only)
  port?: number;                // 0 = random free port (default 0)
  username?: string;            // default "ticks"
  password?: string;            // accepted password (optional)
  authorizedKey?: string;       // OpenSSH public key text accepted for publickey auth (optional)
  hostKey?: string | Buffer;    // PEM/OpenSSH private host key; default: a fresh ed25519 key
  cutAfterBytes?: number;       // destroy the TCP connection once this many file-data bytes were sent on one connection
  readDelayMs?: number;         // delay every READ reply (stall simulation); a very large value = stalled server
  growWhileRead?: { path: string; bytesPerRead: number }; // append bytes to that file (real fs) each time it is READ
  extraEntries?: Record<string, Array<{ name: string; content?: Buffer; symlink?: boolean; dir?: boolean }>>; // hostile names, by remote dir
  refuseExec?: boolean;         // default true: exec requests are rejected
}

export interface FakeSftpServer {
  port: number;
  hostFingerprint: string;      // "SHA256:<base64 without padding>", as `ssh-keygen -lf` prints it
  bytesServed: Map<string, number>; // remote path -> file-data bytes sent by READ replies
  totalBytesServed(): number;
  connections: number;          // TCP connections accepted so far
  setOptions(patch: Partial<FakeSftpOptions>): void; // fault options apply at once; root, port, keys only at start
  close(): Promise<void>;       // stops listening and destroys all open connections
}

type Handle =
  | { kind: "file"; fh: fs.promises.FileHandle; remote: string; local: string }
  | { kind: "virtual"; content: Buffer; remote: string }
  | { kind: "dir"; local: string; pending: Array<string | VirtualEntry> };

interface ConnState {
  socket: net.Socket;
  channels: Set<SFTPWrapper>;
  sent: number;                 // file-data bytes queued by READ replies
  reserved: number;             // sent + bytes of READs still reading from disk
  cutDue: boolean;              // the cutAfterBytes budget is spent: cut once the replies are out
  cutting: boolean;
  timers: Set<NodeJS.Timeout>;
  handles: Map<string, Handle>; // of all SFTP channels on this connection, closed with it
  handleSeq: number;
}

export async function startFakeSftp(options: FakeSftpOptions): Promise<FakeSftpServer> {
  const opts: FakeSftpOptions = { ...options };
  const tree = new ServedTree(opts.root, () => opts.extraEntries, opts.username ?? "ticks");
  const hostKey = opts.hostKey ?? utils.generateKeyPairSync("ed25519").private;
  const hostFingerprint = fingerprintOf(parseOne(hostKey, "host key"));
  const authKey = opts.authorizedKey ? parseOne(opts.authorizedKey, "authorized key") : undefined;
  const bytesServed = new Map<string, number>();
  const states = new Map<number, ConnState>(); // by client port: ssh2 hides the socket of a Connection
  let connections = 0;

  // A cut must come after the replies already queued have reached the client (ssh2 holds back what
  // exceeds the client's channel window): the client then sees its data arrive and the line die after
  // exactly cutAfterBytes, as when a real link drops. ssh2 has no public "flushed" signal, hence the
  // peek at its channel buffer; the 5 s cap keeps a client that stopped reading from holding us.
  function cutWhenFlushed(c: ConnState, waitedMs = 0): void {
    if (c.cutting && waitedMs === 0) return;
    c.cutting = true;
    const held = [...c.channels].some((ch) => ((ch as unknown as { _buffer?: unknown[] })._buffer?.length ?? 0) > 0);
    if ((held || c.socket.writableLength > 0) && waitedMs < 5000) {
      return void c.timers.add(setTimeout(() => cutWhenFlushed(c, waitedMs + 5), 5));
    }
    c.socket.end(); // FIN, not close(): close() with requests still unread would RST away the data in flight
    c.timers.add(setTimeout(() => c.socket.destroy(), 1000));
  }

  function serveSftp(sftp: SFTPWrapper, c: ConnState): void {
    c.channels.add(sftp);
    const newHandle = (h: Handle) => {
      const id = Buffer.from((c.handleSeq++).toString(16).padStart(8, "0"), "hex"); // unique per connection
      // A file opened while the connection went away would never be closed by it: close it now.
      if (c.socket.destroyed) {
        if (h.kind === "file") h.fh.close().catch(() => undefined);
        return id;
      }
      c.handles.set(id.toString("hex"), h);
      return id;
    };
    // Every reply goes through here: a failed fs call becomes an SFTP status without leaking the
    // local path, and a reply to a client that already left is dropped quietly.
    const run = (id: number, work: () => Promise<void> | void) => {
      Promise.resolve().then(work).catch((err) => {
        try { sftp.status(id, ...statusOf(err)); } catch { /* client gone */ }
      });
    };
    const handleOf = (b: Buffer): Handle => {
      const h = c.handles.get(b.toString("hex"));
      if (!h) throw codeError("EBADF");
      return h;
    };

    sftp.on("REALPATH", (id, p) => run(id, () => sftp.name(id, [{ filename: tree.remoteOf(p), longname: tree.remoteOf(p), attrs: NO_ATTRS }])));
    const stat = (follow: boolean) => (id: number, p: string) => run(id, async () => {
      const v = tree.virtualAt(p);
      if (v) return sftp.attrs(id, tree.virtualAttrs(v));
      const local = await tree.localOf(tree.remoteOf(p), follow);
      sftp.attrs(id, attrsOf(await (follow ? fs.promises.stat(local) : fs.promises.lstat(local))));
    });
    sftp.on("STAT", stat(true));
    sftp.on("LSTAT", stat(false));
    sftp.on("FSTAT", (id, b) => run(id, async () => {
      const h = handleOf(b);
      if (h.kind === "file") return sftp.attrs(id, attrsOf(await h.fh.stat()));
      if (h.kind === "virtual") return sftp.attrs(id, tree.virtualAttrs({ name: "", content: h.content }));
      throw codeError("EISDIR");
    }));
    sftp.on("READLINK", (id, p) => run(id, async () => {
      const v = tree.virtualAt(p);
      if (v && !v.symlink) throw codeError("EINVAL");
      const target = v ? v.content?.toString() ?? "/etc/passwd" : await fs.promises.readlink(await tree.localOf(tree.remoteOf(p), false));
      sftp.name(id, [{ filename: target, longname: target, attrs: NO_ATTRS }]);
    }));

    sftp.on("OPENDIR", (id, p) => run(id, async () => {
      const v = tree.virtualAt(p);
      if (v && !v.dir) throw codeError("ENOTDIR");
      const local = v ? "" : await tree.localOf(tree.remoteOf(p), true);
      const names = v ? [] : await fs.promises.readdir(local); // throws ENOTDIR on a file
      sftp.handle(id, newHandle({ kind: "dir", local, pending: [".", "..", ...names, ...tree.extrasIn(p)] }));
    }));
    sftp.on("READDIR", (id, b) => run(id, async () => {
      const h = handleOf(b);
      if (h.kind !== "dir") throw codeError("ENOTDIR");
      const out: FileEntry[] = [];
      while (out.length === 0 && h.pending.length > 0) {
        for (const item of h.pending.splice(0, DIR_BATCH)) {
          if (typeof item !== "string") { out.push(tree.entryOf(item.name, tree.virtualAttrs(item))); continue; }
          if (!h.local) { out.push(tree.entryOf(item, tree.virtualAttrs({ name: item, dir: true }))); continue; }
          const local = item === ".." && h.local === tree.root ? tree.root : path.join(h.local, item);
          // lstat, so symlinks show as symlinks; a file deleted since OPENDIR is skipped
          const st = await fs.promises.lstat(local).catch(() => undefined);
          if (st) out.push(tree.entryOf(item, attrsOf(st)));
        }
      }
      if (out.length === 0) return sftp.status(id, STATUS_CODE.EOF);
      sftp.name(id, out);
    }));

    sftp.on("OPEN", (id, filename, flags) => run(id, async () => {
      if (flags & WRITE_FLAGS) return sftp.status(id, STATUS_CODE.PERMISSION_DENIED, "Read-only server");
      const v = tree.virtualAt(filename);
      if (v?.dir) throw codeError("EISDIR");
      if (v) return sftp.handle(id, newHandle({ kind: "virtual", content: v.content ?? Buffer.alloc(0), remote: filename }));
      const remote = tree.remoteOf(filename);
      const local = await tree.localOf(remote, true);
      const fh = await fs.promises.open(local, "r");
      if ((await fh.stat()).isDirectory()) { await fh.close(); throw codeError("EISDIR"); }
      sftp.handle(id, newHandle({ kind: "file", fh, remote, local }));
    }));
    sftp.on("READ", (id, b, offset, length) => {
      const reply = () => run(id, async () => {
        const h = handleOf(b);
        if (h.kind === "dir") throw codeError("EISDIR");
        // Bytes are reserved before the await, so that parallel READs cannot overshoot the cut. A READ
        // past the budget gets no reply; the connection dies once the last reserved bytes are queued,
        // so the client sees it die mid-file.
        const cut = opts.cutAfterBytes;
        const len = Math.min(length, MAX_READ, cut === undefined ? Infinity : cut - c.reserved);
        if (len <= 0) c.cutDue = true;
        else {
          c.reserved += len;
          let data: Buffer = Buffer.alloc(0);
          try {
            const buf = Buffer.alloc(len);
            data = h.kind === "virtual" ? h.content.subarray(offset, offset + len) : buf.subarray(0, (await h.fh.read(buf, 0, len, offset)).bytesRead);
          } finally {
            c.reserved -= len - data.length;
            c.sent += data.length;
          }
          if (data.length === 0) sftp.status(id, STATUS_CODE.EOF);
          else {
            bytesServed.set(h.remote, (bytesServed.get(h.remote) ?? 0) + data.length);
            sftp.data(id, data);
          }
        }
        if ((c.cutDue || (cut !== undefined && c.sent >= cut)) && c.reserved === c.sent) cutWhenFlushed(c);
        const grow = opts.growWhileRead;
        if (grow && h.kind === "file" && tree.remoteOf(grow.path) === h.remote) {
          await fs.promises.appendFile(h.local, Buffer.alloc(grow.bytesPerRead, "grown tick line\n"));
        }
      });
      const delay = opts.readDelayMs ?? 0;
      if (delay <= 0) return reply();
      const timer = setTimeout(() => { c.timers.delete(timer); reply(); }, Math.min(delay, MAX_TIMER));
      c.timers.add(timer);
    });
    sftp.on("CLOSE", (id, b) => run(id, async () => {
      const h = handleOf(b);
      c.handles.delete(b.toString("hex"));
      if (h.kind === "file") await h.fh.close();
      sftp.status(id, STATUS_CODE.OK);
    }));
    // Everything else (WRITE, REMOVE, MKDIR, RENAME, SETSTAT, …) ssh2 answers OP_UNSUPPORTED.

    // OpenSSH's client sends EOF when done and waits for us to close the channel, as sftp-server would.
    sftp.on("end", () => sftp.end());
  }

  function authenticate(ctx: AuthContext): void {
    const methods: Array<"password" | "publickey"> = [];
    if (opts.password !== undefined) methods.push("password");
    if (authKey) methods.push("publickey");
    if (ctx.username !== (opts.username ?? "ticks")) return ctx.reject(methods);
    if (ctx.method === "password" && opts.password !== undefined && sameSecret(ctx.password, opts.password)) return ctx.accept();
    if (ctx.method === "publickey" && authKey && sameSecret(ctx.key.data, authKey.getPublicSSH())) {
      if (!ctx.signature) return ctx.accept(); // the client only asks whether this key would do
      if (ctx.blob && authKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
    }
    ctx.reject(methods);
  }

  // Named like OpenSSH because clients size their READs by the server's name: ssh2 asks a server it
  // takes for OpenSSH for up to 254 KiB at once, anyone else for 31 KiB — we want the production case.
  const ssh = new Server({ hostKeys: [hostKey], ident: "OpenSSH_9.2p1 tick-backup-fake" });
  ssh.on("error", () => { /* a broken handshake concerns that client only */ });
  ssh.on("connection", (conn: Connection, info) => {
    const state = states.get(info.port);
    conn.on("error", () => { /* resets and keepalive timeouts end that connection only */ });
    if (!state) return conn.end();
    conn.on("authentication", authenticate);
    conn.on("ready", () => conn.on("session", (acceptSession) => {
      const session = acceptSession();
      session.on("sftp", (acceptSftp) => serveSftp(acceptSftp(), state));
      session.on("exec", (acceptExec, reject) => {
        if (opts.refuseExec !== false) return reject();
        const ch = acceptExec(); // there is no shell here: every command is "not found"
        ch.stderr.end("command not found\n");
        ch.exit(127);
        ch.end();
      });
    }));
  });

  // Our own TCP listener, handing sockets to ssh2: we need them for TCP_NODELAY, for cutting a
  // connection on purpose and for destroying all of them on close.
  const tcp = net.createServer((socket) => {
    connections++;
    socket.setNoDelay(true);
    socket.on("error", () => { /* ECONNRESET from a client that vanished */ });
    const state: ConnState = { socket, channels: new Set(), sent: 0, reserved: 0, cutDue: false, cutting: false, timers: new Set(), handles: new Map(), handleSeq: 0 };
    const port = socket.remotePort ?? -1;
    states.set(port, state);
    socket.once("close", () => {
      if (states.get(port) === state) states.delete(port);
      for (const t of state.timers) clearTimeout(t);
      for (const h of state.handles.values()) if (h.kind === "file") h.fh.close().catch(() => undefined);
      state.handles.clear();
    });
    ssh.injectSocket(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(opts.port ?? 0, "127.0.0.1", () => { tcp.off("error", reject); resolve(); });
  });

  return {
    port: (tcp.address() as net.AddressInfo).port,
    hostFingerprint,
    bytesServed,
    totalBytesServed: () => [...bytesServed.values()].reduce((a, b) => a + b, 0),
    get connections() { return connections; },
    setOptions(patch) { Object.assign(opts, patch); },
    close() {
      for (const s of states.values()) s.socket.destroy();
      return new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}

function parseOne(key: string | Buffer, what: string): ParsedKey {
  const parsed = utils.parseKey(key);
  if (parsed instanceof Error) throw new Error(`Cannot parse the ${what}: ${parsed.message}`);
  return Array.isArray(parsed) ? parsed[0] : parsed;
}

function fingerprintOf(key: ParsedKey): string {
  return "SHA256:" + crypto.createHash("sha256").update(key.getPublicSSH()).digest("base64").replace(/=+$/, "");
}

// Compares digests so that neither length nor content leaks through timing.
function sameSecret(a: string | Buffer, b: string | Buffer): boolean {
  const h = (x: string | Buffer) => crypto.createHash("sha256").update(x).digest();
  return crypto.timingSafeEqual(h(a), h(b));
}
