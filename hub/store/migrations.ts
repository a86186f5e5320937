/**
 * Versioned schema migrations, applied at start inside one transaction each; PRAGMA user_version
 * holds the version reached. Never edit a landed migration: add the next one. test/store-migrations
 * builds a database at every earlier version, fills it, and upgrades it to the latest.
 */
export interface SchemaMigration {
  version: number;
  name: string;
  sql: string;
}

export const SCHEMA_MIGRATIONS: SchemaMigration[] = [
  {
    version: 1,
    name: 'meta, incidents, device credentials, API tokens',
    sql: `
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
      CREATE TABLE incidents (
        id INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
      CREATE TABLE device_credentials (
        device_id TEXT PRIMARY KEY, kind TEXT NOT NULL, secret_hash TEXT NOT NULL,
        topics TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',
        scope TEXT NOT NULL CHECK (scope IN ('read', 'ops', 'admin')),
        secret_hash TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER, last_used_at INTEGER) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'device message journal (what the broker acknowledged)',
    sql: `
      CREATE TABLE device_messages (
        id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, topic TEXT NOT NULL,
        payload BLOB NOT NULL, qos INTEGER NOT NULL, received_at INTEGER NOT NULL);
      CREATE INDEX device_messages_received_at ON device_messages (received_at);
    `,
  },
  {
    version: 3,
    name: 'device registry and device events',
    sql: `
      CREATE TABLE devices (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, model TEXT, firmware TEXT, battery REAL,
        last_seen INTEGER, availability TEXT NOT NULL DEFAULT 'offline', reason TEXT,
        updated_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE events (
        id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, device_id TEXT, kind TEXT NOT NULL,
        time INTEGER NOT NULL, body TEXT NOT NULL);
      CREATE INDEX events_kind ON events (kind, id);
    `,
  },
  {
    version: 4,
    name: 'outbox streams and stock ledger',
    sql: `
      CREATE TABLE outbox (
        stream TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, uid TEXT NOT NULL UNIQUE,
        event_time INTEGER NOT NULL, received_at INTEGER NOT NULL, body TEXT NOT NULL, acked_at INTEGER,
        PRIMARY KEY (stream, epoch, seq));
      CREATE TABLE stock_ledger (
        id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, sku TEXT NOT NULL, location TEXT NOT NULL,
        delta INTEGER NOT NULL, reason TEXT NOT NULL, source TEXT, event_time INTEGER NOT NULL,
        recorded_at INTEGER NOT NULL);
      CREATE INDEX stock_ledger_sku_location ON stock_ledger (sku, location, id);
    `,
  },
  {
    version: 5,
    name: 'product table and stock count reviews',
    sql: `
      CREATE TABLE products (
        gtin14 TEXT PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
        unit_weight_g REAL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE INDEX products_sku ON products (sku);
      CREATE TABLE stock_reviews (
        id INTEGER PRIMARY KEY, uid TEXT NOT NULL UNIQUE, sku TEXT NOT NULL, location TEXT NOT NULL,
        observed INTEGER NOT NULL, expected INTEGER NOT NULL, cutoff INTEGER NOT NULL, coverage REAL NOT NULL,
        source TEXT, reason TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', created_at INTEGER NOT NULL);
      CREATE INDEX stock_reviews_open ON stock_reviews (status, id);
      CREATE INDEX stock_ledger_event_time ON stock_ledger (sku, location, event_time);
    `,
  },
];

export const LATEST_SCHEMA_VERSION = SCHEMA_MIGRATIONS[SCHEMA_MIGRATIONS.length - 1]?.version ?? 0;
