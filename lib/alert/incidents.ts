// The incident policy: a failing check opens an incident that is announced once, reminded every
// `remindHours` while it stays open, and resolved with a recovery note once the check has stayed good
// for `settleMinutes` (a check that flaps inside that window sends nothing more). Plain data in, plain
// events out; the clock is passed in, so that the policy can be tested with fake time and saved as JSON.

/** One failing observation of a check. */
export interface Check {
  /** what the check is, stable across runs: `node:<id>`, `health:DISK`, `topic:<topic>` */
  key: string;
  code: string;
  message: string;
  /** the node it concerns (id and a name a person recognises), when there is one */
  source?: string;
  sourceName?: string;
  /** the underlying failure's code when `code` is generic (a PULL_FAILED run that failed with HOST_KEY_CHANGED) */
  cause?: string;
  /** where the check came from: the archive's health, or a message sent to the node */
  origin: "health" | "input";
}

export interface Incident extends Check {
  openedAt: string;
  lastFailAt: string;
  lastNoticeAt: string;
  reminders: number;
  /** how often the check came good and failed again before it settled */
  flaps: number;
  /** set while the check is good but has not been good for long enough to call the incident resolved */
  okSince?: string;
  /** set once the incident has become severe after it opened (told once, so that a level that flaps sends no storm) */
  escalated?: boolean;
}

/** `test`: the editor's "Send test alert", never part of an incident */
export type IncidentEventKind = "opened" | "escalated" | "reminder" | "resolved" | "test";

/** What is sent: the check as it stands, and where the incident is in its life. */
export interface IncidentEvent extends Omit<Check, "origin"> {
  event: IncidentEventKind;
  openedAt: string;
  at: string;
  /** for `resolved`: since when the check is good */
  resolvedAt?: string;
  reminders: number;
  flaps: number;
}

export interface PolicyOptions {
  /** hours between reminders while an incident stays open (0: never remind) */
  remindHours: number;
  /** minutes a check must stay good before its incident is resolved (damps flapping) */
  settleMinutes: number;
}

export interface IncidentState {
  format: 1;
  incidents: Record<string, Incident>;
}

/** What makes an open incident news again: a disk now critical, a host key that changed, the archive disk gone or swapped. */
const SEVERE = new Set(["DISK_CRITICAL", "HOST_KEY_CHANGED", "ARCHIVE_NOT_FOUND", "ARCHIVE_FS_CHANGED", "ARCHIVE_MISSING", "ARCHIVE_REPLACED"]);

function severe(c: { code: string; cause?: string }): boolean {
  return SEVERE.has(c.code) || (c.cause !== undefined && SEVERE.has(c.cause));
}

export const DEFAULT_POLICY: PolicyOptions = { remindHours: 24, settleMinutes: 5 };

export function emptyIncidentState(): IncidentState {
  return { format: 1, incidents: {} };
}

/** The open incidents and the rules that move them. Mutates its state; the caller saves it. */
export class IncidentBook {
  constructor(
    readonly state: IncidentState,
    private readonly options: PolicyOptions,
  ) {}

  get open(): Incident[] {
    return Object.values(this.state.incidents);
  }

  has(key: string): boolean {
    return key in this.state.incidents;
  }

  get(key: string): Incident | undefined {
    return this.state.incidents[key];
  }

  /**
   * A check failed: opens an incident (one `opened` event), or keeps the open one up to date (no
   * event; one `escalated` event the first time it turns severe, such as a low disk becoming critical).
   */
  fail(check: Check, now: Date): IncidentEvent[] {
    const at = now.toISOString();
    const known = this.state.incidents[check.key];
    if (!known) {
      const incident: Incident = { ...check, openedAt: at, lastFailAt: at, lastNoticeAt: at, reminders: 0, flaps: 0 };
      this.state.incidents[check.key] = incident;
      return [eventOf("opened", incident, at)];
    }
    if (known.okSince) {
      known.flaps++;
      delete known.okSince;
    }
    const worse = !known.escalated && !severe(known) && severe(check);
    // The newest words for the same check (a disk going from low to critical, a different error).
    Object.assign(known, { code: check.code, message: check.message, cause: check.cause, sourceName: check.sourceName ?? known.sourceName, lastFailAt: at });
    if (!worse) return [];
    known.escalated = true;
    known.lastNoticeAt = at;
    return [eventOf("escalated", known, at)];
  }

  /** A check is good again: its incident resolves once that has lasted settleMinutes (see tick). */
  succeed(key: string, now: Date): IncidentEvent[] {
    const known = this.state.incidents[key];
    if (!known) return [];
    known.okSince ??= now.toISOString();
    return this.settle(known, now);
  }

  /** Time passes: reminders fall due, settled checks resolve. */
  tick(now: Date): IncidentEvent[] {
    const events: IncidentEvent[] = [];
    for (const incident of this.open) {
      const settled = this.settle(incident, now);
      if (settled.length > 0) {
        events.push(...settled);
        continue;
      }
      const remindMs = this.options.remindHours * 3600_000;
      if (remindMs > 0 && !incident.okSince && now.getTime() - Date.parse(incident.lastNoticeAt) >= remindMs) {
        incident.reminders++;
        incident.lastNoticeAt = now.toISOString();
        events.push(eventOf("reminder", incident, incident.lastNoticeAt));
      }
    }
    return events;
  }

  private settle(incident: Incident, now: Date): IncidentEvent[] {
    if (!incident.okSince) return [];
    if (now.getTime() - Date.parse(incident.okSince) < this.options.settleMinutes * 60_000) return [];
    delete this.state.incidents[incident.key];
    return [{ ...eventOf("resolved", incident, now.toISOString()), resolvedAt: incident.okSince }];
  }
}

function eventOf(event: IncidentEventKind, i: Incident, at: string): IncidentEvent {
  const e: IncidentEvent = { event, key: i.key, code: i.code, message: i.message, openedAt: i.openedAt, at, reminders: i.reminders, flaps: i.flaps };
  if (i.source !== undefined) e.source = i.source;
  if (i.sourceName !== undefined) e.sourceName = i.sourceName;
  if (i.cause !== undefined) e.cause = i.cause;
  return e;
}
