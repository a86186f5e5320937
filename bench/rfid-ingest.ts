/**
 * RFID ingest (issue 3): a real hub process with four `rfid-reader` devices (two Impinj, two Zebra)
 * and four RfidReaderSimulators publishing batched QoS 1 tag reads to its embedded broker. The
 * simulators run in a child process (this same file, forked with `--generator`), so the hub's CPU is
 * measured alone. Figures come from the hub's own /metrics:
 * - processed reads: `storehub_device_events_total{type="rfid.read"}`, before and after the measured phase;
 * - rejected input: `storehub_device_rejected_total` (all reasons) over the same devices;
 * - event-loop delay: `storehub_nodejs_eventloop_lag_p99_seconds` (prom-client resets its histogram
 *   on every scrape, so the scrape at the end covers the measured phase only);
 * - CPU: the hub process's user + system time over the measured phase.
 * Reads lost = reads the simulators generated (whole run, warm-up included) - processed - rejected,
 * after waiting for the hub to catch up.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RfidReaderSimulator } from '../firmware-sim/rfid-reader/index.js';
import { Store } from '../hub/store/store.js';
import { CLI } from './ingest.js';
import { BENCH_DIR, cpuSeconds, HUB_NODE_FLAGS, sleep, waitExit, waitHealthy, writeBenchHubConfig } from './processes.js';

const WARMUP_MS = 2000;
const CATCH_UP_MS = 15_000;

interface ReaderSpec {
  id: string;
  secret: string;
  vendor: 'impinj' | 'zebra';
}

interface GeneratorPlan {
  url: string;
  readers: ReaderSpec[];
  readsPerSecond: number;
  warmupMs: number;
  durationMs: number;
  tags: number;
  batchMax: number;
}

interface GeneratorMark {
  phase: 'connected' | 'start' | 'end' | 'done';
  reads: number;
  messages: number;
  dropped: number;
  errors: number;
}

export interface RfidFigures {
  offeredReadsPerSecond: number;
  seconds: number;
  /** Reads the simulators generated during the measured phase, per second. */
  sentPerSecond: number;
  /** rfid.read events the hub's drivers emitted during the measured phase, per second. */
  processedPerSecond: number;
  hubCpuCores: number;
  /** prom-client's event-loop delay p99 over the measured phase (includes its 10 ms sampling interval). */
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  /** p50 and p99 of read-to-event latency (bucket upper bounds) over the measured phase. */
  readToEventP50Ms: number;
  readToEventP99Ms: number;
  /** The same gauge over 2 s of idle before the load, for reference. */
  idleEventLoopP99Ms: number;
  sentTotal: number;
  processedTotal: number;
  rejectedTotal: number;
  droppedBySimulators: number;
  simulatorErrors: number;
  lost: number;
  mqttMessagesPerSecond: number;
}

// ---------------------------------------------------------------------------------------------
// the generator (child process)

async function generate(plan: GeneratorPlan): Promise<void> {
  const perReader = plan.readsPerSecond / plan.readers.length;
  const sims = plan.readers.map(
    (r, i) =>
      new RfidReaderSimulator({
        url: plan.url,
        username: r.id,
        password: r.secret,
        vendor: r.vendor,
        topics: r.vendor === 'impinj' ? { events: `impinj/${r.id}/events`, status: `impinj/${r.id}/status` } : { events: `zebra/${r.id}/data` },
        antennas: [1, 2, 3, 4],
        tags: plan.tags,
        readsPerSecond: 0,
        batchAbove: 0,
        batchMax: plan.batchMax,
        qos: 1,
        seed: i + 1,
        heartbeatMs: 0,
        // a reader's outbound buffer: large enough that a brief hub stall does not drop reads
        maxBacklogBytes: 16 * 1024 * 1024,
      }),
  );
  await Promise.all(sims.map((s) => s.start()));
  const mark = (phase: GeneratorMark['phase']): GeneratorMark => ({
    phase,
    reads: sims.reduce((s, x) => s + x.stats.reads, 0),
    messages: sims.reduce((s, x) => s + x.stats.messages, 0),
    dropped: sims.reduce((s, x) => s + x.stats.dropped, 0),
    errors: sims.reduce((s, x) => s + x.errors.length, 0),
  });
  await new Promise<void>((resolve) => {
    process.once('message', () => resolve());
    process.send?.(mark('connected'));
  });
  for (const s of sims) s.setRate(perReader);
  await sleep(plan.warmupMs);
  process.send?.(mark('start'));
  await sleep(plan.durationMs);
  for (const s of sims) s.setRate(0);
  process.send?.(mark('end'));
  // QoS 1: everything handed to the client is acknowledged by the broker
  await Promise.race([Promise.all(sims.map((s) => s.idle())), sleep(CATCH_UP_MS)]);
  const done = mark('done');
  await Promise.all(sims.map((s) => s.stop()));
  process.send?.(done, () => process.exit(0));
}

