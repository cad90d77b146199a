import { Archive } from "../../lib/archive/archive";
import { pull, type PullOptions, type PullReport } from "../../lib/sftp/pull";
import type { ServerConfig } from "../../lib/sftp/connect";
import type { Sshd } from "./sshd";
import { tempDir } from "./tree";

/** Server settings for the real sshd harness, logging in with its key. */
export function sshdServer(sshd: Sshd, patch: Partial<ServerConfig> = {}): ServerConfig {
  return { host: "127.0.0.1", port: sshd.port, username: sshd.username, privateKey: sshd.privateKey, hostFingerprint: sshd.hostFingerprint, ...patch };
}

/** A fresh archive plus a pull() bound to one server and remote folder. */
export async function pullEnv(server: ServerConfig, remoteDir: string, defaults: Partial<PullOptions> = {}) {
  const dir = tempDir("tick-archive-");
  const archive = await Archive.open(dir, { name: "test" });
  return {
    dir,
    archive,
    run: (options: Partial<PullOptions> = {}): Promise<PullReport> =>
      pull({ server, archive, remoteDir, settleSeconds: 0, retry: { retries: 2, baseDelayMs: 50 }, ...defaults, ...options }),
  };
}

/** sftp-server's own log (`-l INFO`): bytes it read for each path, summed over the closes since `from`. */
export function serverBytesRead(log: string, remoteFile: string): number {
  let total = 0;
  for (const m of log.matchAll(/close "([^"]*)" bytes read (\d+) written (\d+)/g)) {
    if (m[1] === remoteFile) total += Number(m[2]);
  }
  return total;
}
