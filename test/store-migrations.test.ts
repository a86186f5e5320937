/**
 * Schema migrations and the pragmas applied on every open. For every earlier schema version a real
 * database file is built at that version, filled, and upgraded by opening it the way the hub does.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { HubError } from '../hub/sdk/errors.js';
import { DB_FILE, openStore } from '../hub/store/database.js';
import { migrate } from '../hub/store/migrate.js';
import { LATEST_SCHEMA_VERSION, SCHEMA_MIGRATIONS } from '../hub/store/migrations.js';
import { Store, type StoreOptions } from '../hub/store/store.js';

type Row = Record<string, unknown>;

const BIG_BUDGET = 1024 * 1024 * 1024;

/**
 * Representative rows for every table the schema has ever had. A new migration that adds a table
 * without adding it here fails the "every table has a sample" assertion below.
 */
const SAMPLES: Record<string, (n: number) => Row> = {
  meta: (n) => ({ key: `key-${n}`, value: `value-${n}` }),
  incidents: (n) => ({ id: n, time: 1_700_000_000_000 + n, kind: 'test.kind', detail: JSON.stringify({ n }) }),
  device_credentials: (n) => ({
    device_id: `dev-${n}`,
    kind: 'scale',
    secret_hash: `scrypt$16384$8$1$salt${n}$hash${n}`,
    topics: JSON.stringify([`devices/dev-${n}/#`]),
    created_at: 100 + n,
    updated_at: 200 + n,
  }),
  api_tokens: (n) => ({
    id: `tok${n}`.padEnd(8, 'x'),
    name: `token ${n}`,
    scope: (['read', 'ops', 'admin'] as const)[n % 3],
    secret_hash: `hash-${n}`,
    created_at: 300 + n,
    revoked_at: n % 2 === 0 ? 400 + n : null,
    last_used_at: null,
  }),
  device_messages: (n) => ({
    id: n,
    device_id: `dev-${n}`,
    topic: `devices/dev-${n}/weight`,
    payload: Buffer.from([n, 0, 255, n, 7]),
    qos: 1,
    received_at: 1000 + n,
  }),
  devices: (n) => ({
    id: `dev-${n}`,
    kind: 'scale',
    model: 'S1',
    firmware: '1.2.3',
    battery: 0.5 + n / 100,
    last_seen: 2000 + n,
    availability: 'online',
    reason: null,
    updated_at: 3000 + n,
  }),
  events: (n) => ({ id: n, uid: `evt-${n}`, device_id: `dev-${n}`, kind: 'weight', time: 4000 + n, body: JSON.stringify({ grams: n }) }),
  products: (n) => ({ gtin14: `0061414181234${n}`, sku: `SKU-${n}`, name: `Product ${n}`, unit_weight_g: 100 + n, updated_at: 7000 + n }),
  stock_reviews: (n) => ({
    id: n,
    uid: `rev-${n}`,
    sku: `SKU-${n}`,
    location: 'shelf-1/1',
    observed: n,
    expected: n + 10,
    cutoff: 8000 + n,
    coverage: 0.5,
    source: 'shelf-1',
    reason: 'difference too large',
    status: 'open',
    created_at: 9000 + n,
  }),
  outbox: (n) => ({
    stream: 'ledger',
    epoch: 1,
    seq: n,
    uid: `out-${n}`,
    type: 'stock.delta',
    event_time: 5000 + n,
    received_at: 6000 + n,
    body: '{}',
    fold_key: 'SKU-1|A1',
    replaces: null,
  }),
  outbox_streams: (n) => ({ stream: `stream-${n}`, epoch: n, next_seq: 10 + n }),
  outbox_cursors: (n) => ({ sink: 'cloud', stream: `stream-${n}`, epoch: 1, acked_seq: n, sent_seq: n + 1, acked_at: 100 + n }),
  outbox_counters: (n) => ({ stream: `stream-${n}`, produced: n, acked: n, expired: 0, dropped: 0, folded: 0 }),
  jobs: (n) => ({
    seq: n,
    id: `job-${n}`,
    type: 'device.command',
    source: n % 2 === 0 ? 'cloud' : 'api',
    status: 'SUCCEEDED',
    reason: null,
    timeout_seconds: 3600,
    created_at: 10_000 + n,
    updated_at: 10_100 + n,
    started_at: 10_010 + n,
    completed_at: 10_100 + n,
    deadline_at: 3_610_000 + n,
    document: JSON.stringify({ type: 'device.command', targets: [`dev-${n}`], command: { name: 'status' } }),
  }),
  job_executions: (n) => ({
    job_id: `job-${n}`,
    target: `dev-${n}`,
    position: 0,
    wave: 0,
    status: 'FAILED',
    reason: 'driver not running',
    result: JSON.stringify({ ok: false }),
    attempts: 1,
    started_at: 10_010 + n,
    completed_at: 10_050 + n,
    updated_at: 10_050 + n,
  }),
  desired_states: (n) => ({ version: n, config: JSON.stringify({ version: 1, store: { id: `store-${n}` } }), job_id: `job-${n}`, applied_at: 11_000 + n }),
  stock_ledger: (n) => ({
    id: n,
    uid: `led-${n}`,
    sku: 'SKU-1',
    location: 'A1',
    delta: -n,
    reason: 'sale',
    source: null,
    event_time: 7000 + n,
    recorded_at: 8000 + n,
  }),
};

