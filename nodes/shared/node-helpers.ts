import type { Node, NodeAPI, NodeStatus } from "node-red";
import { BackupError, ConfigError, messageOf } from "../../lib/errors";
import { redact } from "../../lib/alert/messages";
import type { BackupArchiveNode, RunReport } from "./types";

/** Tells the archive how a run ended: its report, or the error that stopped it. */
export function recordOutcome(archive: BackupArchiveNode | null, node: Node, kind: string, result: { report: RunReport } | { error: unknown }): void {
  if (!archive) return;
  const at = new Date().toISOString();
  if ("report" in result) {
    archive.record({ kind, source: node.id, ok: result.report.problems.length === 0, at, report: result.report });
  } else {
    const err = result.error;
    archive.record({ kind, source: node.id, ok: false, at, error: { code: err instanceof BackupError ? err.code : "ERROR", message: messageOf(err) } });
  }
}

/**
 * One run at a time per node. A message that arrives during a run is answered at once with a
 * report saying so, instead of starting a second run over the same files.
 */
export function runGuard() {
  let running: Promise<void> | undefined;
  return {
    get busy(): boolean {
      return running !== undefined;
    },
    run(task: () => Promise<void>): Promise<void> | undefined {
      if (running) return undefined;
      running = task().finally(() => (running = undefined));
      return running;
    },
    /** resolves when the current run (if any) has ended */
    settled(): Promise<void> {
      return running ? running.catch(() => undefined) : Promise.resolve();
    },
  };
}

/** The busy answer's problem entry, added to a blank report of the node's own kind. */
export const BUSY_PROBLEM = { code: "BUSY", message: "a run is already in progress; this message did not start another" };

/** The one place a failure turns into a red status, a log line and `done(err)` (which reaches catch nodes). */
export function reportFailure(node: Node, err: unknown, done: (err?: Error) => void, stopping = false): void {
  const error = err instanceof Error ? err : new Error(String(err));
  if (stopping && error instanceof BackupError && error.code === "ABORTED") {
    // Stopped by a redeploy or shutdown: not a failure, and the next run resumes.
    node.status({ fill: "grey", shape: "ring", text: "stopped; resumes next run" });
    done();
    return;
  }
  node.status({ fill: "red", shape: "ring", text: shortStatus(error) });
  done(error);
}

function shortStatus(err: Error): string {
  if (err instanceof BackupError) {
    if (err.code === "HOST_KEY_CHANGED") return "HOST KEY CHANGED";
    if (err.code === "HOST_KEY_NOT_PINNED") return "host key not pinned";
    if (err.code === "ARCHIVE_MISSING") return "archive folder missing (disk not mounted?)";
    if (err.code === "ARCHIVE_NOT_FOUND") return "NO ARCHIVE HERE (disk not mounted?)";
    if (err.code === "ARCHIVE_FS_CHANGED") return "ARCHIVE DISK CHANGED";
    if (err.code === "ARCHIVE_REPLACED") return "ANOTHER ARCHIVE HERE (wrong disk?)";
  }
  const text = messageOf(err);
  return text.length > 60 ? text.slice(0, 57) + "…" : text;
}

/** Adds a note ("HA broker unreachable") to a run's status when the archive cannot tell Home Assistant. */
export function withHaNote(status: NodeStatus, archive: BackupArchiveNode | null): NodeStatus {
  const note = archive?.haNote();
  return note ? { ...status, text: `${status.text} · ${note}` } : status;
}

/** A progress status, rate-limited by the caller. */
export function progressStatus(text: string): NodeStatus {
  return { fill: "blue", shape: "dot", text };
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let i = -1;
  do {
    v /= 1000;
    i++;
  } while (v >= 1000 && i < units.length - 1);
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  const m = Math.round(s / 60);
  return m < 120 ? `${m}m` : `${Math.round(m / 60)}h`;
}

/** A number from a node's settings, or the fallback when the field is empty or not a number. */
export function numberOr(value: unknown, fallback: number): number {
  const n = Number(value);
  return value === "" || value === undefined || value === null || !Number.isFinite(n) ? fallback : n;
}

/** The error a run with problems ends with (it reaches catch nodes): the first problem, and how many more. */
export function problemsError(code: string, what: string, problems: Array<{ message: string }>): BackupError {
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
  return new BackupError(code, `${what} finished with problems: ${problems[0].message}${more}`);
}

/**
 * On close (redeploy, shutdown): stops the run and gives it a few seconds to reach a safe point
 * before Node-RED goes on; what it left is resumed by the next run either way.
 */
export function stopOnClose(node: Node, guard: ReturnType<typeof runGuard>, stop: () => void): void {
  node.on("close", (_removed: boolean, done: () => void) => {
    stop();
    const timeout = new Promise((resolve) => setTimeout(resolve, 4000).unref());
    Promise.race([guard.settled(), timeout]).then(() => done());
  });
}

/** What an editor helper receives: the dialog's fields, the node's id and its credential inputs. */
export type DialogBody = Record<string, unknown> & { id?: unknown; credentials?: Record<string, unknown> };

/**
 * An editor helper: POST `tick-backup/<type>/<action>` (relative in the editor, so it works under
 * Home Assistant's ingress path), allowed to users who may change nodes of `type`. It answers what
 * `work` returns; a ConfigError (bad input) answers 400, any other failure 502, both as `{error}`
 * with every credential of the request and of the deployed node taken out.
 */
export function editorEndpoint(RED: NodeAPI, type: string, action: string, work: (body: DialogBody) => Promise<unknown>): void {
  RED.httpAdmin.post(`/tick-backup/${type}/${action}`, RED.auth.needsPermission(`${type}.write`), async (req, res) => {
    const body = (req.body ?? {}) as DialogBody;
    try {
      res.json(await work(body));
    } catch (err) {
      // No far side should echo a secret, but should one, it does not reach the dialog.
      const secrets = [...Object.values(body.credentials ?? {}), ...Object.values(storedCredentials(RED, body))].filter((v): v is string => typeof v === "string");
      res.status(err instanceof ConfigError ? 400 : 502).json({ error: redact(messageOf(err), secrets) });
    }
  });
}

function storedCredentials(RED: NodeAPI, body: DialogBody): Record<string, unknown> {
  return ((typeof body.id === "string" && RED.nodes.getCredentials(body.id)) || {}) as Record<string, unknown>;
}

/**
 * The secrets a helper works with: what is typed in the dialog, or the deployed node's stored one
 * where the dialog shows Node-RED's placeholder for it. An emptied field stays empty.
 */
export function dialogCredentials<K extends string>(RED: NodeAPI, body: DialogBody, names: readonly K[]): Partial<Record<K, string>> {
  const stored = storedCredentials(RED, body);
  const out: Partial<Record<K, string>> = {};
  for (const name of names) {
    const typed = body.credentials?.[name];
    const value = typed === "__PWRD__" ? stored[name] : typed;
    if (typeof value === "string" && value !== "") out[name] = value;
  }
  return out;
}
