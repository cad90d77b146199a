// What a person reads: what failed, where, since when, and what to do. No secret ever: every text
// passes through `redact`, which removes the channels' own secrets and credentials inside URLs.
import type { IncidentEvent } from "./incidents";

export interface Notice {
  title: string;
  text: string;
  /** opened, escalated: high; reminder: default; resolved: low */
  priority: "high" | "default" | "low";
  event: IncidentEvent;
}

export interface NoticeContext {
  archive: string;
  /** where the archive lives, shown so that a person knows which disk is meant */
  archivePath?: string;
  /** formats a time for people (the node uses the host's local time) */
  time?: (iso: string) => string;
}

const ADVICE: Record<string, string> = {
  HOST_KEY_CHANGED:
    "Pulls are stopped. Only if you changed or reinstalled the server: confirm the new fingerprint in the sftp-server node. If you did not, do not confirm it: someone may be between you and your server.",
  PULL_STALE: "Check that the inject node that starts sftp-pull is enabled and the flow is deployed, that Node-RED runs, and that the server is reachable.",
  PULL_FAILED: "Look at the sftp-pull node's status and the Node-RED log. Nothing is lost: the next run resumes where this one stopped.",
  AUTH_FAILED: "The server refused the login: check the user name and key in the sftp-server node, and the account on the server.",
  CONNECT_FAILED: "The server could not be reached: check the server, its address and port, and the network.",
  ARCHIVE_MISSING: "The archive folder is missing: is the backup disk mounted? Nothing is written until it is back.",
  ARCHIVE_NOT_FOUND: "The archive folder holds no archive: is the backup disk mounted? Nothing is written until it is back.",
  ARCHIVE_REPLACED:
    "The archive folder holds another archive (another backup disk is mounted there?). Mount this archive's disk again; nothing is written to the other archive.",
  ARCHIVE_FS_CHANGED: "The archive folder is on another disk than before (an unplugged disk's empty mount point?). Mount the backup disk again.",
  DISK_LOW: "Free space on the archive disk, or move the archive to a larger disk before it fills.",
  DISK_CRITICAL: "The archive disk is almost full: free space now or move the archive to a larger disk, or new data cannot be stored.",
  VERIFY_MISMATCH: "Do not delete anything. Restore the named files from the offsite copy (tick-backup restore), and check the disk's health.",
  DRILL_FAILED:
    "A sample restored from the offsite copy was missing, unreadable or not the archived bytes: the archive itself is not touched. Check the offsite target (credentials, the disk plugged in), then run tick-backup drill for every file's verdict.",
  OFFSITE_FAILED: "Check the offsite target (credentials, network, the second disk plugged in). Uploads are retried at the next run.",
  FILES_REWRITTEN: "Finished files changed on the server; the old contents are kept in .tick-backup/versions. Check the server for tampering or a failing disk.",
  NODE_ERROR: "Look at the named node's status and the Node-RED log.",
};

export function adviceFor(code: string, cause?: string): string {
  return (cause && ADVICE[cause]) || ADVICE[code] || (code.endsWith("_FAILED") ? "Look at the named node's status and the Node-RED log; the next run tries again." : ADVICE.NODE_ERROR);
}

export function noticeOf(event: IncidentEvent, ctx: NoticeContext, secrets: readonly string[] = []): Notice {
  const time = ctx.time ?? ((iso: string) => iso);
  const where = event.sourceName ?? (event.source ? `node ${event.source}` : undefined);
  const label = labelOf(event);
  const lines: string[] = [];
  let title: string;
  if (event.event === "resolved") {
    title = `RESOLVED: ${label} (${ctx.archive})`;
    lines.push(`Recovered: ${label}.`, `It failed from ${time(event.openedAt)} until ${time(event.resolvedAt ?? event.at)} (${span(event.openedAt, event.resolvedAt ?? event.at)}).`, `Last problem was: ${event.message}`);
  } else {
    const head = event.event === "reminder" ? "STILL FAILING" : event.event === "escalated" ? "WORSE" : "PROBLEM";
    title = `${head}: ${label} (${ctx.archive})`;
    lines.push(event.message, `Since: ${time(event.openedAt)}${event.event === "reminder" ? ` (${span(event.openedAt, event.at)}; reminder ${event.reminders})` : ""}`);
    lines.push(`What to do: ${adviceFor(event.code, event.cause)}`);
  }
  lines.push(`Archive: ${ctx.archive}${ctx.archivePath ? ` (${ctx.archivePath})` : ""}${where ? ` · node: ${where}` : ""}`);
  if (event.flaps > 0) lines.push(`The check came good and failed again ${event.flaps} time(s) meanwhile.`);
  const priority = event.event === "opened" || event.event === "escalated" ? "high" : event.event === "reminder" ? "default" : "low";
  return { title: redact(title, secrets), text: redact(lines.join("\n"), secrets), priority, event: redactEvent(event, secrets) };
}

export const TEST_TITLE = "tick-backup test alert — nothing is wrong";

/** The editor's "Send test alert": clearly a test, low priority, no incident behind it. */
export function testNotice(from: string, at = new Date().toISOString()): Notice {
  const text = [
    `This is a test, sent from ${from} with "Send test alert" in its Node-RED dialog. Nothing is wrong with the backup.`,
    "If you read this, this channel works: problems with the backup will reach you here.",
  ].join("\n");
  const event: IncidentEvent = { event: "test", key: "test", code: "TEST", message: "test alert: nothing is wrong", openedAt: at, at, reminders: 0, flaps: 0 };
  return { title: TEST_TITLE, text, priority: "low", event };
}

/** A short label for the failing check: `pull failed`, `disk critical`, `host key changed`. */
function labelOf(e: IncidentEvent): string {
  const code = e.cause === "HOST_KEY_CHANGED" ? e.cause : e.code;
  const words = code === "NODE_ERROR" ? "failed" : code.toLowerCase().replace(/_/g, " ");
  return e.sourceName && (code.endsWith("_FAILED") || code === "NODE_ERROR") ? `${e.sourceName}: ${words}` : words;
}

function span(fromIso: string, toIso: string): string {
  const min = Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 60_000));
  if (min < 120) return `${min} min`;
  const h = min / 60;
  return h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`;
}

/** Removes credentials from text: `user:pass@` in URLs, bearer tokens, and the given secrets wherever they appear. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^\s/@]+@/gi, "$1***@").replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, "$1***");
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("***");
  return out;
}

function redactEvent(e: IncidentEvent, secrets: readonly string[]): IncidentEvent {
  return { ...e, message: redact(e.message, secrets) };
}

/** `2026-11-27 14:02 (UTC+01:00)` in the host's time zone: what a person reads in a notice. */
export function localTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const zone = `UTC${off >= 0 ? "+" : "-"}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())} (${zone})`;
}

/** `14:02` in the host's time zone, for the node status. */
export function clockTime(iso: string): string {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}
