/**
 * The hash-verify node in a Node-RED runtime (node-red-node-test-helper): wired after a real pull
 * from a real sshd (origin mode), and run on its own (scrub, full), with the failure paths.
 */
import { nodeRedPath } from "./support/red-path";
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as util from "node:util";
import { EventEmitter } from "node:events";
import { createHash } from "node:crypto";
import { Archive } from "../lib/archive/archive";
import { startSshd, type Sshd } from "./support/sshd";
import { Inbox } from "./support/inbox";
import { tempDir, tickLines, write } from "./support/tree";
import { waitFor } from "./support/wait";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const nodes = ["sftp-server", "backup-archive", "sftp-pull", "hash-verify"].map((n) => require(path.join(__dirname, `../nodes/${n}/${n}.js`)));
helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
type Status = { fill?: string; shape?: string; text?: string };

describe("node hash-verify in a Node-RED runtime", function () {
  this.timeout(60_000);
  let sshd: Sshd;
  let remote: string;
  let archivePath: string;

  before(async () => {
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
  });
  beforeEach(() => {
    remote = tempDir("tick-remote-");
    fs.chmodSync(remote, 0o755);
    archivePath = tempDir("tick-archive-");
    write(remote, "EURUSD/2026-11-25.csv", tickLines("EURUSD", 3000));
    write(remote, "GBPUSD/2026-11-25.csv", tickLines("GBPUSD", 1000));
    write(remote, "USDJPY/2026-11-25.csv", tickLines("USDJPY", 10));
  });
  afterEach(async () => {
    await helper.unload();
    fs.rmSync(remote, { recursive: true, force: true });
    fs.rmSync(archivePath, { recursive: true, force: true });
  });

  async function load(verify: Record<string, unknown>, o: { withPull?: boolean } = {}) {
    const flow = [
      { id: "f1", type: "tab", label: "t" },
      { id: "srv", type: "sftp-server", host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint },
      { id: "arc", type: "backup-archive", name: "ticks", path: archivePath },
      { id: "pull", type: "sftp-pull", z: "f1", x: 100, y: 100, server: "srv", archive: "arc", remoteDir: remote, include: "**", exclude: "", settleSeconds: 0, maxAgeDays: 0, concurrency: 4, bwLimitKBps: 0, wires: [o.withPull ? ["verify"] : []] },
      { id: "verify", type: "hash-verify", z: "f1", x: 300, y: 100, archive: "arc", mode: "scrub", partitions: 7, server: "", remoteDir: "", ...verify, wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 500, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 100, y: 200, scope: ["verify"], uncaught: false, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1", x: 300, y: 200, wires: [] },
    ];
    await helper.load(nodes, flow, { srv: { privateKey: sshd.privateKey } });
    const node = helper.getNode("verify");
    const statuses: Status[] = [];
    const original = node.status;
    node.status = function (s: Status) {
      statuses.push(s);
      return original.call(this, s);
    };
    const outcomes: any[] = [];
    helper.getNode("arc").onRecord((x: any) => outcomes.push(x));
    return { node, pull: helper.getNode("pull"), out: new Inbox(helper.getNode("out")), caught: new Inbox(helper.getNode("caught") ?? new EventEmitter()), statuses, outcomes };
  }

  it("origin mode after a pull: the server agrees with every file; green status; the archive node hears of it", async () => {
    const l = await load({ mode: "origin", server: "srv" }, { withPull: true });
    l.pull.receive({ topic: "hourly" });
    const msg = await l.out.wait((m) => m.payload?.kind === "verify", "the verify report");
    const r = msg.payload;
    assert.equal(msg.topic, "hourly");
    assert.equal(r.mode, "origin");
    assert.equal(r.archive, "ticks");
    assert.equal(r.origin.checked, 3);
    assert.equal(r.origin.matched, 3);
    assert.equal(r.origin.unavailable, false);
    assert.deepEqual(r.problems, []);
    const last = l.statuses[l.statuses.length - 1];
    assert.equal(last.fill, "green", util.inspect(l.statuses));
    assert.match(last.text!, /^3\/3 match server/);
    assert.equal(l.outcomes.filter((o) => o.kind === "verify").length, 1);
    assert.equal(l.outcomes.find((o) => o.kind === "verify").ok, true);
    assert.equal(l.caught.msgs.length, 0);
  });

  it("scrub mode: reads 1/t, shows n/t, and full finds a damaged file: red status, report sent, done(err) reaches catch", async () => {
    const l = await load({ mode: "scrub", partitions: 2, server: "" }, { withPull: false });
    l.pull.receive({});
    await waitFor("the pull to place USDJPY and write SHA256SUMS", () => fs.existsSync(path.join(archivePath, "USDJPY/2026-11-25.csv")) && fs.existsSync(path.join(archivePath, ".tick-backup/SHA256SUMS")), 20_000);
    l.node.receive({ topic: "daily" });
    const first = (await l.out.wait((m) => m.topic === "daily", "the scrub report")).payload;
    assert.deepEqual(first.partition, { n: 1, t: 2 });
    assert.equal(first.coverage.totalFiles, 3);
    assert.match(l.statuses[l.statuses.length - 1].text!, / · 1\/2 · /);

    const bad = path.join(archivePath, "GBPUSD/2026-11-25.csv");
    const data = fs.readFileSync(bad);
    data[5] ^= 4;
    fs.writeFileSync(bad, data);
    l.node.receive({ topic: "full", mode: "full" });
    const msg = await l.out.wait((m) => m.topic === "full", "the full report");
    assert.deepEqual(msg.payload.mismatches, ["GBPUSD/2026-11-25.csv"]);
    const err = await l.caught.wait(() => true, "the error at the catch node");
    assert.match(err.error.message, /1 mismatched and 0 missing.*GBPUSD\/2026-11-25\.csv/);
    const last = l.statuses[l.statuses.length - 1];
    assert.equal(last.fill, "red");
    assert.match(last.text!, /1 MISMATCH/);
    assert.equal(l.outcomes.filter((o) => o.kind === "verify").pop().ok, false);
  });

  it("SFTP-only server: origin unavailable in status and report, not an error", async () => {
    const sftpOnly = await startSshd({ extraConfig: ["ForceCommand internal-sftp"] });
    try {
      const saved = sshd;
      sshd = sftpOnly;
      const l = await load({ mode: "origin", server: "srv" }, { withPull: true });
      sshd = saved;
      l.pull.receive({});
      const r = (await l.out.wait((m) => m.payload?.kind === "verify", "the verify report")).payload;
      assert.equal(r.origin.unavailable, true);
      assert.match(r.origin.reason, /SFTP only/);
      const last = l.statuses[l.statuses.length - 1];
      assert.equal(last.text, "origin: unavailable");
      assert.equal(last.fill, "yellow");
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(l.caught.msgs.length, 0);
    } finally {
      await sftpOnly.stop();
    }
  });

  it("bad input: origin mode without a pull report, a bad mode, bad partitions, a missing archive folder: clear error, nothing written", async () => {
    const cases: Array<[Record<string, unknown>, any, RegExp]> = [
      [{ mode: "origin", server: "srv" }, { payload: "tick" }, /pull report/],
      [{ mode: "scrub" }, { mode: "nope" }, /mode must be origin, scrub, full or drill/],
      [{ mode: "scrub", partitions: "seven" }, {}, /partitions must be a whole number/],
      [{ mode: "origin" }, { payload: { files: [] } }, /needs an sftp-server/],
    ];
    for (const [config, input, expected] of cases) {
      const l = await load(config);
      l.node.receive({ ...input, topic: "bad" });
      const err = await l.caught.wait(() => true, `an error for ${util.inspect(config)}`);
      assert.match(err.error.message, expected);
      const last = l.statuses[l.statuses.length - 1];
      assert.equal(last.fill, "red");
      assert.equal(l.out.msgs.length, 0, "no report for a run that could not start");
      assert.equal(l.outcomes.filter((o) => o.kind === "verify").pop()?.ok, false, "the archive node hears of the failure");
      await helper.unload();
    }
    assert.deepEqual(fs.readdirSync(path.join(archivePath, ".tick-backup")).filter((f) => f === "verify.json" || f.startsWith("SHA256SUMS")), []);
    archivePath = path.join(archivePath, "not-mounted");
    const l = await load({ mode: "full" });
    l.node.receive({});
    const err = await l.caught.wait(() => true, "the missing archive error");
    assert.match(err.error.message, /does not exist/);
    assert.match(l.statuses[l.statuses.length - 1].text!, /archive folder missing/);
  });

  it("a redeploy during a scrub stops it at once: grey status, no error, nothing marked", async () => {
    const archive = await Archive.open(archivePath, { name: "ticks" });
    const at = new Date().toISOString();
    for (let i = 0; i < 3; i++) {
      const data = Buffer.alloc(96 * 1024 * 1024, i);
      write(archivePath, `big/${i}.bin`, data);
      const record = { path: `big/${i}.bin`, size: data.length, mtime: 0, sha256: createHash("sha256").update(data).digest("hex"), state: "final" as const, firstPulledAt: at, pulledAt: at };
      await archive.withLock((cat) => cat.commit(record));
    }
    const l = await load({ mode: "full" });
    l.node.receive({});
    await waitFor("a full run's progress status", () => l.statuses.some((s) => /^full/.test(s.text ?? "")), 20_000, 1);
    const started = Date.now();
    await helper.unload();
    assert.ok(Date.now() - started < 4000, "close did not wait for the run");
    const last = l.statuses[l.statuses.length - 1];
    assert.equal(last.fill, "grey", util.inspect(l.statuses));
    assert.match(last.text!, /stopped/);
    assert.equal(l.caught.msgs.length, 0);
    assert.equal(fs.existsSync(path.join(archivePath, ".tick-backup/verify.json")), false);
  });

  it("answers a message during a run at once with busy", async () => {
    for (let i = 0; i < 200; i++) write(archivePath, `many/${i}.csv`, tickLines("X", 200));
    const l = await load({ mode: "full" });
    l.node.receive({ topic: "first" });
    l.node.receive({ topic: "second" });
    const busy = await l.out.wait((m) => m.topic === "second", "the busy answer", 5_000);
    assert.equal(busy.payload.busy, true);
    assert.equal(busy.payload.kind, "verify");
    assert.equal(busy.payload.problems[0].code, "BUSY");
    const first = (await l.out.wait((m) => m.topic === "first", "the first report")).payload;
    assert.equal(first.counts.extra, 200, "files not in the catalog are reported as extra");
  });
});

