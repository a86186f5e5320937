/**
 * Draining a ledger backlog (issue 4 item 7), side by side in one run:
 * - hub via MQTT: the hub's own SyncService (Outbox + StreamPump + CloudLink, on the hub's Store with its
 *   WAL checkpointer) drains a 1,000,000-record `ledger` backlog through Debian's mosquitto to the reference
 *   receiver (`--mqtt`), which applies every batch in SQLite and answers with an application ack; the hub
 *   keeps at most `cloud.window` batches awaiting those acks. While it drains, a live `events` record is
 *   appended every 100 ms and timed from its append to the hub's commit of the ack that covers it;
 * - hub via HTTP: the same backlog, OMS adapter to the reference receiver (`--http-port`);
 * - ceiling: a bare mqtt.js QoS 1 publish loop pushing the very same batch payloads (serialized once by
 *   buildBacklog, the same 500 records per message) to the same broker and the same consumer, with 8 (the
 *   hub's window) or unlimited messages awaiting PUBACK, timed until the consumer's ack of the last record;
 * - hub alone (hub-null): the hub via MQTT to a consumer that acks each batch without applying it.
 * The backlog is built once; every hub run drains its own copy of the database file. The hub side and the
 * ceiling publisher run in a forked child of this file (`node sync-drain.js child`), so their CPU is their own.
 */
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Value } from '@sinclair/typebox/value';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { ConfigSchema, type HubConfig } from '../hub/config/schema.js';
import { createLogger } from '../hub/observability/logger.js';
import { createMetrics } from '../hub/observability/metrics.js';
import { Checkpointer } from '../hub/store/checkpointer.js';
import { Store } from '../hub/store/store.js';
import { defaultTopicPrefix } from '../hub/sync/cloud-link.js';
import { Outbox, type Position } from '../hub/sync/outbox.js';
import { SyncService } from '../hub/sync/sync-service.js';
import { startMosquitto } from '../test/helpers/mosquitto.js';
import { BENCH_DIR, cpuSeconds, freePort, percentile, sleep, waitExit } from './processes.js';

export const SYNC_RECORDS = Number(process.env.BENCH_SYNC_RECORDS ?? 1_000_000);
const SKUS = 5000;
const LOCATIONS = ['salesfloor', 'backroom'];
const APPEND_TRANSACTION = 10_000;
/** cloud.batchSize and cloud.window, the defaults unless BENCH_SYNC_BATCH / BENCH_SYNC_WINDOW say otherwise (exploration). */
export const BATCH_SIZE = Number(process.env.BENCH_SYNC_BATCH ?? 500);
export const WINDOW = Number(process.env.BENCH_SYNC_WINDOW ?? 8);
const LIVE_EVERY_MS = 100;
const HUB_ID = 'bench-hub';
const STORE_ID = 'bench';
/** The ledger budget during the bench: far above the backlog, so the compactor never folds. */
export const LEDGER_BUDGET_BYTES = 16 * 1024 ** 3;
/** The receiver's SQLite synchronous level: FULL, its default, so every ack it sends names durable records. */
export const RECEIVER_SYNCHRONOUS = 'FULL';
/** A drain that takes longer than this is reported as failed rather than waited for. */
const RUN_TIMEOUT_MS = Number(process.env.BENCH_SYNC_TIMEOUT_MS ?? 300_000);
const RECEIVER_CLI = join(BENCH_DIR, '..', 'reference-receiver', 'main.js');

export interface Backlog {
  dir: string;
  dataDir: string;
  /** The backlog as the hub would batch it, JSON back to back, for the ceiling: `payloads` and their byte `ends`. */
  payloads: string;
  payloadEnds: string;
  epoch: number;
  records: number;
  bodyBytes: number;
  fileBytes: number;
  buildSeconds: number;
}

/** hub-null drains to a consumer that acks every batch without applying it: the hub side alone, the receiver's work taken away. */
export type SyncTarget = 'hub-mqtt' | 'hub-http' | 'ceiling-window' | 'ceiling-unlimited' | 'hub-null';

