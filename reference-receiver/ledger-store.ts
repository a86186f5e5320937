/**
 * The receiver's ledger: applies a hub's batches exactly once by (hub, stream, epoch, seq), with SQLite
 * unique constraints as the last line of defence. Per (hub, stream, epoch) it keeps `appliedThrough`, the
 * highest seq below which everything is applied; a record is applied only at appliedThrough + 1, so the
 * ledger never has holes. Stock balances are summed from stock.delta and stock.delta.folded bodies in the
 * same transaction, so a balance is always exactly the sum of the applied records.
 */
import Database from 'better-sqlite3';
import {
  type Batch,
  type BatchExpectation,
  type LedgerRecord,
  MalformedBatchError,
  replacedSeqs,
  STOCK_DELTA,
  STOCK_DELTA_FOLDED,
  validateBatch,
} from './batch-schema.js';

export { MalformedBatchError, type Batch, type LedgerRecord } from './batch-schema.js';

export type Synchronous = 'OFF' | 'NORMAL' | 'FULL' | 'EXTRA';

export interface LedgerStoreOptions {
  /** SQLite file, or ':memory:' (tests, property runs). */
  file: string;
  /**
   * Set on every open: better-sqlite3 opens an existing WAL file at NORMAL (FACTS.md), which can roll back
   * the last commits after a power loss, and an ack must only ever name durable records. Default FULL.
   */
  synchronous?: Synchronous;
  /** Largest batch accepted, in records. Default 10 000. */
  maxBatchRecords?: number;
}

export interface ApplyResult {
  epoch: number;
  /** Every seq up to this one is applied (or accounted for by a folded record). */
  appliedThrough: number;
  /** Records applied by this call. */
  applied: number;
  /** Records of this batch that were already applied or covered, ignored. */
  duplicates: number;
  /** True when a record's seq was beyond appliedThrough + 1: the rest of the batch was not applied. */
  gap: boolean;
}

export interface Cursor {
  epoch: number;
  appliedThrough: number;
}

export interface Balance {
  hub: string;
  store: string;
  sku: string;
  location: string;
  quantity: number;
}

export interface BalanceFilter {
  hub?: string;
  store?: string;
  sku?: string;
  location?: string;
}

