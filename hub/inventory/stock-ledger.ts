/**
 * The stock ledger: per SKU and location, an append-only list of deltas, each with a unique id.
 * On-hand is the sum of the deltas. A count (an RFID cycle count, a shelf's weight-derived count)
 * is an absolute observation as of its cut-off time; it becomes the delta that makes the ledger
 * agree with it at the cut-off: count - (sum of deltas with event_time <= cut-off). Deltas that
 * happened after the cut-off stay, so on-hand = last count + deltas after its cut-off, whatever
 * order things arrived in. Counts that disagree too much, or cover too little of the location,
 * are held for review instead of applied.
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { Outbox } from '../sync/outbox.js';

export interface LedgerEntry {
  id: number;
  uid: string;
  sku: string;
  location: string;
  delta: number;
  reason: string;
  source: string | null;
  eventTime: number;
  recordedAt: number;
}

export interface CountObservation {
  sku: string;
  location: string;
  count: number;
  /** The moment the count describes: deltas after it are not in it. */
  cutoff: number;
  /** Share of the location the count saw, 0..1 (an RFID cycle that read 60% of the zone: 0.6). */
  coverage: number;
  source: string;
}

export interface ReviewPolicy {
  /** Below this coverage a count is never applied blindly. */
  minCoverage: number;
  /** A difference larger than this many units... */
  maxAbsoluteDelta: number;
  /** ...and larger than this share of the expected quantity is held for review. */
  maxRelativeDelta: number;
}

export const DEFAULT_REVIEW_POLICY: ReviewPolicy = { minCoverage: 0.8, maxAbsoluteDelta: 5, maxRelativeDelta: 0.5 };

export type CountOutcome =
  | { outcome: 'stale'; newerCutoff: number }
  | { outcome: 'unchanged'; expected: number; uid: string }
  | { outcome: 'applied'; expected: number; delta: number; uid: string }
  | { outcome: 'review'; expected: number; delta: number; reason: string; uid: string };

interface Row {
  id: number;
  uid: string;
  sku: string;
  location: string;
  delta: number;
  reason: string;
  source: string | null;
  event_time: number;
  recorded_at: number;
}

export class StockLedger {
  private readonly insert;
  private readonly sumAt;
  private readonly sumAll;
  private readonly lastCount;

