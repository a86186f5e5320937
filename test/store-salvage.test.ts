/**
 * Opening a damaged database: the file is moved aside, what can be read is salvaged into a fresh
 * one, the epoch moves on and an incident is recorded. Damage is made by overwriting real pages.
 */
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { DB_FILE } from '../hub/store/database.js';
import { LATEST_SCHEMA_VERSION } from '../hub/store/migrations.js';
import { verifySecret } from '../hub/store/secrets.js';
import { type Incident, Store } from '../hub/store/store.js';

const BUDGET = 1024 * 1024 * 1024;
const ROWS = 6000;

function open(dataDir: string, mode?: 'daemon' | 'tool'): Store {
  return new Store({ dataDir, synchronous: 'full', maxBytes: BUDGET, ...(mode ? { mode } : {}) });
}

/** Deterministic payload for a message row, so recovered rows can be checked byte for byte. */
function payloadFor(i: number): Buffer {
  const b = Buffer.alloc(64);
  for (let k = 0; k < b.length; k++) b[k] = (i * 31 + k * 7) & 0xff;
  return b;
}

/** Deterministic garbage (an LCG), so a run is repeatable. */
function garbage(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0;
  for (let k = 0; k < length; k++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[k] = x >>> 24;
  }
  return b;
}

function overwrite(file: string, position: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    closeSync(fd);
  }
}

function pageSizeFromHeader(t: Test, file: string): number {
  const header = readFileSync(file).subarray(0, 100);
  t.equal(header.subarray(0, 16).toString('latin1'), 'SQLite format 3\0', 'a SQLite file');
  const raw = header.readUInt16BE(16);
  return raw === 1 ? 65536 : raw;
}

interface Filled {
  dir: string;
  file: string;
  hubId: string;
  epoch: number;
  secrets: Record<string, string>;
  tokens: string[];
  /** device_messages leaf pages in b-tree order: page number (1-based) and how many rows each holds. */
  leafPages: number[];
  rowsOnPage: Map<number, number>;
  pageSize: number;
}

/** A store with thousands of journaled messages, three devices and two tokens, closed cleanly. */
async function filledStore(t: Test): Promise<Filled> {
  const dir = t.testdir();
  const store = open(dir);
  const secrets: Record<string, string> = {};
  for (const id of ['scale-1', 'door-1', 'cam-1']) secrets[id] = await store.credentials.add(id, id.split('-')[0] ?? 'x');
  const tokens = [store.tokens.create('admin', 'a').token, store.tokens.create('read', 'r').token];
  const insert = store.db.prepare('INSERT INTO device_messages (id, device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, ?, 1, ?)');
  store.db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) insert.run(i, `dev-${i % 13}`, `devices/dev-${i % 13}/weight`, payloadFor(i), 1_000_000 + i);
  })();
  let leafPages: number[] = [];
  const rowsOnPage = new Map<number, number>();
  try {
    const leaves = store.db.prepare(`SELECT pageno, ncell FROM dbstat WHERE name = 'device_messages' AND pagetype = 'leaf' ORDER BY path`).all() as {
      pageno: number;
      ncell: number;
    }[];
    leafPages = leaves.map((r) => r.pageno);
    for (const r of leaves) rowsOnPage.set(r.pageno, r.ncell);
  } catch (err) {
    t.fail(`dbstat is not available in this SQLite build: ${(err as Error).message}`);
  }
  const pageSize = store.db.pragma('page_size', { simple: true }) as number;
  const result = { dir, file: store.file, hubId: store.hubId, epoch: store.epoch, secrets, tokens, leafPages, rowsOnPage, pageSize };
  store.close();
  t.notOk(existsSync(`${store.file}-wal`), 'a clean close leaves no WAL behind');
  t.equal(pageSizeFromHeader(t, store.file), pageSize, 'page size in the header (bytes 16-17) matches PRAGMA page_size');
  t.ok(leafPages.length > 50, `the messages span many leaf pages (${leafPages.length})`);
  t.equal(
    [...rowsOnPage.values()].reduce((a, b) => a + b, 0),
    ROWS,
    'dbstat accounts for every row',
  );
  return result;
}

