/**
 * The three nodes (sftp-server, backup-archive, sftp-pull) in a Node-RED runtime driven by
 * node-red-node-test-helper, pulling from a REAL OpenSSH sshd on 127.0.0.1.
 *
 * Every test loads its own flow over its own remote folder and its own archive folder, so the
 * tests do not depend on each other. After every test, everything the flow showed the world
 * (messages, status texts, log lines) is checked for the private key.
 */
import { nodeRedPath } from "./support/red-path";
import { freePort } from "./support/net";
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as util from "node:util";
import sinon from "sinon";
import { Inbox } from "./support/inbox";
import { startSshd, type Sshd } from "./support/sshd";

// The test helper has no type declarations; it is used the way its README shows.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
// The compiled node modules, as Node-RED itself would load them.
const serverNode = require(path.join(__dirname, "../nodes/sftp-server/sftp-server.js"));
const archiveNode = require(path.join(__dirname, "../nodes/backup-archive/backup-archive.js"));
const pullNode = require(path.join(__dirname, "../nodes/sftp-pull/sftp-pull.js"));

helper.init(nodeRedPath());

const MiB = 1024 * 1024;
const STATE = ".tick-backup";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Msg = any;
type RedNode = any;

interface Loaded {
  pull: RedNode;
  /** what the pull told its archive node after each run */
  outcomes: Msg[];
  out: Inbox;
  caught: Inbox;
  statuses: Array<{ fill?: string; shape?: string; text?: string }>;
}

interface FlowOptions {
  remoteDir: string;
  archivePath: string;
  hostFingerprint?: string;
  bwLimitKBps?: number;
  concurrency?: number;
  privateKey?: string;
  /** without a catch node, Node-RED logs the error instead (default: with) */
  catchNode?: boolean;
}

function sha256(data: Buffer): string {
  return crypto.createHash("sha256").update(data).digest("hex");
}

async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** A file of `mib` MiB whose every MiB differs (so a misplaced block cannot go unnoticed). */
async function writeBigFile(file: string, mib: number): Promise<void> {
  const block = crypto.randomBytes(MiB);
  const h = await fsp.open(file, "w");
  try {
    for (let i = 0; i < mib; i++) {
      block.writeUInt32BE(i, 0);
      await h.write(block);
    }
  } finally {
    await h.close();
  }
}

/** Every regular file under `dir`, as "/"-separated relative paths, leaving out `skip` at the top. */
async function filesUnder(dir: string, skip: string[] = []): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && skip.includes(e.name)) continue;
      if (e.isDirectory()) await walk(r);
      else out.push(r);
    }
  };
  await walk("");
  return out.sort();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

function isIso(s: unknown): boolean {
  return typeof s === "string" && !Number.isNaN(Date.parse(s)) && new Date(s).toISOString() === s;
}

/** A fingerprint in the right format that is not the server's. */
function otherFingerprint(than: string): string {
  const fp = "SHA256:" + crypto.createHash("sha256").update(`not ${than}`).digest("base64").replace(/=+$/, "");
  assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.notEqual(fp, than);
  return fp;
}


