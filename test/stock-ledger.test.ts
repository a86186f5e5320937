import fc from 'fast-check';
import t from 'tap';
import { StockLedger } from '../hub/inventory/stock-ledger.js';
import { Store } from '../hub/store/store.js';

const open = (dir: string) => new Store({ dataDir: dir, synchronous: 'normal', maxBytes: 1024 ** 3 });

t.test('counts become deltas against the expected quantity at their cut-off', async (t) => {
  const store = open(t.testdir());
  t.teardown(() => store.close());
  const ledger = new StockLedger(store.db);
  t.match(ledger.observe({ sku: 'A', location: 'shelf-1/1', count: 12, cutoff: 100, coverage: 1, source: 'shelf-1' }), { outcome: 'applied', delta: 12 });
  ledger.applyDelta('A', 'shelf-1/1', -2, 'sale', 'pos', 150);
  t.equal(ledger.onHand('A', 'shelf-1/1'), 10);
  t.match(ledger.observe({ sku: 'A', location: 'shelf-1/1', count: 9, cutoff: 200, coverage: 1, source: 'shelf-1' }), {
    outcome: 'applied',
    delta: -1,
    expected: 10,
  });
  t.equal(ledger.onHand('A', 'shelf-1/1'), 9);
  t.match(
    ledger.observe({ sku: 'A', location: 'shelf-1/1', count: 30, cutoff: 300, coverage: 1, source: 'shelf-1' }),
    { outcome: 'review' },
    'large jump held',
  );
  t.match(
    ledger.observe({ sku: 'A', location: 'shelf-1/1', count: 8, cutoff: 310, coverage: 0.4, source: 'rfid' }),
    { outcome: 'review', reason: /coverage/ },
    'low coverage held',
  );
  t.equal(ledger.onHand('A', 'shelf-1/1'), 9, 'held counts change nothing');
  t.equal(ledger.openReviews().length, 2);
  t.match(ledger.observe({ sku: 'A', location: 'shelf-1/1', count: 5, cutoff: 50, coverage: 1, source: 'late' }), { outcome: 'stale' });
  ledger.applyDelta('A', 'shelf-1/1', -1, 'sale', 'pos', 190);
  t.equal(ledger.onHand('A', 'shelf-1/1'), 9, 'a late sale before the last count is already in it');
  t.same(
    ledger.history('A', { limit: 100 }).map((e) => [e.reason, e.delta]),
    [
      ['opening count', 12],
      ['sale', -2],
      ['count', -1],
      ['sale', -1],
      ['superseded by count', 1],
    ],
  );
});

t.test('property: on-hand = last count + deltas after its cut-off, whatever the arrival order', async (t) => {
  const store = open(t.testdir());
  t.teardown(() => store.close());
  const permissive = { minCoverage: 0, maxAbsoluteDelta: Number.MAX_SAFE_INTEGER, maxRelativeDelta: Number.MAX_SAFE_INTEGER };
  let run = 0;
  const op = fc.oneof(
    fc.record({ kind: fc.constant('delta' as const), qty: fc.integer({ min: -5, max: 5 }), time: fc.integer({ min: 0, max: 1000 }) }),
    fc.record({ kind: fc.constant('count' as const), qty: fc.integer({ min: 0, max: 50 }), time: fc.integer({ min: 0, max: 1000 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
      const location = `loc-${run++}`;
      const ledger = new StockLedger(store.db, permissive);
      for (const o of ops) {
        if (o.kind === 'delta') ledger.applyDelta('S', location, o.qty, 'move', null, o.time);
        else ledger.observe({ sku: 'S', location, count: o.qty, cutoff: o.time, coverage: 1, source: 'test' });
      }
      // the model: the count with the latest cut-off (a recount at the same cut-off replaces it),
      // plus the deltas after it
      const counts = ops.filter((o) => o.kind === 'count');
      let last: (typeof ops)[number] | undefined;
      for (const c of counts) if (!last || c.time >= last.time) last = c;
      const expected = last
        ? last.qty + ops.filter((o) => o.kind === 'delta' && o.time > last.time).reduce((s, o) => s + o.qty, 0)
        : ops.reduce((s, o) => s + o.qty, 0);
      return ledger.onHand('S', location) === expected;
    }),
    { numRuns: 300 },
  );
  t.pass('300 random interleavings');
});