/** Tables whose shape a migration changed: rows as older versions had them, and as that migration converts them. */
const RESHAPED: Record<string, { since: number; old: (n: number) => Row; upgrade: (row: Row) => Row }> = {
  outbox: {
    since: 6,
    old: (n) => ({ stream: 'events', epoch: 1, seq: n, uid: `out-${n}`, event_time: 5000 + n, received_at: 6000 + n, body: '{}', acked_at: null }),
    upgrade: ({ acked_at: _acked, ...row }) => ({ ...row, type: 'legacy', fold_key: null, replaces: null }),
  },
};

/** A sample row of a table as a database at `version` holds it. */
function sampleAt(table: string, n: number, version: number): Row {
  const reshaped = RESHAPED[table];
  return reshaped && version < reshaped.since ? reshaped.old(n) : sample(table, n);
}

/** Rows written at `version` as the latest schema holds them after the upgrade. */
function upgradedRows(table: string, rows: Row[], version: number): Row[] {
  const reshaped = RESHAPED[table];
  return reshaped && version < reshaped.since ? rows.map(reshaped.upgrade) : rows;
}

function sample(table: string, n: number): Row {
  const make = SAMPLES[table];
  if (!make) throw new Error(`no sample rows for table ${table}: add one to SAMPLES`);
  return make(n);
}

function tablesOf(db: Database.Database): string[] {
  return (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as { name: string }[]).map(
    (r) => r.name,
  );
}

function insert(db: Database.Database, table: string, row: Row): void {
  const cols = Object.keys(row);
  db.prepare(`INSERT INTO "${table}" (${cols.map((c) => `"${c}"`).join(', ')}) VALUES (${cols.map((c) => `@${c}`).join(', ')})`).run(row);
}

function rowsOf(db: Database.Database, table: string): Row[] {
  const cols = (db.pragma(`table_info("${table}")`) as { name: string }[]).map((c) => `"${c.name}"`);
  return db.prepare(`SELECT * FROM "${table}" ORDER BY ${cols.join(', ')}`).all() as Row[];
}

/** The schema objects (tables and indexes) as name -> normalised SQL. */
function schemaOf(db: Database.Database): Record<string, string> {
  const out: Record<string, string> = {};
  for (const r of db.prepare(`SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name`).all() as { name: string; sql: string }[]) {
    out[r.name] = r.sql.replace(/\s+/g, ' ').trim();
  }
  return out;
}

