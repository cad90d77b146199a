// One alert node's work: turn observations (health snapshots, messages, the clock) into incident
// events, keep the incidents in the archive's state area, and deliver each event to every channel.
// One change at a time (a queue), so that a burst of outcomes cannot announce an incident twice.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import type { Archive } from "../archive/archive";
import { writeFileAtomic } from "../archive/fsutil";
import { messageOf } from "../errors";
import type { HealthSnapshot } from "../health/snapshot";
import { deliver, ping, type Channel, type Delivery } from "./channels";
import { healthChecks, meaningOf, type InputMeaning } from "./checks";
import { emptyIncidentState, IncidentBook, type IncidentEvent, type IncidentState, type PolicyOptions } from "./incidents";
import { noticeOf, redact, type Notice } from "./messages";

export interface AlerterOptions extends PolicyOptions {
  archive: string;
  archivePath?: string;
  /** the file in the archive's state area that keeps the incidents across restarts */
  stateFile: string;
  open: () => Promise<Archive>;
  channels: Channel[];
  /** healthchecks.io-style ping URL (optional) */
  pingUrl?: string;
  /** hours without a successful pull that make an incident (0: never) */
  staleHours: number;
  /** every secret the node holds: removed from any text that leaves it */
  secrets: string[];
  /** a name a person recognises for a node id */
  names?: (id: string) => string | undefined;
  time?: (iso: string) => string;
  now?: () => Date;
  /** after each delivered event (for msg output and status) */
  onEvent?: (event: DeliveredEvent) => void;
  /** a failure that is not a channel's (the state could not be saved); channel failures are in the events */
  onError?: (message: string) => void;
}

export interface DeliveredEvent extends IncidentEvent {
  archive: string;
  title: string;
  text: string;
  deliveries: Delivery[];
}

export class Alerter {
  private book: IncidentBook;
  private loaded = false;
  private queue: Promise<unknown> = Promise.resolve();
  /** when a notice last reached at least one channel */
  lastPushAt?: string;
  /** the channels whose last attempt failed, with why */
  readonly failing = new Map<string, string>();
  /** notices a channel could not take, tried again at the ticks: after 1, 2, 4, 8, 16 and 32 minutes */
  private retries: Array<{ key: string; notice: Notice; channels: Channel[]; attempt: number; nextAt: number }> = [];

  constructor(private readonly options: AlerterOptions) {
    this.book = new IncidentBook(emptyIncidentState(), options);
  }

  /** the nodes whose runs the archive's health judges (from the last snapshot) */
  private reporting = new Set<string>();

  get open(): number {
    return this.book.open.length;
  }

  /** The archive's health changed (or the clock moved on): open, keep or resolve its checks. */
  health(snapshot: HealthSnapshot): Promise<DeliveredEvent[]> {
    return this.enqueue(() => {
      this.reporting = new Set(Object.keys(snapshot.runs));
      const now = this.now();
      const failing = healthChecks(snapshot, { now, staleHours: this.options.staleHours, names: this.options.names });
      const keys = new Set(failing.map((c) => c.key));
      const events = failing.flatMap((c) => this.book.fail(c, now));
      for (const incident of this.book.open) {
        if (keys.has(incident.key)) continue;
        const run = incident.source ? snapshot.runs[incident.source] : undefined;
        // A node's run that succeeded after the failure resolves it, whether it came from health or a catch node.
        const good = incident.key.startsWith("health:") || (incident.origin === "health" && !run) || (run !== undefined && run.ok && run.at >= incident.lastFailAt);
        if (good) events.push(...this.book.succeed(incident.key, now));
      }
      return events;
    });
  }

  /** A message sent to the node. Returns what it meant (pings are sent here too). */
  input(msg: Record<string, unknown>): Promise<{ meaning: InputMeaning; events: DeliveredEvent[] }> {
    const meaning = meaningOf(msg);
    if (meaning.kind === "ping") {
      return this.pingNow(meaning.ping).then(() => ({ meaning, events: [] }));
    }
    return this.enqueue(() => {
      const now = this.now();
      // A node of this archive tells its outcome to the health, which judges it (a failed run, a
      // mismatch, a critical disk): its catch message is the same news and opens nothing more.
      if (meaning.kind === "fail" && meaning.check.source && this.reporting.has(meaning.check.source)) return [];
      if (meaning.kind === "fail") return this.book.fail(meaning.check, now);
      if (meaning.kind === "ok") {
        const keys = this.book.open.filter((i) => i.key === `topic:${meaning.name}` || i.source === meaning.name || i.sourceName === meaning.name).map((i) => i.key);
        return keys.flatMap((k) => this.book.succeed(k, now));
      }
      return [];
    }).then((events) => ({ meaning, events }));
  }

  /** A pull ended: tells the ping URL (an outside service notices when these stop). */
  pulled(ok: boolean, text: string): Promise<void> {
    return this.pingNow(ok ? "success" : "fail", text);
  }

