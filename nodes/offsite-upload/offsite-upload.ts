// Node offsite-upload: on each message, copy every final file not yet on the target there, verified.
import type { NodeAPI, Node, NodeDef } from "node-red";
import { createTarget, uploadOffsite, type OffsiteProgress, type OffsiteReport } from "../../lib/offsite";
import { ConfigError } from "../../lib/errors";
import { BUSY_PROBLEM, formatBytes, formatDuration, numberOr, problemsError, progressStatus, recordOutcome, reportFailure, runGuard, stopOnClose, withHaNote } from "../shared/node-helpers";
import type { BackupArchiveNode, OffsiteTargetNode } from "../shared/types";

interface OffsiteUploadDef extends NodeDef {
  archive: string;
  target: string;
  concurrency: number | string;
  bwLimitKBps: number | string;
  includeLive: boolean;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType("offsite-upload", function (this: Node, def: OffsiteUploadDef) {
    RED.nodes.createNode(this, def);
    const archive = RED.nodes.getNode(def.archive) as BackupArchiveNode | null;
    const targetNode = RED.nodes.getNode(def.target) as OffsiteTargetNode | null;
    const guard = runGuard();
    let stop = new AbortController();

    this.on("input", (msg, send, done) => {
      if (guard.busy) {
        const now = new Date().toISOString();
        const busy = { kind: "offsite", archive: archive?.archiveName ?? "", startedAt: now, finishedAt: now, durationMs: 0, busy: true, problems: [BUSY_PROBLEM] };
        send({ ...msg, payload: busy });
        done();
        return;
      }
      guard.run(async () => {
        if (!archive) throw new ConfigError("no backup-archive configured");
        if (!targetNode) throw new ConfigError("no offsite-target configured");
        stop = new AbortController();
        this.status(progressStatus("connecting"));
        const target = createTarget(targetNode.config());
        let lastStatus = 0;
        let report: OffsiteReport;
        try {
          report = await uploadOffsite({
            archive: await archive.open(),
            target,
            targetName: targetNode.targetName,
            stateKey: targetNode.id,
            concurrency: Math.max(1, numberOr(def.concurrency, 4)),
            bwLimitKBps: numberOr(def.bwLimitKBps, 0),
            includeLive: Boolean(def.includeLive),
            encryptTo: targetNode.encryptTo,
            signal: stop.signal,
            onProgress: (p) => {
              if (Date.now() - lastStatus < 250 && p.filesDone < p.filesTotal) return;
              lastStatus = Date.now();
              this.status(progressStatus(progressText(p)));
            },
          });
        } finally {
          await target.close();
        }
        this.status(withHaNote(summaryStatus(report), archive));
        recordOutcome(archive, this, "offsite", { report });
        send({ ...msg, payload: report });
        if (report.problems.length > 0) done(problemsError("OFFSITE_PROBLEMS", "offsite upload", report.problems));
        else done();
      })?.catch((err) => {
        if (!stop.signal.aborted) recordOutcome(archive, this, "offsite", { error: err });
        reportFailure(this, err, done, stop.signal.aborted);
      });
    });

    stopOnClose(this, guard, () => stop.abort());
  });
};

function progressText(p: OffsiteProgress): string {
  if (p.phase !== "uploading") return p.phase === "manifests" ? "uploading catalog" : p.phase;
  const rate = p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0;
  return `uploading ${p.filesDone}/${p.filesTotal} · ${formatBytes(rate)}/s`;
}

function summaryStatus(r: OffsiteReport) {
  if (r.target.state === "offline") {
    const since = r.target.daysSinceComplete !== undefined ? ` · up to date ${r.target.daysSinceComplete}d ago` : " · never up to date";
    return { fill: r.problems.length ? ("red" as const) : ("grey" as const), shape: "ring" as const, text: `offline · ${r.counts.pending} waiting${since}` };
  }
  const parts = [`${r.counts.uploaded} uploaded`, formatBytes(r.bytes), formatDuration(r.durationMs)];
  if (r.counts.pending) parts.splice(1, 0, `${r.counts.pending} pending`);
  if (r.problems.length > 0) return { fill: "yellow" as const, shape: "dot" as const, text: `${r.problems.length} problem(s) · ${parts.join(" · ")}` };
  return { fill: "green" as const, shape: "dot" as const, text: parts.join(" · ") };
}
