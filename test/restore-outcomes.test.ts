/**
 * How a restore names what went wrong with each file, through real targets: a directory, S3
 * (s3rver behind its fault proxy), rclone (a local remote, and an sftp remote against the real sshd
 * behind a TCP proxy). A missing object is MISSING only by the target's own signal; a failure whose
 * words say "not found" or "404" stays a failure; bytes the age key does not open are a mismatch;
 * a destination file that cannot be read is named and left as it is.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import * as sinon from "sinon";
import { DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createTarget, TargetFailed, uploadOffsite, type Target } from "../lib/offsite";
import { decryptStream, loadAge } from "../lib/offsite/encrypt";
import { ArchiveSource, restore, TargetSource, type RestoreReport } from "../lib/restore";
import { ACCESS_KEY, BUCKET, SECRET_KEY, startS3, type S3Server } from "./support/s3";
import { startSshd, type Sshd } from "./support/sshd";
import { startTcpFaultProxy } from "./support/tcp-fault-proxy";
import { archiveWith } from "./support/offsite-env";
import { tempDir, write } from "./support/tree";

/** Tick files are named by date: "20260404" holds "404", which a message-matching restore took for "not found". */
const FILES = { "EURUSD/20260404.csv": "t,bid,ask\n1,1.05,1.06\n", "EURUSD/20260405.csv": "t,bid,ask\n2,1.07,1.08\n", "empty.csv": "" };

async function backedUpTo(target: Target, encryptTo?: string) {
  const archive = await archiveWith(FILES);
  const up = await uploadOffsite({ archive, target, targetName: "t", encryptTo });
  assert.deepEqual(up.problems, []);
  return archive;
}

async function restoreFrom(target: Target, options: { identity?: string; loaded?: (source: TargetSource) => Promise<void> } = {}): Promise<RestoreReport> {
  const source = new TargetSource(target, options.identity);
  await source.records();
  await options.loaded?.(source);
  return restore({ source, to: tempDir("restored-") });
}

