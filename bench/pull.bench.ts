/**
 * Pull benchmark: our engine (lib/sftp/pull.ts) against OpenSSH `sftp -b` and `rsync -a` on the SAME
 * loopback OpenSSH sshd, in one run. See docs/performance.md for what each case measures.
 *
 *   npm run bench                        full sizes (1 GiB file, 10,000 small files, 500 MB + 50 MB)
 *   BENCH_SCALE=small npm run bench      quick run (256 MiB, 2,000 files, 100 MB + 10 MB)
 *   BENCH_CONCURRENCY=1,8,16,64          the `concurrency` values tried for our pull (case b)
 *   TMPDIR=/dev/shm npm run bench        server tree and local copies in RAM: the disk taken out
 *
 * Every tool runs once, in a fixed order, with no warm-up and a warm page cache (the data was just
 * written; dropping caches needs privileges). Figures and ratios are printed and written to
 * bench/out/pull.json; nothing is asserted. Each of our pulls runs in a child process
 * (bench/pull-runner.ts) so its peak RSS and CPU time are its own. Linux only (/proc).
 */
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "ssh2";
import { startSshd, type Sshd } from "../test/support/sshd";
import type { RunnerJob, RunnerResult } from "./pull-runner";

const [MB, MiB] = [1e6, 1 << 20];
const SCALE = process.env.BENCH_SCALE === "small" ? "small" : "full";
const SIZES = SCALE === "small"
  ? { bigBytes: 256 * MiB, files: 2_000, dirs: 40, fileBytes: 4096, baseBytes: 100 * MB, appendBytes: 10 * MB }
  : { bigBytes: 1024 * MiB, files: 10_000, dirs: 100, fileBytes: 4096, baseBytes: 500 * MB, appendBytes: 50 * MB };
const DEFAULT_CONCURRENCY = 8; // pull()'s own default
const CONCURRENCY = [...new Set((process.env.BENCH_CONCURRENCY ?? "1,8,16,64").split(",").map(Number).filter((n) => n > 0))];
const RUNNER = path.join(__dirname, "pull-runner.js");
const OUT_FILE = path.join(__dirname, "..", "..", "bench", "out", "pull.json");
/** Where sftp-server's `-l INFO` log can be captured: internal-sftp logs only to syslog (see docs). */
const SFTP_SERVERS = ["/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server"];

interface Row {
  case: string;
  tool: string;
  seconds: number;
  /** payload MB (1e6 bytes) per second of wall time, for the cases where a size makes sense */
  mbps?: number;
  /** client process CPU (user+sys, children included) and the sshd side's CPU, seconds */
  clientCpuS: number;
  serverCpuS: number;
  /** our report's `bytes` (content bytes that crossed the network) */
  bytes?: number;
  /** sum of `bytes read` on sftp-server's close lines during this run: what the SERVER sent */
  serverBytes?: number;
  maxRssMB?: number;
  /** our report's durationMs (lock + connect + list + transfer + catalog), without process start */
  pullMs?: number;
  note?: string;
}

const rows: Row[] = [];
let sshd: Sshd;
let work = "";
let listenerPid = 0;
let sftpLog = "";

function writeRandom(file: string, bytes: number, flags = "w"): void {
  const fd = fs.openSync(file, flags);
  const buf = Buffer.allocUnsafe(4 * MiB);
  try {
    for (let left = bytes; left > 0; left -= buf.length) fs.writeSync(fd, crypto.randomFillSync(buf), 0, Math.min(buf.length, left));
  } finally {
    fs.closeSync(fd);
  }
}

/** Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid, … [13] cutime, [14] cstime. */
function stat(pid: number): string[] {
  const text = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

/** CPU seconds of a process's reaped children (cutime + cstime, in USER_HZ = 100 ticks/s). */
function childCpu(pid: number): number {
  const f = stat(pid);
  return (Number(f[13]) + Number(f[14])) / 100;
}

function childrenOf(pid: number): number[] {
  return fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).map(Number).filter((p) => {
    try {
      return Number(stat(p)[1]) === pid;
    } catch {
      return false;
    }
  });
}

