import type { FileRecord } from "../archive/catalog";
import type { RunHistoryEntry } from "../archive/history";

/**
 * How much tick data arrives, and how long the disk lasts: pure functions of the catalog, the run
 * history and an injected "now", so that every figure can be worked out by hand.
 *
 * Days are calendar days (local time unless `utc`). "By pull date" is when the bytes reached the
 * archive: from the run history where it exists, and before its first line from each file's
 * firstPulledAt (the file's whole size counts on that day, as the catalog keeps no growth).
 * "By file date" is the remote modification time: how much the market produced per day, whatever
 * the pull schedule.
 */
export interface DayVolume {
  day: string;
  files: number;
  bytes: number;
}

export interface PeriodVolume {
  period: string;
  files: number;
  bytes: number;
}

export interface VolumeTable {
  /** the most recent days with data, oldest first */
  days: DayVolume[];
  /** ISO weeks ("2026-W48") */
  weeks: PeriodVolume[];
  /** calendar months ("2026-11") */
  months: PeriodVolume[];
  busiestDay: DayVolume | null;
}

export interface Projection {
  months: number;
  /** the day the projection reaches */
  until: string;
  days: number;
  bytes: number;
  files: number;
  /** free space left by then (negative: the disk is full before) */
  freeAfter?: number;
}

export interface VolumeStats {
  files: number;
  bytes: number;
  bytesPerDay7: number | null;
  bytesPerDay30: number | null;
  filesPerDay7: number | null;
  filesPerDay30: number | null;
  /** where the rates come from: pulled bytes, or file dates while the archive is younger than a full day of pulls */
  rateSource: "pulled" | "file-date" | "none";
  /** how many days the 7- and 30-day averages are over (fewer while the archive is young) */
  rateDays7: number;
  rateDays30: number;
  daysUntilFull7: number | null;
  daysUntilFull30: number | null;
  /** the busiest day by pull date */
  busiestDay: DayVolume | null;
  projections: Projection[];
  byPullDate: VolumeTable;
  byFileDate: VolumeTable;
  history: { runs: number; since: string | null; damaged: number };
}

export interface VolumeOptions {
  now: Date;
  /** free bytes on the archive's disk, for days until full and the projections */
  freeBytes?: number;
  /** count days in UTC instead of the local time zone */
  utc?: boolean;
  /** damaged history lines, passed through to the report */
  damagedHistory?: number;
}

const DAY_MS = 86_400_000;
const TABLE = { days: 62, weeks: 27, months: 25 };

export function computeVolume(records: FileRecord[], history: RunHistoryEntry[], options: VolumeOptions): VolumeStats {
  const dayOf = dayNamer(options.utc ?? false);
  const today = dayOf(options.now.getTime());

  const pulled = new Map<string, DayVolume>();
  const produced = new Map<string, DayVolume>();
  const cutover = history.reduce((min, h) => Math.min(min, Date.parse(h.at)), Infinity);
  let files = 0;
  let bytes = 0;
  for (const r of records) {
    files++;
    bytes += r.size + (r.versions ?? []).reduce((sum, v) => sum + v.size, 0);
    add(produced, dayOf(r.mtime * 1000), 1, r.size);
    const first = Date.parse(r.firstPulledAt);
    if (Number.isFinite(first) && first < cutover) add(pulled, dayOf(first), 1, r.size);
  }
  for (const h of history) add(pulled, dayOf(Date.parse(h.at)), h.newFiles ?? 0, h.bytes);

  // The first pull day is a partial day and usually the backfill of everything the server had: not growth.
  const firstPull = [...pulled.keys()].sort()[0];
  let rate7 = windowRate(pulled, today, 7, firstPull ? addDays(firstPull, 1) : today);
  let rate30 = windowRate(pulled, today, 30, firstPull ? addDays(firstPull, 1) : today);
  let rateSource: VolumeStats["rateSource"] = "pulled";
  if (rate7.days === 0) {
    const firstFile = [...produced.keys()].sort()[0];
    rate7 = windowRate(produced, today, 7, firstFile ?? today);
    rate30 = windowRate(produced, today, 30, firstFile ?? today);
    rateSource = rate7.days === 0 ? "none" : "file-date";
  }

  const untilFull = (rate: number | null) =>
    options.freeBytes === undefined || rate === null || rate <= 0 ? null : round1(Math.max(0, options.freeBytes) / rate);
  const projections = [1, 6, 12].map((months): Projection => {
    const until = addMonths(today, months);
    const days = daysBetween(today, until);
    const p: Projection = { months, until, days, bytes: Math.round((rate30.bytes ?? 0) * days), files: Math.round((rate30.files ?? 0) * days) };
    if (options.freeBytes !== undefined) p.freeAfter = options.freeBytes - p.bytes;
    return p;
  });

  const byPullDate = table(pulled);
  return {
    files,
    bytes,
    bytesPerDay7: rate7.bytes,
    bytesPerDay30: rate30.bytes,
    filesPerDay7: rate7.files,
    filesPerDay30: rate30.files,
    rateSource,
    rateDays7: rate7.days,
    rateDays30: rate30.days,
    daysUntilFull7: untilFull(rate7.bytes),
    daysUntilFull30: untilFull(rate30.bytes),
    busiestDay: byPullDate.busiestDay,
    projections,
    byPullDate,
    byFileDate: table(produced),
    history: {
      runs: history.length,
      since: Number.isFinite(cutover) ? new Date(cutover).toISOString() : null,
      damaged: options.damagedHistory ?? 0,
    },
  };
}