describe("nodes: sftp-server + backup-archive + sftp-pull against a real sshd", function () {
  this.timeout(60_000);

  let sshd: Sshd;
  let scratch: string;
  let loaded: Loaded | undefined;
  /** Everything this test's flows showed: messages, statuses, log lines (checked for secrets). */
  let shown: string[] = [];
  let caseNo = 0;

  before(async function () {
    sshd = await startSshd();
    scratch = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), "tick-nodes-")));
  });

  after(async function () {
    await sshd?.stop();
    if (scratch) await fsp.rm(scratch, { recursive: true, force: true });
  });

  /** A fresh remote folder (under the sshd root) and a fresh, existing archive folder. */
  async function freshCase(): Promise<{ remoteDir: string; archivePath: string }> {
    caseNo++;
    const remoteDir = path.join(sshd.root, `case-${caseNo}`);
    const archivePath = path.join(scratch, `archive-${caseNo}`);
    await fsp.mkdir(remoteDir, { recursive: true });
    await fsp.mkdir(archivePath, { recursive: true });
    return { remoteDir, archivePath };
  }

  function flowOf(o: FlowOptions) {
    return [
      { id: "f1", type: "tab", label: "tick backup test" },
      {
        id: "srv",
        type: "sftp-server",
        name: "",
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        hostFingerprint: o.hostFingerprint ?? sshd.hostFingerprint,
      },
      { id: "arc", type: "backup-archive", name: "ticks", path: o.archivePath },
      {
        id: "pull",
        type: "sftp-pull",
        z: "f1",
        x: 200,
        y: 100,
        name: "",
        server: "srv",
        archive: "arc",
        remoteDir: o.remoteDir,
        include: "**",
        exclude: "",
        settleSeconds: 120,
        maxAgeDays: 0,
        concurrency: o.concurrency ?? 4,
        bwLimitKBps: o.bwLimitKBps ?? 0,
        wires: [["out"]],
      },
      // Flow nodes need x and y: without them Node-RED takes a node in a tab for a config node.
      { id: "out", type: "helper", z: "f1", x: 400, y: 100, wires: [] },
      ...(o.catchNode === false
        ? []
        : [
            { id: "catch", type: "catch", z: "f1", x: 200, y: 200, name: "", scope: null, uncaught: false, wires: [["caught"]] },
            { id: "caught", type: "helper", z: "f1", x: 400, y: 200, wires: [] },
          ]),
    ];
  }

  async function load(o: FlowOptions): Promise<Loaded> {
    assert.equal(loaded, undefined, "unload the previous flow first");
    await helper.load([serverNode, archiveNode, pullNode], flowOf(o), { srv: { privateKey: o.privateKey ?? sshd.privateKey } });
    const pull = helper.getNode("pull");
    assert.ok(pull, "the sftp-pull node was created");
    const statuses: Loaded["statuses"] = [];
    const original = pull.status;
    pull.status = function (s: Loaded["statuses"][number]) {
      statuses.push(s);
      return original.call(this, s);
    };
    // Without a catch node the inbox stays empty (a bare event emitter stands in for the node).
    const caught = new Inbox(helper.getNode("caught") ?? new EventEmitter());
    const outcomes: Msg[] = [];
    helper.getNode("arc").onRecord((o: Msg) => outcomes.push(o));
    loaded = { pull, outcomes, out: new Inbox(helper.getNode("out")), caught, statuses };
    return loaded;
  }

  /** Unloads the flow, first keeping what it showed (the log spy goes away with it). */
  async function unload(): Promise<void> {
    if (!loaded) return;
    const l = loaded;
    loaded = undefined;
    const logSpy = helper.log();
    if (logSpy) for (const call of logSpy.getCalls()) shown.push(util.inspect(call.args, { depth: 10 }));
    for (const m of [...l.out.msgs, ...l.caught.msgs]) shown.push(util.inspect(m, { depth: 10 }));
    for (const s of l.statuses) shown.push(util.inspect(s));
    await helper.unload();
  }

  /** The key text and each of its base64 lines: none may appear anywhere the flow shows. */
  function assertNoSecret(texts: string[], key: string): void {
    const pieces = [key.trim(), ...key.split("\n").map((l) => l.trim()).filter((l) => l.length >= 16 && !l.startsWith("-----"))];
    assert.ok(pieces.length >= 2, "the key has body lines to look for");
    for (const t of texts) {
      for (const p of pieces) assert.ok(!t.includes(p), `a piece of the private key appeared in: ${t.slice(0, 300)}`);
    }
  }

  afterEach(async function () {
    await unload();
    const texts = shown;
    shown = [];
    if (sshd) assertNoSecret(texts, sshd.privateKey);
  });

  const lastStatus = (l: Loaded) => l.statuses[l.statuses.length - 1];

  it("pulls a small tree (nested folders, spaces, unicode) into the archive, byte-identical, with a full report", async function () {
    const { remoteDir, archivePath } = await freshCase();
    const tree: Record<string, Buffer> = {
      "EURUSD-2024-01-02.csv": Buffer.from("ts,bid,ask\n1704153600000,1.1042,1.1043\n1704153600050,1.1041,1.1043\n"),
      "nested/deep/GBPUSD 2024-01-02.csv": Buffer.from("ts,bid,ask\n1704153600000,1.2701,1.2703\n"),
      "späces and ünïcødé €/日本 ticks 2024.csv": crypto.randomBytes(300_000),
      "empty.csv": Buffer.alloc(0),
    };
    for (const [rel, data] of Object.entries(tree)) {
      await fsp.mkdir(path.dirname(path.join(remoteDir, rel)), { recursive: true });
      await fsp.writeFile(path.join(remoteDir, rel), data);
    }
    const l = await load({ remoteDir, archivePath });

    const before = Date.now();
    l.pull.receive({ topic: "hourly", payload: "go" });
    const msg = await l.out.wait((m) => m.payload?.kind === "pull", "the pull report");
    const r = msg.payload;

    assert.equal(msg.topic, "hourly", "the input message's properties pass through");
    assert.equal(l.outcomes.length, 1, "the archive node heard of the run once");
    assert.equal(l.outcomes[0].kind, "pull");
    assert.equal(l.outcomes[0].ok, true);
    assert.equal(l.outcomes[0].source, "pull");
    assert.equal(l.outcomes[0].report, r, "the outcome carries the report itself");
    assert.equal(r.kind, "pull");
    assert.equal(r.archive, "ticks");
    assert.equal(r.server, `${sshd.username}@${sshd.host}:${sshd.port}`);
    assert.equal(r.remoteDir, remoteDir);
    assert.ok(isIso(r.startedAt), `startedAt is ISO: ${r.startedAt}`);
    assert.ok(isIso(r.finishedAt), `finishedAt is ISO: ${r.finishedAt}`);
    assert.ok(Date.parse(r.startedAt) >= before - 1000 && Date.parse(r.finishedAt) >= Date.parse(r.startedAt));
    assert.equal(typeof r.durationMs, "number");
    const n = Object.keys(tree).length;
    assert.equal(r.counts.listed, n);
    assert.equal(r.counts.new, n);
    assert.equal(r.counts.failed, 0);
    assert.equal(r.counts.unchanged, 0);
    assert.deepEqual(r.problems, []);
    const total = Object.values(tree).reduce((s, b) => s + b.length, 0);
    assert.equal(r.bytes, total);

    assert.deepEqual(r.files.map((f: Msg) => f.path).sort(), Object.keys(tree).sort());
    for (const f of r.files) {
      const data = tree[f.path];
      assert.equal(f.kind, "new");
      assert.equal(f.size, data.length, f.path);
      assert.equal(f.bytes, data.length, f.path);
      assert.equal(f.sha256, sha256(await fsp.readFile(path.join(remoteDir, f.path))), `sha256 of ${f.path} is the server file's`);
      assert.equal(f.sha256, sha256(data));
      assert.equal(f.state, "live", "files younger than settleSeconds are live");
    }

    // The archive holds exactly the server's tree, byte for byte (and its own state area).
    assert.deepEqual(await filesUnder(archivePath, [STATE]), Object.keys(tree).sort());
    for (const [rel, data] of Object.entries(tree)) {
      assert.ok((await fsp.readFile(path.join(archivePath, rel))).equals(data), `${rel} is byte-identical`);
    }
    assert.deepEqual(await filesUnder(path.join(archivePath, STATE, "partial")), [], "no partial downloads left behind");

    const s = lastStatus(l);
    assert.equal(s.fill, "green", util.inspect(s));
    assert.match(s.text ?? "", /new/);
    assert.match(s.text ?? "", new RegExp(`^${n} new`));
    assert.ok(l.statuses.some((x) => x.fill === "blue"), "progress was shown while running");
    assert.equal(l.caught.msgs.length, 0, `no errors: ${util.inspect(l.caught.msgs)}`);
  });

  it("a second message finds everything unchanged and moves no bytes (also after a redeploy)", async function () {
    const { remoteDir, archivePath } = await freshCase();
    const files = ["a.csv", "sub/b c.csv", "sub/ü/ç.csv"];
    for (const [i, rel] of files.entries()) {
      await fsp.mkdir(path.dirname(path.join(remoteDir, rel)), { recursive: true });
      await fsp.writeFile(path.join(remoteDir, rel), crypto.randomBytes(1000 + i * 777));
    }
    let l = await load({ remoteDir, archivePath });
    l.pull.receive({ topic: "1" });
    const first = (await l.out.wait((m) => m.topic === "1", "the first report")).payload;
    assert.equal(first.counts.new, files.length);

    l.pull.receive({ topic: "2" });
    const second = (await l.out.wait((m) => m.topic === "2", "the second report")).payload;
    assert.equal(second.kind, "pull");
    assert.equal(second.counts.listed, files.length);
    assert.equal(second.counts.unchanged, files.length);
    assert.equal(second.counts.new, 0);
    assert.equal(second.counts.grown, 0);
    assert.equal(second.counts.rewritten, 0);
    assert.equal(second.counts.touched, 0);
    assert.equal(second.bytes, 0);
    assert.deepEqual(second.files, []);
    assert.deepEqual(second.problems, []);
    assert.equal(lastStatus(l).fill, "green");
    assert.match(lastStatus(l).text ?? "", /^0 new/);

    // A redeploy builds new nodes over the same archive: the catalog remembers.
    await unload();
    l = await load({ remoteDir, archivePath });
    l.pull.receive({ topic: "3" });
    const third = (await l.out.wait((m) => m.topic === "3", "the report after a redeploy")).payload;
    assert.equal(third.counts.unchanged, files.length);
    assert.equal(third.bytes, 0);
    assert.equal(l.caught.msgs.length, 0);
  });

  it("refuses a server whose host key is not the pinned one: HOST KEY CHANGED, both fingerprints, nothing archived", async function () {
    const { remoteDir, archivePath } = await freshCase();
    await fsp.writeFile(path.join(remoteDir, "ticks.csv"), "ts,bid\n1,2\n");
    const pinned = otherFingerprint(sshd.hostFingerprint);
    const l = await load({ remoteDir, archivePath, hostFingerprint: pinned });

    l.pull.receive({ topic: "mitm?" });
    const err = await l.caught.wait(() => true, "the error at the catch node");
    assert.equal(err.topic, "mitm?", "the catch node gets the message that failed");
    const text: string = err.error?.message ?? "";
    assert.ok(text.includes(pinned), `names the expected fingerprint: ${text}`);
    assert.ok(text.includes(sshd.hostFingerprint), `names the offered fingerprint: ${text}`);
    assert.match(text, /HOST KEY CHANGED/);
    assert.equal(err.error?.source?.id, "pull");

    const s = lastStatus(l);
    assert.equal(s.fill, "red");
    assert.equal(s.text, "HOST KEY CHANGED");

    await sleep(300);
    assert.equal(l.out.msgs.filter((m) => m.payload?.files).length, 0, "no report with files was sent");
    assert.deepEqual(await fsp.readdir(archivePath), [STATE], "nothing but the state area in the archive");
    assert.deepEqual(await filesUnder(path.join(archivePath, STATE, "partial")), []);
  });

  it("refuses to connect without a pinned host key, and names the key the server offers", async function () {
    const { remoteDir, archivePath } = await freshCase();
    await fsp.writeFile(path.join(remoteDir, "ticks.csv"), "ts,bid\n1,2\n");
    const l = await load({ remoteDir, archivePath, hostFingerprint: "" });

    l.pull.receive({});
    const err = await l.caught.wait(() => true, "the error at the catch node");
    const text: string = err.error?.message ?? "";
    assert.match(text, /no host key pinned|not pinned/i);
    assert.ok(text.includes(sshd.hostFingerprint), `names the offered fingerprint: ${text}`);
    const s = lastStatus(l);
    assert.equal(s.fill, "red");
    assert.match(s.text ?? "", /not pinned/i);
    await sleep(200);
    assert.equal(l.out.msgs.length, 0);
    assert.deepEqual(await fsp.readdir(archivePath), [STATE]);
  });

  it("answers a message during a run at once with busy, and the run still completes in full", async function () {
    const { remoteDir, archivePath } = await freshCase();
    const big = path.join(remoteDir, "XAUUSD-2024-01-02.csv");
    const size = 48 * MiB;
    await writeBigFile(big, size / MiB);
    const bigSha = await sha256File(big);
    // 16 MiB/s (with the throttle's 1 s burst) makes the run last about 2 s.
    const l = await load({ remoteDir, archivePath, bwLimitKBps: 16 * 1024 });

    const t0 = Date.now();
    l.pull.receive({ topic: "first" });
    await until("the run to be pulling", () => (l.statuses.some((s) => /pulling/.test(s.text ?? "")) ? true : undefined), 10_000);
    const sentSecond = Date.now();
    l.pull.receive({ topic: "second" });
    const busy = await l.out.wait((m) => m.topic === "second", "the busy answer", 2_000);
    assert.ok(Date.now() - sentSecond < 1000, "the busy answer comes at once");
    assert.equal(busy.payload.busy, true);
    assert.equal(busy.payload.kind, "pull");
    assert.equal(busy.payload.archive, "ticks");
    assert.ok(isIso(busy.payload.startedAt) && isIso(busy.payload.finishedAt));
    assert.equal(busy.payload.problems?.[0]?.code, "BUSY");
    assert.equal(busy.payload.counts.new, 0, "a busy answer has the report's shape");
    assert.equal(busy.payload.bytes, 0);
    assert.equal(l.out.msgs.filter((m) => m.topic === "first").length, 0, "the first run was still going when busy came back");

    const report = (await l.out.wait((m) => m.topic === "first", "the first run's report", 30_000)).payload;
    assert.ok(Date.now() - t0 > 1000, "the bandwidth limit made the run take a while");
    assert.equal(report.busy, undefined);
    assert.equal(report.counts.new, 1);
    assert.equal(report.bytes, size);
    assert.equal(report.files[0].size, size);
    assert.equal(report.files[0].sha256, bigSha);
    assert.equal(await sha256File(path.join(archivePath, "XAUUSD-2024-01-02.csv")), bigSha);
    assert.deepEqual(report.problems, []);
    assert.equal(lastStatus(l).fill, "green");
    assert.equal(l.caught.msgs.length, 0, "busy is an answer, not an error");
    assert.deepEqual(l.out.msgs.map((m) => m.topic), ["second", "first"]);
  });

  it("stops a run at a safe point on close; the next run resumes the partial and completes byte-identical", async function () {
    const { remoteDir, archivePath } = await freshCase();
    const rel = "big/BTCUSD-2024-01-02.csv";
    const big = path.join(remoteDir, rel);
    const size = 64 * MiB;
    await fsp.mkdir(path.dirname(big), { recursive: true });
    await writeBigFile(big, size / MiB);
    const bigSha = await sha256File(big);
    // 8 MiB/s: about 7 s for the whole file, so close comes in the middle of it.
    let l = await load({ remoteDir, archivePath, bwLimitKBps: 8 * 1024 });
    const partialDir = path.join(archivePath, STATE, "partial");
    const partSize = async () => {
      const parts = (await fsp.readdir(partialDir).catch(() => [] as string[])).filter((f) => f.endsWith(".part"));
      if (parts.length !== 1) return 0;
      return (await fsp.stat(path.join(partialDir, parts[0]))).size;
    };

    l.pull.receive({ topic: "interrupted" });
    await until("a partial download of 12 MiB or more", async () => ((await partSize()) >= 12 * MiB ? true : undefined), 15_000);
    const pulling = l;

    const t0 = Date.now();
    await unload();
    const closeMs = Date.now() - t0;
    assert.ok(closeMs < 5000, `close took ${closeMs} ms`);
    // The run ended (not just the close timeout): its last status is the grey "stopped" one, not an error.
    const s = lastStatus(pulling);
    assert.equal(s.fill, "grey", util.inspect(pulling.statuses.slice(-3)));
    assert.match(s.text ?? "", /stopped/);
    assert.equal(pulling.out.msgs.length, 0, "an interrupted run sends no report");

    // Nothing half-written in the archive tree; the partial waits in the state area, and stays still.
    assert.deepEqual(await filesUnder(archivePath, [STATE]), [], "the big file is absent from its place");
    assert.equal(fs.existsSync(path.join(archivePath, rel)), false);
    const part = await partSize();
    assert.ok(part >= 12 * MiB && part < size, `partial of ${part} bytes`);
    await sleep(500);
    assert.equal(await partSize(), part, "nothing writes to the partial after close");
    assert.equal(fs.existsSync(path.join(archivePath, STATE, "lock")), false, "the archive lock was released");

    // A new flow (a redeploy) completes the file, fetching only what was missing.
    l = await load({ remoteDir, archivePath });
    l.pull.receive({ topic: "resumed" });
    const r = (await l.out.wait((m) => m.topic === "resumed", "the resumed run's report", 30_000)).payload;
    assert.deepEqual(r.problems, []);
    assert.equal(r.counts.new, 1);
    assert.equal(r.files[0].path, rel);
    assert.equal(r.files[0].sha256, bigSha);
    assert.ok(r.bytes < size, `resumed: ${r.bytes} bytes of ${size} crossed the network`);
    assert.ok(r.bytes >= size - part, `at least the missing ${size - part} bytes were fetched, got ${r.bytes}`);
    assert.equal(await sha256File(path.join(archivePath, rel)), bigSha, "byte-identical after resume");
    assert.equal((await fsp.stat(path.join(archivePath, rel))).size, size);
    assert.equal(await partSize(), 0, "the partial is gone once placed");
    assert.equal(lastStatus(l).fill, "green");
  });

  it("the editor's Fetch host key endpoint returns the server's fingerprint, and refuses bad input", async function () {
    const { remoteDir, archivePath } = await freshCase();
    await load({ remoteDir, archivePath });
    const url = "/tick-backup/sftp-server/fingerprint";

    const ok = await helper.request().post(url).send({ host: "127.0.0.1", port: sshd.port }).expect(200);
    assert.deepEqual(ok.body, { fingerprint: sshd.hostFingerprint });
    // The editor sends the port as the input field's text.
    const asText = await helper.request().post(url).send({ host: "127.0.0.1", port: String(sshd.port) }).expect(200);
    assert.equal(asText.body.fingerprint, sshd.hostFingerprint);

    for (const bad of [{ host: "127.0.0.1", port: 70000 }, { host: "127.0.0.1", port: -1 }, { host: "", port: sshd.port }, { port: sshd.port }]) {
      const res = await helper.request().post(url).send(bad);
      assert.equal(res.status, 400, `${JSON.stringify(bad)} → ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(typeof res.body.error, "string");
      assert.equal(res.body.fingerprint, undefined);
    }

    // Nothing listening: an error the editor can show, not a hang.
    const closed = await freePort();
    const res = await helper.request().post(url).send({ host: "127.0.0.1", port: closed });
    assert.equal(res.status, 502);
    assert.match(res.body.error, new RegExp(`127\\.0\\.0\\.1:${closed}`));
  });

  it("a missing archive folder is a clear error (status, catch node) and the folder is not created", async function () {
    const { remoteDir } = await freshCase();
    await fsp.writeFile(path.join(remoteDir, "ticks.csv"), "ts,bid\n1,2\n");
    const missing = path.join(scratch, "unplugged", "archive");
    const l = await load({ remoteDir, archivePath: missing });

    l.pull.receive({ topic: "no disk" });
    const err = await l.caught.wait(() => true, "the error at the catch node");
    assert.equal(err.topic, "no disk");
    const text: string = err.error?.message ?? "";
    assert.ok(text.includes(missing), `names the folder: ${text}`);
    assert.match(text, /does not exist/);
    assert.deepEqual(
      l.outcomes.map((o) => [o.kind, o.ok, o.error?.code]),
      [["pull", false, "ARCHIVE_MISSING"]],
      "the archive node heard of the failed run",
    );
    const s = lastStatus(l);
    assert.equal(s.fill, "red");
    assert.match(s.text ?? "", /^archive folder /);
    await sleep(200);
    assert.equal(l.out.msgs.length, 0);
    assert.equal(fs.existsSync(missing), false, "the archive folder was not created");
    assert.equal(fs.existsSync(path.dirname(missing)), false, "nor its parent");
  });

  describe("secrets", function () {
    /** Captures console output too, for the length of one test. */
    function captureConsole(): { text: () => string; restore: () => void } {
      let buf = "";
      const out = sinon.stub(process.stdout, "write").callsFake(function (this: unknown, chunk: unknown, ...rest: unknown[]) {
        buf += String(chunk);
        return (out.wrappedMethod as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
      });
      const errw = sinon.stub(process.stderr, "write").callsFake(function (this: unknown, chunk: unknown, ...rest: unknown[]) {
        buf += String(chunk);
        return (errw.wrappedMethod as (...a: unknown[]) => boolean).call(process.stderr, chunk, ...rest);
      });
      return { text: () => buf, restore: () => (out.restore(), errw.restore()) };
    }

    it("the private key appears in no msg, status, log line, console output or archive file (good run)", async function () {
      const { remoteDir, archivePath } = await freshCase();
      await fsp.writeFile(path.join(remoteDir, "ticks.csv"), "ts,bid\n1,2\n");
      const con = captureConsole();
      try {
        const l = await load({ remoteDir, archivePath });
        l.pull.receive({});
        await l.out.wait((m) => m.payload?.kind === "pull", "the report");
        await unload();
      } finally {
        con.restore();
      }
      assertNoSecret([...shown, con.text()], sshd.privateKey);
      assert.ok(shown.some((t) => t.includes("kind: 'pull'")), "the scan saw the report");
      assert.ok(shown.some((t) => t.includes("fill: 'green'")), "the scan saw the statuses");
      // Nor anywhere in the archive's own files (identity, catalog, journal).
      for (const rel of await filesUnder(archivePath)) {
        assertNoSecret([await fsp.readFile(path.join(archivePath, rel), "utf8")], sshd.privateKey);
      }
    });

    it("a key that cannot be parsed, or is not authorised, fails clearly without showing the key", async function () {
      const { remoteDir, archivePath } = await freshCase();
      await fsp.writeFile(path.join(remoteDir, "ticks.csv"), "ts,bid\n1,2\n");
      const garbage =
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" +
        "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LW11c3QtbmV2ZXItbGVhay0xMjM0NTY3ODkw\n" +
        "dGhpcy1pcy1ub3QtYS1yZWFsLWtleS1idXQtaXQtaXMtc3RpbGwtYS1zZWNyZXQtMDA=\n" +
        "-----END OPENSSH PRIVATE KEY-----\n";
      const unauthorised = crypto
        .generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs1", format: "pem" }, publicKeyEncoding: { type: "pkcs1", format: "pem" } })
        .privateKey;

      const con = captureConsole();
      const texts: string[] = [];
      try {
        // With a catch node the error goes there (and Node-RED does not log it) ...
        let l = await load({ remoteDir, archivePath, privateKey: garbage });
        l.pull.receive({});
        const err = await l.caught.wait(() => true, "the error at the catch node");
        assert.match(err.error?.message ?? "", /private key .* cannot be used/);
        assert.equal(lastStatus(l).fill, "red");
        await unload();
        texts.push(...shown);
        assertNoSecret(shown, garbage);

        // ... without one Node-RED logs it: the log line must not hold the key either.
        l = await load({ remoteDir, archivePath, privateKey: unauthorised, catchNode: false });
        l.pull.receive({});
        const logged = await until(
          "the error in the log",
          () => helper.log().getCalls().find((c: sinon.SinonSpyCall) => c.args[0]?.level === 20 && /refused/.test(String(c.args[0]?.msg))),
        );
        assert.equal(logged.args[0].id, "pull");
        assert.match(String(logged.args[0].msg), /login as .* refused/);
        assert.equal(lastStatus(l).fill, "red");
        await unload();
        texts.push(...shown);
        assertNoSecret(shown, unauthorised);
      } finally {
        con.restore();
      }
      assert.ok(texts.some((t) => /level: 20/.test(t) && /refused/.test(t)), "the logged error was scanned");
      assertNoSecret([con.text()], garbage);
      assertNoSecret([con.text()], unauthorised);
      assert.deepEqual(await fsp.readdir(archivePath), [STATE]);
      assert.ok(texts.length > 0);
    });
  });
});
