/**
 * The journal of device messages the broker acknowledges. This is where "a QoS 1 message is
 * acknowledged only after what it carries is committed" is kept: the broker hands each message here
 * from authorizePublish (the one aedes hook that runs before the PUBACK is written) and calls back
 * only after the transaction holding it has committed.
 *
 * Group commit: appends made in one turn of the event loop (all packets parsed from every socket
 * that was readable) are committed together in one transaction on the next setImmediate, so one
 * fsync covers hundreds of messages. A batch is capped so one turn cannot hold the loop for long.
 */
import type Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import type { DiskBudget } from './disk-budget.js';

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
  rejectedBudget: number;
  failed: number;
}

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
  readonly stats: JournalStats = { committed: 0, batches: 0, rejectedBudget: 0, failed: 0 };
  /** Observers told after each commit (metrics); never on the commit path's critical section. */
  onCommit?: (count: number, seconds: number) => void;

  constructor(
    private readonly db: Database.Database,
    private readonly budget: DiskBudget,
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

  get pending(): number {
    return this.queue.length;
  }

  append(message: JournalMessage, done: Done): void {
    if (this.budget.exceeded) {
      this.stats.rejectedBudget++;
      done(new HubError('HUB_ERR_STORE_DISK_BUDGET', this.budget.current.reason));
      return;
    }
    this.queue.push(message);
    this.callbacks.push(done);
    if (this.queue.length >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Commits everything queued and then answers each caller, in order. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    const callbacks = this.callbacks;
    this.queue = [];
    this.callbacks = [];
    const started = process.hrtime.bigint();
    let error: Error | undefined;
    try {
      this.writeBatch(batch);
      this.stats.committed += batch.length;
      this.stats.batches++;
    } catch (cause) {
      this.stats.failed += batch.length;
      error = new HubError('HUB_ERR_INTERNAL', `journal commit failed: ${(cause as Error).message}`, { cause });
    }
    this.onCommit?.(batch.length, Number(process.hrtime.bigint() - started) / 1e9);
    for (const cb of callbacks) cb(error);
  }

  /** Deletes journaled messages received before `cutoff`; returns how many. */
  prune(cutoff: number): number {
    return this.db.prepare('DELETE FROM device_messages WHERE received_at < ?').run(cutoff).changes;
  }
}