function count(store: Store, table: string): number {
  return store.db.prepare(`SELECT count(*) FROM "${table}"`).pluck().get() as number;
}

function corruptFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.includes('.corrupt-'));
}

function salvagedIncident(store: Store): Incident | undefined {
  return store.incidents().find((i) => i.kind === 'store.salvaged');
}

t.test('damaged leaf pages: the file is moved aside and most rows are salvaged', async (t) => {
  const f = await filledStore(t);
  const size = statSync(f.file).size;
  // Three leaf pages well inside the table (never the first or the last leaf).
  const n = f.leafPages.length;
  const victims = [Math.floor(n * 0.3), Math.floor(n * 0.5), Math.floor(n * 0.7)].map((k) => f.leafPages[k] as number);
  t.equal(new Set(victims).size, 3, 'three different pages');
  for (const [k, page] of victims.entries()) {
    const offset = (page - 1) * f.pageSize;
    t.ok(offset + f.pageSize <= size, `page ${page} lies inside the file`);
    overwrite(f.file, offset, garbage(f.pageSize, 1234 + k));
  }
  const damagedBytes = readFileSync(f.file);

  const store = open(f.dir);
  t.teardown(() => store.close());
  const c = store.corruption;
  t.ok(c, 'corruption is reported');
  if (!c) return;
  t.ok(c.reason.length > 0, `reason: ${c.reason}`);
  t.match(c.damagedFile, /hub\.db\.corrupt-/, 'the damaged file name says so');
  t.equal(c.damagedFile.startsWith(f.dir), true, 'kept beside the database');
  t.ok(existsSync(c.damagedFile), 'the damaged file is kept');
  t.ok(readFileSync(c.damagedFile).equals(damagedBytes), 'moved as it was, not rewritten');
  const damagedName = c.damagedFile.slice(f.dir.length + 1);
  const aside = corruptFiles(f.dir);
  t.ok(aside.includes(damagedName), 'the damaged file is listed');
  // Besides it only the -wal/-shm companions may exist (the read-only salvage connection leaves them).
  t.strictSame(
    aside.filter((x) => x !== damagedName && x !== `${damagedName}-wal` && x !== `${damagedName}-shm`),
    [],
    'nothing else is moved aside',
  );
  t.equal(store.file, join(f.dir, DB_FILE), 'the store uses the usual path');

  t.equal(c.salvage.readable, true, 'the damaged file could be read');
  const messages = c.salvage.tables.find((x) => x.table === 'device_messages');
  t.ok(messages, 'device_messages was salvaged');
  if (!messages) return;
  t.ok(messages.recovered > 0, `recovered ${messages.recovered} rows`);
  const onVictims = victims.reduce((sum, page) => sum + (f.rowsOnPage.get(page) ?? 0), 0);
  t.ok(onVictims > 0);
  t.ok(messages.recovered <= ROWS - onVictims, `the ${onVictims} rows on the damaged pages are lost`);
  t.ok(messages.recovered >= ROWS * 0.9, `most rows recovered (${messages.recovered}/${ROWS})`);
  // the scan steps over a bad page with a growing stride, then searches back: rows just after the
  // page are not skipped with it (before the search back, 75 more were lost here)
  t.ok(messages.recovered >= ROWS - onVictims - 10, `at most a few rows beyond the damaged pages lost (${ROWS - onVictims - messages.recovered})`);
  t.ok(messages.readErrors > 0, `read errors counted (${messages.readErrors})`);
  t.equal(count(store, 'device_messages'), messages.recovered, 'the report matches the table');

  // Every recovered row is the row that was written, byte for byte.
  let wrong = 0;
  for (const row of store.db.prepare('SELECT id, device_id, topic, payload, qos, received_at FROM device_messages').iterate() as Iterable<{
    id: number;
    device_id: string;
    topic: string;
    payload: Buffer;
    qos: number;
    received_at: number;
  }>) {
    const i = row.id;
    if (
      !(i >= 1 && i <= ROWS) ||
      row.device_id !== `dev-${i % 13}` ||
      row.topic !== `devices/dev-${i % 13}/weight` ||
      !row.payload.equals(payloadFor(i)) ||
      row.qos !== 1 ||
      row.received_at !== 1_000_000 + i
    ) {
      wrong++;
    }
  }
  t.equal(wrong, 0, 'no recovered row is garbled');
  t.equal(store.db.pragma('quick_check', { simple: true }), 'ok', 'the new file is healthy');

  // Credentials, tokens and identity survive.
  for (const name of ['device_credentials', 'api_tokens', 'meta']) {
    const table = c.salvage.tables.find((x) => x.table === name);
    t.equal(table?.readErrors, 0, `${name} read without errors`);
  }
  t.strictSame(
    store.credentials.list().map((x) => x.deviceId),
    ['cam-1', 'door-1', 'scale-1'],
    'device credentials kept',
  );
  for (const [id, secret] of Object.entries(f.secrets)) {
    t.equal(await verifySecret(secret, store.credentials.get(id)?.secretHash ?? ''), true, `${id} secret still verifies`);
  }
  t.equal(store.tokens.verify(f.tokens[0] ?? '')?.scope, 'admin', 'API tokens kept');
  t.equal(store.tokens.verify(f.tokens[1] ?? '')?.scope, 'read');
  t.equal(store.hubId, f.hubId, 'hub id kept');
  t.equal(store.epoch, f.epoch + 1, 'epoch incremented');
  t.equal(store.db.prepare(`SELECT value FROM meta WHERE key = 'epoch'`).pluck().get(), String(f.epoch + 1), 'epoch stored');

  const incident = salvagedIncident(store);
  t.ok(incident, 'a store.salvaged incident is recorded');
  t.match(incident?.detail, { damagedFile: c.damagedFile, reason: c.reason, salvage: { readable: true } });
  t.equal(store.incidents().filter((i) => i.kind === 'store.salvaged').length, 1, 'exactly one');

  // The salvaged store works and stays healthy across a restart.
  t.equal(
    await new Promise((resolve) => store.journal.append({ deviceId: 'd', topic: 't', payload: Buffer.from('x'), qos: 1, receivedAt: 1 }, resolve)),
    undefined,
  );
  store.close();
  const again = open(f.dir);
  t.teardown(() => again.close());
  t.equal(again.corruption, undefined, 'no corruption on the next open');
  t.equal(again.epoch, f.epoch + 1, 'epoch not incremented again');
  t.equal(again.hubId, f.hubId);
  t.equal(count(again, 'device_messages'), messages.recovered + 1);
  t.strictSame(corruptFiles(f.dir), aside, 'nothing else moved aside');
});

