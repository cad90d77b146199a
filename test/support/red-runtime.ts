/**
 * The package installed the way a user gets it, and a real Node-RED runtime around it:
 * `npm pack` (the already-built dist/), then `npm install <tarball>` into a fresh user directory
 * (dependencies come from the npm cache or registry; C/C++ compilers are replaced by /bin/false so
 * an install that needs a build fails), then Node-RED started as a child process.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { freePort } from "./net";

export const MODULE = "node-red-contrib-tick-backup";
export const PROJECT = path.resolve(__dirname, "..", "..", "..");

/**
 * The npm on PATH outside any node_modules/.bin. Under `npx mocha` the first npm on PATH is the
 * project's node_modules/.bin/npm (npm 10, a dependency of @node-red/registry), which runs
 * `prepare` (the whole build) even with --ignore-scripts.
 */
export function systemNpm(): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir || dir.split(path.sep).includes("node_modules")) continue;
    const candidate = path.join(dir, "npm");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return "npm";
}

export interface Installed {
  userDir: string;
  tarball: string;
  /** packages in the installed tree that declare an install script (npm's `hasInstallScript`) */
  withInstallScripts: string[];
}

/** Packs the project into `work` and installs the tarball into `<work>/userDir` with npm. */
export async function packAndInstall(work: string): Promise<Installed> {
  const npm = systemNpm();
  const packed = execFileSync(npm, ["pack", "--ignore-scripts", "--json", "--pack-destination", work], {
    cwd: PROJECT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 30_000,
  });
  const tarball = path.join(work, (JSON.parse(packed)[0] as { filename: string }).filename);
  const userDir = path.join(work, "userDir");
  await fsp.mkdir(userDir, { recursive: true });
  await fsp.writeFile(path.join(userDir, "package.json"), JSON.stringify({ name: "node-red-project", private: true }, null, 2));
  execFileSync(npm, ["install", "--prefer-offline", "--no-audit", "--no-fund", "--omit=dev", tarball], {
    cwd: userDir,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 240_000,
    env: { ...process.env, CC: "/bin/false", CXX: "/bin/false", npm_config_build_from_source: "false" },
  });
  const lock = JSON.parse(await fsp.readFile(path.join(userDir, "package-lock.json"), "utf8")) as {
    packages: Record<string, { hasInstallScript?: boolean }>;
  };
  const withInstallScripts = Object.entries(lock.packages)
    .filter(([, p]) => p.hasInstallScript)
    .map(([k]) => k.replace(/^.*node_modules\//, ""));
  return { userDir, tarball, withInstallScripts };
}

export interface Runtime {
  base: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Writes settings.js and starts `node <red.js>` (Node-RED 4.1 from the project unless given). */
export async function startNodeRed(
  userDir: string,
  opts: { nodeBinary?: string; redJs?: string; settings?: Record<string, unknown> } = {},
): Promise<Runtime> {
  const port = await freePort();
  const settings = {
    uiHost: "127.0.0.1",
    uiPort: port,
    flowFile: "flows.json",
    credentialSecret: "editor-test-credential-secret",
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { tours: false, projects: { enabled: false }, palette: { editable: false } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
    ...(opts.settings ?? {}),
  };
  await fsp.writeFile(path.join(userDir, "settings.js"), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  const redJs = opts.redJs ?? path.join(PROJECT, "node_modules", "node-red", "red.js");
  let out = "";
  let exited: unknown;
  const child: ChildProcess = spawn(opts.nodeBinary ?? process.execPath, [redJs, "--userDir", userDir, "--port", String(port)], {
    cwd: userDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.once("exit", (code, signal) => (exited = { code, signal }));
  const base = `http://127.0.0.1:${port}`;
  const started = Date.now();
  for (;;) {
    if (exited) throw new Error(`Node-RED exited (${JSON.stringify(exited)}) before answering\n${out.slice(-6000)}`);
    if (Date.now() - started > 30_000) {
      child.kill("SIGKILL");
      throw new Error(`Node-RED did not answer on ${base} within 30 s\n${out.slice(-6000)}`);
    }
    const res = await fetch(`${base}/settings`, { headers: { Accept: "application/json" } }).catch(() => undefined);
    if (res?.ok) break;
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    base,
    port,
    output: () => out,
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    },
  };
}
