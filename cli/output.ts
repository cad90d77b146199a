// What the tick-backup command prints for people: tables, the progress bar, status, stats and plan.
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import type { Archive } from "../lib/archive/archive";
import { readHistory } from "../lib/archive/history";
import { BackupError, messageOf } from "../lib/errors";
import { HEALTH_FILE } from "../lib/health/tracker";
import { computeVolume, type VolumeStats } from "../lib/disk";
import type { OffsiteCopy } from "../lib/offsite/target";

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) (v /= 1000), u++;
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** A plain text table, first row the header, columns padded. */
export function table(rows: Array<Array<string | number | null | undefined>>, write = (s: string) => process.stdout.write(s)): void {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))));
  const widths = cells[0].map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  cells.forEach((r, k) => {
    write(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ") + "\n");
    if (k === 0) write(widths.map((w) => "-".repeat(w)).join("  ") + "\n");
  });
}

/** A one-line progress bar on a terminal (redrawn at most 10 times a second). */
export function bar(stream: NodeJS.WriteStream) {
  let last = 0;
  const update = (done: number, total: number, label: string) => {
    if (Date.now() - last < 100) return;
    last = Date.now();
    const width = 30;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const fill = Math.round(frac * width);
    stream.write(`\r[${"#".repeat(fill)}${" ".repeat(width - fill)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${bytes(done)}/${bytes(total)} ${label}`.slice(0, (stream.columns || 100) - 1) + "\x1b[K");
  };
  update.done = () => {
    if (last > 0) stream.write("\r\x1b[K");
    last = 0;
  };
  return update;
}

export interface Status {
  archive: string;
  root: string;
  files: number;
  bytes: number;
  live: number;
  final: number;
  gone: number;
  targets: Array<{ id: string; name?: string; kind?: string; files: number; bytes: number; encrypted: boolean; lastConnectedAt?: string; lastCompleteAt?: string }>;
  /** final files by number of copies (the archive plus each offsite target) */
  copies: { one: number; two: number; threePlus: number };
  notOffsite: string[];
  verdict: { ok: boolean; text: string };
  lastSuccess: Record<string, string | undefined>;
  runs: Record<string, { kind: string; at: string; ok: boolean; message?: string }>;
  verify: { lastFullProofAt?: string; bad: string[] };
}

/** Reads everything the status and plan need, without the lock (a pull may be running). */
export async function readStatus(archive: Archive): Promise<Status> {
  const records = (await archive.readCatalog()).all();
  const current = records.filter((r) => !r.goneSince);
  const targets = new Map<string, Status["targets"][number]>();
  const copies = { one: 0, two: 0, threePlus: 0 };
  const notOffsite: string[] = [];
  let fewestOffsite = Infinity;
  for (const r of current) {
    const c = ((r as { copies?: Record<string, OffsiteCopy> }).copies ?? {}) as Record<string, OffsiteCopy>;
    const held = Object.entries(c).filter(([, copy]) => copy.sha256 === r.sha256);
    for (const [id, copy] of held) {
      const t = targets.get(id) ?? { id, files: 0, bytes: 0, encrypted: false };
      t.files++;
      t.bytes += r.size;
      if (copy.encryption) t.encrypted = true;
      targets.set(id, t);
    }
    if (r.state !== "final") continue;
    const n = 1 + held.length;
    fewestOffsite = Math.min(fewestOffsite, held.length);
    if (n === 1) copies.one++, notOffsite.push(r.path);
    else if (n === 2) copies.two++;
    else copies.threePlus++;
  }
  for (const state of await readJsonDir(path.join(archive.stateDir, "offsite"))) {
    const s = state as { id?: string; name?: string; kind?: string; lastConnectedAt?: string; lastCompleteAt?: string };
    if (!s.id) continue;
    const t = targets.get(s.id) ?? { id: s.id, files: 0, bytes: 0, encrypted: false };
    Object.assign(t, { name: s.name, kind: s.kind, lastConnectedAt: s.lastConnectedAt, lastCompleteAt: s.lastCompleteAt });
    targets.set(s.id, t);
  }
  const health = (await readJson(path.join(archive.stateDir, HEALTH_FILE))) as { lastSuccess?: Record<string, string>; runs?: Status["runs"] } | undefined;
  const verifyState = (await readJson(path.join(archive.stateDir, "verify.json"))) as { lastFullProofAt?: string } | undefined;
  const final = current.filter((r) => r.state === "final").length;
  const ok = final > 0 && copies.one === 0;
  return {
    archive: archive.identity.name,
    root: archive.root,
    files: current.length,
    bytes: current.reduce((s, r) => s + r.size, 0),
    live: current.filter((r) => r.state === "live").length,
    final,
    gone: records.length - current.length,
    targets: [...targets.values()],
    copies,
    notOffsite: notOffsite.slice(0, 20),
    verdict: {
      ok,
      text: final === 0 ? "no finished files yet" : ok ? `3-2-1 met: every finished file is on the server, in this archive and on at least ${fewestOffsite} offsite target(s)` : `${copies.one} finished file(s) have no offsite copy yet`,
    },
    lastSuccess: health?.lastSuccess ?? {},
    runs: health?.runs ?? {},
    verify: { lastFullProofAt: verifyState?.lastFullProofAt, bad: current.filter((r) => (r as { verifyResult?: string }).verifyResult && (r as { verifyResult?: string }).verifyResult !== "ok").map((r) => r.path) },
  };
}

