/**
 * The journal's thread (started by journal-thread.ts). It has its own connection to hub.db, used
 * for nothing but device_messages, and runs the group commit and WAL syncs of message-journal.ts
 * here, off the hub's event loop. Messages arrive in columns (journal-batch.ts); each batch is
 * answered by id once it is durable, and the answers of one sync go back in one message.
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { HubError } from '../sdk/errors.js';
import { BUSY_TIMEOUT_MS } from './busy-timeout.js';
import { type FromJournal, readBatch, type ToJournal } from './journal-batch.js';
import { MessageJournal, type WalSyncer } from './message-journal.js';
import { WalSync } from './wal-sync.js';

export interface JournalWorkerData {
  file: string;
  synchronous: 'full' | 'normal';
  /** Answers go back on this port, so that close() can read them synchronously. */
  answers: MessagePort;
  /** CLOSED when the thread has answered everything and closed its connection, FAILED when it cannot go on. */
  closed: Int32Array;
}

export const CLOSED = 1;
export const FAILED = 2;

const { file, synchronous, answers, closed } = workerData as JournalWorkerData;

/** Tells a hub thread blocked in close() at once that this thread is gone, instead of after its timeout. */
function signal(state: number): void {
  Atomics.store(closed, 0, state);
  Atomics.notify(closed, 0);
}
process.on('uncaughtException', (err) => {
  signal(FAILED);
  throw err; // the thread ends; the hub's thread sees 'error' and stops the journal
});

function openConnection(): Database.Database {
  try {
    const db = new Database(file, { fileMustExist: true });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // NORMAL: with synchronous=full the WAL is synced after each commit by WalSync, off this thread
    db.pragma('synchronous = NORMAL');
    db.pragma('wal_autocheckpoint = 0'); // the checkpointer thread does that
    return db;
  } catch (err) {
    signal(FAILED);
    throw err;
  }
}

const db = openConnection();
const wal = synchronous === 'full' ? new WalSync(`${file}-wal`) : undefined;
// the hub's thread keeps the disk budget and refuses messages past it before they come here
const neverFull = { exceeded: false, current: { usedBytes: 0, maxBytes: 0, filesystemFreeBytes: 0, exceeded: false, reason: '' } };
const journal = new MessageJournal(db, neverFull, wal, true);

let answered: number[] = [];
let failed: [number, string, string][] = [];
let commits: [number, number][] = [];
let posting = false;

/** Sends what was answered since the last message: one message per sync, not one per batch. */
function postAnswers(): void {
  posting = false;
  if (answered.length === 0 && commits.length === 0) return;
  const message: FromJournal = { t: 'answers', ids: answered, failed, commits, stats: { ...journal.stats } };
  answered = [];
  failed = [];
  commits = [];
  answers.postMessage(message);
}

function answer(id: number, err: Error | undefined): void {
  answered.push(id);
  if (err) failed.push([id, (err as HubError).code ?? 'HUB_ERR_INTERNAL', err.message]);
  if (!posting) {
    posting = true;
    queueMicrotask(postAnswers);
  }
}

journal.onCommit = (count, seconds) => commits.push([count, seconds]);
journal.onSyncFailure = (err) => answers.postMessage({ t: 'stopped', code: err.code, message: err.message } satisfies FromJournal);

parentPort?.on('message', (m: ToJournal) => {
  if (m.t === 'batch') {
    journal.appendMany(readBatch(m.bytes, m.length, m.count), (err) => answer(m.id, err));
  } else if (m.t === 'close') {
    journal.flush();
    closeAfterSyncs();
  } else if (m.t === 'fail-syncs') {
    // Fault injection for tests: the WAL's disk fails from now on. As on Linux, the error reaches
    // the syncs through descriptors open when it happened; a sync through a fresh one succeeds.
    const failing: WalSyncer = {
      sync: (done) => setImmediate(() => done(Object.assign(new Error(m.message), { code: 'EIO' }))),
      syncNow: () => {},
    };
    (journal as unknown as { wal: WalSyncer }).wal = failing;
  }
});

/**
 * The last sync waits for those still running. One of them may have failed already, its callback
 * not yet run: Linux reports a writeback error once per open file description, so a sync through a
 * fresh descriptor could succeed and call durable what that one lost. Once they have ended (a
 * failure stops the journal and fails what waits), syncNow covers the rest. The hub's thread is
 * blocked in close() meanwhile, for at most its timeout.
 */
function closeAfterSyncs(): void {
  if (journal.syncsRunning > 0) {
    setTimeout(closeAfterSyncs, 1);
    return;
  }
  try {
    journal.syncNow();
    postAnswers();
    wal?.close();
    db.close();
  } finally {
    signal(CLOSED);
    parentPort?.close();
    answers.close();
  }
}
