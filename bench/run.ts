/**
 * `npm run bench`: runs every benchmark scenario, prints a table and writes bench/results/*.json.
 * Peers run side by side in the same run on the same machine, so the ratios are what to read.
 * BENCH_SECONDS shortens or lengthens each load phase (default 10).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { hubIngest, type IngestFigures, peerIngest, sqliteCeiling, startAndIdle } from './ingest.js';
import { BENCH_DIR } from './processes.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const durationMs = seconds * 1000;
const RATE = 5000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

function machine() {
  const c = cpus();
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version, platform: process.platform };
}

/**
 * Lets the previous scenario's dirty pages reach the disk before the next one starts: a run that
 * wrote a few hundred MB otherwise leaves writeback that slows the next run's fsyncs.
 */
function settle(): void {
  spawnSync('sync');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2000);
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

async function main(): Promise<void> {
  const m = machine();
  process.stdout.write(`storehub benchmarks on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; ${seconds} s per load phase\n\n`);

  // Max-rate runs alternate targets three times and keep each target's median run: on a shared
  // 2-core box a single run can be off by 20% either way.
  const ingest: IngestFigures[] = [];
  const maxRuns: IngestFigures[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const run of [() => hubIngest('max', 0, durationMs), () => peerIngest('max', 0, durationMs)]) {
      settle();
      const r = await run();
      maxRuns.push(r);
      process.stdout.write(`  round ${round + 1}: ${r.target} max ${fmt(r.durablePerSecond)} durable msgs/s\n`);
    }
  }
  for (const target of ['storehub', 'mosquitto+subscriber'] as const) {
    const runs = maxRuns.filter((r) => r.target === target).sort((a, b) => a.durablePerSecond - b.durablePerSecond);
    ingest.push(runs[Math.floor(runs.length / 2)] as IngestFigures);
  }
  // Latency at a fixed rate, also alternating and kept by median p99: the hub's ack waits for an
  // fsync, so a hiccup of this VM's shared disk shows up in one run and not the next.
  const rateRuns: IngestFigures[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const run of [() => hubIngest('rate', RATE, durationMs), () => peerIngest('rate', RATE, durationMs)]) {
      settle();
      const r = await run();
      rateRuns.push(r);
      process.stdout.write(`  round ${round + 1}: ${r.target} at ${fmt(RATE)}/s p99 ${fmt(r.p99Ms, 2)} ms\n`);
    }
  }
  for (const target of ['storehub', 'mosquitto+subscriber'] as const) {
    const runs = rateRuns.filter((r) => r.target === target).sort((a, b) => a.p99Ms - b.p99Ms);
    ingest.push(runs[Math.floor(runs.length / 2)] as IngestFigures);
  }
  settle();
  const normal = await hubIngest('rate', RATE, durationMs, 'normal');
  ingest.push(normal);
  const ceiling = sqliteCeiling();
  const lifecycle = await startAndIdle();

  const hubMax = ingest.find((r) => r.target === 'storehub' && r.mode === 'max') as IngestFigures;
  const peerMax = ingest.find((r) => r.target !== 'storehub' && r.mode === 'max') as IngestFigures;
  const hubRate = ingest.find((r) => r.target === 'storehub' && r.mode === 'rate') as IngestFigures;
  const sortedStart = [...lifecycle.startToReadyMs].sort((a, b) => a - b);
  const startMedian = sortedStart[Math.floor(sortedStart.length / 2)] as number;

  const lines = [
    `| scenario (max rate: median of ${ROUNDS} alternating runs) | target | acked msgs/s | durable msgs/s | p50 ack ms | p99 ack ms | server CPU cores | lost |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ingest.map(
      (r) =>
        `| QoS 1 ${r.mode === 'max' ? 'max rate' : `at ${fmt(r.offeredRate ?? 0)}/s`} | ${r.target}${r.synchronous === 'normal' ? ' (synchronous=normal)' : ''} | ${fmt(r.ackedPerSecond)} | ${fmt(r.durablePerSecond)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.serverCpuCores, 2)} | ${r.lost} |`,
    ),
    `| ceiling | bare better-sqlite3, 500-row transactions | | ${fmt(ceiling.rowsPerSecond)} | | | | |`,
    '',
    '| figure | value | target |',
    '| --- | ---: | --- |',
    `| durable ingest, storehub / peer | ${fmt(hubMax.durablePerSecond / peerMax.durablePerSecond, 2)}x | >= 1.5x |`,
    `| durable ingest, storehub | ${fmt(hubMax.durablePerSecond)} msgs/s | >= 15,000 |`,
    `| durable ingest, storehub / SQLite ceiling | ${fmt(hubMax.durablePerSecond / ceiling.rowsPerSecond, 2)}x | |`,
    `| p99 publish-to-ack at ${fmt(RATE)} msgs/s (median of ${ROUNDS}; runs: ${rateRuns
      .filter((r) => r.target === 'storehub')
      .map((r) => fmt(r.p99Ms, 1))
      .join(', ')}) | ${fmt(hubRate.p99Ms, 2)} ms | < 20 ms |`,
    `| start to ready (median of ${sortedStart.length}) | ${fmt(startMedian)} ms | < 1,500 ms |`,
    `| idle RSS, storehub | ${fmt(lifecycle.idleRssBytes / 1024 ** 2, 1)} MB | < 120 MB |`,
    `| idle RSS, mosquitto + subscriber | ${fmt(lifecycle.peerIdleRssBytes / 1024 ** 2, 1)} MB | |`,
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);

  const dir = join(BENCH_DIR, '..', '..', 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString();
  writeFileSync(
    join(dir, 'ingest.json'),
    `${JSON.stringify({ stamp, machine: m, secondsPerPhase: seconds, ingest, maxRuns, rateRuns, ceiling, lifecycle: { ...lifecycle, startToReadyMedianMs: startMedian }, table: lines }, null, 2)}\n`,
  );
  process.stdout.write(`\nwrote ${join(dir, 'ingest.json')}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack}\n`);
  process.exit(1);
});
