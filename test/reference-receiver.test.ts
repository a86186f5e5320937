/**
 * The reference receiver (reference-receiver/): the ledger's exactly-once rules, a property over any
 * delivery order, the HTTPS server's answers and faults as a hub sees them, the MQTT consumer against a
 * real mosquitto, and the command line.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import t from 'tap';
import { Agent, request } from 'undici';
import { type FaultInjection, ReceiverHttpServer } from '../reference-receiver/http-server.js';
import { type LedgerRecord, LedgerStore, MalformedBatchError } from '../reference-receiver/ledger-store.js';
import { type BatchEvent, MqttConsumer } from '../reference-receiver/mqtt-consumer.js';
import { freePort } from './helpers/hub-process.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { makeCertificates } from './helpers/tls-certs.js';

const HUB = 'hub-1';
const STORE = 'store-1';

interface RecOpts {
  epoch?: number;
  sku?: string;
  location?: string;
  delta?: number;
  id?: string;
  type?: string;
  hub?: string;
}

function rec(seq: number, o: RecOpts = {}): LedgerRecord {
  const epoch = o.epoch ?? 1;
  return {
    id: o.id ?? `${o.hub ?? HUB}-e${epoch}-${seq}`,
    hub: o.hub ?? HUB,
    store: STORE,
    stream: 'ledger',
    epoch,
    seq,
    type: o.type ?? 'stock.delta',
    eventTime: 1_700_000_000_000 + seq,
    receivedAt: 1_700_000_000_100 + seq,
    body: { sku: o.sku ?? 'sku-a', location: o.location ?? 'shelf-1', delta: o.delta ?? 1, reason: 'sale', source: 'pos' },
  };
}

function folded(seqs: number[], delta: number, o: RecOpts = {}): LedgerRecord {
  const r = rec(seqs[0]!, { ...o, type: 'stock.delta.folded' });
  return { ...r, body: { sku: o.sku ?? 'sku-a', location: o.location ?? 'shelf-1', delta }, replaces: { from: seqs[0]!, to: seqs[seqs.length - 1]!, seqs } };
}

function batch(records: LedgerRecord[], epoch = records[0]?.epoch ?? 1, hub = HUB) {
  return { hub, store: STORE, stream: 'ledger', epoch, records };
}

const seqRange = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
/** Test inputs that break the record type on purpose. */
const bad = (r: object) => r as unknown as LedgerRecord;
const quantity = (s: LedgerStore, sku = 'sku-a', location = 'shelf-1') => s.balances({ hub: HUB, sku, location })[0]?.quantity ?? 0;

