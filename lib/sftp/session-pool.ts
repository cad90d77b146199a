import { connect, type ServerConfig, type SftpSession } from "./connect";
import { Aborted, isRetryable } from "../errors";

export interface RetryPolicy {
  /** attempts after the first (default 3) */
  retries: number;
  /** first backoff, doubled each time (default 1 s) */
  baseDelayMs: number;
}

/**
 * One live connection shared by a run's transfers. When it drops, the next caller reconnects (once,
 * for everybody waiting), so that a cut connection costs a reconnect and a resume, not the run.
 */
export class SessionPool {
  private current: Promise<SftpSession> | undefined;
  private resolved: SftpSession | undefined;

  constructor(private readonly server: ServerConfig, private readonly signal?: AbortSignal) {}

  get(): Promise<SftpSession> {
    if (this.resolved && !this.resolved.isOpen() && this.current) {
      this.current = undefined;
    }
    if (!this.current) {
      const attempt = connect(this.server, { signal: this.signal });
      this.current = attempt;
      attempt.then(
        (s) => {
          this.resolved = s;
          s.closed.then(() => {
            if (this.current === attempt) this.current = undefined;
          });
        },
        () => {
          if (this.current === attempt) this.current = undefined;
        },
      );
    }
    return this.current;
  }

  /** Drops a session that misbehaved (stall, protocol error) so the next get() reconnects. */
  discard(session: SftpSession): void {
    session.destroy();
    // Forget it now, not when its close event comes: a caller in between must not get a dead session.
    const current = this.current;
    current?.then((s) => {
      if (s === session && this.current === current) this.current = undefined;
    }, () => undefined);
    if (this.resolved === session) this.current = undefined;
  }

  async close(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (current) await current.then((s) => s.end(), () => undefined);
  }
}

/** Runs `fn` until it succeeds, a non-retryable error comes, or the retries are spent; waits double each time. */
export async function withRetry<T>(policy: RetryPolicy, signal: AbortSignal | undefined, fn: (attempt: number) => Promise<T>, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (signal?.aborted) throw new Aborted();
      if (!isRetryable(err) || attempt >= policy.retries) throw err;
      onRetry?.(err, attempt);
      await sleep(policy.baseDelayMs * 2 ** attempt, signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
