/**
 * The example flow itself (examples/tick-backup.json), every node of it, in a Node-RED runtime:
 * pointed at a REAL OpenSSH sshd, a folder as the offsite disk and an MQTT broker (aedes) on
 * 127.0.0.1. One pull sets off the origin check and the offsite copy as wired; a disk check
 * follows. What Home Assistant receives must then be the truth of those real reports: every copy's
 * time, the 3-2-1 count, the disk, and no problem.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { startSshd, type Sshd } from "./support/sshd";
import { Recorder, startAedes } from "./support/brokers";
import { sha256, tempDir, tickLines, write } from "./support/tree";
import { mountTmpfs, unmountAll } from "./support/mounts";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const helper = require("node-red-node-test-helper");
helper.init(require.resolve("node-red"));

/* eslint-disable @typescript-eslint/no-explicit-any */
const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8"));
const ourNodes = Object.values(pkg["node-red"].nodes as Record<string, string>).map((file) => require(path.join(__dirname, "..", "..", file)));
const core = (f: string) => require(require.resolve(`@node-red/nodes/core/common/${f}`));

const ARCHIVE_DISK_MIB = 64;

describe("the example flow, whole, against real servers", function () {
  this.timeout(120_000);
  let sshd: Sshd;
  before(async () => (sshd = await startSshd()));
  after(async () => sshd?.stop());
  afterEach(async () => {
    await helper.unload();
    unmountAll();
  });

  it("one pull sets off the origin check and the offsite copy; Home Assistant then shows every copy, 2 copies per file, the disk, no problem", async function () {
    const broker = await startAedes();
    const ha = await Recorder.connect(broker.url, ["tick-backup/#"]);
    try {
      const remoteDir = tempDir("tick-example-remote-");
      const files = ["EURUSD/2026-11-24.csv", "EURUSD/2026-11-25.csv", "GBPUSD/2026-11-25.csv"];
      const yesterday = new Date(Date.now() - 86_400_000);
      for (const [i, rel] of files.entries()) {
        write(remoteDir, rel, tickLines(rel.slice(0, 6), 200 + i));
        fs.utimesSync(path.join(remoteDir, rel), yesterday, yesterday); // settled: final files, which go offsite
      }
      // The archive gets a disk of its own, so that the example's disk thresholds judge a disk this
      // test knows (nearly empty), not however full the machine running the test happens to be.
      const archivePath = tempDir("tick-example-archive-");
      mountTmpfs(archivePath, ARCHIVE_DISK_MIB);
      const offsiteDisk = tempDir("tick-example-offsite-");

      const example = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "examples", "tick-backup.json"), "utf8")) as any[];
      const flow = example.map((n) => {
        switch (n.type) {
          case "sftp-server":
            return { ...n, host: sshd.host, port: sshd.port, username: sshd.username, hostFingerprint: sshd.hostFingerprint };
          case "sftp-pull":
            return { ...n, remoteDir };
          case "backup-archive":
            return { ...n, path: archivePath };
          case "offsite-target":
            return { ...n, path: offsiteDisk };
          case "ha-mqtt":
            return { ...n, broker: broker.url };
          case "debug":
            return { ...n, type: "helper" };
          default:
            return n;
        }
      });
      const id = (type: string, pick: (n: any) => boolean = () => true) => flow.find((n) => n.type === type && pick(n)).id;
      const server = id("sftp-server");
      await helper.load([...ourNodes, core("20-inject.js"), core("90-comment.js"), core("25-catch.js")], flow, { [server]: { privateKey: sshd.privateKey } });

      const reports: Record<string, any> = {};
      const errors: any[] = [];
      for (const n of flow.filter((x) => x.type === "helper")) {
        helper.getNode(n.id).on("input", (msg: any) => {
          if (msg.payload?.kind) reports[msg.payload.kind + (msg.payload.mode ? `:${msg.payload.mode}` : "")] = msg.payload;
          if (msg.error) errors.push(msg.error);
        });
      }
      const until = async (what: string, ok: () => boolean, ms = 60_000) => {
        const end = Date.now() + ms;
        while (!ok()) {
          if (Date.now() > end) throw new Error(`timed out waiting for ${what}; reports: ${Object.keys(reports).join(", ")}; errors: ${JSON.stringify(errors)}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };

      helper.getNode(id("sftp-pull")).receive({ payload: "go" });
      await until("the pull, origin check and offsite reports", () => Boolean(reports.pull && reports["verify:origin"] && reports.offsite));
      helper.getNode(id("disk-space")).receive({ payload: "go" });
      await until("the disk report", () => Boolean(reports.disk));

      assert.equal(reports.pull.counts.new, files.length);
      assert.deepEqual(reports.pull.problems, []);
      assert.equal(reports["verify:origin"].origin.matched, files.length, "the server's sha256sum agreed on every file");
      assert.deepEqual(reports["verify:origin"].problems, []);
      assert.equal(reports.offsite.counts.uploaded, files.length);
      assert.deepEqual(reports.offsite.problems, []);
      assert.deepEqual(errors, [], "nothing reached the catch node");
      for (const rel of files) {
        assert.equal(sha256(path.join(archivePath, rel)), sha256(path.join(remoteDir, rel)), `${rel} archived byte-identical`);
        assert.equal(sha256(path.join(offsiteDisk, rel)), sha256(path.join(remoteDir, rel)), `${rel} on the offsite disk byte-identical`);
      }

      const state = await ha.wait("a state with every copy's time and the disk", () => {
        const m = ha.last("tick-backup/ticks/state");
        const s = m && JSON.parse(m.payload);
        return s && s.last_pull && s.last_verify && s.last_offsite && s.disk_free !== null ? s : undefined;
      }, 30_000);
      assert.equal(state.last_pull, reports.pull.finishedAt);
      assert.equal(state.last_verify, reports["verify:origin"].finishedAt);
      assert.equal(state.last_offsite, reports.offsite.finishedAt);
      assert.equal(state.archive_files, files.length);
      assert.equal(state.copies_2, files.length, "every file is in the archive and on the offsite disk");
      assert.equal(state.copies_1, 0);
      assert.equal(state.offsite_pending, 0);
      assert.equal(reports.disk.archiveDisk.total, ARCHIVE_DISK_MIB * 2 ** 20, "the disk check measured the archive's own disk");
      assert.equal(state.disk_free, Math.round((reports.disk.archiveDisk.free / 2 ** 30) * 100) / 100);
      assert.equal(state.problem, false, `no problem: ${ha.last("tick-backup/ticks/problem")?.payload}`);
      assert.equal(ha.last("tick-backup/availability")?.payload, "online");
    } finally {
      await ha.close();
      await broker.stop();
    }
  });
});