function options(dataDir: string, synchronous: StoreOptions['synchronous'] = 'full'): StoreOptions {
  return { dataDir, synchronous, maxBytes: BIG_BUDGET };
}

function openForTest(t: Test, opts: StoreOptions): Store {
  const store = new Store(opts);
  t.teardown(() => store.close());
  return store;
}

/** The rows seeded into an old database: two per table, plus the hub's identity in meta. */
function seedRows(tables: string[], version: number): Record<string, Row[]> {
  const seeded: Record<string, Row[]> = {};
  for (const table of tables) {
    seeded[table] =
      table === 'meta'
        ? [sample('meta', 1), { key: 'hub_id', value: 'hub-from-old-db' }, { key: 'epoch', value: '7' }]
        : [sampleAt(table, 1, version), sampleAt(table, 2, version)];
  }
  return seeded;
}

t.test('the migration list is contiguous from 1 and LATEST_SCHEMA_VERSION is its last entry', async (t) => {
  t.ok(LATEST_SCHEMA_VERSION >= 1, 'there is at least one migration');
  t.strictSame(
    SCHEMA_MIGRATIONS.map((m) => m.version),
    Array.from({ length: LATEST_SCHEMA_VERSION }, (_, i) => i + 1),
  );
});

t.test('every table of the latest schema has sample rows in this test', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  t.strictSame(
    migrate(db),
    SCHEMA_MIGRATIONS.map((m) => m.version),
  );
  for (const table of tablesOf(db)) t.ok(SAMPLES[table], `SAMPLES has ${table}`);
});

/** The schema a fresh install gets, to compare upgraded databases against. */
function freshSchema(): Record<string, string> {
  const db = new Database(':memory:');
  try {
    migrate(db);
    return schemaOf(db);
  } finally {
    db.close();
  }
}

for (let v = 0; v < LATEST_SCHEMA_VERSION; v++) {
  t.test(`a database at schema v${v} is upgraded to v${LATEST_SCHEMA_VERSION} with its rows intact`, async (t) => {
    const dir = t.testdir();
    const file = join(dir, DB_FILE);

    // Build the old database exactly as an older storehub left it: WAL, migrated only up to v.
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    const appliedOld = migrate(old, v);
    t.strictSame(
      appliedOld,
      Array.from({ length: v }, (_, i) => i + 1),
      `building the v${v} database applied migrations 1..${v}`,
    );
    t.equal(old.pragma('user_version', { simple: true }), v);
    const oldTables = tablesOf(old);
    if (v === 0) t.strictSame(oldTables, [], 'v0 has no tables');
    else t.ok(oldTables.length > 0, `v${v} has tables`);
    const seeded = seedRows(oldTables, v);
    old.transaction(() => {
      for (const [table, rows] of Object.entries(seeded)) for (const row of rows) insert(old, table, row);
    })();
    old.close();

    const store = openForTest(t, options(dir));
    t.equal(store.db.pragma('user_version', { simple: true }), LATEST_SCHEMA_VERSION, 'user_version is the latest');
    t.strictSame(
      store.migrationsApplied,
      SCHEMA_MIGRATIONS.filter((m) => m.version > v).map((m) => m.version),
      `exactly the migrations above v${v} were applied`,
    );
    t.equal(store.corruption, undefined, 'an old but healthy file is not treated as corrupt');
    t.strictSame(schemaOf(store.db), freshSchema(), 'the upgraded schema equals a fresh install');

    // Old rows are intact.
    for (const [table, rows] of Object.entries(seeded)) {
      const kept = rowsOf(store.db, table).filter((r) => rows.some((w) => sameKey(table, r, w)));
      t.strictSame(kept, normalised(table, upgradedRows(table, rows, v)), `rows of ${table} survived the upgrade`);
    }
    if (v >= 1) {
      t.equal(store.hubId, 'hub-from-old-db', 'hub id kept');
      t.equal(store.epoch, 7, 'epoch kept');
    } else {
      t.match(store.hubId, /^[0-9a-f-]{36}$/, 'a new hub gets a UUID');
      t.ok(store.epoch > 1_700_000_000, 'a new hub starts at its creation time in seconds');
    }

    // New tables are usable: write and read back.
    const newTables = tablesOf(store.db).filter((name) => !oldTables.includes(name));
    t.strictSame(newTables.length + oldTables.length, tablesOf(store.db).length);
    t.ok(newTables.length > 0, 'the upgrade created tables');
    for (const table of newTables) {
      const rows = [sample(table, 3), sample(table, 4)];
      for (const row of rows) insert(store.db, table, row);
      const actual = rowsOf(store.db, table).filter((r) => rows.some((w) => sameKey(table, r, w)));
      t.strictSame(actual, rows, `new table ${table} accepts and returns rows`);
    }
    // The store's own repositories work on the upgraded file.
    const secret = await store.credentials.add('dev-upgraded', 'scale');
    t.ok(secret.length > 0);
    t.equal(store.credentials.get('dev-upgraded')?.kind, 'scale');
    const { token } = store.tokens.create('read', 'after-upgrade');
    t.equal(store.tokens.verify(token)?.name, 'after-upgrade');

    // Opening the upgraded file again applies nothing.
    store.close();
    const again = openForTest(t, options(dir));
    t.strictSame(again.migrationsApplied, [], 'reopening applies no migration');
    t.equal(again.db.pragma('user_version', { simple: true }), LATEST_SCHEMA_VERSION);
    t.equal(again.hubId, store.hubId);
    t.equal(again.epoch, store.epoch);
  });
}