t.test('a damaged header: the file is unreadable, a fresh working database replaces it', async (t) => {
  const f = await filledStore(t);
  const size = statSync(f.file).size;
  overwrite(f.file, 0, Buffer.from('this is no db!!!', 'latin1'));

  const store = open(f.dir);
  t.teardown(() => store.close());
  const c = store.corruption;
  t.ok(c, 'corruption is reported');
  if (!c) return;
  t.match(c.damagedFile, /\.corrupt-/);
  t.ok(existsSync(c.damagedFile), 'the damaged file is kept');
  t.equal(statSync(c.damagedFile).size, size, 'with all its bytes');
  t.equal(c.salvage.readable, false, 'nothing could be read');
  t.ok(c.salvage.error, `the error is reported: ${c.salvage.error}`);
  t.strictSame(c.salvage.tables, []);

  t.equal(store.db.pragma('user_version', { simple: true }), LATEST_SCHEMA_VERSION, 'the fresh database is migrated');
  t.equal(count(store, 'device_messages'), 0, 'empty');
  t.strictSame(store.credentials.list(), [], 'no credentials survive');
  t.equal(store.tokens.verify(f.tokens[0] ?? ''), undefined, 'old tokens are gone');
  t.not(store.hubId, f.hubId, 'a new hub id (the old one could not be read)');
  t.ok(store.epoch >= Math.floor(Date.now() / 1000) - 600, `a new epoch no earlier database had (${store.epoch}: creation time in seconds)`);
  const incident = salvagedIncident(store);
  t.ok(incident, 'a store.salvaged incident is recorded');
  t.match(incident?.detail, { damagedFile: c.damagedFile, salvage: { readable: false } });

  // It works.
  const secret = await store.credentials.add('scale-9', 'scale');
  t.equal(await verifySecret(secret, store.credentials.get('scale-9')?.secretHash ?? ''), true);
  t.equal(
    await new Promise((resolve) => store.journal.append({ deviceId: 'd', topic: 't', payload: Buffer.from('x'), qos: 1, receivedAt: 1 }, resolve)),
    undefined,
  );
  t.equal(count(store, 'device_messages'), 1);
});

