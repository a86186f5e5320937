/**
 * The journal of device messages the broker acknowledges. This is where "a QoS 1 message is
 * acknowledged only after what it carries is committed" is kept: the broker hands each message here
 * from authorizePublish (the one aedes hook that runs before the PUBACK is written) and calls back
 * only after the transaction holding it has committed.
 *
 * Group commit: appends made in one turn of the event loop (all packets parsed from every socket
 * that was readable) are committed together in one transaction on the next setImmediate, so one
 * fsync covers hundreds of messages. A batch is capped so one turn cannot hold the loop for long.
 *
 * Given a WAL syncer (database.synchronous=full) the commit itself does not wait for the disk: it runs
 * with synchronous=NORMAL and the WAL is then fdatasync'ed on libuv's thread pool (wal-sync.ts);
 * callers are answered when a sync that started after their commit has finished. The event loop
 * goes on parsing and committing the next batch while the disk works, up to two syncs in flight,
 * each covering every batch committed before it started. The guarantee is synchronous=FULL's.
 */
import type Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import type { DiskBudget } from './disk-budget.js';
import type { SyncDone } from './wal-sync.js';

export interface JournalMessage {
  deviceId: string;
  topic: string;
  payload: Buffer;
  qos: number;
  receivedAt: number;
}

type Done = (err?: Error) => void;

export interface JournalStats {
  committed: number;
  batches: number;
  /** WAL syncs run (each covers every batch committed before it started). */
  syncs: number;
  rejectedBudget: number;
  failed: number;
}

/** How committed frames are made durable before callers are answered. */
export interface WalSyncer {
  sync(done: SyncDone): void;
  syncNow(): void;
}

/** A committed batch waiting for a sync that makes it durable. */
interface Committed {
  /** Commit order: a sync covers every batch up to the last one committed when it started. */
  seq: number;
  callbacks: Done[];
  count: number;
  started: bigint;
}

/**
 * WAL syncs allowed in flight at once. With one, a batch committed just after a sync started waits
 * for that sync and then its own (1.5 sync times on average); with two, its sync starts at once
 * and the kernel merges overlapping flushes of the same file.
 */
const MAX_SYNCS_IN_FLIGHT = 2;

const MAX_BATCH = 4096;
/** Rows per multi-row INSERT: one statement step for many rows is cheaper than one per row. */
const ROWS_PER_INSERT = 32;
const COLUMNS = '(device_id, topic, payload, qos, received_at)';

export class MessageJournal {
  private queue: JournalMessage[] = [];
  private callbacks: Done[] = [];
  private scheduled = false;
  private readonly insert;
  private readonly writeBatch;
  /** Committed and not yet answered, in commit order. */
  private unanswered: Committed[] = [];
  private lastCommitted = 0;
  /** The last batch a started sync covers. */
  private lastCovered = 0;
  private syncsInFlight = 0;
  private settledWaiters: (() => void)[] = [];
  /** Set by the first failed WAL sync: from then on the journal takes nothing (see stop()). */
  private stoppedBy: HubError | undefined;
  readonly stats: JournalStats = { committed: 0, batches: 0, syncs: 0, rejectedBudget: 0, failed: 0 };
  /** Told once, when a failed WAL sync stops the journal: the hub exits so the database is recovered. */
  onSyncFailure?: (err: HubError) => void;
  /** Observers told once a batch is durable (metrics), with the seconds from commit start. */
  onCommit?: (count: number, seconds: number) => void;

  /**
   * `wal` given: commits don't fsync, the WAL is synced off the event loop before answering.
   * `ownsConnection`: the connection is the journal's alone (its thread, journal-thread.ts) and is
   * opened with synchronous=NORMAL, so commits need not switch it to NORMAL and back.
   */
  constructor(
    private readonly db: Database.Database,
    private readonly budget: Pick<DiskBudget, 'exceeded' | 'current'>,
    private readonly wal?: WalSyncer,
    private readonly ownsConnection = false,
  ) {
    this.insert = db.prepare(`INSERT INTO device_messages ${COLUMNS} VALUES (?, ?, ?, ?, ?)`);
    const insertMany = db.prepare(`INSERT INTO device_messages ${COLUMNS} VALUES ${Array(ROWS_PER_INSERT).fill('(?, ?, ?, ?, ?)').join(', ')}`);
    const args: unknown[] = new Array(ROWS_PER_INSERT * 5);
    this.writeBatch = db.transaction((batch: JournalMessage[]) => {
      let i = 0;
      for (; i + ROWS_PER_INSERT <= batch.length; i += ROWS_PER_INSERT) {
        for (let j = 0; j < ROWS_PER_INSERT; j++) {
          const m = batch[i + j] as JournalMessage;
          args[j * 5] = m.deviceId;
          args[j * 5 + 1] = m.topic;
          args[j * 5 + 2] = m.payload;
          args[j * 5 + 3] = m.qos;
          args[j * 5 + 4] = m.receivedAt;
        }
        insertMany.run(args);
      }
      for (; i < batch.length; i++) {
        const m = batch[i] as JournalMessage;
        this.insert.run(m.deviceId, m.topic, m.payload, m.qos, m.receivedAt);
      }
    });
  }

  /** Appended, not yet committed. */
  get pending(): number {
    return this.queue.length;
  }

  /** Committed, not yet known to be durable (waiting for a WAL sync). */
  get unsyncedBatches(): number {
    return this.unanswered.length;
  }

  /** Milliseconds the oldest committed, unanswered batch has waited for the disk (0: none waits). */
  get oldestWaitMs(): number {
    const oldest = this.unanswered[0];
    return oldest ? Number(process.hrtime.bigint() - oldest.started) / 1e6 : 0;
  }

