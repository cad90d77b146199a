import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { Sshd, startSshd } from './sshd';

function quietSftp(): SftpClient {
  return new SftpClient('sshd-harness-test', { error() {}, end() {}, close() {} });
}

function execFileText(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

describe('test harness: real OpenSSH sshd', function () {
  let a: Sshd | undefined;
  let b: Sshd | undefined;

  before(async function () {
    // Two servers started in parallel: tests rely on that working.
    [a, b] = await Promise.all([startSshd(), startSshd()]);
  });

  after(async function () {
    await Promise.all([a?.stop(), b?.stop()]);
    for (const s of [a, b]) {
      if (s) assert.equal(fs.existsSync(s.dir), false, 'stop() removes the harness dir');
    }
  });

  it('reports the host fingerprint that ssh-keyscan sees, per server', function () {
    for (const s of [a!, b!]) {
      const scan = spawnSync('ssh-keyscan', ['-p', String(s.port), '-t', 'ed25519', '127.0.0.1'], {
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(scan.status, 0, scan.stderr);
      assert.match(scan.stdout, /ssh-ed25519 /, `no ed25519 key scanned:\n${scan.stderr}`);
      const fp = spawnSync('ssh-keygen', ['-lf', '-'], { input: scan.stdout, encoding: 'utf8' });
      assert.equal(fp.status, 0, fp.stderr);
      const scanned = fp.stdout.trim().split(/\s+/)[1];
      assert.equal(scanned, s.hostFingerprint);
      assert.match(s.hostFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    }
    assert.notEqual(a!.port, b!.port);
    assert.notEqual(a!.hostFingerprint, b!.hostFingerprint);
    assert.notEqual(a!.root, b!.root);
  });

  it('serves root over SFTP to ssh2-sftp-client with the key, byte-identical', async function () {
    const s = a!;
    const data = crypto.randomBytes(300_000);
    fs.mkdirSync(path.join(s.root, '2024', 'EURUSD'), { recursive: true });
    const file = path.join(s.root, '2024', 'EURUSD', 'ticks.csv.gz');
    fs.writeFileSync(file, data);
    fs.writeFileSync(path.join(s.root, 'README'), 'hello\n');

    const client = quietSftp();
    await client.connect({
      host: '127.0.0.1',
      port: s.port,
      username: s.username,
      privateKey: s.privateKey,
      readyTimeout: 20_000,
      hostVerifier: (key: Buffer) =>
        `SHA256:${crypto.createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}` ===
        s.hostFingerprint,
    });
    try {
      const names = (await client.list(s.root)).map((e) => `${e.type}:${e.name}`).sort();
      assert.deepEqual(names, ['-:README', 'd:2024']);
      const got = await client.get(file);
      assert.ok(Buffer.isBuffer(got));
      assert.equal(Buffer.compare(got as Buffer, data), 0, 'downloaded bytes differ');
    } finally {
      await client.end();
    }
    assert.match(s.readLog(), new RegExp(`Accepted publickey for ${s.username} from 127\\.0\\.0\\.1`));
  });

  it('lets OpenSSH sftp -b fetch a file using sshArgs()', async function () {
    const s = b!;
    const data = crypto.randomBytes(70_000);
    fs.writeFileSync(path.join(s.root, 'day.csv'), data);
    const local = fs.mkdtempSync(path.join(os.tmpdir(), 'tick-sftp-local-'));
    try {
      const batch = path.join(local, 'batch');
      const dest = path.join(local, 'day.csv');
      fs.writeFileSync(batch, `get ${path.join(s.root, 'day.csv')} ${dest}\n`);
      const r = await execFileText('sftp', ['-b', batch, ...s.sshArgs(), s.host]);
      assert.equal(r.code, 0, `sftp failed:\n${r.stdout}${r.stderr}\n--- sshd log ---\n${s.readLog()}`);
      assert.equal(Buffer.compare(fs.readFileSync(dest), data), 0);
    } finally {
      fs.rmSync(local, { recursive: true, force: true });
    }
  });
});
