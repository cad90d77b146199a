/**
 * The disk-space node in a Node-RED runtime (node-red-node-test-helper), on a real tmpfs "disk"
 * bind-mounted at the archive path, with a real user directory for the archive node's memory.
 */
import { nodeRedPath } from "./support/red-path";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as util from "node:util";
import { Archive } from "../lib/archive/archive";
import { bindMount, mountTmpfs, unmount, unmountAll } from "./support/mounts";
import { startSshd, type Sshd } from "./support/sshd";
import { tempDir, tickLines, write } from "./support/tree";
import { waitFor } from "./support/wait";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const archiveNode = require(path.join(__dirname, "../nodes/backup-archive/backup-archive.js"));
const diskNode = require(path.join(__dirname, "../nodes/disk-space/disk-space.js"));
const serverNode = require(path.join(__dirname, "../nodes/sftp-server/sftp-server.js"));
const pullNode = require(path.join(__dirname, "../nodes/sftp-pull/sftp-pull.js"));
const targetNode = require(path.join(__dirname, "../nodes/offsite-target/offsite-target.js"));
const uploadNode = require(path.join(__dirname, "../nodes/offsite-upload/offsite-upload.js"));
const verifyNode = require(path.join(__dirname, "../nodes/hash-verify/hash-verify.js"));

helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
type Msg = any;

const MiB = 1024 * 1024;

