// The one way our run nodes answer a message: one run at a time (a message meanwhile gets a busy
// report), progress in the status, the report sent on and told to the archive, a bad report or a
// failure to catch nodes, and a redeploy that stops the run.
import type { Node, NodeMessage, NodeStatus } from "node-red";
import { BUSY_PROBLEM, progressStatus, recordOutcome, reportFailure, runGuard, stopOnClose, withHaNote } from "./node-helpers";
import type { BackupArchiveNode, RunReport } from "./types";

export interface RunContext {
  signal: AbortSignal;
  /** Shows progress in the status: at most every 250 ms, or at once when `now` (a new phase, the last file). */
  progress(text: string, now?: boolean): void;
}

export interface RunSpec<R extends RunReport> {
  /** the kind of run a message starts, as the archive's health counts it */
  kind: string | ((msg: NodeMessage) => string);
  archive: BackupArchiveNode | null;
  /** a blank report of this kind: the busy answer is made of it */
  blank(msg: NodeMessage): RunReport;
  run(msg: NodeMessage, context: RunContext): Promise<R>;
  status(report: R): NodeStatus;
  /** the error for catch nodes when the report is bad enough for one; undefined when it is not */
  failure(report: R): Error | undefined;
}

export function serveRuns<R extends RunReport>(node: Node, spec: RunSpec<R>): void {
  const guard = runGuard();
  let stop = new AbortController();

  node.on("input", (msg, send, done) => {
    if (guard.busy) {
      send({ ...msg, payload: { ...spec.blank(msg), busy: true, problems: [BUSY_PROBLEM] } });
      done();
      return;
    }
    stop = new AbortController();
    const { signal } = stop;
    const kind = typeof spec.kind === "function" ? spec.kind(msg) : spec.kind;
    let shownAt = 0;
    const progress = (text: string, now = false) => {
      if (!now) {
        // The first update of a run shows at once; an update shown `now` does not delay the next.
        if (Date.now() - shownAt < 250) return;
        shownAt = Date.now();
      }
      node.status(progressStatus(text));
    };
    guard
      .run(async () => {
        const report = await spec.run(msg, { signal, progress });
        node.status(withHaNote(spec.status(report), spec.archive));
        recordOutcome(spec.archive, node, kind, { report });
        send({ ...msg, payload: report });
        done(spec.failure(report));
      })
      ?.catch((err) => {
        // A run stopped by a redeploy is no outcome: the next run resumes it.
        if (!signal.aborted) recordOutcome(spec.archive, node, kind, { error: err });
        reportFailure(node, err, done, signal.aborted);
      });
  });

  stopOnClose(node, guard, () => stop.abort());
}