t.test('ledger store: exactly-once rules', async (t) => {
  const fresh = () => {
    const s = new LedgerStore({ file: ':memory:' });
    t.teardown(() => s.close());
    return s;
  };

  t.test('in order, then duplicates are counted and ignored', async (t) => {
    const s = fresh();
    t.same(s.apply(batch([rec(1, { delta: 5 }), rec(2, { delta: -2 })])), { epoch: 1, appliedThrough: 2, applied: 2, duplicates: 0, gap: false });
    t.same(s.apply(batch([rec(1, { delta: 5 }), rec(2, { delta: -2 }), rec(3, { delta: -1 })])), {
      epoch: 1,
      appliedThrough: 3,
      applied: 1,
      duplicates: 2,
      gap: false,
    });
    t.equal(quantity(s), 2, '5 - 2 - 1, each applied once');
    t.same(s.cursor(HUB, 'ledger'), { epoch: 1, appliedThrough: 3 });
    const st = s.stats();
    t.same([st.applied, st.duplicates, st.gaps, st.rejected, st.batches], [3, 2, 0, 0, 2]);
  });

  t.test('a gap stops the batch there and reports where the receiver stands', async (t) => {
    const s = fresh();
    s.apply(batch([rec(1), rec(2)]));
    t.same(s.apply(batch([rec(5), rec(6)])), { epoch: 1, appliedThrough: 2, applied: 0, duplicates: 0, gap: true }, 'nothing applied past the gap');
    t.same(s.apply(batch([rec(3), rec(4), rec(6), rec(7)])), { epoch: 1, appliedThrough: 4, applied: 2, duplicates: 0, gap: true }, 'applied up to the gap');
    t.same(s.seqs(HUB, 'ledger', 1).applied, [1, 2, 3, 4]);
    t.equal(s.stats().gaps, 2);
    t.same(s.apply(batch([rec(5), rec(6), rec(7)])).appliedThrough, 7, 'the hub rewinds to appliedThrough + 1 and everything lands');
  });

  t.test('a folded record covers the seqs it replaces', async (t) => {
    const s = fresh();
    s.apply(batch([rec(1, { delta: 10 })]));
    // Seqs 2, 4 and 5 were deltas of sku-a folded into one record at 2; 3 and 6 are another SKU.
    const r = s.apply(batch([folded([2, 4, 5], -3), rec(3, { sku: 'sku-b', delta: 7 }), rec(6, { sku: 'sku-b', delta: -1 })]));
    t.same(r, { epoch: 1, appliedThrough: 6, applied: 3, duplicates: 0, gap: false }, 'appliedThrough advanced over 4 and 5');
    t.same(s.seqs(HUB, 'ledger', 1), { applied: [1, 2, 3, 6], covered: [4, 5] });
    t.equal(quantity(s), 7);
    t.equal(quantity(s, 'sku-b'), 6);
    t.same(s.apply(batch([rec(4, { delta: 100 })])).duplicates, 1, 'a replaced seq arriving later is a duplicate');
    t.equal(quantity(s), 7, 'and changes nothing');
  });

  t.test('a folded record applied before its covered seqs are reached', async (t) => {
    const s = fresh();
    t.same(s.apply(batch([rec(1), folded([2, 5], 4)])).appliedThrough, 2, 'covered 5 is not reachable yet (3, 4 missing)');
    t.same(s.apply(batch([rec(3), rec(4)])).appliedThrough, 5, 'reaching 4 advances over the covered 5');
    t.same(s.apply(batch([rec(5), rec(6)])), { epoch: 1, appliedThrough: 6, applied: 1, duplicates: 1, gap: false });
    t.same(s.apply(batch([folded([8, 9], 1)])).gap, true, 'a folded record beyond appliedThrough + 1 is a gap like any other');
  });

  t.test('a new epoch starts its own cursor; the same fact re-sent in it is not applied twice', async (t) => {
    const s = fresh();
    s.apply(batch([rec(1, { delta: 4 }), rec(2, { delta: 1 }), rec(3, { delta: 1 })]));
    // The salvaged database re-sends fact 3 (same id) as seq 1 of epoch 2, then a new fact.
    const again = { ...rec(1, { epoch: 2, delta: 1 }), id: `${HUB}-e1-3` };
    t.same(s.apply(batch([again, rec(2, { epoch: 2, delta: 2 })], 2)), { epoch: 2, appliedThrough: 2, applied: 1, duplicates: 1, gap: false });
    t.equal(quantity(s), 8, '4 + 1 + 1 + 2: fact 3 counted once');
    t.same(s.cursor(HUB, 'ledger'), { epoch: 2, appliedThrough: 2 }, 'the cursor answers for the newest epoch');
    t.same(s.cursor(HUB, 'ledger', 1), { epoch: 1, appliedThrough: 3 }, 'the old epoch is still known');
    t.same(s.cursor(HUB, 'events'), { epoch: 0, appliedThrough: 0 }, 'an unknown stream: nothing applied');
    t.same(s.seqs(HUB, 'ledger', 2), { applied: [2], covered: [1] });
  });

  t.test('the same key with another id is a reused epoch: refused, not dropped as a duplicate', async (t) => {
    const s = fresh();
    s.apply(batch([rec(1), rec(2)]));
    t.throws(() => s.apply(batch([rec(2, { id: 'a-new-fact' }), rec(3)])), { name: 'MalformedBatchError', code: 'key_conflict' });
    t.same(s.cursor(HUB, 'ledger').appliedThrough, 2, 'seq 3 of that batch was rolled back with it');
    t.match(s.stats(), { rejected: 1, batches: 2, applied: 2, duplicates: 0 }, 'counted as rejected; its duplicate was rolled back too');
    t.equal(s.apply(batch([rec(2), rec(3)])).appliedThrough, 3, 'the genuine duplicate is still fine');
  });

  t.test('a malformed batch is rejected whole: nothing applied', async (t) => {
    const s = fresh();
    s.apply(batch([rec(1)]));
    const cases: Array<[string, unknown]> = [
      ['not an object', 'hello'],
      ['records missing', { hub: HUB, store: STORE, stream: 'ledger', epoch: 1 }],
      ['a record without an id', batch([rec(2), bad({ ...rec(3), id: undefined })])],
      ['seq zero', batch([rec(2), { ...rec(3), seq: 0 }])],
      ['fractional seq', batch([rec(2), { ...rec(3), seq: 3.5 }])],
      ['descending seqs', batch([rec(3), rec(2)])],
      ['repeated seq', batch([rec(2), rec(2)])],
      ['a record of another hub', batch([rec(2), rec(3, { hub: 'hub-2' })])],
      ['a record of another epoch', batch([rec(2), rec(3, { epoch: 2 })], 1)],
      ['a stock delta without a sku', batch([rec(2), { ...rec(3), body: { location: 'x', delta: 1, reason: 'sale' } }])],
      ['a stock delta that is not a number', batch([rec(2), { ...rec(3), body: { sku: 'a', location: 'x', delta: '1', reason: 'sale' } }])],
      ['a body that is an array', batch([rec(2), bad({ ...rec(3, { type: 'device.event' }), body: [] })])],
      ['a folded record without replaces', batch([rec(2), { ...folded([3, 4], 1), replaces: undefined }])],
      ['replaces not starting at the seq', batch([rec(2), { ...folded([3, 4], 1), replaces: { from: 4, to: 4, seqs: [4] } }])],
      ['replaces.to not the last seq', batch([rec(2), { ...folded([3, 4], 1), replaces: { from: 3, to: 9, seqs: [3, 4] } }])],
      ['a replaced seq also sent', batch([rec(2), folded([3, 5], 1), rec(5)])],
      ['replaces on a plain delta', batch([rec(2), { ...rec(3), replaces: { from: 3, to: 3, seqs: [3] } }])],
    ];
    for (const [name, input] of cases) {
      t.throws(() => s.apply(input), MalformedBatchError, name);
    }
    t.throws(() => s.apply(batch([rec(2)]), { hub: 'hub-2' }), MalformedBatchError, 'the body names another hub than the URL');
    t.same(s.cursor(HUB, 'ledger'), { epoch: 1, appliedThrough: 1 }, 'no record of any rejected batch was applied');
    t.same(s.seqs(HUB, 'ledger', 1).applied, [1]);
    t.equal(s.stats().rejected, cases.length + 1);
    t.ok(s.apply(batch([{ ...rec(2), extra: 'a newer hub field' } as LedgerRecord])).applied === 1, 'unknown extra fields are accepted');
  });

  t.test('FULL durability on every open, not only the first (FACTS.md)', async (t) => {
    const file = join(t.testdir(), 'ledger.db');
    new LedgerStore({ file }).close();
    const s = new LedgerStore({ file });
    t.teardown(() => s.close());
    t.equal(s.db.pragma('synchronous', { simple: true }), 2);
    t.equal(s.db.pragma('journal_mode', { simple: true }), 'wal');
  });
});