/** Passes expected rows through SQLite itself, for the same column order, affinity and row order. */
function normalised(table: string, rows: Row[]): Row[] {
  const db = new Database(':memory:');
  try {
    migrate(db);
    for (const row of rows) insert(db, table, row);
    return rowsOf(db, table);
  } finally {
    db.close();
  }
}

function sameKey(table: string, a: Row, b: Row): boolean {
  switch (table) {
    case 'meta':
      return a.key === b.key;
    case 'device_credentials':
      return a.device_id === b.device_id;
    case 'outbox':
      return a.uid === b.uid;
    case 'outbox_streams':
    case 'outbox_cursors':
    case 'outbox_counters':
      return a.stream === b.stream;
    case 'job_executions':
      return a.job_id === b.job_id && a.target === b.target;
    case 'desired_states':
      return a.version === b.version;
    default:
      return a.id === b.id;
  }
}

t.test('a failing migration is rolled back and reported as HUB_ERR_STORE_MIGRATION', async (t) => {
  const dir = t.testdir();
  const file = join(dir, DB_FILE);
  const db = new Database(file);
  migrate(db, 1);
  // A table migration 2 wants to create already exists, so migration 2 fails.
  db.exec('CREATE TABLE device_messages (x INTEGER)');
  let caught: unknown;
  try {
    migrate(db);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof HubError, 'a HubError');
  t.equal((caught as HubError).code, 'HUB_ERR_STORE_MIGRATION');
  t.match((caught as HubError).message, /migration 2/);
  t.equal(db.pragma('user_version', { simple: true }), 1, 'user_version stays at the last good version');
  t.notOk(tablesOf(db).includes('devices'), 'no later migration ran');
  db.close();
});

