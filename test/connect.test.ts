import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as net from "node:net";
import { startSshd, type Sshd } from "./support/sshd";
import { freePort } from "./support/net";
import { pullEnv, sshdServer } from "./support/pull-env";
import { tempDir, write } from "./support/tree";
import { connect, fetchHostFingerprint, parsePort } from "../lib/sftp/connect";
import { normalizeFingerprint } from "../lib/sftp/fingerprint";
import { AuthFailed, ConfigError, ConnectFailed, HostKeyMismatch } from "../lib/errors";

const OTHER = "SHA256:" + "A".repeat(43);

describe("connect with a pinned host key", function () {
  this.timeout(30_000);
  let sshd: Sshd;
  before(async () => (sshd = await startSshd()));
  after(() => sshd?.stop());

  it("connects when the fingerprint matches, also when pasted as a whole ssh-keygen line", async () => {
    const pasted = `256 ${sshd.hostFingerprint} root@server (ED25519)`;
    const session = await connect(sshdServer(sshd, { hostFingerprint: pasted }));
    await session.end();
  });

  it("refuses a different host key and names both fingerprints", async () => {
    await assert.rejects(connect(sshdServer(sshd, { hostFingerprint: OTHER })), (err: HostKeyMismatch) => {
      assert.equal(err.code, "HOST_KEY_CHANGED");
      assert.ok(err.message.includes(OTHER) && err.message.includes(sshd.hostFingerprint), err.message);
      return true;
    });
  });

  it("refuses to connect without a pinned key, offering the fingerprint to compare", async () => {
    await assert.rejects(connect(sshdServer(sshd, { hostFingerprint: "" })), (err: HostKeyMismatch) => {
      assert.equal(err.code, "HOST_KEY_NOT_PINNED");
      assert.ok(err.message.includes(sshd.hostFingerprint));
      return true;
    });
  });

  it("fails a pull on a changed host key before writing anything", async () => {
    const remote = tempDir();
    write(remote, "a.csv", "x\n");
    const env = await pullEnv(sshdServer(sshd, { hostFingerprint: OTHER }), remote);
    await assert.rejects(env.run(), HostKeyMismatch);
    assert.deepEqual(fs.readdirSync(env.dir), [".tick-backup"]);
  });

  it("says the login was refused for a wrong password, without echoing it", async () => {
    const secret = "not-the-password-1234";
    await assert.rejects(connect(sshdServer(sshd, { privateKey: undefined, password: secret })), (err: AuthFailed) => {
      assert.equal(err.code, "AUTH_FAILED");
      assert.ok(!err.message.includes(secret));
      return true;
    });
  });

  it("says a private key is unusable without echoing it", async () => {
    const junk = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----";
    await assert.rejects(connect(sshdServer(sshd, { privateKey: junk })), (err: ConfigError) => {
      assert.ok(!err.message.includes("not a key"));
      assert.match(err.message, /private key/);
      return true;
    });
  });

  it("needs some credential at all", async () => {
    await assert.rejects(connect(sshdServer(sshd, { privateKey: undefined })), ConfigError);
  });

  it("reports a server that is down clearly (after its retries)", async () => {
    const port = await freePort();
    const env = await pullEnv(sshdServer(sshd, { port }), "/");
    await assert.rejects(env.run({ retry: { retries: 1, baseDelayMs: 10 } }), (err: ConnectFailed) => {
      assert.equal(err.code, "CONNECT_FAILED");
      assert.match(err.message, new RegExp(`127.0.0.1:${port}.*ECONNREFUSED`));
      return true;
    });
  });

  it("times out on a server that accepts TCP but never speaks SSH", async () => {
    const silent = net.createServer(() => undefined).listen(0, "127.0.0.1");
    await new Promise((r) => silent.once("listening", r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      await assert.rejects(connect(sshdServer(sshd, { port, readyTimeoutMs: 800 })), (err: ConnectFailed) => err.code === "CONNECT_FAILED" && /timed out/i.test(err.message));
    } finally {
      silent.close();
    }
  });

  it("fetches the offered fingerprint for the editor, as ssh-keygen prints it", async () => {
    assert.equal(await fetchHostFingerprint("127.0.0.1", sshd.port), sshd.hostFingerprint);
    await assert.rejects(fetchHostFingerprint("127.0.0.1", await freePort(), 2000), ConnectFailed);
  });

  it("takes a port as people type it, and refuses nonsense", async () => {
    assert.equal(parsePort(""), 22);
    assert.equal(parsePort("2222"), 2222);
    for (const bad of ["abc", "0", "70000", "-1", "22.5"]) assert.ok(Number.isNaN(parsePort(bad)), bad);
    await assert.rejects(connect(sshdServer(sshd, { port: parsePort("abc") })), (err: ConfigError) => /port/.test(err.message));
  });

  it("normalises pasted fingerprints", () => {
    assert.equal(normalizeFingerprint(` ${sshd.hostFingerprint}= `), sshd.hostFingerprint);
    assert.equal(normalizeFingerprint("MD5:aa:bb"), "");
  });
});
