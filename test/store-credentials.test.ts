/** Device credentials (scrypt-hashed secrets, topic namespaces) and API tokens (scopes, verification). */
import Database from 'better-sqlite3';
import t, { type Test } from 'tap';
import { HubError } from '../hub/sdk/errors.js';
import { SCOPES, type Scope, scopeAllows } from '../hub/store/api-tokens.js';
import { defaultTopics } from '../hub/store/device-credentials.js';
import { sha256, verifySecret } from '../hub/store/secrets.js';
import { Store } from '../hub/store/store.js';

function openStore(t: Test, dataDir = t.testdir()): Store {
  const store = new Store({ dataDir, synchronous: 'full', maxBytes: 1024 * 1024 * 1024 });
  t.teardown(() => store.close());
  return store;
}

interface CredentialRow {
  device_id: string;
  kind: string;
  secret_hash: string;
  topics: string;
  created_at: number;
  updated_at: number;
}

function credentialRow(store: Store, deviceId: string): CredentialRow | undefined {
  return store.db.prepare('SELECT * FROM device_credentials WHERE device_id = ?').get(deviceId) as CredentialRow | undefined;
}

t.test('add returns the secret once and stores only its scrypt hash', async (t) => {
  const store = openStore(t);
  const secret = await store.credentials.add('scale-1', 'scale', undefined, 1_234);
  t.type(secret, 'string');
  t.ok(secret.length >= 24, 'a long random secret');

  const row = credentialRow(store, 'scale-1');
  t.ok(row, 'a row exists');
  if (!row) return;
  t.match(row.secret_hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/, 'scrypt$N$r$p$salt$hash');
  for (const [column, value] of Object.entries(row)) {
    t.notOk(String(value).includes(secret), `column ${column} does not contain the secret`);
  }
  t.equal(row.kind, 'scale');
  t.equal(row.created_at, 1_234);
  t.equal(row.updated_at, 1_234);

  t.equal(await verifySecret(secret, row.secret_hash), true, 'the returned secret verifies');
  t.equal(await verifySecret(`${secret}x`, row.secret_hash), false, 'another secret does not');
  t.equal(await verifySecret('', row.secret_hash), false, 'an empty secret does not');
  t.equal(await verifySecret(secret, 'sha256$abc'), false, 'an unknown hash format is rejected');
  // Tamper with a character in the middle of the hash: every bit of it counts (the last one has padding bits).
  const parts = row.secret_hash.split('$');
  const hash = parts[5] ?? '';
  parts[5] = `${hash.slice(0, 20)}${hash[20] === 'A' ? 'B' : 'A'}${hash.slice(21)}`;
  t.equal(await verifySecret(secret, parts.join('$')), false, 'a tampered hash does not verify');

  // A second device gets a different secret and a different salt.
  const other = await store.credentials.add('scale-2', 'scale');
  t.not(other, secret);
  const otherRow = credentialRow(store, 'scale-2');
  t.not(otherRow?.secret_hash.split('$')[4], row.secret_hash.split('$')[4], 'salts differ');
  t.equal(await verifySecret(secret, otherRow?.secret_hash ?? ''), false, "one device's secret does not open another");

  // The credential survives a restart.
  store.close();
  const reopened = openStore(t, store.file.replace(/\/hub\.db$/, ''));
  const cred = reopened.credentials.get('scale-1');
  t.ok(cred);
  t.equal(await verifySecret(secret, cred?.secretHash ?? ''), true, 'verifies after reopening');
});

t.test('a duplicate device id is rejected with HUB_ERR_DEVICE_EXISTS and the original is kept', async (t) => {
  const store = openStore(t);
  const secret = await store.credentials.add('door-1', 'door');
  const before = credentialRow(store, 'door-1');
  let caught: unknown;
  try {
    await store.credentials.add('door-1', 'scale', ['x/#']);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof HubError, 'a HubError');
  t.equal((caught as HubError).code, 'HUB_ERR_DEVICE_EXISTS');
  t.equal((caught as HubError).status, 409);
  t.strictSame(credentialRow(store, 'door-1'), before, 'the stored credential is unchanged');
  t.equal(await verifySecret(secret, before?.secret_hash ?? ''), true);
  t.equal(store.credentials.list().length, 1);
});

t.test('topic filters: {id} is expanded, the default is the device subtree', async (t) => {
  const store = openStore(t);
  await store.credentials.add('cam-7', 'camera', ['stores/+/{id}/frames', 'devices/{id}/#', 'debug/{id}/{id}', 'shared/config']);
  t.strictSame(store.credentials.get('cam-7')?.topics, ['stores/+/cam-7/frames', 'devices/cam-7/#', 'debug/cam-7/cam-7', 'shared/config']);
  t.strictSame(JSON.parse(credentialRow(store, 'cam-7')?.topics ?? 'null'), store.credentials.get('cam-7')?.topics, 'stored expanded');

  await store.credentials.add('tag-1', 'rfid');
  t.strictSame(store.credentials.get('tag-1')?.topics, ['devices/tag-1/#']);
  t.strictSame(defaultTopics('x'), ['devices/x/#']);

  const listed = store.credentials.list();
  t.strictSame(
    listed.map((c) => c.deviceId),
    ['cam-7', 'tag-1'],
    'list is ordered by device id',
  );
  t.strictSame(
    listed.map((c) => c.kind),
    ['camera', 'rfid'],
  );
});