t.test('a damaged last leaf: salvage stops after the last readable row instead of scanning on', async (t) => {
  const f = await filledStore(t);
  const last = f.leafPages[f.leafPages.length - 1] as number;
  overwrite(f.file, (last - 1) * f.pageSize, garbage(f.pageSize, 99));

  const store = open(f.dir);
  t.teardown(() => store.close());
  const messages = store.corruption?.salvage.tables.find((x) => x.table === 'device_messages');
  t.ok(messages, 'device_messages was salvaged');
  // Before the fix the scan could not learn max(rowid) and stepped on for ten million failed reads.
  t.ok((messages?.readErrors ?? Number.POSITIVE_INFINITY) < 1000, `a bounded number of failed reads (${messages?.readErrors})`);
  t.equal(messages?.recovered, ROWS - (f.rowsOnPage.get(last) ?? 0), 'every row before the damaged last leaf is recovered');
  t.equal(count(store, 'device_messages'), messages?.recovered);
  t.equal(store.credentials.list().length, 3, 'credentials kept');
});

t.test('a healthy file is reopened as it is', async (t) => {
  const f = await filledStore(t);
  const before = readFileSync(f.file);
  const store = open(f.dir);
  t.teardown(() => store.close());
  t.equal(store.corruption, undefined, 'no corruption');
  t.equal(store.epoch, f.epoch, 'epoch unchanged');
  t.equal(store.hubId, f.hubId, 'hub id unchanged');
  t.strictSame(corruptFiles(f.dir), [], 'nothing moved aside');
  t.equal(salvagedIncident(store), undefined, 'no incident');
  t.equal(count(store, 'device_messages'), ROWS, 'every row there');
  t.equal(store.credentials.list().length, 3);
  t.ok(store.tokens.verify(f.tokens[0] ?? ''));
  t.ok(before.length > 0);
});

t.test('a WAL left by a crash is recovered, not mistaken for corruption', async (t) => {
  const root = t.testdir();
  const store = open(join(root, 'live'));
  const secret = await store.credentials.add('scale-1', 'scale');
  const insert = store.db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, 1, ?)');
  store.db.transaction(() => {
    for (let i = 0; i < 500; i++) insert.run('d', 't', payloadFor(i), i);
  })();
  t.ok(statSync(`${store.file}-wal`).size > 0, 'the commits are still in the WAL');
  // Copy the files as a power cut would leave them: database and WAL, no checkpoint.
  const crashed = join(root, 'crashed');
  mkdirSync(crashed);
  copyFileSync(store.file, join(crashed, DB_FILE));
  copyFileSync(`${store.file}-wal`, join(crashed, `${DB_FILE}-wal`));
  store.close();

  const reopened = open(crashed);
  t.teardown(() => reopened.close());
  t.equal(reopened.corruption, undefined, 'not corrupt');
  t.equal(count(reopened, 'device_messages'), 500, 'committed rows are there');
  t.equal(reopened.epoch, store.epoch);
  t.equal(await verifySecret(secret, reopened.credentials.get('scale-1')?.secretHash ?? ''), true);
});