t.test('property: any delivery order and duplication, retried until accepted, applies each seq exactly once', async (t) => {
  const delta = fc.record({ sku: fc.constantFrom('a', 'b', 'c'), location: fc.constantFrom('front', 'back'), delta: fc.integer({ min: -5, max: 5 }) });
  const scenario = fc.record({
    deltas: fc.array(delta, { minLength: 1, maxLength: 25 }),
    foldFrom: fc.option(fc.nat(), { nil: undefined }),
    sizes: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 10 }),
    deliveries: fc.array(fc.nat(), { maxLength: 30 }),
    hubBatch: fc.integer({ min: 1, max: 6 }),
  });
  fc.assert(
    fc.property(scenario, ({ deltas, foldFrom, sizes, deliveries, hubBatch }) => {
      const n = deltas.length;
      const raw = deltas.map((d, i) => rec(i + 1, d));
      // The hub folds the unsent tail (from foldFrom on) per SKU and location, like the outbox does.
      let wire = raw;
      if (foldFrom !== undefined) {
        const from = (foldFrom % n) + 1;
        const groups = new Map<string, LedgerRecord[]>();
        for (const r of raw.slice(from - 1)) {
          const b = r.body as { sku: string; location: string };
          const k = `${b.sku}/${b.location}`;
          groups.set(k, [...(groups.get(k) ?? []), r]);
        }
        wire = raw.slice(0, from - 1);
        for (const g of groups.values()) {
          const sum = g.reduce((acc, r) => acc + (r.body as { delta: number }).delta, 0);
          const b = g[0]!.body as { sku: string; location: string };
          wire.push(
            g.length === 1
              ? g[0]!
              : folded(
                  g.map((r) => r.seq),
                  sum,
                  { sku: b.sku, location: b.location },
                ),
          );
        }
        wire.sort((x, y) => x.seq - y.seq);
      }
      const batches: LedgerRecord[][] = [];
      for (let i = 0, k = 0; i < wire.length; k++) {
        const size = sizes[k % sizes.length]!;
        batches.push(wire.slice(i, i + size));
        i += size;
      }
      const s = new LedgerStore({ file: ':memory:' });
      try {
        // The network: any batches, any order, any number of times.
        for (const d of deliveries) s.apply(batch(batches[d % batches.length]!));
        // The hub: resend from appliedThrough + 1 until everything is acknowledged.
        for (let round = 0; s.cursor(HUB, 'ledger').appliedThrough < n; round++) {
          if (round > n) throw new Error('no progress');
          const through = s.cursor(HUB, 'ledger').appliedThrough;
          s.apply(batch(wire.filter((r) => r.seq > through).slice(0, hubBatch)));
        }
        const seqs = s.seqs(HUB, 'ledger', 1);
        if (JSON.stringify(seqs.applied) !== JSON.stringify(wire.map((r) => r.seq))) throw new Error(`applied ${seqs.applied}`);
        if (JSON.stringify([...seqs.applied, ...seqs.covered].sort((a, b) => a - b)) !== JSON.stringify(seqRange(1, n)))
          throw new Error('seqs not covered exactly');
        if (s.stats().applied !== wire.length) throw new Error(`applied count ${s.stats().applied}`);
        const expected = new Map<string, number>();
        for (const d of deltas) expected.set(`${d.sku}/${d.location}`, (expected.get(`${d.sku}/${d.location}`) ?? 0) + d.delta);
        const got = new Map(s.balances({ hub: HUB }).map((b) => [`${b.sku}/${b.location}`, b.quantity]));
        if (JSON.stringify([...expected].sort()) !== JSON.stringify([...got].sort())) throw new Error(`balances ${[...got]} != ${[...expected]}`);
      } finally {
        s.close();
      }
    }),
    { numRuns: 300 },
  );
  t.pass('300 random deliveries converged to exactly-once');
});