export interface SyncRun {
  target: SyncTarget;
  round: number;
  records: number;
  /** From the start of the sync service (or the first publish) to the ack that covers the last backlog record. */
  seconds: number;
  recordsPerSecond: number;
  /** CPU of the publishing process (the hub, or the bare mqtt.js loop) over the drain, user + system. */
  publisherCpuSeconds: number;
  receiverCpuSeconds: number;
  brokerCpuSeconds: number;
  /**
   * CPU used by everything else on the machine over the drain (the bench's parent, other people's jobs):
   * this 2-core box is shared, and a busy neighbour slows a run down.
   */
  otherCpuSeconds: number;
  /** How long the run waited for the machine to be quiet before it started. */
  waitedSeconds: number;
  /** What the receiver's database holds afterwards for the backlog's stream and epoch. */
  receiverAppliedThrough: number;
  receiverApplied: number;
  receiverDuplicates: number;
  receiverGaps: number;
  /** Hub runs: resends from the last ack (timeouts, gaps) and failed sends; both should be 0. */
  rewinds?: number;
  failures?: number;
  folded?: number;
  /** Hub MQTT runs: live `events` records appended every 100 ms during the drain, append to the hub's ack. */
  liveAppended?: number;
  liveAcked?: number;
  liveP50Ms?: number;
  liveP99Ms?: number;
  liveMaxMs?: number;
  /** Hub MQTT runs: one live `ledger` record appended at the start, behind the whole backlog by design. */
  liveLedgerMs?: number;
  eventLoopP99Ms?: number;
  eventLoopMaxMs?: number;
  /** Hub runs: the synchronous commits of acks (cursor + delete) and of sent marks, on the hub's event loop. */
  commits?: { ack: CommitFigures; sentMark: CommitFigures };
  /** Ceiling runs: when the last PUBACK came back (the broker has everything; the consumer may not). */
  publishedSeconds?: number;
}

// ---------------------------------------------------------------------------------------------
// Parent side: the backlog, the broker, the receiver, one run of each target.
// ---------------------------------------------------------------------------------------------

/**
 * A fresh database holding `records` stock.delta records in the ledger stream, appended 10k per transaction
 * (synchronous=NORMAL while building: only the drains are measured), 5,000 SKUs at 2 locations.
 */
export function buildBacklog(records = SYNC_RECORDS): Backlog {
  const dir = mkdtempSync(join(tmpdir(), 'storehub-bench-sync-'));
  const dataDir = join(dir, 'backlog');
  const t0 = performance.now();
  const store = new Store({ dataDir, synchronous: 'normal', maxBytes: 64 * 1024 ** 3, mode: 'tool' });
  // A backlog built up during a day-long outage: event and receive times spread over the past 24 h.
  const start = Date.now() - 24 * 3600_000;
  const step = (24 * 3600_000) / records;
  let i = 0;
  const outbox = new Outbox(store.db, { hubId: HUB_ID, storeId: STORE_ID, epoch: store.epoch }, () => Math.round(start + i * step));
  const reasons = ['sale', 'sale', 'sale', 'receipt', 'item.departed', 'item.arrived'];
  const append = store.db.transaction((n: number) => {
    for (let k = 0; k < n; k++, i++) {
      const sku = `SKU-${String((i * 7919) % SKUS).padStart(5, '0')}`;
      const location = LOCATIONS[i % LOCATIONS.length] as string;
      const reason = reasons[i % reasons.length] as string;
      const delta = reason === 'receipt' ? 12 : reason === 'item.arrived' ? 1 : -1;
      outbox.append({
        stream: 'ledger',
        type: 'stock.delta',
        id: randomUUID(),
        eventTime: Math.round(start + i * step) - 150,
        body: { sku, location, delta, reason, source: reason === 'sale' ? `pos-${1 + (i % 4)}` : 'rfid-1' },
        foldKey: `${sku}|${location}`,
      });
    }
  });
  for (let done = 0; done < records; done += APPEND_TRANSACTION) append(Math.min(APPEND_TRANSACTION, records - done));
  const bodyBytes = outbox.size('ledger').bytes;
  const epoch = store.epoch;
  // The ceiling's messages: the very batches the hub's pump reads (Outbox.read) and its link
  // serializes (JSON.stringify of the batch), made once here so no run pays for them.
  const chunks: Buffer[] = [];
  const ends: number[] = [];
  let end = 0;
  let pos: Position = { epoch, seq: 0 };
  for (let batch = outbox.read('ledger', pos, BATCH_SIZE); batch; batch = outbox.read('ledger', pos, BATCH_SIZE)) {
    const chunk = Buffer.from(JSON.stringify(batch));
    chunks.push(chunk);
    end += chunk.length;
    ends.push(end);
    pos = { epoch: batch.epoch, seq: (batch.records[batch.records.length - 1] as { seq: number }).seq };
  }
  const payloads = join(dir, 'payloads.bin');
  const payloadEnds = join(dir, 'payloads.json');
  writeFileSync(payloads, Buffer.concat(chunks));
  writeFileSync(payloadEnds, JSON.stringify(ends));
  store.close();
  spawnSync('sync');
  return {
    dir,
    dataDir,
    payloads,
    payloadEnds,
    epoch,
    records,
    bodyBytes,
    fileBytes: statSync(join(dataDir, 'hub.db')).size,
    buildSeconds: (performance.now() - t0) / 1000,
  };
}

