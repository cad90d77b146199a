/**
 * Offsite benchmark: our upload (lib/offsite, S3 kind: lib-storage multipart, SHA-256 and MD5 on
 * the fly, proof after upload, catalog records) against `rclone copy` to the SAME local S3 server
 * (s3rver, in its own process on 127.0.0.1), in one run, over the same mixed tree.
 *
 *   npm run bench                        1 GiB: 4 × 128 MiB, 24 × 16 MiB, 2,048 × 64 KiB files
 *   BENCH_SCALE=small npm run bench      64 MiB of the same shape
 *
 * Both run with 4 files at once, BENCH_RUNS times each (default 3, alternating who goes first); the
 * medians are compared and the peak RSS is the highest seen. Our upload runs in a child process so
 * that its peak RSS is its own (rclone's is sampled from /proc). Figures and the ratio are printed
 * and written to bench/out/offsite.json; nothing is asserted. Linux only.
 */
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Archive } from "../lib/archive/archive";
import type { FileRecord } from "../lib/archive/catalog";
import { hashFile } from "../lib/archive/local-io";
import { createTarget, uploadOffsite } from "../lib/offsite";

const MiB = 1 << 20;
const SCALE = process.env.BENCH_SCALE === "small" ? "small" : "full";
const FULL_SHAPE = SCALE === "small" ? { big: [2, 16 * MiB], mid: [8, 2 * MiB], small: [256, 64 * 1024] } : { big: [4, 128 * MiB], mid: [24, 16 * MiB], small: [2048, 64 * 1024] };
/** BENCH_ONLY=big|mid|small keeps one kind of file (to see where time goes) */
const SHAPE = Object.fromEntries(Object.entries(FULL_SHAPE).filter(([k]) => !process.env.BENCH_ONLY || k === process.env.BENCH_ONLY)) as Partial<typeof FULL_SHAPE>;
const FILES = Object.values(SHAPE).reduce((n, [count]) => n + count, 0);
const CONCURRENCY = 4;
const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3));
const BUCKET = "tick-bench";
const OUT_FILE = path.join(__dirname, "..", "..", "bench", "out", process.env.BENCH_ONLY ? `offsite-${process.env.BENCH_ONLY}.json` : "offsite.json");

interface RunResult {
  seconds: number;
  /** our report's durationMs, without the process start and module loading */
  engineSeconds?: number;
  bytes: number;
  maxRssMB: number;
  /** CPU seconds (user + system) of the uploading process, and of the S3 server during the run */
  cpuSeconds?: number;
  serverCpuSeconds?: number;
  problems: string[];
}

