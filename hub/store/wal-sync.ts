/**
 * fdatasync of the database's WAL file on libuv's thread pool. A commit made with
 * synchronous=NORMAL has written its frames to the WAL but not synced them; syncing the WAL file
 * afterwards makes every frame written before the sync started durable, which is exactly what
 * synchronous=FULL does inside the commit — except that here the event loop does not wait for the
 * disk. fsync flushes the file (its inode), whichever descriptor wrote the data, so the hub's own
 * descriptors cover SQLite's writes. The WAL keeps its inode for as long as a connection is open
 * (restarts overwrite it, TRUNCATE checkpoints shorten it), and the store closes this first.
 *
 * Each sync in flight has a descriptor of its own. Linux reports a writeback error once per open
 * file description: two syncs sharing one descriptor could see the error reach only one of them,
 * and the other — possibly finishing first — would call pages durable that were lost.
 */
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export type SyncDone = (err?: Error) => void;

export class WalSync {
  /** Descriptors not in use by a sync. */
  private readonly idle: number[] = [];
  private inFlight = 0;
  private closing = false;

  constructor(private readonly walFile: string) {}

  /** Starts one fdatasync; `done` runs when it has finished. */
  sync(done: SyncDone): void {
    let fd: number;
    try {
      fd = this.take();
    } catch (err) {
      done(err as Error);
      return;
    }
    this.inFlight++;
    fdatasync(fd, (err) => {
      this.inFlight--;
      this.give(fd);
      done(err ?? undefined);
    });
  }

  /** Syncs on the calling thread (shutdown: nothing else is left to do). */
  syncNow(): void {
    const fd = this.take();
    try {
      fdatasyncSync(fd);
    } finally {
      this.give(fd);
    }
  }

  /** Descriptors open now (one per sync that has run at once, at most). */
  get descriptors(): number {
    return this.idle.length + this.inFlight;
  }

  close(): void {
    this.closing = true;
    for (const fd of this.idle.splice(0)) closeSync(fd);
  }

  private take(): number {
    if (this.closing) throw new Error('the store is closing');
    return this.idle.pop() ?? openSync(this.walFile, 'r');
  }

  private give(fd: number): void {
    if (this.closing) closeSync(fd);
    else this.idle.push(fd);
  }
}