export function printStatus(s: Status, write = (t: string) => process.stdout.write(t)): void {
  write(`archive ${s.archive} at ${s.root}\n`);
  write(`${s.files} files (${s.final} final, ${s.live} live), ${bytes(s.bytes)}${s.gone ? `, ${s.gone} gone from the server` : ""}\n\n`);
  table([["copy", "kind", "files", "bytes", "encrypted", "last complete"], ["archive", "local", s.files, bytes(s.bytes), "no", "-"], ...s.targets.map((t) => [t.name ?? t.id, t.kind ?? "?", t.files, bytes(t.bytes), t.encrypted ? "age" : "no", t.lastCompleteAt ?? "-"])], write);
  write(`\nfinished files by copies: 1: ${s.copies.one}  2: ${s.copies.two}  3+: ${s.copies.threePlus}\n`);
  write(`${s.verdict.ok ? "OK" : "NOT MET"}: ${s.verdict.text}\n`);
  if (s.notOffsite.length) write(`  e.g. ${s.notOffsite.slice(0, 5).join(", ")}\n`);
  if (s.verify.bad.length) write(`verify found problems with: ${s.verify.bad.slice(0, 10).join(", ")}\n`);
  write("\n");
  table([["last success", "at"], ...["pull", "verify", "offsite", "drill", "disk"].map((k) => [k, s.lastSuccess[k] ?? "never"]), ["full proof", s.verify.lastFullProofAt ?? "never"]], write);
}

export async function readStats(archive: Archive): Promise<VolumeStats> {
  const records = (await archive.readCatalog()).all();
  const { entries, damaged } = await readHistory(archive.stateDir);
  const fsStat = await fsp.statfs(archive.root);
  return computeVolume(records, entries, { now: new Date(), freeBytes: fsStat.bavail * fsStat.bsize, damagedHistory: damaged });
}

export function printStats(v: VolumeStats, write = (t: string) => process.stdout.write(t)): void {
  write(`${v.files} files, ${bytes(v.bytes)} (rates from ${v.rateSource === "pulled" ? "pull history" : v.rateSource === "file-date" ? "file dates" : "nothing yet"})\n\n`);
  table([["average", "per day", "files/day", "days until full"], ["7 days", bytes(v.bytesPerDay7), v.filesPerDay7?.toFixed(1), v.daysUntilFull7], ["30 days", bytes(v.bytesPerDay30), v.filesPerDay30?.toFixed(1), v.daysUntilFull30]], write);
  write("\n");
  table([["day", "files", "bytes"], ...v.byPullDate.days.slice(-14).map((d) => [d.day, d.files, bytes(d.bytes)])], write);
  write("\n");
  table([["week", "files", "bytes"], ...v.byPullDate.weeks.slice(-8).map((d) => [d.period, d.files, bytes(d.bytes)])], write);
  write("\n");
  table([["month", "files", "bytes"], ...v.byPullDate.months.slice(-12).map((d) => [d.period, d.files, bytes(d.bytes)])], write);
  write("\n");
  table([["projection", "until", "bytes", "free after"], ...v.projections.map((p) => [`${p.months} month(s)`, p.until, bytes(p.bytes), bytes(p.freeAfter)])], write);
}

/** The backup plan as Markdown, generated from what the archive recorded (so it is never stale). */
export function printPlan(s: Status, write = (t: string) => process.stdout.write(t)): void {
  const runs = Object.values(s.runs);
  const kinds = (k: string) => runs.filter((r) => r.kind === k);
  write(`# Backup plan: ${s.archive}\n\n_Generated ${new Date().toISOString()} by \`tick-backup plan\` from the archive's own records._\n\n`);
  write(`## Copies\n\n1. **The server** (the source; pulled by sftp-pull, last success ${s.lastSuccess.pull ?? "never"}).\n`);
  write(`2. **This archive**: \`${s.root}\`, ${s.files} files, ${bytes(s.bytes)}.\n`);
  s.targets.forEach((t, i) => write(`${i + 3}. **Offsite ${t.name ?? t.id}** (${t.kind ?? "unknown kind"}${t.encrypted ? ", age-encrypted" : ""}): ${t.files} files, last complete ${t.lastCompleteAt ?? "never"}.\n`));
  write(`\nVerdict: ${s.verdict.ok ? "3-2-1 met" : "3-2-1 NOT met"}: ${s.verdict.text}.\n\n`);
  write(`## Checks that ran\n\n| kind | runs recorded | last run | ok |\n|---|---|---|---|\n`);
  for (const k of ["pull", "verify", "offsite", "disk", "alert"]) {
    const list = kinds(k);
    const last = list.sort((a, b) => (a.at < b.at ? 1 : -1))[0];
    write(`| ${k} | ${list.length} | ${last?.at ?? "never"} | ${last ? (last.ok ? "yes" : `no: ${last.message ?? ""}`) : "-"} |\n`);
  }
  write(`\nLast restore drill: ${s.lastSuccess.drill ?? "never"}. Whole archive last proven: ${s.verify.lastFullProofAt ?? "never"}.\n`);
  write(`\n## Restore\n\nSee docs/restore.md: \`tick-backup restore --from <archive | target> --to <dir>\`.\n`);
}

/** A state file's contents; none yet is `undefined`, an unreadable one an error (a status that says "never" for it would be wrong). */
async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await fsp.readFile(file, "utf8"));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new BackupError("STATE_UNREADABLE", `${file} cannot be read: ${messageOf(err)}`);
  }
}

async function readJsonDir(dir: string): Promise<unknown[]> {
  if (!fs.existsSync(dir)) return [];
  const out: unknown[] = [];
  for (const name of await fsp.readdir(dir)) if (name.endsWith(".json")) out.push(await readJson(path.join(dir, name)));
  return out.filter(Boolean);
}