t.test('HTTPS server', async (t) => {
  const dir = t.testdir(); // once: a second t.testdir() call would start the fixture dir afresh
  const certs = makeCertificates(dir);
  const store = new LedgerStore({ file: join(dir, 'ledger.db') });
  const server = new ReceiverHttpServer({ store, https: { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) }, token: 'sesame' });
  const url = await server.listen();
  const agent = new Agent({ connect: { ca: readFileSync(certs.ca) } });
  t.teardown(async () => {
    await agent.close();
    await server.close();
    store.close();
  });
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const path = `/v1/hubs/${HUB}/streams/ledger`;

  async function post(records: LedgerRecord[] | unknown, headers: Record<string, string> = {}, extra: { timeout?: number; hub?: string } = {}) {
    const body = Array.isArray(records) ? batch(records as LedgerRecord[], undefined, extra.hub) : records;
    const r = await request(`${url}/v1/hubs/${extra.hub ?? HUB}/streams/ledger/batches`, {
      method: 'POST',
      dispatcher: agent,
      headers: { authorization: 'Bearer sesame', 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      ...(extra.timeout ? { signal: AbortSignal.timeout(extra.timeout) } : {}),
    });
    const text = await r.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: r.statusCode, json, text, headers: r.headers };
  }
  const get = async (p: string, token = 'sesame') => {
    const r = await request(`${url}${p}`, { dispatcher: agent, headers: { authorization: `Bearer ${token}` } });
    return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
  };
  const faults = (f: FaultInjection) => server.injectFaults(f);

  t.test('answers: 200, duplicate 200, 409 gap, cursor', async (t) => {
    const ok = await post([rec(1, { delta: 3 }), rec(2, { delta: 2 })]);
    t.equal(ok.status, 200);
    t.same(ok.json, { epoch: 1, appliedThrough: 2 }, 'applied');
    t.same((await post([rec(1, { delta: 3 }), rec(2, { delta: 2 })])).json, { epoch: 1, appliedThrough: 2 }, 'a duplicate batch is answered the same');
    const gap = await post([rec(5)]);
    t.equal(gap.status, 409);
    t.same(gap.json, { code: 'gap', epoch: 1, appliedThrough: 2 });
    t.same((await get(`${path}/cursor`)).json, { epoch: 1, appliedThrough: 2 });
    t.same((await get(`${path}/cursor?epoch=7`)).json, { epoch: 7, appliedThrough: 0 });
    t.same((await get(`/v1/stock?hub=${HUB}&sku=sku-a`)).json, { balances: [{ hub: HUB, store: STORE, sku: 'sku-a', location: 'shelf-1', quantity: 5 }] });
    const stats = (await get('/v1/stats')).json;
    t.equal(stats.applied, 2);
    t.equal(stats.duplicates, 2);
    t.equal(stats.gaps, 1);
  });

  t.test('malformed requests: 422 or 400 with a code, nothing applied', async (t) => {
    const bad = await post([rec(3), { ...rec(4), seq: -1 }]);
    t.equal(bad.status, 422);
    t.match(bad.json, { code: 'malformed', message: /records\/1\/seq/ });
    const other = await post([rec(3)], {}, { hub: 'hub-2' });
    t.equal(other.status, 422, 'body for hub-1 posted to hub-2');
    const json = await post('{"hub": ', {});
    t.equal(json.status, 400);
    t.match(json.json, { code: 'invalid_json' });
    const type = await post('x', { 'content-type': 'text/plain' });
    t.equal(type.status, 400);
    t.match(type.json, { code: 'unsupported_media_type' });
    t.same((await get(`${path}/cursor`)).json, { epoch: 1, appliedThrough: 2 }, 'still where it was');
  });

  t.test('authentication', async (t) => {
    const none = await request(`${url}${path}/cursor`, { dispatcher: agent });
    t.equal(none.statusCode, 401);
    t.equal(none.headers['www-authenticate'], 'Bearer');
    t.match(await none.body.json(), { code: 'unauthorized' });
    t.equal((await get(`${path}/cursor`, 'wrong')).status, 401);
    const r = await post([rec(3)], { authorization: 'Bearer sesame2' });
    t.equal(r.status, 401);
    t.same((await get(`${path}/cursor`)).json.appliedThrough, 2, 'nothing applied');
  });

  t.test('TLS: a client that does not trust the CA is refused', async (t) => {
    const stranger = new Agent();
    t.teardown(() => stranger.close());
    await t.rejects(request(`${url}/healthz`, { dispatcher: stranger }), /certificate/);
  });

  t.test('Idempotency-Key: same key and body, same answer; another body, 422', async (t) => {
    const key = `${HUB}/ledger/1/3-4`;
    const first = await post([rec(3), rec(4)], { 'idempotency-key': key });
    t.same(first.json, { epoch: 1, appliedThrough: 4 });
    await post([rec(5)]);
    // Reordered keys: the same body to the receiver.
    const reordered = JSON.stringify({ records: [rec(3), rec(4)], epoch: 1, stream: 'ledger', store: STORE, hub: HUB });
    const replay = await post(reordered, { 'idempotency-key': key });
    t.equal(replay.status, 200);
    t.same(replay.json, { epoch: 1, appliedThrough: 4 }, 'the first answer, not the cursor now (5)');
    const reused = await post([rec(3, { delta: 9 }), rec(4)], { 'idempotency-key': key });
    t.equal(reused.status, 422);
    t.match(reused.json, { code: 'idempotency_key_reused' });
    t.equal(server.stats().idempotentReplays, 1);
  });

  t.test('fault injection: 503 with Retry-After, nothing applied', async (t) => {
    faults({ unavailable: 2, retryAfterSeconds: 3 });
    const a = await post([rec(6)]);
    t.equal(a.status, 503);
    t.equal(a.headers['retry-after'], '3');
    t.equal((await post([rec(6)])).status, 503);
    t.same((await get(`${path}/cursor`)).json.appliedThrough, 5, 'nothing applied while unavailable');
    t.same((await post([rec(6)])).json, { epoch: 1, appliedThrough: 6 }, 'the third attempt goes through');
  });

  t.test('fault injection: garbage 200 after applying; the retry is a harmless duplicate', async (t) => {
    faults({ garbage: 3 });
    const answers = [await post([rec(7)]), await post([rec(7)]), await post([rec(7)])];
    t.same(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    t.same(
      answers.map((a) => a.text),
      ['<html><body>OK</body></html>', '{"status":"ok"}', '{"epoch":"1","appliedThrough":"many"}'],
    );
    t.same((await post([rec(7)])).json, { epoch: 1, appliedThrough: 7 });
    t.same(store.seqs(HUB, 'ledger', 1).applied, seqRange(1, 7), 'applied once');
  });

  t.test('fault injection: the connection drops after the commit (a lost ack)', async (t) => {
    faults({ resetAfterApply: 1 });
    await t.rejects(post([rec(8, { delta: 4 })]), 'no answer');
    t.same((await post([rec(8, { delta: 4 })])).json, { epoch: 1, appliedThrough: 8 }, 'the retry finds it applied');
    // 3 + 2 (seqs 1-2) + 1 each for seqs 3-7 + 4 (seq 8): the retried 4 is counted once.
    t.same((await get(`/v1/stock?sku=sku-a`)).json.balances, [{ hub: HUB, store: STORE, sku: 'sku-a', location: 'shelf-1', quantity: 14 }]);
  });

  t.test('fault injection: a slow answer times the client out', async (t) => {
    faults({ delayMs: 400 });
    await t.rejects(post([rec(9)], {}, { timeout: 100 }), { name: 'TimeoutError' }, 'the client gave up first');
    faults({});
    t.same((await post([rec(9)])).json, { epoch: 1, appliedThrough: 9 });
  });
});

