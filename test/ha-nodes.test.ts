/**
 * ha-mqtt + backup-archive (with `ha`) + sftp-pull in a Node-RED runtime (node-red-node-test-helper),
 * pulling from a REAL OpenSSH sshd and publishing to a real MQTT broker (aedes) on 127.0.0.1.
 */
import { nodeRedPath } from "./support/red-path";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as util from "node:util";
import { startSshd, type Sshd } from "./support/sshd";
import { Recorder, startAedes, type Credentials } from "./support/brokers";
import { freePort } from "./support/net";
import { tempDir, write } from "./support/tree";
import { waitFor } from "./support/wait";
import sinon from "sinon";
import { discoveryMessages } from "../lib/health/discovery";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const haNode = require(path.join(__dirname, "../nodes/ha-mqtt/ha-mqtt.js"));
const serverNode = require(path.join(__dirname, "../nodes/sftp-server/sftp-server.js"));
const archiveNode = require(path.join(__dirname, "../nodes/backup-archive/backup-archive.js"));
const pullNode = require(path.join(__dirname, "../nodes/sftp-pull/sftp-pull.js"));
helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
const CREDS: Credentials = { username: "ha-user", password: "Very-Secret-mqtt-pw-42" };
const TOPICS = { discoveryPrefix: "homeassistant", baseTopic: "tick-backup" };
const configTopics = (name: string) => discoveryMessages(name, TOPICS).map((m) => m.topic);