function exec(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8000)));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? "");
  });
}

type Measured = Pick<Row, "seconds" | "clientCpuS" | "serverCpuS">;

/** Runs a client to completion; its wall time, its CPU and the CPU of sshd's processes that served it. */
async function measure(cmd: string, args: string[], input?: string): Promise<{ m: Measured; stdout: string; stderr: string }> {
  const c0 = childCpu(process.pid);
  const s0 = childCpu(listenerPid);
  const t0 = performance.now();
  const r = await exec(cmd, args, input);
  const seconds = (performance.now() - t0) / 1000;
  if (r.code !== 0) throw new Error(`${path.basename(cmd)} ${args.slice(0, 3).join(" ")} … exited ${r.code}:\n${r.stderr}`);
  // sshd reaps a connection's processes (and adds their CPU to its own cutime) just after the client leaves.
  for (const until = Date.now() + 5000; childrenOf(listenerPid).length > 0 && Date.now() < until; ) await new Promise((res) => setTimeout(res, 20));
  const round = (n: number) => Math.round(n * 100) / 100;
  return { m: { seconds: round(seconds), clientCpuS: round(childCpu(process.pid) - c0), serverCpuS: round(childCpu(listenerPid) - s0) }, stdout: r.stdout, stderr: r.stderr };
}

const logText = () => (sftpLog ? fs.readFileSync(sftpLog, "utf8") : sshd.readLog());

/** Sums `close "…" bytes read N written M`, which sftp-server logs per closed file, since offset `from`. */
function serverBytesSince(from: number): number | undefined {
  const closes = [...logText().slice(from).matchAll(/close "[^\n]*" bytes read (\d+) written \d+/g)];
  return closes.length > 0 ? closes.reduce((sum, m) => sum + Number(m[1]), 0) : undefined;
}

function add(row: Row, payloadBytes?: number): Row {
  if (payloadBytes !== undefined) row.mbps = Math.round((payloadBytes / MB / row.seconds) * 10) / 10;
  rows.push(row);
  const extra = [row.pullMs !== undefined ? `pull ${row.pullMs} ms` : "", row.maxRssMB !== undefined ? `rss ${row.maxRssMB} MB` : ""].filter(Boolean).join(", ");
  console.error(`  ${row.case} ${row.tool}: ${row.seconds} s${row.mbps ? ` (${row.mbps} MB/s)` : ""}${extra ? `, ${extra}` : ""}`);
  return row;
}

async function ours(caseId: string, tool: string, archiveDir: string, remoteDir: string, payloadBytes?: number, concurrency?: number): Promise<Row> {
  fs.mkdirSync(archiveDir, { recursive: true });
  const job: RunnerJob = {
    server: { host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostFingerprint: sshd.hostFingerprint },
    archiveDir,
    remoteDir,
    concurrency,
  };
  const at = logText().length;
  const { m, stdout, stderr } = await measure(process.execPath, [RUNNER], JSON.stringify(job));
  const r = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as RunnerResult;
  // Problems in the report, or anything the process printed (a warning, say), are shown beside the figures.
  const note = [r.counts.failed > 0 || r.problems.length > 0 ? `PROBLEMS: ${r.problems.join("; ")}` : "", stderr.split("\n")[0].replace(/^\(node:\d+\) /, "")].filter(Boolean).join(" | ");
  return add({ case: caseId, tool, ...m, bytes: r.bytes, serverBytes: serverBytesSince(at), maxRssMB: r.maxRssMB, pullMs: r.durationMs, note: note || undefined }, payloadBytes);
}

