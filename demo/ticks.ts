// demo/ticks.ts — synthetic market ticks, written the way a recorder on a trading server writes them:
// one CSV per symbol per UTC day (`<SYMBOL>/<YYYY-MM-DD>.csv`), past days finished, today's growing.
// Lines: `2026-11-26T10:00:00.123456Z,EURUSD,1.08123,1.08125,1000000` (time, symbol, bid, ask, volume).
import * as fs from "node:fs";
import * as path from "node:path";

export interface HistoryOptions { symbols: string[]; days: number; linesPerDay: number; now?: Date }
export interface TickerOptions {
  symbols: string[];
  intervalMs: number;
  linesPerTick: number;
  onError?: (err: Error) => void; // default: console.error; the ticker keeps going
}

interface Profile { price: number; digits: number; spread: number; volumes: number[] }
const FX_VOLUMES = [100_000, 200_000, 500_000, 1_000_000, 2_000_000, 5_000_000];
const PROFILES: Record<string, Profile> = {
  EURUSD: { price: 1.08, digits: 5, spread: 0.00002, volumes: FX_VOLUMES },
  GBPUSD: { price: 1.27, digits: 5, spread: 0.00003, volumes: FX_VOLUMES },
  USDJPY: { price: 151.2, digits: 3, spread: 0.003, volumes: FX_VOLUMES },
  XAUUSD: { price: 2650, digits: 2, spread: 0.25, volumes: [1, 2, 5, 10, 20, 50, 100] },
};
const DAY_MS = 86_400_000;
const STEP_SIGMA = 0.00004; // relative move per tick: a quiet but visibly moving market

function profileOf(symbol: string): Profile {
  return PROFILES[symbol] ?? { price: 50 + (hash(symbol) % 1000) / 10, digits: 4, spread: 0.01, volumes: FX_VOLUMES };
}

// Writes the finished files of the `days` UTC days before `now`. A file that exists is left alone:
// a finished file never changes, and a backup that saw it change would rightly call it tampering.
// Each day is seeded by symbol and date, so the same call always yields the same bytes.
export function writeHistory(dir: string, opts: HistoryOptions): string[] {
  const today = Math.floor((opts.now ?? new Date()).getTime() / DAY_MS) * DAY_MS;
  const written: string[] = [];
  for (const symbol of opts.symbols) {
    fs.mkdirSync(path.join(dir, symbol), { recursive: true });
    for (let d = opts.days; d >= 1; d--) {
      const dayStart = today - d * DAY_MS;
      const file = path.join(dir, symbol, `${isoDate(dayStart)}.csv`);
      if (fs.existsSync(file)) continue;
      const random = mulberry32(hash(`${symbol}|${isoDate(dayStart)}`));
      const walk = new Walk(symbol, profileOf(symbol).price * (1 + (random() - 0.5) * 0.02), random);
      const stepUs = (DAY_MS * 1000) / opts.linesPerDay;
      let lines = "";
      let lastUs = 0;
      for (let i = 0; i < opts.linesPerDay; i++) {
        lastUs = Math.floor((i + random()) * stepUs);
        lines += walk.line(dayStart * 1000 + lastUs);
      }
      // temp name + rename: the SFTP side never lists a half-written "finished" file
      const tmp = path.join(dir, symbol, `.${path.basename(file)}.tmp`);
      fs.writeFileSync(tmp, lines);
      const mtime = new Date(dayStart + lastUs / 1000);
      fs.utimesSync(tmp, mtime, mtime); // as if the recorder closed it at its last tick
      fs.renameSync(tmp, file);
      written.push(file);
    }
  }
  return written;
}

// Appends `linesPerTick` lines per symbol every interval to the file of the current UTC day, which
// appears with the first tick after midnight. Ticks right away, so today's files exist from the start.
export function startTicker(dir: string, opts: TickerOptions): { stop(): void } {
  const walks = new Map(opts.symbols.map((s) => [s, new Walk(s, lastBid(path.join(dir, s)) ?? profileOf(s).price, Math.random)]));
  let lastUs = Date.now() * 1000 - opts.intervalMs * 1000;
  const tick = () => {
    try {
      const nowUs = Date.now() * 1000;
      const span = Math.max(1, nowUs - lastUs);
      const from = lastUs;
      lastUs = nowUs;
      for (const [symbol, walk] of walks) {
        const times = Array.from({ length: opts.linesPerTick }, () => from + 1 + Math.floor(Math.random() * span)).sort((a, b) => a - b);
        const byFile = new Map<string, string>();
        for (const us of times) {
          const file = path.join(dir, symbol, `${isoDate(us / 1000)}.csv`);
          byFile.set(file, (byFile.get(file) ?? "") + walk.line(us));
        }
        fs.mkdirSync(path.join(dir, symbol), { recursive: true });
        // one write per file and tick, so a reader never sees half a line from us
        for (const [file, lines] of byFile) fs.appendFileSync(file, lines);
      }
    } catch (err) {
      (opts.onError ?? ((e: Error) => console.error("ticker:", e.message)))(err as Error);
    }
  };
  tick();
  const timer = setInterval(tick, opts.intervalMs);
  return { stop: () => clearInterval(timer) };
}

class Walk {
  private readonly profile: Profile;
  constructor(private readonly symbol: string, private mid: number, private readonly random: () => number) {
    this.profile = profileOf(symbol);
  }

  line(timeUs: number): string {
    const { digits, spread, volumes } = this.profile;
    this.mid *= Math.exp(STEP_SIGMA * gaussian(this.random));
    const bid = this.mid - spread / 2;
    const volume = volumes[Math.floor(this.random() * volumes.length)];
    return `${isoMicros(timeUs)},${this.symbol},${bid.toFixed(digits)},${(bid + spread).toFixed(digits)},${volume}\n`;
  }
}

// The bid of the last line of the newest file, so that a restarted ticker continues the chart.
function lastBid(symbolDir: string): number | undefined {
  try {
    const newest = fs.readdirSync(symbolDir).filter((f) => /^\d{4}-\d\d-\d\d\.csv$/.test(f)).sort().pop();
    if (!newest) return undefined;
    const fd = fs.openSync(path.join(symbolDir, newest), "r");
    const tail = Buffer.alloc(4096); // today's file can be large; its last line is in the tail
    let n: number;
    try {
      n = fs.readSync(fd, tail, 0, tail.length, Math.max(0, fs.fstatSync(fd).size - tail.length));
    } finally {
      fs.closeSync(fd);
    }
    const text = tail.subarray(0, n).toString("utf8").trimEnd();
    const bid = Number(text.slice(text.lastIndexOf("\n") + 1).split(",")[2]);
    return Number.isFinite(bid) && bid > 0 ? bid : undefined;
  } catch {
    return undefined; // no history yet: start from the profile's price
  }
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function isoMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  return new Date(ms).toISOString().replace("Z", String(Math.floor(us - ms * 1000)).padStart(3, "0") + "Z");
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function hash(text: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
