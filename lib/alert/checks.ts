// Where checks come from: the archive's health snapshot (the same problem reasons Home Assistant
// shows) and messages sent to the alert node (catch nodes' msg.error, or a check of the user's own).
import { problemsOf, type HealthSnapshot } from "../health/snapshot";
import type { Check } from "./incidents";

/** The failing checks in a health snapshot, keyed so that a run's failure and its catch message are one incident. */
export function healthChecks(snapshot: HealthSnapshot, options: { now: Date; staleHours: number; names?: (id: string) => string | undefined }): Check[] {
  const byKey = new Map<string, Check>();
  for (const reason of problemsOf(snapshot, { now: options.now, staleHours: options.staleHours })) {
    const key = reason.source ? `node:${reason.source}` : `health:${groupOf(reason.code)}`;
    const known = byKey.get(key);
    if (known) {
      known.message += `; ${reason.message}`; // several offsite targets failing: one incident
      continue;
    }
    const check: Check = { key, code: reason.code, message: reason.message, origin: "health" };
    if (reason.source) {
      check.source = reason.source;
      const name = options.names?.(reason.source);
      if (name) check.sourceName = name;
      const cause = snapshot.runs[reason.source]?.code;
      if (cause && cause !== reason.code) check.cause = cause;
    }
    byKey.set(key, check);
  }
  return [...byKey.values()];
}

/** A low disk that becomes critical is the same incident. */
function groupOf(code: string): string {
  return code === "DISK_LOW" || code === "DISK_CRITICAL" ? "DISK" : code;
}

/** The check an error message of no node and no topic belongs to. */
const UNNAMED_ERROR = "error";

/** What a message sent to the alert node means. */
export type InputMeaning =
  | { kind: "fail"; check: Check }
  | { kind: "ok"; name: string }
  | { kind: "ping"; ping: "start" | "success" | "fail" }
  | { kind: "ignored"; why: string };

export function meaningOf(msg: Record<string, unknown>): InputMeaning {
  const ping = msg.ping;
  if (ping === "start" || ping === "success" || ping === "fail") return { kind: "ping", ping };
  const error = msg.error as { message?: unknown; code?: unknown; source?: { id?: unknown; name?: unknown; type?: unknown } } | undefined;
  const topic = typeof msg.topic === "string" && msg.topic !== "" ? msg.topic : undefined;
  if (error && typeof error === "object") {
    const id = typeof error.source?.id === "string" ? error.source.id : undefined;
    const name = [error.source?.name, error.source?.type].find((v): v is string => typeof v === "string" && v !== "");
    // An error of no node and no topic (a message of one's own) is the check "error": `{topic: "error", ok: true}` ends it.
    const check: Check = {
      key: id ? `node:${id}` : `topic:${topic ?? UNNAMED_ERROR}`,
      code: typeof error.code === "string" && error.code !== "" ? error.code : "NODE_ERROR",
      message: typeof error.message === "string" && error.message !== "" ? error.message : "an error without a message",
      origin: "input",
    };
    if (id) check.source = id;
    if (name) check.sourceName = name;
    return { kind: "fail", check };
  }
  if (topic && typeof msg.ok === "boolean") {
    if (msg.ok) return { kind: "ok", name: topic };
    const text = typeof msg.payload === "string" && msg.payload !== "" ? msg.payload : `${topic} failed`;
    return { kind: "fail", check: { key: `topic:${topic}`, code: "CHECK_FAILED", message: text, origin: "input" } };
  }
  return { kind: "ignored", why: "send msg.error (a catch node), msg.topic with msg.ok true/false, or msg.ping start/success/fail" };
}
