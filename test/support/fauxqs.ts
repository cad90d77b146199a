/**
 * fauxqs, an S3 emulator that computes and returns S3's SHA-256 checksums (full and composite, as
 * AWS does) and checks the ones it is sent, started on 127.0.0.1 under a Node 22 (fauxqs needs
 * node:sqlite; see node22.ts), behind the same fault proxy as s3rver.
 */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { node22 } from "./node22";
import { BUCKET, startFaultProxy, type S3Server } from "./s3";
import { tempDir } from "./tree";

export async function startFauxqs(): Promise<S3Server> {
  const node = node22();
  const launcher = path.join(__dirname, "..", "..", "..", "test", "support", "fauxqs-launch.mjs");
  const child = spawn(node, [launcher, tempDir("fauxqs-"), BUCKET], { stdio: ["pipe", "pipe", "inherit"] });
  const endpoint = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`fauxqs exited ${code} before it listened`)));
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.stdin.end();
      setTimeout(() => child.kill("SIGKILL"), 3000).unref();
    });
  return startFaultProxy(endpoint, stop);
}
