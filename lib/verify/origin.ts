import type { SftpSession } from "../sftp/connect";
import { remotePath } from "../archive/paths";
import { messageOf } from "../errors";

/** A file to ask the server about: its first `size` bytes (it may have grown since the pull). */
export interface OriginQuery {
  path: string;
  size: number;
}

export type OriginAnswer = { path: string; sha256: string } | { path: string; missing: true };

export type OriginResult = { available: true; answers: OriginAnswer[] } | { available: false; reason: string };

/** Quotes a word for a POSIX shell: inside single quotes nothing is special except the quote itself. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const MARK = "tick-backup-origin 1";
/** Command text per exec: well below any server's ARG_MAX and sshd's packet limits. */
const MAX_SCRIPT = 64 * 1024;

/**
 * The shell script that asks the server for the hashes. Names only ever appear single-quoted and
 * after `--`, and never come back in the output: each answer is tagged with the file's index, so
 * a name with a newline, a backslash or a leading dash can neither run a command nor be misread.
 * `head -c size` hashes exactly the bytes that were pulled, even of a file still growing.
 */
export function originScript(remoteDir: string, batch: OriginQuery[], firstIndex: number): string {
  const lines = [
    `cd -- ${shellQuote(remoteDir)} || exit 97`,
    "command -v sha256sum >/dev/null 2>&1 && command -v head >/dev/null 2>&1 || exit 98",
    `echo '${MARK}'`,
    'h() { if [ -f "$2" ] && [ -r "$2" ]; then printf "%s " "$1"; head -c "$3" -- "$2" | sha256sum; else echo "$1 missing"; fi; }',
    ...batch.map((q, i) => `h ${firstIndex + i} ${shellQuote(q.path)} ${Math.floor(q.size)}`),
  ];
  return lines.join("\n") + "\n";
}

/** Splits the queries into scripts of bounded length. */
function batches(queries: OriginQuery[]): Array<{ first: number; items: OriginQuery[] }> {
  const out: Array<{ first: number; items: OriginQuery[] }> = [];
  let current: OriginQuery[] = [];
  let length = 0;
  let first = 0;
  queries.forEach((q, i) => {
    const cost = shellQuote(q.path).length + 24;
    if (current.length > 0 && length + cost > MAX_SCRIPT) {
      out.push({ first, items: current });
      current = [];
      length = 0;
      first = i;
    }
    current.push(q);
    length += cost;
  });
  if (current.length > 0) out.push({ first, items: current });
  return out;
}

/**
 * Asks the server for the sha256 of each file's first `size` bytes over SSH exec. A server that
 * refuses commands, runs only SFTP (`ForceCommand internal-sftp`) or has no sha256sum yields
 * `available: false` with the reason, not an error: many good setups allow SFTP only.
 */
export async function originHashes(session: SftpSession, remoteDir: string, queries: OriginQuery[], signal?: AbortSignal, batchTimeoutMs = 10 * 60_000): Promise<OriginResult> {
  const answers: OriginAnswer[] = [];
  const dir = remotePath(remoteDir, "") || "/";
  for (const b of batches(queries)) {
    // A server stuck on a hung disk must not hold the run forever: a batch gets a generous deadline.
    const deadline = AbortSignal.timeout(batchTimeoutMs);
    let result;
    try {
      result = await session.exec(originScript(dir, b.items, b.first), { signal: signal ? AbortSignal.any([signal, deadline]) : deadline });
    } catch (err) {
      if (!session.isOpen()) throw err;
      return { available: false, reason: `the server refuses to run commands (${messageOf(err)})` };
    }
    if (deadline.aborted && !signal?.aborted) return { available: false, reason: `the server did not answer within ${Math.round(batchTimeoutMs / 1000)} s` };
    if (result.code === 97) return { available: false, reason: `the shell cannot enter ${dir} (chroot or another home folder than SFTP's)` };
    if (result.code === 98) return { available: false, reason: "sha256sum (or head) is not installed on the server" };
    const lines = result.stdout.split("\n");
    if (lines[0] !== MARK) {
      return { available: false, reason: "the server runs no commands for this account (SFTP only, e.g. ForceCommand internal-sftp)" };
    }
    const seen = new Set<number>();
    for (const line of lines.slice(1)) {
      const m = /^(\d+) (?:([0-9a-f]{64}) {1,2}\*?-|(missing))$/.exec(line);
      if (!m) continue;
      const index = Number(m[1]);
      const q = queries[index];
      if (!q || index < b.first || index >= b.first + b.items.length || seen.has(index)) continue;
      seen.add(index);
      answers.push(m[3] ? { path: q.path, missing: true } : { path: q.path, sha256: m[2] });
    }
    if (seen.size < b.items.length) {
      return { available: false, reason: `the server's answer was incomplete (${seen.size} of ${b.items.length}; exit ${result.code}${result.stderr ? `: ${result.stderr.trim().slice(0, 200)}` : ""})` };
    }
  }
  return { available: true, answers };
}
