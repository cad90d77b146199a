// Node sftp-pull: on each message, pull new and grown files from the server into the archive.
import type { NodeAPI, Node, NodeDef } from "node-red";
import { blankPullReport, pull, type PullProgress, type PullReport } from "../../lib/sftp/pull";
import { describeServer } from "../../lib/sftp/connect";
import { parseGlobs } from "../../lib/sftp/plan";
import { ConfigError } from "../../lib/errors";
import { BUSY_PROBLEM, formatBytes, formatDuration, numberOr, problemsError, progressStatus, recordOutcome, reportFailure, runGuard, stopOnClose, withHaNote } from "../shared/node-helpers";
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
    const guard = runGuard();
    let stop = new AbortController();

    this.on("input", (msg, send, done) => {
      if (guard.busy) {
        const busy = blankPullReport(archive?.archiveName ?? "", server ? describeServer(server.config()) : "", def.remoteDir || "/");
        send({ ...msg, payload: { ...busy, busy: true, problems: [BUSY_PROBLEM] } });
        done();
        return;
      }
      guard.run(async () => {
        if (!server) throw new ConfigError("no sftp-server configured");
        if (!archive) throw new ConfigError("no backup-archive configured");
        stop = new AbortController();
        this.status(progressStatus("connecting"));
        let lastStatus = 0;
        const report = await pull({
          server: server.config(),
          archive: await archive.open(),
          remoteDir: def.remoteDir || "/",
          include: parseGlobs(def.include),
          exclude: parseGlobs(def.exclude),
          settleSeconds: numberOr(def.settleSeconds, 120),
          maxAgeDays: numberOr(def.maxAgeDays, 0),
          concurrency: Math.max(1, numberOr(def.concurrency, 8)),
          bwLimitKBps: numberOr(def.bwLimitKBps, 0),
          signal: stop.signal,
          onProgress: (p) => {
            if (Date.now() - lastStatus < 250 && p.filesDone < p.filesTotal) return;
            lastStatus = Date.now();
            this.status(progressStatus(progressText(p)));
          },
        });
        this.status(withHaNote(summaryStatus(report), archive));
        recordOutcome(archive, this, "pull", { report });
        send({ ...msg, payload: report });
        if (report.problems.length > 0) done(problemsError("PULL_PROBLEMS", "pull", report.problems));
        else done();
      })?.catch((err) => {
        if (!stop.signal.aborted) recordOutcome(archive, this, "pull", { error: err });
        reportFailure(this, err, done, stop.signal.aborted);
      });
    });

    // Partial files stay resumable whether or not the run reaches a safe point in time.
    stopOnClose(this, guard, () => stop.abort());
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
