import * as net from "node:net";
import SftpClient from "ssh2-sftp-client";
import type { Client, ClientChannel, SFTPWrapper } from "ssh2";
import { AuthFailed, ConfigError, ConnectFailed, HostKeyMismatch, messageOf } from "../errors";
import { fingerprintOf, normalizeFingerprint } from "./fingerprint";

export interface ServerConfig {
  host: string;
  port?: number;
  username: string;
  /** `SHA256:…` as `ssh-keygen -lf` prints it; empty refuses to connect */
  hostFingerprint: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  /** TCP connect plus SSH handshake and login (default 20 s) */
  readyTimeoutMs?: number;
}

/** One SSH connection with its SFTP channel. `destroy` cuts it at once (abort, stall). */
export interface SftpSession {
  readonly sftp: SFTPWrapper;
  readonly label: string;
  end(): Promise<void>;
  destroy(): void;
  /** resolves when the connection is gone, for whatever reason */
  readonly closed: Promise<void>;
  isOpen(): boolean;
  /** batch the writes issued until uncork() into as few syscalls as possible */
  cork(): void;
  uncork(): void;
  /**
   * Settles with `request`, or fails once the connection is gone: ssh2 never answers a request made
   * on (or pending at) a dead connection, and a run must not wait for it forever.
   */
  whileOpen<T>(request: Promise<T>): Promise<T>;
  /**
   * Runs one command on the server (SSH exec, beside the SFTP channel) with stdin closed. A server
   * that refuses exec fails the promise; one that runs something else (`ForceCommand internal-sftp`)
   * answers with whatever that printed: callers check the output, not only the exit code.
   */
  exec(command: string, options?: { signal?: AbortSignal; maxOutput?: number }): Promise<ExecResult>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** exit status, or null when the command ended by a signal or the server sent none */
  code: number | null;
}

/** A port as people type it: empty means 22; anything but a whole number from 1 to 65535 is refused (NaN). */
export function parsePort(value: unknown): number {
  if (value === undefined || value === null || value === "") return 22;
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : NaN;
}

export function describeServer(cfg: Pick<ServerConfig, "host" | "port" | "username">): string {
  return `${cfg.username}@${cfg.host}:${cfg.port ?? 22}`;
}

/** Opens a TCP socket with Nagle off: SFTP's request/response traffic is 5–20× slower with it on. */
function openSocket(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port, noDelay: true });
    const timer = setTimeout(() => fail(new ConnectFailed(host, port, `no answer within ${timeoutMs / 1000}s`)), timeoutMs);
    const onAbort = () => fail(new ConnectFailed(host, port, "aborted"));
    signal?.addEventListener("abort", onAbort, { once: true });
    function fail(err: Error) {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.destroy();
      reject(err);
    }
    sock.once("error", (err: NodeJS.ErrnoException) => fail(new ConnectFailed(host, port, err.code ?? err.message, err)));
    sock.once("connect", () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      sock.removeAllListeners("error");
      resolve(sock);
    });
  });
}