export interface LedgerStats {
  /** Records applied, all time. */
  applied: number;
  /** Records received again (or re-sent under a new key with an id already applied) and ignored. */
  duplicates: number;
  /** Batches that stopped at a gap. */
  gaps: number;
  /** Malformed batches rejected whole. */
  rejected: number;
  /** Batches that went through apply(), malformed ones included. */
  batches: number;
  cursors: Array<{ hub: string; stream: string; epoch: number; appliedThrough: number }>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS records (
  hub TEXT NOT NULL, stream TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
  id TEXT NOT NULL, store TEXT NOT NULL, type TEXT NOT NULL,
  event_time INTEGER NOT NULL, received_at INTEGER NOT NULL,
  body TEXT NOT NULL, replaces TEXT, applied_at INTEGER NOT NULL,
  PRIMARY KEY (hub, stream, epoch, seq),
  -- A fact's id is promised unique only per hub; it catches the same fact re-sent in a new epoch.
  UNIQUE (hub, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
  hub TEXT NOT NULL, stream TEXT NOT NULL, epoch INTEGER NOT NULL,
  applied_through INTEGER NOT NULL CHECK (applied_through >= 0),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (hub, stream, epoch)
) WITHOUT ROWID;
-- Seqs that have no row of their own but are accounted for: replaced by a folded record, or carrying an
-- id that was already applied. by_id names the record that accounts for them.
CREATE TABLE IF NOT EXISTS covered (
  hub TEXT NOT NULL, stream TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
  by_id TEXT NOT NULL, reason TEXT NOT NULL CHECK (reason IN ('folded', 'expired', 'replaced', 'duplicate_id')),
  PRIMARY KEY (hub, stream, epoch, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS balances (
  hub TEXT NOT NULL, store TEXT NOT NULL, sku TEXT NOT NULL, location TEXT NOT NULL,
  quantity REAL NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY (hub, store, sku, location)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
`;

type Counter = 'applied' | 'duplicates' | 'gaps' | 'rejected' | 'batches';

export class LedgerStore {
  readonly db: Database.Database;
  private readonly maxBatchRecords: number;
  private readonly stmt;

  constructor(options: LedgerStoreOptions) {
    this.db = new Database(options.file);
    this.maxBatchRecords = options.maxBatchRecords ?? 10_000;
    if (options.file !== ':memory:') this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.stmt = {
      cursor: this.db.prepare<[string, string, number], { applied_through: number }>(
        'SELECT applied_through FROM cursors WHERE hub = ? AND stream = ? AND epoch = ?',
      ),
      newestCursor: this.db.prepare<[string, string], { epoch: number; applied_through: number }>(
        'SELECT epoch, applied_through FROM cursors WHERE hub = ? AND stream = ? ORDER BY epoch DESC LIMIT 1',
      ),
      setCursor: this.db.prepare(
        `INSERT INTO cursors (hub, stream, epoch, applied_through, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (hub, stream, epoch) DO UPDATE SET applied_through = excluded.applied_through, updated_at = excluded.updated_at`,
      ),
      isCovered: this.db.prepare<[string, string, number, number], { one: number }>(
        'SELECT 1 AS one FROM covered WHERE hub = ? AND stream = ? AND epoch = ? AND seq = ?',
      ),
      cover: this.db.prepare('INSERT OR IGNORE INTO covered (hub, stream, epoch, seq, by_id, reason) VALUES (?, ?, ?, ?, ?, ?)'),
      idAt: this.db.prepare<[string, string, number, number], { id: string }>('SELECT id FROM records WHERE hub = ? AND stream = ? AND epoch = ? AND seq = ?'),
      coveredAt: this.db.prepare<[string, string, number, number], { by_id: string; reason: string }>(
        'SELECT by_id, reason FROM covered WHERE hub = ? AND stream = ? AND epoch = ? AND seq = ?',
      ),
      idApplied: this.db.prepare<[string, string], { one: number }>('SELECT 1 AS one FROM records WHERE hub = ? AND id = ?'),
      insert: this.db.prepare(
        `INSERT INTO records (hub, stream, epoch, seq, id, store, type, event_time, received_at, body, replaces, applied_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      addBalance: this.db.prepare(
        `INSERT INTO balances (hub, store, sku, location, quantity, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (hub, store, sku, location) DO UPDATE SET quantity = quantity + excluded.quantity, updated_at = excluded.updated_at`,
      ),
      bump: this.db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value'),
    };
  }

  /**
   * Validates the whole batch (throwing MalformedBatchError, nothing applied), then applies its records in
   * seq order in one transaction: at or below appliedThrough or covered -> duplicate; appliedThrough + 1 ->
   * applied; beyond -> gap, and the rest of the batch is left for the hub to resend.
   */
  apply(input: unknown, expect: BatchExpectation = {}): ApplyResult {
    let batch: Batch;
    try {
      batch = validateBatch(input, { maxRecords: this.maxBatchRecords, ...expect });
    } catch (err) {
      this.countRejected();
      throw err;
    }
    try {
      return this.db.transaction(() => this.applyValid(batch)).immediate();
    } catch (err) {
      // A key conflict is found mid-transaction; the rollback undid the batch, the count must survive it.
      if (err instanceof MalformedBatchError) this.countRejected();
      throw err;
    }
  }

  private applyValid(batch: Batch): ApplyResult {
    const { hub, stream, epoch } = batch;
    const now = Date.now();
    let through = this.stmt.cursor.get(hub, stream, epoch)?.applied_through ?? 0;
    const start = through;
    let applied = 0;
    let duplicates = 0;
    let gap = false;
    const covered = (seq: number) => this.stmt.isCovered.get(hub, stream, epoch, seq) !== undefined;
    // Moves past seqs a folded record (or a duplicate id) already accounted for.
    const advance = () => {
      while (covered(through + 1)) through++;
    };
    advance();
    for (const r of batch.records) {
      if (r.seq <= through || covered(r.seq)) {
        this.checkSameFact(r);
        duplicates++;
        continue;
      }
      if (r.seq > through + 1) {
        gap = true;
        break;
      }
      if (this.stmt.idApplied.get(hub, r.id)) {
        // The same fact under a new key (a salvaged database re-sending in a new epoch): applying it again
        // would count it twice, skipping its seq would leave a hole, so its seq is accounted for by the original.
        this.stmt.cover.run(hub, stream, epoch, r.seq, r.id, 'duplicate_id');
        duplicates++;
      } else {
        this.insert(r, now);
        applied++;
      }
      through = r.seq;
      advance();
    }
    if (through !== start) this.stmt.setCursor.run(hub, stream, epoch, through, now);
    this.bump('batches', 1);
    if (applied) this.bump('applied', applied);
    if (duplicates) this.bump('duplicates', duplicates);
    if (gap) this.bump('gaps', 1);
    return { epoch, appliedThrough: through, applied, duplicates, gap };
  }

  /**
   * A duplicate must be the same fact: the same key with another id means the hub reused an epoch (a
   * database recreated without bumping it). Ignoring it as a duplicate would silently drop a new fact, so
   * the batch is refused instead and the hub holds the stream where an operator sees it.
   */
  private checkSameFact(r: LedgerRecord): void {
    const applied = this.stmt.idAt.get(r.hub, r.stream, r.epoch, r.seq);
    // A seq covered by a folded record has no id of its own to compare; one covered as a duplicate id has.
    const cover = applied ? undefined : this.stmt.coveredAt.get(r.hub, r.stream, r.epoch, r.seq);
    const knownId = applied?.id ?? (cover?.reason === 'duplicate_id' ? cover.by_id : undefined);
    if (knownId !== undefined && knownId !== r.id) {
      throw new MalformedBatchError(
        `seq ${r.seq} of ${r.hub}/${r.stream} epoch ${r.epoch} was applied as ${knownId}, now sent as ${r.id}: was the epoch reused?`,
        'key_conflict',
      );
    }
  }

  private insert(r: LedgerRecord, now: number): void {
    this.stmt.insert.run(
      r.hub,
      r.stream,
      r.epoch,
      r.seq,
      r.id,
      r.store,
      r.type,
      r.eventTime,
      r.receivedAt,
      JSON.stringify(r.body),
      r.replaces ? JSON.stringify(r.replaces) : null,
      now,
    );
    if (r.type === STOCK_DELTA || r.type === STOCK_DELTA_FOLDED) {
      const body = r.body as { sku: string; location: string; delta: number };
      this.stmt.addBalance.run(r.hub, r.store, body.sku, body.location, body.delta, now);
    }
    // Any record may stand for others: a folded delta, an expiry record, a downsampled sample.
    if (r.replaces) {
      const reason = r.type === STOCK_DELTA_FOLDED ? 'folded' : r.type === 'outbox.expired' ? 'expired' : 'replaced';
      for (const s of replacedSeqs(r.replaces)) if (s !== r.seq) this.stmt.cover.run(r.hub, r.stream, r.epoch, s, r.id, reason);
    }
  }

  private countRejected(): void {
    this.db.transaction(() => {
      this.bump('batches', 1);
      this.bump('rejected', 1);
    })();
  }

  private bump(name: Counter, by: number): void {
    this.stmt.bump.run(name, by);
  }

  /** The cursor of one epoch, or of the newest epoch known; `{ epoch: 0, appliedThrough: 0 }` when none (nothing applied). */
  cursor(hub: string, stream: string, epoch?: number): Cursor {
    if (epoch !== undefined) return { epoch, appliedThrough: this.stmt.cursor.get(hub, stream, epoch)?.applied_through ?? 0 };
    const row = this.stmt.newestCursor.get(hub, stream);
    return row ? { epoch: row.epoch, appliedThrough: row.applied_through } : { epoch: 0, appliedThrough: 0 };
  }

  balances(filter: BalanceFilter = {}): Balance[] {
    const where: string[] = [];
    const args: string[] = [];
    for (const key of ['hub', 'store', 'sku', 'location'] as const) {
      const v = filter[key];
      if (v !== undefined) {
        where.push(`${key} = ?`);
        args.push(v);
      }
    }
    const sql = `SELECT hub, store, sku, location, quantity FROM balances ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY hub, store, sku, location`;
    return this.db.prepare<string[], Balance>(sql).all(...args);
  }

  /** Applied seqs and covered seqs of one (hub, stream, epoch), ascending: for tests and audits. */
  seqs(hub: string, stream: string, epoch: number): { applied: number[]; covered: number[] } {
    const pluck = (sql: string) =>
      this.db
        .prepare<[string, string, number], { seq: number }>(sql)
        .all(hub, stream, epoch)
        .map((r) => r.seq);
    return {
      applied: pluck('SELECT seq FROM records WHERE hub = ? AND stream = ? AND epoch = ? ORDER BY seq'),
      covered: pluck('SELECT seq FROM covered WHERE hub = ? AND stream = ? AND epoch = ? ORDER BY seq'),
    };
  }

  stats(): LedgerStats {
    const counters = Object.fromEntries(
      this.db
        .prepare<[], { name: string; value: number }>('SELECT name, value FROM counters')
        .all()
        .map((r) => [r.name, r.value]),
    );
    const cursors = this.db
      .prepare<[], { hub: string; stream: string; epoch: number; appliedThrough: number }>(
        'SELECT hub, stream, epoch, applied_through AS appliedThrough FROM cursors ORDER BY hub, stream, epoch',
      )
      .all();
    const n = (k: Counter) => (counters[k] as number | undefined) ?? 0;
    return { applied: n('applied'), duplicates: n('duplicates'), gaps: n('gaps'), rejected: n('rejected'), batches: n('batches'), cursors };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