async function main(): Promise<void> {
  if (process.argv[2] === "server") return serve(process.argv[3]);
  if (process.argv[2] === "runner") return runner(process.argv[3], process.argv[4], process.argv[5]);
  if (process.env.BENCH_CPU_PROF) process.execArgv.push("--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), "offsite-bench-"));
  try {
    const archiveDir = path.join(work, "archive");
    fs.mkdirSync(archiveDir);
    const total = await writeTree(archiveDir);
    console.log(`tree: ${(total / MiB).toFixed(0)} MiB in ${FILES} files (${SCALE}${process.env.BENCH_ONLY ? `, ${process.env.BENCH_ONLY} only` : ""})`);

    const server = spawn(process.execPath, [__filename, "server", path.join(work, "s3")], { stdio: ["ignore", "pipe", "inherit"] });
    const endpoint = await new Promise<string>((resolve, reject) => {
      server.stdout.once("data", (d: Buffer) => resolve(d.toString().trim()));
      server.once("exit", (code) => reject(new Error(`s3 server exited ${code}`)));
    });
    try {
      // Each tool uploads the tree RUNS times (to a fresh prefix each time), alternating which goes
      // first; the median run of each is compared.
      const oursRuns: RunResult[] = [];
      const rcloneRuns: RunResult[] = [];
      for (let i = 0; i < RUNS; i++) {
        // The server's CPU during each run shows how much of the two cores the client leaves it.
        const withServerCpu = async (run: Promise<RunResult>) => {
          const before = cpuOf(server.pid!);
          const r = await run;
          return { ...r, serverCpuSeconds: round(cpuOf(server.pid!) - before) };
        };
        const runOurs = async () => oursRuns.push(await withServerCpu(timed(process.execPath, [...process.execArgv.filter((a) => a.startsWith("--cpu-prof")), __filename, "runner", archiveDir, endpoint, `ours-${i}`], true)));
        const runRclone = async () =>
          rcloneRuns.push(
            await withServerCpu(timed("rclone", [
              "copy", archiveDir, `:s3,provider=Other,access_key_id=S3RVER,secret_access_key=S3RVER,endpoint='${endpoint}',force_path_style=true:${BUCKET}/rclone-${i}`,
              "--exclude", "/.tick-backup/**", "--transfers", String(CONCURRENCY), "--config", "/dev/null", "--log-level", "ERROR",
            ])),
          );
        if (i % 2 === 0) await runOurs().then(runRclone);
        else await runRclone().then(runOurs);
        // The state of our runs lives in the archive: forget the copies so that the next run uploads all again.
        await forgetCopies(archiveDir);
      }
      const ours = median(oursRuns);
      const rclone = median(rcloneRuns);
      const row = (r: RunResult) => ({
        seconds: r.seconds, engineSeconds: r.engineSeconds, mbPerSec: Math.round((total / 1e6 / r.seconds) * 10) / 10, maxRssMB: r.maxRssMB,
        cpuSeconds: r.cpuSeconds, serverCpuSeconds: r.serverCpuSeconds, problems: r.problems,
      });
      const result = {
        scale: SCALE,
        bytes: total,
        files: FILES,
        only: process.env.BENCH_ONLY,
        concurrency: CONCURRENCY,
        runs: RUNS,
        allSeconds: { ours: oursRuns.map((r) => r.seconds), rclone: rcloneRuns.map((r) => r.seconds) },
        ours: row(ours),
        rclone: row(rclone),
        throughputRatio: Math.round((rclone.seconds / ours.seconds) * 100) / 100,
        goals: { throughputRatio: ">= 0.8", oursMaxRssMB: "<= 200" },
      };
      console.log(JSON.stringify(result, null, 2));
      fs.mkdirSync(path.dirname(OUT_FILE), { recursive: true });
      fs.writeFileSync(OUT_FILE, JSON.stringify(result, null, 2) + "\n");
    } finally {
      server.kill();
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function writeTree(root: string): Promise<number> {
  const archive = await Archive.open(root, { name: "bench" });
  const records: FileRecord[] = [];
  let total = 0;
  const block = crypto.randomBytes(MiB);
  const now = new Date().toISOString();
  for (const [kind, [count, size]] of Object.entries(SHAPE)) {
    for (let i = 0; i < count; i++) {
      const rel = `${kind}/d${i % 32}/f${i}.csv`;
      const file = path.join(root, ...rel.split("/"));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      const fd = fs.openSync(file, "w");
      for (let left = size; left > 0; left -= MiB) {
        block.writeUInt32BE(i, 0);
        block.writeUInt32BE(left, 4);
        fs.writeSync(fd, block, 0, Math.min(MiB, left));
      }
      fs.closeSync(fd);
      total += size;
      records.push({ path: rel, size, mtime: 1_700_000_000, sha256: await hashFile(file), state: "final", firstPulledAt: now, pulledAt: now });
    }
  }
  await archive.update((cat) => cat.commit(...records));
  return total;
}

/** Runs a command to its end, sampling its peak RSS (VmHWM) from /proc, or taking the runner's own. */
function timed(cmd: string, args: string[], reportsItself = false): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AWS_")));
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"], env });
    let out = "";
    let hwm = 0;
    let cpu = 0;
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const sample = setInterval(() => {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, { encoding: "utf8", flag: "r" }) ?? "");
      if (m) hwm = Math.max(hwm, Number(m[1]) / 1024);
      cpu = Math.max(cpu, cpuOf(child.pid!)); // the last sample before the exit: short of the truth by up to 50 ms
    }, 50);
    child.on("error", reject);
    child.on("exit", (code) => {
      clearInterval(sample);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}`));
      if (!reportsItself) return resolve({ seconds: round(seconds), bytes: 0, maxRssMB: Math.round(hwm), cpuSeconds: round(cpu), problems: [] });
      const r = JSON.parse(out.trim().split("\n").pop()!) as RunResult;
      resolve({ ...r, engineSeconds: round(r.seconds), seconds: round(seconds) });
    });
  });
}

async function serve(dir: string): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require("s3rver");
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: BUCKET }] });
  const { port } = await server.run();
  process.stdout.write(`http://127.0.0.1:${port}\n`);
  await new Promise(() => undefined);
}

async function runner(archiveDir: string, endpoint: string, prefix: string): Promise<void> {
  const archive = await Archive.open(archiveDir);
  const target = createTarget({ kind: "s3", endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: "S3RVER", secretAccessKey: "S3RVER" });
  const report = await uploadOffsite({ archive, target, targetName: "bench", concurrency: CONCURRENCY });
  await target.close();
  const ru = process.resourceUsage();
  const result: RunResult = { seconds: report.durationMs / 1000, bytes: report.bytes, maxRssMB: Math.round(ru.maxRSS / 1024), cpuSeconds: (ru.userCPUTime + ru.systemCPUTime) / 1e6, problems: report.problems.slice(0, 5).map((p) => `${p.code} ${p.path ?? ""}: ${p.message}`) };
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(0);
}

function median(runs: RunResult[]): RunResult {
  const sorted = [...runs].sort((a, b) => a.seconds - b.seconds);
  return { ...sorted[Math.floor((sorted.length - 1) / 2)], maxRssMB: Math.max(...runs.map((r) => r.maxRssMB)) };
}

async function forgetCopies(root: string): Promise<void> {
  const archive = await Archive.open(root);
  await archive.update(async (cat) => {
    await cat.commit(...cat.all().map(({ copies: _gone, ...rest }) => rest));
    await cat.compact(true);
  });
}

/** CPU seconds (user + system) a live process has used, from /proc/<pid>/stat; 0 once it is gone. */
function cpuOf(pid: number): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime and stime, in clock ticks of 1/100 s
  } catch {
    return 0;
  }
}

function round(s: number): number {
  return Math.round(s * 100) / 100;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
