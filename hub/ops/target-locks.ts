/**
 * One operation at a time per target, first come first served: a device command never lands in the
 * middle of that device's firmware update, and two desired-state jobs never apply at once. Each
 * execution holds only its own target's lock, so jobs cannot deadlock on each other.
 */

type Waiter = { grant: () => void; signal: AbortSignal | undefined };

export class TargetLocks {
  private readonly queues = new Map<string, Waiter[]>();

  /** Resolves with a release function once the target is free; rejects if the signal aborts first. */
  acquire(target: string, signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      const queue = this.queues.get(target) ?? [];
      this.queues.set(target, queue);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        queue.shift();
        this.grantNext(target, queue);
      };
      const onAbort = () => {
        const i = queue.indexOf(waiter);
        // only a waiter still in line is removed; the holder (index 0) releases through release()
        if (i > 0) queue.splice(i, 1);
        reject(signal?.reason as Error);
      };
      const waiter: Waiter = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
        signal,
      };
      queue.push(waiter);
      if (queue.length === 1) waiter.grant();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private grantNext(target: string, queue: Waiter[]): void {
    const next = queue[0];
    if (next) next.grant();
    else this.queues.delete(target);
  }
}
