/**
 * Keeps each outbox stream inside its disk budget while the uplink is away. Only records no sink
 * has been handed are touched, and whatever is given up is replaced by one record at the lowest
 * seq naming every seq it stands for, so the receiver's gapless cursor still advances:
 * - ledger: unsent stock deltas of one SKU and location fold into one (their sum); nothing is lost;
 * - events, footfall: the oldest unsent records expire into one `outbox.expired` record (counted);
 * - telemetry: every other unsent sample is dropped (counted), then, if still over, the oldest expire.
 */
import type Database from 'better-sqlite3';
import type { Outbox, OutboxRow } from './outbox.js';
import { ROW_OVERHEAD_BYTES } from './outbox.js';
import { OVER_BUDGET, STREAMS, type StreamName } from './streams.js';

export interface CompactionResult {
  stream: StreamName;
  action: 'fold' | 'expire' | 'downsample';
  /** Records given up (folded into another, expired, dropped). */
  records: number;
}

/** How many unsent rows one pass looks at; a pass runs again on the next tick if still over. */
const SCAN_LIMIT = 200_000;

interface DeltaBody {
  sku: string;
  location: string;
  delta: number;
}

export class OutboxCompactor {
  constructor(
    private readonly db: Database.Database,
    private readonly outbox: Outbox,
    private readonly budgets: Record<StreamName, number>,
  ) {}

  /** Streams whose backlog is above budget after compaction (only the ledger can stay there). */
  readonly overBudget = new Set<StreamName>();

  run(): CompactionResult[] {
    const results: CompactionResult[] = [];
    for (const stream of STREAMS) {
      const budget = this.budgets[stream];
      if (this.outbox.size(stream).bytes <= budget) {
        this.overBudget.delete(stream);
        continue;
      }
      const action = OVER_BUDGET[stream];
      const records = this.db.transaction(() => {
        const after = this.outbox.sentHighWater(stream);
        if (action === 'fold') return this.fold(after);
        if (action === 'expire') return this.expire(stream, after, this.outbox.size(stream).bytes - budget * 0.9);
        const dropped = this.downsample(after, this.outbox.size(stream).bytes - budget * 0.9);
        const left = this.outbox.size(stream).bytes - budget * 0.9;
        return dropped + (left > 0 ? this.expire(stream, this.outbox.sentHighWater(stream), left) : 0);
      })();
      if (records > 0) results.push({ stream, action, records });
      if (this.outbox.size(stream).bytes > budget) this.overBudget.add(stream);
      else this.overBudget.delete(stream);
    }
    return results;
  }

  private fold(after: number): number {
    const groups = new Map<string, OutboxRow[]>();
    for (const row of this.outbox.unsentRows('ledger', after, SCAN_LIMIT)) {
      if (row.fold_key === null || (row.type !== 'stock.delta' && row.type !== 'stock.delta.folded')) continue;
      const group = groups.get(row.fold_key);
      if (group) group.push(row);
      else groups.set(row.fold_key, [row]);
    }
    let folded = 0;
    for (const rows of groups.values()) {
      if (rows.length < 2) continue;
      const bodies = rows.map((r) => JSON.parse(r.body) as DeltaBody);
      const first = bodies[0] as DeltaBody;
      const body = { sku: first.sku, location: first.location, delta: bodies.reduce((sum, b) => sum + b.delta, 0) };
      const eventTime = Math.max(...rows.map((r) => r.event_time));
      this.outbox.replace('ledger', rows, { type: 'stock.delta.folded', body, eventTime }, 'folded');
      folded += rows.length - 1;
    }
    return folded;
  }

  /** Replaces the oldest unsent rows, enough to free `bytes`, by one expiry record. */
  private expire(stream: StreamName, after: number, bytes: number): number {
    const victims: OutboxRow[] = [];
    let freed = 0;
    for (const row of this.outbox.unsentRows(stream, after, SCAN_LIMIT)) {
      if (freed >= bytes) break;
      victims.push(row);
      freed += row.body.length + ROW_OVERHEAD_BYTES;
    }
    if (victims.length < 2) return 0;
    const first = victims[0] as OutboxRow;
    const last = victims[victims.length - 1] as OutboxRow;
    const body = { count: victims.length, from: first.seq, to: last.seq, reason: 'disk budget of the stream reached while the uplink was away' };
    this.outbox.replace(stream, victims, { type: 'outbox.expired', body, eventTime: last.event_time }, stream === 'telemetry' ? 'dropped' : 'expired');
    return victims.length - 1;
  }

  /** Drops every other unsent sample, oldest first, until `bytes` are freed. */
  private downsample(after: number, bytes: number): number {
    const rows = this.outbox.unsentRows('telemetry', after, SCAN_LIMIT).filter((r) => r.type !== 'outbox.expired');
    let freed = 0;
    let dropped = 0;
    for (let i = 0; i + 1 < rows.length && freed < bytes; i += 2) {
      const keep = rows[i] as OutboxRow;
      const drop = rows[i + 1] as OutboxRow;
      this.outbox.replace('telemetry', [keep, drop], { type: keep.type, body: JSON.parse(keep.body) as unknown, eventTime: keep.event_time }, 'dropped');
      freed += drop.body.length + ROW_OVERHEAD_BYTES;
      dropped++;
    }
    return dropped;
  }
}
