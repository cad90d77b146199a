/**
 * The process the kill campaign kills: one pull or one offsite upload into an archive, as the
 * sftp-pull / offsite-upload nodes run them. Prints "ready" once loaded, so that the kill lands
 * during the work and not while modules load. Arguments: JSON {mode, archive, server?, target?}.
 */
import { Archive } from "../../lib/archive/archive";
import { pull } from "../../lib/sftp/pull";
import { createTarget, uploadOffsite, type TargetConfig } from "../../lib/offsite";
import type { ServerConfig } from "../../lib/sftp/connect";

interface Job {
  mode: "pull" | "offsite";
  archive: string;
  server?: ServerConfig;
  target?: TargetConfig;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]) as Job;
  const archive = await Archive.open(job.archive, { name: "campaign" });
  process.stdout.write("ready\n");
  if (job.mode === "pull") {
    const report = await pull({ server: job.server!, archive, remoteDir: "/", settleSeconds: 30, bwLimitKBps: 8192, concurrency: 4, retry: { retries: 3, baseDelayMs: 20 } });
    process.stdout.write(JSON.stringify({ problems: report.problems }) + "\n");
  } else {
    const report = await uploadOffsite({ archive, target: createTarget(job.target!), targetName: "campaign", bwLimitKBps: 8192, concurrency: 2 });
    process.stdout.write(JSON.stringify({ problems: report.problems }) + "\n");
  }
}

main().catch((err) => {
  process.stderr.write(String(err?.stack ?? err) + "\n");
  process.exit(1);
});