describe("nodes: ha-mqtt + backup-archive publish health to Home Assistant", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  const shown: string[] = [];

  before(async () => (sshd = await startSshd()));
  after(async () => sshd?.stop());
  afterEach(async function () {
    const spy = helper.log();
    if (spy) for (const call of spy.getCalls()) shown.push(util.inspect(call.args, { depth: 10 }));
    await helper.unload();
    for (const t of shown.splice(0)) assert.ok(!t.includes(CREDS.password), `the MQTT password appeared in: ${t.slice(0, 200)}`);
  });

  function flow(o: { broker: string; archivePath: string; remoteDir: string; name?: string; staleHours?: number }) {
    return [
      { id: "f1", type: "tab", label: "t" },
      { id: "ha", type: "ha-mqtt", broker: o.broker, discoveryPrefix: "homeassistant", baseTopic: "tick-backup", reconnectSeconds: 0.2 },
      { id: "srv", type: "sftp-server", host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint },
      { id: "arc", type: "backup-archive", name: o.name ?? "ticks", path: o.archivePath, ha: "ha", staleHours: o.staleHours ?? 3 },
      { id: "pull", type: "sftp-pull", z: "f1", x: 100, y: 100, server: "srv", archive: "arc", remoteDir: o.remoteDir, include: "**", exclude: "", settleSeconds: 0, maxAgeDays: 0, concurrency: 4, bwLimitKBps: 0, wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 300, y: 100, wires: [] },
    ];
  }
  const creds = () => ({ ha: { ...CREDS }, srv: { privateKey: sshd.privateKey } });

  async function load(f: object[]) {
    await helper.load([haNode, serverNode, archiveNode, pullNode], f, creds());
    const statuses: any[] = [];
    const pull = helper.getNode("pull");
    const original = pull.status;
    pull.status = function (s: any) {
      statuses.push(s);
      shown.push(util.inspect(s));
      return original.call(this, s);
    };
    return { pull, statuses, out: helper.getNode("out") };
  }

  function runPull(l: { pull: any; out: any }): Promise<any> {
    return new Promise((resolve) => {
      l.out.once("input", (msg: any) => {
        shown.push(util.inspect(msg, { depth: 10 }));
        resolve(msg.payload);
      });
      l.pull.receive({ payload: "go" });
    });
  }

  /** A client that subscribes now gets the state from the broker's retained store. */
  async function assertRetained(url: string, topic: string, lastPull: string): Promise<void> {
    const late = await Recorder.connect(url, [topic], CREDS);
    try {
      const m = await late.wait(`retained ${topic}`, () => late.last(topic));
      assert.equal(m.retain, true);
      assert.equal(JSON.parse(m.payload).last_pull, lastPull);
    } finally {
      await late.close();
    }
  }

  /** Like assertRetained, waiting (reconnects take a moment) until the retained state is the expected one. */
  async function assertRetainedSoon(url: string, topic: string, lastPull: string): Promise<void> {
    const ha = await Recorder.connect(url, [topic], CREDS);
    try {
      await ha.wait(`${topic} with last_pull ${lastPull}`, () => {
        const m = ha.last(topic);
        return m && JSON.parse(m.payload).last_pull === lastPull;
      }, 15_000);
    } finally {
      await ha.close();
    }
    await assertRetained(url, topic, lastPull);
  }

  function fixture() {
    const remoteDir = tempDir("tick-ha-remote-");
    write(remoteDir, "EURUSD/2026-11-25.csv", "t,bid,ask\n1,1.1,1.2\n");
    write(remoteDir, "EURUSD/2026-11-26.csv", "t,bid,ask\n2,1.1,1.2\n");
    return { remoteDir, archivePath: tempDir("tick-ha-archive-") };
  }

  it("a pull's outcome reaches HA as retained states of one device; discovery is exact; nothing shows a secret", async function () {
    const broker = await startAedes({ credentials: CREDS });
    const ha = await Recorder.connect(broker.url, ["homeassistant/#", "tick-backup/#"], CREDS);
    try {
      const { remoteDir, archivePath } = fixture();
      const l = await load(flow({ broker: broker.url, archivePath, remoteDir }));
      await ha.wait("discovery", () => configTopics("ticks").every((t) => ha.last(t)?.payload));
      for (const m of discoveryMessages("ticks", TOPICS)) assert.equal(ha.last(m.topic)!.payload, m.payload);
      const report = await runPull(l);
      assert.equal(report.problems.length, 0);
      const state = await ha.wait("the state after the pull", () => {
        const m = ha.last("tick-backup/ticks/state");
        return m && JSON.parse(m.payload).last_pull === report.finishedAt ? JSON.parse(m.payload) : undefined;
      });
      assert.equal(state.problem, false);
      assert.equal(state.last_pull_files, 2);
      assert.equal(state.archive_files, 2);
      assert.equal(state.copies_1, 2);
      await assertRetained(broker.url, "tick-backup/ticks/state", report.finishedAt);
      assert.deepEqual(JSON.parse(ha.last("tick-backup/ticks/problem")!.payload).reasons, []);
      assert.ok(fs.existsSync(path.join(archivePath, ".tick-backup/health.json")), "the snapshot is saved in the archive");
      assert.ok(!l.statuses.some((s) => /HA broker/.test(s.text ?? "")), "no HA note while the broker is there");
      assert.deepEqual(broker.logins.filter((u) => u !== CREDS.username), [], "the link logged in with the credentials");
      for (const m of ha.messages) assert.ok(!m.payload.includes(CREDS.password) && !m.payload.includes(CREDS.username), `credentials in ${m.topic}`);
    } finally {
      await ha.close();
      await helper.unload();
      await broker.stop();
    }
  });

  it("broker down: the pull still backs up, its status says HA is unreachable, and the state goes out when the broker comes", async function () {
    const port = await freePort();
    const { remoteDir, archivePath } = fixture();
    const l = await load(flow({ broker: `mqtt://127.0.0.1:${port}`, archivePath, remoteDir }));
    await waitFor("the first connection attempt to fail", () => helper.getNode("arc").haNote());
    const report = await runPull(l);
    assert.equal(report.problems.length, 0);
    assert.equal(fs.readFileSync(path.join(archivePath, "EURUSD/2026-11-26.csv"), "utf8"), "t,bid,ask\n2,1.1,1.2\n", "the backup went on");
    const last = l.statuses[l.statuses.length - 1];
    assert.equal(last.fill, "green");
    assert.match(last.text, /2 new .* · HA broker unreachable$/);
    const logged = helper.log().getCalls().map((c: any) => util.inspect(c.args)).join("\n");
    assert.match(logged, /Home Assistant broker mqtt:\/\/127\.0\.0\.1:\d+ unreachable/);

    const broker = await startAedes({ port, credentials: CREDS });
    const ha = await Recorder.connect(broker.url, ["homeassistant/#", "tick-backup/#"], CREDS);
    try {
      const state = await ha.wait("the state once the broker is there", () => {
        const m = ha.last("tick-backup/ticks/state");
        return m && JSON.parse(m.payload).last_pull === report.finishedAt ? m : undefined;
      }, 15_000);
      assert.ok(state);
      await assertRetained(broker.url, "tick-backup/ticks/state", report.finishedAt);
      await ha.wait("discovery too", () => configTopics("ticks").every((t) => ha.last(t)?.payload));
    } finally {
      await ha.close();
      await helper.unload();
      await broker.stop();
    }
  });

  it("broker gone between runs: the next pull backs up, says HA is unreachable, and its state arrives when the broker is back", async function () {
    const port = await freePort();
    let broker = await startAedes({ port, credentials: CREDS });
    const { remoteDir, archivePath } = fixture();
    const l = await load(flow({ broker: broker.url, archivePath, remoteDir }));
    try {
      const first = await runPull(l);
      assert.ok(!/HA broker/.test(l.statuses[l.statuses.length - 1].text));
      await broker.stop();
      const ha = helper.getNode("ha");
      await new Promise<void>((resolve) => (ha.link.status.state === "unreachable" ? resolve() : ha.link.on("status", (s: any) => s.state === "unreachable" && resolve())));
      write(remoteDir, "EURUSD/2026-11-27.csv", "t,bid,ask\n3,1.1,1.2\n");
      const second = await runPull(l);
      assert.equal(second.counts.new, 1);
      assert.ok(second.finishedAt > first.finishedAt);
      assert.match(l.statuses[l.statuses.length - 1].text, /1 new .* · HA broker unreachable$/);
      assert.ok(fs.existsSync(path.join(archivePath, "EURUSD/2026-11-27.csv")), "the backup went on");

      broker = await startAedes({ port, credentials: CREDS });
      await assertRetainedSoon(broker.url, "tick-backup/ticks/state", second.finishedAt);
    } finally {
      await helper.unload();
      await broker.stop();
    }
  });

  it("a state the broker does not take is said once in the log; the next state goes out and clears it", async function () {
    const broker = await startAedes({ credentials: CREDS });
    const { remoteDir, archivePath } = fixture();
    const l = await load(flow({ broker: broker.url, archivePath, remoteDir }));
    const link = helper.getNode("ha").link;
    const publishes = sinon.stub(link.client, "publishAsync").callThrough();
    try {
      await assertRetainedSoon(broker.url, "tick-backup/ticks/state", (await runPull(l)).finishedAt);
      // Fault injection: the broker's client refuses the next publish (a broker that drops it, a full queue).
      publishes.onCall(publishes.callCount).rejects(new Error("injected: the broker refused the message"));
      write(remoteDir, "EURUSD/2026-11-27.csv", "t,bid,ask\n3,1.1,1.2\n");
      await runPull(l);
      const warned = () => helper.log().getCalls().filter((c: any) => c.args[0].level === 30 && /publish failed: injected: the broker refused the message/.test(c.args[0].msg));
      await waitFor("the warning", () => warned().length === 1);
      assert.equal(link.status.error, "publish failed: injected: the broker refused the message");

      write(remoteDir, "EURUSD/2026-11-28.csv", "t,bid,ask\n4,1.1,1.2\n");
      const ha = await Recorder.connect(broker.url, ["homeassistant/#"], CREDS);
      await ha.wait("the retained configs", () => configTopics("ticks").every((t) => ha.last(t)));
      const mark = ha.messages.length;
      const third = await runPull(l);
      await assertRetainedSoon(broker.url, "tick-backup/ticks/state", third.finishedAt);
      // The configs go out again too, in case the refused message was one of them.
      await ha.wait("the configs again", () => configTopics("ticks").every((t) => ha.messages.slice(mark).some((m) => m.topic === t)));
      await ha.close();
      await waitFor("the error cleared", () => link.status.error === undefined);
      assert.equal(warned().length, 1, "said once");
      assert.equal(link.status.state, "connected");
    } finally {
      publishes.restore();
      await helper.unload();
      await broker.stop();
    }
  });

  it("survives a restart: the saved snapshot is published before any new run; a redeploy keeps the entities, deleting the archive node clears them", async function () {
    const broker = await startAedes({ credentials: CREDS });
    const ha = await Recorder.connect(broker.url, ["homeassistant/#", "tick-backup/#"], CREDS);
    try {
      const { remoteDir, archivePath } = fixture();
      const f = flow({ broker: broker.url, archivePath, remoteDir, name: "vault" });
      const report = await runPull(await load(f));
      await ha.wait("the first state", () => ha.last("tick-backup/vault/state") && JSON.parse(ha.last("tick-backup/vault/state")!.payload).last_pull === report.finishedAt);
      await helper.unload();
      await ha.wait("offline on a clean stop", () => ha.last("tick-backup/availability")?.payload === "offline");

      // Node-RED starts again: the state comes from .tick-backup/health.json, no pull needed.
      const mark = ha.messages.length;
      await load(f);
      const restored = await ha.wait("the restored state", () => {
        const m = ha.messages.slice(mark).reverse().find((x) => x.topic === "tick-backup/vault/state");
        return m ? JSON.parse(m.payload) : undefined;
      });
      assert.equal(restored.last_pull, report.finishedAt);
      assert.equal(restored.archive_files, 2);

      // A redeploy of the archive node (changed, not removed) leaves HA's entities alone.
      const changed = f.map((n: any) => (n.id === "arc" ? { ...n, staleHours: 5 } : n));
      const mark2 = ha.messages.length;
      await helper.setFlows(changed, "nodes", creds());
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(!ha.messages.slice(mark2).some((m) => m.topic.startsWith("homeassistant/") && m.payload === ""), "no config was cleared by a redeploy");

      // Deleting the archive node (and the pull that used it) removes the device.
      const without = changed.filter((n: any) => n.id !== "arc" && n.id !== "pull");
      await helper.setFlows(without, "nodes", creds());
      await ha.wait("empty configs", () => configTopics("vault").every((t) => ha.last(t)?.payload === ""));
    } finally {
      await ha.close();
      await helper.unload();
      await broker.stop();
    }
  });

  it("a wrong MQTT password: the broker's refusal is logged once, without the password, and the backups still run", async function () {
    const broker = await startAedes({ credentials: { username: CREDS.username, password: "the-real-one-xyz" } });
    try {
      const { remoteDir, archivePath } = fixture();
      const l = await load(flow({ broker: broker.url, archivePath, remoteDir }));
      const report = await runPull(l);
      assert.equal(report.problems.length, 0);
      // Several refused attempts, so that "once" means once for all of them.
      for (const start = Date.now(); broker.logins.length < 3 && Date.now() - start < 15_000; ) await new Promise((r) => setTimeout(r, 50));
      assert.ok(broker.logins.length >= 3, `${broker.logins.length} login attempts`);
      const lines = helper.log().getCalls().map((c: any) => util.inspect(c.args)).filter((t: string) => /unreachable/.test(t));
      assert.equal(lines.length, 1, lines.join("\n"));
      assert.match(lines[0], /bad user ?name or password|not authori[sz]ed/i);
      assert.match(l.statuses[l.statuses.length - 1].text, /HA broker unreachable$/);
    } finally {
      await helper.unload();
      await broker.stop();
    }
  });

  it("an unusable broker URL is a clear error on the ha-mqtt node, and the backups still run", async function () {
    const { remoteDir, archivePath } = fixture();
    const l = await load(flow({ broker: "http://example.invalid", archivePath, remoteDir }));
    const report = await runPull(l);
    assert.equal(report.problems.length, 0);
    const logged = helper.log().getCalls().map((c: any) => util.inspect(c.args)).join("\n");
    assert.match(logged, /broker URL must start with mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\//);
    assert.match(logged, /health is not published/);
  });
});
