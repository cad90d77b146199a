// Node sftp-pull: on each message, pull new and grown files from the server into the archive.
import type { NodeAPI, Node, NodeDef } from "node-red";
import { blankPullReport, pull, type PullProgress, type PullReport } from "../../lib/sftp/pull";
import { describeServer } from "../../lib/sftp/connect";
import { parseGlobs } from "../../lib/sftp/plan";
import { ConfigError } from "../../lib/errors";
import { formatBytes, formatDuration, numberOr, problemsError } from "../shared/node-helpers";
import { serveRuns } from "../shared/serve-runs";
import type { BackupArchiveNode, SftpServerNode } from "../shared/types";

interface SftpPullDef extends NodeDef {
  server: string;
  archive: string;
  remoteDir: string;
  include: string;
  exclude: string;
  settleSeconds: number | string;
  maxAgeDays: number | string;
  concurrency: number | string;
  bwLimitKBps: number | string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType("sftp-pull", function (this: Node, def: SftpPullDef) {
    RED.nodes.createNode(this, def);
    const server = RED.nodes.getNode(def.server) as SftpServerNode | null;
    const archive = RED.nodes.getNode(def.archive) as BackupArchiveNode | null;

    // A stop leaves partial files resumable, whether or not the run reached a safe point in time.
    serveRuns(this, {
      kind: "pull",
      archive,
      blank: () => blankPullReport(archive?.archiveName ?? "", server ? describeServer(server.config()) : "", def.remoteDir || "/"),
      run: async (_msg, { signal, progress }) => {
        if (!server) throw new ConfigError("no sftp-server configured");
        if (!archive) throw new ConfigError("no backup-archive configured");
        progress("connecting", true);
        return pull({
          server: server.config(),
          archive: await archive.open(),
          remoteDir: def.remoteDir || "/",
          include: parseGlobs(def.include),
          exclude: parseGlobs(def.exclude),
          settleSeconds: numberOr(def.settleSeconds, 120),
          maxAgeDays: numberOr(def.maxAgeDays, 0),
          concurrency: Math.max(1, numberOr(def.concurrency, 8)),
          bwLimitKBps: numberOr(def.bwLimitKBps, 0),
          signal,
          onProgress: (p) => progress(progressText(p), p.filesDone >= p.filesTotal),
        });
      },
      status: summaryStatus,
      failure: (report) => (report.problems.length > 0 ? problemsError("PULL_PROBLEMS", "pull", report.problems) : undefined),
    });
  });
};

function progressText(p: PullProgress): string {
  if (p.phase !== "pulling") return p.phase;
  const rate = p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0;
  return `pulling ${p.filesDone}/${p.filesTotal} · ${formatBytes(rate)}/s`;
}

function summaryStatus(r: PullReport) {
  const parts = [`${r.counts.new} new`];
  if (r.counts.grown) parts.push(`${r.counts.grown} grown`);
  if (r.counts.rewritten) parts.push(`${r.counts.rewritten} REWRITTEN`);
  parts.push(formatBytes(r.bytes), formatDuration(r.durationMs));
  if (r.problems.length > 0) return { fill: "yellow" as const, shape: "dot" as const, text: `${r.problems.length} problem(s) · ${parts.join(" · ")}` };
  return { fill: "green" as const, shape: "dot" as const, text: parts.join(" · ") };
}
