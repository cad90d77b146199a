/**
 * The editor in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
 * playwright-core, against a real Node-RED 4.1 with the package installed from its `npm pack`
 * tarball. The editor is opened through a reverse proxy under a Home Assistant style ingress path
 * (/api/hassio_ingress/<token>/), so every editor helper must use relative URLs to work.
 *
 * Screenshots go to test-artifacts/editor/ (ignored by git).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { MODULE, PROJECT, packAndInstall, startNodeRed, type Installed, type Runtime } from "./support/red-runtime";
import { startSshd, type Sshd } from "./support/sshd";
import { startAedes, type Broker } from "./support/brokers";
import { startHttpSink, type HttpSink } from "./support/sinks";

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const RED: any;
declare const $: any;

const INGRESS = "/api/hassio_ingress/Xy7token/";
const ARTIFACTS = path.join(PROJECT, "test-artifacts", "editor");
const TYPES = ["sftp-server", "backup-archive", "sftp-pull", "hash-verify", "disk-space", "ha-mqtt", "offsite-target", "offsite-upload", "alert"];

/** A reverse proxy that serves `target` under INGRESS only (HTTP and WebSocket), like HA ingress. */
function ingressProxy(targetPort: number): Promise<{ url: string; close(): Promise<void> }> {
  const strip = (url: string | undefined) => (url && url.startsWith(INGRESS) ? "/" + url.slice(INGRESS.length) : undefined);
  const server = http.createServer((req, res) => {
    const upstreamPath = strip(req.url);
    if (!upstreamPath) {
      res.writeHead(404).end(`not under the ingress path: ${req.url}`);
      return;
    }
    const up = http.request({ host: "127.0.0.1", port: targetPort, method: req.method, path: upstreamPath, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on("error", () => res.destroy());
    req.pipe(up);
  });
  const sockets = new Set<{ destroy(): void }>();
  server.on("upgrade", (req, socket, head) => {
    const upstreamPath = strip(req.url);
    if (!upstreamPath) return socket.destroy();
    const up = net.connect(targetPort, "127.0.0.1", () => {
      const headers = Object.entries(req.headers).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : v}`);
      up.write(`GET ${upstreamPath} HTTP/1.1\r\n${headers.join("\r\n")}\r\n\r\n`);
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(socket).add(up);
    const done = () => (socket.destroy(), up.destroy());
    up.on("error", done).on("close", done);
    socket.on("error", done).on("close", done);
  });
  server.on("connection", (s) => sockets.add(s));
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        url: `http://127.0.0.1:${port}${INGRESS}`,
        close: () => new Promise<void>((r) => (sockets.forEach((s) => s.destroy()), server.close(() => r()))),
      });
    }),
  );
}

