/**
 * The store's disk budget. "Used" is the live pages of the database plus the WAL file, so space freed
 * by pruning counts as free again even though SQLite keeps the file at its high-water mark.
 * The filesystem's own free space is checked too: a full disk fails commits in worse ways than a budget.
 */
import { statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type Database from 'better-sqlite3';
import { BUSY_TIMEOUT_MS } from './database.js';

export interface BudgetState {
  usedBytes: number;
  maxBytes: number;
  filesystemFreeBytes: number;
  exceeded: boolean;
  reason?: string;
}

export const FILESYSTEM_RESERVE_BYTES = 64 * 1024 * 1024;

export class DiskBudget {
  private state: BudgetState;
  constructor(
    private readonly db: Database.Database,
    private readonly file: string,
    readonly maxBytes: number,
  ) {
    this.state = { usedBytes: 0, maxBytes, filesystemFreeBytes: Number.POSITIVE_INFINITY, exceeded: false };
    this.refresh();
  }

  get exceeded(): boolean {
    return this.state.exceeded;
  }

  get current(): BudgetState {
    return this.state;
  }

  refresh(): BudgetState {
    const { state, walBytes } = this.measure();
    this.state = state;
    if (state.exceeded && walBytes > 0) {
      // The WAL file keeps its high-water size after checkpoints, so it would go on counting pages that
      // are already in the database (or freed by pruning) until restart. Give that space back before
      // refusing writes, and measure again.
      // Without waiting: TRUNCATE waits for every reader (a backup, a CLI export) up to the busy
      // timeout, on the event loop, and this runs every second. A busy checkpoint just tries again
      // at the next refresh.
      this.db.pragma('busy_timeout = 0');
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } finally {
        this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      }
      this.state = this.measure().state;
    }
    return this.state;
  }

  private measure(): { state: BudgetState; walBytes: number } {
    const pageSize = this.db.pragma('page_size', { simple: true }) as number;
    const pages = this.db.pragma('page_count', { simple: true }) as number;
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    let walBytes = 0;
    try {
      walBytes = statSync(`${this.file}-wal`).size;
    } catch {
      walBytes = 0;
    }
    const usedBytes = (pages - free) * pageSize + walBytes;
    let filesystemFreeBytes = Number.POSITIVE_INFINITY;
    try {
      const fs = statfsSync(dirname(this.file));
      filesystemFreeBytes = fs.bavail * fs.bsize;
    } catch {
      // statfs is best effort: some filesystems do not report it
    }
    let reason: string | undefined;
    if (usedBytes >= this.maxBytes) reason = `database uses ${usedBytes} bytes of its ${this.maxBytes}-byte budget`;
    else if (filesystemFreeBytes < FILESYSTEM_RESERVE_BYTES) reason = `filesystem has only ${filesystemFreeBytes} bytes free`;
    return { state: { usedBytes, maxBytes: this.maxBytes, filesystemFreeBytes, exceeded: reason !== undefined, ...(reason ? { reason } : {}) }, walBytes };
  }
}