t.test('remove deletes the credential', async (t) => {
  const store = openStore(t);
  await store.credentials.add('a', 'scale');
  await store.credentials.add('b', 'scale');
  t.equal(store.credentials.remove('a'), true);
  t.equal(store.credentials.get('a'), undefined);
  t.equal(credentialRow(store, 'a'), undefined, 'gone from the table');
  t.equal(store.credentials.remove('a'), false, 'removing again reports false');
  t.equal(store.credentials.remove('never-existed'), false);
  t.strictSame(
    store.credentials.list().map((c) => c.deviceId),
    ['b'],
  );
  // The id can be reused after removal, with a fresh secret.
  const secret = await store.credentials.add('a', 'door');
  t.equal(await verifySecret(secret, store.credentials.get('a')?.secretHash ?? ''), true);
  t.equal(store.credentials.get('a')?.kind, 'door');
});

t.test('scopeAllows: read < ops < admin', async (t) => {
  t.strictSame([...SCOPES], ['read', 'ops', 'admin']);
  const expected: Record<Scope, Record<Scope, boolean>> = {
    read: { read: true, ops: false, admin: false },
    ops: { read: true, ops: true, admin: false },
    admin: { read: true, ops: true, admin: true },
  };
  for (const held of SCOPES) {
    for (const needed of SCOPES) {
      t.equal(scopeAllows(held, needed), expected[held][needed], `${held} token for a ${needed} route`);
    }
  }
});

const TOKEN_RE = /^shb_([A-Za-z0-9_-]{8})_([A-Za-z0-9_-]{43})$/;

t.test('API tokens: create, verify, revoke', async (t) => {
  const store = openStore(t);
  const { token, id } = store.tokens.create('ops', 'ci', 1_000);
  const m = TOKEN_RE.exec(token);
  t.ok(m, 'shb_<id>_<secret>');
  t.equal(m?.[1], id);

  const row = store.db.prepare('SELECT * FROM api_tokens WHERE id = ?').get(id) as Record<string, unknown>;
  t.equal(row.secret_hash, sha256(m?.[2] ?? ''), 'SHA-256 of the secret is stored');
  for (const [column, value] of Object.entries(row)) {
    t.notOk(String(value).includes(m?.[2] ?? '<none>'), `column ${column} does not hold the secret`);
  }

  const verified = store.tokens.verify(token, 2_000);
  t.strictSame(verified, { id, name: 'ci', scope: 'ops', createdAt: 1_000, revokedAt: null, lastUsedAt: null });
  t.equal(store.db.prepare('SELECT last_used_at AS u FROM api_tokens WHERE id = ?').pluck().get(id), 2_000, 'first use recorded');
  store.tokens.verify(token, 2_000 + 30_000);
  t.equal(store.db.prepare('SELECT last_used_at AS u FROM api_tokens WHERE id = ?').pluck().get(id), 2_000, 'not rewritten within a minute');
  t.equal(store.tokens.verify(token, 2_000 + 61_000)?.lastUsedAt, 2_000, 'the record shows the previous use');
  t.equal(store.db.prepare('SELECT last_used_at AS u FROM api_tokens WHERE id = ?').pluck().get(id), 63_000, 'rewritten after a minute');

  const admin = store.tokens.create('admin', 'root');
  const read = store.tokens.create('read');
  t.equal(store.tokens.verify(admin.token)?.scope, 'admin');
  t.equal(store.tokens.verify(read.token)?.scope, 'read');
  t.equal(store.tokens.verify(read.token)?.name, '', 'name defaults to empty');
  t.not(admin.id, read.id);

  t.equal(store.tokens.revoke(id, 5_000), true);
  t.equal(store.tokens.verify(token), undefined, 'a revoked token is refused');
  t.equal(store.tokens.revoke(id, 6_000), false, 'revoking twice reports false');
  t.equal(store.tokens.revoke('nosuchid'), false);
  const listed = store.tokens.list().find((x) => x.id === id);
  t.equal(listed?.revokedAt, 5_000, 'the first revocation time is kept');
  t.equal(store.tokens.verify(admin.token)?.id, admin.id, 'other tokens still work');
  t.equal(store.tokens.list().length, 3);

  t.throws(() => store.tokens.create('root' as Scope), /CHECK constraint/, 'the table refuses an unknown scope');
});