async function sftpGet(caseId: string, tool: string, batch: string, payloadBytes?: number): Promise<Row> {
  const batchFile = path.join(work, "sftp.batch");
  fs.writeFileSync(batchFile, batch + "\n");
  const at = logText().length;
  const { m } = await measure("sftp", ["-q", "-b", batchFile, ...sshd.sshArgs(), sshd.host]);
  return add({ case: caseId, tool, ...m, serverBytes: serverBytesSince(at) }, payloadBytes);
}

async function rsync(caseId: string, tool: string, remoteDir: string, dest: string, payloadBytes?: number, extra: string[] = []): Promise<Row> {
  const { m } = await measure("rsync", ["-a", ...extra, "-e", `ssh ${sshd.sshArgs().join(" ")}`, `${sshd.host}:${remoteDir}/`, `${dest}/`]);
  return add({ case: caseId, tool, ...m }, payloadBytes);
}

/** The cipher each client negotiates with this sshd (ours: ssh2's default preference, as lib/sftp/connect.ts uses). */
async function ciphers(): Promise<{ ours: string; openssh: string }> {
  const ours = await new Promise<string>((resolve) => {
    let cipher = "?";
    const c = new Client();
    c.on("ready", () => c.end()).on("error", () => resolve(cipher)).on("close", () => resolve(cipher));
    c.connect({ host: sshd.host, port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, debug: (s: string) => {
      cipher = /Handshake: S->C cipher: (\S+)/i.exec(s)?.[1] ?? cipher;
    } });
  });
  const v = await exec("ssh", [...sshd.sshArgs(), "-v", sshd.host, "true"]);
  return { ours, openssh: /kex: server->client cipher: (\S+)/.exec(v.stderr)?.[1] ?? "?" };
}

function version(cmd: string, args: string[], re: RegExp): Promise<string> {
  return exec(cmd, args).then((r) => re.exec(r.stdout + r.stderr)?.[0] ?? "?", () => "?");
}

const ratio = (a: number, b: number, digits = 2) => Number((a / b).toFixed(digits));

