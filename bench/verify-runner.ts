/**
 * Child process for bench/verify.bench.ts: one scrub (or manifest write) of an existing archive,
 * so that its peak RSS and CPU time are its own. Reads a JSON job on stdin, prints one JSON line.
 */
import * as fs from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Archive } from "../lib/archive/archive";
import { scrub } from "../lib/verify/scrub";
import { writeManifests } from "../lib/verify/manifest";
import { hashFiles } from "../lib/verify/hasher";

export interface VerifyJob {
  archiveDir: string;
  /** full: a whole scrub run; hash: only the worker's reading and hashing of the catalog's files; manifest: SHA256SUMS rewrite */
  what: "full" | "hash" | "manifest";
}

export interface VerifyRunnerResult {
  durationMs: number;
  files: number;
  bytes: number;
  ok: number;
  problems: number;
  p99DelayMs: number;
  maxDelayMs: number;
  maxRssMB: number;
  cpuMs: number;
}

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(0, "utf8")) as VerifyJob;
  const archive = await Archive.open(job.archiveDir, { name: "bench" });
  const delay = monitorEventLoopDelay({ resolution: 5 });
  delay.enable();
  const started = Date.now();
  let files = 0;
  let bytes = 0;
  let ok = 0;
  let problems = 0;
  if (job.what === "full") {
    const report = await scrub({ archive, mode: "full" });
    [files, bytes, ok, problems] = [report.counts.checked, report.bytes, report.counts.ok, report.problems.length];
  } else if (job.what === "hash") {
    const records = (await archive.readCatalog()).all();
    await hashFiles(archive.root, records.map((r, id) => ({ id, rel: r.path, length: r.size, expect: r.size })), {
      onResults: (results) => {
        files += results.length;
        for (const r of results) {
          bytes += r.hashed ?? 0;
          if (r.sha256 === records[r.id].sha256) ok++;
          else problems++;
        }
      },
    });
  } else {
    const catalog = await archive.readCatalog();
    files = (await writeManifests(archive.stateDir, catalog.all())).final;
  }
  const durationMs = Date.now() - started;
  delay.disable();
  const ru = process.resourceUsage();
  const result: VerifyRunnerResult = {
    durationMs,
    files,
    bytes,
    ok,
    problems,
    p99DelayMs: Math.round((delay.percentile(99) / 1e6) * 10) / 10,
    maxDelayMs: Math.round((delay.max / 1e6) * 10) / 10,
    maxRssMB: Math.round((ru.maxRSS / 1024) * 10) / 10,
    cpuMs: Math.round((ru.userCPUTime + ru.systemCPUTime) / 1000),
  };
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`verify-runner: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