  /** WAL syncs started and not yet finished. */
  get syncsRunning(): number {
    return this.syncsInFlight;
  }

  /** Why the journal takes no more messages (a WAL sync failed), or undefined while it works. */
  get stopped(): HubError | undefined {
    return this.stoppedBy;
  }

  append(message: JournalMessage, done: Done): void {
    this.appendMany([message], done);
  }

  /** Appends messages that share one answer: `done` runs once, when all of them are durable. */
  appendMany(messages: JournalMessage[], done: Done): void {
    if (this.stoppedBy) {
      this.stats.failed += messages.length;
      done(this.stoppedBy);
      return;
    }
    if (this.budget.exceeded) {
      this.stats.rejectedBudget += messages.length;
      done(new HubError('HUB_ERR_STORE_DISK_BUDGET', this.budget.current.reason));
      return;
    }
    for (const m of messages) this.queue.push(m);
    this.callbacks.push(done);
    if (this.queue.length >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Commits everything queued; callers are answered once it is durable, in order. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    const callbacks = this.callbacks;
    this.queue = [];
    this.callbacks = [];
    if (this.stoppedBy) {
      this.stats.failed += batch.length;
      for (const cb of callbacks) cb(this.stoppedBy);
      return;
    }
    const started = process.hrtime.bigint();
    let error: Error | undefined;
    try {
      // SQLite applies `PRAGMA synchronous` when the statement is prepared, so it cannot be a
      // prepared statement run later: db.pragma() prepares it each time.
      const switchToNormal = this.wal && !this.ownsConnection;
      if (switchToNormal) this.db.pragma('synchronous = NORMAL');
      try {
        this.writeBatch(batch);
      } finally {
        if (switchToNormal) this.db.pragma('synchronous = FULL');
      }
      this.stats.committed += batch.length;
      this.stats.batches++;
    } catch (cause) {
      this.stats.failed += batch.length;
      error = new HubError('HUB_ERR_INTERNAL', `journal commit failed: ${(cause as Error).message}`, { cause });
    }
    if (error || !this.wal) {
      this.answer({ seq: 0, callbacks, count: batch.length, started }, error);
      return;
    }
    this.unanswered.push({ seq: ++this.lastCommitted, callbacks, count: batch.length, started });
    this.syncSoon();
  }

  /** Resolves when every committed batch has been answered (shutdown waits for this). */
  settled(): Promise<void> {
    if (this.unsyncedBatches === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /** Syncs on the calling thread and answers everything committed (the store is closing). */
  syncNow(): void {
    if (!this.wal || this.unanswered.length === 0) return;
    try {
      this.wal.syncNow();
      this.stats.syncs++;
    } catch (cause) {
      this.stop(syncError(cause));
      return;
    }
    this.lastCovered = this.lastCommitted;
    this.answerUpTo(this.lastCommitted, undefined);
  }

  /**
   * Starts a sync for what no started sync covers, if fewer than MAX_SYNCS_IN_FLIGHT run. A sync
   * makes durable everything written before it started, so when one ends every batch up to the
   * last it covers is answered, also batches an earlier sync still in flight covers. A failed
   * sync stops the journal (stop()).
   */
  private syncSoon(): void {
    const wal = this.wal;
    if (!wal || this.stoppedBy || this.syncsInFlight >= MAX_SYNCS_IN_FLIGHT || this.lastCovered === this.lastCommitted) return;
    const covers = this.lastCommitted;
    this.lastCovered = covers;
    this.syncsInFlight++;
    wal.sync((cause) => {
      this.syncsInFlight--;
      this.stats.syncs++;
      if (cause) {
        this.stop(syncError(cause));
        return;
      }
      this.answerUpTo(covers, undefined);
      this.syncSoon();
    });
  }

  /**
   * After a failed fsync nothing written to the WAL since the last good sync can be trusted: Linux
   * may have dropped the dirty pages and marked them clean, so a later sync that succeeds says
   * nothing about them, and SQLite's recovery discards every WAL frame after a lost one (frame
   * checksums are chained). So every batch still waiting is answered with the error, whichever
   * sync covers it, the journal takes nothing more, and the hub is told to exit: on restart SQLite
   * recovers the database from what is on the disk, and devices resend what was not acknowledged.
   */
  private stop(error: HubError): void {
    if (this.stoppedBy) return;
    this.stoppedBy = error;
    this.answerUpTo(this.lastCommitted, error);
    this.onSyncFailure?.(error);
  }

  /** Answers, in order, every batch committed up to `seq` that is still waiting. */
  private answerUpTo(seq: number, error: Error | undefined): void {
    let n = 0;
    while (n < this.unanswered.length && (this.unanswered[n] as Committed).seq <= seq) n++;
    for (const c of this.unanswered.splice(0, n)) {
      if (error) this.stats.failed += c.count;
      this.answer(c, error);
    }
    if (this.unanswered.length === 0) for (const resolve of this.settledWaiters.splice(0)) resolve();
  }

  private answer(c: Committed, error: Error | undefined): void {
    if (!error) this.onCommit?.(c.count, Number(process.hrtime.bigint() - c.started) / 1e9);
    for (const cb of c.callbacks) cb(error);
  }

  /** Deletes journaled messages received before `cutoff`; returns how many. */
  prune(cutoff: number): number {
    return this.db.prepare('DELETE FROM device_messages WHERE received_at < ?').run(cutoff).changes;
  }
}

function syncError(cause: unknown): HubError {
  return new HubError('HUB_ERR_STORE_SYNC', `journal sync failed: ${(cause as Error).message}`, { cause });
}
