/**
 * One suite, every kind of offsite target: a directory, S3 (the AWS SDK over real HTTP to s3rver on
 * 127.0.0.1), and the Debian rclone with a local remote and an sftp remote against the real sshd.
 * Each must store, prove, refuse to replace a final object, hand the bytes back, and keep its id.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { createTarget, type TargetConfig } from "../lib/offsite";
import type { PutSource, Target } from "../lib/offsite/target";
import { hashStream } from "../lib/offsite/streams";
import { ACCESS_KEY, BUCKET, SECRET_KEY, startS3, type S3Server } from "./support/s3";
import { startSshd, type Sshd } from "./support/sshd";
import { tempDir } from "./support/tree";

const MiB = 1024 * 1024;

function source(data: Buffer): PutSource {
  return { open: () => Readable.from([data.subarray(0, data.length >> 1), data.subarray(data.length >> 1)]), size: data.length, sha256: sha(data), encrypted: false };
}

function sha(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

interface Kind {
  name: string;
  config: () => TargetConfig;
  /** a bigger object: S3 goes multipart above its part size */
  big: number;
}

let s3: S3Server;
let sshd: Sshd;
const dirRoot = tempDir("offsite-dir-");
const rcloneLocal = tempDir("offsite-rclone-");
let rcloneConf = "";

const kinds: Kind[] = [
  { name: "directory", config: () => ({ kind: "directory", path: dirRoot }), big: 3 * MiB },
  {
    name: "s3 (s3rver)",
    config: () => ({ kind: "s3", endpoint: s3.endpoint, region: "us-east-1", bucket: BUCKET, prefix: "suite", forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, partSize: 5 * MiB }),
    big: 12 * MiB,
  },
  {
    name: "s3 compatible checksums",
    config: () => ({ kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix: "compat/", forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, compatibleChecksums: true, partSize: 5 * MiB }),
    big: 11 * MiB,
  },
  { name: "rclone local remote", config: () => ({ kind: "rclone", remote: rcloneLocal }), big: 3 * MiB },
  { name: "rclone sftp remote", config: () => ({ kind: "rclone", remote: "testsftp:" + path.join(sshd.root, "offsite"), rcloneConfig: rcloneConf }), big: 2 * MiB },
];

/**
 * An rclone that stores something else: runs the real rclone, but flips one byte of what `rcat`
 * receives on its way in (a flaky remote, seen from here).
 */
function corruptingRclone(): string {
  const file = path.join(tempDir("rclone-bad-"), "rclone");
  fs.writeFileSync(
    file,
    `#!${process.execPath}
const { spawn } = require("node:child_process");
const args = process.argv.slice(2);
const child = spawn("rclone", args, { stdio: ["pipe", "inherit", "inherit"] });
let flipped = args[0] !== "rcat";
process.stdin.on("data", (chunk) => {
  if (!flipped && chunk.length > 0) { chunk = Buffer.from(chunk); chunk[0] ^= 0xff; flipped = true; }
  child.stdin.write(chunk);
});
process.stdin.on("end", () => child.stdin.end());
child.on("exit", (code) => process.exit(code ?? 1));
`,
    { mode: 0o755 },
  );
  return file;
}

describe("offsite targets: a failed read is not a missing object", function () {
  this.timeout(60_000);

  it("directory: a disk gone since the catalog was read, and a folder where the object should be, are failures", async () => {
    const root = tempDir("offsite-gone-");
    const target = createTarget({ kind: "directory", path: root });
    assert.equal((await target.probe()).state, "online");
    await target.put("a/b.csv", source(Buffer.from("b\n")), { mode: "final" });
    fs.mkdirSync(path.join(root, "a", "dir.csv"));
    const stream = await target.get("a/dir.csv");
    await assert.rejects(readAll(stream), (err: Error & { code?: string }) => err.code === "EISDIR");
    // A file where a folder of the key's path would be: no such object, for head and get alike.
    assert.equal(await target.head("a/b.csv/inside.csv"), undefined);
    await assert.rejects(target.get("a/b.csv/inside.csv"), (err: Error & { code?: string }) => err.code === "OFFSITE_MISSING");
    fs.renameSync(root, `${root}-unplugged`);
    await assert.rejects(target.get("a/b.csv"), (err: Error & { code?: string }) => err.code === "OFFSITE_FAILED" && /disk is gone/.test(err.message));
  });

  it("s3: a host that does not resolve is a failure, not a missing object", async () => {
    const target = createTarget({ kind: "s3", endpoint: "http://tick-backup-test.invalid:9000", bucket: BUCKET, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, maxAttempts: 1 });
    await assert.rejects(target.get("EURUSD/2026-11-25.csv"), (err: Error & { code?: string }) => err.code === "OFFSITE_FAILED" && /ENOTFOUND/.test(err.message));
    await target.close();
  });
});

