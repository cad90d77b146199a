/**
 * The Home Assistant MQTT link against real brokers on 127.0.0.1: the same suite against an
 * in-process aedes and a real mosquitto (with a password file). A recorder client plays Home
 * Assistant: it sees exactly what HA would see, retained messages included.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as path from "node:path";
import { HaLink, type HaLinkOptions } from "../lib/health/ha-link";
import { discoveryMessages, ENTITIES, removalMessages, stateMessages } from "../lib/health/discovery";
import { applyOutcome, emptySnapshot } from "../lib/health/snapshot";
import { ConfigError } from "../lib/errors";
import { Recorder, startAedes, startMosquitto, type Broker, type Credentials } from "./support/brokers";
import { freePort } from "./support/net";

const TOPICS = { discoveryPrefix: "homeassistant", baseTopic: "tick-backup" };
const CREDS: Credentials = { username: "nodered-backup", password: "s3cret-Pa55word-for-mqtt" };

function states(archive: string, pullAt: string) {
  const s = applyOutcome(emptySnapshot(archive), { kind: "pull", source: "p", ok: true, at: pullAt, report: { kind: "pull", finishedAt: pullAt, problems: [] } });
  return stateMessages(archive, s, [], TOPICS);
}

const configTopics = (archive: string) => discoveryMessages(archive, TOPICS).map((m) => m.topic);

for (const kind of ["aedes", "mosquitto"] as const) {
  describe(`Home Assistant link against ${kind} on 127.0.0.1`, function () {
    this.timeout(30_000);
    let broker: Broker;
    const links: HaLink[] = [];
    const recorders: Recorder[] = [];

    before(async function () {
      broker = kind === "aedes" ? await startAedes({ credentials: CREDS }) : await startMosquitto(CREDS);
    });
    after(async () => broker?.stop());
    afterEach(async function () {
      await Promise.all(links.splice(0).map((l) => l.close()));
      const all = recorders.splice(0);
      // Credentials never appear in anything published.
      for (const r of all) for (const m of r.messages) assert.ok(!m.payload.includes(CREDS.password) && !m.payload.includes(CREDS.username), `credentials in ${m.topic}`);
      await Promise.all(all.map((r) => r.close()));
    });

    function link(options: Partial<HaLinkOptions> = {}): HaLink {
      const l = new HaLink({ broker: broker.url, ...CREDS, ...TOPICS, reconnectMs: 200, republishDelayMs: { min: 300, max: 600 }, random: () => 0, ...options });
      links.push(l);
      return l;
    }
    async function recorder(topics = ["homeassistant/#", "tick-backup/#"]): Promise<Recorder> {
      const r = await Recorder.connect(broker.url, topics, CREDS);
      recorders.push(r);
      return r;
    }
    const connected = (l: HaLink) => new Promise<void>((resolve) => (l.connected ? resolve() : l.once("status", function on(s) { if (s.state === "connected") resolve(); else l.once("status", on); })));

    it("says online (retained), sends every discovery config and the states retained, exactly as built", async function () {
      const l = link();
      l.put("ticks", { configs: discoveryMessages("ticks", TOPICS), states: states("ticks", "2026-11-26T10:00:00.000Z") });
      await connected(l);
      // A client that subscribes afterwards (HA starting later) gets everything from the retained store.
      const ha = await recorder();
      const expected = [...discoveryMessages("ticks", TOPICS), ...states("ticks", "2026-11-26T10:00:00.000Z")];
      await ha.wait("every retained message", () => expected.every((m) => ha.last(m.topic)) && true);
      for (const m of expected) {
        const got = ha.last(m.topic)!;
        assert.equal(got.payload, m.payload, m.topic);
        assert.equal(got.retain, true, `${m.topic} is retained`);
      }
      const availability = await ha.wait("online", () => ha.last("tick-backup/availability"));
      assert.deepEqual([availability.payload, availability.retain], ["online", true]);
      assert.equal(ENTITIES.length, configTopics("ticks").filter((t) => ha.last(t)).length);
    });

    it("the broker publishes the retained last will `offline` when the process dies without a clean close", async function () {
      const ha = await recorder(["tick-backup/availability"]);
      const child = spawn(process.execPath, [path.join(__dirname, "support/ha-link-child.js"), JSON.stringify({ broker: broker.url, ...CREDS, ...TOPICS, archive: "child" })], { stdio: ["ignore", "pipe", "inherit"] });
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (d) => String(d).includes("connected") && resolve());
        child.once("exit", (code) => reject(new Error(`child exited with ${code}`)));
      });
      await ha.wait("online from the child", () => ha.last("tick-backup/availability")?.payload === "online");
      child.kill("SIGKILL");
      const will = await ha.wait("the last will", () => {
        const m = ha.last("tick-backup/availability");
        return m?.payload === "offline" ? m : undefined;
      });
      assert.equal(will.payload, "offline");
      // and it stays: a client that comes later (HA after a restart) reads offline too
      const late = await recorder(["tick-backup/availability"]);
      const kept = await late.wait("the retained will", () => late.last("tick-backup/availability"));
      assert.deepEqual([kept.payload, kept.retain], ["offline", true]);
      // the child's configs are left for HA (a crash is not a removal); clean them for the next test
      const cleaner = link();
      await connected(cleaner);
      await cleaner.remove("child", removalMessages("child", TOPICS));
    });

    it("when the socket dies under a running link, the will goes out and the link reconnects and says online again", async function () {
      const l = link();
      await connected(l);
      const ha = await recorder(["tick-backup/availability"]);
      await ha.wait("online", () => ha.last("tick-backup/availability")?.payload === "online");
      const before = ha.messages.length;
      // The link's own TCP socket is destroyed: no DISCONNECT packet reaches the broker.
      (l as unknown as { client: { stream: { destroy(): void } } }).client.stream.destroy();
      await ha.wait("offline, then online", () => {
        const seen = ha.messages.slice(before).map((m) => m.payload);
        return seen.includes("offline") && seen.lastIndexOf("online") > seen.indexOf("offline");
      });
      // The link's own view follows (on a loaded machine a reconnect may take a second round).
      await connected(l);
    });

    it("re-publishes discovery and states after homeassistant/status online, after the random wait", async function () {
      const l = link({ republishDelayMs: { min: 400, max: 4000 }, random: () => 0 });
      l.put("ticks", { configs: discoveryMessages("ticks", TOPICS), states: states("ticks", "2026-11-26T11:00:00.000Z") });
      await connected(l);
      const ha = await recorder();
      const all = [...configTopics("ticks"), "tick-backup/ticks/state", "tick-backup/ticks/problem"];
      await ha.wait("the retained configs and states", () => all.every((t) => ha.last(t)));
      const mark = ha.messages.length;
      const sentAt = Date.now();
      await ha.publish("homeassistant/status", "online");
      await ha.wait("every config and state again", () => all.every((t) => ha.messages.slice(mark).some((m) => m.topic === t)));
      const waited = Date.now() - sentAt;
      assert.ok(waited >= 380, `waited ${waited} ms, at least the minimum delay`);
      const configsFirst = ha.messages.slice(mark).findIndex((m) => m.topic === "tick-backup/ticks/state") > ha.messages.slice(mark).findIndex((m) => m.topic === configTopics("ticks")[ENTITIES.length - 1]);
      assert.ok(configsFirst, "discovery goes out before the states, so HA has the entities when the states arrive");
      // HA saying offline asks for nothing
      const mark2 = ha.messages.length;
      await ha.publish("homeassistant/status", "offline");
      await new Promise((r) => setTimeout(r, 700));
      assert.deepEqual(ha.messages.slice(mark2).map((m) => m.topic), ["homeassistant/status"]);
    });

    it("removal sends empty retained configs, so HA deletes the entities and no retained config is left", async function () {
      const l = link();
      l.put("gone", { configs: discoveryMessages("gone", TOPICS), states: states("gone", "2026-11-26T12:00:00.000Z") });
      await connected(l);
      const ha = await recorder();
      await ha.wait("the configs", () => configTopics("gone").every((t) => ha.last(t)?.payload));
      await l.remove("gone", removalMessages("gone", TOPICS));
      await ha.wait("empty configs", () => configTopics("gone").every((t) => ha.last(t)?.payload === ""));
      const late = await recorder();
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(late.messages.filter((m) => m.topic.includes("gone")), [], "nothing retained for the removed archive");
      // and HA's restart does not bring it back
      await ha.publish("homeassistant/status", "online");
      await new Promise((r) => setTimeout(r, 900));
      assert.deepEqual(late.messages.filter((m) => m.topic.includes("gone")), []);
    });

    it("two archives on one connection are two devices; removing one leaves the other alone", async function () {
      const l = link();
      l.put("alpha", { configs: discoveryMessages("alpha", TOPICS), states: states("alpha", "2026-11-26T08:00:00.000Z") });
      l.put("beta", { configs: discoveryMessages("beta", TOPICS), states: states("beta", "2026-11-26T09:00:00.000Z") });
      await connected(l);
      const ha = await recorder();
      await ha.wait("both devices", () => [...configTopics("alpha"), ...configTopics("beta")].every((t) => ha.last(t)?.payload));
      const ids = new Set([...configTopics("alpha"), ...configTopics("beta")].map((t) => JSON.parse(ha.last(t)!.payload).device.identifiers[0]));
      assert.deepEqual([...ids].sort(), ["tick_backup_alpha", "tick_backup_beta"]);
      await l.remove("alpha", removalMessages("alpha", TOPICS));
      await ha.wait("alpha cleared", () => configTopics("alpha").every((t) => ha.last(t)?.payload === ""));
      assert.ok(configTopics("beta").every((t) => ha.last(t)?.payload), "beta's configs are untouched");
      const late = await recorder(["tick-backup/+/state"]);
      await late.wait("beta's state", () => late.last("tick-backup/beta/state"));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(late.last("tick-backup/alpha/state"), undefined, "alpha's retained state is gone");
      await l.remove("beta", removalMessages("beta", TOPICS));
    });

    it("a clean close says offline (retained)", async function () {
      const l = new HaLink({ broker: broker.url, ...CREDS, ...TOPICS });
      await connected(l);
      const ha = await recorder(["tick-backup/availability"]);
      await ha.wait("online", () => ha.last("tick-backup/availability")?.payload === "online");
      await l.close();
      await ha.wait("offline", () => ha.last("tick-backup/availability")?.payload === "offline");
      assert.equal(l.status.state, "closed");
    });

    it("wrong credentials: unreachable with the broker's reason, and the password is not in it", async function () {
      const l = link({ password: "wrong-password-123" });
      const status = await new Promise<HaLink["status"]>((resolve) => l.on("status", (s) => s.state === "unreachable" && resolve(s)));
      assert.match(status.error ?? "", /not authori[sz]ed|bad user name or password|Connection refused/i);
      assert.ok(!(status.error ?? "").includes("wrong-password-123"));
    });
  });
}

describe("Home Assistant link over TLS (mosquitto with a private CA)", function () {
  this.timeout(30_000);

  it("connects to mqtts:// with the CA given, and refuses the broker's certificate without it", async function () {
    const broker = await startMosquitto(CREDS, { tls: true });
    try {
      assert.match(broker.url, /^mqtts:\/\/127\.0\.0\.1:/);
      const trusting = new HaLink({ broker: broker.url, ...CREDS, ...TOPICS, ca: broker.ca });
      try {
        await new Promise<void>((resolve, reject) => {
          trusting.on("status", (s) => (s.state === "connected" ? resolve() : s.state === "unreachable" && reject(new Error(s.error))));
        });
        trusting.put("tls", { states: states("tls", "2026-11-26T10:00:00.000Z") });
        const ha = await Recorder.connect(broker.url, ["tick-backup/tls/state"], { ...CREDS, ca: broker.ca });
        const m = await ha.wait("the state over TLS", () => ha.last("tick-backup/tls/state"));
        assert.equal(JSON.parse(m.payload).last_pull, "2026-11-26T10:00:00.000Z");
        await ha.close();
      } finally {
        await trusting.close();
      }
      const doubting = new HaLink({ broker: broker.url, ...CREDS, ...TOPICS, reconnectMs: 200 });
      try {
        const s = await new Promise<HaLink["status"]>((resolve) => doubting.on("status", (x) => x.state === "unreachable" && resolve(x)));
        assert.match(s.error ?? "", /self[- ]signed|unable to (get|verify)|certificate/i);
      } finally {
        await doubting.close();
      }
    } finally {
      await broker.stop();
    }
  });
});

describe("Home Assistant link: broker down at start and during a run (aedes on a fixed port)", function () {
  this.timeout(30_000);

  it("is unreachable while nobody listens, keeps only the latest states, and sends them when the broker comes", async function () {
    const port = await freePort();
    const l = new HaLink({ broker: `mqtt://127.0.0.1:${port}`, ...TOPICS, reconnectMs: 200 });
    try {
      const down = await new Promise<HaLink["status"]>((resolve) => l.on("status", (s) => s.state === "unreachable" && resolve(s)));
      assert.match(down.error ?? "", /ECONNREFUSED|connection closed/);
      l.put("ticks", { configs: discoveryMessages("ticks", TOPICS), states: states("ticks", "2026-11-26T09:00:00.000Z") });
      l.put("ticks", { states: states("ticks", "2026-11-26T10:00:00.000Z") });
      const broker = await startAedes({ port });
      try {
        const ha = await Recorder.connect(broker.url, ["homeassistant/#", "tick-backup/#"]);
        try {
          const state = await ha.wait("the latest state", () => ha.last("tick-backup/ticks/state"));
          assert.equal(JSON.parse(state.payload).last_pull, "2026-11-26T10:00:00.000Z");
          assert.equal(ha.on("tick-backup/ticks/state").length, 1, "only the latest state, nothing queued from before");
          await ha.wait("the configs", () => configTopics("ticks").every((t) => ha.last(t)));

          // The broker goes away during a run: the link says so, and the state of that run arrives afterwards.
          await broker.stop();
          await new Promise<void>((resolve) => (l.status.state === "unreachable" ? resolve() : l.on("status", (s) => s.state === "unreachable" && resolve())));
          l.put("ticks", { states: states("ticks", "2026-11-26T11:00:00.000Z") });
        } finally {
          await ha.close();
        }
      } finally {
        await broker.stop().catch(() => undefined);
      }
      const again = await startAedes({ port });
      try {
        const ha = await Recorder.connect(again.url, ["tick-backup/#"]);
        const state = await ha.wait("the state after the broker came back", () => ha.last("tick-backup/ticks/state"));
        assert.equal(JSON.parse(state.payload).last_pull, "2026-11-26T11:00:00.000Z");
        await ha.close();
      } finally {
        await l.close();
        await again.stop();
      }
    } finally {
      await l.close();
    }
  });

  it("refuses a broker URL it cannot use, with a clear ConfigError", function () {
    assert.throws(() => new HaLink({ broker: "core-mosquitto:1883x", ...TOPICS }), ConfigError);
    assert.throws(() => new HaLink({ broker: "http://core-mosquitto:1883", ...TOPICS }), /mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\//);
    assert.throws(() => new HaLink({ broker: "mqtt://user:pw@core-mosquitto:1883", ...TOPICS }), /credential fields, not in the URL/);
    assert.throws(() => new HaLink({ broker: "mqtt://127.0.0.1:1", discoveryPrefix: "home/#", baseTopic: "x" }), /not a valid topic/);
  });
});
