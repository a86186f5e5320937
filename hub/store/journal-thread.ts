/**
 * The device message journal as the hub's thread sees it. The commits and WAL syncs run on a
 * thread of their own (journal-worker.ts, message-journal.ts) with its own connection to hub.db:
 * at full ingest they were a quarter of the event loop's time, and the loop also parses every
 * packet and writes every PUBACK, so taking them off it is what lets one hub keep both cores busy.
 *
 * What stays here is cheap: appends made in one turn of the event loop go over as one batch
 * (journal-batch.ts) on the next setImmediate, and their callbacks run, in append order, when the
 * thread says the batch is durable. The promise is unchanged: a caller is answered only after its
 * message is committed and, with synchronous=full, its WAL frames are synced.
 *
 * The broker starts the thread when the first device connects (open()); tools that open the store
 * (device add, token create) never do. Every other transaction on the hub's own connection begins IMMEDIATE (store.ts) because this
 * thread writes to the same file.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { HubError } from '../sdk/errors.js';
import type { DiskBudget } from './disk-budget.js';
import { BatchWriter, type FromJournal } from './journal-batch.js';
import type { JournalWorkerData } from './journal-worker.js';
import type { JournalMessage, JournalStats } from './message-journal.js';

type Done = (err?: Error) => void;

/** A batch on the thread, not yet answered. */
interface InFlight {
  callbacks: Done[];
  count: number;
  sentAt: number;
}

const MAX_BATCH = 4096;
/** How long close() waits for the thread's last commit and sync before failing what is left. */
const CLOSE_TIMEOUT_MS = 10_000;

