// Node offsite-upload: on each message, copy every final file not yet on the target there, verified.
import type { NodeAPI, Node, NodeDef } from "node-red";
import { createTarget, uploadOffsite, type OffsiteProgress, type OffsiteReport } from "../../lib/offsite";
import { ConfigError } from "../../lib/errors";
import { formatBytes, formatDuration, numberOr, problemsError } from "../shared/node-helpers";
import { serveRuns } from "../shared/serve-runs";
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

    serveRuns(this, {
      kind: "offsite",
      archive,
      blank: () => {
        const now = new Date().toISOString();
        return { kind: "offsite", archive: archive?.archiveName ?? "", startedAt: now, finishedAt: now, durationMs: 0, problems: [] };
      },
      run: async (_msg, { signal, progress }) => {
        if (!archive) throw new ConfigError("no backup-archive configured");
        if (!targetNode) throw new ConfigError("no offsite-target configured");
        progress("connecting", true);
        const target = createTarget(targetNode.config());
        try {
          return await uploadOffsite({
            archive: await archive.open(),
            target,
            targetName: targetNode.targetName,
            stateKey: targetNode.id,
            concurrency: Math.max(1, numberOr(def.concurrency, 4)),
            bwLimitKBps: numberOr(def.bwLimitKBps, 0),
            includeLive: Boolean(def.includeLive),
            encryptTo: targetNode.encryptTo,
            signal,
            onProgress: (p) => progress(progressText(p), p.filesDone >= p.filesTotal),
          });
        } finally {
          await target.close();
        }
      },
      status: summaryStatus,
      failure: (report) => (report.problems.length > 0 ? problemsError("OFFSITE_PROBLEMS", "offsite upload", report.problems) : undefined),
    });
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
