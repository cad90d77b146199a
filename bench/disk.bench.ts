/**
 * Disk-space benchmark, as ratios against standard tools in the same run (nothing asserted):
 *
 *   a. measuring a folder: our measurePath (filesystem probe + check-disk-space) vs `df -Pk` alone
 *   b. the check before every lock vs the locked update (one commit, fsynced) it guards
 *   c. volume statistics over 100,000 catalog records and 9,000 runs: computeVolume vs `awk`
 *      summing the same (day, bytes) pairs per day
 *
 * Writes bench/out/disk.json.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Archive } from "../lib/archive/archive";
import type { FileRecord } from "../lib/archive/catalog";
import type { RunHistoryEntry } from "../lib/archive/history";
import { measurePath } from "../lib/disk/space";
import { computeVolume } from "../lib/disk/volume";

const OUT_FILE = path.join(__dirname, "..", "..", "bench", "out", "disk.json");
const DAY = 86_400_000;

async function timeEach(n: number, fn: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / n / 1e6; // ms each
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tick-disk-bench-"));
  fs.writeFileSync(path.join(dir, "file"), "x");
  const rows: Array<{ case: string; ours: number; standard: number; standardTool: string; ratio: number; unit: string }> = [];
  const row = (name: string, ours: number, standard: number, standardTool: string) => {
    rows.push({ case: name, ours, standard, standardTool, ratio: ours / standard, unit: "ms each" });
    console.log(`${name.padEnd(44)} ours ${ours.toFixed(2).padStart(8)} ms   ${standardTool.padEnd(22)} ${standard.toFixed(2).padStart(8)} ms   ratio ${(ours / standard).toFixed(2)}`);
  };

  // a. one measurement
  const ours: number[] = [];
  const df: number[] = [];
  for (let k = 0; k < 3; k++) {
    ours.push(await timeEach(50, () => measurePath(dir)));
    df.push(await timeEach(50, () => execFileSync("df", ["-Pk", "--", dir])));
  }
  row("a. measure a folder", median(ours), median(df), "df -Pk (exec)");

  // b. the place check before a lock, against the locked update it guards (fsync-bound, so noisy: medians)
  const rec = (i: number): FileRecord => ({ path: `f${i}`, size: i, mtime: 1, sha256: "0".repeat(64), state: "final", firstPulledAt: "x", pulledAt: "x" });
  const checks: number[] = [];
  const updates: number[] = [];
  for (let k = 0; k < 5; k++) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), "tick-disk-bench-lock-"));
    const archive = await Archive.open(d);
    checks.push(await timeEach(200, () => archive.checkPlace()));
    archive.checkPlace = async () => undefined;
    let i = 0;
    updates.push(await timeEach(200, () => archive.update((cat) => cat.commit(rec(i++)))));
    fs.rmSync(d, { recursive: true, force: true });
  }
  row("b. the place check before each lock", median(checks), median(updates), "locked update w/o it");

  // c. statistics
  const now = Date.UTC(2026, 10, 27, 12);
  const records: FileRecord[] = Array.from({ length: 100_000 }, (_, i) => ({
    path: `s${i % 200}/${i}.csv`,
    size: 1e6 + i,
    mtime: (now - (i % 730) * DAY - (i % 977) * 60_000) / 1000,
    sha256: "",
    state: "final",
    firstPulledAt: new Date(now - (i % 400) * DAY - (i % 613) * 60_000).toISOString(),
    pulledAt: "",
  }));
  const history: RunHistoryEntry[] = Array.from({ length: 9000 }, (_, i) => ({
    at: new Date(now - 375 * DAY + i * 3_600_000).toISOString(),
    kind: "pull",
    durationMs: 1,
    bytes: 5e7,
    newFiles: 3,
    changedFiles: 1,
    totalFiles: 0,
    totalBytes: 0,
  }));
  const stats = median([0, 1, 2].map(() => {
    const t = process.hrtime.bigint();
    computeVolume(records, history, { now: new Date(now), freeBytes: 1e12, utc: true });
    return Number(process.hrtime.bigint() - t) / 1e6;
  }));
  const pairs = path.join(dir, "pairs.txt");
  fs.writeFileSync(pairs, [...records.map((r) => `${new Date(r.mtime * 1000).toISOString().slice(0, 10)} ${r.size}`), ...records.map((r) => `${r.firstPulledAt.slice(0, 10)} ${r.size}`), ...history.map((h) => `${h.at.slice(0, 10)} ${h.bytes}`)].join("\n") + "\n");
  const awk = median([0, 1, 2].map(() => {
    const t = process.hrtime.bigint();
    execFileSync("awk", ["{ b[$1] += $2; n[$1]++ } END { for (d in b) print d, n[d], b[d] }", pairs]);
    return Number(process.hrtime.bigint() - t) / 1e6;
  }));
  row("c. statistics, 100k files + 9k runs", stats, awk, "awk sum per day");

  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  fs.writeFileSync(OUT_FILE, JSON.stringify({ at: new Date().toISOString(), node: process.version, cpus: os.cpus().length, rows }, null, 2) + "\n");
  console.log(`written to ${OUT_FILE}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
