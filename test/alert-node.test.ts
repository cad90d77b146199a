/**
 * The alert node in a Node-RED runtime (node-red-node-test-helper): a real pull from a REAL OpenSSH
 * sshd fails, its catch node and the archive's health both reach the alert node, and the notice goes
 * out once to a real SMTP server and a real HTTP receiver (ntfy, webhook, Home Assistant, pings).
 * Only the clock is faked (sinon, Date only) to let the recovery settle.
 */
import { nodeRedPath } from "./support/red-path";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as util from "node:util";
import * as sinon from "sinon";
import { startSshd, type Sshd } from "./support/sshd";
import { startHttpSink, startSmtpSink, type HttpSink, type SmtpSink } from "./support/sinks";
import { tempDir, write } from "./support/tree";
import { waitFor } from "./support/wait";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const serverNode = require(path.join(__dirname, "../nodes/sftp-server/sftp-server.js"));
const archiveNode = require(path.join(__dirname, "../nodes/backup-archive/backup-archive.js"));
const pullNode = require(path.join(__dirname, "../nodes/sftp-pull/sftp-pull.js"));
const alertNode = require(path.join(__dirname, "../nodes/alert/alert.js"));
const verifyNode = require(path.join(__dirname, "../nodes/hash-verify/hash-verify.js"));
helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
const SECRETS = {
  emailPassword: "Smtp-Secret-77",
  ntfyTopic: "ntfy-topic-Secret-5",
  ntfyToken: "tk_ntfySecret88",
  haToken: "ha.Secret.Token.99",
  webhookPath: "hook/Secret-Webhook-Path-1",
  pingPath: "ping/Secret-Ping-Uuid-2",
};

