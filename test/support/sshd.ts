/**
 * A real OpenSSH sshd for tests and benches, listening on 127.0.0.1 only.
 *
 *   const sshd = await startSshd();
 *   // ssh2 / ssh2-sftp-client: { host: sshd.host, port: sshd.port, username: sshd.username,
 *   //                            privateKey: sshd.privateKey } and pin sshd.hostFingerprint
 *   // OpenSSH tools:            sftp -b batch ...sshd.sshArgs() 127.0.0.1
 *   //                           ssh ...sshd.sshArgs() 127.0.0.1 true
 *   //                           rsync -e "ssh <sshd.sshArgs() joined>" 127.0.0.1:/path ...
 *   await sshd.stop();
 *
 * Every start gets its own temp dir (config, host key, client key, authorized_keys, known_hosts,
 * log), its own free port and its own fresh `root` directory, so any number of servers can run at
 * once. The server runs as the current user: as root it can log in root (by key: PermitRootLogin
 * prohibit-password); as a normal user sshd can only ever log in that same user.
 *
 * Linux + OpenSSH (Debian: openssh-server for /usr/sbin/sshd, openssh-client for ssh-keygen).
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const SSHD_PATH = '/usr/sbin/sshd';
export const SSH_HOST = '127.0.0.1';

export interface Sshd {
  /** Always 127.0.0.1. */
  host: string;
  port: number;
  /** The user the tests log in as: the current user (root in CI). */
  username: string;
  /** OpenSSH-format ed25519 private key text, authorised for `username`; generated per start. */
  privateKey: string;
  /** The matching public key line ("ssh-ed25519 AAAA... comment"). */
  publicKey: string;
  /** "SHA256:..." exactly as `ssh-keygen -lf <hostkey>.pub` prints it. */
  hostFingerprint: string;
  /** The host public key line ("ssh-ed25519 AAAA..."), without comment. */
  hostPublicKey: string;
  /** Fresh temp directory for the test's files; remote paths are absolute paths under it. */
  root: string;
  /** The harness's own temp dir (sshd_config, keys, known_hosts, sshd.log). */
  dir: string;
  /** Private key file (mode 0600) for tools that want a path. */
  privateKeyFile: string;
  /** known_hosts file holding exactly this server's host key as "[127.0.0.1]:port ...". */
  knownHostsFile: string;
  /** sshd's log (LogLevel VERBOSE). */
  logFile: string;
  /**
   * Options for OpenSSH `ssh`, `sftp`, `scp` (and rsync's `-e ssh ...`); append the host
   * (`127.0.0.1`) yourself. The port is passed as `-o Port=N`, which all of those understand
   * (unlike `-p`/`-P`). User, key, pinned host key, BatchMode and `-F none` (ignore
   * ~/.ssh/config) are included.
   */
  sshArgs(): string[];
  /** The log text so far (for assertion messages). */
  readLog(): string;
  bytesSentByServer?: never;
  /** Kills sshd and its connection processes, removes `dir` (and `root` unless you passed it). */
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Use this directory as `root` (created if missing, NOT removed by stop()). Default: a fresh temp dir. */
  root?: string;
  /**
   * Extra sshd_config lines. Lines before the first `Match` are placed BEFORE the harness's defaults
   * (sshd keeps the first value it reads, so they override them, and a default with the same keyword
   * is left out); `Match` blocks go at the end. Port, ListenAddress, HostKey and PidFile belong to
   * the harness and are refused.
   */
  extraConfig?: string[];
  /** How long to wait for sshd to accept connections. Default 15000 ms. */
  startTimeoutMs?: number;
}

/** True when /usr/sbin/sshd and ssh-keygen are present (else tests should skip). */
export function sshdAvailable(): boolean {
  try {
    fs.accessSync(SSHD_PATH, fs.constants.X_OK);
  } catch {
    return false;
  }
  return findExecutable('ssh-keygen') !== undefined;
}

function findExecutable(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const d of [...dirs, '/usr/bin', '/bin', '/usr/local/bin']) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function run(file: string, args: string[], timeoutMs = 30_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const detail = `${String(stderr)}${String(stdout)}`.trim() || err.message;
        reject(new Error(`${file} ${args.join(' ')} failed (exit ${String(err.code ?? err.signal)}):\n${detail}`));
      } else {
        resolve({ stdout: String(stdout), stderr: String(stderr) });
      }
    });
  });
}

