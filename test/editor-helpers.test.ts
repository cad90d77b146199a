/**
 * The editor's helper endpoints of offsite-target ("Test"), ha-mqtt ("Test") and alert ("Send test
 * alert"), called as the dialogs call them (node-red-node-test-helper's admin app) against REAL far
 * sides on 127.0.0.1: a folder, s3rver, the Debian rclone with a local remote, aedes and mosquitto,
 * an SMTP server and HTTP receivers. Every answer and every log line is checked for the secrets.
 */
import { nodeRedPath } from "./support/red-path";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as util from "node:util";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { TEST_TITLE } from "../lib/alert";
import { startAedes, startMosquitto, type Broker } from "./support/brokers";
import { freePort } from "./support/net";
import { ACCESS_KEY, BUCKET, SECRET_KEY, startS3, type S3Server } from "./support/s3";
import { startHttpSink, startSmtpSink, type HttpSink, type SmtpSink } from "./support/sinks";
import { tempDir } from "./support/tree";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const targetNode = require(path.join(__dirname, "../nodes/offsite-target/offsite-target.js"));
const haNode = require(path.join(__dirname, "../nodes/ha-mqtt/ha-mqtt.js"));
const alertNode = require(path.join(__dirname, "../nodes/alert/alert.js"));
helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
const WRONG_S3_SECRET = "Wrong-S3-Secret-Key-123";
const MQTT = { username: "ha-user", password: "Mqtt-Secret-pw-42" };
const WRONG_MQTT_PASSWORD = "Wrong-Mqtt-pw-99";
const ALERT = {
  emailPassword: "Smtp-Secret-77",
  ntfyTopic: "ntfy-topic-Secret-5",
  ntfyToken: "tk_ntfySecret88",
  haToken: "ha.Secret.Token.99",
  webhookPath: "/hook/Secret-Webhook-Path-1",
  pingPath: "/ping/Secret-Ping-Uuid-2",
};
const STORED_S3_SECRET = "Stored-S3-Secret-456";
const SECRETS = [STORED_S3_SECRET, WRONG_S3_SECRET, MQTT.password, WRONG_MQTT_PASSWORD, ...Object.values(ALERT)];
const PROBE = ".tick-backup/editor-test.txt";

