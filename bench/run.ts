/**
 * `npm run bench`: runs every benchmark scenario, prints a table and writes bench/results/*.json.
 * Peers run side by side in the same run on the same machine, so the ratios are what to read.
 * BENCH_SECONDS shortens or lengthens each load phase (default 10).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { hubIngest, type IngestFigures, peerIngest, sqliteCeiling, startAndIdle } from './ingest.js';
import { BENCH_DIR } from './processes.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const durationMs = seconds * 1000;
const RATE = 5000;

function machine() {
  const c = cpus();
  return { cpu: c[0]?.model ?? 'unknown', cores: c.length, memoryGiB: Math.round(totalmem() / 1024 ** 3), node: process.version, platform: process.platform };
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');

async function main(): Promise<void> {
  const m = machine();
  process.stdout.write(`storehub benchmarks on ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; ${seconds} s per load phase\n\n`);

  const ingest: IngestFigures[] = [];
  for (const run of [
    () => hubIngest('max', 0, durationMs),
    () => peerIngest('max', 0, durationMs),
    () => hubIngest('rate', RATE, durationMs),
    () => peerIngest('rate', RATE, durationMs),
  ]) {
    const r = await run();
    ingest.push(r);
    process.stdout.write(`  done: ${r.target} ${r.mode}\n`);
  }
  const ceiling = sqliteCeiling();
  const lifecycle = await startAndIdle();

  const hubMax = ingest.find((r) => r.target === 'storehub' && r.mode === 'max') as IngestFigures;
  const peerMax = ingest.find((r) => r.target !== 'storehub' && r.mode === 'max') as IngestFigures;
  const hubRate = ingest.find((r) => r.target === 'storehub' && r.mode === 'rate') as IngestFigures;
  const sortedStart = [...lifecycle.startToReadyMs].sort((a, b) => a - b);
  const startMedian = sortedStart[Math.floor(sortedStart.length / 2)] as number;

  const lines = [
    '| scenario | target | acked msgs/s | durable msgs/s | p50 ack ms | p99 ack ms | server CPU cores | lost |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...ingest.map(
      (r) =>
        `| QoS 1 ${r.mode === 'max' ? 'max rate' : `at ${fmt(r.offeredRate ?? 0)}/s`} | ${r.target} | ${fmt(r.ackedPerSecond)} | ${fmt(r.durablePerSecond)} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.serverCpuCores, 2)} | ${r.lost} |`,
    ),
    `| ceiling | bare better-sqlite3, 500-row transactions | | ${fmt(ceiling.rowsPerSecond)} | | | | |`,
    '',
    '| figure | value | target |',
    '| --- | ---: | --- |',
    `| durable ingest, storehub / peer | ${fmt(hubMax.durablePerSecond / peerMax.durablePerSecond, 2)}x | >= 1.5x |`,
    `| durable ingest, storehub | ${fmt(hubMax.durablePerSecond)} msgs/s | >= 15,000 |`,
    `| durable ingest, storehub / SQLite ceiling | ${fmt(hubMax.durablePerSecond / ceiling.rowsPerSecond, 2)}x | |`,
    `| p99 publish-to-ack at ${fmt(RATE)} msgs/s | ${fmt(hubRate.p99Ms, 2)} ms | < 20 ms |`,
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
    `${JSON.stringify({ stamp, machine: m, secondsPerPhase: seconds, ingest, ceiling, lifecycle: { ...lifecycle, startToReadyMedianMs: startMedian }, table: lines }, null, 2)}\n`,
  );
  process.stdout.write(`\nwrote ${join(dir, 'ingest.json')}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench failed: ${err.stack}\n`);
  process.exit(1);
});
