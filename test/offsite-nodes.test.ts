/**
 * offsite-target + offsite-upload in a real Node-RED runtime (node-red-node-test-helper): a run to
 * a folder target, an unplugged disk, S3 with a secret that must never show, and a refused key.
 */
import { nodeRedPath } from "./support/red-path";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as util from "node:util";
import { archiveWith, tempDir } from "./support/offsite-env";
import { BUCKET, startS3, type S3Server } from "./support/s3";
import { waitFor } from "./support/wait";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const archiveNode = require(path.join(__dirname, "../nodes/backup-archive/backup-archive.js"));
const targetNode = require(path.join(__dirname, "../nodes/offsite-target/offsite-target.js"));
const uploadNode = require(path.join(__dirname, "../nodes/offsite-upload/offsite-upload.js"));

helper.init(nodeRedPath());

/* eslint-disable @typescript-eslint/no-explicit-any */
type Msg = any;

const SECRET = "S3RVER"; // s3rver's only secret; the test also checks a wrong one never shows

describe("nodes: offsite-target + offsite-upload", function () {
  this.timeout(60_000);
  let s3: S3Server;
  before(async () => {
    s3 = await startS3();
  });
  after(() => s3.stop());
  afterEach(() => helper.unload());

  async function runFlow(archivePath: string, target: Record<string, unknown>, credentials: Record<string, string> = {}) {
    const flow = [
      { id: "f1", type: "tab", label: "offsite" },
      { id: "arc", type: "backup-archive", name: "ticks", path: archivePath },
      { id: "tgt", type: "offsite-target", name: "offsite", ...target },
      { id: "up", type: "offsite-upload", z: "f1", x: 200, y: 100, archive: "arc", target: "tgt", concurrency: 2, bwLimitKBps: 0, includeLive: false, wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 400, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 200, y: 200, scope: null, uncaught: false, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1", x: 400, y: 200, wires: [] },
    ];
    await helper.load([archiveNode, targetNode, uploadNode], flow, { tgt: credentials });
    const up = helper.getNode("up");
    const statuses: Msg[] = [];
    const original = up.status;
    up.status = function (s: Msg) {
      statuses.push(s);
      return original.call(this, s);
    };
    const outcomes: Msg[] = [];
    helper.getNode("arc").onRecord((o: Msg) => outcomes.push(o));
    const out: Msg[] = [];
    const caught: Msg[] = [];
    helper.getNode("out").on("input", (m: Msg) => out.push(m));
    helper.getNode("caught").on("input", (m: Msg) => caught.push(m));
    up.receive({ payload: "go" });
    const settle = (pred: () => boolean) => waitFor("the run to end", pred);
    return { up, statuses, outcomes, out, caught, settle, shown: () => util.inspect([out, caught, statuses, outcomes, helper.log().getCalls().map((c: Msg) => c.args)], { depth: 10 }) };
  }

  it("uploads the archive to a folder target and reports it", async () => {
    const archive = await archiveWith({ "EURUSD/2026-11-25.csv": "1,2\n", "b.csv": "3\n" });
    const disk = tempDir("offsite-disk-");
    const r = await runFlow(archive.root, { kind: "directory", path: disk });
    await r.settle(() => r.outcomes.length > 0);
    const report = r.out[0]?.payload;
    assert.equal(report.kind, "offsite");
    assert.deepEqual(report.counts, { uploaded: 2, pending: 0, failed: 0, skipped: 0, live: 0 });
    assert.equal(report.target.state, "online");
    assert.equal(report.target.name, "offsite");
    assert.equal(fs.readFileSync(path.join(disk, "EURUSD", "2026-11-25.csv"), "utf8"), "1,2\n");
    assert.equal(r.outcomes[0].ok, true);
    assert.equal(r.outcomes[0].kind, "offsite");
    assert.equal(r.statuses.at(-1).fill, "green");
    assert.match(r.statuses.at(-1).text, /^2 uploaded · /);
    assert.equal(r.caught.length, 0);
  });

  it("shows an unplugged disk as offline (grey), not as a failure", async () => {
    const archive = await archiveWith({ "a.csv": "1\n" });
    const r = await runFlow(archive.root, { kind: "directory", path: path.join(tempDir("offsite-mnt-"), "usb-disk") });
    await r.settle(() => r.outcomes.length > 0);
    assert.equal(r.out[0].payload.target.state, "offline");
    assert.equal(r.out[0].payload.counts.pending, 1);
    assert.deepEqual(r.statuses.at(-1), { fill: "grey", shape: "ring", text: "offline · 1 waiting · never up to date" });
    assert.equal(r.caught.length, 0);
  });

  it("uploads to S3 with the keys from credentials, which never appear in messages, status or logs", async () => {
    const archive = await archiveWith({ "a.csv": "1\n" });
    const r = await runFlow(
      archive.root,
      { kind: "s3", endpoint: s3.endpoint, region: "us-east-1", bucket: BUCKET, prefix: "node-test", forcePathStyle: true },
      { accessKeyId: "S3RVER", secretAccessKey: SECRET },
    );
    await r.settle(() => r.outcomes.length > 0);
    assert.equal(r.out[0].payload.counts.uploaded, 1, util.inspect(r.out[0].payload));
    assert.ok(!r.shown().includes(`"${SECRET}"`) && !r.shown().includes(`'${SECRET}'`), "the secret key is not shown anywhere");
  });

  it("fails a run with a refused key: red status, done(err) to catch, nothing recorded, no secret shown", async () => {
    const archive = await archiveWith({ "a.csv": "1\n" });
    const wrong = "wrong-secret-0123456789";
    const r = await runFlow(archive.root, { kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, forcePathStyle: true }, { accessKeyId: "NOT-A-KNOWN-KEY", secretAccessKey: wrong });
    await r.settle(() => r.caught.length > 0);
    assert.equal(r.caught.length, 1);
    assert.equal(r.statuses.at(-1).fill, "red");
    assert.equal(r.outcomes[0].ok, false);
    assert.equal((await archive.readCatalog()).get("a.csv")?.copies, undefined);
    assert.ok(!r.shown().includes(wrong));
  });

  it("fails clearly when the target is missing its settings", async () => {
    const archive = await archiveWith({ "a.csv": "1\n" });
    const r = await runFlow(archive.root, { kind: "s3", bucket: "" });
    await r.settle(() => r.caught.length > 0);
    assert.match(r.caught[0].error.message, /needs a bucket/);
    assert.equal(r.statuses.at(-1).fill, "red");
  });
});