describe("editor helpers: offsite-target Test, ha-mqtt Test, alert Send test alert", function () {
  this.timeout(60_000);
  let s3: S3Server;
  let aedes: Broker;
  let mosquitto: Broker & { readLog(): string };
  const shown: string[] = [];

  before(async () => {
    s3 = await startS3();
    aedes = await startAedes({ credentials: MQTT });
    mosquitto = await startMosquitto(MQTT);
    // Config nodes with stored credentials, for the dialogs that show Node-RED's placeholder.
    const flow = [
      { id: "f1", type: "tab", label: "t" },
      { id: "t-s3", type: "offsite-target", kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix: "stored", forcePathStyle: true },
      { id: "ha", type: "ha-mqtt", broker: mosquitto.url, discoveryPrefix: "homeassistant", baseTopic: "tick-backup" },
    ];
    await helper.load([targetNode, haNode, alertNode], flow, { "t-s3": { accessKeyId: ACCESS_KEY, secretAccessKey: STORED_S3_SECRET }, ha: { ...MQTT } });
  });

  after(async () => {
    const spy = helper.log();
    if (spy) for (const call of spy.getCalls()) shown.push(util.inspect(call.args, { depth: 10 }));
    await helper.unload();
    await s3?.stop();
    await aedes?.stop();
    await mosquitto?.stop();
    const everything = shown.join("\n");
    for (const s of SECRETS) assert.ok(!everything.includes(s), `a secret (${s}) appeared in an answer or a log line`);
  });

  /** POSTs as the dialog does and keeps the answer for the secrets check. */
  async function post(url: string, body: object): Promise<{ status: number; body: any }> {
    const res = await helper.request().post(url).send(body);
    shown.push(JSON.stringify(res.body));
    return { status: res.status, body: res.body };
  }

  describe("offsite-target Test", function () {
    const url = "/tick-backup/offsite-target/test";
    const s3Body = (o: Record<string, unknown> = {}) => ({ kind: "s3", endpoint: s3.endpoint, region: "us-east-1", bucket: BUCKET, prefix: "home", forcePathStyle: true, compatibleChecksums: false, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY }, ...o });

    async function s3Keys(prefix: string): Promise<string[]> {
      const client = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
      try {
        const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
        return (page.Contents ?? []).map((o) => o.Key!).sort();
      } finally {
        client.destroy();
      }
    }

    /** Every file below a folder, relative, sorted. */
    function filesBelow(dir: string): string[] {
      return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
        .filter((e) => e.isFile())
        .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
        .sort();
    }

    it("a folder on a second disk: reachable and writable; pressed twice it holds one probe file", async function () {
      const dir = tempDir("editor-target-dir-");
      const first = await post(url, { kind: "directory", path: dir, credentials: { accessKeyId: "", secretAccessKey: "" } });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.description, dir);
      assert.match(first.body.id, /^directory:[0-9a-f-]{36}$/);
      assert.equal(first.body.wrote, PROBE);
      assert.ok(first.body.size > 0);
      assert.match(fs.readFileSync(path.join(dir, PROBE), "utf8"), /^tick-backup: written by the editor's Test at /);
      const second = await post(url, { kind: "directory", path: dir });
      assert.equal(second.status, 200);
      assert.equal(second.body.id, first.body.id, "the same disk keeps its id");
      assert.deepEqual(filesBelow(dir).filter((f) => !f.startsWith(".tick-backup/")), [], "nothing outside the target's own area");
      assert.deepEqual(filesBelow(dir).filter((f) => f.includes("editor-test")), [PROBE], "one probe file, nothing staged left behind");
      assert.deepEqual(fs.readdirSync(path.join(dir, ".tick-backup", "partial")), []);
    });

    it("a folder that is missing (disk unplugged) is a 502 naming it, and is not created", async function () {
      const missing = path.join(tempDir("editor-target-gone-"), "usb-disk", "tick-backup");
      const res = await post(url, { kind: "directory", path: missing });
      assert.equal(res.status, 502);
      assert.ok(res.body.error.includes(missing), res.body.error);
      assert.match(res.body.error, /offline: folder .* not found/);
      assert.equal(fs.existsSync(path.dirname(missing)), false, "nothing created on the wrong disk");
    });

    it("a read-only folder is a 502", async function () {
      const dir = tempDir("editor-target-ro-");
      const root = process.getuid?.() === 0;
      // root writes through file modes: a real read-only mount stands for a write-protected disk.
      if (root) execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tick-test-ro", dir], { stdio: "pipe" });
      try {
        if (root) {
          // A disk that was used before (its id and staging folder there), now mounted read-only.
          assert.equal((await post(url, { kind: "directory", path: dir })).status, 200);
          execFileSync("mount", ["-o", "remount,ro", dir], { stdio: "pipe" });
        } else {
          fs.chmodSync(dir, 0o555);
        }
        const res = await post(url, { kind: "directory", path: dir });
        assert.equal(res.status, 502, JSON.stringify(res.body));
        assert.match(res.body.error, root ? /EROFS|read-only/i : /EACCES|permission/i);
      } finally {
        if (root) execFileSync("umount", ["-l", dir], { stdio: "pipe" });
        else fs.chmodSync(dir, 0o755);
      }
    });

    it("s3: reachable and writable; pressed twice the bucket holds one probe object, and nothing was deleted", async function () {
      const first = await post(url, s3Body());
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal(first.body.wrote, PROBE);
      assert.match(first.body.description, new RegExp(`^s3://${BUCKET}/home/ \\(127\\.0\\.0\\.1:\\d+\\)$`));
      assert.match(first.body.id, new RegExp(`^s3:127\\.0\\.0\\.1:\\d+/${BUCKET}/home$`));
      assert.equal((await post(url, s3Body())).status, 200);
      assert.deepEqual(await s3Keys("home/"), [`home/${PROBE}`]);
      assert.deepEqual(s3.requests.filter((r) => r.method === "DELETE"), [], "a key without delete rights passes");
    });

    // s3rver checks the access key id but not a v4 signature: a wrong key pair stands for wrong credentials.
    it("s3: wrong credentials are a 502 that does not contain the secret", async function () {
      const res = await post(url, s3Body({ credentials: { accessKeyId: "NOT-A-KEY", secretAccessKey: WRONG_S3_SECRET } }));
      assert.equal(res.status, 502, JSON.stringify(res.body));
      assert.match(res.body.error, /access denied .*check the key/);
      assert.ok(!res.body.error.includes(WRONG_S3_SECRET));
    });

    it("s3: an endpoint where nothing listens is a 502 saying it is offline", async function () {
      const res = await post(url, s3Body({ endpoint: `http://127.0.0.1:${await freePort()}` }));
      assert.equal(res.status, 502, JSON.stringify(res.body));
      assert.match(res.body.error, /offline: .*ECONNREFUSED/);
    });

    it("s3: a bucket that does not exist is a 502", async function () {
      const res = await post(url, s3Body({ bucket: "no-such-bucket" }));
      assert.equal(res.status, 502, JSON.stringify(res.body));
      assert.match(res.body.error, /no-such-bucket.*not found/);
    });

    it("s3: the placeholder uses the deployed node's stored secret, never as a secret of its own", async function () {
      const stored = await post(url, s3Body({ id: "t-s3", prefix: "stored", credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: "__PWRD__" } }));
      assert.equal(stored.status, 200, JSON.stringify(stored.body));
      assert.deepEqual(await s3Keys("stored/"), [`stored/${PROBE}`]);
      const unknown = await post(url, s3Body({ id: "not-deployed", credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: "__PWRD__" } }));
      assert.equal(unknown.status, 400);
      assert.match(unknown.body.error, /secret access key/);
    });

    it("rclone with a local remote: reachable and writable; pressed twice it holds one probe file", async function () {
      const remote = tempDir("editor-target-rclone-");
      for (let i = 0; i < 2; i++) {
        const res = await post(url, { kind: "rclone", remote, rcloneBinary: "", rcloneConfig: "" });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.equal(res.body.description, `rclone ${remote}`);
        assert.equal(res.body.wrote, PROBE);
      }
      assert.deepEqual(filesBelow(remote), [PROBE]);
    });

    it("bad settings are a 400: no kind, a relative folder, an rclone that is not installed", async function () {
      for (const bad of [{}, { kind: "tape" }, { kind: "directory", path: "relative/folder" }, { kind: "s3", bucket: "" }, { kind: "rclone", remote: "" }]) {
        const res = await post(url, bad);
        assert.equal(res.status, 400, `${JSON.stringify(bad)} → ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.error, "string");
      }
      const missing = await post(url, { kind: "rclone", remote: tempDir("editor-target-rclone-"), rcloneBinary: "/nonexistent/rclone" });
      assert.equal(missing.status, 400);
      assert.match(missing.body.error, /rclone binary .* not found/);
    });
  });

  describe("ha-mqtt Test", function () {
    const url = "/tick-backup/ha-mqtt/test";

    for (const kind of ["aedes", "mosquitto"] as const) {
      it(`${kind}: connects with the right login; a wrong password is a 502 "not authorized" without the password`, async function () {
        const broker = kind === "aedes" ? aedes : mosquitto;
        const ok = await post(url, { broker: broker.url, ca: "", credentials: { ...MQTT } });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        assert.deepEqual(ok.body, { broker: broker.url, username: MQTT.username });
        const wrong = await post(url, { broker: broker.url, credentials: { username: MQTT.username, password: WRONG_MQTT_PASSWORD } });
        assert.equal(wrong.status, 502, JSON.stringify(wrong.body));
        assert.match(wrong.body.error, /not authori[sz]ed/i);
        assert.ok(!wrong.body.error.includes(WRONG_MQTT_PASSWORD));
      });
    }

    it("the connection is ended after the test (mosquitto logs the client's disconnect)", async function () {
      // Only this test's lines count: earlier tests connected with the same kind of client id.
      const mark = mosquitto.readLog().length;
      const log = () => mosquitto.readLog().slice(mark);
      assert.equal((await post(url, { broker: mosquitto.url, credentials: { ...MQTT } })).status, 200);
      const client = /New client connected .* as (tick-backup-test-\w+)/.exec(log())?.[1];
      assert.ok(client, `the test client's connection is in the log:\n${log()}`);
      const ended = new RegExp(`Client ${client} (closed its connection|disconnected)`);
      const start = Date.now();
      while (!ended.test(log()) && Date.now() - start < 5000) await new Promise((r) => setTimeout(r, 50));
      assert.match(log(), ended);
    });

    it("mqtts: connects with the broker's private CA, and without it is a 502 naming the certificate problem", async function () {
      const tls = await startMosquitto(MQTT, { tls: true });
      try {
        const ok = await post(url, { broker: tls.url, ca: tls.ca, credentials: { ...MQTT } });
        assert.equal(ok.status, 200, JSON.stringify(ok.body));
        const noCa = await post(url, { broker: tls.url, ca: "", credentials: { ...MQTT } });
        assert.equal(noCa.status, 502);
        assert.match(noCa.body.error, /certificate/i);
      } finally {
        await tls.stop();
      }
    });

    it("the placeholder uses the deployed node's stored password", async function () {
      const res = await post(url, { id: "ha", broker: mosquitto.url, credentials: { username: MQTT.username, password: "__PWRD__" } });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const none = await post(url, { id: "not-deployed", broker: mosquitto.url, credentials: { username: MQTT.username, password: "__PWRD__" } });
      assert.equal(none.status, 502);
      assert.match(none.body.error, /not authori[sz]ed/i);
    });

    it("nothing listening is a 502 at once", async function () {
      const port = await freePort();
      const start = Date.now();
      const res = await post(url, { broker: `mqtt://127.0.0.1:${port}`, credentials: {} });
      assert.equal(res.status, 502);
      assert.match(res.body.error, /ECONNREFUSED/);
      assert.ok(Date.now() - start < 5000, "no waiting for the time limit");
    });

    it("a broker that never answers is a 502 after the time limit", async function () {
      const sockets: net.Socket[] = [];
      const silent = net.createServer((s) => sockets.push(s));
      await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
      try {
        const res = await post(url, { broker: `mqtt://127.0.0.1:${(silent.address() as net.AddressInfo).port}`, credentials: {} });
        assert.equal(res.status, 502);
        assert.match(res.body.error, /no answer within 10 s/);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => silent.close(r));
      }
    });

    it("a bad URL is a 400", async function () {
      for (const broker of ["", "core-mosquitto:1883", "http://127.0.0.1:1883", `mqtt://${MQTT.username}:x@127.0.0.1:1883`]) {
        const res = await post(url, { broker, credentials: {} });
        assert.equal(res.status, 400, `${broker} → ${res.status} ${JSON.stringify(res.body)}`);
        assert.equal(typeof res.body.error, "string");
      }
    });
  });

  describe("alert Send test alert", function () {
    const url = "/tick-backup/alert/test";
    let smtp: SmtpSink;
    let sink: HttpSink;

    beforeEach(async () => {
      smtp = await startSmtpSink({ user: "backup", password: ALERT.emailPassword });
      sink = await startHttpSink();
    });
    afterEach(async () => {
      await smtp.stop();
      await sink.stop();
    });

    const everyChannel = () => ({
      name: "phone",
      emailHost: "127.0.0.1",
      emailPort: String(smtp.port),
      emailSecurity: "none",
      emailFrom: "backup@home.test",
      emailTo: "me@home.test",
      ntfyServer: `${sink.url}/ntfy`,
      haUrl: sink.url,
      haService: "mobile_app_phone",
      credentials: {
        emailUser: "backup",
        emailPassword: ALERT.emailPassword,
        ntfyTopic: ALERT.ntfyTopic,
        ntfyToken: ALERT.ntfyToken,
        webhookUrl: sink.url + ALERT.webhookPath,
        pingUrl: sink.url + ALERT.pingPath,
        haToken: ALERT.haToken,
      },
    });

    it("e-mail, ntfy, Home Assistant and the webhook each receive the test notice; the ping URL is not called", async function () {
      const res = await post(url, everyChannel());
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { channels: [{ channel: "email", ok: true }, { channel: "ntfy", ok: true }, { channel: "webhook", ok: true }, { channel: "home-assistant", ok: true }] });

      assert.equal(smtp.mails.length, 1);
      assert.deepEqual(smtp.mails[0].to, ["me@home.test"]);
      assert.match(smtp.mails[0].raw, /Subject: =\?UTF-8\?Q\?tick-backup_test_alert_=E2=80=94_nothing/);
      assert.match(smtp.mails[0].raw.replace(/=\r?\n/g, ""), /Nothing is wrong with the backup/);
      const at = (p: string) => sink.requests.filter((r) => r.path === p);
      const [ntfy] = at("/ntfy/");
      assert.deepEqual([ntfy.json as any].map((j) => [j.topic, j.title, j.tags]), [[ALERT.ntfyTopic, TEST_TITLE, ["test_tube"]]]);
      assert.equal(ntfy.headers.authorization, `Bearer ${ALERT.ntfyToken}`);
      const [hook] = at(ALERT.webhookPath);
      assert.equal((hook.json as any).title, TEST_TITLE);
      assert.equal((hook.json as any).event, "test");
      const [ha] = at("/api/services/notify/mobile_app_phone");
      assert.equal((ha.json as any).title, TEST_TITLE);
      assert.equal(ha.headers.authorization, `Bearer ${ALERT.haToken}`);
      assert.deepEqual(sink.requests.filter((r) => r.path.startsWith("/ping")), [], "a test must not tell the dead-man's switch the backup ran");
      assert.equal(sink.requests.length, 3);
    });

    it("one dead channel answers ok:false with its reason (no secret); the others are still sent", async function () {
      sink.statusFor.set(ALERT.webhookPath, 500);
      const res = await post(url, everyChannel());
      assert.equal(res.status, 200);
      const byName = Object.fromEntries(res.body.channels.map((c: any) => [c.channel, c]));
      assert.deepEqual(Object.keys(byName).sort(), ["email", "home-assistant", "ntfy", "webhook"]);
      assert.equal(byName.webhook.ok, false);
      assert.match(byName.webhook.error, /HTTP 500/);
      assert.ok(!byName.webhook.error.includes(ALERT.webhookPath.slice(1)));
      for (const ok of ["email", "ntfy", "home-assistant"]) assert.equal(byName[ok].ok, true, ok);
      assert.equal(smtp.mails.length, 1);

      // An SMTP server that is gone: the e-mail line fails on its own, with the host named.
      const closed = await freePort();
      const again = await post(url, { ...everyChannel(), emailPort: String(closed) });
      const email = again.body.channels.find((c: any) => c.channel === "email");
      assert.equal(email.ok, false);
      assert.match(email.error, new RegExp(`127\\.0\\.0\\.1:${closed}`));
      assert.ok(!email.error.includes(ALERT.emailPassword));
    });

    it("a half-filled e-mail is a 400; with no channel at all (a ping URL alone) too, and nothing is sent", async function () {
      const half = await post(url, { emailHost: "127.0.0.1", emailTo: "me@home.test", credentials: {} });
      assert.equal(half.status, 400);
      assert.match(half.body.error, /e-mail needs a server, a From and a To address/);
      const none = await post(url, { credentials: { pingUrl: sink.url + ALERT.pingPath } });
      assert.equal(none.status, 400);
      assert.match(none.body.error, /no channel/);
      assert.equal(smtp.mails.length + sink.requests.length, 0);
    });
  });
});