const codes = (r: RestoreReport) => r.problems.map((p) => p.code);

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("restore outcomes: missing, failed, undecryptable, unreadable destination", function () {
  this.timeout(60_000);
  let s3: S3Server;
  let sshd: Sshd;
  let prefixN = 0;
  before(async () => {
    s3 = await startS3();
    sshd = await startSshd();
  });
  after(async () => {
    await s3?.stop();
    await sshd?.stop();
  });
  afterEach(() => {
    s3.fault = undefined;
    sinon.restore();
  });

  const s3Target = (prefix: string) => createTarget({ kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, maxAttempts: 1 });

  describe("directory", () => {
    it("a deleted object is MISSING; the others are restored", async () => {
      const root = tempDir("restore-dir-");
      const target = createTarget({ kind: "directory", path: root });
      await backedUpTo(target);
      fs.rmSync(path.join(root, "EURUSD/20260405.csv"));
      const r = await restoreFrom(target);
      assert.deepEqual(r.missing, ["EURUSD/20260405.csv"]);
      assert.deepEqual(codes(r), ["MISSING"]);
      assert.equal(r.counts.restored, 2);
    });

    it("a disk unplugged after its catalog was read is a failure of every file, not every file missing", async () => {
      const root = tempDir("restore-dir-gone-");
      const target = createTarget({ kind: "directory", path: root });
      await backedUpTo(target);
      const r = await restoreFrom(target, { loaded: async () => fs.renameSync(root, `${root}-in-the-drawer`) });
      assert.deepEqual(r.missing, []);
      assert.equal(r.counts.failed, 3);
      assert.deepEqual(codes(r), ["OFFSITE_FAILED", "OFFSITE_FAILED", "OFFSITE_FAILED"]);
      assert.match(r.problems[0].message, /the disk is gone/);
    });
  });

  describe("s3", () => {
    it("a deleted object (NoSuchKey) is MISSING", async () => {
      const prefix = `outcomes-${++prefixN}`;
      await backedUpTo(s3Target(prefix));
      const direct = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
      await direct.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${prefix}/EURUSD/20260405.csv` }));
      direct.destroy();
      const r = await restoreFrom(s3Target(prefix));
      assert.deepEqual(r.missing, ["EURUSD/20260405.csv"]);
      assert.deepEqual(codes(r), ["MISSING"]);
      assert.equal(r.counts.restored, 2);
    });

    it("a 404 that is no missing object (NoSuchBucket: the message says 'not found') is a failure", async () => {
      const prefix = `outcomes-${++prefixN}`;
      await backedUpTo(s3Target(prefix));
      s3.fault = (req) => (req.method === "GET" && req.url.includes("20260404") ? "no-bucket" : undefined);
      const r = await restoreFrom(s3Target(prefix));
      assert.deepEqual(r.missing, []);
      assert.equal(r.counts.failed, 1);
      assert.equal(r.counts.restored, 2);
      assert.deepEqual(codes(r), ["OFFSITE_FAILED"]);
      assert.match(r.problems[0].message, /not found \(NoSuchBucket\)/);
    });

    it("a dropped connection on a file whose name holds 404 is a failure", async () => {
      const prefix = `outcomes-${++prefixN}`;
      await backedUpTo(s3Target(prefix));
      s3.fault = (req) => (req.method === "GET" && req.url.includes("20260404") ? "drop" : undefined);
      const r = await restoreFrom(s3Target(prefix));
      assert.deepEqual(r.missing, []);
      assert.deepEqual(codes(r), ["OFFSITE_FAILED"]);
      assert.deepEqual(r.problems.map((p) => p.path), ["EURUSD/20260404.csv"]);
    });
  });

  describe("rclone", () => {
    it("local remote: deleted objects (rclone exits 3) are MISSING, an empty one too", async () => {
      const remote = tempDir("restore-rclone-");
      const target = createTarget({ kind: "rclone", remote });
      await backedUpTo(target);
      fs.rmSync(path.join(remote, "EURUSD/20260405.csv"));
      fs.rmSync(path.join(remote, "empty.csv"));
      const r = await restoreFrom(target);
      assert.deepEqual(r.missing, ["EURUSD/20260405.csv", "empty.csv"]);
      assert.deepEqual(codes(r), ["MISSING", "MISSING"]);
      assert.equal(r.counts.restored, 1);
    });

    it("sftp remote: a connection refused after the catalog was read is a failure of each file, not missing", async () => {
      const proxy = await startTcpFaultProxy(sshd.port, 1);
      const conf = path.join(tempDir("rclone-conf-"), "rclone.conf");
      const knownHosts = path.join(path.dirname(conf), "known_hosts");
      fs.writeFileSync(knownHosts, `[127.0.0.1]:${proxy.port} ${sshd.hostPublicKey}\n`);
      fs.writeFileSync(conf, `[nas]\ntype = sftp\nhost = 127.0.0.1\nport = ${proxy.port}\nuser = ${sshd.username}\nkey_file = ${sshd.privateKeyFile}\nknown_hosts_file = ${knownHosts}\n`);
      const target = createTarget({ kind: "rclone", remote: `nas:${path.join(sshd.root, "offsite")}`, rcloneConfig: conf });
      await backedUpTo(target);
      const r = await restoreFrom(target, { loaded: () => proxy.close() });
      assert.deepEqual(r.missing, []);
      assert.equal(r.counts.failed, 3);
      assert.deepEqual(codes(r), ["OFFSITE_FAILED", "OFFSITE_FAILED", "OFFSITE_FAILED"]);
      assert.match(r.problems.find((p) => p.path === "EURUSD/20260404.csv")?.message ?? "", /20260404.*connection refused/);
    });
  });

  describe("encrypted copies", () => {
    it("a flipped byte in a stored age file is a mismatch: cannot decrypt", async () => {
      const age = await loadAge();
      const identity: string = await age.generateIdentity();
      const root = tempDir("restore-enc-");
      const target = createTarget({ kind: "directory", path: root });
      await backedUpTo(target, await age.identityToRecipient(identity));
      const stored = path.join(root, "EURUSD/20260404.csv.age");
      const bytes = fs.readFileSync(stored);
      bytes[bytes.length - 20] ^= 0x01;
      fs.chmodSync(stored, 0o644);
      fs.writeFileSync(stored, bytes);
      const r = await restoreFrom(target, { identity });
      assert.deepEqual(r.mismatches, ["EURUSD/20260404.csv"]);
      assert.deepEqual(codes(r), ["MISMATCH"]);
      assert.match(r.problems[0].message, /cannot decrypt the stored object \(invalid tag/);
      assert.equal(r.counts.restored, 2);
    });

    it("decryption fails as OFFSITE_UNDECRYPTABLE; a failed read of the ciphertext stays what it was", async () => {
      const age = await loadAge();
      const identity: string = await age.generateIdentity();
      const encrypter = new age.Encrypter();
      encrypter.addRecipient(await age.identityToRecipient(identity));
      const cipher = Buffer.from(await encrypter.encrypt(new Uint8Array(100_000)));
      cipher[50_000] ^= 0x01;
      await assert.rejects(readAll(decryptStream(Readable.from([cipher]), identity)), (err: Error & { code?: string }) => err.code === "OFFSITE_UNDECRYPTABLE");
      const lost = new TargetFailed("nas:/ticks/x.age", "connection reset");
      const failing = new Readable({ read() {} });
      failing.push(cipher.subarray(0, 1000));
      setImmediate(() => failing.destroy(lost));
      await assert.rejects(readAll(decryptStream(failing, identity)), (err: unknown) => err === lost);
    });
  });

  describe("the destination", () => {
    it("an existing file that cannot be read is named as failed and left as it is, with --force too", async () => {
      const archive = await archiveWith({ "a.csv": "from the archive\n" });
      const to = tempDir("restore-dest-");
      const mine = write(to, "a.csv", "my own versions!\n");
      // Fault injection on fs for that one file only: root reads through chmod 000, a failing disk does not.
      // (fs.promises is the module object itself, which every importer of node:fs/promises reads through.)
      const open = fs.promises.open;
      sinon.stub(fs.promises, "open").callsFake(((file: string, ...rest: unknown[]) =>
        file === mine ? Promise.reject(Object.assign(new Error(`EIO: i/o error, open '${mine}'`), { code: "EIO" })) : (open as (...a: unknown[]) => unknown)(file, ...rest)) as typeof open);
      for (const force of [false, true]) {
        const r = await restore({ source: await ArchiveSource.open(archive.root), to, force });
        assert.deepEqual(codes(r), ["DESTINATION_UNREADABLE"], `force ${force}`);
        assert.equal(r.counts.failed, 1);
        assert.deepEqual(r.refused, []);
        assert.match(r.problems[0].message, /cannot be read \(EIO.*nothing written/);
      }
      sinon.restore();
      assert.equal(fs.readFileSync(mine, "utf8"), "my own versions!\n");
      assert.deepEqual(fs.readdirSync(to), ["a.csv"]);
    });
  });
});