describe("node alert", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let smtp: SmtpSink;
  let http: HttpSink;
  let clock: sinon.SinonFakeTimers | undefined;
  const shown: string[] = [];

  before(async () => (sshd = await startSshd()));
  after(async () => sshd?.stop());
  beforeEach(async () => {
    smtp = await startSmtpSink({ user: "backup", password: SECRETS.emailPassword });
    http = await startHttpSink();
  });
  afterEach(async function () {
    clock?.restore();
    clock = undefined;
    const spy = helper.log();
    if (spy) for (const call of spy.getCalls()) shown.push(util.inspect(call.args, { depth: 10 }));
    await helper.unload();
    await smtp.stop();
    await http.stop();
    const everything = shown.splice(0).join("\n");
    for (const s of Object.values(SECRETS)) assert.ok(!everything.includes(s), `a secret (${s}) appeared in a log, status or msg`);
  });

  function flow(o: { archivePath: string; remoteDir: string; alert?: Record<string, unknown> }) {
    return [
      { id: "f1", type: "tab", label: "t" },
      { id: "srv", type: "sftp-server", host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint },
      { id: "arc", type: "backup-archive", name: "ticks", path: o.archivePath, staleHours: 3 },
      { id: "pull", type: "sftp-pull", z: "f1", x: 100, y: 100, name: "pull ticks", server: "srv", archive: "arc", remoteDir: o.remoteDir, include: "**", exclude: "", settleSeconds: 0, maxAgeDays: 0, concurrency: 2, bwLimitKBps: 0, wires: [["pulled"]] },
      { id: "pulled", type: "helper", z: "f1", x: 300, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 100, y: 200, scope: null, uncaught: false, wires: [["alert"]] },
      {
        id: "alert", type: "alert", z: "f1", x: 300, y: 200, archive: "arc", remindHours: 24, staleHours: "",
        emailHost: "127.0.0.1", emailPort: smtp.port, emailSecurity: "none", emailFrom: "pi@home.example", emailTo: "me@home.example",
        ntfyServer: `${http.url}/ntfy`, haUrl: http.url, haService: "mobile_app_pixel_7", ...o.alert, wires: [["out"]],
      },
      { id: "out", type: "helper", z: "f1", x: 500, y: 200, wires: [] },
    ];
  }
  const creds = () => ({
    srv: { privateKey: sshd.privateKey },
    alert: { emailUser: "backup", emailPassword: SECRETS.emailPassword, ntfyTopic: SECRETS.ntfyTopic, ntfyToken: SECRETS.ntfyToken, haToken: SECRETS.haToken, webhookUrl: `${http.url}/${SECRETS.webhookPath}`, pingUrl: `${http.url}/${SECRETS.pingPath}` },
  });

  async function load(f: object[]) {
    await helper.load([serverNode, archiveNode, pullNode, alertNode, verifyNode], f, creds());
    const alert = helper.getNode("alert");
    const statuses: any[] = [];
    const original = alert.status;
    alert.status = function (s: any) {
      statuses.push(s);
      shown.push(util.inspect(s));
      return original.call(this, s);
    };
    const events: any[] = [];
    helper.getNode("out").on("input", (m: any) => {
      shown.push(util.inspect(m, { depth: 10 }));
      events.push(m);
    });
    const pull = helper.getNode("pull");
    const runPull = () =>
      new Promise<void>((resolve) => {
        const pulled = helper.getNode("pulled");
        const onDone = () => resolve();
        pulled.once("input", onDone);
        pull.receive({ payload: "go" });
        // a failing pull sends nothing: wait for its failure status instead
        const start = pull.status;
        pull.status = function (s: any) {
          shown.push(util.inspect(s));
          if (s.fill === "red" || s.fill === "green" || s.fill === "yellow") {
            pull.status = start;
            pulled.off("input", onDone);
            setTimeout(resolve, 50);
          }
          return start.call(this, s);
        };
      });
    return { alert, statuses, events, runPull };
  }

  const sent = (prefix: string) => http.requests.filter((r) => r.path.startsWith(prefix));

  it("a verify mismatch, seen by the catch node and the archive's health, is one notice", async function () {
    const remoteDir = tempDir("tick-alert-remote-");
    write(remoteDir, "EURUSD/2026-11-25.csv", "t,bid,ask\n1,1.1,1.2\n");
    const archivePath = tempDir("tick-alert-archive-");
    const verify = { id: "verify", type: "hash-verify", z: "f1", x: 100, y: 300, name: "scrub", archive: "arc", mode: "full", partitions: 7, server: "", remoteDir: "", wires: [[]] };
    const l = await load([...flow({ archivePath, remoteDir }), verify]);
    await l.runPull();
    fs.writeFileSync(path.join(archivePath, "EURUSD/2026-11-25.csv"), "t,bid,ask\n1,9.9,1.2\n"); // the disk rotted one byte
    const received = () => helper.log().getCalls().filter((c: any) => c.args[0].event === "node.alert.receive").length;
    helper.getNode("verify").receive({});
    await waitFor("the catch node's message at the alert node", () => received() === 1);
    const opened = await waitFor("the opened event", () => l.events.find((m) => m.payload.event === "opened"));
    assert.equal(opened.payload.code, "VERIFY_MISMATCH");
    await waitFor("the mail", () => smtp.mails.length === 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(l.events.map((m) => [m.payload.event, m.payload.key]), [["opened", "health:VERIFY_MISMATCH"]], "one notice, not one more for the catch message");
    assert.equal(smtp.mails.length, 1);
  });

  it("a failing pull is announced once on every channel, and its recovery once, after it settles", async function () {
    const remoteRoot = tempDir("tick-alert-remote-");
    const remoteDir = path.join(remoteRoot, "ticks"); // not there yet: the pull fails
    const archivePath = tempDir("tick-alert-archive-");
    const l = await load(flow({ archivePath, remoteDir }));

    await l.runPull();
    const opened = await waitFor("the opened event", () => l.events.find((m) => m.payload.event === "opened"));
    await waitFor("the mail", () => smtp.mails.length === 1);
    assert.equal(opened.topic, "alert/opened");
    const e = opened.payload;
    assert.equal(e.key, "node:pull");
    assert.equal(e.sourceName, "pull ticks");
    assert.equal(e.archive, "ticks");
    assert.deepEqual(e.deliveries.map((d: any) => [d.channel, d.ok]), [["email", true], ["ntfy", true], ["webhook", true], ["home-assistant", true]]);
    // The catch node is first: its error's own code names the incident (the archive's PULL_FAILED joins it).
    assert.match(e.title, /^PROBLEM: pull ticks: [a-z ]+ failed \(ticks\)$/);
    assert.match(e.text, /What to do: /);
    assert.ok(smtp.mails[0].raw.includes(`Subject: ${e.title}`));

    const ntfy = sent("/ntfy");
    assert.equal(ntfy.length, 1);
    assert.equal(ntfy[0].headers.authorization, `Bearer ${SECRETS.ntfyToken}`);
    assert.equal((ntfy[0].json as any).topic, SECRETS.ntfyTopic);
    const ha = sent("/api/services/notify/mobile_app_pixel_7");
    assert.equal(ha.length, 1);
    assert.equal(ha[0].headers.authorization, `Bearer ${SECRETS.haToken}`);
    assert.equal((ha[0].json as any).title, e.title);
    const webhook = sent(`/${SECRETS.webhookPath}`);
    assert.equal((webhook[0].json as any).event, "opened");
    await waitFor("the /fail ping", () => sent(`/${SECRETS.pingPath}/fail`).length === 1);

    const status = await waitFor("the status", () => l.statuses.find((s) => /^1 open · last push \d\d:\d\d$/.test(s.text)));
    assert.equal(status.fill, "red");

    // The same failure again (the archive's outcome and the catch node's msg.error): nothing new is sent.
    await l.runPull();
    await l.alert.receive({ error: { message: "once more", source: { id: "pull", type: "sftp-pull", name: "pull ticks" } } });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(l.events.length, 1);
    assert.equal(smtp.mails.length, 1);
    assert.equal(sent(`/${SECRETS.webhookPath}`).length, 1);

    // The server's folder appears: the pull succeeds; the recovery note goes out once it has lasted 5 minutes.
    write(remoteDir, "EURUSD/2026-11-26.csv", "t,bid,ask\n1,1.1,1.2\n");
    clock = sinon.useFakeTimers({ now: Date.now(), toFake: ["Date"] });
    await l.runPull();
    await waitFor("the success ping", () => sent(`/${SECRETS.pingPath}`).some((r) => r.path === `/${SECRETS.pingPath}`));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(l.events.length, 1, "not resolved at once");
    clock.tick(6 * 60_000);
    await l.runPull();
    const resolved = await waitFor("the resolved event", () => l.events.find((m) => m.payload.event === "resolved"));
    assert.equal(resolved.payload.key, "node:pull");
    assert.match(resolved.payload.text, /^Recovered: pull ticks: [a-z ]*failed\./);
    await waitFor("the recovery mail", () => smtp.mails.length === 2);
    assert.match(smtp.mails[1].raw, /Subject: RESOLVED: pull ticks: [a-z ]*failed \(ticks\)/);
    await waitFor("status no incidents", () => l.statuses.find((s) => /^no incidents · last push/.test(s.text)));

    const saved = fs.readFileSync(path.join(archivePath, ".tick-backup", "alert-alert.json"), "utf8");
    assert.deepEqual(JSON.parse(saved).incidents, {});
    for (const s of Object.values(SECRETS)) assert.ok(!saved.includes(s));
  });

  it("restart in the middle: a redeployed flow neither forgets the incident nor announces it again", async function () {
    const remoteDir = path.join(tempDir("tick-alert-remote-"), "absent");
    const archivePath = tempDir("tick-alert-archive-");
    let l = await load(flow({ archivePath, remoteDir }));
    await l.runPull();
    await waitFor("the opened event", () => l.events.find((m) => m.payload.event === "opened"));
    await waitFor("the mail", () => smtp.mails.length === 1);
    await helper.unload();

    l = await load(flow({ archivePath, remoteDir }));
    await waitFor("1 open after the restart", () => l.statuses.find((s) => /^1 open · last push/.test(s.text)));
    await l.runPull();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(l.events.length, 0, "no second notice");
    assert.equal(smtp.mails.length, 1);
  });

  it("a failing channel shows in the status and the log; the others still deliver", async function () {
    http.statusFor.set(`/${SECRETS.webhookPath}`, 500);
    const archivePath = tempDir("tick-alert-archive-");
    const l = await load(flow({ archivePath, remoteDir: "/nonexistent-dir-for-alert", alert: { emailHost: "", emailTo: "", emailFrom: "", ntfyServer: "http://ntfy.invalid" } }));
    l.alert.receive({ topic: "nas", ok: false, payload: "the NAS share is gone" });
    const opened = await waitFor("the opened event", () => l.events.find((m) => m.payload.event === "opened"));
    assert.deepEqual(opened.payload.deliveries.map((d: any) => [d.channel, d.ok]), [["ntfy", false], ["webhook", false], ["home-assistant", true]]);
    const status = await waitFor("the failing status", () => l.statuses.find((s) => /NTFY, WEBHOOK FAILING/.test(s.text)));
    assert.equal(status.fill, "yellow");
    const warnings = helper.log().getCalls().map((c: any) => c.args[0]).filter((m: any) => m.level === 30 && m.type === "alert").map((m: any) => String(m.msg));
    assert.ok(warnings.some((w: string) => /not delivered: ntfy: cannot reach ntfy\.invalid/.test(w)), warnings.join("\n"));
    assert.ok(warnings.some((w: string) => /not delivered: webhook: 127\.0\.0\.1:\d+ answered HTTP 500/.test(w)));
  });

  it("the example flow: its test injects reach the alert node, which opens and resolves an incident named test", async function () {
    const example = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "examples", "tick-backup.json"), "utf8")) as any[];
    const archivePath = tempDir("tick-alert-archive-");
    const nodes = example
      // Only the types this test loads: the rest of the example (pull, verify, offsite, …) is other tests' business.
      .filter((n) => ["tab", "comment", "inject", "catch", "debug", "sftp-server", "backup-archive", "alert"].includes(n.type))
      .map((n) => (n.type === "backup-archive" ? { ...n, path: archivePath, ha: "" } : n.type === "debug" ? { ...n, type: "helper" } : n));
    const alertInFlow = nodes.find((n) => n.type === "alert");
    const [catchNode] = nodes.filter((n) => n.type === "catch");
    assert.deepEqual(catchNode.wires, [[alertInFlow.id]], "the catch node is wired to the alert node");
    const injects = nodes.filter((n) => n.type === "inject" && n.wires[0]?.includes(alertInFlow.id));
    assert.deepEqual(injects.map((n) => n.name).sort(), ["test alert: fail", "test alert: ok"]);
    const core = (f: string) => require(require.resolve(`@node-red/nodes/core/common/${f}`));
    await helper.load([serverNode, archiveNode, alertNode, core("20-inject.js"), core("90-comment.js")], nodes, {});
    const debug = helper.getNode(alertInFlow.wires[0][0]);
    if (!debug) throw new Error(helper.log().getCalls().map((c: any) => JSON.stringify(c.args[0]).slice(0, 300)).join("\n"));
    const events: any[] = [];
    debug.on("input", (m: any) => events.push(m.payload));
    clock = sinon.useFakeTimers({ now: Date.now(), toFake: ["Date"] });
    const byName = (name: string) => helper.getNode(injects.find((n) => n.name === name).id);
    byName("test alert: fail").receive({});
    await waitFor("the opened event", () => events.find((e) => e.event === "opened"));
    assert.equal(events[0].key, "topic:test");
    assert.deepEqual(events[0].deliveries, [], "no channel configured in the example");
    byName("test alert: ok").receive({});
    await new Promise((r) => setTimeout(r, 200));
    clock.tick(5 * 60_000);
    byName("test alert: ok").receive({});
    const resolved = await waitFor("the resolved event", () => events.find((e) => e.event === "resolved"));
    assert.equal(resolved.key, "topic:test");
  });

  it("a half-filled channel is a clear error in the status and for every message", async function () {
    const archivePath = tempDir("tick-alert-archive-");
    const l = await load(flow({ archivePath, remoteDir: "/x", alert: { emailTo: "", emailFrom: "" } }));
    const node = helper.getNode("alert");
    const errors: any[] = [];
    node.on("call:error", (call: any) => errors.push(call));
    l.alert.receive({ topic: "x", ok: false });
    await waitFor("the error", () => errors.length > 0);
    assert.match(String(errors[0].args[0]), /e-mail needs a server, a From and a To address/);
    assert.equal(l.statuses.at(-1)?.fill, "red");
    assert.match(l.statuses.at(-1)?.text ?? "", /e-mail needs a server/);
    // The catch node hands that error back to the alert node, which does not report it again (no loop).
    const received = () => helper.log().getCalls().filter((c: any) => c.args[0].event === "node.alert.receive").length;
    await waitFor("the catch node's copy", () => received() === 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(received(), 2);
    assert.equal(errors.length, 1);
  });
});