async function main(): Promise<void> {
  const sftpServer = SFTP_SERVERS.find((p) => fs.existsSync(p));
  work = fs.mkdtempSync(path.join(os.tmpdir(), "tick-bench-"));
  sftpLog = sftpServer ? path.join(work, "sftp-server.log") : "";
  if (sftpLog) fs.writeFileSync(sftpLog, "");
  // sshd runs a Subsystem command through the user's shell, so stderr (where -e sends the log) can go to a file.
  sshd = await startSshd({ extraConfig: [sftpServer ? `Subsystem sftp ${sftpServer} -e -l INFO 2>>${sftpLog}` : "Subsystem sftp internal-sftp -l INFO"] });
  listenerPid = childrenOf(process.pid).find((p) => fs.readFileSync(`/proc/${p}/cmdline`, "utf8").includes(sshd.dir)) ?? 0;
  if (!listenerPid) throw new Error("cannot find the sshd listener process in /proc");
  const startedAt = new Date().toISOString();
  const loadBefore = os.loadavg();
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "?",
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    openssh: await version("ssh", ["-V"], /OpenSSH_\S+/),
    rsync: await version("rsync", ["--version"], /rsync\s+version\s+\S+/),
    ciphers: await ciphers(),
  };
  console.error(`bench: scale ${SCALE}, concurrency ${CONCURRENCY.join(",")}, ciphers ours ${machine.ciphers.ours} / OpenSSH ${machine.ciphers.openssh}`);
  const R = (...p: string[]) => path.join(sshd.root, ...p);
  const L = (...p: string[]) => path.join(work, ...p);
  const rm = (...p: string[]) => fs.rmSync(L(...p), { recursive: true, force: true });

  // a. one big random file
  fs.mkdirSync(R("a"));
  writeRandom(R("a", "big.bin"), SIZES.bigBytes);
  const aOurs = await ours("a", `ours c=${DEFAULT_CONCURRENCY}`, L("a-ours"), R("a"), SIZES.bigBytes);
  rm("a-ours");
  const aSftp = await sftpGet("a", "sftp get", `get ${R("a", "big.bin")} ${L("a-sftp.bin")}`, SIZES.bigBytes);
  rm("a-sftp.bin");
  const aRsync = await rsync("a", "rsync -a", R("a"), L("a-rsync"), SIZES.bigBytes);
  rm("a-rsync");
  // Not targets: the same two tools made as durable as we are (we fsync every file before it counts).
  const aSftpSync = await sftpGet("a", "sftp get -f (fsync)", `get -f ${R("a", "big.bin")} ${L("a-sftp.bin")}`, SIZES.bigBytes);
  rm("a-sftp.bin");
  await rsync("a", "rsync -a --fsync", R("a"), L("a-rsync"), SIZES.bigBytes, ["--fsync"]).catch((err: Error) => void console.error(`  rsync --fsync skipped: ${err.message}`));
  rm("a-rsync");
  fs.rmSync(R("a"), { recursive: true });

  // b. many small files in many folders
  for (let d = 0; d < SIZES.dirs; d++) fs.mkdirSync(R("b", `d${String(d).padStart(3, "0")}`), { recursive: true });
  for (let i = 0; i < SIZES.files; i++) {
    fs.writeFileSync(R("b", `d${String(i % SIZES.dirs).padStart(3, "0")}`, `f${String(i).padStart(5, "0")}.csv`), crypto.randomBytes(SIZES.fileBytes));
  }
  const bBytes = SIZES.files * SIZES.fileBytes;
  const bOurs: Row[] = [];
  for (const c of CONCURRENCY) bOurs.push(await ours("b", `ours c=${c}`, L(`b-ours-${c}`), R("b"), bBytes, c));
  const bSftp = await sftpGet("b", "sftp get -r", `get -r ${R("b")} ${L("b-sftp")}`, bBytes);
  const bRsync = await rsync("b", "rsync -a", R("b"), L("b-rsync"), bBytes);
  const bRsyncSync = await rsync("b", "rsync -a --fsync", R("b"), L("b-rsync-fsync"), bBytes, ["--fsync"]).catch((err: Error) => void console.error(`  rsync --fsync skipped: ${err.message}`));

  // c. the same pull again with nothing new
  const rerunOf = CONCURRENCY.includes(DEFAULT_CONCURRENCY) ? DEFAULT_CONCURRENCY : CONCURRENCY[0];
  const cOurs = await ours("c", `ours rerun (c=${rerunOf})`, L(`b-ours-${rerunOf}`), R("b"));
  const cRsync = await rsync("c", "rsync -a rerun", R("b"), L("b-rsync"));
  for (const e of fs.readdirSync(work)) if (e.startsWith("b-")) rm(e);

  // d. an append to a big file that was pulled before
  fs.mkdirSync(R("d"));
  writeRandom(R("d", "ticks.csv"), SIZES.baseBytes);
  await ours("d", "ours first pull", L("d-ours"), R("d"), SIZES.baseBytes);
  await rsync("d", "rsync -a first", R("d"), L("d-rsync"), SIZES.baseBytes);
  writeRandom(R("d", "ticks.csv"), SIZES.appendBytes, "a");
  const dOurs = await ours("d", "ours after append", L("d-ours"), R("d"), SIZES.appendBytes);
  const dRsync = await rsync("d", "rsync -a after append", R("d"), L("d-rsync"), SIZES.appendBytes);
  rm("d-ours");
  rm("d-rsync");

  const bBest = bOurs.reduce((best, r) => (r.seconds < best.seconds ? r : best));
  const bDefault = bOurs.find((r) => r.tool === `ours c=${DEFAULT_CONCURRENCY}`) ?? bBest;
  const peak = rows.filter((r) => r.maxRssMB !== undefined).reduce((best, r) => ((r.maxRssMB ?? 0) > (best.maxRssMB ?? 0) ? r : best));
  const dBytes = dOurs.serverBytes ?? dOurs.bytes ?? 0;
  const targets = [
    { case: "a", measure: "ours MB/s ÷ sftp MB/s (1 file)", value: ratio(aOurs.mbps!, aSftp.mbps!), target: ">= 1.2", met: aOurs.mbps! >= 1.2 * aSftp.mbps!, also: `÷ sftp -f ${ratio(aOurs.mbps!, aSftpSync.mbps!)}; ÷ rsync ${ratio(aOurs.mbps!, aRsync.mbps!)}` },
    { case: "b", measure: `ours s ÷ rsync s (best: ${bBest.tool})`, value: ratio(bBest.seconds, bRsync.seconds), target: "<= 1", met: bBest.seconds <= bRsync.seconds, also: `default c=${DEFAULT_CONCURRENCY}: ${ratio(bDefault.seconds, bRsync.seconds)}; best ÷ rsync --fsync ${bRsyncSync ? ratio(bBest.seconds, bRsyncSync.seconds) : "n/a"}; ÷ sftp -r ${ratio(bBest.seconds, bSftp.seconds)}` },
    { case: "c", measure: "ours rerun s ÷ rsync rerun s", value: ratio(cOurs.seconds, cRsync.seconds), target: "<= 1", met: cOurs.seconds <= cRsync.seconds, also: `pull() alone ${cOurs.pullMs} ms` },
    { case: "d", measure: `bytes the server read ÷ appended bytes (${dOurs.serverBytes !== undefined ? "sftp-server log" : "our report"})`, value: ratio(dBytes, SIZES.appendBytes, 4), target: "<= 1.05", met: dBytes <= 1.05 * SIZES.appendBytes, also: `ours s ÷ rsync s ${ratio(dOurs.seconds, dRsync.seconds)}` },
    { case: "e", measure: `peak RSS of our pull process, MB (max: ${peak.case} ${peak.tool})`, value: peak.maxRssMB!, target: "<= 150", met: (peak.maxRssMB ?? 0) <= 150, also: "" },
  ];
  const result = { startedAt, finishedAt: new Date().toISOString(), scale: SCALE, sizes: SIZES, concurrency: CONCURRENCY, machine, loadavg: { before: loadBefore, after: os.loadavg() }, rows, targets };
  fs.mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  fs.writeFileSync(OUT_FILE, JSON.stringify(result, null, 2) + "\n");
  printTables(result);
  console.log(`\nwritten ${path.relative(process.cwd(), OUT_FILE)}`);
}

