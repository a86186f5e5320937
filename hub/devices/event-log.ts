/**
 * The durable log of device events that matter (conditions, health changes, stable shelf weights,
 * item events), each with a unique id. Appends in one event-loop turn share a transaction.
 * Read back with cursor paging: the cursor is the last row id seen, so pages never skip or repeat.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Outbox } from '../sync/outbox.js';
import type { StreamName } from '../sync/streams.js';

/** Device events that matter to sales travel on the never-dropped ledger stream; the rest on events. */
const SALES_EVENT_KINDS = new Set(['device.shelf.out-of-stock', 'device.shelf.low-stock', 'device.shelf.wrong-item', 'device.shelf.over-capacity']);

export function streamOfEvent(kind: string): StreamName {
  return SALES_EVENT_KINDS.has(kind) ? 'ledger' : 'events';
}

export interface LoggedEvent {
  id: number;
  uid: string;
  deviceId: string | null;
  kind: string;
  time: number;
  body: unknown;
}

interface Row {
  id: number;
  uid: string;
  device_id: string | null;
  kind: string;
  time: number;
  body: string;
}

export class DeviceEventLog {
  private queue: { uid: string; deviceId: string | null; kind: string; time: number; body: string }[] = [];
  private scheduled = false;
  private readonly insert;
  private readonly page;

  failures = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly onError: (err: unknown) => void = () => {},
    /** Where each event also goes, in the same transaction, for the cloud. */
    private readonly outbox?: Outbox,
  ) {
    this.insert = db.prepare('INSERT INTO events (uid, device_id, kind, time, body) VALUES (?, ?, ?, ?, ?)');
    this.page = db.prepare(
      `SELECT id, uid, device_id, kind, time, body FROM events
       WHERE id > @after AND (@kind IS NULL OR kind = @kind OR kind LIKE @kindPrefix) AND (@since IS NULL OR time >= @since)
         AND (@device IS NULL OR device_id = @device)
       ORDER BY id LIMIT @limit`,
    );
  }

  append(kind: string, deviceId: string | null, time: number, body: unknown): string {
    const uid = randomUUID();
    this.queue.push({ uid, deviceId, kind, time, body: JSON.stringify(body) });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return uid;
  }

  /** Writes what is queued; on failure (disk full, database busy) keeps it for the next flush. */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    try {
      this.db.transaction(() => {
        for (const e of batch) {
          this.insert.run(e.uid, e.deviceId, e.kind, e.time, e.body);
          this.outbox?.append({
            stream: streamOfEvent(e.kind),
            type: 'device.event',
            id: e.uid,
            eventTime: e.time,
            body: { device: e.deviceId, kind: e.kind, detail: JSON.parse(e.body) as unknown },
          });
        }
      })();
    } catch (err) {
      this.queue = batch.concat(this.queue);
      this.failures++;
      this.onError(err);
    }
  }

  /** `kind` matches exactly, or as a prefix when it ends with '.' (e.g. 'item.'). */
  list(query: { after?: number; kind?: string; since?: number; device?: string; limit: number }): LoggedEvent[] {
    const kind = query.kind ?? null;
    const rows = this.page.all({
      after: query.after ?? 0,
      kind,
      kindPrefix: kind?.endsWith('.') ? `${kind}%` : null,
      since: query.since ?? null,
      device: query.device ?? null,
      limit: query.limit,
    }) as Row[];
    return rows.map((r) => ({ id: r.id, uid: r.uid, deviceId: r.device_id, kind: r.kind, time: r.time, body: JSON.parse(r.body) as unknown }));
  }
}
