/**
 * A JobService on a real SQLite store in a test directory, with a fake commander, collected logs,
 * status updates and metrics; plus `waitFor`, so tests wait for conditions instead of sleeping.
 */
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import { createLogger } from '../../hub/observability/logger.js';
import { createMetrics, type HubMetrics } from '../../hub/observability/metrics.js';
import type { ImageFetcher } from '../../hub/ops/firmware-image.js';
import { JobService } from '../../hub/ops/job-service.js';
import type { JobStatus } from '../../hub/ops/job-states.js';
import type { Job, JobStatusUpdate } from '../../hub/ops/job-view.js';
import { Store } from '../../hub/store/store.js';
import { FakeCommander } from './fake-commander.js';

export interface OpsRig {
  store: Store;
  service: JobService;
  commander: FakeCommander;
  metrics: HubMetrics;
  updates: JobStatusUpdate[];
  logs: Record<string, unknown>[];
  /** Stops the service and closes the store (a clean stop; the files stay for a reopen). */
  close(): Promise<void>;
}

export interface RigOptions {
  commander?: FakeCommander;
  firmwareKeys?: string[];
  defaultJobTimeoutSeconds?: number;
  fetchImage?: ImageFetcher;
  now?: () => number;
}

export async function openOps(t: Test, dataDir: string, options: RigOptions = {}): Promise<OpsRig> {
  const store = new Store({ dataDir, synchronous: 'normal', maxBytes: 1024 ** 3 });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger({ level: 'debug', pretty: false, destination: sink });
  const metrics = createMetrics();
  const commander = options.commander ?? new FakeCommander();
  const service = new JobService({
    db: store.db,
    commander,
    config: { firmwareKeys: options.firmwareKeys ?? [], defaultJobTimeoutSeconds: options.defaultJobTimeoutSeconds ?? 3600 },
    log,
    metrics,
    stopGraceMs: 100,
    ...(options.fetchImage ? { fetchImage: options.fetchImage } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  const updates: JobStatusUpdate[] = [];
  service.onStatus((u) => updates.push(u));
  await service.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await service.stop();
    store.close();
  };
  t.teardown(close);
  return { store, service, commander, metrics, updates, logs, close };
}

/** Polls until `condition` holds; fails after a generous deadline so a slow machine still passes. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until the job is in one of `statuses` and returns it. */
export async function waitForStatus(service: JobService, id: string, ...statuses: JobStatus[]): Promise<Job> {
  await waitFor(() => statuses.includes(service.get(id)?.status as JobStatus), `job ${id} to be ${statuses.join(' or ')}`);
  return service.get(id) as Job;
}

/** Reads a counter or gauge value with labels. */
export async function metric(metrics: HubMetrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  if (!m) throw new Error(`no metric ${name}`);
  return m.values.filter((v) => Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val)).reduce((sum, v) => sum + v.value, 0);
}