function printTables(result: { machine: object; loadavg: { before: number[]; after: number[] }; rows: Row[]; targets: Array<Record<string, unknown>> }): void {
  const fmt = (v: unknown) => (v === undefined ? "" : String(v));
  const table = (head: string[], body: unknown[][]) => {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => fmt(r[i]).length)));
    const line = (r: unknown[]) => r.map((c, i) => (typeof c === "number" ? fmt(c).padStart(widths[i]) : fmt(c).padEnd(widths[i]))).join("  ");
    console.log([line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n"));
  };
  console.log(`\nmachine: ${JSON.stringify(result.machine)}`);
  console.log(`load average before ${result.loadavg.before.map((n) => n.toFixed(2)).join(" ")}, after ${result.loadavg.after.map((n) => n.toFixed(2)).join(" ")}\n`);
  table(
    ["case", "tool", "wall s", "MB/s", "client CPU s", "sshd CPU s", "server bytes", "pull ms", "RSS MB", "note"],
    result.rows.map((r) => [r.case, r.tool, r.seconds, r.mbps, r.clientCpuS, r.serverCpuS, r.serverBytes, r.pullMs, r.maxRssMB, r.note?.slice(0, 72)]),
  );
  console.log("");
  table(["case", "measure", "value", "target", "met", "also"], result.targets.map((t) => [t.case, t.measure, t.value, t.target, t.met ? "yes" : "NO", t.also]));
}

main()
  .catch((err) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await sshd?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });
