#!/usr/bin/env node
// The tick-backup command: status, stats, verify, restore, drill and plan without Node-RED.
import { parseArgs } from "node:util";
import * as fs from "node:fs";
import * as path from "node:path";
import { Archive } from "../lib/archive/archive";
import { BackupError, messageOf } from "../lib/errors";
import { scrub } from "../lib/verify/scrub";
import { drill, restore, loadTargetSpec, ArchiveSource, type RestoreSource } from "../lib/restore";
import { bar, bytes, printPlan, printStats, printStatus, readStatus, readStats, table } from "./output";

/** Exit codes (docs/restore.md): */
export const EXIT = { OK: 0, PROBLEMS: 1, USAGE: 2, FAILED: 3, INTERRUPTED: 130 } as const;

const USAGE = `usage: tick-backup <command> [options]

  status  <archive>                         what is where: files, copies per target, 3-2-1 verdict, last runs
  stats   <archive>                         data volume per day/week/month, averages, days until full
  verify  <archive> [--full | --partition n/t]   read files back and compare with the catalog
  restore --from <archive | target> --to <dir> [--include glob]… [--since date] [--force]
  drill   [<archive>] [--target <target>]… [--files n] [--percent p]
  plan    <archive>                         the backup plan as Markdown

  a target is a folder target's path, dir:<path>, s3://bucket/prefix, rclone:remote:path or @name
  (from --config file / TICK_BACKUP_CONFIG); secrets come from the environment or that file only.
  --identity <file>  age secret key for encrypted targets (or TICK_BACKUP_AGE_IDENTITY[_FILE])
  --json             machine-readable output on stdout

exit codes: 0 all good · 1 problems found (mismatch, missing, refused, …) · 2 usage · 3 could not run · 130 interrupted`;

class Usage extends Error {}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        json: { type: "boolean", default: false },
        full: { type: "boolean", default: false },
        partition: { type: "string" },
        from: { type: "string" },
        to: { type: "string" },
        include: { type: "string", multiple: true },
        since: { type: "string" },
        force: { type: "boolean", default: false },
        target: { type: "string", multiple: true },
        files: { type: "string" },
        percent: { type: "string" },
        config: { type: "string" },
        identity: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`tick-backup: ${messageOf(err)}\n\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  const { values: o, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (o.help || !command) {
    (o.help ? process.stdout : process.stderr).write(USAGE + "\n");
    return o.help ? EXIT.OK : EXIT.USAGE;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const progress = !o.json && process.stderr.isTTY ? bar(process.stderr) : undefined;
  const out = (human: () => void, json: unknown) => (o.json ? process.stdout.write(JSON.stringify(json, null, 2) + "\n") : human());
  const spec = (s: string) => loadTargetSpec({ spec: s, configFile: o.config, identityFile: o.identity });
  const sources: RestoreSource[] = [];
  try {
    switch (command) {
      case "status": {
        const status = await readStatus(await openArchive(one(rest, "status <archive>")));
        out(() => printStatus(status), status);
        return status.verdict.ok ? EXIT.OK : EXIT.PROBLEMS;
      }
      case "stats": {
        const stats = await readStats(await openArchive(one(rest, "stats <archive>")));
        out(() => printStats(stats), stats);
        return EXIT.OK;
      }
      case "plan": {
        const status = await readStatus(await openArchive(one(rest, "plan <archive>")));
        out(() => printPlan(status), status);
        return EXIT.OK;
      }
      case "verify": {
        if (o.full && o.partition) throw new Usage("--full and --partition exclude each other");
        const part = o.partition ? partitionOf(o.partition) : undefined;
        const archive = await openArchive(one(rest, "verify <archive>"));
        const report = await scrub({
          archive,
          mode: o.full || !part ? "full" : "scrub",
          partitions: part?.t,
          partition: part?.n,
          signal: stop.signal,
          onProgress: (p) => progress?.(p.bytes, p.bytesTotal, `verify ${p.files}/${p.filesTotal} files`),
        });
        progress?.done();
        out(() => {
          table([["checked", "ok", "mismatched", "missing", "extra", "read", "MB/s"], [report.counts.checked, report.counts.ok, report.counts.mismatched, report.counts.missing, report.counts.extra, bytes(report.bytes), report.mbPerSec]]);
          problems(report.problems);
        }, report);
        return report.counts.mismatched + report.counts.missing > 0 ? EXIT.PROBLEMS : EXIT.OK;
      }
      case "restore": {
        if (rest.length > 0) throw new Usage(`restore takes no positional arguments (got ${rest.join(" ")}); use --from and --to`);
        if (!o.from || !o.to) throw new Usage("restore needs --from <archive | target> and --to <dir>");
        const since = o.since !== undefined ? dateOf(o.since) : undefined;
        const source = await spec(o.from);
        sources.push(source);
        const report = await restore({
          source,
          to: o.to,
          include: o.include,
          since,
          force: o.force,
          signal: stop.signal,
          onProgress: (p) => progress?.(p.bytes, p.bytesTotal, `restore ${p.files}/${p.filesTotal} files`),
        });
        progress?.done();
        out(() => {
          table([["selected", "restored", "present", "mismatched", "missing", "refused", "failed", "bytes"], [report.counts.selected, report.counts.restored, report.counts.present, report.counts.mismatched, report.counts.missing, report.counts.refused, report.counts.failed, bytes(report.bytes)]]);
          problems(report.problems);
        }, report);
        return report.problems.length > 0 ? EXIT.PROBLEMS : EXIT.OK;
      }
      case "drill": {
        if (rest.length > 1) throw new Usage("drill takes at most one archive folder");
        if (rest[0]) sources.push(await ArchiveSource.open(rest[0]));
        for (const t of o.target ?? []) sources.push(await spec(t));
        if (sources.length === 0) throw new Usage("drill needs an archive folder and/or --target <target>");
        const report = await drill({
          archive: rest[0] ? path.basename(path.resolve(rest[0])) : "",
          sources,
          files: o.files !== undefined ? intOf(o.files, "--files") : undefined,
          percent: o.percent !== undefined ? Number(o.percent) : undefined,
          signal: stop.signal,
          onProgress: (p) => progress?.(p.bytes, p.bytesTotal, `drill ${p.source}`),
        });
        progress?.done();
        out(() => {
          table([["copy", "checked", "ok", "mismatched", "missing", "failed", "bytes"], ...report.sources.map((s) => [s.source, s.checked, s.ok, s.mismatched, s.missing, s.failed, bytes(s.bytes)])]);
          problems(report.problems);
        }, report);
        return report.problems.length > 0 || report.counts.checked === 0 ? EXIT.PROBLEMS : EXIT.OK;
      }
      default:
        throw new Usage(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (err) {
    progress?.done();
    if (err instanceof Usage) {
      process.stderr.write(`tick-backup: ${err.message}\n\n${USAGE}\n`);
      return EXIT.USAGE;
    }
    if (stop.signal.aborted) {
      process.stderr.write("tick-backup: interrupted; nothing half-written was left in place\n");
      return EXIT.INTERRUPTED;
    }
    const code = err instanceof BackupError ? `${err.code}: ` : "";
    if (o.json) process.stdout.write(JSON.stringify({ error: { code: err instanceof BackupError ? err.code : "ERROR", message: messageOf(err) } }) + "\n");
    process.stderr.write(`tick-backup: ${code}${messageOf(err)}\n`);
    return EXIT.FAILED;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const s of sources) await s.close().catch(() => undefined);
  }
}

function one(rest: string[], usage: string): string {
  if (rest.length !== 1) throw new Usage(`usage: tick-backup ${usage}`);
  return rest[0];
}

async function openArchive(dir: string): Promise<Archive> {
  const root = path.resolve(dir);
  if (!fs.existsSync(path.join(root, ".tick-backup"))) throw new BackupError("NOT_AN_ARCHIVE", `${root} is not an archive (no .tick-backup folder)`);
  return Archive.open(root);
}

function partitionOf(s: string): { n: number; t: number } {
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (!m) throw new Usage(`--partition wants n/t (e.g. 3/7), got ${JSON.stringify(s)}`);
  const n = Number(m[1]);
  const t = Number(m[2]);
  if (t < 1 || t > 10_000 || n < 1 || n > t) throw new Usage(`--partition ${s}: n must be from 1 to t, t from 1 to 10000`);
  return { n, t };
}

function dateOf(s: string): Date {
  const d = new Date(s);
  if (!/^\d{4}-\d{2}-\d{2}/.test(s) || Number.isNaN(d.getTime())) throw new Usage(`--since wants a date like 2026-11-01 or 2026-11-01T12:00:00Z, got ${JSON.stringify(s)}`);
  return d;
}

function intOf(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new Usage(`${name} wants a whole number of at least 1, got ${JSON.stringify(s)}`);
  return n;
}

function problems(list: Array<{ code: string; message: string }>): void {
  if (list.length === 0) return;
  process.stdout.write(`\n${list.length} problem(s):\n`);
  for (const p of list.slice(0, 50)) process.stdout.write(`  ${p.code}  ${p.message}\n`);
  if (list.length > 50) process.stdout.write(`  … and ${list.length - 50} more (--json lists all)\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err) => {
      process.stderr.write(`tick-backup: ${messageOf(err)}\n`);
      process.exitCode = EXIT.FAILED;
    },
  );
}