t.test('tool mode never moves a damaged file away: it fails instead', async (t) => {
  const f = await filledStore(t);
  overwrite(f.file, 0, Buffer.from('this is no db!!!', 'latin1'));
  const damaged = readFileSync(f.file);
  t.throws(() => open(f.dir, 'tool'), /not a database/);
  t.ok(existsSync(f.file), 'the file stays where it is');
  t.ok(readFileSync(f.file).equals(damaged), 'untouched');
  t.strictSame(corruptFiles(f.dir), [], 'nothing moved aside');
  // Confirm with a plain connection too: the file is still the damaged one.
  t.throws(() => new Database(f.file, { readonly: true }).prepare('SELECT 1 FROM sqlite_master').get(), /not a database/);
});

t.test('an empty database file is reported as corrupt, not taken for a new database', async (t) => {
  const f = await filledStore(t);
  // a file that lost its data: 0 bytes, no WAL
  closeSync(openSync(f.file, 'w'));
  for (const suffix of ['-wal', '-shm']) if (existsSync(f.file + suffix)) closeSync(openSync(f.file + suffix, 'w'));
  const store = open(f.dir);
  t.teardown(() => store.close());
  t.ok(store.corruption, 'reported');
  t.match(store.corruption?.reason, /empty \(0 bytes\)/);
  t.equal(corruptFiles(f.dir).length > 0, true, 'the empty file is kept aside as evidence');
  t.ok(salvagedIncident(store), 'an incident is recorded');
});

t.test('a file that cannot be read (permissions) is not corrupt: the start fails and the file stays', async (t) => {
  if (process.getuid?.() === 0) {
    // root reads any file: make the directory's file a directory instead, which opens with an I/O error
    const dir = t.testdir();
    mkdirSync(join(dir, DB_FILE, 'x'), { recursive: true });
    t.throws(() => open(dir), { code: 'HUB_ERR_STORE_UNAVAILABLE' });
    t.ok(statSync(join(dir, DB_FILE)).isDirectory(), 'left where it is');
    t.strictSame(corruptFiles(dir), [], 'nothing moved aside');
    return;
  }
  const f = await filledStore(t);
  const { chmodSync } = await import('node:fs');
  chmodSync(f.file, 0o000);
  t.teardown(() => chmodSync(f.file, 0o600));
  t.throws(() => open(f.dir), { code: 'HUB_ERR_STORE_UNAVAILABLE' });
  t.strictSame(corruptFiles(f.dir), [], 'nothing moved aside');
});

/**
 * A crash in the middle of a salvage (kill -9, power cut, systemd's start timeout) must leave a
 * state the next start finishes: the states below are what hub/store/salvage-swap.ts can leave.
 */
function damagedCopy(f: Filled): number {
  // a damaged leaf in the middle of the messages
  const mid = f.leafPages[Math.floor(f.leafPages.length / 2)] as number;
  overwrite(f.file, (mid - 1) * f.pageSize, garbage(f.pageSize, 7));
  return f.leafPages.length > 0 ? (f.rowsOnPage.get(mid) ?? 0) : 0;
}

