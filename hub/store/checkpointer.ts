/**
 * WAL checkpoints off the ingest path. With SQLite's automatic checkpoint, the commit that crosses
 * the threshold copies the whole WAL into the database and fsyncs it, holding the event loop (and
 * every PUBACK waiting on it) for tens of milliseconds. Here the hub's connection never checkpoints;
 * a worker thread with its own connection runs PASSIVE checkpoints, which never block writers,
 * every second. Once a PASSIVE checkpoint has copied everything, the next writer starts the WAL
 * from its beginning again, so the WAL stays bounded.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const INTERVAL_MS = 1000;

// Plain JavaScript so it runs the same from source (tests) and from dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.sqlite);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
db.pragma('synchronous = ' + (workerData.synchronous === 'FULL' ? 'FULL' : 'NORMAL'));
const run = () => {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: err.message });
  }
};
const timer = setInterval(run, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') { clearInterval(timer); run(); db.close(); parentPort.close(); }
});
`;

export interface CheckpointStats {
  runs: number;
  failures: number;
  lastWalFrames: number;
  lastError?: string;
}

export class Checkpointer {
  private worker: Worker | undefined;
  readonly stats: CheckpointStats = { runs: 0, failures: 0, lastWalFrames: 0 };

  constructor(
    private readonly file: string,
    private readonly synchronous: 'full' | 'normal',
    private readonly intervalMs = INTERVAL_MS,
  ) {}

  start(): void {
    if (this.worker) return;
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // a few statements on a timer: keep the isolate small (it counts in the hub's RSS)
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1, codeRangeSizeMb: 2, stackSizeMb: 1 },
      workerData: { file: this.file, sqlite, synchronous: this.synchronous.toUpperCase(), intervalMs: this.intervalMs },
    });
    worker.on('message', (m: { ok: boolean; log?: number; error?: string }) => {
      this.stats.runs++;
      if (m.ok) this.stats.lastWalFrames = m.log ?? 0;
      else {
        this.stats.failures++;
        this.stats.lastError = m.error;
      }
    });
    worker.on('error', (err) => {
      this.stats.failures++;
      this.stats.lastError = err.message;
    });
    worker.unref();
    this.worker = worker;
  }

  /** Runs a last checkpoint and ends the thread. */
  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage('stop');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    await worker.terminate();
  }
}
