/**
 * Remembers the answer given to each `Idempotency-Key`, so a retried request (same key, same body) gets the
 * same answer as the first attempt. Batches are idempotent by seq anyway; this is the HTTP courtesy on top,
 * and the guard that notices a key re-used for different content (a hub bug: sent records never change).
 * Kept in the ledger's SQLite file so it survives a restart of the receiver.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

export interface StoredAnswer {
  status: number;
  body: unknown;
}

export type Recall = { kind: 'miss' } | { kind: 'hit'; answer: StoredAnswer } | { kind: 'mismatch' };

/** JSON with object keys sorted, so a hub that re-serialises the same records in another key order still matches. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function bodyHash(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex');
}

export interface IdempotencyOptions {
  /** How long an answer is remembered. Default 24 h: far longer than any hub retries one batch. */
  ttlMs?: number;
}

export class IdempotencyKeys {
  private readonly ttlMs: number;
  private writes = 0;
  private readonly get;
  private readonly put;
  private readonly prune;

  constructor(db: Database.Database, options: IdempotencyOptions = {}) {
    this.ttlMs = options.ttlMs ?? 24 * 3600_000;
    db.exec(`CREATE TABLE IF NOT EXISTS idempotency (
      scope TEXT NOT NULL, key TEXT NOT NULL, body_hash TEXT NOT NULL,
      status INTEGER NOT NULL, answer TEXT NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (scope, key)
    ) WITHOUT ROWID`);
    this.get = db.prepare<[string, string, number], { body_hash: string; status: number; answer: string }>(
      'SELECT body_hash, status, answer FROM idempotency WHERE scope = ? AND key = ? AND created_at >= ?',
    );
    this.put = db.prepare('INSERT OR REPLACE INTO idempotency (scope, key, body_hash, status, answer, created_at) VALUES (?, ?, ?, ?, ?, ?)');
    this.prune = db.prepare('DELETE FROM idempotency WHERE created_at < ?');
  }

  /** `scope` keeps hubs apart: one hub cannot replay (or poison) another's key. */
  recall(scope: string, key: string, hash: string): Recall {
    const row = this.get.get(scope, key, Date.now() - this.ttlMs);
    if (!row) return { kind: 'miss' };
    if (row.body_hash !== hash) return { kind: 'mismatch' };
    return { kind: 'hit', answer: { status: row.status, body: JSON.parse(row.answer) } };
  }

  remember(scope: string, key: string, hash: string, answer: StoredAnswer): void {
    const now = Date.now();
    this.put.run(scope, key, hash, answer.status, JSON.stringify(answer.body), now);
    if (++this.writes % 1000 === 0) this.prune.run(now - this.ttlMs);
  }
}