describe("node disk-space", function () {
  this.timeout(30_000);
  let store: string;
  let at: string;
  let userDir: string;

  beforeEach(() => {
    store = tempDir("tick-disk-");
    mountTmpfs(store, 16);
    at = tempDir("tick-mountpoint-");
    bindMount(store, at);
    userDir = tempDir("tick-userdir-");
    helper.settings({ userDir });
  });
  afterEach(async () => {
    await helper.unload();
    helper.settings({});
    unmountAll();
  });

  /** A second backup disk, holding an archive of its own, plugged in at the archive path. */
  async function anotherArchiveDisk(): Promise<void> {
    const store2 = tempDir("tick-disk2-");
    mountTmpfs(store2, 16);
    await Archive.open(store2, { name: "other" });
    bindMount(store2, at);
  }

  /** Every file and folder under a path, with file sizes and times: to show nothing was touched. */
  function listing(dir: string): string[] {
    return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((rel) => {
      const st = fs.statSync(path.join(dir, rel));
      return `${rel}:${st.isDirectory() ? "dir" : st.size}:${st.mtimeMs}`;
    });
  }

  async function load(disk: Record<string, unknown> = {}) {
    const flow = [
      { id: "f1", type: "tab", label: "disk test" },
      { id: "arc", type: "backup-archive", name: "ticks", path: at },
      { id: "disk", type: "disk-space", z: "f1", x: 200, y: 100, name: "", archive: "arc", warnPercent: 85, criticalPercent: 95, warnFree: "", criticalFree: "", warnDays: 30, criticalDays: 7, extraPaths: "", ...disk, wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 400, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 200, y: 200, name: "", scope: null, uncaught: false, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1", x: 400, y: 200, wires: [] },
    ];
    await helper.load([archiveNode, diskNode], flow);
    const node = helper.getNode("disk");
    const statuses: Msg[] = [];
    const original = node.status;
    node.status = function (s: Msg) {
      statuses.push(s);
      return original.call(this, s);
    };
    const out: Msg[] = [];
    const caught: Msg[] = [];
    const outcomes: Msg[] = [];
    helper.getNode("out").on("input", (m: Msg) => out.push(m));
    helper.getNode("caught").on("input", (m: Msg) => caught.push(m));
    helper.getNode("arc").onRecord((o: Msg) => outcomes.push(o));
    const check = async () => {
      const [reports, errors] = [out.length, caught.length];
      node.receive({ payload: "go" });
      // a report (a critical one reaches catch nodes too), or for a check that failed only the caught error
      await waitFor("the check to end", () => {
        const report = out.length > reports ? out.at(-1).payload : undefined;
        return report ? report.level !== "critical" || caught.length > errors : caught.length > errors;
      });
      // and the archive's health has taken the outcome in (it saves health.json: the disk is busy until then)
      await helper.getNode("arc").health();
    };
    return { node, statuses, out, caught, outcomes, check };
  }

  it("reports free space, level and volume, with a short status", async () => {
    const n = await load();
    await n.check();
    const r = n.out[0].payload;
    assert.equal(r.kind, "disk");
    assert.equal(r.archive, "ticks");
    assert.equal(r.level, "ok");
    assert.equal(r.archiveDisk.mounted, true);
    assert.equal(r.archiveDisk.total, 16 * MiB);
    assert.equal(r.archiveDisk.fsType, "tmpfs");
    assert.ok(r.volume && r.volume.rateSource === "none");
    assert.ok(!Number.isNaN(Date.parse(r.startedAt)) && !Number.isNaN(Date.parse(r.finishedAt)));
    assert.deepEqual(r.problems, []);
    assert.deepEqual(n.statuses.at(-1), { fill: "green", shape: "dot", text: `${(r.archiveDisk.free / 1e6).toFixed(1)} MB free · no growth yet` });
    assert.equal(n.caught.length, 0);
    assert.deepEqual(n.outcomes.map((o) => [o.kind, o.ok]), [["disk", true]]);
  });

  it("a fuller disk warns (yellow), reaching the archive's listeners but not catch nodes", async () => {
    fs.writeFileSync(path.join(at, "fill.bin"), Buffer.alloc(14 * MiB, 1));
    const n = await load();
    await n.check();
    assert.equal(n.out[0].payload.level, "warn");
    assert.equal(n.statuses.at(-1).fill, "yellow");
    assert.equal(n.caught.length, 0);
    assert.deepEqual(n.outcomes.map((o) => [o.kind, o.ok]), [["disk", false]]);
  });

  it("an unplugged archive disk: critical, red, caught — and after a restart the empty mount point is still refused", async () => {
    let n = await load();
    await n.check();
    unmount(at);
    await n.check();
    const r = n.out[1].payload;
    assert.equal(r.level, "critical");
    assert.equal(r.archiveDisk.state, "not mounted");
    assert.deepEqual(n.statuses.at(-1), { fill: "red", shape: "ring", text: "ARCHIVE DISK NOT MOUNTED" });
    assert.equal(n.caught.length, 1);
    assert.match(n.caught[0].error.message, /is the backup disk mounted\?/);
    assert.equal(n.outcomes.at(-1).ok, false);

    await helper.unload();
    n = await load(); // Node-RED restarted: the archive node opens afresh, and remembers
    await n.check();
    assert.equal(n.out[0].payload.archiveDisk.state, "not mounted");
    assert.equal(n.out[0].payload.problems[0].code, "ARCHIVE_NOT_FOUND");
    assert.deepEqual(fs.readdirSync(at), [], "no new archive was started in the empty mount point");
    assert.equal(fs.readdirSync(path.join(userDir, "tick-backup")).length, 1, "the memory lives in the user directory");
  });

  it("another archive's disk mounted at the archive path: ANOTHER ARCHIVE HERE, critical, caught, nothing written", async () => {
    const n = await load();
    await n.check();
    unmount(at);
    await anotherArchiveDisk();
    const before = listing(at);
    await n.check();
    const r = n.out[1].payload;
    assert.equal(r.level, "critical");
    assert.equal(r.archiveDisk.state, "not mounted");
    assert.equal(r.problems[0].code, "ARCHIVE_REPLACED");
    assert.deepEqual(n.statuses.at(-1), { fill: "red", shape: "ring", text: "ANOTHER ARCHIVE HERE (wrong disk?)" });
    assert.equal(n.caught.length, 1);
    await helper.getNode("arc").health(); // the health of that check is handled
    assert.deepEqual(listing(at), before, "health and alerts wrote nothing into the other archive");
  });

  it("another archive's disk mounted while Node-RED runs: the offsite copy and the scrub refuse it, and write nothing there nor offsite", async () => {
    const offsite = tempDir("tick-offsite-");
    const flow = [
      { id: "f1", type: "tab", label: "runs" },
      { id: "arc", type: "backup-archive", name: "ticks", path: at },
      { id: "tgt", type: "offsite-target", name: "offsite", kind: "directory", path: offsite },
      { id: "up", type: "offsite-upload", z: "f1", x: 200, y: 100, archive: "arc", target: "tgt", concurrency: 2, bwLimitKBps: 0, includeLive: false, wires: [["out"]] },
      { id: "verify", type: "hash-verify", z: "f1", x: 200, y: 150, archive: "arc", mode: "scrub", partitions: 7, server: "", remoteDir: "", wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 400, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 200, y: 200, name: "", scope: null, uncaught: false, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1", x: 400, y: 200, wires: [] },
    ];
    await helper.load([archiveNode, targetNode, uploadNode, verifyNode], flow);
    const statuses: Record<string, Msg[]> = { up: [], verify: [] };
    for (const id of ["up", "verify"]) {
      const node = helper.getNode(id);
      const original = node.status;
      node.status = function (s: Msg) {
        statuses[id].push(s);
        return original.call(this, s);
      };
    }
    const ended: Msg[] = [];
    helper.getNode("out").on("input", (m: Msg) => ended.push({ ok: m.payload }));
    helper.getNode("caught").on("input", (m: Msg) => ended.push({ error: m.error }));
    const run = async (id: string) => {
      const n = ended.length;
      helper.getNode(id).receive({ payload: "go" });
      await waitFor(`the ${id} run to end`, () => (ended.length > n ? ended.at(-1) : undefined));
      await helper.getNode("arc").health(); // its outcome taken in (health.json saved): the disk is not busy
      return ended.at(-1);
    };
    assert.ok((await run("up")).ok, "the offsite copy of this archive ran");
    assert.ok((await run("verify")).ok, "the scrub of this archive ran");

    unmount(at);
    await anotherArchiveDisk();
    const before = { other: listing(at), offsite: listing(offsite) };
    for (const id of ["up", "verify"]) {
      const end = await run(id);
      assert.equal(end.error?.source?.id, id, `${id}: ${util.inspect(end)}`);
      assert.match(end.error.message, /holds archive "other" .* Nothing was written/s);
      assert.deepEqual(statuses[id].at(-1), { fill: "red", shape: "ring", text: "ANOTHER ARCHIVE HERE (wrong disk?)" });
    }
    await helper.getNode("arc").health();
    assert.deepEqual(listing(at), before.other, "nothing was written to the other archive");
    assert.deepEqual(listing(offsite), before.offsite, "nothing of the other archive went offsite");
  });

  it("a stale copy of the archive on the root disk: ARCHIVE DISK CHANGED, critical, caught", async () => {
    const n = await load();
    await n.check();
    unmount(at);
    fs.cpSync(path.join(store, ".tick-backup"), path.join(at, ".tick-backup"), { recursive: true });
    const before = listing(at);
    await n.check();
    const r = n.out[1].payload;
    assert.equal(r.level, "critical");
    assert.equal(r.problems[0].code, "ARCHIVE_FS_CHANGED");
    assert.match(r.problems[0].message, /created on tick-test-disk \(tmpfs\)/);
    assert.deepEqual(n.statuses.at(-1), { fill: "red", shape: "ring", text: "ARCHIVE DISK CHANGED" });
    assert.equal(n.caught.length, 1);
    await helper.getNode("arc").health(); // the health of that check is handled
    assert.deepEqual(listing(at), before, "health and alerts wrote nothing into the stale copy");
  });

  for (const [field, value, text] of [
    ["warnFree", "lots", /warn below free/],
    ["criticalPercent", 150, /critical percent/],
    ["warnPercent", 96, /above critical percent/],
    ["extraPaths", "relative/dir", /must be absolute/],
  ] as const) {
    it(`bad input (${field} ${JSON.stringify(value)}): a clear error in status and done(err), nothing written`, async () => {
      const n = await load({ [field]: value });
      await n.check();
      assert.equal(n.out.length, 0);
      assert.equal(n.caught.length, 1);
      assert.match(n.caught[0].error.message, text);
      assert.equal(n.statuses.at(-1).fill, "red");
      assert.equal(n.outcomes.at(-1).error.code, "CONFIG");
      assert.deepEqual(fs.readdirSync(at), [], util.inspect(fs.readdirSync(at)));
    });
  }

  describe("beside sftp-pull from a real sshd", () => {
    let sshd: Sshd;
    before(async () => {
      sshd = await startSshd();
    });
    after(async () => {
      await sshd?.stop();
    });

    it("the pull refuses the empty mount point of an unplugged disk, also after a restart, and goes on when it is back", async () => {
      const remote = path.join(sshd.root, "ticks");
      write(remote, "EURUSD/2026-11-26.csv", tickLines("EURUSD", 300));
      const flow = [
        { id: "f1", type: "tab", label: "pull test" },
        { id: "srv", type: "sftp-server", name: "", host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint },
        { id: "arc", type: "backup-archive", name: "ticks", path: at },
        { id: "pull", type: "sftp-pull", z: "f1", x: 200, y: 100, name: "", server: "srv", archive: "arc", remoteDir: remote, include: "**", exclude: "", settleSeconds: 0, maxAgeDays: 0, concurrency: 2, bwLimitKBps: 0, wires: [["out"]] },
        { id: "out", type: "helper", z: "f1", x: 400, y: 100, wires: [] },
        { id: "catch", type: "catch", z: "f1", x: 200, y: 200, name: "", scope: null, uncaught: false, wires: [["caught"]] },
        { id: "caught", type: "helper", z: "f1", x: 400, y: 200, wires: [] },
      ];
      const start = async () => {
        await helper.load([serverNode, archiveNode, pullNode], flow, { srv: { privateKey: sshd.privateKey } });
        const node = helper.getNode("pull");
        const seen = { out: [] as Msg[], caught: [] as Msg[], statuses: [] as Msg[] };
        const original = node.status;
        node.status = function (st: Msg) {
          seen.statuses.push(st);
          return original.call(this, st);
        };
        helper.getNode("out").on("input", (m: Msg) => seen.out.push(m));
        helper.getNode("caught").on("input", (m: Msg) => seen.caught.push(m));
        const run = async () => {
          const n = seen.out.length + seen.caught.length;
          node.receive({ payload: "go" });
          await waitFor("the pull to end", () => (seen.out.length + seen.caught.length > n ? true : undefined), 20_000);
          await helper.getNode("arc").health(); // its outcome taken in (health.json saved): the disk is not busy
        };
        return { seen, run };
      };

      let p = await start();
      await p.run();
      assert.equal(p.seen.out[0].payload.counts.new, 1);
      unmount(at);
      write(remote, "EURUSD/2026-11-27.csv", tickLines("EURUSD", 100));
      await p.run();
      assert.match(p.seen.caught[0].error.message, /is the backup disk mounted\? Nothing was written/);
      assert.deepEqual(p.seen.statuses.at(-1), { fill: "red", shape: "ring", text: "NO ARCHIVE HERE (disk not mounted?)" });
      assert.deepEqual(fs.readdirSync(at), []);

      await helper.unload();
      p = await start(); // a restart: a fresh open, refused by the memory in the user directory
      await p.run();
      assert.match(p.seen.caught[0].error.message, /was at .* is the backup disk mounted\?/s);
      assert.deepEqual(fs.readdirSync(at), [], "no archive was started in the empty mount point");

      // Another archive's disk mounted at the same place: refused too, and left as it was.
      await anotherArchiveDisk();
      const before = listing(at);
      await p.run();
      assert.equal(p.seen.caught.at(-1).error.source.id, "pull");
      assert.match(p.seen.caught.at(-1).error.message, /holds archive "other" .* Nothing was written/s);
      assert.deepEqual(p.seen.statuses.at(-1), { fill: "red", shape: "ring", text: "ANOTHER ARCHIVE HERE (wrong disk?)" });
      assert.deepEqual(listing(at), before, "nothing was written to the other archive");
      unmount(at);

      bindMount(store, at);
      await p.run();
      assert.equal(p.seen.out.at(-1).payload.counts.new, 1);
      assert.ok(fs.existsSync(path.join(at, "EURUSD/2026-11-27.csv")));
    });
  });
});
