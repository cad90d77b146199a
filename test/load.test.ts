/**
 * The package as users get it: `npm pack`, unpacked into a Node-RED user directory the way the
 * palette manager leaves it, loaded by a real Node-RED runtime started as a child process (with
 * adminAuth on, as a careful user runs it). Then a flow is deployed through the admin API and an
 * inject node triggers a real pull from a real sshd.
 *
 * Uses the already-built dist/ (`npm pack --ignore-scripts`): run `npm run build` first, as the
 * test command does. Dependencies resolve through a symlink to the project's node_modules, so no
 * network is needed.
 */
import { freePort } from "./support/net";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { MODULE, systemNpm } from "./support/red-runtime";
import { startSshd, type Sshd } from "./support/sshd";

const TYPES = ["sftp-server", "backup-archive", "sftp-pull", "hash-verify", "disk-space", "ha-mqtt", "offsite-target", "offsite-upload", "alert"];
/** bcrypt of PASSWORD (cost 8), for settings.adminAuth. */
const PASSWORD = "load-test-password";
const PASSWORD_HASH = "$2b$08$f5RWKe0b9PhHrfCs6C2Zv.T1qXf3c2DXsspx0K8FToce9BonNpbIu";

/* eslint-disable @typescript-eslint/no-explicit-any */

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe("the packed package in a real Node-RED runtime", function () {
  this.timeout(30_000);

  const project = path.resolve(__dirname, "..", "..");
  let work: string;
  let userDir: string;
  let pkgDir: string;
  let entries: string[] = [];
  /** whether examples/tick-backup.json existed when the tarball was made (another part of the work adds it) */
  let hasExample = false;
  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let output = "";
  let base: string;
  let adminToken: string;
  let sshd: Sshd | undefined;

  const log = () => `\n--- Node-RED output ---\n${output.slice(-6000)}`;

  async function api(method: string, route: string, options: { token?: string; body?: unknown; accept?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { Accept: options.accept ?? "application/json", ...(options.headers ?? {}) };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(`${base}${route}`, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  }

  async function tokenFor(username: string, scope: string): Promise<string> {
    const res = await fetch(`${base}/auth/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: "node-red-admin", grant_type: "password", scope, username, password: PASSWORD }).toString(),
    });
    assert.equal(res.status, 200, `login as ${username}: ${res.status} ${await res.clone().text()}${log()}`);
    const body = (await res.json()) as { access_token?: string };
    assert.ok(body.access_token);
    return body.access_token;
  }

  before(async function () {
    work = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), "tick-load-")));

    // 1. The tarball, as `npm publish` would upload it (dist/ is already built).
    hasExample = fs.existsSync(path.join(project, "examples", "tick-backup.json"));
    const packed = execFileSync(systemNpm(), ["pack", "--ignore-scripts", "--json", "--pack-destination", work], {
      cwd: project,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: 20_000,
    });
    const info = JSON.parse(packed)[0] as { filename: string; name: string };
    assert.equal(info.name, MODULE);
    const tarball = path.join(work, info.filename);
    entries = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean);

    // 2. Installed the way the palette manager leaves it: <userDir>/node_modules/<module>.
    userDir = path.join(work, "userDir");
    pkgDir = path.join(userDir, "node_modules", MODULE);
    await fsp.mkdir(pkgDir, { recursive: true });
    execFileSync("tar", ["-xzf", tarball, "-C", pkgDir, "--strip-components=1"]);
    await fsp.symlink(path.join(project, "node_modules"), path.join(pkgDir, "node_modules"), "dir");
    await fsp.writeFile(
      path.join(userDir, "package.json"),
      JSON.stringify({ name: "node-red-project", private: true, dependencies: { [MODULE]: `file:${tarball}` } }, null, 2),
    );

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    await fsp.writeFile(
      path.join(userDir, "settings.js"),
      `module.exports = ${JSON.stringify(
        {
          uiHost: "127.0.0.1",
          uiPort: port,
          flowFile: "flows.json",
          credentialSecret: "load-test-credential-secret",
          adminAuth: {
            type: "credentials",
            users: [
              { username: "admin", password: PASSWORD_HASH, permissions: "*" },
              { username: "viewer", password: PASSWORD_HASH, permissions: "read" },
            ],
          },
          logging: { console: { level: "info", metrics: false, audit: false } },
          editorTheme: { tours: false, projects: { enabled: false } },
          diagnostics: { enabled: false },
          telemetry: { enabled: false },
          externalModules: { autoInstall: false, palette: { allowInstall: false } },
        },
        null,
        2,
      )};\n`,
    );

    sshd = await startSshd();

    // 3. A real runtime.
    const redJs = path.join(project, "node_modules", "node-red", "red.js");
    child = spawn(process.execPath, [redJs, "--userDir", userDir, "--port", String(port)], {
      cwd: userDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.stderr?.on("data", (d: Buffer) => (output += d.toString("utf8")));
    child.once("exit", (code, signal) => (exited = { code, signal }));

    const started = Date.now();
    for (;;) {
      if (exited) throw new Error(`Node-RED exited (${JSON.stringify(exited)}) before answering${log()}`);
      if (Date.now() - started > 20_000) throw new Error(`Node-RED did not answer on ${base} within 20 s${log()}`);
      const res = await fetch(`${base}/auth/login`, { headers: { Accept: "application/json" } }).catch(() => undefined);
      if (res?.ok) break;
      await sleep(150);
    }
    adminToken = await tokenFor("admin", "*");
  });

  after(async function () {
    if (child && !exited) {
      const gone = new Promise((r) => child!.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child?.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(timer);
    }
    await sshd?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it("the tarball's tick-backup command runs from the installed package (the file its bin names, with a shebang)", function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
    const bin = pkg.bin["tick-backup"] as string;
    assert.ok(entries.includes(`package/${bin}`), `${bin} in the tarball`);
    const file = path.join(pkgDir, bin);
    assert.match(fs.readFileSync(file, "utf8"), /^#!\/usr\/bin\/env node\n/);
    const help = execFileSync(process.execPath, [file, "--help"], { encoding: "utf8" });
    assert.match(help, /usage: tick-backup <command>[\s\S]*restore --from/);
  });

  it("the tarball holds the built nodes with their editor HTML and icons, and no tests, demo or bench", function () {
    const has = (p: string) => entries.includes(`package/${p}`);
    for (const t of TYPES) {
      assert.ok(has(`dist/nodes/${t}/${t}.js`), `dist/nodes/${t}/${t}.js`);
      assert.ok(has(`dist/nodes/${t}/${t}.html`), `dist/nodes/${t}/${t}.html`);
    }
    assert.ok(has("package.json"));
    const icons = fs.readdirSync(path.join(project, "icons"));
    assert.ok(icons.length > 0);
    for (const icon of icons) assert.ok(has(`icons/${icon}`), `icons/${icon} in the tarball`);
    if (hasExample) assert.ok(has("examples/tick-backup.json"), "examples/tick-backup.json in the tarball");
    const unwanted = entries.filter((e) => /^package\/(dist\/)?(test|demo|bench)\//.test(e) || /\.test\.(js|ts)(\.map)?$/.test(e) || e.endsWith(".tgz"));
    assert.deepEqual(unwanted, [], "no test, demo or bench files are shipped");
    // Every node file named in package.json is in the tarball.
    const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
    for (const [type, file] of Object.entries(pkg["node-red"].nodes as Record<string, string>)) {
      assert.ok(TYPES.includes(type), `unexpected node type ${type}`);
      assert.ok(has(file), `${file} (for ${type}) in the tarball`);
    }
  });

  it("Node-RED loads every node type from the module, enabled and without error", async function () {
    const res = await api("GET", "/nodes", { token: adminToken });
    assert.equal(res.status, 200, log());
    const sets = (await res.json()) as any[];
    const ours = sets.filter((s) => s.module === MODULE);
    assert.ok(ours.length > 0, `module ${MODULE} not listed; modules: ${[...new Set(sets.map((s) => s.module))].join(", ")}${log()}`);
    for (const type of TYPES) {
      const set = ours.find((s) => s.types?.includes(type));
      assert.ok(set, `type ${type} listed`);
      assert.equal(set.enabled, true, `${type} enabled`);
      assert.equal(set.err, undefined, `${type} loaded without error: ${set.err}`);
      assert.equal(set.local, true, `${type} comes from the user directory`);
      // The node set's own entry (the admin API strips `loaded` from both; a set that failed to load has `err`).
      const one = await api("GET", `/nodes/${MODULE}/${type}`, { token: adminToken });
      assert.equal(one.status, 200);
      const info = (await one.json()) as any;
      assert.equal(info.enabled, true);
      assert.equal(info.err, undefined, `${type}: ${info.err}`);
    }
    assert.deepEqual(ours.flatMap((s) => s.types).sort(), [...TYPES].sort());
    assert.doesNotMatch(output, /\[error\]|Failed to register|Missing node modules|Waiting for missing types/i, `no load errors in the log${log()}`);

    // The editor gets each node's HTML (definition and help).
    const html = await (await api("GET", "/nodes", { token: adminToken, accept: "text/html" })).text();
    for (const type of TYPES) {
      assert.match(html, new RegExp(`registerType\\('${type}'`), `${type} definition served to the editor`);
      assert.match(html, new RegExp(`data-help-name="${type}"`), `${type} help served to the editor`);
    }

    // And the icons.
    const icons = (await (await api("GET", "/icons", { token: adminToken })).json()) as Record<string, string[]>;
    assert.ok(icons[MODULE]?.includes("tick-backup-pull.svg"), `icons listed: ${JSON.stringify(icons[MODULE])}`);
    const svg = await api("GET", `/icons/${MODULE}/tick-backup-pull.svg`, { token: adminToken, accept: "*/*" });
    assert.equal(svg.status, 200);
    assert.match(await svg.text(), /<svg/);

    // Import > Examples lists the example flow, when there is one.
    if (hasExample) {
      const modules = (await (await api("GET", "/library/examples/flows/", { token: adminToken })).json()) as string[];
      assert.ok(modules.includes(MODULE), `modules with examples: ${JSON.stringify(modules)}`);
      const flow = await api("GET", `/library/examples/flows/${MODULE}/tick-backup`, { token: adminToken });
      assert.equal(flow.status, 200);
      const nodes = (await flow.json()) as any[];
      assert.ok(Array.isArray(nodes) && nodes.some((n) => n.type === "sftp-pull"), "the example flow holds an sftp-pull node");
    }
  });

  it("the Fetch host key endpoint needs the editor's write permission", async function () {
    const url = "/tick-backup/sftp-server/fingerprint";
    const body = { host: "127.0.0.1", port: sshd!.port };
    assert.equal((await api("POST", url, { body })).status, 401, "no token");
    const viewer = await tokenFor("viewer", "read");
    assert.equal((await api("GET", "/nodes", { token: viewer })).status, 200, "the viewer may read");
    // Node-RED answers a missing permission with 401 too.
    assert.equal((await api("POST", url, { body, token: viewer })).status, 401, "read-only user");
    const bad = await api("POST", url, { body: { host: "", port: 22 }, token: adminToken });
    assert.equal(bad.status, 400);
    const ok = await api("POST", url, { body, token: adminToken });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { fingerprint: sshd!.hostFingerprint });
  });

  it("the Test and Send test alert endpoints of offsite-target, ha-mqtt and alert need the editor's write permission", async function () {
    const viewer = await tokenFor("viewer", "read");
    for (const type of ["offsite-target", "ha-mqtt", "alert"]) {
      const url = `/tick-backup/${type}/test`;
      assert.equal((await api("POST", url, { body: {} })).status, 401, `${type}: no token`);
      assert.equal((await api("POST", url, { body: {}, token: viewer })).status, 401, `${type}: read-only user`);
      // The admin reaches the helper itself, which refuses the empty dialog.
      const bad = await api("POST", url, { body: {}, token: adminToken });
      assert.equal(bad.status, 400, `${type}: ${await bad.clone().text()}`);
      assert.equal(typeof ((await bad.json()) as any).error, "string");
    }
  });

  it("the Test connection endpoint needs write permission, refuses a wrong host key and lists a folder", async function () {
    const s = sshd!;
    const url = "/tick-backup/sftp-server/test";
    await fsp.mkdir(path.join(s.root, "listed", "sub"), { recursive: true });
    await fsp.writeFile(path.join(s.root, "listed", "a.csv"), "x");
    const body = { host: s.host, port: s.port, username: s.username, hostFingerprint: s.hostFingerprint, remoteDir: path.join(s.root, "listed"), credentials: { privateKey: s.privateKey } };
    assert.equal((await api("POST", url, { body })).status, 401, "no token");
    assert.equal((await api("POST", url, { body: { ...body, host: "" }, token: adminToken })).status, 400);
    const wrong = await api("POST", url, { body: { ...body, hostFingerprint: "SHA256:" + "A".repeat(43) }, token: adminToken });
    assert.equal(wrong.status, 502);
    assert.match(((await wrong.json()) as any).error, /host key/i);
    const ok = await api("POST", url, { body, token: adminToken });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.deepEqual(await ok.json(), { dir: path.join(s.root, "listed"), count: 2, entries: ["a.csv", "sub/"] });
    assert.ok(!output.includes(s.privateKey.split("\n")[1]), "the key is not logged");
  });

  it("a deployed flow pulls from a real sshd when injected; the key stays in the credentials store", async function () {
    const s = sshd!;
    const remoteDir = path.join(s.root, "ticks");
    const archivePath = path.join(work, "archive");
    const reportFile = path.join(work, "report.json");
    const errorFile = path.join(work, "errors.json");
    await fsp.mkdir(path.join(remoteDir, "2024/01"), { recursive: true });
    await fsp.mkdir(archivePath);
    const data = crypto.randomBytes(200_000);
    await fsp.writeFile(path.join(remoteDir, "2024/01/EURUSD 02.csv"), data);

    const flows = [
      { id: "t1", type: "tab", label: "tick backup" },
      {
        id: "srv1",
        type: "sftp-server",
        name: "",
        host: s.host,
        port: s.port,
        username: s.username,
        hostFingerprint: s.hostFingerprint,
        credentials: { privateKey: s.privateKey },
      },
      { id: "arc1", type: "backup-archive", name: "ticks", path: archivePath },
      { id: "inj1", type: "inject", z: "t1", x: 100, y: 100, name: "", props: [{ p: "payload" }], repeat: "", crontab: "", once: false, topic: "", payload: "", payloadType: "date", wires: [["pull1"]] },
      {
        id: "pull1",
        type: "sftp-pull",
        z: "t1",
        x: 300,
        y: 100,
        name: "",
        server: "srv1",
        archive: "arc1",
        remoteDir,
        include: "**",
        exclude: "",
        settleSeconds: 120,
        maxAgeDays: 0,
        concurrency: 4,
        bwLimitKBps: 0,
        wires: [["file1"]],
      },
      { id: "file1", type: "file", z: "t1", x: 500, y: 100, name: "", filename: reportFile, filenameType: "str", appendNewline: true, createDir: false, overwriteFile: "true", encoding: "none", wires: [[]] },
      { id: "catch1", type: "catch", z: "t1", x: 300, y: 200, name: "", scope: null, uncaught: false, wires: [["file2"]] },
      { id: "file2", type: "file", z: "t1", x: 500, y: 200, name: "", filename: errorFile, filenameType: "str", appendNewline: true, createDir: false, overwriteFile: "false", encoding: "none", wires: [[]] },
    ];
    const deployed = await api("POST", "/flows", {
      token: adminToken,
      body: { flows },
      headers: { "Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": "full" },
    });
    assert.equal(deployed.status, 200, `deploy: ${await deployed.clone().text()}${log()}`);

    // The deploy answers before the new flows have started: retry the inject until its node exists.
    let trigger = await api("POST", "/inject/inj1", { token: adminToken });
    for (const t0 = Date.now(); trigger.status === 404 && Date.now() - t0 < 10_000; ) {
      await sleep(100);
      trigger = await api("POST", "/inject/inj1", { token: adminToken });
    }
    assert.equal(trigger.status, 200, `inject: ${await trigger.clone().text()}${log()}`);
    const started = Date.now();
    while (!fs.existsSync(reportFile) && !fs.existsSync(errorFile)) {
      if (Date.now() - started > 15_000) throw new Error(`no report within 15 s${log()}`);
      await sleep(100);
    }
    await sleep(100); // let the file node finish its write
    assert.equal(fs.existsSync(errorFile), false, `errors: ${fs.existsSync(errorFile) ? fs.readFileSync(errorFile, "utf8") : ""}`);
    const report = JSON.parse(fs.readFileSync(reportFile, "utf8"));
    assert.equal(report.kind, "pull");
    assert.equal(report.counts.new, 1);
    assert.equal(report.files[0].path, "2024/01/EURUSD 02.csv");
    assert.equal(report.files[0].sha256, crypto.createHash("sha256").update(data).digest("hex"));
    assert.ok((await fsp.readFile(path.join(archivePath, "2024/01/EURUSD 02.csv"))).equals(data), "byte-identical in the archive");

    // The key is in the (encrypted) credentials store only: not in the flow file, not in the API's answers, not in the log.
    const keyLine = s.privateKey.split("\n").find((l) => l.length > 40 && !l.startsWith("-----"))!;
    assert.ok(keyLine);
    const flowFile = await fsp.readFile(path.join(userDir, "flows.json"), "utf8");
    assert.ok(flowFile.includes("srv1") && !flowFile.includes(keyLine), "flows.json holds the server node but not the key");
    assert.ok(!(await fsp.readFile(path.join(userDir, "flows_cred.json"), "utf8")).includes(keyLine), "flows_cred.json is encrypted");
    const listed = await (await api("GET", "/flows", { token: adminToken, headers: { "Node-RED-API-Version": "v2" } })).text();
    assert.ok(listed.includes("srv1") && !listed.includes(keyLine), "GET /flows does not hand out the key");
    const creds = (await (await api("GET", "/credentials/sftp-server/srv1", { token: adminToken })).json()) as Record<string, unknown>;
    assert.equal(creds.has_privateKey, true);
    assert.ok(!JSON.stringify(creds).includes(keyLine));
    assert.ok(!output.includes(keyLine), "the key is not in Node-RED's log");
  });
});
