/** Bearer tokens for the HTTP API: `shb_<id>_<secret>`; only SHA-256 of the secret is stored. */
import { timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { randomSecret, sha256 } from './secrets.js';

export const SCOPES = ['read', 'ops', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** read < ops < admin: a token satisfies every scope at or below its own. */
export function scopeAllows(held: Scope, needed: Scope): boolean {
  return SCOPES.indexOf(held) >= SCOPES.indexOf(needed);
}

export interface ApiToken {
  id: string;
  name: string;
  scope: Scope;
  createdAt: number;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

interface Row {
  id: string;
  name: string;
  scope: Scope;
  secret_hash: string;
  created_at: number;
  revoked_at: number | null;
  last_used_at: number | null;
}

const fromRow = (r: Row): ApiToken => ({
  id: r.id,
  name: r.name,
  scope: r.scope,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

export class ApiTokens {
  private readonly byId;
  private readonly touch;
  constructor(private readonly db: Database.Database) {
    this.byId = db.prepare('SELECT * FROM api_tokens WHERE id = ?');
    this.touch = db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?');
  }

  create(scope: Scope, name = '', now = Date.now()): { token: string; id: string } {
    const id = randomSecret(6);
    const secret = randomSecret(32);
    this.db.prepare('INSERT INTO api_tokens (id, name, scope, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)').run(id, name, scope, sha256(secret), now);
    return { id, token: `shb_${id}_${secret}` };
  }

  /** Returns the token's record when the presented string is valid and not revoked. */
  verify(presented: string, now = Date.now()): ApiToken | undefined {
    const m = /^shb_([A-Za-z0-9_-]{8})_([A-Za-z0-9_-]{43})$/.exec(presented);
    if (!m) return undefined;
    const row = this.byId.get(m[1]) as Row | undefined;
    if (!row || row.revoked_at !== null) return undefined;
    const a = Buffer.from(sha256(m[2] as string));
    const b = Buffer.from(row.secret_hash);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
    // last-use is informational: write it at most once a minute per token
    if (row.last_used_at === null || now - row.last_used_at > 60_000) this.touch.run(now, row.id);
    return fromRow(row);
  }

  list(): ApiToken[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at').all() as Row[]).map(fromRow);
  }

  revoke(id: string, now = Date.now()): boolean {
    return this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0;
  }
}