/** A private copy of the backlog's database for one run (runs must not see each other's acks). */
function copyBacklog(backlog: Backlog, work: string): string {
  const dataDir = join(work, 'hub-data');
  mkdirSync(dataDir, { recursive: true });
  for (const suffix of ['', '-wal']) {
    const from = join(backlog.dataDir, `hub.db${suffix}`);
    if (existsSync(from)) copyFileSync(from, join(dataDir, `hub.db${suffix}`));
  }
  return dataDir;
}

interface Receiver {
  child: ChildProcess;
  db?: string;
  url?: string;
  stop(): Promise<void>;
}

/** A consumer that acks each batch at once with its last seq and applies nothing (target hub-null). */
async function startNullConsumer(url: string): Promise<Receiver> {
  const child = fork(join(BENCH_DIR, 'sync-drain.js'), ['null-consumer', url], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`null consumer exited with ${code}`)));
  });
  return {
    child,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([waitExit(child), sleep(5000)]);
    },
  };
}

async function nullConsumer(url: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: 'bench-null-consumer', clean: true });
  client.on('message', (topic, payload) => {
    const m = /^(.+)\/streams\/([^/]+)$/.exec(topic);
    if (!m) return;
    const batch = JSON.parse(payload.toString()) as { epoch: number; records: { seq: number }[] };
    const last = batch.records[batch.records.length - 1]?.seq ?? 0;
    client.publish(`${m[1]}/acks`, JSON.stringify({ stream: m[2], epoch: batch.epoch, appliedThrough: last }), { qos: 1 });
  });
  await client.subscribeAsync('storehub/v1/+/+/streams/+', { qos: 1 });
  process.send?.({ ready: true });
  process.once('SIGTERM', () => void client.endAsync().then(() => process.exit(0)));
}

