/**
 * Runs a real mosquitto (Debian's 2.0.11) as the "cloud broker" of a test: a private config in a temp dir,
 * loopback listeners only, optional TLS listener and persistence, and stop/kill/restart to play outages.
 * Real broker rather than a mock because its queueing and persistence quirks (docs/cloud-protocol.md,
 * /work/shared/FACTS.md) are exactly what the hub has to survive.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './hub-process.js';

export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** Plain MQTT listener port on 127.0.0.1; a free one when absent. */
  port?: number;
  /** An extra TLS listener (file paths, e.g. from makeCertificates()). */
  tls?: { port: number; ca: string; cert: string; key: string; requireCertificate?: boolean };
  /** Keep sessions and queued messages in `dir` across stop()/restart(). Saved on SIGTERM and every autosave. */
  persistence?: boolean;
  /** Per-client offline/inflight queue limit; mosquitto's default (1000) is small and drops the NEWEST messages. */
  maxQueuedMessages?: number;
  /** Outgoing QoS 1/2 messages in flight per client. Default 100. */
  maxInflightMessages?: number;
  /** Seconds between persistence snapshots (mosquitto's default: 1800). A kill() loses what came after the last one. */
  autosaveIntervalSeconds?: number;
  /** Where the config, log and persistence file live; a fresh temp dir (removed at process exit) when absent. */
  dir?: string;
}

export interface Mosquitto {
  /** mqtt://127.0.0.1:PORT */
  url: string;
  /** mqtts://127.0.0.1:TLSPORT when a TLS listener was asked for. */
  tlsUrl?: string;
  port: number;
  dir: string;
  /** The broker's log so far (for assertion messages and debugging). */
  log(): string;
  /** SIGTERM and wait for exit (mosquitto saves its persistence file on SIGTERM). */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit: a crash; persistence keeps only the last snapshot. */
  kill(): Promise<void>;
  /** Start again on the same port(s) with the same config and persistence dir; stops it first if running. */
  restart(): Promise<void>;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that throws or times out must not leave a broker holding its port.
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/**
 * The 'exit' hook does not run when the test process itself is SIGKILLed (tap's timeout), so a detached
 * shell watches both pids and kills the broker once its parent is gone; it ends by itself when the broker does.
 */
function startWatchdog(brokerPid: number): void {
  const script = 'while kill -0 "$0" 2>/dev/null && kill -0 "$1" 2>/dev/null; do sleep 1; done; kill -9 "$1" 2>/dev/null; exit 0';
  const w = spawn('/bin/sh', ['-c', script, String(process.pid), String(brokerPid)], { detached: true, stdio: 'ignore' });
  w.unref();
}

function writeConfig(dir: string, port: number, o: MosquittoOptions): string {
  const lines = [
    '# written by test/helpers/mosquitto.ts',
    // As root, mosquitto drops to the `mosquitto` user and then silently fails to write persistence
    // into a root-owned temp dir; staying root keeps persistence (and reading the key files) working.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'per_listener_settings false',
    'allow_anonymous true',
    `max_queued_messages ${o.maxQueuedMessages ?? 100_000}`,
    'max_queued_bytes 0',
    `max_inflight_messages ${o.maxInflightMessages ?? 100}`,
    'set_tcp_nodelay true',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
  ];
  if (o.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'persistence_file mosquitto.db');
    if (o.autosaveIntervalSeconds !== undefined) lines.push(`autosave_interval ${o.autosaveIntervalSeconds}`);
  } else {
    lines.push('persistence false');
  }
  lines.push('', `listener ${port} 127.0.0.1`, 'protocol mqtt');
  if (o.tls) {
    lines.push(
      '',
      `listener ${o.tls.port} 127.0.0.1`,
      'protocol mqtt',
      `cafile ${o.tls.ca}`,
      `certfile ${o.tls.cert}`,
      `keyfile ${o.tls.key}`,
      `require_certificate ${o.tls.requireCertificate ? 'true' : 'false'}`,
    );
  }
  const file = join(dir, 'mosquitto.conf');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  if (!existsSync(MOSQUITTO_BIN)) throw new Error(`${MOSQUITTO_BIN} is missing: apt-get install mosquitto`);
  installExitHook();
  const port = options.port ?? (await freePort());
  let dir = options.dir;
  if (!dir) {
    dir = mkdtempSync(join(tmpdir(), 'storehub-mosquitto-'));
    tempDirs.add(dir);
  }
  const conf = writeConfig(dir, port, options);
  const logFile = join(dir, 'mosquitto.log');
  const ports = [port, ...(options.tls ? [options.tls.port] : [])];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');

  /** One attempt: spawn, then wait until it is listening on every port, or has exited (e.g. bind failed). */
  async function spawnOnce(): Promise<boolean> {
    const from = log().length;
    const fd = openSync(logFile, 'a');
    const c = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    let gone = false;
    exited = new Promise<void>((resolve) =>
      c.once('exit', () => {
        gone = true;
        live.delete(c);
        resolve();
      }),
    );
    c.once('error', () => undefined); // reported through 'exit' / the log
    live.add(c);
    child = c;
    if (c.pid !== undefined) startWatchdog(c.pid);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (gone) return false;
      // "running" is logged after every listener is bound; the TCP probe proves it accepts connections
      // (and guards against a stranger who happens to hold the port: then mosquitto exits, `gone`).
      if (log().slice(from).includes(' running') && (await Promise.all(ports.map(tcpOpen))).every(Boolean)) {
        if (!gone) return true;
      }
      await sleep(20);
    }
    c.kill('SIGKILL');
    await exited;
    throw new Error(`mosquitto did not start within 10 s on ${ports.join(', ')}:\n${log().slice(from)}`);
  }

  async function start(): Promise<void> {
    // A port freed a moment ago (our own previous broker, or freePort()'s probe) can still refuse a bind
    // briefly; mosquitto then exits at once, so retry a few times before giving up.
    for (let attempt = 1; ; attempt++) {
      if (await spawnOnce()) return;
      if (attempt >= 25) throw new Error(`mosquitto exited at start (ports ${ports.join(', ')}):\n${log().slice(-4000)}`);
      await sleep(200);
    }
  }

  async function signal(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null || !live.has(c)) return;
    c.kill(sig);
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  await start();
  return {
    url: `mqtt://127.0.0.1:${port}`,
    ...(options.tls ? { tlsUrl: `mqtts://127.0.0.1:${options.tls.port}` } : {}),
    port,
    dir,
    log,
    stop: () => signal('SIGTERM', 10_000),
    kill: () => signal('SIGKILL', 10_000),
    async restart() {
      await signal('SIGTERM', 10_000);
      await start();
    },
  };
}
