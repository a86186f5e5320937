/**
 * Durable QoS 1 ingest, side by side in one run:
 * - storehub: 100 devices publish to the embedded broker, which commits each message to SQLite
 *   (synchronous=FULL, group commit) before it sends the PUBACK;
 * - peer: the same devices publish to Debian's mosquitto, and an mqtt.js subscriber writes every
 *   message into SQLite (synchronous=FULL) in batched transactions. mosquitto acknowledges before
 *   anything is on disk, so its durable rate is what the subscriber commits, not what is acked;
 * - ceiling: bare better-sqlite3 batched inserts, no network at all.
 * The load generator runs in a child process (devices are separate machines; here it gets the other core).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Store } from '../hub/store/store.js';
import type { LoadPlan, LoadResult } from './load-generator.js';
import {
  BENCH_DIR,
  cpuSeconds,
  forkScript,
  freePort,
  HUB_NODE_FLAGS,
  percentile,
  request,
  rssBytes,
  sleep,
  waitExit,
  waitHealthy,
  writeBenchHubConfig,
} from './processes.js';

export const DEVICES = 100;
// One generator process: with the hub on one core it takes the other; two would contend for it.
const GENERATORS = Number(process.env.BENCH_GENERATORS ?? 1);
const PAYLOAD_BYTES = 120; // a shelf weight report or an RFID read as JSON
const WARMUP_MS = 2000;

export interface IngestFigures {
  target: 'storehub' | 'mosquitto+subscriber';
  mode: 'max' | 'rate';
  synchronous?: 'full' | 'normal';
  offeredRate?: number;
  ackedPerSecond: number;
  durablePerSecond: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuCores: number;
  lost: number;
}

export const CLI = join(BENCH_DIR, '..', 'hub', 'cli', 'main.js');

export interface HubUnderTest {
  child: ChildProcess;
  url: string;
  apiPort: number;
  dataDir: string;
  devices: { id: string; secret: string }[];
  /** From spawn to the hub's READY=1 notification. */
  startToReadyMs: number;
  stop(): Promise<void>;
}

const requireCjs = createRequire(import.meta.url);
interface DgramSocket {
  bind(path: string): void;
  close(): void;
}
const unixDgram = requireCjs('unix-dgram') as { createSocket(type: 'unix_dgram', listener: (msg: Buffer) => void): DgramSocket };

export async function startHubUnderTest(workDir: string, synchronous: 'full' | 'normal' = 'full'): Promise<HubUnderTest> {
  const dataDir = join(workDir, 'hub-data');
  mkdirSync(dataDir, { recursive: true });
  const devices: { id: string; secret: string }[] = [];
  const store = new Store({ dataDir, synchronous: 'full', maxBytes: 8 * 1024 ** 3, mode: 'tool' });
  for (let i = 0; i < DEVICES; i++) {
    const id = `shelf-${String(i).padStart(3, '0')}`;
    devices.push({ id, secret: await store.credentials.add(id, 'smart-shelf') });
  }
  store.db.close();
  const { file, apiPort, brokerPort } = await writeBenchHubConfig(workDir, { dataDir, synchronous });

  const notifyPath = join(workDir, 'notify.sock');
  let readyAt = 0;
  const notify = unixDgram.createSocket('unix_dgram', (msg) => {
    if (readyAt === 0 && msg.toString().split('\n').includes('READY=1')) readyAt = performance.now();
  });
  notify.bind(notifyPath);
  const spawnedAt = performance.now();
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, CLI, 'start', '--config', file], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, NOTIFY_SOCKET: notifyPath },
  });
  await waitHealthy(apiPort, child);
  for (let i = 0; i < 100 && readyAt === 0; i++) await sleep(10);
  return {
    startToReadyMs: readyAt - spawnedAt,
    child,
    url: `mqtt://127.0.0.1:${brokerPort}`,
    apiPort,
    dataDir,
    devices,
    async stop() {
      child.kill('SIGTERM');
      await waitExit(child);
      notify.close();
    },
  };
}

async function startMosquitto(workDir: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const conf = join(workDir, 'mosquitto.conf');
  // Queue limits raised so the peer never drops (Debian's default would drop past 1000 queued
  // messages, which is the peer losing data rather than being slow).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_type error\n`);
  const bin = existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `mqtt://127.0.0.1:${port}`;
  const net = await import('node:net');
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.createConnection(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return { child, url };
    await sleep(50);
  }
  throw new Error('mosquitto did not start (is the mosquitto package installed? npm run system-deps)');
}

/**
 * Connects every device from the generator processes, calls `onConnected` (to take the CPU
 * baseline), then runs the load phase and merges the results.
 */
