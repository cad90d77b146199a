/**
 * S3's own SHA-256 checksums against fauxqs, an S3 emulator that stores and returns them (whole,
 * and composite for multipart) as AWS does, but checks none and echoes what it was sent. Whole
 * objects carry the catalog's hash; and because an echoed checksum proves nothing, bytes changed on
 * the way must still be caught, by the ETag the server computes over what it stored.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { createTarget, uploadOffsite } from "../lib/offsite";
import type { Target } from "../lib/offsite/target";
import { archiveWith } from "./support/offsite-env";
import { startFauxqs } from "./support/fauxqs";
import { ACCESS_KEY, BUCKET, SECRET_KEY, isDataPut, partNumber, type S3Server } from "./support/s3";

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("offsite to S3 with checksums (fauxqs)", function () {
  this.timeout(60_000);
  let s3: S3Server;
  let n = 0;
  before(async () => {
    s3 = await startFauxqs();
  });
  after(() => s3?.stop());
  afterEach(() => {
    s3.fault = undefined;
  });

  const target = (extra: Record<string, unknown> = {}): Target =>
    createTarget({ kind: "s3", endpoint: s3.endpoint, bucket: BUCKET, prefix: `ck-${++n}`, forcePathStyle: true, accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, partSize: 5 * MiB, ...extra });

  async function stored(prefix: string, key: string) {
    const client = new S3Client({ endpoint: s3.directEndpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY } });
    try {
      return await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${key}`, ChecksumMode: "ENABLED" }));
    } finally {
      client.destroy();
    }
  }

  {
    it("stores whole and multipart objects with their S3 checksums and proves them", async () => {
      const small = randomBytes(100_000);
      const big = randomBytes(12 * MiB + 17);
      const archive = await archiveWith({ "a/small.bin": small, "b/big.bin": big });
      const t = target();
      const report = await uploadOffsite({ archive, target: t, targetName: "fauxqs", concurrency: 1, retry: { attempts: 1, baseDelayMs: 10 } });
      assert.deepEqual(report.problems, []);
      assert.equal(report.counts.uploaded, 2);
      const prefix = `ck-${n}`;
      const whole = await stored(prefix, "a/small.bin");
      assert.equal(whole.ChecksumSHA256, Buffer.from(sha(small), "hex").toString("base64"), "the catalog's hash is the object's S3 checksum");
      const multi = await stored(prefix, "b/big.bin");
      assert.match(multi.ChecksumSHA256 ?? "", /-3$/, "a composite of three parts");
      assert.equal(multi.Metadata?.sha256, sha(big));
      assert.equal(await t.hash("b/big.bin"), sha(big));
    });
  }

  it("catches a whole object whose bytes changed on the way although the server echoes the checksum sent, and records nothing", async () => {
    const archive = await archiveWith({ "x.csv": randomBytes(50_000) });
    s3.fault = (r) => (isDataPut(r) ? "corrupt" : undefined);
    const report = await uploadOffsite({ archive, target: target(), targetName: "fauxqs", retry: { attempts: 2, baseDelayMs: 10 } });
    assert.equal(report.counts.failed, 1);
    assert.equal(report.problems[0].code, "OFFSITE_MISMATCH", JSON.stringify(report.problems));
    assert.equal((await archive.readCatalog()).get("x.csv")?.copies, undefined);
  });

  it("catches a part whose bytes changed on the way, and records nothing", async () => {
    const archive = await archiveWith({ "small-first.csv": "1\n", "big.bin": randomBytes(11 * MiB) });
    s3.fault = (r) => (isDataPut(r) && partNumber(r) === 2 ? "corrupt" : undefined);
    const report = await uploadOffsite({ archive, target: target(), targetName: "fauxqs", concurrency: 1, retry: { attempts: 2, baseDelayMs: 10 } });
    assert.equal(report.counts.uploaded, 1);
    assert.equal(report.counts.failed, 1);
    assert.equal(report.problems[0].path, "big.bin");
    assert.equal(report.problems[0].code, "OFFSITE_MISMATCH", JSON.stringify(report.problems));
    assert.equal((await archive.readCatalog()).get("big.bin")?.copies, undefined);
  });
});
