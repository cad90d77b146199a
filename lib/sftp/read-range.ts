import type { SFTPWrapper } from "ssh2";
import { Aborted, isSftpStatus, messageOf, Stalled, TransferFailed } from "../errors";
import type { Throttle } from "./throttle";
import type { SftpSession } from "./connect";

export interface ReadRangeOptions {
  /** bytes per READ request (default: the most the server answers in one reply, at most 255 KiB) */
  chunkSize?: number;
  /** READ requests in flight (default 32): SFTP speed is bytes in flight over round-trip time */
  depth?: number;
  signal?: AbortSignal;
  throttle?: Throttle;
  /** no answer for this long while requests are out counts as a stalled connection (default 30 s) */
  stallMs?: number;
  /** called with every byte count as it arrives, for progress */
  onBytes?: (n: number) => void;
  /** label for errors */
  label?: string;
  /** hold back socket writes while a batch of requests is queued (one syscall for the batch) */
  cork?: () => void;
  uncork?: () => void;
}

interface Request {
  pos: number;
  len: number;
  got: number;
  buf: Buffer;
}

/**
 * Reads bytes [start, end) of an open remote file with many requests in flight and hands them to
 * `sink` strictly in order (so a hash can run over them as they come). A short answer is asked
 * again for its remainder; EOF before `end` means the file shrank under us.
 */
export function readRange(
  sftp: SFTPWrapper,
  handle: Buffer,
  start: number,
  end: number,
  sink: (chunk: Buffer) => Promise<void> | void,
  options: ReadRangeOptions = {},
): Promise<void> {
  const chunkSize = options.chunkSize ?? serverReadSize(sftp);
  const depth = options.depth ?? 32;
  const stallMs = options.stallMs ?? 30_000;
  const label = options.label ?? "remote file";
  const queue: Request[] = [];
  let next = start;
  let outstanding = 0;
  let writing = false;
  let finished = false;
  let throttleTimer: NodeJS.Timeout | undefined;
  let lastAnswer = Date.now();

  return new Promise<void>((resolve, reject) => {
    if (start >= end) return resolve();
    const stallTimer = setInterval(() => {
      if (outstanding > 0 && Date.now() - lastAnswer > stallMs) fail(new Stalled(Math.round(stallMs / 1000)));
    }, Math.min(1000, stallMs));
    const onAbort = () => fail(new Aborted());
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) return onAbort();

    /** Set when the range cannot complete: what already arrived in order is still handed over, then we fail. */
    let failure: unknown;

    function settle() {
      finished = true;
      clearInterval(stallTimer);
      clearTimeout(throttleTimer);
      options.signal?.removeEventListener("abort", onAbort);
    }
    function fail(err: unknown) {
      if (finished || failure !== undefined) return;
      failure = err;
      clearTimeout(throttleTimer);
      if (!writing) drain();
    }

    function issue() {
      throttleTimer = undefined;
      // Refill in batches, corked into one write: one syscall per batch instead of one per request.
      if (queue.length > depth / 2) return;
      options.cork?.();
      try {
        fill();
      } finally {
        options.uncork?.();
      }
    }

    function fill() {
      while (failure === undefined && !finished && queue.length < depth && next < end) {
        const len = Math.min(chunkSize, end - next);
        const wait = options.throttle?.book(len) ?? 0;
        const req: Request = { pos: next, len, got: 0, buf: Buffer.allocUnsafe(len) };
        next += len;
        queue.push(req);
        if (wait > 0) {
          throttleTimer = setTimeout(() => {
            send(req);
            issue();
          }, wait);
          return;
        }
        send(req);
      }
    }

    function send(req: Request) {
      if (finished || failure !== undefined) return;
      outstanding++;
      sftp.read(handle, req.buf, req.got, req.len - req.got, req.pos + req.got, (err: Error | undefined, nb: number) => {
        outstanding--;
        lastAnswer = Date.now();
        if (finished) return;
        if (err) return fail(new TransferFailed(label, `read failed at byte ${req.pos + req.got}: ${messageOf(err)}`, { retryable: true, cause: err }));
        if (nb === 0) {
          return fail(new TransferFailed(label, `ended at byte ${req.pos + req.got}, expected ${end}: the file shrank on the server`, { retryable: false }));
        }
        options.onBytes?.(nb);
        req.got += nb;
        if (req.got < req.len) return send(req);
        drain();
      });
    }

    // Hands completed chunks to the sink strictly in order. After a failure it still hands over the
    // in-order prefix that arrived (a resume then starts after it), and only then rejects.
    async function drain() {
      if (writing || finished) return;
      writing = true;
      try {
        while (!finished && queue.length > 0 && queue[0].got === queue[0].len) {
          await sink(queue.shift()!.buf);
          if (!throttleTimer) issue();
        }
      } catch (err) {
        // The sink itself failed (disk full, …): nothing more can be handed over.
        writing = false;
        settle();
        return reject(err);
      }
      writing = false;
      if (finished) return;
      if (failure !== undefined) {
        settle();
        reject(failure);
      } else if (queue.length === 0 && next >= end) {
        settle();
        resolve();
      } else if (queue.length > 0 && queue[0].got === queue[0].len) {
        drain();
      }
    }

    issue();
  });
}

/**
 * ssh2 splits a READ larger than the server's limit (OpenSSH announces 255 KiB through
 * limits@openssh.com; ssh2 assumes ~32 KiB for others) into sub-requests sent one after another,
 * which would undo the pipelining: so ask for exactly the limit. ssh2 keeps it in a private field.
 */
function serverReadSize(sftp: SFTPWrapper): number {
  const limit = (sftp as unknown as { _maxReadLen?: number })._maxReadLen;
  return typeof limit === "number" && limit > 0 ? Math.min(limit, 255 * 1024) : 32 * 1024;
}

/** Promise wrappers for the few SFTP calls around a read. */
export function openRemote(session: SftpSession, path: string): Promise<Buffer> {
  return session.whileOpen(
    new Promise((resolve, reject) =>
      session.sftp.open(path, "r", (err, handle) => (err ? reject(new TransferFailed(path, `cannot open: ${messageOf(err)}`, { retryable: !isSftpStatus(err), cause: err })) : resolve(handle))),
    ),
  );
}

/** Closing never fails a transfer: on a dead connection the handle is gone anyway. */
export function closeRemote(session: SftpSession, handle: Buffer): Promise<void> {
  if (!session.isOpen()) return Promise.resolve();
  return session.whileOpen(new Promise<void>((resolve) => session.sftp.close(handle, () => resolve()))).catch(() => undefined);
}
