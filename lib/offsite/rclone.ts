import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { Aborted, BackupError, ConfigError } from "../errors";
import { HashingStream, pump, sourceStreams } from "./streams";
import { ObjectExists, ObjectMismatch, ObjectMissing, TARGET_STATE, TargetFailed, type ObjectInfo, type Probe, type PutOptions, type PutResult, type PutSource, type Target } from "./target";

export interface RcloneTargetConfig {
  /** an rclone remote spec: `gdrive:tick-backup`, `dropbox:`, `/mnt/nas/tick` … */
  remote: string;
  /** the user's own rclone (default `rclone` from PATH) */
  rcloneBinary?: string;
  /** the user's rclone.conf (default: rclone's own default) */
  rcloneConfig?: string;
}

/**
 * Any rclone remote (Google Drive, Dropbox, OneDrive, sftp …), driven as a subprocess with an
 * argument array (no shell). Uploads stream into a staging name under `.tick-backup/partial/`,
 * are read back and hashed (the remote's SHA-256 where it has one, else downloaded), and only then
 * moved to their final name, which must still be free.
 */
export class RcloneTarget implements Target {
  readonly kind = "rclone" as const;
  private readonly remote: string;
  /** keys stored on the remote, when scanned this run */
  private known: Set<string> | undefined;

  constructor(private readonly config: RcloneTargetConfig) {
    if (!config.remote) throw new ConfigError("rclone target needs a remote (e.g. gdrive:tick-backup)");
    if (config.remote.startsWith("-")) throw new ConfigError(`rclone remote ${JSON.stringify(config.remote)} must not start with "-"`);
    this.remote = config.remote.length > 1 && config.remote.endsWith("/") ? config.remote.slice(0, -1) : config.remote;
  }

  get description(): string {
    return `rclone ${this.remote}`;
  }

  id(): string {
    return `rclone:${this.remote}`;
  }

  async probe(signal?: AbortSignal): Promise<Probe> {
    const r = await this.run(["lsjson", "--max-depth", "1", "--no-mimetype", "--no-modtime", this.remote], { signal, allowFail: true });
    if (r.code === 0 || r.code === 3) return { state: "online" }; // 3: the folder does not exist yet (made on first upload)
    if (r.code === 1 || /didn't find section in config|config file .* not found|unknown (backend|flag)/i.test(r.stderr)) {
      throw new ConfigError(`rclone cannot use ${this.remote}: ${lastLine(r.stderr)}`);
    }
    return { state: "offline", reason: `rclone ${this.remote}: ${lastLine(r.stderr)}` };
  }

  async scan(signal?: AbortSignal): Promise<void> {
    const r = await this.run(["lsf", "-R", "--files-only", this.remote], { signal, allowFail: true });
    if (r.code === 3) this.known = new Set();
    else if (r.code !== 0) throw this.failure("lsf", r);
    else this.known = new Set(r.stdout.split("\n").filter(Boolean));
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    const r = await this.run(["lsjson", "--files-only", "--no-mimetype", "--no-modtime", this.path(key)], { signal, allowFail: true });
    if (r.code === 3 || r.code === 4) return undefined;
    if (r.code !== 0) throw this.failure(`lsjson ${key}`, r);
    const entries = JSON.parse(r.stdout || "[]") as Array<{ Size: number; IsDir: boolean }>;
    const file = entries.find((e) => !e.IsDir);
    return file ? { size: file.Size } : undefined;
  }

  async put(key: string, source: PutSource, options: PutOptions): Promise<PutResult> {
    if (options.mode === "final" && (this.known ? this.known.has(key) : await this.head(key, options.signal))) throw new ObjectExists(this.path(key));
    const staging = `${TARGET_STATE}/partial/${randomUUID()}`;
    const hashing = new HashingStream({ onBytes: options.onBytes });
    const child = this.spawn(["rcat", this.path(staging)], options.signal);
    const upload = pump([...sourceStreams(source, options), hashing, child.stdin], options.signal);
    const [fed, done] = await Promise.allSettled([upload, child.result]);
    let moved = false;
    try {
      if (options.signal?.aborted) throw new Aborted();
      if (done.status === "rejected") throw done.reason;
      if (done.value.code !== 0) throw this.failure(`rcat ${key}`, done.value);
      if (fed.status === "rejected") throw fed.reason;
      const sent = hashing.result();
      if (source.size !== undefined && sent.bytes !== source.size) throw new ObjectMismatch(this.path(key), `read ${sent.bytes} bytes, expected ${source.size}`);
      const stored = await this.hash(staging, options.signal);
      if (stored !== sent.sha256) throw new ObjectMismatch(this.path(key), `read back ${stored}, sent ${sent.sha256}`);
      if (options.mode === "final" && (await this.head(key, options.signal))) {
        throw new ObjectExists(this.path(key));
      }
      const mv = await this.run(["moveto", this.path(staging), this.path(key)], { signal: options.signal, allowFail: true });
      if (mv.code !== 0) throw this.failure(`moveto ${key}`, mv);
      moved = true;
      const placed = await this.head(key, options.signal);
      if (placed?.size !== sent.bytes) throw new ObjectMismatch(this.path(key), `after the move it holds ${placed?.size ?? "nothing"}, sent ${sent.bytes} bytes`);
      this.known?.add(key);
      return { key, size: sent.bytes, objectSha256: sent.sha256 };
    } finally {
      if (!moved) await this.run(["deletefile", this.path(staging)], { allowFail: true }).catch(() => undefined);
    }
  }