/** A port that was free a moment ago (bind port 0, read it, close). Races are handled by retrying. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, SSH_HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

let sshdVersionCache: [number, number] | null | undefined;
/** [major, minor] of /usr/sbin/sshd, or null when it cannot be told. */
async function sshdVersion(): Promise<[number, number] | null> {
  if (sshdVersionCache !== undefined) return sshdVersionCache;
  const out = await new Promise<string>((resolve) => {
    execFile(SSHD_PATH, ['-V'], { timeout: 10_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
  });
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(out);
  sshdVersionCache = m ? [Number(m[1]), Number(m[2])] : null;
  return sshdVersionCache;
}

/** sshd_config value, quoted when it holds whitespace. */
function cfgValue(v: string): string {
  return /\s/.test(v) ? `"${v}"` : v;
}

/**
 * With UsePAM no, OpenSSH refuses every login (even by key) to an account whose shadow password
 * starts with "!" (locked), e.g. a root without password on some installs, or systemd's synthesized
 * `nobody` ("!*"). sshd sees shadow through NSS, so ask NSS the same way (getent), falling back to
 * reading /etc/shadow.
 */
async function accountLocked(username: string): Promise<boolean> {
  const fromGetent = await new Promise<string | undefined>((resolve) => {
    execFile('getent', ['shadow', username], { timeout: 10_000 }, (err, stdout) =>
      resolve(err ? undefined : String(stdout)),
    );
  });
  let line = fromGetent?.split('\n').find((l) => l.startsWith(`${username}:`));
  if (line === undefined) {
    try {
      line = fs
        .readFileSync('/etc/shadow', 'utf8')
        .split('\n')
        .find((l) => l.startsWith(`${username}:`));
    } catch {
      /* not readable: sshd cannot read it either */
    }
  }
  return line !== undefined && (line.split(':')[1] ?? '').startsWith('!');
}

const HARNESS_KEYWORDS = new Set(['port', 'listenaddress', 'hostkey', 'pidfile']);

function keywordOf(line: string): string {
  return line.trim().split(/[\s=]+/)[0]?.toLowerCase() ?? '';
}

/** Key used to decide whether an extra line replaces a default ("subsystem sftp" vs other subsystems). */
function overrideKey(line: string): string {
  const parts = line.trim().split(/[\s=]+/);
  const kw = (parts[0] ?? '').toLowerCase();
  return kw === 'subsystem' ? `${kw} ${parts[1] ?? ''}` : kw;
}

interface Live {
  child: ChildProcess;
  dirs: string[];
}
const live = new Set<Live>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const l of live) {
      if (l.child.pid !== undefined) killTree(l.child.pid, 'SIGKILL');
      for (const d of l.dirs) {
        try {
          fs.rmSync(d, { recursive: true, force: true });
        } catch {
          /* best effort */
        }
      }
    }
    live.clear();
  });
}