/** The reference receiver in its own process; resolves once it consumes (MQTT) or listens (HTTP). */
async function startReceiver(work: string, mode: { mqtt: string } | { httpPort: number }): Promise<Receiver> {
  const db = join(work, 'receiver.db');
  const args = [RECEIVER_CLI, '--db', db, '--synchronous', RECEIVER_SYNCHRONOUS];
  if ('mqtt' in mode) args.push('--mqtt', mode.mqtt, '--mqtt-client-id', 'bench-receiver');
  else args.push('--http-port', String(mode.httpPort));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const wanted = 'mqtt' in mode ? 'mqtt consumer subscribed' : 'receiver listening';
  let errors = '';
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    // pino's JSON lines; warnings and errors are kept for the report, the rest is drained and dropped
    lines.on('line', (line) => {
      if (line.includes(wanted)) resolve();
      if (/"level":(4|5|6)0/.test(line)) errors += `${line}\n`;
    });
    child.once('exit', (code) => reject(new Error(`reference receiver exited with ${code}:\n${errors}`)));
    setTimeout(() => reject(new Error('reference receiver did not start within 15 s')), 15_000).unref();
  });
  return {
    child,
    db,
    ...('httpPort' in mode ? { url: `http://127.0.0.1:${mode.httpPort}` } : {}),
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([waitExit(child), sleep(10_000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
      if (errors) process.stderr.write(`reference receiver warnings:\n${errors}`);
    },
  };
}

function receiverState(file: string, epoch: number): { appliedThrough: number; applied: number; duplicates: number; gaps: number } {
  const db = new Database(file, { readonly: true });
  try {
    const cursor = db.prepare("SELECT applied_through AS t FROM cursors WHERE hub = ? AND stream = 'ledger' AND epoch = ?").get(HUB_ID, epoch) as
      { t: number } | undefined;
    const applied = (db.prepare("SELECT count(*) AS n FROM records WHERE hub = ? AND stream = 'ledger' AND epoch = ?").get(HUB_ID, epoch) as { n: number }).n;
    const counter = (name: string) => (db.prepare('SELECT value FROM counters WHERE name = ?').get(name) as { value: number } | undefined)?.value ?? 0;
    return { appliedThrough: cursor?.t ?? 0, applied, duplicates: counter('duplicates'), gaps: counter('gaps') };
  } finally {
    db.close();
  }
}

/** What the forked child is asked to do. */
type ChildPlan =
  | { kind: 'hub'; dataDir: string; records: number; mqttUrl?: string; omsUrl?: string; live: boolean }
  | { kind: 'ceiling'; payloads: string; payloadEnds: string; epoch: number; records: number; mqttUrl: string; inflight: number };

export interface CommitFigures {
  count: number;
  totalMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface ChildResult {
  seconds: number;
  cpuSeconds: number;
  publishedSeconds?: number;
  rewinds?: number;
  failures?: number;
  folded?: number;
  liveLatenciesMs?: number[];
  liveAppended?: number;
  liveLedgerMs?: number;
  eventLoopP99Ms?: number;
  eventLoopMaxMs?: number;
  commits?: { ack: CommitFigures; sentMark: CommitFigures };
  error?: string;
}

/** The child's messages in order: ready, drained, then its result. */
function messages(child: ChildProcess): (timeoutMs: number) => Promise<Record<string, unknown>> {
  const queue: Record<string, unknown>[] = [];
  let waiter: ((m: Record<string, unknown>) => void) | undefined;
  child.on('message', (m) => {
    if (waiter) waiter(m as Record<string, unknown>);
    else queue.push(m as Record<string, unknown>);
  });
  return (timeoutMs) =>
    new Promise((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error(`no answer from the bench child within ${timeoutMs / 1000} s`)), timeoutMs);
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        waiter = undefined;
        reject(new Error(`bench child exited with ${code}`));
      };
      child.once('exit', onExit);
      waiter = (m) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        waiter = undefined;
        resolve(m);
      };
    });
}

/** CPU seconds every process on the machine has used so far (user, nice, system, irq, softirq, steal). */
function machineBusySeconds(): number {
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  return ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / 100;
}

/**
 * Waits (at most a minute) until the machine has been nearly idle for two seconds, so a run does not
 * start in the middle of someone else's job on this shared box. Returns the seconds waited.
 */
async function quiet(): Promise<number> {
  const t0 = performance.now();
  let calm = 0;
  while (calm < 2 && performance.now() - t0 < 60_000) {
    const before = machineBusySeconds();
    await sleep(1000);
    calm = machineBusySeconds() - before < 0.3 ? calm + 1 : 0;
  }
  return (performance.now() - t0) / 1000;
}

