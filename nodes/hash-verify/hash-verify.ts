// Node hash-verify: proves archived bytes — against the server (origin), a rotating part (scrub) or all (full).
import type { NodeAPI, Node, NodeDef, NodeMessage } from "node-red";
import { scrub } from "../../lib/verify/scrub";
import { originCheck, type PulledFileRef } from "../../lib/verify/origin-check";
import { blankVerifyReport, type VerifyMode, type VerifyProgress, type VerifyReport } from "../../lib/verify/report";
import { BackupError, ConfigError } from "../../lib/errors";
import { formatBytes, formatDuration } from "../shared/node-helpers";
import { serveRuns } from "../shared/serve-runs";
import type { BackupArchiveNode, OffsiteTargetNode, SftpServerNode } from "../shared/types";
import { createTarget } from "../../lib/offsite";
import { drill, TargetSource, type DrillReport } from "../../lib/restore";

interface HashVerifyDef extends NodeDef {
  archive: string;
  mode: string;
  partitions: number | string;
  server: string;
  remoteDir: string;
  target: string;
  sample: number | string;
}

const MODES = ["origin", "scrub", "full", "drill"];

export = (RED: NodeAPI) => {
  RED.nodes.registerType("hash-verify", function (this: Node, def: HashVerifyDef) {
    RED.nodes.createNode(this, def);
    const archive = RED.nodes.getNode(def.archive) as BackupArchiveNode | null;
    const server = def.server ? (RED.nodes.getNode(def.server) as SftpServerNode | null) : null;
    const target = def.target ? (RED.nodes.getNode(def.target) as OffsiteTargetNode | null) : null;
    const credentials = this.credentials as { identity?: string } | undefined;

    serveRuns(this, {
      // A drill proves the offsite copies: its outcome counts as a drill, not as a verify of the archive.
      kind: (msg) => (modeOf(msg, def) === "drill" ? "drill" : "verify"),
      archive,
      blank: (msg) => blankVerifyReport(archive?.archiveName ?? "", modeOf(msg, def) as VerifyMode),
      run: async (msg, { signal, progress }) => {
        const mode = modeOf(msg, def);
        if (!archive) throw new ConfigError("no backup-archive configured");
        if (!MODES.includes(mode)) throw new ConfigError(`mode must be origin, scrub, full or drill, got ${JSON.stringify(mode)}`);
        if (def.server && !server) throw new ConfigError("the sftp-server set on this node does not exist");
        const onProgress = (p: VerifyProgress) => progress(progressText(mode, p));
        progress(mode === "origin" ? "asking server" : "listing", true);
        const common = { archive: await archive.open(), server: server?.config(), signal, onProgress };
        const pulled = msg.payload as { kind?: string; remoteDir?: string; files?: PulledFileRef[] } | undefined;
        const remoteDir = def.remoteDir || pulled?.remoteDir || "/";
        if (mode === "drill") {
          if (!target) throw new ConfigError("drill mode restores a sample from an offsite target: set one on this node");
          const source = new TargetSource(createTarget(target.config()), credentials?.identity || undefined);
          let report: DrillReport;
          try {
            report = await drill({ archive: archive.archiveName, sources: [source], files: wholeSetting(def.sample, 10, 100_000, "the drill sample (files)"), signal, onProgress: (p) => onProgress({ phase: "hashing", files: p.files, filesTotal: p.filesTotal, bytes: p.bytes, bytesTotal: p.bytesTotal, elapsedMs: 0 }) });
          } finally {
            await source.close().catch(() => undefined);
          }
          if (report.counts.checked === 0) report.problems.push({ code: "DRILL_EMPTY", message: `the drill restored nothing from ${target.targetName}: nothing uploaded there yet?` });
          return report;
        }
        if (mode === "origin") {
          if (!pulled || !Array.isArray(pulled.files)) throw new ConfigError("origin mode checks the files of a pull report: wire it after sftp-pull (msg.payload.files)");
          return originCheck({ ...common, remoteDir, files: pulled.files });
        }
        return scrub({ ...common, mode: mode as "scrub" | "full", partitions: wholeSetting(def.partitions, 7, 10_000, "partitions"), remoteDir });
      },
      status: summaryStatus,
      failure: (report) => {
        const bad = report.mismatches.length + report.missing.length;
        if (report.mode === "drill" && report.problems.length > 0) return new BackupError("DRILL_FAILED", `drill: ${report.problems.slice(0, 3).map((p) => p.message).join("; ")}`);
        if (bad > 0) return new BackupError("VERIFY_FAILED", `verify found ${report.mismatches.length} mismatched and ${report.missing.length} missing file(s): ${[...report.mismatches, ...report.missing].slice(0, 3).join(", ")}`);
        return undefined;
      },
    });
  }, { credentials: { identity: { type: "password" } } });
};

/** `msg.mode` may pick the mode per message (one node for the origin check and the daily scrub). */
function modeOf(msg: NodeMessage & { mode?: unknown }, def: HashVerifyDef): string {
  return typeof msg.mode === "string" && msg.mode ? msg.mode : def.mode || "scrub";
}

/** A whole-number setting from 1 to `max`; empty means the fallback, anything else is a config error. */
function wholeSetting(value: unknown, fallback: number, max: number, what: string): number {
  if (value === "" || value === undefined || value === null) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new ConfigError(`${what} must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}`);
  return n;
}

function progressText(mode: string, p: VerifyProgress): string {
  if (p.phase !== "hashing") return `${mode} · ${p.phase}`;
  const rate = p.elapsedMs > 0 ? (p.bytes / p.elapsedMs) * 1000 : 0;
  const pct = p.bytesTotal > 0 ? Math.floor((p.bytes / p.bytesTotal) * 100) : 100;
  return `${mode} ${pct}% · ${formatBytes(rate)}/s`;
}

function summaryStatus(r: VerifyReport | DrillReport) {
  const bad = r.mismatches.length + r.missing.length;
  if (r.mode === "drill") {
    const text = `drill ${r.counts.ok}/${r.counts.checked} ok · ${formatBytes(r.bytes)} · ${formatDuration(r.durationMs)}`;
    return { fill: r.problems.length > 0 ? ("red" as const) : ("green" as const), shape: "dot" as const, text: r.problems.length > 0 ? `${r.problems.length} problem(s) · ${text}` : text };
  }
  if (bad > 0) return { fill: "red" as const, shape: "dot" as const, text: `${r.mismatches.length} MISMATCH · ${r.missing.length} missing · ${r.restored.length} restored` };
  if (r.mode === "origin" && r.origin.unavailable) return { fill: "yellow" as const, shape: "ring" as const, text: "origin: unavailable" };
  const parts = r.mode === "origin" ? [`${r.origin.matched}/${r.origin.checked} match server`] : [`${r.counts.ok} ok`];
  if (r.partition) parts.push(`${r.partition.n}/${r.partition.t}`);
  parts.push(formatBytes(r.bytes), formatDuration(r.durationMs));
  if (r.problems.length > 0) return { fill: "yellow" as const, shape: "dot" as const, text: `${r.problems.length} problem(s) · ${parts.join(" · ")}` };
  return { fill: "green" as const, shape: "dot" as const, text: parts.join(" · ") };
}