/** Connects and logs in, refusing any server whose host key is not the pinned one. */
export async function connect(cfg: ServerConfig, options: { signal?: AbortSignal } = {}): Promise<SftpSession> {
  const port = cfg.port ?? 22;
  const expected = normalizeFingerprint(cfg.hostFingerprint);
  if (!cfg.host) throw new ConfigError("no server host configured");
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`port of ${cfg.host} must be a whole number from 1 to 65535`);
  if (!cfg.username) throw new ConfigError(`no username configured for ${cfg.host}`);
  if (!cfg.password && !cfg.privateKey) throw new ConfigError(`no password or private key configured for ${describeServer(cfg)}`);
  const timeoutMs = cfg.readyTimeoutMs ?? 20_000;

  const sock = await openSocket(cfg.host, port, timeoutMs, options.signal);
  let offered = "";
  let lastError: Error | undefined;
  let markClosed!: () => void;
  let open = true;
  const closed = new Promise<void>((resolve) => (markClosed = resolve)).then(() => {
    open = false;
  });
  const lost = closed.then(() => {
    throw new ConnectFailed(cfg.host, port, "connection lost");
  });
  lost.catch(() => undefined);
  // Our own listeners: the library would otherwise print every error and close to the console.
  const client = new SftpClient(describeServer(cfg), {
    error: (err: unknown) => {
      lastError = err instanceof Error ? err : new Error(String(err));
    },
    end: () => undefined,
    close: () => markClosed(),
  });
  sock.once("close", () => markClosed());

  const onAbort = () => sock.destroy();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const sftp = (await client.connect({
      sock,
      host: cfg.host,
      port,
      username: cfg.username,
      password: cfg.password || undefined,
      privateKey: cfg.privateKey || undefined,
      passphrase: cfg.passphrase || undefined,
      readyTimeout: timeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      hostVerifier: (key: Buffer) => {
        offered = fingerprintOf(key);
        return expected !== "" && offered === expected;
      },
    } as SftpClient.ConnectOptions)) as unknown as SFTPWrapper;
    return {
      sftp,
      label: describeServer(cfg),
      closed,
      isOpen: () => open,
      cork: () => sock.cork(),
      uncork: () => sock.uncork(),
      whileOpen: (request) => Promise.race([request, lost]),
      exec: (command, execOptions = {}) => Promise.race([execOn((client as unknown as { client: Client }).client, command, execOptions), lost]),
      end: async () => {
        open = false;
        await client.end().catch(() => undefined);
        sock.destroy();
      },
      destroy: () => {
        open = false; // at once: nothing may use it between now and the close event
        sock.destroy();
      },
    };
  } catch (err) {
    sock.destroy();
    if (offered && offered !== expected) throw new HostKeyMismatch(`${cfg.host}:${port}`, expected, offered);
    throw classify(cfg, err, lastError);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
  }
}

function execOn(ssh: Client, command: string, options: { signal?: AbortSignal; maxOutput?: number }): Promise<ExecResult> {
  const max = options.maxOutput ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    ssh.exec(command, (err: Error | undefined, stream: ClientChannel) => {
      if (err) return reject(err);
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let size = 0;
      let code: number | null = null;
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        options.signal?.removeEventListener("abort", onAbort);
        resolve({ stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(errs).toString("utf8"), code });
      };
      // A stopped command answers at once with what it printed; the server may end it later.
      const onAbort = () => {
        try {
          stream.signal("KILL");
        } catch {
          /* not every server takes signals */
        }
        stream.close();
        settle();
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      const take = (list: Buffer[]) => (d: Buffer) => {
        size += d.length;
        if (size > max) return onAbort();
        list.push(d);
      };
      stream.on("data", take(out));
      stream.stderr.on("data", take(errs));
      stream.on("exit", (c: number | null) => (code = typeof c === "number" ? c : null));
      stream.on("close", settle);
      stream.end(); // no input: a program that reads stdin (internal-sftp) sees EOF and ends
    });
  });
}

function classify(cfg: ServerConfig, err: unknown, lastError: Error | undefined): Error {
  const text = `${messageOf(err)} ${lastError ? messageOf(lastError) : ""}`;
  const port = cfg.port ?? 22;
  if (/authentication methods failed/i.test(text)) return new AuthFailed(cfg.username, cfg.host, err);
  if (/privateKey|parse.*key|passphrase/i.test(text)) {
    return new ConfigError(`the private key for ${describeServer(cfg)} cannot be used: wrong format or passphrase`);
  }
  if (/timed out/i.test(text)) return new ConnectFailed(cfg.host, port, "timed out during the SSH handshake", err);
  return new ConnectFailed(cfg.host, port, messageOf(err).replace(/^[a-zA-Z.]+: /, ""), err);
}

/**
 * Asks a server for its host key without logging in, so that a person can compare the fingerprint
 * with `ssh-keygen -lf` on the server before pinning it.
 */
export async function fetchHostFingerprint(host: string, port = 22, timeoutMs = 10_000): Promise<string> {
  const sock = await openSocket(host, port, timeoutMs);
  let offered = "";
  const client = new SftpClient("probe", { error: () => undefined, end: () => undefined, close: () => undefined });
  try {
    await client.connect({
      sock,
      host,
      port,
      username: "fingerprint-probe",
      readyTimeout: timeoutMs,
      hostVerifier: (key: Buffer) => {
        offered = fingerprintOf(key);
        return false; // never log in: we only wanted the key
      },
    } as SftpClient.ConnectOptions);
  } catch (err) {
    if (!offered) throw new ConnectFailed(host, port, messageOf(err), err);
  } finally {
    sock.destroy();
  }
  return offered;
}
