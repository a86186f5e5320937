/**
 * The store service: one SQLite connection shared by the hub's repositories, opened at start
 * (integrity check, salvage, migrations) and closed last at stop.
 */
import type Database from 'better-sqlite3';
import { ApiTokens } from './api-tokens.js';
import { type CorruptionReport, openStore, type Synchronous } from './database.js';
import { DeviceCredentials } from './device-credentials.js';
import { DiskBudget } from './disk-budget.js';
import { JournalThread } from './journal-thread.js';

export interface StoreOptions {
  dataDir: string;
  synchronous: Synchronous;
  maxBytes: number;
  mode?: 'daemon' | 'tool';
  /** Told before a salvage of a corrupt file starts. */
  onSalvage?: (reason: string) => void;
}

export interface Incident {
  id: number;
  time: number;
  kind: string;
  detail: unknown;
}

export class Store {
  readonly db: Database.Database;
  readonly file: string;
  readonly hubId: string;
  readonly epoch: number;
  readonly corruption: CorruptionReport | undefined;
  readonly migrationsApplied: number[];
  readonly credentials: DeviceCredentials;
  readonly tokens: ApiTokens;
  readonly budget: DiskBudget;
  readonly journal: JournalThread;

  constructor(options: StoreOptions) {
    const opened = openStore({
      dataDir: options.dataDir,
      synchronous: options.synchronous,
      ...(options.mode ? { mode: options.mode } : {}),
      ...(options.onSalvage ? { onSalvage: options.onSalvage } : {}),
    });
    this.db = opened.db;
    this.file = opened.file;
    this.hubId = opened.hubId;
    this.epoch = opened.hubEpoch;
    this.corruption = opened.corruption;
    this.migrationsApplied = opened.migrationsApplied;
    this.credentials = new DeviceCredentials(this.db);
    this.tokens = new ApiTokens(this.db);
    this.budget = new DiskBudget(this.db, this.file, options.maxBytes);
    beginImmediate(this.db);
    this.journal = new JournalThread(this.db, this.file, this.budget, options.synchronous);
  }

  incidents(limit = 20): Incident[] {
    return (
      this.db.prepare('SELECT id, time, kind, detail FROM incidents ORDER BY id DESC LIMIT ?').all(limit) as {
        id: number;
        time: number;
        kind: string;
        detail: string;
      }[]
    ).map((r) => ({ ...r, detail: JSON.parse(r.detail) as unknown }));
  }

  /** Writes any queued journal messages, checkpoints the WAL and closes the file. */
  close(): void {
    if (!this.db.open) return;
    this.journal.close();
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}

/**
 * Makes every transaction on this connection begin IMMEDIATE. The journal's thread writes to the
 * same file on a connection of its own; a DEFERRED transaction that reads before it writes holds a
 * snapshot, and if that thread commits in between, the first write fails at once with
 * SQLITE_BUSY_SNAPSHOT, with no busy timeout to wait in. IMMEDIATE takes the write lock first, and
 * waits for it. Nested transactions are savepoints either way.
 */
function beginImmediate(db: Database.Database): void {
  const transaction = db.transaction.bind(db);
  db.transaction = ((fn: (...args: unknown[]) => unknown) => {
    const tx = transaction(fn);
    return Object.assign((...args: unknown[]) => tx.immediate(...args), {
      default: tx.immediate,
      deferred: tx.deferred,
      immediate: tx.immediate,
      exclusive: tx.exclusive,
    });
  }) as typeof db.transaction;
}
