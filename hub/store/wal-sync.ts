/**
 * fdatasync of the database's WAL file on libuv's thread pool. A commit made with
 * synchronous=NORMAL has written its frames to the WAL but not synced them; syncing the WAL file
 * afterwards makes every frame written before the sync started durable, which is exactly what
 * synchronous=FULL does inside the commit — except that here the event loop does not wait for the
 * disk. fsync flushes the file (its inode), whichever descriptor wrote the data, so the hub's own
 * descriptor covers SQLite's writes. The WAL keeps its inode for as long as a connection is open
 * (restarts overwrite it, TRUNCATE checkpoints shorten it), and the store closes this first.
 */
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export type SyncDone = (err?: Error) => void;

export class WalSync {
  private fd: number | undefined;
  private inFlight = 0;
  private closing = false;

  constructor(private readonly walFile: string) {}

  /** Starts one fdatasync; `done` runs when it has finished. */
  sync(done: SyncDone): void {
    let fd: number;
    try {
      fd = this.open();
    } catch (err) {
      done(err as Error);
      return;
    }
    this.inFlight++;
    fdatasync(fd, (err) => {
      this.inFlight--;
      if (this.closing && this.inFlight === 0) this.release();
      done(err ?? undefined);
    });
  }

  /** Syncs on the calling thread (shutdown: nothing else is left to do). */
  syncNow(): void {
    fdatasyncSync(this.open());
  }

  close(): void {
    this.closing = true;
    if (this.inFlight === 0) this.release();
  }

  private open(): number {
    if (this.closing) throw new Error('the store is closing');
    this.fd ??= openSync(this.walFile, 'r');
    return this.fd;
  }

  private release(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