t.test('plain HTTP without a token; oversized bodies get 413', async (t) => {
  const store = new LedgerStore({ file: ':memory:' });
  const server = new ReceiverHttpServer({ store, bodyLimit: 2048 });
  const url = await server.listen();
  t.teardown(async () => {
    await server.close();
    store.close();
  });
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const post = (records: LedgerRecord[]) =>
    fetch(`${url}/v1/hubs/${HUB}/streams/ledger/batches`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch(records)),
    });
  const ok = await post([rec(1)]);
  t.same([ok.status, await ok.json()], [200, { epoch: 1, appliedThrough: 1 }], 'no token configured: no check');
  const big = await post(seqRange(2, 40).map((n) => rec(n)));
  t.equal(big.status, 413);
  t.match(await big.json(), { code: 'too_large', message: String });
  t.equal(store.cursor(HUB, 'ledger').appliedThrough, 1);
  const conflict = await post([rec(1, { id: 'another-fact' })]);
  t.same([conflict.status, ((await conflict.json()) as { code: string }).code], [422, 'key_conflict']);
});

/** A hub's side of the cloud link, reduced to what the consumer sees. */
async function hubClient(url: string, prefix: string, will = false): Promise<{ client: MqttClient; acks: Array<Record<string, number | string>> }> {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `storehub-${HUB}-${Math.random().toString(36).slice(2)}`,
    reconnectPeriod: 0,
    ...(will
      ? {
          will: {
            topic: `${prefix}/status`,
            payload: Buffer.from(JSON.stringify({ online: false, hub: HUB, store: STORE, epoch: 1, reason: 'lost' })),
            qos: 1,
            retain: true,
          },
        }
      : {}),
  });
  const acks: Array<Record<string, number | string>> = [];
  client.on('message', (topic, payload) => {
    if (topic === `${prefix}/acks`) acks.push(JSON.parse(payload.toString()));
  });
  await client.subscribeAsync(`${prefix}/acks`, { qos: 1 });
  return { client, acks };
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('MQTT consumer against mosquitto', async (t) => {
  const broker = await startMosquitto();
  const store = new LedgerStore({ file: join(t.testdir(), 'ledger.db') });
  const prefix = `storehub/v1/${STORE}/${HUB}`;
  const consumerOptions = { url: broker.url, store, clientId: 'receiver-under-test' };
  let consumer = new MqttConsumer(consumerOptions);
  await consumer.start();
  const hub = await hubClient(broker.url, prefix, true);
  t.teardown(async () => {
    await consumer.stop();
    hub.client.end(true);
    await broker.stop();
    store.close();
  });
  const send = (records: LedgerRecord[] | string) =>
    hub.client.publishAsync(`${prefix}/streams/ledger`, typeof records === 'string' ? records : JSON.stringify(batch(records)), { qos: 1 });

  await hub.client.publishAsync(`${prefix}/status`, JSON.stringify({ online: true, hub: HUB, store: STORE, epoch: 1, version: '0.1.0' }), {
    qos: 1,
    retain: true,
  });
  await until('the birth', () => consumer.status(HUB)?.payload.online === true);
  t.equal(consumer.status(HUB)?.prefix, prefix);

  await send([rec(1, { delta: 2 }), rec(2, { delta: 3 })]);
  await until('the first ack', () => hub.acks.length === 1);
  t.same(hub.acks[0], { stream: 'ledger', epoch: 1, appliedThrough: 2 }, 'acked after the commit');
  t.equal(quantity(store), 5);

  await send([rec(4)]);
  await until('the gap ack', () => hub.acks.length === 2);
  t.same(hub.acks[1], { stream: 'ledger', epoch: 1, appliedThrough: 2 }, 'a gap is answered with where the consumer stands');

  const rejected = new Promise((resolve) => consumer.once('rejected', resolve));
  await send('{"not": "a batch"}');
  t.match(await rejected, { topic: `${prefix}/streams/ledger`, reason: /hub: Expected required property/ });
  await until('the error ack', () => hub.acks.length === 3);
  t.match(
    hub.acks[2],
    { stream: 'ledger', appliedThrough: 0, error: { code: 'malformed', message: /hub/ } },
    'the malformed one is answered with an error ack',
  );
  await send([rec(1, { delta: 2 }), rec(2, { delta: 3 }), rec(3, { delta: 1 })]);
  await until('the next ack', () => hub.acks.length === 4);
  t.same(hub.acks[3], { stream: 'ledger', epoch: 1, appliedThrough: 3 }, 'duplicates ignored');
  await until('the ack PUBACKs', () => consumer.stats().acksSent === 3);
  t.match(consumer.stats(), { batches: 3, rejected: 1, lastRejection: { topic: `${prefix}/streams/ledger` } });

  // Away: the broker queues for the persistent session; the next consumer with the same client id gets it.
  await consumer.stop();
  await send([rec(4, { delta: 10 })]);
  consumer = new MqttConsumer(consumerOptions);
  const applied = new Promise<BatchEvent>((resolve) => consumer.once('batch', resolve));
  await consumer.start();
  t.same((await applied).result, { epoch: 1, appliedThrough: 4, applied: 1, duplicates: 0, gap: false }, 'queued batch delivered after the restart');
  await until('the ack after the restart', () => hub.acks.length === 5);
  await until('the retained birth after the restart', () => consumer.status(HUB) !== undefined);
  t.equal(quantity(store), 16);
  t.equal(consumer.status(HUB)?.retained, true, 'the birth came back retained on resubscribe');

  // The hub vanishes: the broker publishes its will.
  hub.client.stream.destroy();
  await until('the will', () => consumer.status(HUB)?.payload.online === false);
  t.match(consumer.status(HUB)?.payload, { online: false, hub: HUB, reason: 'lost' });
});

t.test('command line: serves, persists, stops cleanly on SIGTERM', async (t) => {
  const dir = t.testdir();
  const db = join(dir, 'cli.db');
  const port = await freePort();
  const main = join(import.meta.dirname, '..', 'reference-receiver', 'main.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', main, '--db', db, '--http-port', String(port), '--token', 'tok'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c) => (output += String(c)));
  child.stderr.on('data', (c) => (output += String(c)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await until('the receiver to listen', () => output.includes('receiver listening'), 15_000).catch((err) => {
    throw new Error(`${(err as Error).message}\n${output}`);
  });
  const res = await fetch(`http://127.0.0.1:${port}/v1/hubs/${HUB}/streams/ledger/batches`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok', 'content-type': 'application/json' },
    body: JSON.stringify(batch([rec(1), rec(2)])),
  });
  t.same(await res.json(), { epoch: 1, appliedThrough: 2 });
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 on SIGTERM');
  t.match(output, /receiver stopped/);
  const reopened = new LedgerStore({ file: db });
  t.teardown(() => reopened.close());
  t.same(reopened.cursor(HUB, 'ledger'), { epoch: 1, appliedThrough: 2 });
});