describe("offsite targets (one suite for every kind)", function () {
  this.timeout(60_000);

  before(async () => {
    s3 = await startS3();
    sshd = await startSshd();
    rcloneConf = path.join(tempDir("rclone-conf-"), "rclone.conf");
    fs.writeFileSync(
      rcloneConf,
      `[testsftp]\ntype = sftp\nhost = 127.0.0.1\nport = ${sshd.port}\nuser = ${sshd.username}\nkey_file = ${sshd.privateKeyFile}\nknown_hosts_file = ${sshd.knownHostsFile}\n`,
    );
  });

  after(async () => {
    await s3?.stop();
    await sshd?.stop();
  });

  for (const kind of kinds) {
    describe(kind.name, () => {
      let target: Target;
      before(async () => {
        target = createTarget(kind.config());
        assert.equal((await target.probe()).state, "online");
      });
      after(() => target.close());

      it("has an id that another instance of the same place repeats", async () => {
        const again = createTarget(kind.config());
        assert.equal((await again.probe()).state, "online");
        assert.equal(again.id(), target.id());
        assert.match(target.id(), /^(directory|s3|rclone):/);
        await again.close();
      });

      it("stores small and big objects, proves them, and hands the same bytes back", async () => {
        for (const [key, data] of [
          ["EURUSD/2026-11-25.csv", Buffer.from("ts,bid,ask\n1,1.05,1.06\n")],
          ["deep/er/big file.bin", randomBytes(kind.big)],
        ] as const) {
          let counted = 0;
          const put = await target.put(key, source(data), { mode: "final", onBytes: (n) => (counted += n) });
          assert.deepEqual(put, { key, size: data.length, objectSha256: sha(data) });
          assert.equal(counted, data.length);
          assert.equal((await target.head(key))?.size, data.length);
          assert.equal(await target.hash(key), sha(data));
          assert.ok((await readAll(await target.get(key))).equals(data));
        }
        assert.equal(await target.head("EURUSD/absent.csv"), undefined);
      });

      it("says an absent key is missing (OFFSITE_MISSING) by its own signal, not by a message", async () => {
        for (const key of ["EURUSD/absent.csv", "no/such/folder/absent.csv"]) {
          await assert.rejects(target.get(key), (err: Error & { code?: string }) => err.code === "OFFSITE_MISSING", key);
        }
      });

      it("never replaces a final object, but refreshes a replaceable one", async () => {
        const first = Buffer.from("first content\n");
        await target.put("keep/me.csv", source(first), { mode: "final" });
        await assert.rejects(target.put("keep/me.csv", source(Buffer.from("other\n")), { mode: "final" }), /already stored there; not replaced/);
        assert.ok((await readAll(await target.get("keep/me.csv"))).equals(first));
        await target.put(".tick-backup/live/grow.csv", source(Buffer.from("a\n")), { mode: "replaceable" });
        await target.put(".tick-backup/live/grow.csv", source(Buffer.from("a\nb\n")), { mode: "replaceable" });
        assert.equal((await hashStream(await target.get(".tick-backup/live/grow.csv"))).sha256, sha(Buffer.from("a\nb\n")));
      });

      it("detects a source that ends short of its announced size and records nothing there", async () => {
        const data = Buffer.from("0123456789");
        await assert.rejects(target.put("short.csv", { ...source(data), size: 20 }, { mode: "final" }), (err: Error & { code?: string }) => err.code === "OFFSITE_MISMATCH");
        assert.equal(await target.head("short.csv"), undefined, "nothing stored under the name");
      });

      if (kind.name.startsWith("rclone")) {
        it("catches a remote that stores other bytes than were sent, and leaves nothing under the name", async () => {
          const bad = createTarget({ ...(kind.config() as { kind: "rclone"; remote: string }), rcloneBinary: corruptingRclone() });
          const data = randomBytes(300_000);
          await assert.rejects(bad.put("flipped.bin", source(data), { mode: "final" }), (err: Error & { code?: string }) => err.code === "OFFSITE_MISMATCH");
          assert.equal(await target.head("flipped.bin"), undefined);
        });
      }

      it("stops an upload when asked", async () => {
        const stop = new AbortController();
        const slow = new Readable({ read() {} });
        slow.push(randomBytes(64 * 1024));
        const src: PutSource = { open: () => slow, size: 10 * MiB, sha256: "0".repeat(64), encrypted: false };
        setTimeout(() => stop.abort(), 300);
        await assert.rejects(target.put("aborted.bin", src, { mode: "final", signal: stop.signal }));
        const left = await target.head("aborted.bin");
        assert.equal(left, undefined, "an aborted upload leaves no object under its name");
      });
    });
  }
});