  /** Reminders, settled recoveries and the retries of failed deliveries; call every minute or so. */
  async tick(): Promise<DeliveredEvent[]> {
    const events = await this.enqueue(() => this.book.tick(this.now()));
    const retried = this.queue.then(() => this.retry());
    this.queue = retried.catch((err) => this.options.onError?.(redact(messageOf(err), this.options.secrets)));
    await this.queue;
    return events;
  }

  /** Sends again what a channel could not take; gives up after the sixth attempt (the reminder comes anyway). */
  private async retry(): Promise<void> {
    const now = this.now().getTime();
    const due = this.retries.filter((r) => r.nextAt <= now);
    this.retries = this.retries.filter((r) => r.nextAt > now);
    for (const r of due) {
      const deliveries = this.note(await deliver(r.notice, r.channels));
      const failed = r.channels.filter((_, i) => !deliveries[i].ok);
      if (failed.length > 0 && r.attempt < 6) this.retries.push({ ...r, channels: failed, attempt: r.attempt + 1, nextAt: now + 2 ** r.attempt * 60_000 });
    }
  }

  /** Keeps the status's picture of each channel and the last push; returns the deliveries without secrets. */
  private note(deliveries: Delivery[]): Delivery[] {
    const clean = deliveries.map((d) => (d.error ? { ...d, error: redact(d.error, this.options.secrets) } : d));
    for (const d of clean) {
      if (d.ok) this.failing.delete(d.channel);
      else this.failing.set(d.channel, d.error ?? "failed");
    }
    if (clean.some((d) => d.ok)) this.lastPushAt = this.now().toISOString();
    return clean;
  }

  /** Resolves when every queued change has been handled (for close and tests). */
  settled(): Promise<void> {
    return this.queue.then(() => undefined);
  }

  private async pingNow(kind: "start" | "success" | "fail", text = ""): Promise<void> {
    if (!this.options.pingUrl) return;
    try {
      await ping(this.options.pingUrl, kind, redact(text, this.options.secrets));
      this.failing.delete("ping");
    } catch (err) {
      this.failing.set("ping", redact(messageOf(err), this.options.secrets));
    }
  }

  private enqueue(change: () => IncidentEvent[]): Promise<DeliveredEvent[]> {
    const run = async (): Promise<DeliveredEvent[]> => {
      await this.load();
      const events = change();
      if (events.length === 0) return [];
      // Saved before sending: a restart in the middle never sends a notice twice.
      await this.save();
      const delivered: DeliveredEvent[] = [];
      for (const e of events) delivered.push(await this.send(e));
      await this.save(); // the time of the last push
      return delivered;
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch((err) => this.options.onError?.(redact(messageOf(err), this.options.secrets)));
    return next.catch(() => []);
  }

  private async send(event: IncidentEvent): Promise<DeliveredEvent> {
    const o = this.options;
    const notice: Notice = noticeOf(event, { archive: o.archive, archivePath: o.archivePath, time: o.time }, o.secrets);
    const deliveries = this.note(await deliver(notice, o.channels));
    // A newer notice of the same incident replaces an older one still waiting for a retry.
    this.retries = this.retries.filter((r) => r.key !== event.key);
    const failed = o.channels.filter((_, i) => !deliveries[i].ok);
    if (failed.length > 0) this.retries.push({ key: event.key, notice, channels: failed, attempt: 1, nextAt: this.now().getTime() + 60_000 });
    const out: DeliveredEvent = { ...notice.event, archive: o.archive, title: notice.title, text: notice.text, deliveries };
    o.onEvent?.(out);
    return out;
  }

  private async load(): Promise<void> {
    if (this.loaded) return;
    const archive = await this.archive();
    if (!archive) return; // the disk is away: incidents live in memory until it is back
    this.loaded = true;
    try {
      const saved = JSON.parse(await fs.readFile(path.join(archive.stateDir, this.options.stateFile), "utf8")) as IncidentState & { lastPushAt?: string };
      if (saved.format !== 1 || typeof saved.incidents !== "object") throw new Error("not an incident file of this version");
      // What happened while the disk was away stays on top of what was saved.
      this.book = new IncidentBook({ format: 1, incidents: { ...saved.incidents, ...this.book.state.incidents } }, this.options);
      this.lastPushAt ??= saved.lastPushAt;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.options.onError?.(`incident file unreadable, starting afresh: ${messageOf(err)}`);
    }
  }

  /** A failure to save is reported, and the notices still go out: better twice after a restart than never. */
  private async save(): Promise<void> {
    const archive = await this.archive();
    if (!archive) return;
    const data = { ...this.book.state, lastPushAt: this.lastPushAt };
    try {
      await writeFileAtomic(path.join(archive.stateDir, this.options.stateFile), JSON.stringify(data, null, 1) + "\n");
    } catch (err) {
      this.options.onError?.(`incidents could not be saved (a restart may repeat a notice): ${messageOf(err)}`);
    }
  }

  private async archive(): Promise<Archive | undefined> {
    try {
      return await this.options.open();
    } catch {
      return undefined; // a missing disk is itself an incident (through the runs that need it)
    }
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}