for (const state of ['moved aside, nothing built', 'half built', 'built and renamed, marker not yet removed'] as const) {
  t.test(`a salvage interrupted (${state}) is finished at the next start`, async (t) => {
    const f = await filledStore(t);
    const lost = damagedCopy(f);
    const damaged = `${f.file}.corrupt-2026-12-05T00-00-00-000Z`;
    const { moveAside } = await import('../hub/store/salvage-swap.js');
    moveAside(f.file, damaged, 'database disk image is malformed');
    if (state === 'half built') {
      // the building file of a salvage that died part way: a few rows copied, no epoch, no incident
      const partial = new Database(`${f.file}.salvaging`);
      partial.exec('CREATE TABLE device_messages (id INTEGER PRIMARY KEY, x)');
      partial.close();
    }
    if (state === 'built and renamed, marker not yet removed') {
      const other = new Database(f.file); // a complete-looking hub.db that must not be trusted blindly
      other.exec('CREATE TABLE t (x)');
      other.close();
    }
    const store = open(f.dir);
    t.teardown(() => store.close());
    t.ok(store.corruption, 'the corruption is reported (again)');
    t.equal(store.corruption?.damagedFile, damaged, 'from the file moved aside');
    const recovered = store.corruption?.salvage.tables.find((x) => x.table === 'device_messages')?.recovered ?? -1;
    t.equal(count(store, 'device_messages'), recovered, 'the salvaged rows and nothing from the half-built file');
    t.ok(recovered <= ROWS - lost && recovered >= ROWS * 0.9, `most rows salvaged (${recovered}/${ROWS}), none of the damaged page's ${lost}`);
    t.equal(store.credentials.list().length, 3, 'credentials salvaged');
    t.equal(store.hubId, f.hubId, 'the hub id survives');
    t.ok(store.epoch > f.epoch, 'the epoch moved on');
    t.ok(salvagedIncident(store), 'an incident is recorded');
    t.notOk(existsSync(`${f.file}.salvage-pending`), 'the marker is gone');
    t.notOk(existsSync(`${f.file}.salvaging`), 'no building file is left');
  });
}

t.test('a marker without its damaged file (crash before the move): the original is checked again', async (t) => {
  const f = await filledStore(t);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(`${f.file}.salvage-pending`, JSON.stringify({ damaged: 'hub.db.corrupt-never-moved', reason: 'x' }));
  const store = open(f.dir);
  t.teardown(() => store.close());
  t.equal(store.corruption, undefined, 'a healthy original is opened as it is');
  t.equal(count(store, 'device_messages'), ROWS);
  t.notOk(existsSync(`${f.file}.salvage-pending`), 'the marker is gone');
});

t.test('a tool (the CLI) refuses to open a store whose salvage is unfinished, and creates nothing', async (t) => {
  const f = await filledStore(t);
  damagedCopy(f);
  const { moveAside } = await import('../hub/store/salvage-swap.js');
  moveAside(f.file, `${f.file}.corrupt-x`, 'malformed');
  t.throws(() => open(f.dir, 'tool'), { code: 'HUB_ERR_STORE_UNAVAILABLE', message: /salvage .* unfinished/ });
  t.notOk(existsSync(f.file), 'no empty hub.db was created');
});

t.test('a file cut short by two pages: what comes before the cut is salvaged', async (t) => {
  const f = await filledStore(t);
  const { truncateSync } = await import('node:fs');
  truncateSync(f.file, statSync(f.file).size - 2 * f.pageSize);
  const store = open(f.dir);
  t.teardown(() => store.close());
  t.ok(store.corruption, 'detected');
  t.equal(store.corruption?.salvage.readable, true, `salvage can read the file (${store.corruption?.salvage.error ?? 'no error'})`);
  t.equal(store.credentials.list().length, 3, 'credentials salvaged');
  t.ok(count(store, 'device_messages') > ROWS * 0.9, `most messages salvaged (${count(store, 'device_messages')}/${ROWS})`);
});