  constructor(
    private readonly db: Database.Database,
    private readonly policy: ReviewPolicy = DEFAULT_REVIEW_POLICY,
    private readonly now: () => number = Date.now,
    /** Where each entry also goes, in the same transaction, for the cloud (the ledger stream). */
    private readonly outbox?: Outbox,
  ) {
    this.insert = db.prepare('INSERT INTO stock_ledger (uid, sku, location, delta, reason, source, event_time, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.sumAt = db.prepare('SELECT coalesce(sum(delta), 0) AS q FROM stock_ledger WHERE sku = ? AND location = ? AND event_time <= ?');
    this.sumAll = db.prepare('SELECT coalesce(sum(delta), 0) AS q FROM stock_ledger WHERE sku = ? AND location = ?');
    this.lastCount = db.prepare(
      "SELECT max(event_time) AS t, count(*) AS n FROM stock_ledger WHERE sku = ? AND location = ? AND reason IN ('count', 'opening count')",
    );
  }

  /** Writes one entry, and its ledger-stream record when there is an outbox: both or neither. */
  private record(uid: string, sku: string, location: string, delta: number, reason: string, source: string | null, eventTime: number): void {
    this.insert.run(uid, sku, location, delta, reason, source, eventTime, this.now());
    this.outbox?.append({
      stream: 'ledger',
      type: 'stock.delta',
      id: uid,
      eventTime,
      body: { sku, location, delta, reason, source },
      foldKey: `${sku}|${location}`,
    });
  }

  /** The cut-off of the newest count applied, if any. */
  private lastCountCutoff(sku: string, location: string): number | undefined {
    const r = this.lastCount.get(sku, location) as { t: number | null; n: number };
    return r.n > 0 && r.t !== null ? r.t : undefined;
  }

  /**
   * Records a movement (sale, receipt, item moved); returns its uid. A movement that happened
   * before the newest count's cut-off is already in that count: it is recorded, with a
   * compensating entry, so the ledger keeps it without counting it twice.
   */
  applyDelta(sku: string, location: string, delta: number, reason: string, source: string | null, eventTime: number, uid: string = randomUUID()): string {
    this.db.transaction(() => {
      this.record(uid, sku, location, delta, reason, source, eventTime);
      const cutoff = this.lastCountCutoff(sku, location);
      if (cutoff !== undefined && eventTime <= cutoff) {
        this.record(`${uid}:superseded`, sku, location, -delta, 'superseded by count', source, cutoff);
      }
    })();
    return uid;
  }

  onHand(sku: string, location: string): number {
    return (this.sumAll.get(sku, location) as { q: number }).q;
  }

  expectedAt(sku: string, location: string, cutoff: number): number {
    return (this.sumAt.get(sku, location, cutoff) as { q: number }).q;
  }

  /** Turns an absolute count into a delta against the expected quantity at its cut-off. */
  observe(obs: CountObservation): CountOutcome {
    return this.db.transaction((): CountOutcome => {
      const previous = this.lastCountCutoff(obs.sku, obs.location);
      // A count older than one already applied describes a past the newer count replaced.
      if (previous !== undefined && previous > obs.cutoff) return { outcome: 'stale', newerCutoff: previous };
      const expected = this.expectedAt(obs.sku, obs.location, obs.cutoff);
      const delta = obs.count - expected;
      const uid = randomUUID();
      if (delta === 0) {
        // kept as a zero entry: it marks the cut-off later movements are judged against
        this.record(uid, obs.sku, obs.location, 0, 'count', obs.source, obs.cutoff);
        return { outcome: 'unchanged', expected, uid };
      }
      // The first count of a SKU at a location opens its balance; there is nothing to disagree with.
      const opening = previous === undefined && (this.sumAll.get(obs.sku, obs.location) as { q: number }).q === 0 && obs.coverage >= this.policy.minCoverage;
      const reason = opening ? undefined : this.reviewReason(obs, expected, delta);
      if (reason) {
        this.db
          .prepare(
            'INSERT INTO stock_reviews (uid, sku, location, observed, expected, cutoff, coverage, source, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          )
          .run(uid, obs.sku, obs.location, obs.count, expected, obs.cutoff, obs.coverage, obs.source, reason, this.now());
        // HQ sees held counts too: the store's stock may be wrong until someone looks
        this.outbox?.append({
          stream: 'ledger',
          type: 'stock.review',
          id: uid,
          eventTime: obs.cutoff,
          body: { sku: obs.sku, location: obs.location, observed: obs.count, expected, coverage: obs.coverage, source: obs.source, reason },
        });
        return { outcome: 'review', expected, delta, reason, uid };
      }
      this.record(uid, obs.sku, obs.location, delta, opening ? 'opening count' : 'count', obs.source, obs.cutoff);
      return { outcome: 'applied', expected, delta, uid };
    })();
  }

  history(sku: string, options: { location?: string; after?: number; limit: number }): LedgerEntry[] {
    const rows = this.db
      .prepare('SELECT * FROM stock_ledger WHERE sku = ? AND (? IS NULL OR location = ?) AND id > ? ORDER BY id LIMIT ?')
      .all(sku, options.location ?? null, options.location ?? null, options.after ?? 0, options.limit) as Row[];
    return rows.map((r) => ({
      id: r.id,
      uid: r.uid,
      sku: r.sku,
      location: r.location,
      delta: r.delta,
      reason: r.reason,
      source: r.source,
      eventTime: r.event_time,
      recordedAt: r.recorded_at,
    }));
  }

  /** On-hand per SKU and location, optionally filtered. */
  stock(filter: { sku?: string; location?: string }): { sku: string; location: string; onHand: number; lastChange: number }[] {
    return this.db
      .prepare(
        `SELECT sku, location, sum(delta) AS onHand, max(event_time) AS lastChange FROM stock_ledger
         WHERE (@sku IS NULL OR sku = @sku) AND (@location IS NULL OR location = @location)
         GROUP BY sku, location ORDER BY sku, location`,
      )
      .all({ sku: filter.sku ?? null, location: filter.location ?? null }) as { sku: string; location: string; onHand: number; lastChange: number }[];
  }

  openReviews(limit = 100): { uid: string; sku: string; location: string; observed: number; expected: number; reason: string; cutoff: number }[] {
    return this.db
      .prepare("SELECT uid, sku, location, observed, expected, reason, cutoff FROM stock_reviews WHERE status = 'open' ORDER BY id LIMIT ?")
      .all(limit) as { uid: string; sku: string; location: string; observed: number; expected: number; reason: string; cutoff: number }[];
  }

  private reviewReason(obs: CountObservation, expected: number, delta: number): string | undefined {
    if (obs.coverage < this.policy.minCoverage) return `coverage ${Math.round(obs.coverage * 100)}% below ${Math.round(this.policy.minCoverage * 100)}%`;
    const relative = expected === 0 ? Number.POSITIVE_INFINITY : Math.abs(delta) / Math.abs(expected);
    if (Math.abs(delta) > this.policy.maxAbsoluteDelta && relative > this.policy.maxRelativeDelta) {
      return `count ${obs.count} differs from expected ${expected} by ${delta}`;
    }
    return undefined;
  }
}
