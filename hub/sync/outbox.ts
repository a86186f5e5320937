/**
 * The outbox: every fact bound for the cloud, in SQLite, per stream with a gapless seq per epoch.
 * Producers append inside their own transactions (a stock delta and its outbox record commit
 * together or not at all). Each uplink is a sink with its own cursor per stream; a record is
 * deleted once every sink registered for its stream has acknowledged it.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { OutboxBatch, OutboxRecord, Replaces, StreamName } from './streams.js';
import { replacedSeqs, replacesOf, STREAMS } from './streams.js';

export interface AppendInput {
  stream: StreamName;
  type: string;
  eventTime: number;
  body: unknown;
  /** The fact's own unique id (a ledger uid); a fresh UUID when absent. */
  id?: string;
  /** Records with the same key may be folded into one under the budget (ledger: "sku|location"). */
  foldKey?: string;
}

/** Where a sink stands on a stream: it has everything up to and including `seq` of `epoch`. */
export interface Position {
  epoch: number;
  seq: number;
}

export interface Identity {
  hubId: string;
  storeId: string;
  epoch: number;
}

/** A stored row, for the compactor. */
export interface OutboxRow {
  stream: StreamName;
  epoch: number;
  seq: number;
  uid: string;
  type: string;
  event_time: number;
  received_at: number;
  body: string;
  fold_key: string | null;
  replaces: string | null;
}

export interface StreamCounters {
  expired: number;
  dropped: number;
  folded: number;
}

/** Rough per-row overhead beyond the body, so budgets count keys and index entries too. */
export const ROW_OVERHEAD_BYTES = 96;

export class Outbox {
  private readonly backlog = new Map<StreamName, { records: number; bytes: number }>();
  private readonly sinks = new Map<string, Set<StreamName>>();
  /** Called after each append (inside the producer's transaction: defer real work). */
  onAppend: ((stream: StreamName) => void) | undefined;
  private readonly insertRow;
  private readonly readAfter;
  private readonly cursorOf;
  private readonly upsertAck;
  private readonly upsertSent;
  private readonly deleteThrough;
  private readonly sumThrough;
  private readonly upsertHead;
  private readonly bumpCounter;
  private readonly maxSeq;
  private readonly headOf;

