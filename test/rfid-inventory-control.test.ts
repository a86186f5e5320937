/**
 * `inventory.start` / `inventory.stop` through a real hub over real transports: an Impinj reader on
 * the http-stream transport (REST on the simulator's HTTP server; its inventoryStatusEvent running ->
 * idle makes a cycle count, visible at GET /api/v1/stock/cycle-counts) and a Zebra reader on the
 * embedded broker (control topics, inside the ACL its credential gets from readerTopics()).
 */
import t from 'tap';
import { readerTopics } from '../drivers/rfid-reader/index.js';
import { RfidReaderSimulator } from '../firmware-sim/rfid-reader/index.js';
import { encodeSgtin96 } from '../firmware-sim/rfid-reader/sgtin-encoder.js';
import { decodeSgtin96, isSgtin96 } from '../hub/inventory/sgtin96.js';
import type { CommandResult } from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';
import { until } from './helpers/sync.js';

const EPCS = [1, 2, 3, 4, 5, 6].map((serial) => encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812345', serial: BigInt(serial) }));
const GTIN = (() => {
  const d = decodeSgtin96(EPCS[0] as string);
  return isSgtin96(d) ? d.gtin14 : '';
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ReaderStatus {
  reads: number;
  inventory: string;
  connection: string;
}

t.test('inventory.start and inventory.stop on Impinj (REST) and Zebra (control topics)', async (t) => {
  const impinj = new RfidReaderSimulator({
    vendor: 'impinj',
    http: { username: 'hub', password: 'pw', presets: ['default', 'cycle'], keepAliveMs: 500 },
    antennas: [1],
    tags: EPCS,
    readsPerSecond: 150,
    crossReadRatio: 0,
  });
  await impinj.start();
  t.teardown(() => impinj.kill());

  const zebraOptions = { vendor: 'zebra', topics: { events: 'zebra/{id}/data', status: 'zebra/{id}/status' }, antennas: { '1': 'backroom' } };
  const h = await startHub(t.testdir(), {
    log: { level: 'warn' },
    devices: [
      {
        id: 'reader-i',
        kind: 'rfid-reader',
        transport: { type: 'http-stream', url: impinj.httpUrl, username: 'hub', password: 'pw' },
        options: { vendor: 'impinj', antennas: { '1': 'salesfloor' }, inventoryPreset: 'cycle' },
      },
      { id: 'reader-z', kind: 'rfid-reader', transport: { type: 'mqtt' }, options: zebraOptions },
      {
        id: 'reader-m',
        kind: 'rfid-reader',
        transport: { type: 'mqtt' },
        options: { vendor: 'impinj', topics: { events: 'impinj/{id}/events' }, antennas: { '1': 'floor' } },
      },
    ],
  } as never);
  t.teardown(() => h.stop());
  const token = h.hub.store!.tokens.create('ops').token;
  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${h.apiUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }).then((r) => r.json());
  await api('/api/v1/products', { method: 'PUT', body: JSON.stringify([{ gtin14: GTIN, sku: 'JEANS-32', name: 'Jeans 32' }]) });
  const devices = h.hub.devices!;
  const execute = async (id: string, name: string, args?: Record<string, unknown>): Promise<CommandResult> => {
    await until(`${id} running`, async () => (await devices.supervisor(id)!.execute({ name: 'status' })).ok, 20_000);
    return devices.supervisor(id)!.execute(args ? { name, args } : { name });
  };
  const status = async (id: string) => (await execute(id, 'status')).data as ReaderStatus;

  t.test('impinj over REST: reads stop after stop and resume after start; the run is a cycle count', async (t) => {
    const onHand = () => h.hub.inventory?.ledger?.onHand('JEANS-32', 'salesfloor');
    await until('six pairs on the floor', () => onHand() === 6, 20_000);

    t.match(await execute('reader-i', 'inventory.start', { preset: 'nope' }), {
      ok: false,
      detail: 'the reader refused to start preset nope: HTTP 404: Preset nope was not found',
    });
    t.match(await execute('reader-i', 'inventory.start', { preset: 'a/b' }), { ok: false, detail: /args\.preset must be a preset id/ });

    t.match(await execute('reader-i', 'inventory.stop'), { ok: true, data: { vendor: 'impinj', state: 'idle' } });
    t.equal(impinj.inventoryRunning, false);
    await until('the reader says idle', async () => (await status('reader-i')).inventory === 'idle', 20_000);
    const stopped = (await status('reader-i')).reads;
    await sleep(1000);
    t.equal((await status('reader-i')).reads, stopped, 'no reads while stopped');
    t.match(await execute('reader-i', 'inventory.stop'), { ok: true }, 'a second stop is a no-op');

    // one pair leaves while the reader is idle; the next run (a cycle count) finds it missing at once
    impinj.removeTags([EPCS[5] as string]);
    t.match(
      await execute('reader-i', 'inventory.start'),
      { ok: true, data: { vendor: 'impinj', state: 'running', preset: 'cycle' } },
      'options.inventoryPreset',
    );
    t.ok(impinj.httpRequests.some((r) => r.method === 'POST' && r.path === '/api/v1/profiles/inventory/presets/cycle/start' && r.status === 204));
    await until('reads resume', async () => (await status('reader-i')).reads > stopped, 20_000);
    const counts = () => api('/api/v1/stock/cycle-counts') as Promise<{ id: string; source: string; endedAt: number | null; tagsSeen: number }[]>;
    await until('the reader-driven count saw the five pairs', async () => (await counts()).some((c) => c.source === 'reader-i' && c.tagsSeen === 5), 20_000);
    t.match(await execute('reader-i', 'inventory.stop'), { ok: true });
    await until('the count finished', async () => (await counts()).some((c) => c.source === 'reader-i' && c.endedAt !== null), 20_000);
    const done = (await counts()).find((c) => c.source === 'reader-i') as { id: string };
    const view = (await api(`/api/v1/stock/cycle-counts/${done.id}`)) as { zones: string[]; results: unknown[] };
    t.same(view.zones, ['salesfloor'], "the reader's zones");
    t.match(view.results, [{ zone: 'salesfloor', sku: 'JEANS-32', count: 5, outcome: 'applied', delta: -1 }]);
    t.equal(onHand(), 5, 'the ledger knows at once');

    t.match(await execute('reader-i', 'inventory.start', { preset: 'default' }), { ok: true, data: { preset: 'default' } });
    const resumed = (await status('reader-i')).reads;
    await until('reads again', async () => (await status('reader-i')).reads > resumed, 20_000);
    t.equal((await status('reader-i')).inventory, 'running');
  });

  t.test('impinj over MQTT has no REST API to drive', async (t) => {
    t.match(await execute('reader-m', 'inventory.start', { preset: 'default' }), {
      ok: false,
      detail: /inventory\.start on an Impinj reader uses its REST API: give the device transport type http-stream/,
    });
  });

  t.test('zebra over its control topics, inside its ACL', async (t) => {
    const device = { id: 'reader-z', kind: 'rfid-reader', options: zebraOptions };
    const topics = readerTopics(device);
    t.ok(topics.includes('zebra/reader-z/ctrl/cmd') && topics.includes('zebra/reader-z/ctrl/res'), 'the control pair is in the credential');
    const secret = await h.hub.store!.credentials.add('reader-z', 'rfid-reader', topics);
    const zebra = new RfidReaderSimulator({
      url: h.mqttUrl,
      username: 'reader-z',
      password: secret,
      vendor: 'zebra',
      topics: {
        events: 'zebra/reader-z/data',
        status: 'zebra/reader-z/status',
        controlCommands: 'zebra/reader-z/ctrl/cmd',
        controlResponses: 'zebra/reader-z/ctrl/res',
      },
      antennas: [1],
      tags: 10,
      readsPerSecond: 100,
      autostart: false,
    });
    await zebra.start();
    t.teardown(() => zebra.kill());
    await until('online', async () => (await status('reader-z')).connection === 'online', 20_000);
    await sleep(300);
    t.equal((await status('reader-z')).reads, 0, 'idle from power-on: nothing read');

    t.match(await execute('reader-z', 'inventory.start', { preset: 'x' }), { ok: false, detail: /args\.preset is for Impinj readers/ });
    t.match(await execute('reader-z', 'inventory.start'), { ok: true, data: { vendor: 'zebra', state: 'running' } });
    t.equal(zebra.inventoryRunning, true);
    await until('reads', async () => (await status('reader-z')).reads >= 20, 20_000);

    t.match(await execute('reader-z', 'inventory.stop'), { ok: true, data: { vendor: 'zebra', state: 'idle' } });
    await zebra.idle();
    const after = zebra.stats.reads;
    await until('every read sent before the stop arrived', async () => (await status('reader-z')).reads === after, 20_000);
    await sleep(1000);
    t.equal(zebra.stats.reads, after, 'the reader read nothing while stopped');
    t.equal((await status('reader-z')).reads, after, 'and the hub saw nothing');
    t.equal((await status('reader-z')).inventory, 'idle');
    const zebraCounts = (await api('/api/v1/stock/cycle-counts')) as { source: string; endedAt: number | null; zones: string[] | null }[];
    t.match(
      zebraCounts.find((c) => c.source === 'reader-z'),
      { endedAt: Number, zones: ['backroom'] },
      'a confirmed start/stop on Zebra is a cycle count of its zones too',
    );

    t.match(await execute('reader-z', 'inventory.start'), { ok: true });
    await until('reads resume', async () => (await status('reader-z')).reads > after, 20_000);

    zebra.kill();
    await until('offline', async () => (await status('reader-z')).connection === 'offline', 20_000);
    t.match(await execute('reader-z', 'inventory.stop'), { ok: false, detail: 'the reader is offline: connection lost (reader will message)' });
  });
});
