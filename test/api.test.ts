import t from 'tap';
import { type Harness, metricValue, startHub } from './helpers/hub-harness.js';

async function call(h: Harness, path: string, init: RequestInit & { token?: string } = {}) {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  if (init.body) headers.set('content-type', 'application/json');
  const res = await fetch(`${h.apiUrl}${path}`, { ...init, headers });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: body as Record<string, unknown>, type: res.headers.get('content-type') ?? '' };
}

t.test('HTTP API', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const tokens = h.hub.store!.tokens;
  const read = tokens.create('read', 'dashboard').token;
  const ops = tokens.create('ops', 'hq-ops').token;
  const admin = tokens.create('admin', 'store-it').token;

  t.test('/healthz is open and names its checks', async (t) => {
    const r = await call(h, '/healthz');
    t.equal(r.status, 200);
    t.equal(r.body.status, 'ok');
    const names = Object.keys(r.body.checks as object);
    for (const name of ['broker', 'store', 'sync']) t.ok(names.includes(name), `names ${name}`);
  });

  t.test('/healthz answers 503 naming the failing check', async (t) => {
    const off = h.hub.health.register('camera-1', () => ({ ok: false, detail: 'no frames for 30 s' }));
    const r = await call(h, '/healthz');
    off();
    t.equal(r.status, 503);
    t.equal(r.body.status, 'unavailable');
    t.same((r.body.checks as Record<string, unknown>)['camera-1'], { ok: false, detail: 'no frames for 30 s' });
  });

  t.test('/metrics is Prometheus text with the hub metrics', async (t) => {
    const r = await call(h, '/metrics');
    t.equal(r.status, 200);
    t.match(r.type, /text\/plain/);
    for (const name of [
      'storehub_broker_clients',
      'storehub_store_used_bytes',
      'storehub_service_up{service="broker"} 1',
      'storehub_process_resident_memory_bytes',
    ]) {
      t.ok(String(r.body).includes(name), name);
    }
  });

  t.test('bearer tokens and scopes: read < ops < admin', async (t) => {
    const missing = await call(h, '/api/v1/status');
    t.equal(missing.status, 401);
    t.equal(missing.body.code, 'HUB_ERR_AUTH_MISSING');
    const bad = await call(h, '/api/v1/status', { token: 'shb_AAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    t.equal(bad.status, 401);
    t.equal(bad.body.code, 'HUB_ERR_AUTH_INVALID');
    t.equal((await call(h, '/api/v1/status', { token: read })).status, 200);
    t.equal((await call(h, '/api/v1/status', { token: admin })).status, 200, 'admin includes read');
    const under = await call(h, '/api/v1/tokens', { token: ops });
    t.equal(under.status, 403);
    t.equal(under.body.code, 'HUB_ERR_AUTH_SCOPE');
    t.equal(await metricValue(h.hub, 'storehub_api_auth_failures_total', { reason: 'scope' }), 1);
  });

  t.test('status reports store, hub and database', async (t) => {
    const r = await call(h, '/api/v1/status', { token: read });
    t.equal((r.body.store as { id: string }).id, 'test-store');
    t.equal((r.body.hub as { epoch: number }).epoch, h.hub.store?.epoch);
    t.equal((r.body.database as { budgetExceeded: boolean }).budgetExceeded, false);
  });

  t.test('tokens can be created and revoked over the API; revocation is immediate', async (t) => {
    const created = await call(h, '/api/v1/tokens', { method: 'POST', token: admin, body: JSON.stringify({ scope: 'read', name: 'wallboard' }) });
    t.equal(created.status, 201);
    const fresh = created.body.token as string;
    t.equal((await call(h, '/api/v1/status', { token: fresh })).status, 200);
    const list = await call(h, '/api/v1/tokens', { token: admin });
    t.notOk(JSON.stringify(list.body).includes(fresh.slice(-20)), 'secrets never listed');
    t.equal((await call(h, `/api/v1/tokens/${created.body.id}`, { method: 'DELETE', token: admin })).status, 204);
    t.equal((await call(h, '/api/v1/status', { token: fresh })).status, 401);
    const again = await call(h, `/api/v1/tokens/${created.body.id}`, { method: 'DELETE', token: admin });
    t.equal(again.status, 404);
    t.equal(again.body.code, 'HUB_ERR_API_NOT_FOUND');
  });

  t.test('request schemas reject bad input with a coded error and no stack', async (t) => {
    const r = await call(h, '/api/v1/tokens', { method: 'POST', token: admin, body: JSON.stringify({ scope: 'root' }) });
    t.equal(r.status, 400);
    t.equal(r.body.code, 'HUB_ERR_API_VALIDATION');
    t.notOk('stack' in r.body);
    const extra = await call(h, '/api/v1/tokens', { method: 'POST', token: admin, body: JSON.stringify({ scope: 'read', admin: true }) });
    t.equal(extra.status, 400, 'unknown body keys rejected');
    const notJson = await call(h, '/api/v1/tokens', { method: 'POST', token: admin, body: '{"scope":' });
    t.equal(notJson.status, 400);
    t.notOk('stack' in notJson.body);
    const nowhere = await call(h, '/api/v1/nothing');
    t.equal(nowhere.status, 404);
    t.equal(nowhere.body.code, 'HUB_ERR_API_NOT_FOUND');
  });

  t.test('the token is checked before the body is read: 401/403 whatever the body, no schema details', async (t) => {
    const anonBadBody = await call(h, '/api/v1/tokens', { method: 'POST', body: JSON.stringify({ scope: 'root' }) });
    t.equal(anonBadBody.status, 401, 'no token and an invalid body: 401, not a 400 describing the admin schema');
    t.notOk('details' in anonBadBody.body, 'no schema details for an anonymous caller');
    const anonMalformed = await call(h, '/api/v1/jobs', { method: 'POST', body: '{"type":' });
    t.equal(anonMalformed.status, 401, 'no token: the body is not even parsed');
    const readOnAdmin = await call(h, '/api/v1/device-credentials', { method: 'POST', token: read, body: JSON.stringify({ deviceId: 'x' }) });
    t.equal(readOnAdmin.status, 403, 'a read token on an admin route: 403 whatever the body');
  });

  t.test('a URL that does not decode gets a coded 400', async (t) => {
    const r = await call(h, '/api/v1/devices/%E0%A4%A', { token: read });
    t.equal(r.status, 400);
    t.strictSame(Object.keys(r.body).sort(), ['code', 'message'], 'only {code, message}');
    t.equal(r.body.code, 'HUB_ERR_API_VALIDATION');
  });

  t.test('oversize bodies are refused with 413', async (t) => {
    const r = await call(h, '/api/v1/tokens', { method: 'POST', token: admin, body: JSON.stringify({ scope: 'read', name: 'x'.repeat(2 * 1024 * 1024) }) });
    t.equal(r.status, 413);
    t.equal(r.body.code, 'HUB_ERR_API_PAYLOAD_TOO_LARGE');
  });

  t.test('device credentials over the API', async (t) => {
    const r = await call(h, '/api/v1/device-credentials', {
      method: 'POST',
      token: admin,
      body: JSON.stringify({ deviceId: 'agv-7', kind: 'robot', topics: ['uagv/v2/ACME/{id}/#'] }),
    });
    t.equal(r.status, 201);
    t.same(r.body.topics, ['uagv/v2/ACME/agv-7/#']);
    t.type(r.body.secret, 'string');
    const dup = await call(h, '/api/v1/device-credentials', { method: 'POST', token: admin, body: JSON.stringify({ deviceId: 'agv-7', kind: 'robot' }) });
    t.equal(dup.status, 409);
    t.equal(dup.body.code, 'HUB_ERR_DEVICE_EXISTS');
    const list = await call(h, '/api/v1/device-credentials', { token: admin });
    t.notOk(JSON.stringify(list.body).includes('scrypt'), 'hashes never leave the hub');
    t.equal((await call(h, '/api/v1/device-credentials/agv-7', { method: 'DELETE', token: admin })).status, 204);
    t.equal((await call(h, '/api/v1/device-credentials/agv-7', { method: 'DELETE', token: admin })).status, 404);
  });

  t.test('device credentials created at the same moment: one wins, the other gets the coded refusal', async (t) => {
    const post = (deviceId: string, topics?: string[]) =>
      call(h, '/api/v1/device-credentials', { method: 'POST', token: admin, body: JSON.stringify({ deviceId, kind: 'shelf', ...(topics ? { topics } : {}) }) });
    const same = await Promise.all([post('race-1'), post('race-1')]);
    t.strictSame(same.map((r) => r.status).sort(), [201, 409], 'the same id twice: 201 and 409, never a 500');
    const overlap = await Promise.all([post('race-a', ['race/zone/#']), post('race-b', ['race/zone/#'])]);
    t.strictSame(overlap.map((r) => r.status).sort(), [201, 400], 'two devices asking for the same namespace at once: one is refused');
    t.equal(h.hub.store!.credentials.list().filter((c) => c.topics.includes('race/zone/#')).length, 1, 'one device holds it');
  });

  t.test('messages are paged by cursor', async (t) => {
    const journal = h.hub.store!.journal;
    await new Promise<void>((resolve, reject) => {
      let left = 5;
      for (let i = 0; i < 5; i++) {
        journal.append({ deviceId: 'd1', topic: 'devices/d1/x', payload: Buffer.from(`m${i}`), qos: 1, receivedAt: Date.now() }, (err) =>
          err ? reject(err) : --left === 0 && resolve(),
        );
      }
    });
    const p1 = await call(h, '/api/v1/messages?limit=3', { token: read });
    t.equal((p1.body.items as unknown[]).length, 3);
    t.type(p1.body.next, 'string');
    const p2 = await call(h, `/api/v1/messages?limit=3&cursor=${p1.body.next}`, { token: read });
    const items = p2.body.items as { payloadBase64: string }[];
    t.same(
      items.map((i) => Buffer.from(i.payloadBase64, 'base64').toString()),
      ['m3', 'm4'],
    );
    t.equal(p2.body.next, null);
  });

  t.test('OpenAPI document at /docs/json describes the routes', async (t) => {
    const r = await call(h, '/docs/json');
    t.equal(r.status, 200);
    t.equal((r.body as { openapi: string }).openapi.slice(0, 2), '3.');
    const paths = Object.keys(r.body.paths as object);
    for (const p of ['/healthz', '/metrics', '/api/v1/status', '/api/v1/tokens', '/api/v1/messages', '/api/v1/device-credentials']) t.ok(paths.includes(p), p);
    type Op = { security?: unknown; 'x-storehub-scope'?: string; description?: string };
    const ops = r.body.paths as Record<string, Record<string, Op>>;
    t.equal(ops['/api/v1/tokens']?.post?.['x-storehub-scope'], 'admin', 'each operation names its scope');
    t.equal(ops['/api/v1/status']?.get?.['x-storehub-scope'], 'read');
    t.match(ops['/api/v1/jobs']?.post?.description, /scope ops or higher/);
    const unscoped = Object.entries(ops)
      .filter(([path]) => path.startsWith('/api/v1/'))
      .flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => [`${m} ${path}`, op] as const))
      .filter(([, op]) => !op['x-storehub-scope'] || !op.security);
    t.strictSame(
      unscoped.map(([name]) => name),
      [],
      'every /api/v1 operation has bearer security and a scope',
    );
  });

  t.test('the dashboard is served at /', async (t) => {
    const r = await call(h, '/');
    t.equal(r.status, 200);
    t.match(r.type, /text\/html/);
    t.match(String(r.body), /<title>storehub<\/title>/);
  });
});