t.test('a WAL with a damaged header beside a good database is reported, not silently dropped', async (t) => {
  const root = t.testdir();
  const store = open(join(root, 'live'));
  const insert = store.db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, 1, ?)');
  store.db.transaction(() => {
    for (let i = 0; i < 500; i++) insert.run('d', 't', payloadFor(i), i);
  })();
  const crashed = join(root, 'crashed');
  mkdirSync(crashed);
  copyFileSync(store.file, join(crashed, DB_FILE));
  copyFileSync(`${store.file}-wal`, join(crashed, `${DB_FILE}-wal`));
  store.close();
  overwrite(join(crashed, `${DB_FILE}-wal`), 0, garbage(32, 5)); // the header only; the frames are intact
  const reopened = open(crashed);
  t.teardown(() => reopened.close());
  t.match(reopened.corruption?.reason, /WAL file's header/, 'reported as corruption');
  t.ok(existsSync(`${reopened.corruption?.damagedFile}-wal`), 'the damaged WAL is kept aside as evidence, not reset');
  t.ok(salvagedIncident(reopened), 'an incident is recorded');
});

t.test('a damaged page in the sync outbox (no rowids): the events after it are salvaged too', async (t) => {
  const dir = t.testdir();
  const store = open(dir);
  const insert = store.db.prepare('INSERT INTO outbox (stream, epoch, seq, uid, type, event_time, received_at, body) VALUES (?, 1, ?, ?, ?, ?, ?, ?)');
  const N = 4000;
  store.db.transaction(() => {
    for (let i = 1; i <= N; i++)
      insert.run('ledger', i, `uid-${i}`, 'stock.moved', i, i, JSON.stringify({ sku: `sku-${i % 50}`, qty: i % 7, pad: 'x'.repeat(60) }));
  })();
  const leaves = store.db.prepare(`SELECT pageno, ncell FROM dbstat WHERE name = 'outbox' AND pagetype = 'leaf' ORDER BY path`).all() as {
    pageno: number;
    ncell: number;
  }[];
  const pageSize = store.db.pragma('page_size', { simple: true }) as number;
  const file = store.file;
  store.close();
  t.ok(leaves.length > 20, `the outbox spans ${leaves.length} leaf pages`);
  const victim = leaves[Math.floor(leaves.length / 2)] as { pageno: number; ncell: number };
  overwrite(file, (victim.pageno - 1) * pageSize, garbage(pageSize, 3));

  const reopened = open(dir);
  t.teardown(() => reopened.close());
  t.ok(reopened.corruption, 'detected');
  const outbox = reopened.corruption?.salvage.tables.find((x) => x.table === 'outbox');
  const recovered = count(reopened, 'outbox');
  t.equal(outbox?.recovered, recovered);
  t.ok(recovered <= N - victim.ncell, `the ${victim.ncell} events on the damaged page are lost`);
  // before stepping over bad pages by seq, the copy stopped at the damaged page: about half was lost
  t.ok(recovered >= N - victim.ncell - 10, `the events after the damaged page are salvaged (${recovered}/${N})`);
  const max = reopened.db.prepare("SELECT max(seq) FROM outbox WHERE stream = 'ledger'").pluck().get() as number;
  t.equal(max, N, 'up to the last one');
});

t.test('the hub is told before a salvage starts (to ask systemd for time), and not on a healthy start', async (t) => {
  const f = await filledStore(t);
  const told: string[] = [];
  const healthy = new Store({ dataDir: f.dir, synchronous: 'full', maxBytes: BUDGET, onSalvage: (r) => told.push(r) });
  healthy.close();
  t.strictSame(told, [], 'nothing to salvage');
  overwrite(f.file, 0, Buffer.from('this is no db!!!', 'latin1'));
  const store = new Store({ dataDir: f.dir, synchronous: 'full', maxBytes: BUDGET, onSalvage: (r) => told.push(r) });
  t.teardown(() => store.close());
  t.equal(told.length, 1, 'told once');
  t.equal(told[0], store.corruption?.reason, 'with the reason');
});