/** One drain of a fresh copy of the backlog by one target, with its own broker and receiver. */
export async function syncRun(backlog: Backlog, target: SyncTarget, round: number): Promise<SyncRun> {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-sync-run-'));
  const hubRun = target === 'hub-mqtt' || target === 'hub-http' || target === 'hub-null';
  const dataDir = hubRun ? copyBacklog(backlog, work) : '';
  // the copy (and the previous run) leave dirty pages; let them reach the disk before the clock starts
  spawnSync('sync');
  const waitedSeconds = await quiet();
  const http = target === 'hub-http';
  const broker = http ? undefined : await startMosquitto({ dir: work });
  const receiver =
    target === 'hub-null' && broker
      ? await startNullConsumer(broker.url)
      : await startReceiver(work, broker ? { mqtt: broker.url } : { httpPort: await freePort() });
  const child = fork(join(BENCH_DIR, 'sync-drain.js'), ['child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const plan: ChildPlan = hubRun
      ? {
          kind: 'hub',
          dataDir,
          records: backlog.records,
          live: target !== 'hub-http',
          ...(broker ? { mqttUrl: broker.url } : { omsUrl: receiver.url as string }),
        }
      : {
          kind: 'ceiling',
          payloads: backlog.payloads,
          payloadEnds: backlog.payloadEnds,
          epoch: backlog.epoch,
          records: backlog.records,
          mqttUrl: (broker as { url: string }).url,
          inflight: target === 'ceiling-window' ? WINDOW : 0,
        };
    const next = messages(child);
    child.send(plan);
    const ready = await next(120_000);
    if (ready.ready !== true) throw new Error(`bench child: ${String(ready.error)}`);
    const brokerPid = broker
      ? (spawnSync('pgrep', ['-f', `${work}/mosquitto.conf`], { encoding: 'utf8' })
          .stdout.trim()
          .split('\n')[0] ?? '')
      : '';
    const cpu = () => ({
      receiver: cpuSeconds(receiver.child.pid as number),
      broker: brokerPid ? cpuSeconds(Number(brokerPid)) : 0,
      machine: machineBusySeconds(),
    });
    const cpu0 = cpu();
    child.send({ go: true });
    const drained = await next(RUN_TIMEOUT_MS + 30_000);
    const cpu1 = cpu();
    const r = (drained.drained === true ? await next(60_000) : drained) as unknown as ChildResult;
    if (r.error) throw new Error(`${target}: ${r.error}`);
    await Promise.race([waitExit(child), sleep(15_000)]);
    await receiver.stop();
    const state = receiver.db ? receiverState(receiver.db, backlog.epoch) : { appliedThrough: Number.NaN, applied: Number.NaN, duplicates: 0, gaps: 0 };
    const receiverCpu = cpu1.receiver - cpu0.receiver;
    const brokerCpu = cpu1.broker - cpu0.broker;
    const lat = [...(r.liveLatenciesMs ?? [])].sort((a, b) => a - b);
    return {
      target,
      round,
      records: backlog.records,
      seconds: r.seconds,
      recordsPerSecond: backlog.records / r.seconds,
      publisherCpuSeconds: r.cpuSeconds,
      receiverCpuSeconds: receiverCpu,
      brokerCpuSeconds: brokerCpu,
      otherCpuSeconds: Math.max(0, cpu1.machine - cpu0.machine - receiverCpu - brokerCpu - r.cpuSeconds),
      waitedSeconds,
      receiverAppliedThrough: state.appliedThrough,
      receiverApplied: state.applied,
      receiverDuplicates: state.duplicates,
      receiverGaps: state.gaps,
      ...(r.rewinds !== undefined ? { rewinds: r.rewinds, failures: r.failures, folded: r.folded } : {}),
      ...(r.liveLatenciesMs
        ? {
            liveAppended: r.liveAppended,
            liveAcked: lat.length,
            liveP50Ms: percentile(lat, 50),
            liveP99Ms: percentile(lat, 99),
            liveMaxMs: lat[lat.length - 1] ?? Number.NaN,
            liveLedgerMs: r.liveLedgerMs,
          }
        : {}),
      ...(r.eventLoopP99Ms !== undefined ? { eventLoopP99Ms: r.eventLoopP99Ms, eventLoopMaxMs: r.eventLoopMaxMs } : {}),
      ...(r.commits ? { commits: r.commits } : {}),
      ...(r.publishedSeconds !== undefined ? { publishedSeconds: r.publishedSeconds } : {}),
    };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (receiver.child.exitCode === null) await receiver.stop();
    await broker?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Child side: the hub's sync service, or the bare mqtt.js publish loop.
// ---------------------------------------------------------------------------------------------

/** The body of the n-th live `events` record (a shelf lane's weight changed). */
const liveEventBody = (n: number) => ({ device: 'shelf-007', kind: 'lane.weight', lane: 3, grams: 1250 + n });

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function hubChild(plan: Extract<ChildPlan, { kind: 'hub' }>, go: Promise<void>): Promise<ChildResult> {
  // The hub's own store and WAL checkpointer (hub/store/maintenance.ts), at the store's default synchronous=FULL.
  const store = new Store({ dataDir: plan.dataDir, synchronous: 'full', maxBytes: 64 * 1024 ** 3, mode: 'tool' });
  const checkpointer = new Checkpointer(store.file, 'full');
  checkpointer.start();
  const config = Value.Default(ConfigSchema, {
    version: 1,
    store: { id: STORE_ID },
    hubId: HUB_ID,
    dataDir: plan.dataDir,
    cloud: {
      enabled: plan.mqttUrl !== undefined,
      ...(plan.mqttUrl ? { url: plan.mqttUrl } : {}),
      batchSize: BATCH_SIZE,
      window: WINDOW,
      // pacing is not what is measured: far above any rate reached here
      replayRecordsPerSecond: 10_000_000,
      streams: { ledger: { maxBytes: LEDGER_BUDGET_BYTES } },
      oms: { enabled: plan.omsUrl !== undefined, ...(plan.omsUrl ? { url: plan.omsUrl } : {}) },
    },
  }) as HubConfig;
  const outbox = new Outbox(store.db, { hubId: HUB_ID, storeId: STORE_ID, epoch: store.epoch });
  const metrics = createMetrics();
  const sync = new SyncService({
    config,
    outbox,
    log: createLogger({ level: 'warn', pretty: false }),
    metrics,
    version: 'bench',
    startedAt: Date.now(),
    health: () => ({ ready: true }),
    telemetrySample: () => ({ devices: 0 }),
  });

  // Acks are observed where the hub commits them: Outbox.ack, called by the pump for every answer.
  const last = plan.records;
  const appendedAt = new Map<number, number>();
  const liveLatenciesMs: number[] = [];
  let liveLedgerSeq = 0;
  let liveLedgerAt = 0;
  let liveLedgerMs: number | undefined;
  let doneAt = 0;
  let finished: () => void = () => undefined;
  const drained = new Promise<void>((resolve) => (finished = resolve));
  const ack = outbox.ack.bind(outbox);
  const ackCommitMs: number[] = [];
  outbox.ack = (sink, stream, epoch, through) => {
    const before = performance.now();
    const newly = ack(sink, stream, epoch, through);
    const now = performance.now();
    ackCommitMs.push(now - before);
    if (stream === 'ledger') {
      if (doneAt === 0 && through >= last) {
        doneAt = now;
        finished();
      }
      if (liveLedgerMs === undefined && liveLedgerSeq > 0 && through >= liveLedgerSeq) liveLedgerMs = now - liveLedgerAt;
    } else if (stream === 'events') {
      for (const [seq, at] of appendedAt) {
        if (seq > through) break;
        liveLatenciesMs.push(now - at);
        appendedAt.delete(seq);
      }
    }
    return newly;
  };
  let appended = 0;
  const appendEvent = () => {
    const at = performance.now();
    const seq = store.db.transaction(() =>
      outbox.append({
        stream: 'events',
        type: 'device.event',
        eventTime: Date.now(),
        body: liveEventBody(appended + 1),
      }),
    )();
    appendedAt.set(seq, at);
    appended++;
  };

  const markSent = outbox.markSent.bind(outbox);
  const markCommitMs: number[] = [];
  outbox.markSent = (sink, stream, epoch, seq) => {
    const before = performance.now();
    markSent(sink, stream, epoch, seq);
    markCommitMs.push(performance.now() - before);
  };

  process.send?.({ ready: true });
  await go;
  ackCommitMs.length = 0;
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = cpuNow();
  const t0 = performance.now();
  const started = sync.start();
  let timer: NodeJS.Timeout | undefined;
  if (plan.live) {
    // a sale that happens now: its stream's backlog is ahead of it (per-stream order is strict)
    liveLedgerAt = performance.now();
    liveLedgerSeq = store.db.transaction(() =>
      outbox.append({
        stream: 'ledger',
        type: 'stock.delta',
        eventTime: Date.now(),
        body: { sku: 'SKU-LIVE', location: 'salesfloor', delta: -1, reason: 'sale', source: 'pos-1' },
        foldKey: 'SKU-LIVE|salesfloor',
      }),
    )();
    timer = setInterval(appendEvent, LIVE_EVERY_MS);
  }
  await started;
  const timeout = sleep(RUN_TIMEOUT_MS).then(() => 'timeout' as const);
  const outcome = await Promise.race([drained.then(() => 'drained' as const), timeout]);
  const seconds = ((doneAt || performance.now()) - t0) / 1000;
  const cpuSeconds = cpuNow() - cpu0;
  process.send?.({ drained: true });
  loop.disable();
  if (timer) clearInterval(timer);
  // the last live records (and the live ledger record) still get their acks, for the latency figures
  for (let i = 0; i < 100 && (appendedAt.size > 0 || (liveLedgerSeq > 0 && liveLedgerMs === undefined)); i++) await sleep(50);
  const value = async (c: { get(): Promise<{ values: { value: number }[] }> }) => (await c.get()).values.reduce((s, v) => s + v.value, 0);
  const rewinds = await value(metrics.syncRewinds);
  const failures = await value(metrics.syncFailures);
  const folded = outbox.counters('ledger').folded;
  await sync.stop();
  // No final checkpoint or close: this copy of the database is thrown away with the process.
  return {
    seconds,
    cpuSeconds,
    rewinds,
    failures,
    folded,
    ...(plan.live ? { liveLatenciesMs, liveAppended: appended, ...(liveLedgerMs !== undefined ? { liveLedgerMs } : {}) } : {}),
    eventLoopP99Ms: loop.percentile(99) / 1e6,
    eventLoopMaxMs: loop.max / 1e6,
    commits: { ack: commitFigures(ackCommitMs), sentMark: commitFigures(markCommitMs) },
    ...(outcome === 'timeout' ? { error: `not drained within ${RUN_TIMEOUT_MS / 1000} s` } : {}),
  };
}

/** Count, total, p50, p99 and max of the hub's synchronous commits (ms): they hold its event loop. */
function commitFigures(ms: number[]): CommitFigures {
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    count: sorted.length,
    totalMs: sorted.reduce((s, v) => s + v, 0),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

async function ceilingChild(plan: Extract<ChildPlan, { kind: 'ceiling' }>, go: Promise<void>): Promise<ChildResult> {
  // The same batches the hub sends, serialized by buildBacklog before any clock starts.
  const all = readFileSync(plan.payloads);
  const payloads: Buffer[] = [];
  let start = 0;
  for (const end of JSON.parse(readFileSync(plan.payloadEnds, 'utf8')) as number[]) {
    payloads.push(all.subarray(start, end));
    start = end;
  }
  const epoch = plan.epoch;

  const prefix = defaultTopicPrefix(STORE_ID, HUB_ID);
  const client = await mqtt.connectAsync(plan.mqttUrl, {
    protocolVersion: 5,
    clientId: 'bench-ceiling',
    clean: true,
    reconnectPeriod: 0,
  });
  let doneAt = 0;
  let finished: () => void = () => undefined;
  const drained = new Promise<void>((resolve) => (finished = resolve));
  client.on('message', (_topic, payload) => {
    const a = JSON.parse(payload.toString()) as { stream: string; epoch: number; appliedThrough: number };
    if (doneAt === 0 && a.stream === 'ledger' && a.epoch === epoch && a.appliedThrough >= plan.records) {
      doneAt = performance.now();
      finished();
    }
  });
  await client.subscribeAsync(`${prefix}/acks`, { qos: 1 });
  const topic = `${prefix}/streams/ledger`;
  const inflight = plan.inflight > 0 ? plan.inflight : Number.POSITIVE_INFINITY;

  // The consumer gets what it gets from a draining hub: the live `events` record every 100 ms, as a
  // batch of one, so the ceiling's consumer does the same work (one more commit per live record).
  let liveSeq = 0;
  const publishLive = () => {
    liveSeq++;
    const now = Date.now();
    const record = {
      id: randomUUID(),
      hub: HUB_ID,
      store: STORE_ID,
      stream: 'events',
      epoch,
      seq: liveSeq,
      type: 'device.event',
      eventTime: now,
      receivedAt: now,
    };
    const batch = { hub: HUB_ID, store: STORE_ID, stream: 'events', epoch, records: [{ ...record, body: liveEventBody(liveSeq) }] };
    client.publish(`${prefix}/streams/events`, JSON.stringify(batch), { qos: 1 });
  };

  process.send?.({ ready: true });
  await go;
  const cpu0 = cpuNow();
  const t0 = performance.now();
  const live = setInterval(publishLive, LIVE_EVERY_MS);
  let publishedAt = 0;
  await new Promise<void>((resolve, reject) => {
    let next = 0;
    let waiting = 0;
    const pump = () => {
      while (waiting < inflight && next < payloads.length) {
        const payload = payloads[next++] as Buffer;
        waiting++;
        client.publish(topic, payload, { qos: 1 }, (err) => {
          waiting--;
          if (err) reject(err);
          else if (next === payloads.length && waiting === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  publishedAt = performance.now();
  const outcome = await Promise.race([drained.then(() => 'drained' as const), sleep(RUN_TIMEOUT_MS).then(() => 'timeout' as const)]);
  clearInterval(live);
  const seconds = ((doneAt || performance.now()) - t0) / 1000;
  const cpuSeconds = cpuNow() - cpu0;
  process.send?.({ drained: true });
  await client.endAsync();
  return {
    seconds,
    cpuSeconds,
    publishedSeconds: (publishedAt - t0) / 1000,
    ...(outcome === 'timeout' ? { error: `not drained within ${RUN_TIMEOUT_MS / 1000} s` } : {}),
  };
}

async function child(): Promise<void> {
  const plan = await new Promise<ChildPlan>((resolve) => process.once('message', (m) => resolve(m as ChildPlan)));
  const go = new Promise<void>((resolve) => process.once('message', () => resolve()));
  let result: ChildResult;
  try {
    result = plan.kind === 'hub' ? await hubChild(plan, go) : await ceilingChild(plan, go);
  } catch (err) {
    process.send?.({ ready: false, error: (err as Error).stack });
    result = { seconds: Number.NaN, cpuSeconds: Number.NaN, error: (err as Error).stack ?? String(err) };
  }
  process.send?.(result, () => process.exit(0));
}

if (process.argv[2] === 'child' && process.send) void child();
if (process.argv[2] === 'null-consumer' && process.argv[3]) void nullConsumer(process.argv[3]);
