/**
 * Node-RED 5 on Node 22 (the npm package `node-red-5` = node-red@5, and a Node 22 from support/node22.ts):
 * 1. the node tests (pull, verify, disk, offsite, alert, Home Assistant) run again in a child mocha
 *    under Node 22 with TICK_NODE_RED=5, so node-red-node-test-helper loads Node-RED 5;
 * 2. the package installed from its tarball with npm is loaded by a real Node-RED 5 runtime, and a
 *    deployed flow pulls from a real sshd.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { MODULE, PROJECT, packAndInstall, startNodeRed, type Runtime } from "./support/red-runtime";
import { node22 } from "./support/node22";
import { startSshd, type Sshd } from "./support/sshd";

/* eslint-disable @typescript-eslint/no-explicit-any */
let NODE22: string;
const RED5 = path.join(path.dirname(require.resolve("node-red-5/package.json")), "red.js");
const TYPES = ["sftp-server", "backup-archive", "sftp-pull", "hash-verify", "disk-space", "ha-mqtt", "offsite-target", "offsite-upload", "alert"];
const NODE_TESTS = ["nodes", "verify-node", "disk-node", "offsite-nodes", "alert-node", "ha-nodes"];

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: PROJECT, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

describe("Node-RED 5 on Node 22", function () {
  this.timeout(60_000);
  before(function () {
    this.timeout(300_000); // the first run installs Node 22 from the npm registry
    NODE22 = node22();
  });

  it("the Node 22 binary and Node-RED 5 are the versions we claim", async function () {
    const v = await run(NODE22, ["--version"], process.env);
    assert.match(v.out.trim(), /^v22\.(9|[1-9]\d)\./, "Node >= 22.9 (Node-RED 5's engines)");
    const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(RED5), "package.json"), "utf8"));
    assert.match(pkg.version, /^5\./);
  });

  it("the node tests pass with Node-RED 5 under Node 22", async function () {
    this.timeout(600_000);
    const mocha = path.join(PROJECT, "node_modules", "mocha", "bin", "mocha.js");
    const files = NODE_TESTS.map((t) => path.join(PROJECT, "dist", "test", `${t}.test.js`));
    const r = await run(NODE22, [mocha, "--no-config", "--reporter", "dot", "--timeout", "60000", "--exit", ...files], { ...process.env, TICK_NODE_RED: "5" });
    const passing = /(\d+) passing/.exec(r.out);
    assert.equal(r.code, 0, `node tests on Node-RED 5 failed:\n${r.out.slice(-8000)}`);
    assert.ok(passing && Number(passing[1]) >= 20, `a real run: ${passing?.[0]}\n${r.out.slice(-2000)}`);
    assert.doesNotMatch(r.out, /pending/, "nothing skipped");
  });

  describe("the packed package in a real Node-RED 5 runtime", function () {
    let work: string;
    let red: Runtime;
    let sshd: Sshd;

    before(async function () {
      this.timeout(300_000);
      work = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), "tick-nr5-")));
      const installed = await packAndInstall(work);
      sshd = await startSshd();
      red = await startNodeRed(installed.userDir, { nodeBinary: NODE22, redJs: RED5 });
    });

    after(async function () {
      await red?.stop();
      await sshd?.stop();
      if (work) await fsp.rm(work, { recursive: true, force: true });
    });

    it("runs on Node 22 and loads every node type without error", async function () {
      const settings = (await (await fetch(`${red.base}/settings`)).json()) as any;
      assert.match(settings.version, /^5\./, "Node-RED 5 answers");
      const sets = (await (await fetch(`${red.base}/nodes`, { headers: { Accept: "application/json" } })).json()) as any[];
      const ours = sets.filter((s) => s.module === MODULE);
      assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...TYPES].sort());
      for (const s of ours) assert.equal(s.err, undefined, `${s.types}: ${s.err}`);
      assert.match(red.output(), /Node\.js\s+version:\s*v22\./);
      assert.doesNotMatch(red.output(), /\[error\]|Failed to register/i, red.output());
      const ex = await fetch(`${red.base}/library/examples/flows/${MODULE}/tick-backup`, { headers: { Accept: "application/json" } });
      assert.equal(ex.status, 200, "Import > Examples serves our flow");
    });

    it("a deployed flow pulls from a real sshd", async function () {
      const remoteDir = path.join(sshd.root, "ticks");
      const archivePath = path.join(work, "archive");
      const reportFile = path.join(work, "report.json");
      await fsp.mkdir(remoteDir, { recursive: true });
      await fsp.mkdir(archivePath);
      const data = crypto.randomBytes(100_000);
      await fsp.writeFile(path.join(remoteDir, "GBPUSD.csv"), data);
      const flows = [
        { id: "t1", type: "tab", label: "t" },
        { id: "srv1", type: "sftp-server", host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint, credentials: { privateKey: sshd.privateKey } },
        { id: "arc1", type: "backup-archive", name: "ticks", path: archivePath },
        { id: "inj1", type: "inject", z: "t1", props: [{ p: "payload" }], repeat: "", once: false, payload: "", payloadType: "date", wires: [["pull1"]] },
        { id: "pull1", type: "sftp-pull", z: "t1", server: "srv1", archive: "arc1", remoteDir, include: "**", exclude: "", settleSeconds: 0, maxAgeDays: 0, concurrency: 2, bwLimitKBps: 0, wires: [["file1"]] },
        { id: "file1", type: "file", z: "t1", filename: reportFile, filenameType: "str", appendNewline: true, createDir: false, overwriteFile: "true", encoding: "none", wires: [[]] },
      ];
      const dep = await fetch(`${red.base}/flows`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full" },
        body: JSON.stringify({ flows }),
      });
      assert.equal(dep.status, 200, await dep.clone().text());
      let trigger = await fetch(`${red.base}/inject/inj1`, { method: "POST" });
      for (const t0 = Date.now(); trigger.status === 404 && Date.now() - t0 < 10_000; ) {
        await new Promise((r) => setTimeout(r, 100));
        trigger = await fetch(`${red.base}/inject/inj1`, { method: "POST" });
      }
      assert.equal(trigger.status, 200);
      for (const t0 = Date.now(); !fs.existsSync(reportFile); ) {
        if (Date.now() - t0 > 20_000) throw new Error(`no report within 20 s\n${red.output().slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 100));
      const report = JSON.parse(fs.readFileSync(reportFile, "utf8"));
      assert.equal(report.kind, "pull");
      assert.equal(report.counts.new, 1);
      assert.ok((await fsp.readFile(path.join(archivePath, "GBPUSD.csv"))).equals(data), "byte-identical in the archive");
    });
  });
});