async function drive(
  url: string,
  devices: { id: string; secret?: string }[],
  mode: 'max' | 'rate',
  rate: number,
  durationMs: number,
  onConnected: () => void,
): Promise<LoadResult> {
  const per = Math.ceil(devices.length / GENERATORS);
  const children = Array.from({ length: GENERATORS }, () => forkScript('load-generator'));
  const connected = children.map((child, g) => {
    const plan: LoadPlan = {
      url,
      devices: devices.slice(g * per, (g + 1) * per),
      mode,
      window: 10,
      rate: rate / GENERATORS,
      durationMs,
      warmupMs: WARMUP_MS,
      payloadBytes: PAYLOAD_BYTES,
    };
    return request<{ connected: true }>(child, plan);
  });
  await Promise.all(connected);
  onConnected();
  const results = await Promise.all(children.map((child) => request<LoadResult>(child, { go: true })));
  return {
    acked: results.reduce((s, r) => s + r.acked, 0),
    ackedTotal: results.reduce((s, r) => s + r.ackedTotal, 0),
    errors: results.reduce((s, r) => s + r.errors, 0),
    elapsedMs: Math.max(...results.map((r) => r.elapsedMs)),
    latencies: results.flatMap((r) => r.latencies),
  };
}

function countRows(file: string): number {
  const db = new Database(file, { readonly: true });
  const n = (db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number }).n;
  db.close();
  return n;
}

