/**
 * Child process for bench/pull.bench.ts: one pull run, so that its peak RSS and CPU time are its own.
 * Reads a JSON RunnerJob on stdin (not argv: it holds the key), prints one JSON RunnerResult line.
 */
import * as fs from "node:fs";
import { Archive } from "../lib/archive/archive";
import { pull } from "../lib/sftp/pull";
import type { ServerConfig } from "../lib/sftp/connect";

export interface RunnerJob {
  server: ServerConfig;
  archiveDir: string;
  remoteDir: string;
  concurrency?: number;
}

export interface RunnerResult {
  durationMs: number;
  bytes: number;
  counts: Record<string, number>;
  problems: string[];
  maxRssMB: number;
  cpuMs: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(0, "utf8")) as RunnerJob;
  const archive = await Archive.open(job.archiveDir, { name: "bench" });
  const report = await pull({ server: job.server, archive, remoteDir: job.remoteDir, settleSeconds: 0, concurrency: job.concurrency });
  const ru = process.resourceUsage(); // maxRSS in KiB, CPU times in µs
  const result: RunnerResult = {
    durationMs: report.durationMs,
    bytes: report.bytes,
    counts: report.counts,
    problems: report.problems.slice(0, 5).map((p) => `${p.code} ${p.path ?? ""}: ${p.message}`),
    maxRssMB: Math.round((ru.maxRSS / 1024) * 10) / 10,
    cpuMs: Math.round((ru.userCPUTime + ru.systemCPUTime) / 1000),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`pull-runner: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
