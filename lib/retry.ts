// Retrying what may succeed a moment later (a dropped connection, a 503), with a doubling wait that a stop cuts short.
import { Aborted, isRetryable } from "./errors";

export interface RetryPolicy {
  /** attempts after the first (default 3) */
  retries: number;
  /** first backoff, doubled each time (default 1 s) */
  baseDelayMs: number;
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