describe("the editor in a real browser (Chromium, Node-RED 4.1, installed from the tarball, under an ingress path)", function () {
  this.timeout(60_000);

  let work: string;
  let installed: Installed;
  let red: Runtime;
  let proxy: { url: string; close(): Promise<void> };
  let browser: Browser;
  let page: Page;
  let sshd: Sshd;
  const pageErrors: string[] = [];
  const outsideIngress: string[] = [];
  let remoteDir: string;
  let archivePath: string;

  const log = () => `\n--- Node-RED output ---\n${red?.output().slice(-4000)}\n--- page errors ---\n${pageErrors.join("\n")}`;
  const shot = (name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

  before(async function () {
    this.timeout(300_000);
    work = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), "tick-editor-")));
    await fsp.mkdir(ARTIFACTS, { recursive: true });
    installed = await packAndInstall(work);
    sshd = await startSshd();
    remoteDir = path.join(sshd.root, "ticks");
    await fsp.mkdir(path.join(remoteDir, "2024/01"), { recursive: true });
    await fsp.writeFile(path.join(remoteDir, "2024/01/EURUSD.csv"), "t,bid,ask\n1,1.1,1.2\n");
    const old = new Date(Date.now() - 3600_000);
    await fsp.utimes(path.join(remoteDir, "2024/01/EURUSD.csv"), old, old);
    archivePath = path.join(work, "archive");
    await fsp.mkdir(archivePath);
    red = await startNodeRed(installed.userDir);
    proxy = await ingressProxy(red.port);
    // launch() gives the browser a fresh temporary profile (user-data dir) of its own.
    browser = await chromium.launch({
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (u.hostname === "127.0.0.1" && !u.pathname.startsWith(INGRESS)) outsideIngress.push(r.url());
    });
    await page.goto(proxy.url);
    await page.waitForFunction(() => typeof RED !== "undefined" && RED.nodes && RED.nodes.getType && RED.nodes.getType("sftp-pull"), undefined, { timeout: 30_000 });
    await page.waitForSelector('.red-ui-palette-node[data-palette-type="sftp-pull"]', { timeout: 30_000 });
  });

  // A test that failed with a dialog open must not fail the next one as well (its shade takes the clicks).
  afterEach(async function () {
    if (!page || this.currentTest?.state !== "failed") return;
    await page.evaluate(() => {
      for (let i = 0; i < 5; i++) RED.tray.close();
    });
    await page.waitForSelector(".red-ui-tray", { state: "detached", timeout: 10_000 }).catch(() => undefined);
  });

  after(async function () {
    this.timeout(30_000);
    await browser?.close().catch(() => undefined);
    await proxy?.close();
    await red?.stop();
    await sshd?.stop();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it("installs from the tarball with npm and no build step: no package of ours or a required dependency runs an install script", function () {
    const pkg = JSON.parse(fs.readFileSync(path.join(installed.userDir, "node_modules", MODULE, "package.json"), "utf8"));
    const scripts = Object.keys(pkg.scripts ?? {});
    for (const s of ["preinstall", "install", "postinstall"]) assert.ok(!scripts.includes(s), `${MODULE} has no ${s} script`);
    // ssh2's install script only tries to build its OPTIONAL native speed-up (cpu-features); the
    // install above ran with compilers replaced by /bin/false and the runtime below loads fine.
    assert.deepEqual(installed.withInstallScripts.filter((p) => p !== "ssh2" && p !== "cpu-features"), []);
    assert.ok(fs.existsSync(path.join(installed.userDir, "node_modules", MODULE, "dist", "nodes", "sftp-pull", "sftp-pull.js")));
  });

  it("the palette shows every node of ours in its own category, with our icons", async function () {
    const info = await page.evaluate((types: string[]) => types.map((t) => ({ t, def: RED.nodes.getType(t) && { category: RED.nodes.getType(t).category, icon: RED.nodes.getType(t).icon } })), TYPES);
    for (const { t, def } of info) {
      assert.ok(def, `${t} registered in the editor`);
      if (def.category !== "config") {
        assert.equal(def.category, "tick backup", `${t} in the tick backup category`);
        assert.ok(await page.$(`.red-ui-palette-node[data-palette-type="${t}"]`), `${t} in the palette`);
      }
    }
    await page.waitForSelector(`[id^="red-ui-palette-container-tick"]`, { state: "attached" });
    await shot("palette");
    assert.deepEqual(pageErrors, [], log());
  });

  it("Import > Examples lists our flow; it imports with no unknown nodes", async function () {
    await page.click("#red-ui-header-button-sidemenu");
    await page.click("#menu-item-import");
    await page.waitForSelector("#red-ui-clipboard-dialog", { state: "visible" });
    await page.click("#red-ui-clipboard-dialog >> text=Examples");
    await page.click(`#red-ui-clipboard-dialog >> text=${MODULE}`);
    await page.click("#red-ui-clipboard-dialog >> text=/^tick-backup$/");
    await page.click("#red-ui-clipboard-dialog-ok");
    // The imported nodes follow the mouse until placed: click on the canvas.
    await page.mouse.move(700, 500);
    await page.mouse.click(700, 500);
    await page.waitForFunction(() => RED.nodes.filterNodes({ type: "sftp-pull" }).length === 1);
    const summary = await page.evaluate(() => {
      const types: string[] = [];
      RED.nodes.eachNode((n: any) => types.push(n.type));
      RED.nodes.eachConfig((n: any) => types.push(n.type));
      return { types, unknown: types.filter((t) => !RED.nodes.getType(t)) };
    });
    assert.deepEqual(summary.unknown, [], `unknown node types: ${summary.unknown}`);
    for (const t of TYPES) assert.ok(summary.types.includes(t), `the example uses ${t}`);
    assert.equal(await page.$$eval(".red-ui-notification", (els) => els.filter((e) => /unknown/i.test(e.textContent ?? "")).length), 0, "no unknown-node notice");
  });

  it("every node's dialog opens without an error and shows its help", async function () {
    const ids = await page.evaluate(() => {
      const out: { id: string; type: string; config: boolean }[] = [];
      RED.nodes.eachNode((n: any) => out.push({ id: n.id, type: n.type, config: false }));
      RED.nodes.eachConfig((n: any) => out.push({ id: n.id, type: n.type, config: true }));
      return out;
    });
    for (const { id, type, config } of ids.filter((n) => TYPES.includes(n.type))) {
      await page.evaluate(({ id, config }) => (config ? RED.editor.editConfig("", RED.nodes.node(id).type, id) : RED.editor.edit(RED.nodes.node(id))), { id, config });
      const prefix = config ? "node-config-input" : "node-input";
      await page.waitForSelector(`.red-ui-tray .red-ui-tray-body form[id="dialog-form"] [id^="${prefix}-"], .red-ui-tray [id^="${prefix}-"]`, { state: "visible", timeout: 10_000 });
      await page.waitForTimeout(150);
      const help = await page.evaluate((t) => $(`script[data-help-name="${t}"]`).html() || "", type);
      assert.match(help, /<h3>Inputs<\/h3>[\s\S]*<h3>Outputs<\/h3>[\s\S]*<h3>Details<\/h3>/, `${type} help has Inputs, Outputs and Details`);
      if (type === "sftp-pull") await shot("dialog-sftp-pull");
      await page.click(config ? "#node-config-dialog-cancel" : "#node-dialog-cancel");
      await page.waitForSelector(".red-ui-tray", { state: "detached", timeout: 10_000 });
    }
    assert.deepEqual(pageErrors, [], log());
  });

  /** Type `value` into `selector`, leave the field, and return the reason shown for it (or null when valid). */
  async function reasonFor(selector: string, value: string): Promise<string | null> {
    // Seen on a busy machine, right after a dialog opened: the field showed the node's value again
    // after the typing (the editor still filling in the dialog). Then the typing is done again, once.
    for (let attempt = 1; ; attempt++) {
      await page.fill(selector, value);
      await page.dispatchEvent(selector, "change");
      await page.waitForTimeout(100);
      const held = await page.inputValue(selector);
      if (held === value) break;
      if (attempt === 2) throw new Error(`${selector} holds ${JSON.stringify(held)} after typing ${JSON.stringify(value)} twice; page errors: ${pageErrors.join("; ")}`);
      await page.waitForTimeout(500);
    }
    return reasonShown(selector);
  }

  /** Choose `value` in the select `selector` and return the reason shown for `field` (or null when valid). */
  async function choose(selector: string, value: string, field = selector): Promise<string | null> {
    await page.selectOption(selector, value);
    await page.waitForTimeout(100);
    return reasonShown(field);
  }

  /** The reason shown for a field now: the text of its tooltip when it is marked invalid, else null. */
  async function reasonShown(selector: string): Promise<string | null> {
    if (!(await page.$eval(selector, (el) => el.classList.contains("input-error")))) return null;
    // The reason is the text of the field's tooltip: open it and wait for it to show (it may take
    // a moment on a busy machine), read it, close it.
    if (!(await page.evaluate((sel) => Boolean($(sel).data("tooltip")), selector))) return "(marked invalid, without a reason)";
    await page.evaluate((sel) => $(sel).data("tooltip").open(true), selector);
    const text = await page
      .waitForFunction(() => $(".red-ui-popover:visible").last().text() || false, undefined, { timeout: 5_000 })
      .then((h) => h.jsonValue() as Promise<string>)
      .catch(() => "(marked invalid; its tooltip did not show)");
    await page.evaluate((sel) => $(sel).data("tooltip").close(true), selector);
    return text;
  }


  it("the archive and Home Assistant dialogs mark invalid values with the reason", async function () {
    for (const [type, field, bad, reason, good] of [
      ["backup-archive", "path", "relative/ticks", /absolute path/, "/media/backup/ticks"],
      ["backup-archive", "name", "Ticks Archive", /lower-case/, "ticks"],
      ["ha-mqtt", "broker", "core-mosquitto:1883", /mqtt:\/\//, "mqtt://core-mosquitto:1883"],
      ["ha-mqtt", "discoveryPrefix", "home assistant/", /Discovery prefix: .*spaces/, "homeassistant"],
      ["ha-mqtt", "baseTopic", "ticks/#", /Base topic: .*#/, "tick-backup/home"],
      ["ha-mqtt", "ca", "/etc/ssl/ca.pem", /CA: .*PEM/, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"],
    ] as const) {
      await page.evaluate((t) => { let id = ""; RED.nodes.eachConfig((n: any) => { if (n.type === t) id = n.id; }); RED.editor.editConfig("", t, id); }, type);
      await page.waitForSelector(`#node-config-input-${field}`, { state: "visible" });
      assert.match((await reasonFor(`#node-config-input-${field}`, bad)) ?? "(valid)", reason, `${type}.${field}`);
      assert.equal(await reasonFor(`#node-config-input-${field}`, good), null, `${type}.${field} valid`);
      await page.click("#node-config-dialog-cancel");
      await page.waitForSelector(`#node-config-input-${field}`, { state: "detached" });
    }
  });

  /** Opens the dialog of the first node of `type` (a config node when `config`) that `pick` accepts. */
  async function openDialog(type: string, config: boolean, pick: Record<string, unknown> = {}): Promise<void> {
    await page.evaluate(({ type, config, pick }) => {
      const fits = (n: any) => n.type === type && Object.entries(pick).every(([k, v]) => n[k] === v);
      if (config) {
        let id = "";
        RED.nodes.eachConfig((n: any) => { if (!id && fits(n)) id = n.id; });
        RED.editor.editConfig("", type, id);
      } else RED.editor.edit(RED.nodes.filterNodes({ type }).find(fits));
    }, { type, config, pick });
    await page.waitForSelector(`.red-ui-tray [id^="${config ? "node-config-input" : "node-input"}-"]`, { state: "visible", timeout: 10_000 });
    await page.waitForTimeout(200);
  }

  async function closeDialog(config: boolean): Promise<void> {
    await page.click(config ? "#node-config-dialog-cancel" : "#node-dialog-cancel");
    await page.waitForSelector(".red-ui-tray", { state: "detached", timeout: 10_000 });
  }

  it("the verify, disk-space, offsite and alert dialogs mark invalid values with the reason, and accept good ones", async function () {
    /** [field, bad value, the reason it must give, a good value] for text and number fields. */
    const check = async (prefix: string, rows: [string, string, RegExp, string][]) => {
      for (const [field, bad, reason, good] of rows) {
        const sel = `#${prefix}-${field}`;
        assert.match((await reasonFor(sel, bad)) ?? "(valid)", reason, `${field} = ${JSON.stringify(bad)}`);
        assert.equal(await reasonFor(sel, good), null, `${field} = ${JSON.stringify(good)} is valid`);
      }
    };

    await openDialog("hash-verify", false, { mode: "scrub" });
    await check("node-input", [
      ["partitions", "0", /Partitions: .*1 to 10000/, "7"],
      ["remoteDir", " /data/ticks", /Remote folder: .*spaces/, "/data/ticks"],
    ]);
    // A drill needs an offsite target; scrub does not. The reason follows the mode.
    // This scrub node has no target: as a drill it needs one.
    assert.match((await choose("#node-input-mode", "drill", "#node-input-target")) ?? "(valid)", /Target: .*drill.*offsite target/);
    const targetId = await page.$eval("#node-input-target", (el) => Array.from((el as HTMLSelectElement).options, (o) => o.value).find((v) => v !== "_ADD_"));
    assert.ok(targetId, "the example's offsite target is offered");
    assert.equal(await choose("#node-input-target", targetId), null, "a drill with a target");
    assert.match((await choose("#node-input-target", "_ADD_")) ?? "(valid)", /Target: .*drill.*offsite target/);
    await check("node-input", [["sample", "0", /Sample: .*1 to 100000/, "25"]]);
    assert.equal(await choose("#node-input-mode", "scrub", "#node-input-target"), null, "back to scrub: no target needed");
    assert.equal(await choose("#node-input-server", "_ADD_"), null, "scrub needs no server");
    assert.match((await choose("#node-input-mode", "origin", "#node-input-server")) ?? "(valid)", /Server: origin mode/);
    await closeDialog(false);

    await openDialog("disk-space", false);
    await check("node-input", [
      ["warnPercent", "150", /Warn at: .*0 to 100/, "85"],
      ["criticalPercent", "-1", /Critical at: .*0 to 100/, "95"],
      ["warnFree", "50 XB", /Warn below: .*size like 50 GB/, "50 GB"],
      ["criticalFree", "ten", /Critical below: .*size/, "200 GiB"],
      ["warnDays", "-3", /Warn when full in: .*days/, "30"],
      ["extraPaths", "/mnt/nas\nmedia/offline", /Also watch: absolute .*media\/offline/, "/mnt/nas\n/media/offline"],
    ]);
    await closeDialog(false);

    await openDialog("offsite-upload", false);
    await check("node-input", [
      ["concurrency", "0", /Files at once: .*1 to 32/, "4"],
      ["bwLimitKBps", "-1", /Limit: .*0 or more/, "0"],
    ]);
    await closeDialog(false);

    await openDialog("offsite-target", true);
    const t = "node-config-input";
    await check(t, [
      ["path", "media/offsite", /Folder: an absolute path/, "/media/offsite"],
      ["encryptTo", "age1tooshort", /Encrypt to: an age public key/, ""],
    ]);
    // Each kind checks its own fields; the others' leftovers do not count.
    await page.fill(`#${t}-path`, "not/absolute");
    assert.match((await choose(`#${t}-kind`, "s3", `#${t}-bucket`)) ?? "(valid)", /Bucket: required/);
    assert.equal(await reasonShown(`#${t}-path`), null, "an S3 target ignores the folder field");
    await check(t, [
      ["bucket", "https://s3.example.com/ticks", /Bucket: 3 to 63/, "tick-archive"],
      ["endpoint", "s3.example.com", /Endpoint: .*URL/, "https://s3.eu-central-003.backblazeb2.com"],
      ["region", "eu central", /Region: /, "eu-central-003"],
      ["prefix", "ticks/../other", /Prefix: .*\.\./, "tick-backup/home"],
    ]);
    assert.equal(await reasonFor(`#${t}-objectLockDays`, "0"), null, "no Object Lock: the days do not count");
    assert.match((await choose(`#${t}-objectLockMode`, "COMPLIANCE", `#${t}-objectLockDays`)) ?? "(valid)", /Object Lock: .*1 to 36500/);
    await check(t, [["objectLockDays", "0.5", /Object Lock: .*whole days/, "30"]]);
    assert.match((await choose(`#${t}-kind`, "rclone", `#${t}-remote`)) ?? "(valid)", /Remote: required/);
    await check(t, [
      ["remote", "--config=/tmp/x", /Remote: must not start with -/, "gdrive:tick-backup"],
      ["remote", "gdrive", /Remote: name:folder/, ":sftp,host=backup.example.com:ticks"],
      ["rcloneConfig", "rclone.conf", /rclone.conf: an absolute path/, "/config/rclone/rclone.conf"],
    ]);
    await closeDialog(true);

    await openDialog("alert", false);
    await check("node-input", [
      ["remindHours", "-2", /Remind every: hours/, "24"],
      ["emailPort", "70000", /Port: .*1 to 65535/, "587"],
      ["ntfyServer", "ntfy.sh", /ntfy server: .*https?:\/\//, "https://ntfy.example.com"],
      ["haUrl", "homeassistant.local:8123", /Home Assistant URL: .*http/, "http://homeassistant.local:8123"],
      ["haService", "Mobile App", /Notify service: /, "mobile_app_pixel_7"],
    ]);
    // E-mail needs a server, a From and a To together: filling one marks the others.
    assert.equal(await reasonFor("#node-input-emailTo", "me@example.com, Partner <p@example.com>"), null);
    assert.match((await reasonShown("#node-input-emailHost")) ?? "(valid)", /SMTP server: needed/);
    assert.match((await reasonShown("#node-input-emailFrom")) ?? "(valid)", /From: needed/);
    await shot("dialog-alert-email-incomplete");
    await check("node-input", [
      ["emailHost", "smtp://smtp.example.com:587", /SMTP server: a host name/, "smtp.example.com"],
      ["emailFrom", "backup", /From: one e-mail address/, "Backup <backup@example.com>"],
      ["emailTo", "me@", /To: e-mail addresses/, "me@example.com"],
    ]);
    // Emptied again, e-mail is off and nothing is missing.
    await page.fill("#node-input-emailFrom", "");
    await page.fill("#node-input-emailHost", "");
    assert.equal(await reasonFor("#node-input-emailTo", ""), null);
    assert.equal(await reasonShown("#node-input-emailHost"), null);
    assert.equal(await reasonShown("#node-input-emailFrom"), null);
    await closeDialog(false);
    assert.deepEqual(pageErrors, [], log());
  });

  it("Test in the offsite target and Home Assistant dialogs and Send test alert reach real servers through the ingress path", async function () {
    const mqttLogin = { username: "ha-user", password: "Broker-Pass-42" };
    let broker: Broker | undefined;
    let sink: HttpSink | undefined;
    try {
      broker = await startAedes({ credentials: mqttLogin });
      sink = await startHttpSink();
      const offsite = path.join(work, "offsite-disk");
      await fsp.mkdir(offsite);

      // The offsite folder: written once, proven, nothing else touched; a missing folder is named.
      await openDialog("offsite-target", true);
      await page.selectOption("#node-config-input-kind", "directory");
      await page.fill("#node-config-input-path", offsite);
      await page.click("#node-config-tick-target-test");
      await page.waitForSelector("#node-config-tick-target-test-result >> text=Reachable and writable", { timeout: 20_000 });
      assert.ok(fs.existsSync(path.join(offsite, ".tick-backup", "editor-test.txt")), "the probe object is there");
      assert.deepEqual(fs.readdirSync(offsite), [".tick-backup"], "nothing outside the target's own area");
      await page.fill("#node-config-input-path", path.join(work, "unplugged"));
      await page.click("#node-config-tick-target-test");
      await page.waitForSelector("#node-config-tick-target-test-result >> text=Test failed", { timeout: 20_000 });
      assert.match((await page.textContent("#node-config-tick-target-test-result")) ?? "", /unplugged/);
      await closeDialog(true);

      // The broker: connects with the typed login; a wrong password is the broker's refusal.
      await openDialog("ha-mqtt", true);
      await page.fill("#node-config-input-broker", broker.url);
      await page.fill("#node-config-input-username", mqttLogin.username);
      await page.fill("#node-config-input-password", mqttLogin.password);
      await page.click("#node-config-tick-mqtt-test");
      await page.waitForSelector("#node-config-tick-mqtt-test-result >> text=Connected to", { timeout: 20_000 });
      await page.fill("#node-config-input-password", "wrong");
      await page.click("#node-config-tick-mqtt-test");
      await page.waitForSelector("#node-config-tick-mqtt-test-result >> text=Could not connect", { timeout: 20_000 });
      assert.match((await page.textContent("#node-config-tick-mqtt-test-result")) ?? "", /not authorized/);
      await shot("dialog-ha-mqtt-test");
      await closeDialog(true);

      // The alert: a webhook typed in the dialog receives the test notice; the ping URL is not called.
      await openDialog("alert", false);
      await page.fill("#node-input-webhookUrl", `${sink.url}/hook/Typed-Secret`);
      await page.fill("#node-input-pingUrl", `${sink.url}/ping/Dead-Man`);
      await page.click("#node-input-tick-alert-test");
      await page.waitForSelector("#node-input-tick-alert-test-result >> text=webhook: sent", { timeout: 20_000 });
      const seen = sink.requests.map((r) => r.path);
      assert.deepEqual(seen, ["/hook/Typed-Secret"], "one webhook call, no ping");
      assert.match(sink.requests[0].body, /test alert/);
      await closeDialog(false);
    } finally {
      await broker?.stop();
      await sink?.stop();
    }
    assert.deepEqual(outsideIngress, [], "every request stays under the ingress path");
    assert.deepEqual(pageErrors, [], log());
  });

  it("the server dialog: invalid values are marked with the reason; Fetch host key asks the real sshd and pins it on confirmation", async function () {
    const pullId = await page.evaluate(() => RED.nodes.filterNodes({ type: "sftp-pull" })[0].id);
    await openDialog("sftp-pull", false);
    // Ready when the field shows the node's own value (typing before that could be overwritten).
    await page.waitForFunction((id) => $("#node-input-remoteDir:visible").val() === RED.nodes.node(id).remoteDir, pullId, { timeout: 10_000 });
    assert.match((await reasonFor("#node-input-remoteDir", "")) ?? "(valid)", /required|folder|directory/i);
    assert.equal(await reasonFor("#node-input-remoteDir", remoteDir), null);
    assert.match((await reasonFor("#node-input-concurrency", "0")) ?? "(valid)", /1.*64|between|at least/i);
    assert.equal(await reasonFor("#node-input-concurrency", "4"), null);
    assert.match((await reasonFor("#node-input-settleSeconds", "-5")) ?? "(valid)", /0|negative|seconds/i);
    assert.equal(await reasonFor("#node-input-settleSeconds", "1"), null);

    // The server config node, from the pencil beside it.
    await page.click("#node-input-btn-server-edit");
    await page.waitForSelector("#node-config-input-host", { state: "visible" });
    assert.match((await reasonFor("#node-config-input-port", "70000")) ?? "(valid)", /1.*65535/);
    assert.equal(await reasonFor("#node-config-input-port", String(sshd.port)), null);
    assert.match((await reasonFor("#node-config-input-host", "bad host/name")) ?? "(valid)", /host/i);
    assert.equal(await reasonFor("#node-config-input-host", sshd.host), null);
    assert.match((await reasonFor("#node-config-input-hostFingerprint", "SHA256:tooShort")) ?? "(valid)", /SHA256:.*43/);
    assert.match((await reasonFor("#node-config-input-hostFingerprint", "")) ?? "(valid)", /Fetch host key|required/i);
    await page.fill("#node-config-input-username", sshd.username);
    await page.fill("#node-config-input-privateKey", sshd.privateKey);

    await page.click("#node-config-tick-fetch-key");
    await page.waitForSelector(`#node-config-tick-key-result >> text=${sshd.hostFingerprint}`, { timeout: 15_000 });
    await shot("dialog-sftp-server-host-key");
    assert.equal(await page.inputValue("#node-config-input-hostFingerprint"), "", "nothing is pinned before the user confirms");
    await page.click("#node-config-tick-key-result >> text=It matches");
    assert.equal(await page.inputValue("#node-config-input-hostFingerprint"), sshd.hostFingerprint);
    assert.equal(await page.$eval("#node-config-input-hostFingerprint", (el) => el.classList.contains("input-error")), false);

    // Test connection: logs in with the typed key and lists the folder.
    await page.fill("#node-config-tick-test-dir", remoteDir);
    await page.click("#node-config-tick-test");
    await page.waitForSelector("#node-config-tick-test-result >> text=Connected", { timeout: 20_000 });
    assert.match(await page.textContent("#node-config-tick-test-result") ?? "", /holds 1 entries[\s\S]*2024\//);
    await shot("dialog-sftp-server-test-connection");
    await page.click("#node-config-dialog-ok");
    await page.waitForSelector("#node-config-input-host", { state: "detached" });
    await page.click("#node-dialog-ok");
    await page.waitForSelector("#node-input-remoteDir", { state: "detached" });
    const pullLabel = await page.evaluate(() => {
      const n = RED.nodes.filterNodes({ type: "sftp-pull" })[0];
      return RED.utils.getNodeLabel(n);
    });
    assert.equal(pullLabel, `pull tick server:${remoteDir}`);
    assert.deepEqual(outsideIngress, [], "every request stays under the ingress path");
  });

  it("deploys the flow; the pull node's status turns green after an injected run, and the archive holds the file", async function () {
    // Point the archive at a temp folder, and limit the example to the pull: the other nodes
    // reach for hosts that do not exist here (an MQTT broker, an offsite disk) and that is fine.
    await page.evaluate((p) => {
      const a = RED.nodes.filterNodes({ type: "backup-archive" })[0] ?? null;
      const archive = a ?? (() => { let c: any; RED.nodes.eachConfig((n: any) => { if (n.type === "backup-archive") c = n; }); return c; })();
      archive.path = p;
      archive.changed = true;
      archive.dirty = true;
      RED.nodes.dirty(true);
    }, archivePath);
    await page.click("#red-ui-header-button-deploy");
    await page.waitForFunction(() => $("#red-ui-header-button-deploy").hasClass("disabled"), undefined, { timeout: 20_000 });
    const injectId = await page.evaluate(() => RED.nodes.filterLinks({ target: RED.nodes.filterNodes({ type: "sftp-pull" })[0] }).map((l: any) => l.source).find((n: any) => n.type === "inject").id);
    // Click the inject node's button in the canvas (on the example's own tab).
    await page.evaluate((id) => { RED.workspaces.show(RED.nodes.node(id).z); RED.view.reveal(id); }, injectId);
    await page.waitForTimeout(500);
    await page.click(`[id="${injectId}"] .red-ui-flow-node-button`);
    const pullId = await page.evaluate(() => RED.nodes.filterNodes({ type: "sftp-pull" })[0].id);
    await page.waitForFunction(
      (id) => {
        const n = RED.nodes.node(id);
        return n.status && n.status.fill === "green";
      },
      pullId,
      { timeout: 30_000 },
    ).catch(async (e) => {
      await shot("deployed-failed");
      const st = await page.evaluate((id) => RED.nodes.node(id).status, pullId);
      throw new Error(`${e} — pull status ${JSON.stringify(st)}${log()}`);
    });
    await shot("deployed");
    assert.equal(fs.readFileSync(path.join(archivePath, "2024/01/EURUSD.csv"), "utf8"), "t,bid,ask\n1,1.1,1.2\n");
    const keyLine = sshd.privateKey.split("\n").find((l) => l.length > 40 && !l.startsWith("-----"))!;
    assert.ok(!fs.readFileSync(path.join(installed.userDir, "flows.json"), "utf8").includes(keyLine), "the key is not in flows.json");
    assert.deepEqual(outsideIngress, [], "every request stays under the ingress path");
  });
});
