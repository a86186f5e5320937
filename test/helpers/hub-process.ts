/**
 * Runs the built `storehub` CLI as a child process, as systemd or a user would.
 * `npm test` builds dist/ first (pretest); a single test run needs `npm run build` once.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';

export const CLI = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', '..', 'dist', 'hub', 'cli', 'main.js');

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ProcessConfig {
  file: string;
  apiPort: number;
  brokerPort: number;
  dataDir: string;
}

export async function writeConfig(dir: string, extra: Record<string, unknown> = {}): Promise<ProcessConfig> {
  const apiPort = await freePort();
  const brokerPort = await freePort();
  const file = join(dir, 'store.yaml');
  const dataDir = join(dir, 'data');
  writeFileSync(
    file,
    stringify({
      version: 1,
      store: { id: 'proc-store' },
      dataDir: 'data',
      log: { level: 'info' },
      api: { host: '127.0.0.1', port: apiPort },
      broker: { host: '127.0.0.1', port: brokerPort },
      ...extra,
    }),
  );
  return { file, apiPort, brokerPort, dataDir };
}

export interface RunningHub {
  child: ChildProcess;
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnHub(configFile: string, env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): RunningHub {
  assertBuilt();
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'start', '--config', configFile], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const collect = (chunk: Buffer) => lines.push(...String(chunk).split('\n').filter(Boolean));
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, lines, exited };
}

export async function waitForHealthy(apiPort: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('hub did not become healthy');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs a short CLI command and returns its exit code and output. */
export function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  assertBuilt();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a CLI command without blocking the test's event loop (so several can run at once); `env` replaces process.env. */
export function runCliAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number | null; stdout: string; stderr: string }> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += String(c)));
    child.stderr?.on('data', (c: Buffer) => (stderr += String(c)));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}