/** Descendant pids of `pid` (per-connection sshd processes), from /proc; empty off Linux. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      // "pid (comm) state ppid ..." — comm may contain spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(e));
      children.set(ppid, list);
    } catch {
      /* process went away */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const c of children.get(p) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function killTree(pid: number, signal: NodeJS.Signals): void {
  // Connection processes call setsid(), so a process-group kill would miss them: walk /proc.
  for (const p of descendants(pid).reverse()) {
    try {
      process.kill(p, signal);
    } catch {
      /* gone */
    }
  }
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Resolves true once something on 127.0.0.1:port speaks SSH (sends an "SSH-" banner). */
function probeBanner(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    let buf = '';
    const sock = net.connect({ host: SSH_HOST, port });
    const timer = setTimeout(() => settle(false), timeoutMs);
    function settle(ok: boolean): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) {
        // Answer with our own banner and hang up, so sshd logs a plain preauth close.
        sock.end('SSH-2.0-tick-backup-probe\r\n');
        setTimeout(() => sock.destroy(), 1_000).unref();
      } else {
        sock.destroy();
      }
      resolve(ok);
    }
    sock.on('error', () => settle(false));
    sock.on('close', () => settle(false));
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (buf.includes('\n') || buf.length > 255) settle(buf.startsWith('SSH-'));
    });
  });
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<Sshd> {
  if (!sshdAvailable()) {
    throw new Error(`startSshd: ${SSHD_PATH} or ssh-keygen is missing (apt-get install openssh-server openssh-client)`);
  }
  const keygen = findExecutable('ssh-keygen') as string;
  const extra = opts.extraConfig ?? [];
  for (const l of extra) {
    if (HARNESS_KEYWORDS.has(keywordOf(l))) {
      throw new Error(`startSshd: extraConfig may not set "${keywordOf(l)}" (the harness owns it): ${l}`);
    }
  }
  const firstMatch = extra.findIndex((l) => keywordOf(l) === 'match');
  const extraGlobal = firstMatch < 0 ? extra : extra.slice(0, firstMatch);
  const extraMatch = firstMatch < 0 ? [] : extra.slice(firstMatch);
  const overridden = new Set(extraGlobal.filter((l) => l.trim() && !l.trim().startsWith('#')).map(overrideKey));

  const username = os.userInfo().username;
  const isRoot = process.getuid?.() === 0;
  const timeoutMs = opts.startTimeoutMs ?? 15_000;

  const dir = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), 'tick-sshd-')));
  const ownRoot = opts.root === undefined;
  let root: string;
  if (opts.root === undefined) {
    root = fs.realpathSync(await fsp.mkdtemp(path.join(os.tmpdir(), 'tick-sftp-root-')));
  } else {
    await fsp.mkdir(opts.root, { recursive: true });
    root = fs.realpathSync(opts.root);
  }
  const ownedDirs = ownRoot ? [dir, root] : [dir];
  const cleanup = async (): Promise<void> => {
    for (const d of ownedDirs) await fsp.rm(d, { recursive: true, force: true }).catch(() => undefined);
  };

  try {
    const hostKeyFile = path.join(dir, 'ssh_host_ed25519_key');
    const privateKeyFile = path.join(dir, 'client_ed25519');
    const authorizedKeysFile = path.join(dir, 'authorized_keys');
    const knownHostsFile = path.join(dir, 'known_hosts');
    const configFile = path.join(dir, 'sshd_config');
    const pidFile = path.join(dir, 'sshd.pid');
    const logFile = path.join(dir, 'sshd.log');

    await Promise.all([
      run(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'tick-backup-test-host', '-f', hostKeyFile]),
      run(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'tick-backup-test-client', '-f', privateKeyFile]),
    ]);
    const privateKey = await fsp.readFile(privateKeyFile, 'utf8');
    const publicKey = (await fsp.readFile(`${privateKeyFile}.pub`, 'utf8')).trim();
    const hostPublicKey = (await fsp.readFile(`${hostKeyFile}.pub`, 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
    const fpOut = (await run(keygen, ['-lf', `${hostKeyFile}.pub`])).stdout.trim();
    const hostFingerprint = fpOut.split(/\s+/)[1] ?? '';
    if (!hostFingerprint.startsWith('SHA256:')) {
      throw new Error(`startSshd: unexpected ssh-keygen -lf output: ${fpOut}`);
    }
    await fsp.writeFile(authorizedKeysFile, `${publicKey}\n`, { mode: 0o600 });

    if (isRoot) {
      // sshd started as root needs its privilege separation directory.
      await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);
    }
    const version = await sshdVersion();
    // A locked account cannot log in at all with UsePAM no (sshd's own check); with PAM, key logins work.
    const usePam = !overridden.has('usepam') && (await accountLocked(username)) ? 'yes' : 'no';

    const buildConfig = (port: number): string => {
      const defaults: string[] = [
        'AddressFamily inet',
        'PubkeyAuthentication yes',
        'PasswordAuthentication yes',
        'PermitEmptyPasswords no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        `UsePAM ${usePam}`,
        `AuthorizedKeysFile ${cfgValue(authorizedKeysFile)}`,
        'UseDNS no',
        'PrintMotd no',
        'PrintLastLog no',
        'X11Forwarding no',
        'LoginGraceTime 30',
        // Tests open many connections at once; sshd's default 10:30:100 drops some at random.
        'MaxStartups 200',
        'MaxSessions 100',
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
      ];
      // OpenSSH >= 9.8 penalises sources that fail auth (refusing them for a while); tests fail on purpose.
      if (version && (version[0] > 9 || (version[0] === 9 && version[1] >= 8))) {
        defaults.push('PerSourcePenalties no');
      }
      return [
        '# generated by test/support/sshd.ts',
        ...extraGlobal,
        `Port ${port}`,
        `ListenAddress ${SSH_HOST}`,
        `HostKey ${cfgValue(hostKeyFile)}`,
        `PidFile ${cfgValue(pidFile)}`,
        ...defaults.filter((l) => !overridden.has(overrideKey(l))),
        ...extraMatch,
        '',
      ].join('\n');
    };

    // Validate the configuration once (clear error for bad extraConfig).
    await fsp.writeFile(configFile, buildConfig(22222));
    await run(SSHD_PATH, ['-t', '-f', configFile]).catch((e: Error) => {
      throw new Error(`startSshd: sshd rejected the configuration ${configFile}:\n${e.message}`);
    });

    installExitHook();
    const maxAttempts = 5;
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      await fsp.writeFile(configFile, buildConfig(port));
      await fsp.writeFile(knownHostsFile, `[${SSH_HOST}]:${port} ${hostPublicKey}\n`, { mode: 0o600 });
      await fsp.writeFile(logFile, '');

      let output = '';
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      const child = spawn(SSHD_PATH, ['-D', '-e', '-E', logFile, '-f', configFile], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const exitPromise = new Promise<void>((resolve) => {
        child.once('exit', (code, signal) => {
          exited = { code, signal };
          resolve();
        });
      });
      child.once('error', (err) => {
        output += `spawn error: ${err.message}\n`;
      });
      const collect = (d: Buffer): void => {
        if (output.length < 256 * 1024) output += d.toString('utf8');
      };
      child.stdout?.on('data', collect);
      child.stderr?.on('data', collect);
      const entry: Live = { child, dirs: ownedDirs };
      live.add(entry);

      const started = Date.now();
      let ready = false;
      while (!exited && Date.now() - started < timeoutMs) {
        if (await probeBanner(port, 2_000)) {
          ready = !exited;
          break;
        }
        await new Promise((r) => setTimeout(r, 50));
      }

      if (!ready) {
        const log = readText(logFile);
        const exitedEarly = exited; // captured before we kill it ourselves
        if (child.pid !== undefined && !exited) {
          killTree(child.pid, 'SIGKILL');
          await exitPromise;
        }
        live.delete(entry);
        const bindRace = /Address already in use|Cannot bind any address/.test(log + output);
        if (exitedEarly && bindRace && attempt < maxAttempts) continue;
        const why = exitedEarly
          ? `sshd exited (code ${exitedEarly.code}, signal ${exitedEarly.signal}) before accepting connections`
          : `sshd did not accept SSH connections on ${SSH_HOST}:${port} within ${timeoutMs} ms`;
        throw new Error(
          `startSshd: ${why}\n--- sshd_config ---\n${readText(configFile)}--- sshd log ---\n${log}` +
            `--- sshd stdout/stderr ---\n${output}`,
        );
      }

      // Do not keep the event loop alive for sshd; the exit hook kills it if stop() is forgotten.
      child.unref();
      (child.stdout as net.Socket | null)?.unref?.();
      (child.stderr as net.Socket | null)?.unref?.();

      let stopping: Promise<void> | undefined;
      const sshArgs = (): string[] => [
        '-F', 'none',
        '-o', `Port=${port}`,
        '-o', `User=${username}`,
        '-i', privateKeyFile,
        '-o', 'IdentitiesOnly=yes',
        '-o', `UserKnownHostsFile=${cfgValue(knownHostsFile)}`,
        '-o', 'GlobalKnownHostsFile=/dev/null',
        '-o', 'StrictHostKeyChecking=yes',
        '-o', 'UpdateHostKeys=no',
        '-o', 'BatchMode=yes',
        '-o', 'ConnectTimeout=15',
        '-o', 'LogLevel=ERROR',
      ];
      const sshd: Sshd = {
        host: SSH_HOST,
        port,
        username,
        privateKey,
        publicKey,
        hostFingerprint,
        hostPublicKey,
        root,
        dir,
        privateKeyFile,
        knownHostsFile,
        logFile,
        sshArgs,
        readLog: () => readText(logFile),
        stop: () => {
          stopping ??= (async () => {
            if (!exited && child.pid !== undefined) {
              killTree(child.pid, 'SIGTERM');
              const timer = setTimeout(() => {
                if (!exited && child.pid !== undefined) killTree(child.pid, 'SIGKILL');
              }, 3_000);
              await exitPromise;
              clearTimeout(timer);
            }
            live.delete(entry);
            await cleanup();
          })();
          return stopping;
        },
      };
      return sshd;
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}
