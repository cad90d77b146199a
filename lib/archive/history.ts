import * as fs from "node:fs/promises";
import * as path from "node:path";

/**
 * One line per pull run in `.tick-backup/history.jsonl`. The catalog keeps each file's latest size
 * only; the run history keeps when the bytes arrived, so growth per day survives a file growing
 * over many runs. Statistics only: a torn or damaged line is skipped, never fatal.
 */
export interface RunHistoryEntry {
  /** when the run finished (ISO) */
  at: string;
  kind: "pull";
  durationMs: number;
  /** bytes added to the archive: new files, appended bytes, new contents of rewritten files */
  bytes: number;
  /** files that were new in the archive */
  newFiles: number;
  /** files that grew or were rewritten */
  changedFiles: number;
  /** the archive's files and bytes after the run (catalog, versions included) */
  totalFiles: number;
  totalBytes: number;
}

export const HISTORY_FILE = "history.jsonl";

export async function appendHistory(stateDir: string, entry: RunHistoryEntry): Promise<void> {
  const handle = await fs.open(path.join(stateDir, HISTORY_FILE), "a+");
  try {
    // After a crash mid-write the file ends in a torn line: start on a fresh line, so only that one is lost.
    const { size } = await handle.stat();
    const last = size > 0 ? (await handle.read(Buffer.alloc(1), 0, 1, size - 1)).buffer.toString() : "\n";
    await handle.write((last === "\n" ? "" : "\n") + JSON.stringify(entry) + "\n");
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function readHistory(stateDir: string): Promise<{ entries: RunHistoryEntry[]; damaged: number }> {
  let text: string;
  try {
    text = await fs.readFile(path.join(stateDir, HISTORY_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { entries: [], damaged: 0 };
    throw err;
  }
  const lines = text.split("\n");
  const torn = lines.pop() !== "" ? 1 : 0; // text after the last newline is a write that never completed
  const entries: RunHistoryEntry[] = [];
  let damaged = torn;
  for (const line of lines) {
    try {
      const e = JSON.parse(line) as RunHistoryEntry;
      if (typeof e.at === "string" && Number.isFinite(Date.parse(e.at)) && Number.isFinite(e.bytes)) entries.push(e);
      else damaged++;
    } catch {
      damaged++;
    }
  }
  return { entries, damaged };
}
