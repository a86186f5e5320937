/**
 * RFID cycle counts: the pure count (coverage, missing SKUs as 0, zone filter), and end to end
 * through a real hub: a simulated Impinj reader, a tag taken away that the item events would only
 * notice after the 10-minute departure timeout, and the count (started by the API, or by the
 * reader's own inventoryStatus running -> idle) correcting the ledger at once.
 */
import t from 'tap';
import { RfidReaderSimulator } from '../firmware-sim/rfid-reader/index.js';
import { encodeSgtin96 } from '../firmware-sim/rfid-reader/sgtin-encoder.js';
import { CycleCount } from '../hub/inventory/cycle-count.js';
import { decodeSgtin96, isSgtin96 } from '../hub/inventory/sgtin96.js';
import { startHub } from './helpers/hub-harness.js';
import { until } from './helpers/sync.js';

t.test('counts per zone and SKU, coverage of what was expected, unseen SKUs as 0', async (t) => {
  const present = [
    { epc: 'A1', zone: 'floor', sku: 'JEANS' },
    { epc: 'A2', zone: 'floor', sku: 'JEANS' },
    { epc: 'B1', zone: 'floor', sku: 'SHIRT' },
    { epc: 'C1', zone: 'floor', sku: 'SOCKS' },
    { epc: 'X1', zone: 'back', sku: 'JEANS' },
  ];
  const c = new CycleCount({ id: 'c1', startedAt: 0, source: 'test', zones: ['floor'] }, present);
  for (const epc of ['A1', 'A2', 'B1']) c.onRead('floor', epc, epc.startsWith('A') ? 'JEANS' : 'SHIRT');
  c.onRead('floor', 'NEW', 'SHIRT'); // arrived during the count
  c.onRead('floor', 'OPAQUE', undefined); // not a product: no count
  c.onRead('back', 'X1', 'JEANS'); // outside the counted zones
  const results = c.finish(1000);
  t.strictSame(results, [
    { zone: 'floor', sku: 'JEANS', count: 2, coverage: 0.75 },
    { zone: 'floor', sku: 'SHIRT', count: 2, coverage: 0.75 },
    { zone: 'floor', sku: 'SOCKS', count: 0, coverage: 0.75 },
  ]);
  c.onRead('floor', 'LATE', 'SHIRT');
  t.equal(c.tagsSeen, 5, 'reads after the end are not counted');
});

t.test('a cycle count finds a taken tag at once, from the API and from the reader’s inventory status', async (t) => {
  const h = await startHub(t.testdir(), {
    log: { level: 'warn' },
    devices: [
      {
        id: 'reader-1',
        kind: 'rfid-reader',
        transport: { type: 'mqtt' },
        options: { vendor: 'impinj', topics: { events: 'impinj/{id}/events', status: 'impinj/{id}/status' }, antennas: { '1': 'salesfloor' } },
      },
    ],
  } as never);
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('reader-1', 'rfid-reader', ['impinj/{id}/#']);
  const token = h.hub.store!.tokens.create('ops').token;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${h.apiUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as Record<string, unknown> & { results?: { sku: string; count: number; coverage: number; outcome: string; delta?: number }[] },
    }));
  const epcs = [1, 2, 3, 4, 5, 6].map((serial) => encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812345', serial: BigInt(serial) }));
  const gtin = (() => {
    const d = decodeSgtin96(epcs[0] as string);
    return isSgtin96(d) ? d.gtin14 : '';
  })();
  await api('/api/v1/products', { method: 'PUT', body: JSON.stringify([{ gtin14: gtin, sku: 'JEANS-32', name: 'Jeans 32' }]) });
  const sim = new RfidReaderSimulator({
    url: h.mqttUrl,
    username: 'reader-1',
    password: secret,
    vendor: 'impinj',
    topics: { events: 'impinj/reader-1/events', status: 'impinj/reader-1/status' },
    antennas: [1],
    tags: epcs,
    readsPerSecond: 300,
    crossReadRatio: 0,
  });
  await sim.start();
  t.teardown(() => sim.stop());
  const onHand = () => h.hub.inventory?.ledger?.onHand('JEANS-32', 'salesfloor');
  await until('six pairs on the floor', () => onHand() === 6);

  // One pair leaves in a bag: the reader stops seeing it, but departure waits 10 minutes.
  sim.removeTags([epcs[5] as string]);
  const started = await api('/api/v1/stock/cycle-counts', { method: 'POST', body: JSON.stringify({ zones: ['salesfloor'], seconds: 2 }) });
  t.equal(started.status, 202);
  const id = started.body.id as string;
  await until('the count finished', async () => (await api(`/api/v1/stock/cycle-counts/${id}`)).body.endedAt !== null);
  const done = await api(`/api/v1/stock/cycle-counts/${id}`);
  t.match(done.body.results, [{ sku: 'JEANS-32', count: 5, outcome: 'applied', delta: -1 }]);
  t.ok((done.body.results?.[0]?.coverage ?? 0) >= 5 / 6 - 1e-9, 'five of the six expected tags were seen');
  t.equal(onHand(), 5, 'the ledger knows at once');
  const ledger = h.hub.inventory?.ledger?.history('JEANS-32', { location: 'salesfloor', limit: 100 }) ?? [];
  t.ok(
    ledger.some((e) => e.reason === 'rfid departed') && ledger.some((e) => e.reason === 'superseded by count'),
    'the unseen tag departs at the cut-off, and the count supersedes that departure',
  );
  t.equal(h.hub.inventory?.aggregator?.zoneOfTag(epcs[5] as string), undefined, 'the aggregator no longer holds it present');

  // The reader runs its own inventory preset: running -> idle is a cycle count of its zones.
  sim.removeTags([epcs[4] as string]);
  await sim.inventoryStatus('running');
  await new Promise((r) => setTimeout(r, 1500));
  await sim.inventoryStatus('idle');
  await until('the reader-driven count applied', () => onHand() === 4);
  const list = await fetch(`${h.apiUrl}/api/v1/stock/cycle-counts`, { headers: { authorization: `Bearer ${token}` } }).then(
    (r) => r.json() as Promise<{ source: string }[]>,
  );
  t.equal(list[0]?.source, 'reader-1', 'the newest count was started by the reader');

  const bad = await api('/api/v1/stock/cycle-counts', { method: 'POST', body: JSON.stringify({ seconds: 0 }) });
  t.equal(bad.status, 400, 'a zero-length count is refused');
});