/** The worker's file next to this one: .ts when running from source (tests), .js from dist. */
const FROM_SOURCE = extname(fileURLToPath(import.meta.url)) === '.ts';
const WORKER_URL = new URL(`./journal-worker${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url);

export class JournalThread {
  private batch = new BatchWriter();
  private callbacks: Done[] = [];
  private scheduled = false;
  private worker: Worker | undefined;
  private port: MessagePort | undefined;
  private closedFlag: Int32Array | undefined;
  private nextId = 1;
  private readonly inFlight = new Map<number, InFlight>();
  private settledWaiters: (() => void)[] = [];
  private stoppedBy: HubError | undefined;
  private closed = false;
  readonly stats: JournalStats = { committed: 0, batches: 0, syncs: 0, rejectedBudget: 0, failed: 0 };
  /** Failures counted here (the thread never took those messages). */
  private failedHere = 0;
  /** Told once when the journal stops (a failed WAL sync, or the thread died): the hub exits. */
  onSyncFailure?: (err: HubError) => void;
  /** Observers told once a group commit is durable (metrics), with the seconds from commit start. */
  onCommit?: (count: number, seconds: number) => void;

  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    private readonly budget: DiskBudget,
    private readonly synchronous: 'full' | 'normal',
  ) {}

  /** Appended, not yet handed to the thread. */
  get pending(): number {
    return this.batch.count;
  }

  /** Handed to the thread, not yet answered. */
  get unsyncedBatches(): number {
    return this.inFlight.size;
  }

  /** Milliseconds the oldest unanswered batch has waited (0: none waits). */
  get oldestWaitMs(): number {
    for (const b of this.inFlight.values()) return performance.now() - b.sentAt;
    return 0;
  }

  /** Why the journal takes no more messages, or undefined while it works. */
  get stopped(): HubError | undefined {
    return this.stoppedBy;
  }

  append(message: JournalMessage, done: Done): void {
    if (this.stoppedBy) {
      this.failedHere++;
      this.stats.failed++;
      done(this.stoppedBy);
      return;
    }
    if (this.budget.exceeded) {
      this.stats.rejectedBudget++;
      done(new HubError('HUB_ERR_STORE_DISK_BUDGET', this.budget.current.reason));
      return;
    }
    this.batch.add(message);
    this.callbacks.push(done);
    if (this.batch.count >= MAX_BATCH) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Hands everything queued to the thread now. */
  flush(): void {
    this.scheduled = false;
    const count = this.batch.count;
    if (count === 0) return;
    const callbacks = this.callbacks;
    this.callbacks = [];
    const id = this.nextId++;
    const { message, transfer } = this.batch.take(id);
    if (this.stoppedBy || this.closed) {
      const err = this.stoppedBy ?? new HubError('HUB_ERR_SERVICE_STOPPED', 'the store is closed');
      this.failedHere += count;
      this.stats.failed += count;
      for (const cb of callbacks) cb(err);
      return;
    }
    this.inFlight.set(id, { callbacks, count, sentAt: performance.now() });
    try {
      const worker = this.start();
      // While answers are owed, the process waits for them; an idle journal keeps nothing alive.
      if (this.inFlight.size === 1) this.port?.ref();
      worker.postMessage(message, transfer);
    } catch (err) {
      this.die(`the journal thread could not take a batch: ${(err as Error).message}`);
    }
  }

  /** Resolves when every batch handed to the thread has been answered (shutdown waits for this). */
  settled(): Promise<void> {
    if (this.inFlight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /** Deletes journaled messages received before `cutoff`, oldest first, at most `limit`; returns how many. */
  prune(cutoff: number, limit = Number.MAX_SAFE_INTEGER): number {
    return this.db
      .prepare('DELETE FROM device_messages WHERE id IN (SELECT id FROM device_messages WHERE received_at < ? ORDER BY received_at LIMIT ?)')
      .run(cutoff, limit).changes;
  }

  /**
   * Hands over what is queued, waits (blocking: the store is closing) for the thread to commit,
   * sync and close its connection, and answers everything. What the thread did not confirm in
   * time is answered with an error: those devices get no PUBACK and send again.
   */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    const worker = this.worker;
    if (!worker || !this.closedFlag || !this.port) return;
    worker.postMessage({ t: 'close' });
    if (!this.stoppedBy) Atomics.wait(this.closedFlag, 0, 0, CLOSE_TIMEOUT_MS);
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) this.receive(m.message as FromJournal);
    this.failAll(new HubError('HUB_ERR_STORE_SYNC', 'the journal thread did not confirm its last commit before the store closed'));
    this.port.close();
    void worker.terminate();
    this.worker = undefined;
  }

  /** Test hook: the thread's WAL syncs fail from now on, as when the disk answers EIO. */
  failSyncsForTest(message: string): void {
    this.start().postMessage({ t: 'fail-syncs', message });
  }

  /**
   * Starts the thread now. The broker does when the first device connects, so that its first
   * message does not wait for the thread to load (and a connection storm, password hashing filling
   * libuv's pool, cannot delay the loading behind it), while a hub no device has reached yet does
   * not carry it. Otherwise the first append starts it.
   */
  open(): void {
    if (!this.closed && !this.stoppedBy) this.start();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const { port1, port2 } = new MessageChannel();
    this.closedFlag = new Int32Array(new SharedArrayBuffer(4));
    const data: JournalWorkerData = { file: this.file, synchronous: this.synchronous, answers: port2, closed: this.closedFlag };
    const worker = new Worker(WORKER_URL, {
      workerData: data,
      transferList: [port2],
      // It holds one batch at a time: a small heap keeps its share of the hub's RSS small. Not
      // from source (tests), where the TypeScript loader alone needs more than that.
      ...(FROM_SOURCE ? {} : { resourceLimits: { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 2 } }),
    });
    port1.on('message', (m: FromJournal) => this.receive(m));
    port1.unref();
    worker.on('error', (err) => {
      if (!this.closed) this.die(`the journal thread failed: ${err.message}`);
    });
    worker.on('exit', (code) => {
      if (!this.closed) this.die(`the journal thread exited (code ${code})`);
    });
    worker.unref();
    this.worker = worker;
    this.port = port1;
    return worker;
  }

  private receive(m: FromJournal): void {
    if (m.t === 'stopped') {
      this.stop(new HubError(m.code as 'HUB_ERR_STORE_SYNC', m.message));
      return;
    }
    this.stats.committed = m.stats.committed;
    this.stats.batches = m.stats.batches;
    this.stats.syncs = m.stats.syncs;
    this.stats.failed = m.stats.failed + this.failedHere;
    for (const [count, seconds] of m.commits) this.onCommit?.(count, seconds);
    const errors = new Map(m.failed.map(([id, code, message]) => [id, new HubError(code as 'HUB_ERR_INTERNAL', message)]));
    for (const id of m.ids) {
      const batch = this.inFlight.get(id);
      if (!batch) continue;
      this.inFlight.delete(id);
      const err = errors.get(id);
      for (const cb of batch.callbacks) cb(err);
    }
    this.settleIfIdle();
  }

  private stop(err: HubError): void {
    if (this.stoppedBy) return;
    this.stoppedBy = err;
    this.onSyncFailure?.(err);
  }

  /** The thread is gone: nothing it had is known to be durable. */
  private die(reason: string): void {
    const err = new HubError('HUB_ERR_STORE_SYNC', reason);
    this.stop(err);
    this.failAll(err);
    this.worker = undefined;
  }

  private failAll(err: HubError): void {
    for (const batch of this.inFlight.values()) {
      this.failedHere += batch.count;
      this.stats.failed += batch.count;
      for (const cb of batch.callbacks) cb(err);
    }
    this.inFlight.clear();
    this.settleIfIdle();
  }

  private settleIfIdle(): void {
    if (this.inFlight.size > 0) return;
    this.port?.unref();
    for (const resolve of this.settledWaiters.splice(0)) resolve();
  }
}