t.test('malformed and tampered tokens are rejected', async (t) => {
  const store = openStore(t);
  const { token, id } = store.tokens.create('admin');
  const other = store.tokens.create('admin');
  t.ok(store.tokens.verify(token), 'the genuine token verifies');
  const secret = token.slice(`shb_${id}_`.length);
  const otherSecret = other.token.slice(`shb_${other.id}_`.length);
  const flip = (s: string, at: number) => s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1);

  const bad: Record<string, string> = {
    empty: '',
    'prefix only': 'shb_',
    'bearer prefix kept': `Bearer ${token}`,
    'wrong prefix': `shx_${id}_${secret}`,
    'upper-case prefix': `SHB_${id}_${secret}`,
    'short secret': token.slice(0, -1),
    'long secret': `${token}A`,
    'trailing newline': `${token}\n`,
    'leading space': ` ${token}`,
    'short id': `shb_${id.slice(1)}_${secret}`,
    'bad character': `shb_${id}_${secret.slice(0, -1)}=`,
    'first secret char flipped': `shb_${id}_${flip(secret, 0)}`,
    'last secret char flipped': `shb_${id}_${flip(secret, 42)}`,
    'id char flipped': `shb_${flip(id, 3)}_${secret}`,
    "another token's secret": `shb_${id}_${otherSecret}`,
    "another token's id": `shb_${other.id}_${secret}`,
    'unknown id': `shb_AAAAAAAA_${secret}`,
  };
  for (const [what, presented] of Object.entries(bad)) {
    t.equal(store.tokens.verify(presented), undefined, `rejected: ${what}`);
  }
  t.ok(store.tokens.verify(token), 'the genuine token still verifies');
  t.ok(store.tokens.verify(other.token));
});

t.test('a token is verified by a second connection (another process) reading the same file', async (t) => {
  const store = openStore(t);
  const { token, id } = store.tokens.create('read');
  const other = new Database(store.file, { readonly: true });
  t.teardown(() => other.close());
  const hash = other.prepare('SELECT secret_hash FROM api_tokens WHERE id = ?').pluck().get(id);
  t.equal(hash, sha256(token.slice(`shb_${id}_`.length)), 'committed as soon as create returns');
});

t.test('a device gets a namespace of its own: plain ids, valid filters, no wildcard first level, no overlap', async (t) => {
  const store = openStore(t);
  const refused = async (id: string, topics: string[] | undefined, pattern: RegExp) => {
    const err = await store.credentials.add(id, 'x', topics).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof HubError && err.code === 'HUB_ERR_DEVICE_INVALID', `${id} ${JSON.stringify(topics)} refused`);
    t.match((err as Error).message, pattern);
    t.equal(store.credentials.get(id), undefined, 'nothing stored');
  };
  // ids that would be wildcards (or levels) in their own default namespace devices/<id>/#
  await refused('+', undefined, /device id "\+"/);
  await refused('#', undefined, /device id/);
  await refused('a/b', undefined, /device id/);
  await refused('', undefined, /device id/);
  // filters reaching into everyone's topics, or not filters at all
  await refused('cam-1', ['#'], /must start with a literal level/);
  await refused('cam-1', ['+/cam-1/#'], /must start with a literal level/);
  await refused('cam-1', ['/cam-1'], /must start with a literal level/);
  await refused('cam-1', ['$SYS/#'], /'\$' topics belong to the broker/);
  await refused('cam-1', ['cams/#/x'], /'#' must be a whole level and the last one/);
  await refused('cam-1', ['cams/a+b'], /'\+' must be a whole level/);
  await refused('cam-1', [], /at least one topic filter/);

  await store.credentials.add('reader-1', 'rfid-reader', ['impinj/{id}/#']);
  await store.credentials.add('screen-1', 'guide-screen');
  // overlapping another device's namespace, in either direction and through wildcards
  await refused('reader-2', ['impinj/#'], /overlaps "impinj\/reader-1\/#" of device reader-1/);
  await refused('reader-2', ['impinj/+/events'], /overlaps .* of device reader-1/);
  await refused('reader-2', ['impinj/reader-1/events'], /overlaps .* of device reader-1/);
  await refused('screen-2', ['devices/+/#'], /overlaps "devices\/screen-1\/#" of device screen-1/);
  // disjoint namespaces are fine, with or without the id in them
  await store.credentials.add('reader-2', 'rfid-reader', ['impinj/{id}/#']);
  await store.credentials.add('robot-1', 'robot', ['uagv/v2/ACME/{id}/#']);
  await store.credentials.add('tag-ap', 'esl-ap', ['esl/ap-7/+/status', 'esl/ap-7/cmd']);
  t.strictSame(
    store.credentials.list().map((c) => c.deviceId),
    ['reader-1', 'reader-2', 'robot-1', 'screen-1', 'tag-ap'],
  );
});