export async function hubIngest(mode: 'max' | 'rate', rate: number, durationMs: number, synchronous: 'full' | 'normal' = 'full'): Promise<IngestFigures> {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
  const hub = await startHubUnderTest(work, synchronous);
  try {
    const pid = hub.child.pid as number;
    let cpu0 = 0;
    const load = await drive(hub.url, hub.devices, mode, rate, durationMs, () => {
      setTimeout(() => {
        cpu0 = cpuSeconds(pid);
      }, WARMUP_MS);
    });
    const cpu = cpuSeconds(pid) - cpu0;
    if (process.env.BENCH_METRICS) {
      const text = await (await fetch(`http://127.0.0.1:${hub.apiPort}/metrics`)).text();
      process.stdout.write(
        `${text
          .split('\n')
          .filter((l) => /journal_commit_seconds_bucket|eventloop_lag_(p99|max)|gc_duration_seconds_sum/.test(l))
          .join('\n')}\n`,
      );
    }
    await hub.stop();
    const stored = countRows(join(hub.dataDir, 'hub.db'));
    const sorted = load.latencies.sort((a, b) => a - b);
    const seconds = load.elapsedMs / 1000;
    return {
      target: 'storehub',
      mode,
      synchronous,
      ...(mode === 'rate' ? { offeredRate: rate } : {}),
      ackedPerSecond: load.acked / seconds,
      // every acknowledged message was committed before its ack
      durablePerSecond: load.acked / seconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      serverCpuCores: cpu / seconds,
      lost: Math.max(0, load.ackedTotal - stored),
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export async function peerIngest(mode: 'max' | 'rate', rate: number, durationMs: number): Promise<IngestFigures> {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
  const broker = await startMosquitto(work);
  const subscriber = forkScript('peer-subscriber');
  try {
    await request(subscriber, { url: broker.url, file: join(work, 'peer.db') });
    const devices = Array.from({ length: DEVICES }, (_, i) => ({ id: `shelf-${String(i).padStart(3, '0')}` }));
    const pids = [broker.child.pid as number, subscriber.pid as number];
    let cpu0 = 0;
    let measureStart = 0;
    let committedAtStart: Promise<number> = Promise.resolve(0);
    const count = () => request<{ committed: number; lastCommitAt: number }>(subscriber, { cmd: 'count' });
    const load = await drive(broker.url, devices, mode, rate, durationMs, () => {
      committedAtStart = sleep(WARMUP_MS).then(async () => {
        measureStart = performance.now() + performance.timeOrigin;
        cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
        return (await count()).committed;
      });
    });
    const base = await committedAtStart;
    // the peer's durable rate: wait until the subscriber has committed everything that was acked
    let state = await count();
    for (let i = 0; i < 600 && state.committed < load.ackedTotal; i++) {
      await sleep(100);
      state = await count();
    }
    const cpu = pids.reduce((s, p) => s + cpuSeconds(p), 0) - cpu0;
    const durableSeconds = Math.max(load.elapsedMs, state.lastCommitAt - measureStart) / 1000;
    const sorted = load.latencies.sort((a, b) => a - b);
    return {
      target: 'mosquitto+subscriber',
      mode,
      ...(mode === 'rate' ? { offeredRate: rate } : {}),
      ackedPerSecond: load.acked / (load.elapsedMs / 1000),
      durablePerSecond: (state.committed - base) / durableSeconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      serverCpuCores: cpu / durableSeconds,
      lost: Math.max(0, load.ackedTotal - state.committed),
    };
  } finally {
    subscriber.send({ cmd: 'stop' });
    await Promise.race([waitExit(subscriber), sleep(2000)]);
    subscriber.kill();
    broker.child.kill('SIGTERM');
    await waitExit(broker.child);
    rmSync(work, { recursive: true, force: true });
  }
}

/** The ceiling: bare better-sqlite3, same table and pragmas, 500-row transactions. */
export function sqliteCeiling(rows = 300_000): { rowsPerSecond: number } {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
  try {
    const db = new Database(join(work, 'ceiling.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE device_messages (id INTEGER PRIMARY KEY, device_id TEXT, topic TEXT, payload BLOB, qos INTEGER, received_at INTEGER)');
    const insert = db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, ?, ?)');
    const payload = Buffer.alloc(PAYLOAD_BYTES, 'x');
    const batch = db.transaction((n: number) => {
      for (let i = 0; i < n; i++) insert.run('shelf-001', 'devices/shelf-001/weights', payload, 1, Date.now());
    });
    const t0 = performance.now();
    for (let done = 0; done < rows; done += 500) batch(500);
    const seconds = (performance.now() - t0) / 1000;
    db.close();
    return { rowsPerSecond: rows / seconds };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * What the disk gives at the moment: bare better-sqlite3 (WAL, synchronous=FULL) committing the
 * rate scenario's load (50 rows every 10 ms) for `durationMs`, nothing else running. A durable
 * acknowledgement cannot be faster than this commit, so a hub p99 read next to it shows what the
 * hub adds and what the VM's shared disk did (stalls of 50 ms to over a second come and go here).
 */
export async function diskProbe(durationMs: number): Promise<{ p50Ms: number; p99Ms: number; maxMs: number; over20Ms: number }> {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
  const db = new Database(join(work, 'probe.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE device_messages (id INTEGER PRIMARY KEY, device_id TEXT, topic TEXT, payload BLOB, qos INTEGER, received_at INTEGER)');
    const insert = db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, ?, ?)');
    const payload = Buffer.alloc(PAYLOAD_BYTES, 'x');
    const commit = db.transaction(() => {
      for (let i = 0; i < 50; i++) insert.run('shelf-001', 'devices/shelf-001/weights', payload, 1, Date.now());
    });
    const times: number[] = [];
    const end = performance.now() + durationMs;
    while (performance.now() < end) {
      const t0 = performance.now();
      commit();
      times.push(performance.now() - t0);
      await sleep(10);
    }
    times.sort((a, b) => a - b);
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), maxMs: times.at(-1) ?? Number.NaN, over20Ms: times.filter((t) => t > 20).length };
  } finally {
    db.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** RSS read this long after start: once early, once after V8's memory reducer has had its turn. */
export const RSS_EARLY_MS = 10_000;
export const RSS_SETTLED_MS = 30_000;

export interface StartAndIdle {
  startToReadyMs: number[];
  /** 10 s after start: still holding the young generation startup grew (V8 returns it when idle). */
  earlyRssBytes: number;
  /** 30 s after start, nothing connected: what an idle hub keeps. */
  idleRssBytes: number;
  peerEarlyRssBytes: number;
  peerIdleRssBytes: number;
}

/**
 * Start-to-ready (spawn until READY=1) over `runs` starts, and the RSS of an idle hub and of the
 * idle peer, 10 s and 30 s after start. Startup grows V8's young generation to its 32 MB cap
 * (module code and compiled schemas survive their first collections); V8's memory reducer gives
 * it back once the process has been idle for a while, which on these machines happens between
 * 10 and 20 s after start. Both readings are reported.
 */
export async function startAndIdle(runs = 5): Promise<StartAndIdle> {
  const startToReadyMs: number[] = [];
  let earlyRssBytes = 0;
  let idleRssBytes = 0;
  for (let i = 0; i < runs; i++) {
    const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
    try {
      const hub = await startHubUnderTest(work);
      startToReadyMs.push(hub.startToReadyMs);
      if (i === runs - 1) {
        const pid = hub.child.pid as number;
        await sleep(RSS_EARLY_MS - hub.startToReadyMs);
        earlyRssBytes = rssBytes(pid);
        await sleep(RSS_SETTLED_MS - RSS_EARLY_MS);
        idleRssBytes = rssBytes(pid);
      }
      await hub.stop();
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-'));
  const broker = await startMosquitto(work);
  const subscriber = forkScript('peer-subscriber');
  await request(subscriber, { url: broker.url, file: join(work, 'peer.db') });
  const peerRss = () => rssBytes(broker.child.pid as number) + rssBytes(subscriber.pid as number);
  await sleep(RSS_EARLY_MS);
  const peerEarlyRssBytes = peerRss();
  await sleep(RSS_SETTLED_MS - RSS_EARLY_MS);
  const peerIdleRssBytes = peerRss();
  subscriber.send({ cmd: 'stop' });
  broker.child.kill('SIGTERM');
  await waitExit(broker.child);
  rmSync(work, { recursive: true, force: true });
  return { startToReadyMs, earlyRssBytes, idleRssBytes, peerEarlyRssBytes, peerIdleRssBytes };
}
