/**
 * Every failure the engine reports is a BackupError: a message a person understands, a stable
 * `code` that flows and the alert node can key on, and whether trying again can help.
 */
export class BackupError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
  }
}

export class ConfigError extends BackupError {
  constructor(message: string) {
    super("CONFIG", message);
  }
}

export class HostKeyMismatch extends BackupError {
  readonly expected: string;
  readonly offered: string;

  constructor(host: string, expected: string, offered: string) {
    super(
      expected ? "HOST_KEY_CHANGED" : "HOST_KEY_NOT_PINNED",
      expected
        ? `HOST KEY CHANGED for ${host}: expected ${expected}, server offered ${offered}. ` +
            "Someone may be intercepting the connection, or the server was reinstalled; pull refused."
        : `No host key pinned for ${host}: the server offered ${offered}. ` +
            "Compare it with `ssh-keygen -lf` on the server and enter it in the sftp-server config.",
    );
    this.expected = expected;
    this.offered = offered;
  }
}

export class AuthFailed extends BackupError {
  constructor(user: string, host: string, cause?: unknown) {
    super("AUTH_FAILED", `login as ${user}@${host} refused: check the username, password or private key`, { cause });
  }
}

export class ConnectFailed extends BackupError {
  constructor(host: string, port: number, detail: string, cause?: unknown) {
    super("CONNECT_FAILED", `cannot reach ${host}:${port}: ${detail}`, { retryable: true, cause });
  }
}

export class TransferFailed extends BackupError {
  constructor(path: string, detail: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super("TRANSFER_FAILED", `${path}: ${detail}`, options);
  }
}

export class Stalled extends BackupError {
  constructor(seconds: number) {
    super("STALLED", `connection stalled: no data for ${seconds}s`, { retryable: true });
  }
}

export class UnsafeName extends BackupError {
  constructor(name: string, why: string) {
    super("UNSAFE_NAME", `refused remote name ${JSON.stringify(name)}: ${why}`);
  }
}

export class ArchiveLocked extends BackupError {
  constructor(dir: string, cause?: unknown) {
    super("ARCHIVE_LOCKED", `archive ${dir} is in use by another run or process; try again when it has finished`, {
      retryable: true,
      cause,
    });
  }
}

export class Aborted extends BackupError {
  constructor() {
    super("ABORTED", "stopped before the run finished; the next run resumes", { retryable: true });
  }
}

/** Errors from ssh2/fs that a later attempt may get past (network hiccups, not bad config). */
export function isRetryable(err: unknown): boolean {
  if (err instanceof BackupError) return err.retryable;
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === "string" &&
    ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "ENOTCONN", "ECONNABORTED", "EHOSTUNREACH", "ENETUNREACH", "ERR_GENERIC_CLIENT"].includes(code)
  );
}

/**
 * SFTP status errors (no such file, permission denied) carry a numeric code; network trouble does
 * not. Only the latter is worth a retry.
 */
export function isSftpStatus(err: unknown): boolean {
  return typeof (err as { code?: unknown } | null)?.code === "number";
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