if (process.argv[2] === '--generator') {
  process.once('message', (plan: GeneratorPlan) => {
    generate(plan).catch((err: Error) => {
      process.stderr.write(`rfid generator failed: ${err.stack}\n`);
      process.exit(1);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// the hub side (parent)

const READERS: { id: string; vendor: 'impinj' | 'zebra' }[] = [
  { id: 'reader-1', vendor: 'impinj' },
  { id: 'reader-2', vendor: 'impinj' },
  { id: 'reader-3', vendor: 'zebra' },
  { id: 'reader-4', vendor: 'zebra' },
];

async function startRfidHub(workDir: string): Promise<{ child: ChildProcess; apiPort: number; url: string; readers: ReaderSpec[] }> {
  const dataDir = join(workDir, 'hub-data');
  mkdirSync(dataDir, { recursive: true });
  const store = new Store({ dataDir, synchronous: 'full', maxBytes: 8 * 1024 ** 3, mode: 'tool' });
  const readers: ReaderSpec[] = [];
  for (const r of READERS) readers.push({ ...r, secret: await store.credentials.add(r.id, 'rfid-reader', [`${r.vendor}/{id}/#`]) });
  store.db.close();
  const { file, apiPort, brokerPort } = await writeBenchHubConfig(workDir, {
    dataDir,
    synchronous: 'full',
    devices: READERS.map((r) => ({
      id: r.id,
      kind: 'rfid-reader',
      transport: { type: 'mqtt', topics: [`${r.vendor}/{id}/#`] },
      options: {
        vendor: r.vendor,
        topics: r.vendor === 'impinj' ? { events: 'impinj/{id}/events', status: 'impinj/{id}/status' } : { events: 'zebra/{id}/data' },
        antennas: { '1': 'salesfloor', '2': 'backroom', '3': 'fitting-room', '4': 'stockroom' },
        // a benchmark floods on purpose; the flood flag only degrades health, every read is processed
        maxReadsPerSecond: 100_000,
      },
    })),
  });
  const child = spawn(process.execPath, [...HUB_NODE_FLAGS, CLI, 'start', '--config', file], { stdio: ['ignore', 'inherit', 'inherit'] });
  await waitHealthy(apiPort, child);
  return { child, apiPort, url: `mqtt://127.0.0.1:${brokerPort}`, readers };
}

interface Scrape {
  reads: number;
  rejected: number;
  lagP99: number;
  lagMax: number;
  /** Cumulative read-to-event histogram: upper bound (s) -> count. */
  latency: Map<number, number>;
}

async function scrape(apiPort: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  let reads = 0;
  let rejected = 0;
  let lagP99 = Number.NaN;
  let lagMax = Number.NaN;
  const latency = new Map<number, number>();
  for (const line of text.split('\n')) {
    const bucket = /^storehub_rfid_read_to_event_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(line);
    if (bucket) latency.set(bucket[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(bucket[1]), Number(bucket[2]));
    if (line.startsWith('storehub_device_events_total{type="rfid.read"}')) reads = Number(line.split(' ').at(-1));
    else if (line.startsWith('storehub_device_rejected_total{')) rejected += Number(line.split(' ').at(-1));
    else if (line.startsWith('storehub_nodejs_eventloop_lag_p99_seconds')) lagP99 = Number(line.split(' ').at(-1));
    else if (line.startsWith('storehub_nodejs_eventloop_lag_max_seconds')) lagMax = Number(line.split(' ').at(-1));
  }
  return { reads, rejected, lagP99, lagMax, latency };
}

/** The bucket bound (ms) under which p% of the reads observed between two scrapes fell. */
function latencyPercentileMs(before: Scrape, after: Scrape, p: number): number {
  const bounds = [...after.latency.keys()].sort((a, b) => a - b);
  const total = (after.latency.get(Number.POSITIVE_INFINITY) ?? 0) - (before.latency.get(Number.POSITIVE_INFINITY) ?? 0);
  if (total <= 0) return Number.NaN;
  for (const le of bounds) {
    const n = (after.latency.get(le) ?? 0) - (before.latency.get(le) ?? 0);
    if (n >= (p / 100) * total) return le * 1000;
  }
  return Number.POSITIVE_INFINITY;
}

function nextMark(child: ChildProcess, phase: GeneratorMark['phase']): Promise<GeneratorMark> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: GeneratorMark) => {
      if (m.phase !== phase) return;
      child.off('message', onMessage);
      resolve(m);
    };
    child.on('message', onMessage);
    child.once('exit', (code) => reject(new Error(`rfid generator exited with ${code} before "${phase}"`)));
  });
}

/** One run at `readsPerSecond` offered, spread over the four readers. */
export async function rfidIngest(readsPerSecond: number, durationMs: number, opts: { tags?: number; batchMax?: number } = {}): Promise<RfidFigures> {
  const work = mkdtempSync(join(tmpdir(), 'storehub-bench-rfid-'));
  const hub = await startRfidHub(work);
  const generator = fork(join(BENCH_DIR, 'rfid-ingest.js'), ['--generator'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const pid = hub.child.pid as number;
    const plan: GeneratorPlan = {
      url: hub.url,
      readers: hub.readers,
      readsPerSecond,
      warmupMs: WARMUP_MS,
      durationMs,
      tags: opts.tags ?? 500,
      batchMax: opts.batchMax ?? 50,
    };
    const connected = nextMark(generator, 'connected');
    generator.send(plan);
    await connected;
    await scrape(hub.apiPort); // resets the event-loop histogram
    await sleep(2000);
    const idle = await scrape(hub.apiPort);
    const started = nextMark(generator, 'start');
    const ended = nextMark(generator, 'end');
    const finished = nextMark(generator, 'done');
    generator.send({ go: true });
    const s0 = await started;
    const m0 = await scrape(hub.apiPort);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    const s1 = await ended;
    const m1 = await scrape(hub.apiPort);
    const cpu1 = cpuSeconds(pid);
    const seconds = (performance.now() - t0) / 1000;
    const done = await finished;
    // let the hub catch up with what was acknowledged, then count
    let last = await scrape(hub.apiPort);
    for (let waited = 0; waited < CATCH_UP_MS && last.reads + last.rejected < done.reads; waited += 200) {
      await sleep(200);
      last = await scrape(hub.apiPort);
    }
    return {
      offeredReadsPerSecond: readsPerSecond,
      seconds,
      sentPerSecond: (s1.reads - s0.reads) / seconds,
      processedPerSecond: (m1.reads - m0.reads) / seconds,
      hubCpuCores: (cpu1 - cpu0) / seconds,
      eventLoopP99Ms: m1.lagP99 * 1000,
      eventLoopMaxMs: m1.lagMax * 1000,
      readToEventP50Ms: latencyPercentileMs(m0, m1, 50),
      readToEventP99Ms: latencyPercentileMs(m0, m1, 99),
      idleEventLoopP99Ms: idle.lagP99 * 1000,
      sentTotal: done.reads,
      processedTotal: last.reads,
      rejectedTotal: last.rejected,
      droppedBySimulators: done.dropped,
      simulatorErrors: done.errors,
      lost: Math.max(0, done.reads - last.reads - last.rejected),
      mqttMessagesPerSecond: (s1.messages - s0.messages) / seconds,
    };
  } finally {
    if (generator.exitCode === null) generator.kill();
    hub.child.kill('SIGTERM');
    await waitExit(hub.child);
    rmSync(work, { recursive: true, force: true });
  }
}
