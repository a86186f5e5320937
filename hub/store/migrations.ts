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
  {
    version: 6,
    name: 'outbox streams with per-sink cursors',
    // No producer wrote to the v4 outbox, but any rows it holds are carried over (type 'legacy').
    sql: `
      ALTER TABLE outbox RENAME TO outbox_v4;
      CREATE TABLE outbox (
        stream TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, uid TEXT NOT NULL, type TEXT NOT NULL,
        event_time INTEGER NOT NULL, received_at INTEGER NOT NULL, body TEXT NOT NULL,
        fold_key TEXT, replaces TEXT,
        PRIMARY KEY (stream, epoch, seq)) WITHOUT ROWID;
      CREATE TABLE outbox_streams (
        stream TEXT NOT NULL, epoch INTEGER NOT NULL, next_seq INTEGER NOT NULL,
        PRIMARY KEY (stream, epoch)) WITHOUT ROWID;
      CREATE TABLE outbox_cursors (
        sink TEXT NOT NULL, stream TEXT NOT NULL, epoch INTEGER NOT NULL,
        acked_seq INTEGER NOT NULL DEFAULT 0, sent_seq INTEGER NOT NULL DEFAULT 0, acked_at INTEGER,
        PRIMARY KEY (sink, stream, epoch)) WITHOUT ROWID;
      CREATE TABLE outbox_counters (
        stream TEXT PRIMARY KEY, produced INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0,
        expired INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0, folded INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
      INSERT INTO outbox (stream, epoch, seq, uid, type, event_time, received_at, body)
        SELECT stream, epoch, seq, uid, 'legacy', event_time, received_at, body FROM outbox_v4;
      INSERT INTO outbox_streams (stream, epoch, next_seq) SELECT stream, epoch, max(seq) + 1 FROM outbox GROUP BY stream, epoch;
      DROP TABLE outbox_v4;
    `,
  },
  {
    version: 7,
    name: 'remote operations: jobs, their per-target executions, applied desired state',
    // jobs.document is last: listing jobs reads the columns before it without touching a large
    // document's overflow pages. Statuses are checked here too, so no writer can invent one.
    sql: `
      CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('api', 'cloud')),
        status TEXT NOT NULL CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED')),
        reason TEXT, timeout_seconds REAL NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        started_at INTEGER, completed_at INTEGER, deadline_at INTEGER NOT NULL, document TEXT NOT NULL);
      CREATE INDEX jobs_status ON jobs (status, seq);
      CREATE TABLE job_executions (
        job_id TEXT NOT NULL, target TEXT NOT NULL, position INTEGER NOT NULL, wave INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL CHECK (status IN ('QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED')),
        reason TEXT, result TEXT, attempts INTEGER NOT NULL DEFAULT 0, started_at INTEGER, completed_at INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (job_id, target)) WITHOUT ROWID;
      CREATE INDEX job_executions_status ON job_executions (status, job_id);
      CREATE TABLE desired_states (
        version INTEGER PRIMARY KEY, config TEXT NOT NULL, job_id TEXT NOT NULL, applied_at INTEGER NOT NULL);
    `,
  },
];

export const LATEST_SCHEMA_VERSION = SCHEMA_MIGRATIONS[SCHEMA_MIGRATIONS.length - 1]?.version ?? 0;