/**
 * The average over the `n` complete days before `today`, counting only days from `from` on (an
 * archive younger than the window averages over the days it has). Days with nothing count as zero.
 */
function windowRate(byDay: Map<string, DayVolume>, today: string, n: number, from: string): { bytes: number | null; files: number | null; days: number } {
  let days = 0;
  let bytes = 0;
  let files = 0;
  for (let i = 1; i <= n; i++) {
    const day = addDays(today, -i);
    if (day < from) break;
    days++;
    bytes += byDay.get(day)?.bytes ?? 0;
    files += byDay.get(day)?.files ?? 0;
  }
  return days === 0 ? { bytes: null, files: null, days } : { bytes: bytes / days, files: files / days, days };
}

function table(byDay: Map<string, DayVolume>): VolumeTable {
  const days = [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : 1));
  let busiestDay: DayVolume | null = null;
  for (const d of days) if (!busiestDay || d.bytes > busiestDay.bytes) busiestDay = d;
  const group = (key: (day: string) => string, keep: number): PeriodVolume[] => {
    const out = new Map<string, PeriodVolume>();
    for (const d of days) {
      const period = key(d.day);
      const p = out.get(period) ?? { period, files: 0, bytes: 0 };
      p.files += d.files;
      p.bytes += d.bytes;
      out.set(period, p);
    }
    return [...out.values()].slice(-keep);
  };
  return {
    days: days.slice(-TABLE.days),
    weeks: group(isoWeek, TABLE.weeks),
    months: group((d) => d.slice(0, 7), TABLE.months),
    busiestDay: busiestDay && { ...busiestDay },
  };
}

function add(byDay: Map<string, DayVolume>, day: string, files: number, bytes: number): void {
  const d = byDay.get(day) ?? { day, files: 0, bytes: 0 };
  d.files += files;
  d.bytes += bytes;
  byDay.set(day, d);
}

/**
 * A fast "YYYY-MM-DD" of many instants: the local offset is looked up once per hour (checked at
 * both ends of the hour, so a daylight-saving change inside it is handled exactly), and each day's
 * name is made once.
 */
export function dayNamer(utc: boolean): (ms: number) => string {
  const HOUR = 3_600_000;
  const offsetAt = (ms: number) => (utc ? 0 : -new Date(ms).getTimezoneOffset() * 60_000);
  const offsets = new Map<number, number | null>();
  const names = new Map<number, string>();
  return (ms) => {
    const hour = Math.floor(ms / HOUR);
    let offset = offsets.get(hour);
    if (offset === undefined) {
      const start = offsetAt(hour * HOUR);
      offsets.set(hour, (offset = start === offsetAt(hour * HOUR + HOUR - 1) ? start : null));
    }
    const day = Math.floor((ms + (offset ?? offsetAt(ms))) / DAY_MS);
    let name = names.get(day);
    if (name === undefined) names.set(day, (name = new Date(day * DAY_MS).toISOString().slice(0, 10)));
    return name;
  };
}

/** "YYYY-MM-DD" of an instant, in local time or UTC. */
export function dayKey(ms: number, utc: boolean): string {
  const d = new Date(ms);
  if (utc) return d.toISOString().slice(0, 10);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/** Calendar arithmetic on day keys (done in UTC, where every day has 24 hours). */
function utcOf(day: string): number {
  return Date.UTC(Number(day.slice(0, 4)), Number(day.slice(5, 7)) - 1, Number(day.slice(8, 10)));
}

export function addDays(day: string, n: number): string {
  return new Date(utcOf(day) + n * DAY_MS).toISOString().slice(0, 10);
}

function daysBetween(from: string, to: string): number {
  return Math.round((utcOf(to) - utcOf(from)) / DAY_MS);
}

/** The same day `n` months later, or the month's last day when it is shorter (31 Jan + 1 → 28/29 Feb). */
export function addMonths(day: string, n: number): string {
  const y = Number(day.slice(0, 4));
  const m = Number(day.slice(5, 7)) - 1 + n;
  const last = new Date(Date.UTC(y, m + 1, 0)).getUTCDate();
  return new Date(Date.UTC(y, m, Math.min(Number(day.slice(8, 10)), last))).toISOString().slice(0, 10);
}

/** ISO 8601 week ("2026-W01"): weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(day: string): string {
  const t = utcOf(day);
  const weekday = (new Date(t).getUTCDay() + 6) % 7; // Monday 0
  const thursday = new Date(t + (3 - weekday) * DAY_MS);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * DAY_MS));
  return `${year}-W${pad(week)}`;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}
