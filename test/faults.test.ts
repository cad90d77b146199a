import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { startFakeSftp, type FakeSftpServer } from "../demo/sftp-server";
import { pullEnv } from "./support/pull-env";
import { sha256, tempDir, tickLines, treeHashes, write } from "./support/tree";
import { Catalog } from "../lib/archive/catalog";
import type { ServerConfig } from "../lib/sftp/connect";
import { startTcpFaultProxy } from "./support/tcp-fault-proxy";

/** Faults a real sshd cannot be made to produce on cue: cuts, stalls, files growing mid-read, hostile names. */
describe("pull under faults (in-process SFTP server)", function () {
  this.timeout(60_000);
  let served: string;
  let server: FakeSftpServer;
  let config: ServerConfig;

  beforeEach(async () => {
    served = tempDir("tick-fake-");
    server = await startFakeSftp({ root: served, password: "test-only-password" });
    config = { host: "127.0.0.1", port: server.port, username: "ticks", password: "test-only-password", hostFingerprint: server.hostFingerprint };
  });
  afterEach(() => server.close());

  it("resumes after the connection is cut again and again mid-file, without starting over", async () => {
    const size = 10 * 1024 * 1024;
    const file = write(served, "big.bin", randomBytes(size));
    server.setOptions({ cutAfterBytes: 3 * 1024 * 1024 });
    const env = await pullEnv(config, "/", { retry: { retries: 6, baseDelayMs: 20 } });
    const report = await env.run();
    assert.deepEqual(report.problems, []);
    assert.equal(sha256(path.join(env.dir, "big.bin")), sha256(file));
    assert.ok(server.connections >= 4, `reconnected ${server.connections} times`);
    assert.ok(server.totalBytesServed() < size * 1.4, `served ${server.totalBytesServed()} bytes for a ${size}-byte file`);
  });

  it("gives up on a stalled server with a clear problem, leaves nothing in place, and the next run completes", async () => {
    const file = write(served, "slow.csv", tickLines("EURUSD", 5000));
    server.setOptions({ readDelayMs: 60_000 });
    const env = await pullEnv(config, "/", { stallSeconds: 1, retry: { retries: 1, baseDelayMs: 10 } });
    const report = await env.run();
    assert.equal(report.counts.failed, 1);
    assert.equal(report.problems[0].code, "STALLED");
    assert.match(report.problems[0].message, /stalled/);
    assert.equal(fs.existsSync(path.join(env.dir, "slow.csv")), false);
    server.setOptions({ readDelayMs: 0 });
    const next = await env.run();
    assert.deepEqual(next.problems, []);
    assert.equal(sha256(path.join(env.dir, "slow.csv")), sha256(file));
  });

  it("archives a consistent prefix of a file that grows while it is read, and its growth next time", async () => {
    const file = write(served, "live.csv", tickLines("EURUSD", 20_000));
    server.setOptions({ growWhileRead: { path: "/live.csv", bytesPerRead: 4096 } });
    const env = await pullEnv(config, "/", { settleSeconds: 3600 });
    const first = await env.run();
    const archived = fs.readFileSync(path.join(env.dir, "live.csv"));
    assert.equal(archived.length, first.files[0].size);
    assert.ok(fs.statSync(file).size > archived.length, "the server's file grew during the read");
    assert.deepEqual(archived, fs.readFileSync(file).subarray(0, archived.length));
    assert.equal(first.files[0].state, "live");
    server.setOptions({ growWhileRead: undefined });
    const second = await env.run();
    assert.equal(second.counts.grown, 1);
    assert.equal(sha256(path.join(env.dir, "live.csv")), sha256(file));
  });

  it("refuses hostile names, stores odd ones escaped, and writes nothing outside the archive", async () => {
    write(served, "ok.csv", "fine\n");
    const evil = Buffer.from("evil\n");
    server.setOptions({
      extraEntries: {
        "/": [
          { name: "../escape.csv", content: evil },
          { name: "/etc/passwd-copy", content: evil },
          { name: "nul\u0000byte.csv", content: evil },
          { name: "..", dir: true },
          { name: "new\nline.csv", content: evil },
          { name: "x".repeat(300), content: evil },
          { name: ".tick-backup", dir: true },
          { name: "link.csv", symlink: true },
        ],
      },
    });
    const outer = tempDir("tick-outer-");
    const archiveDir = path.join(outer, "archive");
    fs.mkdirSync(archiveDir);
    const { Archive } = await import("../lib/archive/archive");
    const { pull } = await import("../lib/sftp/pull");
    const archive = await Archive.open(archiveDir);
    const report = await pull({ server: config, archive, remoteDir: "/", settleSeconds: 0 });
    assert.deepEqual(fs.readdirSync(outer), ["archive"], "nothing beside the archive");
    // A newline is a legal name on the server: kept, and stored escaped so no listing or manifest breaks.
    assert.deepEqual(Object.keys(treeHashes(archiveDir)), ["new%0Aline.csv", "ok.csv"]);
    assert.equal(report.counts.refused, 5);
    assert.equal(report.counts.notRegular, 1);
    assert.ok(report.problems.every((p) => p.code === "UNSAFE_NAME"), JSON.stringify(report.problems));
    const catalog = await Catalog.load(archive.stateDir);
    assert.equal(catalog.size, 2);
    assert.equal(catalog.get("new\nline.csv")?.storedPath, "new%0Aline.csv");
  });

  it("ends (does not hang) when the connection dies in the middle of the listing, and the next run completes", async () => {
    write(served, "ok.csv", "fine\n");
    server.setOptions({ extraEntries: { "/": Array.from({ length: 5000 }, (_, i) => ({ name: `entry-${i}.lnk`, symlink: true })) } });
    // the SSH handshake and login take a few KiB; the 5,000 names come in ~80 READDIR replies after them
    const proxy = await startTcpFaultProxy(server.port, 7, () => ({ kind: "cut", afterBytes: 40_000 }));
    try {
      const env = await pullEnv({ ...config, port: proxy.port }, "/", { retry: { retries: 1, baseDelayMs: 5 } });
      const outcome = await Promise.race([
        env.run().then((r) => `report: ${r.problems.map((p) => p.code).join()}`, (err: Error) => `error: ${err.message}`),
        new Promise<string>((r) => setTimeout(() => r("hung"), 20_000)),
      ]);
      assert.notEqual(outcome, "hung");
      assert.ok(proxy.counts.cut >= 1, "the proxy cut the listing");
      assert.equal(fs.existsSync(path.join(env.dir, "ok.csv")), false);
      proxy.plan = () => ({ kind: "none" });
      const next = await env.run();
      assert.deepEqual(next.problems, []);
      assert.equal(fs.readFileSync(path.join(env.dir, "ok.csv"), "utf8"), "fine\n");
    } finally {
      await proxy.close();
    }
  });
});
