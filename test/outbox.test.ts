/**
 * The outbox on a real SQLite file: gapless seqs per stream and epoch, appends that commit with
 * the producer's transaction, per-sink cursors, deletion only once every sink has a record, and
 * compaction under the budget that replaces records by one naming every seq it stands for.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t from 'tap';
import { StockLedger } from '../hub/inventory/stock-ledger.js';
import { migrate } from '../hub/store/migrate.js';
import { Store } from '../hub/store/store.js';
import { Outbox } from '../hub/sync/outbox.js';
import { OutboxCompactor } from '../hub/sync/outbox-compactor.js';
import { type OutboxRecord, replacedSeqs, type StreamName } from '../hub/sync/streams.js';

function openStore(dir: string): Store {
  return new Store({ dataDir: dir, synchronous: 'normal', maxBytes: 1024 ** 3 });
}

function outboxOf(store: Store): Outbox {
  return new Outbox(store.db, { hubId: 'hub-1', storeId: 'store-1', epoch: store.epoch });
}

function all(outbox: Outbox, stream: StreamName): OutboxRecord[] {
  return outbox.read(stream, { epoch: 0, seq: 0 }, 1_000_000)?.records ?? [];
}

const delta = (sku: string, d: number, time = 1000) => ({
  stream: 'ledger' as const,
  type: 'stock.delta',
  eventTime: time,
  body: { sku, location: 'A', delta: d },
  foldKey: `${sku}|A`,
});

t.test('seqs are gapless per stream, start at 1, and carry the envelope', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  t.equal(outbox.append(delta('S1', 1)), 1);
  t.equal(outbox.append(delta('S1', 2)), 2);
  t.equal(outbox.append({ stream: 'events', type: 'device.event', eventTime: 5, body: { kind: 'x' } }), 1, 'each stream counts on its own');
  const [first] = all(outbox, 'ledger');
  t.match(first, {
    hub: 'hub-1',
    store: 'store-1',
    stream: 'ledger',
    epoch: store.epoch,
    seq: 1,
    type: 'stock.delta',
    eventTime: 1000,
    body: { sku: 'S1', delta: 1 },
  });
  t.type(first?.id, 'string');
  t.type(first?.receivedAt, 'number');
  t.notOk(first && 'replaces' in first, 'a plain record names no replaced seqs');
});

t.test('a producer transaction that rolls back takes its record with it and leaves no gap', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  outbox.append(delta('S1', 1));
  t.throws(() =>
    store.db.transaction(() => {
      outbox.append(delta('S1', 2));
      throw new Error('producer failed after appending');
    })(),
  );
  t.equal(outbox.append(delta('S1', 3)), 2, 'the seq of the rolled-back record is reused');
  t.strictSame(
    all(outbox, 'ledger').map((r) => r.seq),
    [1, 2],
  );
});

t.test('stock ledger entries reach the ledger stream in the same transaction, with their uid', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  const ledger = new StockLedger(store.db, undefined, Date.now, outbox);
  const uid = ledger.applyDelta('SKU-1', 'A1', -2, 'sale', 'pos-1', 5000);
  ledger.observe({ sku: 'SKU-1', location: 'A1', count: 1, cutoff: 6000, coverage: 1, source: 'shelf-1' });
  const records = all(outbox, 'ledger');
  t.equal(records[0]?.id, uid, 'the record id is the ledger uid');
  t.match(records[0]?.body, { sku: 'SKU-1', location: 'A1', delta: -2, reason: 'sale', source: 'pos-1' });
  t.equal(records.length, 2, 'the count produced one more entry');
  const sum = records.reduce((s, r) => s + (r.body as { delta: number }).delta, 0);
  t.equal(sum, ledger.onHand('SKU-1', 'A1'), 'the stream sums to on-hand');
});

t.test('a record is deleted only when every sink registered for its stream has acknowledged it', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  outbox.registerSink('cloud', ['ledger', 'events']);
  outbox.registerSink('oms', ['ledger']);
  for (let i = 0; i < 10; i++) outbox.append(delta('S', 1));
  t.equal(outbox.ack('cloud', 'ledger', store.epoch, 6), 6);
  t.equal(outbox.size('ledger').records, 10, 'the OMS has not acked: nothing deleted');
  t.equal(outbox.ack('oms', 'ledger', store.epoch, 4), 4);
  t.equal(outbox.size('ledger').records, 6, 'deleted through the lower of the two acks');
  t.equal(outbox.ack('oms', 'ledger', store.epoch, 3), 0, 'an older ack changes nothing');
  t.strictSame(outbox.position('oms', 'ledger'), { epoch: store.epoch, seq: 4 });
  t.strictSame(outbox.position('cloud', 'ledger'), { epoch: store.epoch, seq: 6 });
  t.equal(outbox.ack('oms', 'ledger', store.epoch, 10), 6);
  t.equal(outbox.ack('cloud', 'ledger', store.epoch, 10), 4);
  t.equal(outbox.size('ledger').records, 0);
  t.equal(outbox.append(delta('S', 1)), 11, 'seqs go on after every row was deleted');
});

t.test('cursors and heads survive a restart; a new epoch starts at seq 1 after the old one drains', async (t) => {
  const dir = t.testdir();
  let store = openStore(dir);
  let outbox = outboxOf(store);
  outbox.registerSink('cloud', ['ledger']);
  for (let i = 0; i < 5; i++) outbox.append(delta('S', 1));
  outbox.ack('cloud', 'ledger', store.epoch, 5);
  const epoch = store.epoch;
  store.close();

  store = openStore(dir);
  outbox = outboxOf(store);
  outbox.registerSink('cloud', ['ledger']);
  t.equal(outbox.head('ledger'), 6, 'the head survives deletion and restart');
  t.strictSame(outbox.position('cloud', 'ledger'), { epoch, seq: 5 });

  // The database is restored: a new epoch, with old unsent records still in it.
  outbox.append(delta('S', 1)); // seq 6 of the old epoch
  const restored = new Outbox(store.db, { hubId: 'hub-1', storeId: 'store-1', epoch: epoch + 1 });
  restored.registerSink('cloud', ['ledger']);
  t.equal(restored.append(delta('S', 1)), 1, 'a new epoch counts from 1');
  t.strictSame(restored.position('cloud', 'ledger'), { epoch, seq: 5 }, 'the old epoch drains first');
  const batch = restored.read('ledger', restored.position('cloud', 'ledger'), 100);
  t.strictSame(
    batch?.records.map((r) => [r.epoch, r.seq]),
    [[epoch, 6]],
    'a batch never mixes epochs',
  );
  restored.ack('cloud', 'ledger', epoch, 6);
  t.strictSame(restored.position('cloud', 'ledger'), { epoch: epoch + 1, seq: 0 });
  store.close();
});

t.test('over budget, unsent ledger deltas fold per SKU and location; sent ones are never touched', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  outbox.registerSink('cloud', ['ledger']);
  for (let i = 0; i < 40; i++) outbox.append(delta(i % 2 === 0 ? 'A' : 'B', i % 3 === 0 ? -1 : 2, 1000 + i));
  const before = all(outbox, 'ledger');
  const sums = (records: OutboxRecord[]) => {
    const m: Record<string, number> = {};
    for (const r of records) {
      const b = r.body as { sku: string; delta: number };
      m[b.sku] = (m[b.sku] ?? 0) + b.delta;
    }
    return m;
  };
  outbox.markSent('cloud', 'ledger', store.epoch, 10);
  const compactor = new OutboxCompactor(store.db, outbox, { ledger: 4096, events: 1e9, footfall: 1e9, telemetry: 1e9 });
  const [result] = compactor.run();
  t.match(result, { stream: 'ledger', action: 'fold', records: 28 });
  const after = all(outbox, 'ledger');
  t.strictSame(
    after.slice(0, 10).map((r) => r.seq),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    'sent records stay',
  );
  t.equal(after.length, 12, 'one record per SKU above the sent mark');
  t.strictSame(sums(after), sums(before), 'no stock lost or added');
  const folded = after.filter((r) => r.type === 'stock.delta.folded');
  t.strictSame(
    folded.map((r) => r.seq),
    [11, 12],
    'each folded record keeps the lowest seq of its group',
  );
  const covered = folded.flatMap((r) => (r.replaces ? replacedSeqs(r.replaces) : [])).sort((a, b) => a - b);
  t.strictSame(
    covered,
    Array.from({ length: 30 }, (_, i) => i + 11),
    'together they name every seq they replace',
  );
  t.equal(outbox.counters('ledger').folded, 28);
  t.equal(outbox.append(delta('A', 1)), 41, 'the head is not reused after folding');
});

t.test('over budget, events expire oldest-unsent-first into one record; telemetry is downsampled first', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  const pad = 'x'.repeat(200);
  for (let i = 0; i < 100; i++) outbox.append({ stream: 'events', type: 'device.event', eventTime: i, body: { i, pad } });
  for (let i = 0; i < 100; i++) outbox.append({ stream: 'telemetry', type: 'hub.telemetry', eventTime: i, body: { i, pad } });
  const budget = 15_000;
  const compactor = new OutboxCompactor(store.db, outbox, { ledger: 1e9, events: budget, footfall: 1e9, telemetry: budget });
  const results = compactor.run();
  t.ok(outbox.size('events').bytes <= budget, `events within budget (${outbox.size('events').bytes})`);
  t.ok(outbox.size('telemetry').bytes <= budget, `telemetry within budget (${outbox.size('telemetry').bytes})`);
  const events = all(outbox, 'events');
  const expired = events[0];
  t.equal(expired?.type, 'outbox.expired');
  t.equal(expired?.seq, 1);
  const n = (expired?.body as { count: number }).count;
  t.equal(outbox.counters('events').expired, n - 1);
  t.strictSame(
    expired?.replaces && replacedSeqs(expired.replaces),
    Array.from({ length: n }, (_, i) => i + 1),
  );
  t.equal(events[1]?.seq, n + 1, 'the kept events follow the expired range');
  t.notOk(expired?.replaces && 'seqs' in expired.replaces, 'a contiguous range is sent as from/to, not as a list');
  t.ok(
    results.some((r) => r.stream === 'telemetry' && r.action === 'downsample'),
    'telemetry was downsampled',
  );
  t.ok(outbox.counters('telemetry').dropped > 0);
  // every seq 1..100 of each stream is still accounted for, by itself or by a record that names it
  for (const stream of ['events', 'telemetry'] as const) {
    const seen = all(outbox, stream).flatMap((r) => (r.replaces ? replacedSeqs(r.replaces) : [r.seq]));
    t.strictSame(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i + 1),
      `${stream}: every seq accounted for`,
    );
  }
});

t.test('property: whatever appends, sends, acks and compactions interleave, a receiver applying by seq ends with the same stock', async (t) => {
  type Op = { op: 'append'; sku: number; delta: number } | { op: 'send'; n: number } | { op: 'ack' } | { op: 'compact' } | { op: 'lose' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ op: fc.constant('append' as const), sku: fc.integer({ min: 0, max: 3 }), delta: fc.integer({ min: -5, max: 5 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('send' as const), n: fc.integer({ min: 1, max: 8 }) }) },
    { weight: 1, arbitrary: fc.constant({ op: 'ack' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'compact' as const }) },
    { weight: 1, arbitrary: fc.constant({ op: 'lose' as const }) },
  );
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
      const db = new Database(':memory:');
      try {
        migrate(db);
        const outbox = new Outbox(db, { hubId: 'h', storeId: 's', epoch: 1 });
        outbox.registerSink('cloud', ['ledger']);
        const compactor = new OutboxCompactor(db, outbox, { ledger: 4096, events: 1e9, footfall: 1e9, telemetry: 1e9 });
        // the receiver: applied-through, covered seqs, balances
        let through = 0;
        const covered = new Set<number>();
        const balance = new Map<string, number>();
        const expected = new Map<string, number>();
        let sentUpTo = 0; // what the hub has handed over, in order
        let inTransit: OutboxRecord[] = [];
        const apply = (r: OutboxRecord) => {
          if (r.seq <= through || covered.has(r.seq)) return; // duplicate
          if (r.seq !== through + 1) return; // gap: ignored, the hub resends
          const b = r.body as { sku: string; delta: number };
          balance.set(b.sku, (balance.get(b.sku) ?? 0) + b.delta);
          for (const s of r.replaces ? replacedSeqs(r.replaces) : []) covered.add(s);
          through = r.seq;
          while (covered.has(through + 1)) through++;
        };
        const deliver = () => {
          for (const r of inTransit) apply(r);
          inTransit = [];
        };
        for (const o of ops) {
          if (o.op === 'append') {
            db.transaction(() => outbox.append(delta(`K${o.sku}`, o.delta)))();
            expected.set(`K${o.sku}`, (expected.get(`K${o.sku}`) ?? 0) + o.delta);
          } else if (o.op === 'send') {
            const batch = outbox.read('ledger', { epoch: 1, seq: sentUpTo }, o.n);
            if (batch) {
              const last = batch.records[batch.records.length - 1] as OutboxRecord;
              outbox.markSent('cloud', 'ledger', 1, last.seq);
              inTransit.push(...batch.records);
              sentUpTo = last.seq;
            }
          } else if (o.op === 'ack') {
            deliver();
            outbox.ack('cloud', 'ledger', 1, through);
            sentUpTo = Math.max(through, outbox.acked('cloud', 'ledger', 1));
          } else if (o.op === 'compact') {
            compactor.run();
          } else {
            inTransit = []; // the link dropped: whatever was in flight is lost, the hub rewinds
            sentUpTo = outbox.acked('cloud', 'ledger', 1);
          }
        }
        // the link comes back and drains everything
        deliver();
        outbox.ack('cloud', 'ledger', 1, through);
        for (let guard = 0; guard < 10_000; guard++) {
          const batch = outbox.read('ledger', { epoch: 1, seq: outbox.acked('cloud', 'ledger', 1) }, 7);
          if (!batch) break;
          for (const r of batch.records) apply(r);
          outbox.ack('cloud', 'ledger', 1, through);
        }
        for (const [sku, q] of expected) if ((balance.get(sku) ?? 0) !== q) return false;
        return outbox.size('ledger').records === 0;
      } finally {
        db.close();
      }
    }),
    { numRuns: 200 },
  );
  t.pass('stock at the receiver equals the sum of every delta produced');
});

t.test('an uplink enabled later starts at seq 1: one record stands for what other uplinks already took', async (t) => {
  const store = openStore(t.testdir());
  t.teardown(() => store.close());
  const outbox = outboxOf(store);
  outbox.registerSink('oms', ['ledger']);
  for (let i = 0; i < 10; i++) outbox.append(delta('S', 1));
  outbox.ack('oms', 'ledger', store.epoch, 6);
  t.equal(outbox.size('ledger').records, 4, 'the OMS took 1..6');

  outbox.registerSink('cloud', ['ledger']);
  const batch = outbox.read('ledger', outbox.position('cloud', 'ledger'), 100);
  t.match(batch?.records[0], { seq: 1, type: 'outbox.skipped', replaces: { from: 1, to: 6 }, body: { count: 6 } });
  t.strictSame(
    batch?.records.map((r) => r.seq),
    [1, 7, 8, 9, 10],
    'the new uplink gets a gapless stream',
  );
  outbox.registerSink('cloud', ['ledger']);
  t.equal(outbox.read('ledger', { epoch: store.epoch, seq: 0 }, 100)?.records.length, 5, 'registering again adds nothing');
  t.equal(outbox.append(delta('S', 1)), 11, 'the head is not disturbed');
});
