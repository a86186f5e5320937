/**
 * Writes to device sockets, seen from the broker: coalescing a group's PUBACKs into one write, and
 * waiting at shutdown until what was written has left.
 */
import type { Client } from 'aedes';

/**
 * The journal answers a whole group commit in one loop: corked until the next tick, a client's
 * PUBACKs from the group leave in one write instead of one syscall each.
 */
export function corkUntilNextTick(conn: { cork?: () => void; uncork?: () => void; writableCorked?: number } | undefined): void {
  if (!conn?.cork || conn.writableCorked !== 0) return;
  conn.cork();
  process.nextTick(() => conn.uncork?.());
}

/** Resolves when no client has bytes waiting in its socket's buffer, or after `timeoutMs`. */
export async function waitForDrain(clients: Client[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const busy = clients.some((c) => ((c.conn as { writableLength?: number } | undefined)?.writableLength ?? 0) > 0);
    if (!busy || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}