t.test('a database written by a newer storehub is refused and left untouched', async (t) => {
  const dir = t.testdir();
  const file = join(dir, DB_FILE);
  const future = new Database(file);
  future.pragma('journal_mode = WAL');
  migrate(future);
  future.exec(`CREATE TABLE from_the_future (x TEXT); INSERT INTO from_the_future VALUES ('keep me')`);
  future.pragma(`user_version = ${LATEST_SCHEMA_VERSION + 1}`);
  future.close();

  for (const mode of ['daemon', 'tool'] as const) {
    let caught: unknown;
    let store: Store | undefined;
    try {
      store = new Store({ ...options(dir), mode });
    } catch (err) {
      caught = err;
    }
    store?.close();
    t.ok(caught instanceof HubError, `${mode}: a HubError`);
    t.equal((caught as HubError).code, 'HUB_ERR_STORE_NEWER_SCHEMA', `${mode}: newer schema refused`);
  }
  t.throws(() => openStore({ dataDir: dir, synchronous: 'full' }), { code: 'HUB_ERR_STORE_NEWER_SCHEMA' });

  const check = new Database(file, { readonly: true });
  t.teardown(() => check.close());
  t.equal(check.pragma('user_version', { simple: true }), LATEST_SCHEMA_VERSION + 1, 'version not rewritten');
  t.strictSame(check.prepare('SELECT x FROM from_the_future').all(), [{ x: 'keep me' }], 'data untouched');
  t.strictSame(
    readdirSync(dir).filter((f) => f.includes('.corrupt-')),
    [],
    'not mistaken for corruption',
  );
});

/** Reads synchronous after a read, so SQLite has seen the file (and its WAL mode) on this connection. */
function synchronousOf(db: Database.Database): number {
  db.prepare('SELECT count(*) FROM sqlite_master').get();
  return db.pragma('synchronous', { simple: true }) as number;
}

t.test("synchronous is FULL on every open when configured 'full'", async (t) => {
  const dir = t.testdir();
  const first = new Store(options(dir, 'full'));
  t.equal(first.db.pragma('journal_mode', { simple: true }), 'wal', 'journal_mode is wal');
  t.equal(synchronousOf(first.db), 2, 'FULL on the first open of a new file');
  first.close();
  t.ok(existsSync(join(dir, DB_FILE)));

  // Control: a plain connection to the existing WAL file silently gets NORMAL (FACTS.md). If this ever
  // reads 2, better-sqlite3's defaults changed and the next assertion no longer proves anything.
  const plain = new Database(join(dir, DB_FILE));
  t.equal(synchronousOf(plain), 1, 'control: a plain reopen of a WAL file gets NORMAL');
  plain.close();

  for (let i = 0; i < 2; i++) {
    const again = new Store(options(dir, 'full'));
    t.equal(again.db.pragma('journal_mode', { simple: true }), 'wal');
    t.equal(synchronousOf(again.db), 2, `FULL after reopen #${i + 1} of the existing WAL file`);
    // still FULL after writing through the store
    again.tokens.create('read');
    t.equal(synchronousOf(again.db), 2);
    again.close();
  }
});

t.test("synchronous is NORMAL when configured 'normal'", async (t) => {
  const dir = t.testdir();
  // On a new file the connection that switches to WAL would keep FULL unless told otherwise.
  const first = new Store(options(dir, 'normal'));
  t.equal(first.db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(synchronousOf(first.db), 1, 'NORMAL on the first open');
  first.close();
  const again = new Store(options(dir, 'normal'));
  t.equal(synchronousOf(again.db), 1, 'NORMAL on reopen');
  again.close();
  // and a store configured 'full' after one configured 'normal' is FULL again
  const full = new Store(options(dir, 'full'));
  t.equal(synchronousOf(full.db), 2);
  full.close();
});

t.test('other pragmas are set on every open', async (t) => {
  const dir = t.testdir();
  for (let i = 0; i < 2; i++) {
    const store = new Store(options(dir));
    t.equal(store.db.pragma('foreign_keys', { simple: true }), 1, 'foreign_keys on');
    t.equal(store.db.pragma('busy_timeout', { simple: true }), 5000, 'busy_timeout');
    t.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 0, 'no automatic checkpoints (a worker thread runs them)');
    store.close();
  }
});
