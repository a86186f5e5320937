/**
 * Periodic store housekeeping: WAL checkpoints on a worker thread, the disk budget (and its
 * metrics) every second, pruning the message journal past its retention every ten minutes.
 * Timers are unref'd so they never hold the process open.
 */
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { HubMetrics } from '../observability/metrics.js';
import { Checkpointer } from './checkpointer.js';
import type { Store } from './store.js';

const BUDGET_INTERVAL_MS = 1_000;
const PRUNE_INTERVAL_MS = 10 * 60_000;
/**
 * Rows deleted per statement when pruning. One DELETE of ten minutes of traffic can take seconds;
 * in chunks, the journal thread commits between them (it waits for the write lock at most its
 * busy timeout) and the event loop runs between them.
 */
const PRUNE_CHUNK_ROWS = 10_000;

export class StoreMaintenance {
  readonly name = 'store-maintenance';
  private timers: NodeJS.Timeout[] = [];
  private wasExceeded = false;
  private checkpointer: Checkpointer | undefined;
  private pruning: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: () => Store,
    private readonly config: HubConfig['database'],
    private readonly metrics: HubMetrics,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const store = this.store();
    this.metrics.storeBudgetBytes.set(this.config.maxBytes);
    store.journal.onCommit = (count, seconds) => {
      this.metrics.journalCommitted.inc(count);
      this.metrics.journalBatch.observe(count);
      this.metrics.journalCommitSeconds.observe(seconds);
    };
    this.checkpointer = new Checkpointer(store.file, this.config.synchronous);
    this.checkpointer.start();
    this.stopped = false;
    this.checkBudget();
    void this.prune();
    this.timers = [setInterval(() => this.checkBudget(), BUDGET_INTERVAL_MS), setInterval(() => void this.prune(), PRUNE_INTERVAL_MS)];
    for (const t of this.timers) t.unref();
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.stopped = true;
    await this.pruning;
    await this.checkpointer?.stop();
    this.checkpointer = undefined;
  }

  checkBudget(): void {
    const state = this.store().budget.refresh();
    this.metrics.storeBytes.set(state.usedBytes);
    if (this.checkpointer) {
      this.metrics.storeWalFrames.set(this.checkpointer.stats.lastWalFrames);
      this.metrics.storeCheckpointFailures.set(this.checkpointer.stats.failures);
    }
    this.metrics.storeBudgetExceeded.set(state.exceeded ? 1 : 0);
    if (state.exceeded && !this.wasExceeded) {
      this.log.error(
        { code: 'HUB_ERR_STORE_DISK_BUDGET', ...state },
        'disk budget reached: device messages are refused (not acknowledged) until space is freed',
      );
    } else if (!state.exceeded && this.wasExceeded) {
      this.log.warn({ usedBytes: state.usedBytes }, 'disk budget back under its limit; ingest resumed');
    }
    this.wasExceeded = state.exceeded;
  }

  /** Deletes journaled messages past retention, a chunk at a time; one run at once. */
  prune(): Promise<void> {
    this.pruning ??= this.pruneInChunks().finally(() => (this.pruning = undefined));
    return this.pruning;
  }

  private async pruneInChunks(): Promise<void> {
    const cutoff = Date.now() - this.config.ingestRetentionHours * 3_600_000;
    let removed = 0;
    try {
      for (;;) {
        const n = this.store().journal.prune(cutoff, PRUNE_CHUNK_ROWS);
        removed += n;
        if (n < PRUNE_CHUNK_ROWS || this.stopped) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.log.error({ err, removed }, 'pruning journaled device messages failed; the next run tries again');
    }
    if (removed > 0) this.log.info({ removed }, 'pruned journaled device messages past retention');
  }
}