  constructor(
    readonly db: Database.Database,
    readonly identity: Identity,
    private readonly now: () => number = Date.now,
  ) {
    this.insertRow = db.prepare(
      'INSERT INTO outbox (stream, epoch, seq, uid, type, event_time, received_at, body, fold_key, replaces) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    // A row value, not `(epoch = @epoch AND seq > @seq) OR epoch > @epoch`: with the OR, SQLite seeks
    // to the start of the epoch and steps over every row up to @seq, so each read cost grew with the
    // rows a slower sink (or a sink's own window) still held below the position.
    this.readAfter = db.prepare(`SELECT * FROM outbox WHERE stream = @stream AND (epoch, seq) > (@epoch, @seq) ORDER BY epoch, seq LIMIT @limit`);
    this.cursorOf = db.prepare('SELECT acked_seq, sent_seq, acked_at FROM outbox_cursors WHERE sink = ? AND stream = ? AND epoch = ?');
    this.upsertAck = db.prepare(
      `INSERT INTO outbox_cursors (sink, stream, epoch, acked_seq, sent_seq, acked_at) VALUES (@sink, @stream, @epoch, @seq, @seq, @at)
       ON CONFLICT (sink, stream, epoch) DO UPDATE SET acked_seq = max(acked_seq, @seq), sent_seq = max(sent_seq, @seq), acked_at = @at`,
    );
    this.upsertSent = db.prepare(
      `INSERT INTO outbox_cursors (sink, stream, epoch, sent_seq) VALUES (@sink, @stream, @epoch, @seq)
       ON CONFLICT (sink, stream, epoch) DO UPDATE SET sent_seq = max(sent_seq, @seq)`,
    );
    this.deleteThrough = db.prepare('DELETE FROM outbox WHERE stream = ? AND epoch = ? AND seq <= ?');
    this.sumThrough = db.prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS bytes FROM outbox WHERE stream = ? AND epoch = ? AND seq <= ?');
    this.upsertHead = db.prepare(
      `INSERT INTO outbox_streams (stream, epoch, next_seq) VALUES (?, ?, ?)
       ON CONFLICT (stream, epoch) DO UPDATE SET next_seq = max(next_seq, excluded.next_seq)`,
    );
    this.bumpCounter = db.prepare(
      `INSERT INTO outbox_counters (stream, expired, dropped, folded) VALUES (@stream, @expired, @dropped, @folded)
       ON CONFLICT (stream) DO UPDATE SET expired = expired + @expired, dropped = dropped + @dropped, folded = folded + @folded`,
    );
    this.maxSeq = db.prepare('SELECT max(seq) AS m FROM outbox WHERE stream = ? AND epoch = ?');
    this.headOf = db.prepare('SELECT next_seq FROM outbox_streams WHERE stream = ? AND epoch = ?');
    for (const stream of STREAMS) {
      const size = db.prepare('SELECT count(*) AS n, coalesce(sum(length(body)), 0) AS bytes FROM outbox WHERE stream = ?').get(stream) as {
        n: number;
        bytes: number;
      };
      this.backlog.set(stream, { records: size.n, bytes: size.bytes + size.n * ROW_OVERHEAD_BYTES });
    }
  }

  /** Appends one record; call inside the producer's transaction so both commit together. Returns its seq. */
  append(input: AppendInput): number {
    // The head is read from the database, not cached: a producer's transaction that rolls back
    // takes its row with it, and the next append must reuse that seq rather than leave a gap.
    const seq = this.head(input.stream);
    const body = JSON.stringify(input.body);
    this.insertRow.run(
      input.stream,
      this.identity.epoch,
      seq,
      input.id ?? randomUUID(),
      input.type,
      input.eventTime,
      this.now(),
      body,
      input.foldKey ?? null,
      null,
    );
    const b = this.backlog.get(input.stream) as { records: number; bytes: number };
    b.records++;
    b.bytes += body.length + ROW_OVERHEAD_BYTES;
    this.onAppend?.(input.stream);
    return seq;
  }

  /** The seq the next record of a stream gets in the current epoch. */
  head(stream: StreamName): number {
    const max = this.maxSeq.get(stream, this.identity.epoch) as { m: number | null };
    const head = this.headOf.get(stream, this.identity.epoch) as { next_seq: number } | undefined;
    // Deleting rows persists the head first, so the larger of the two is never a reused seq.
    return Math.max(head?.next_seq ?? 1, (max.m ?? 0) + 1);
  }

  /**
   * An uplink that consumes these streams; records are deleted only once every such sink has them.
   * A sink new to a stream (an uplink enabled on a hub that has already delivered elsewhere) finds
   * its first seqs gone: a record at seq 1 stands for them, so its receiver's cursor can start.
   */
  registerSink(sink: string, streams: readonly StreamName[]): void {
    this.sinks.set(sink, new Set(streams));
    for (const stream of streams) this.bridgeStart(sink, stream);
  }

  private bridgeStart(sink: string, stream: StreamName): void {
    const epochs = this.db.prepare('SELECT epoch, min(seq) AS lo FROM outbox WHERE stream = ? GROUP BY epoch').all(stream) as { epoch: number; lo: number }[];
    const starts = new Map(epochs.map((e) => [e.epoch, e.lo]));
    // the current epoch may hold nothing while its head has moved on
    if (!starts.has(this.identity.epoch)) starts.set(this.identity.epoch, this.head(stream));
    for (const [epoch, lo] of starts) {
      if (lo <= 1 || this.cursorOf.get(sink, stream, epoch) !== undefined) continue;
      const now = this.now();
      const body = { count: lo - 1, from: 1, to: lo - 1, reason: 'delivered before this uplink was enabled' };
      this.db.transaction(() => {
        if (epoch === this.identity.epoch) this.upsertHead.run(stream, epoch, this.head(stream));
        this.insertRow.run(stream, epoch, 1, randomUUID(), 'outbox.skipped', now, now, JSON.stringify(body), null, JSON.stringify({ from: 1, to: lo - 1 }));
      })();
      const b = this.backlog.get(stream) as { records: number; bytes: number };
      b.records++;
      b.bytes += ROW_OVERHEAD_BYTES;
    }
  }

  sinksOf(stream: StreamName): string[] {
    return [...this.sinks].filter(([, streams]) => streams.has(stream)).map(([name]) => name);
  }

  /** Where a sink resumes: the oldest epoch it has not fully acknowledged, and its ack there. */
  position(sink: string, stream: StreamName): Position {
    const epochs = this.db.prepare('SELECT epoch, max(seq) AS m FROM outbox WHERE stream = ? GROUP BY epoch ORDER BY epoch').all(stream) as {
      epoch: number;
      m: number;
    }[];
    for (const { epoch, m } of epochs) {
      const acked = this.acked(sink, stream, epoch);
      if (m > acked) return { epoch, seq: acked };
    }
    return { epoch: this.identity.epoch, seq: this.acked(sink, stream, this.identity.epoch) };
  }

  acked(sink: string, stream: StreamName, epoch: number): number {
    return (this.cursorOf.get(sink, stream, epoch) as { acked_seq: number } | undefined)?.acked_seq ?? 0;
  }

  /** The next batch after a position: at most `limit` records, all of one epoch. */
  read(stream: StreamName, after: Position, limit: number): OutboxBatch | undefined {
    const rows = this.readAfter.all({ stream, epoch: after.epoch, seq: after.seq, limit }) as OutboxRow[];
    const first = rows[0];
    if (!first) return undefined;
    const records: OutboxRecord[] = [];
    for (const r of rows) {
      if (r.epoch !== first.epoch) break;
      records.push(this.toRecord(r));
    }
    return { hub: this.identity.hubId, store: this.identity.storeId, stream, epoch: first.epoch, records };
  }

  /** Records a batch as handed to a sink, before it is sent: such records are never folded or expired. */
  markSent(sink: string, stream: StreamName, epoch: number, seq: number): void {
    this.upsertSent.run({ sink, stream, epoch, seq });
  }

  /** The highest seq of the current epoch any sink may have seen; compaction stays above it. */
  sentHighWater(stream: StreamName): number {
    const r = this.db.prepare('SELECT max(sent_seq) AS m FROM outbox_cursors WHERE stream = ? AND epoch = ?').get(stream, this.identity.epoch) as {
      m: number | null;
    };
    return r.m ?? 0;
  }

  /**
   * A sink applied everything of a stream's epoch up to `through`. Returns how many records that
   * newly acknowledged for this sink. Records every sink has are deleted.
   */
  ack(sink: string, stream: StreamName, epoch: number, through: number): number {
    return this.db.transaction(() => {
      const before = this.acked(sink, stream, epoch);
      if (through <= before) return 0;
      this.upsertAck.run({ sink, stream, epoch, seq: through, at: this.now() });
      const everyone = Math.min(...this.sinksOf(stream).map((s) => (s === sink ? through : this.acked(s, stream, epoch))));
      if (Number.isFinite(everyone) && everyone > 0) this.deleteAcked(stream, epoch, everyone);
      return through - before;
    })();
  }

  private deleteAcked(stream: StreamName, epoch: number, through: number): void {
    const gone = this.sumThrough.get(stream, epoch, through) as { n: number; bytes: number };
    if (gone.n === 0) return;
    if (epoch === this.identity.epoch) this.upsertHead.run(stream, epoch, this.head(stream));
    this.deleteThrough.run(stream, epoch, through);
    const b = this.backlog.get(stream) as { records: number; bytes: number };
    b.records -= gone.n;
    b.bytes -= gone.bytes + gone.n * ROW_OVERHEAD_BYTES;
  }

  /** Records and bytes still held for a stream (unacknowledged by at least one sink, or with no sink). */
  size(stream: StreamName): { records: number; bytes: number } {
    return { ...(this.backlog.get(stream) as { records: number; bytes: number }) };
  }

  /** Unsent rows of the current epoch above `after`, oldest first, for the compactor. */
  unsentRows(stream: StreamName, after: number, limit: number): OutboxRow[] {
    return this.db
      .prepare('SELECT * FROM outbox WHERE stream = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(stream, this.identity.epoch, after, limit) as OutboxRow[];
  }

  /**
   * Replaces rows by one record at the lowest of their seqs that names them all (docs/cloud-protocol.md,
   * "Gaps and folded records"). Runs in the caller's transaction; counts what was given up.
   */
  replace(stream: StreamName, rows: OutboxRow[], record: { type: string; body: unknown; eventTime: number }, counter: keyof StreamCounters): void {
    if (rows.length < 2) return;
    const seqs: number[] = [];
    for (const r of rows) seqs.push(...(r.replaces ? replacedSeqs(JSON.parse(r.replaces) as Replaces) : [r.seq]));
    const keep = Math.min(...rows.map((r) => r.seq));
    const kept = rows.find((r) => r.seq === keep) as OutboxRow;
    this.upsertHead.run(stream, this.identity.epoch, this.head(stream));
    const del = this.db.prepare('DELETE FROM outbox WHERE stream = ? AND epoch = ? AND seq = ?');
    let freed = 0;
    for (const r of rows) {
      del.run(stream, this.identity.epoch, r.seq);
      freed += r.body.length + ROW_OVERHEAD_BYTES;
    }
    const replaces = replacesOf(seqs);
    const body = JSON.stringify(record.body);
    this.insertRow.run(
      stream,
      this.identity.epoch,
      keep,
      randomUUID(),
      record.type,
      record.eventTime,
      kept.received_at,
      body,
      kept.fold_key,
      JSON.stringify(replaces),
    );
    const b = this.backlog.get(stream) as { records: number; bytes: number };
    b.records -= rows.length - 1;
    b.bytes += body.length + ROW_OVERHEAD_BYTES - freed;
    this.bumpCounter.run({ stream, expired: 0, dropped: 0, folded: 0, [counter]: rows.length - 1 });
  }

  counters(stream: StreamName): StreamCounters {
    const r = this.db.prepare('SELECT expired, dropped, folded FROM outbox_counters WHERE stream = ?').get(stream) as StreamCounters | undefined;
    return r ?? { expired: 0, dropped: 0, folded: 0 };
  }

  cursor(sink: string, stream: StreamName, epoch: number): { ackedSeq: number; sentSeq: number; ackedAt: number | null } {
    const r = this.cursorOf.get(sink, stream, epoch) as { acked_seq: number; sent_seq: number; acked_at: number | null } | undefined;
    return { ackedSeq: r?.acked_seq ?? 0, sentSeq: r?.sent_seq ?? 0, ackedAt: r?.acked_at ?? null };
  }

  /** When the hub recorded the oldest record after a position (what a sink is waiting on), for lag. */
  oldestUnacked(stream: StreamName, after: Position): number | undefined {
    const r = this.readAfter.get({ stream, epoch: after.epoch, seq: after.seq, limit: 1 }) as OutboxRow | undefined;
    return r?.received_at;
  }

  private toRecord(r: OutboxRow): OutboxRecord {
    const record: OutboxRecord = {
      id: r.uid,
      hub: this.identity.hubId,
      store: this.identity.storeId,
      stream: r.stream,
      epoch: r.epoch,
      seq: r.seq,
      type: r.type,
      eventTime: r.event_time,
      receivedAt: r.received_at,
      body: JSON.parse(r.body) as unknown,
    };
    if (r.replaces) record.replaces = JSON.parse(r.replaces) as Replaces;
    return record;
  }
}
