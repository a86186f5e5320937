/**
 * From the wire to the stock ledger: a simulated Impinj reader publishes tag reads to the hub's
 * broker; the rfid-reader driver (configured like a store's) parses them, the aggregator folds them
 * into item events, and the SKUs (from the product table) appear in the stock API per zone.
 */
import t from 'tap';
import { RfidReaderSimulator, type RfidReaderSimulatorOptions } from '../firmware-sim/rfid-reader/index.js';
import { encodeSgtin96 } from '../firmware-sim/rfid-reader/sgtin-encoder.js';
import { decodeSgtin96, isSgtin96 } from '../hub/inventory/sgtin96.js';
import { startHub } from './helpers/hub-harness.js';

async function until<T>(probe: () => Promise<T | undefined>, what: string, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('RFID reads become item events and stock per SKU and zone', async (t) => {
  const dir = t.testdir();
  const overrides = {
    log: { level: 'warn' },
    devices: [
      {
        id: 'reader-1',
        kind: 'rfid-reader',
        transport: { type: 'mqtt' },
        options: { vendor: 'impinj', topics: { events: 'impinj/{id}/events', status: 'impinj/{id}/status' }, antennas: { '1': 'salesfloor', '2': 'backroom' } },
      },
    ],
  };
  const h = await startHub(dir, overrides as never);
  const secret = await h.hub.store!.credentials.add('reader-1', 'rfid-reader', ['impinj/{id}/#']);
  const admin = h.hub.store!.tokens.create('admin').token;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${h.apiUrl}${path}`, { ...init, headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' } }).then((r) => r.json());

  // Three tags of one product (GTIN 80614141123458 -> SKU JEANS-32), two of another.
  const epcs = [
    ...[1, 2, 3].map((serial) => encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812345', serial: BigInt(serial) })),
    ...[7, 8].map((serial) => encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812346', serial: BigInt(serial) })),
  ];
  const gtins = epcs.map((e) => decodeSgtin96(e)).map((d) => (isSgtin96(d) ? d.gtin14 : ''));
  await api('/api/v1/products', { method: 'PUT', body: JSON.stringify([{ gtin14: gtins[0], sku: 'JEANS-32', name: 'Jeans 32' }]) });

  const simOptions: RfidReaderSimulatorOptions = {
    url: h.mqttUrl,
    username: 'reader-1',
    password: secret,
    vendor: 'impinj',
    topics: { events: 'impinj/reader-1/events', status: 'impinj/reader-1/status' },
    antennas: [1],
    tags: epcs,
    readsPerSecond: 200,
    crossReadRatio: 0,
  };
  const sim = new RfidReaderSimulator(simOptions);
  await sim.start();

  const stock = await until(async () => {
    const rows = (await api('/api/v1/stock')) as { sku: string; location: string; onHand: number }[];
    const total = rows.reduce((s, r) => s + r.onHand, 0);
    return total === 5 ? rows : undefined;
  }, 'five items in stock');
  t.same(
    stock.map((r) => [r.sku, r.location, r.onHand]),
    [
      ['JEANS-32', 'salesfloor', 3],
      [`gtin:${gtins[3]}`, 'salesfloor', 2],
    ],
    'known GTINs map to SKUs, unknown ones stay GTIN-keyed',
  );
  const arrived = (await api('/api/v1/events?kind=item.arrived&limit=100')) as { items: { body: { epc: string; zone: string; sku?: string } }[] };
  t.equal(arrived.items.length, 5, 'each tag arrived exactly once, however often it was read');
  t.ok(arrived.items.every((e) => e.body.zone === 'salesfloor'));
  const ledger = (await api('/api/v1/stock/JEANS-32/ledger')) as { items: { delta: number; reason: string }[] };
  t.same(
    ledger.items.map((e) => [e.delta, e.reason]),
    [
      [1, 'rfid arrived'],
      [1, 'rfid arrived'],
      [1, 'rfid arrived'],
    ],
  );
  const device = (await api('/api/v1/devices/reader-1')) as { availability: string; lastSeen: number | null };
  t.equal(device.availability, 'online');
  const metrics = await (await fetch(`${h.apiUrl}/metrics`)).text();
  const observed = Number(/storehub_rfid_read_to_event_seconds_count (\d+)/.exec(metrics)?.[1] ?? 0);
  t.ok(observed >= 5, `read-to-event latency observed for every read (${observed})`);

  // A restart of the hub must not count the tags still in view a second time.
  await sim.stop();
  await h.stop();
  const again = await startHub(dir, overrides as never);
  t.teardown(() => again.stop());
  const sim2 = new RfidReaderSimulator({ ...simOptions, url: again.mqttUrl });
  await sim2.start();
  t.teardown(() => sim2.stop());
  const api2 = (path: string) => fetch(`${again.apiUrl}${path}`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.json());
  await until(async () => {
    const d = (await api2('/api/v1/devices/reader-1')) as { lastSeen: number | null };
    return d.lastSeen !== null && d.lastSeen > Date.now() - 2000 ? d : undefined;
  }, 'reads after the restart');
  await new Promise((r) => setTimeout(r, 1500));
  const after = (await api2('/api/v1/stock')) as { onHand: number }[];
  t.equal(
    after.reduce((s, r) => s + r.onHand, 0),
    5,
    'still five items after the restart',
  );
});
