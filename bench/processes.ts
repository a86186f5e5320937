/** Process plumbing for the benchmarks: free ports, CPU and RSS of a pid, forked helpers. */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const BENCH_DIR = import.meta.dirname ?? new URL('.', import.meta.url).pathname;

/**
 * The V8 flags the hub runs with in production: systemd/storehub.service, `npm start` and the
 * storehub bin's shebang all pass them (test/launch-flags.test.ts keeps the four in step), so the
 * benchmarks measure the hub as it runs. V8's default lets the young generation grow to 16 MB
 * semispaces during startup and gives the memory back only once the process has idled a while;
 * 8 MB keeps the hub under its RSS budget from the start at no measurable ingest cost
 * (docs/benchmarks.md).
 */
export const HUB_NODE_FLAGS = ['--max-semi-space-size=8'];

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export function forkScript(name: string): ChildProcess {
  return fork(join(BENCH_DIR, `${name}.js`), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

export function request<T>(child: ChildProcess, message: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    // each request removes the listener it does not need, so polling a child does not pile them up
    const onExit = (code: number | null) => {
      child.off('message', onMessage);
      reject(new Error(`child exited with ${code}`));
    };
    const onMessage = (m: unknown) => {
      child.off('exit', onExit);
      resolve(m as T);
    };
    child.once('message', onMessage);
    child.once('exit', onExit);
    child.send(message as object);
  });
}

export function waitExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Writes the config of a hub under test (loopback ports, logs at warn, rate limits out of the way)
 * and returns where it listens.
 */
export async function writeBenchHubConfig(
  workDir: string,
  options: { dataDir: string; synchronous: 'full' | 'normal'; devices?: unknown[] },
): Promise<{ file: string; apiPort: number; brokerPort: number }> {
  const apiPort = await freePort();
  const brokerPort = await freePort();
  const file = join(workDir, 'hub.yaml');
  writeFileSync(
    file,
    stringify({
      version: 1,
      store: { id: 'bench' },
      dataDir: options.dataDir,
      log: { level: 'warn' },
      api: { host: '127.0.0.1', port: apiPort },
      broker: { host: '127.0.0.1', port: brokerPort, limits: { messagesPerSecond: 100_000, messageBurst: 100_000 } },
      database: { synchronous: options.synchronous, maxBytes: 8 * 1024 ** 3 },
      devices: options.devices ?? [],
    }),
  );
  return { file, apiPort, brokerPort };
}

/** Waits until a hub's /healthz answers 200; fails if the process exits first. */
export async function waitHealthy(apiPort: number, child?: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${apiPort}/healthz`)).ok) return;
    } catch {
      // not yet listening
    }
    if (child && child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error('hub did not become healthy');
}