  /** The remote's own SHA-256 where it keeps one; otherwise rclone downloads the object and hashes it. */
  async hash(key: string, signal?: AbortSignal): Promise<string> {
    for (const extra of [[], ["--download"]]) {
      const r = await this.run(["hashsum", "sha256", ...extra, this.path(key)], { signal, allowFail: true });
      const hex = /^([0-9a-f]{64})\s/m.exec(r.stdout)?.[1];
      if (r.code === 0 && hex) return hex;
      if (extra.length > 0) throw this.failure(`hashsum ${key}`, r);
    }
    throw new TargetFailed(this.path(key), "no hash");
  }

  /**
   * Streams `rclone cat`. The stream ends only once rclone has exited 0, so a read that fails late is
   * never a short file; a failure before the first byte rejects here, as the other kinds do.
   */
  async get(key: string, signal?: AbortSignal): Promise<Readable> {
    const child = this.spawn(["cat", this.path(key)], signal);
    child.stdin.end();
    const out = new PassThrough();
    child.stdout.pipe(out, { end: false });
    out.on("close", () => child.stdout.destroy()); // a reader that stops early ends rclone too
    const exit = child.result.then((r) => (r.code === 0 ? undefined : this.readFailure(key, r)), (err: Error) => err);
    const first = await Promise.race([exit, new Promise<"data">((resolve) => child.stdout.once("data", () => resolve("data")))]);
    if (first instanceof Error) {
      out.destroy();
      throw first;
    }
    void exit.then((err) => (err ? out.destroy(err) : out.end()));
    return out;
  }

  async close(): Promise<void> {}

  private path(key: string): string {
    if (this.remote.endsWith(":")) return `${this.remote}${key}`;
    return `${this.remote}/${key}`;
  }

  private args(args: string[]): string[] {
    const config = this.config.rcloneConfig ? ["--config", this.config.rcloneConfig] : [];
    return [...args, ...config, "--low-level-retries", "10", "--retries", "1", "--log-level", "ERROR"];
  }

  private spawn(args: string[], signal?: AbortSignal, collectStdout = false) {
    const child = spawn(this.config.rcloneBinary || "rclone", this.args(args), { env: cleanEnv(), stdio: ["pipe", "pipe", "pipe"], signal });
    let stdout = "";
    let stderr = "";
    if (collectStdout) child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const result = new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      child.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "ENOENT") reject(new ConfigError(`rclone binary ${JSON.stringify(this.config.rcloneBinary || "rclone")} not found: install rclone or set its path`));
        else if (err.name === "AbortError") reject(new Aborted());
        else reject(err);
      });
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    result.catch(() => undefined);
    return { stdin: child.stdin, stdout: child.stdout, result };
  }

  private async run(args: string[], options: { signal?: AbortSignal; allowFail?: boolean }) {
    const child = this.spawn(args, options.signal, true);
    child.stdin.end();
    const r = await child.result;
    if (r.code !== 0 && !options.allowFail) throw this.failure(args[0], r);
    return r;
  }

  /** rclone's exit codes 3 (directory not found) and 4 (file not found) are its own "no such object". */
  private readFailure(key: string, r: { code: number; stderr: string }): BackupError {
    return r.code === 3 || r.code === 4 ? new ObjectMissing(this.path(key), lastLine(r.stderr)) : this.failure(`cat ${key}`, r);
  }

  private failure(what: string, r: { code: number; stderr: string }): BackupError {
    // rclone's exit code 5 is a temporary error; 2 covers network failures too.
    return new TargetFailed(`${this.description} ${what}`, `rclone exited ${r.code}: ${lastLine(r.stderr)}`, { retryable: r.code === 5 || r.code === 2 });
  }
}

/** The user's environment less AWS_* (an ambient AWS_CA_BUNDLE breaks rclone's S3 backend, for one). */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").filter(Boolean);
  return (lines[lines.length - 1] ?? "no message").replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, "");
}
