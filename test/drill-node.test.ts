/**
 * hash-verify in drill mode in a Node-RED runtime: a sample restored from a real folder target
 * (plain and age-encrypted) into a temporary folder, hash-compared; the clean drill reaches the
 * archive's health snapshot as the last successful drill; a damaged copy is red and done(err).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EventEmitter } from "node:events";
import { createTarget, uploadOffsite } from "../lib/offsite";
import { loadAge } from "../lib/offsite/encrypt";
import { archiveWith } from "./support/offsite-env";
import { Inbox } from "./support/inbox";
import { tempDir } from "./support/tree";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
const nodes = ["backup-archive", "offsite-target", "hash-verify"].map((n) => require(path.join(__dirname, `../nodes/${n}/${n}.js`)));
helper.init(require.resolve("node-red"));

/* eslint-disable @typescript-eslint/no-explicit-any */
type Status = { fill?: string; text?: string };

describe("node hash-verify: restore drill", function () {
  this.timeout(60_000);
  afterEach(() => helper.unload());

  async function setup(encryptTo?: string) {
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`EURUSD/2026-11-${String(i + 1).padStart(2, "0")}.csv`] = `tick ${i}\n`.repeat(1000 + i);
    const archive = await archiveWith(files);
    const folder = tempDir("drill-disk-");
    const up = await uploadOffsite({ archive, target: createTarget({ kind: "directory", path: folder }), targetName: "disk", encryptTo });
    assert.deepEqual(up.problems, []);
    return { archive, folder };
  }

  async function load(archivePath: string, folder: string, verify: Record<string, unknown> = {}, credentials: Record<string, string> = {}) {
    const flow = [
      { id: "f1", type: "tab", label: "t" },
      { id: "arc", type: "backup-archive", name: "ticks", path: archivePath },
      { id: "tgt", type: "offsite-target", name: "disk", kind: "directory", path: folder },
      { id: "verify", type: "hash-verify", z: "f1", x: 300, y: 100, archive: "arc", mode: "drill", target: "tgt", sample: 5, partitions: 7, server: "", remoteDir: "", ...verify, wires: [["out"]] },
      { id: "out", type: "helper", z: "f1", x: 500, y: 100, wires: [] },
      { id: "catch", type: "catch", z: "f1", x: 100, y: 200, scope: ["verify"], uncaught: false, wires: [["caught"]] },
      { id: "caught", type: "helper", z: "f1", x: 300, y: 200, wires: [] },
    ];
    await helper.load(nodes, flow, { verify: credentials });
    const node = helper.getNode("verify");
    const statuses: Status[] = [];
    const original = node.status;
    node.status = function (s: Status) {
      statuses.push(s);
      return original.call(this, s);
    };
    const outcomes: any[] = [];
    helper.getNode("arc").onRecord((x: any) => outcomes.push(x));
    return { node, out: new Inbox(helper.getNode("out")), caught: new Inbox(helper.getNode("caught") ?? new EventEmitter()), statuses, outcomes, arc: helper.getNode("arc") };
  }

  const drillDirs = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith("tick-backup-drill-"));

  it("restores a sample, all match: green, the report is a verify report in mode drill, the health snapshot keeps the drill", async () => {
    const { archive, folder } = await setup();
    const before = drillDirs();
    const l = await load(archive.root, folder);
    l.node.receive({ topic: "monthly" });
    const r = (await l.out.wait((m) => m.topic === "monthly", "the drill report")).payload;
    assert.equal(r.kind, "verify");
    assert.equal(r.mode, "drill");
    assert.equal(r.counts.checked, 5);
    assert.equal(r.counts.ok, 5);
    assert.deepEqual(r.problems, []);
    assert.equal(r.sources[0].sample.length, 5);
    assert.ok(r.sources[0].sample.includes("EURUSD/2026-11-01.csv") || r.sources[0].sample.includes("EURUSD/2026-11-12.csv"), "oldest or newest in the sample");
    assert.equal(l.statuses[l.statuses.length - 1].fill, "green");
    assert.match(l.statuses[l.statuses.length - 1].text!, /^drill 5\/5 ok/);
    assert.equal(l.outcomes.find((o) => o.kind === "drill")?.ok, true);
    const health = (await l.arc.health()).snapshot;
    assert.equal(health.lastSuccess.drill, r.finishedAt);
    assert.equal(health.lastSuccess.verify, undefined, "a drill is not a read-back of the archive");
    assert.deepEqual(drillDirs(), before, "the temporary folder is removed");
    assert.equal(l.caught.msgs.length, 0);
  });

  it("a damaged copy on the target: named in the report, red status, done(err) reaches catch, no drill success recorded", async () => {
    const { archive, folder } = await setup();
    for (const name of fs.readdirSync(path.join(folder, "EURUSD"))) {
      const f = path.join(folder, "EURUSD", name);
      const b = fs.readFileSync(f);
      b[0] ^= 1;
      fs.chmodSync(f, 0o644);
      fs.writeFileSync(f, b);
    }
    const l = await load(archive.root, folder, { sample: 3 });
    l.node.receive({});
    const r = (await l.out.wait((m) => m.payload?.kind === "verify", "the drill report")).payload;
    assert.equal(r.counts.mismatched, 3);
    assert.equal(r.mismatches.length, 3);
    assert.equal(l.statuses[l.statuses.length - 1].fill, "red");
    const err = await l.caught.wait(() => true, "the error");
    assert.match(err.error.message, /drill: .*EURUSD\/2026-11-\d\d\.csv/);
    assert.equal(l.outcomes.find((o) => o.kind === "drill")?.ok, false);
    const health = await l.arc.health();
    assert.equal(health.snapshot.lastSuccess.drill, undefined);
    // The offsite copies are in question, not the archive: Home Assistant and the alert say so.
    assert.deepEqual(health.problems.map((p: any) => p.code), ["DRILL_FAILED"]);
    assert.match(health.problems[0].message, /3 offsite copies that do not restore to the archived bytes/);
  });

  it("an encrypted target: decrypts with the age key from the node's credentials; without it the drill fails clearly", async () => {
    const age = await loadAge();
    const identity: string = await age.generateIdentity();
    const { archive, folder } = await setup(await age.identityToRecipient(identity));
    const l = await load(archive.root, folder, {}, { identity });
    l.node.receive({});
    const r = (await l.out.wait((m) => m.payload?.kind === "verify", "the drill report")).payload;
    assert.equal(r.counts.ok, 5);
    assert.deepEqual(r.problems, []);
    await helper.unload();

    const bare = await load(archive.root, folder);
    bare.node.receive({});
    const r2 = (await bare.out.wait((m) => m.payload?.kind === "verify", "the drill report")).payload;
    assert.equal(r2.counts.checked, 0);
    assert.match(r2.problems[0].message, /encrypted: give the age secret key/);
    assert.equal(bare.statuses[bare.statuses.length - 1].fill, "red");
    await bare.caught.wait(() => true, "the error");
  });

  it("drill mode without a target: a clear error, nothing run", async () => {
    const { archive, folder } = await setup();
    const l = await load(archive.root, folder, { target: "" });
    l.node.receive({});
    const err = await l.caught.wait(() => true, "the error");
    assert.match(err.error.message, /drill mode restores a sample from an offsite target/);
    assert.equal(l.statuses[l.statuses.length - 1].fill, "red");
  });
});
