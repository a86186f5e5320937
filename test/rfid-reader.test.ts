import fc from 'fast-check';
import t, { type Test } from 'tap';
import { antennaZones, ConcatenatedJsonSplitter, NdjsonSplitter, parseImpinjEvent, readerTopics, rfidReaderFactory } from '../drivers/rfid-reader/index.js';
import { RfidReaderSimulator } from '../firmware-sim/rfid-reader/index.js';
import { type ItemEvent, RfidAggregator } from '../hub/inventory/rfid-aggregator.js';
import type { DeviceEvent, DeviceHealth, Driver, DriverContext, MqttTransport, RejectReason, RfidReadEvent, Unsubscribe } from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';

// ---------------------------------------------------------------------------------------------
// An in-memory MqttTransport and driver context

function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const p = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= p.length || (f[i] !== '+' && f[i] !== p[i])) return false;
  }
  return f.length === p.length;
}

class MemoryMqtt implements MqttTransport {
  readonly type = 'mqtt' as const;
  readonly subs = new Set<{ filter: string; handler: (topic: string, payload: Buffer) => void }>();
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Unsubscribe {
    const sub = { filter, handler };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }
  async publish(topic: string, payload: Buffer | string): Promise<void> {
    this.deliver(topic, payload);
  }
  deliver(topic: string, payload: Buffer | string | object): void {
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
    for (const s of this.subs) if (matches(s.filter, topic)) s.handler(topic, bytes);
  }
}

interface Rig {
  transport: MemoryMqtt;
  driver: Driver;
  events: DeviceEvent[];
  reads: () => RfidReadEvent[];
  conditions: () => DeviceEvent[];
  health: DeviceHealth[];
  rejects: { reason: RejectReason; detail?: string }[];
  seen: () => number;
  clock: { now: number };
  housekeeping: () => void;
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function contextFor(id: string, options: Record<string, unknown>, transport: MqttTransport, clock?: { now: number }) {
  const events: DeviceEvent[] = [];
  const health: DeviceHealth[] = [];
  const rejects: { reason: RejectReason; detail?: string }[] = [];
  let seen = 0;
  const ctx: DriverContext<MqttTransport> = {
    device: { id, kind: 'rfid-reader', options },
    transport,
    log: silent,
    now: () => clock?.now ?? Date.now(),
    emit: (e) => events.push(e),
    seen: () => seen++,
    setHealth: (h) => health.push(h),
    setInfo: () => {},
    reject: (reason, detail) => rejects.push({ reason, detail }),
    fail: (err) => {
      throw err;
    },
  };
  return { ctx, events, health, rejects, seen: () => seen };
}

const IMPINJ = { vendor: 'impinj', topics: { events: 'impinj/{id}/events', status: 'impinj/{id}/status' }, antennas: { '1': 'backroom', '2': 'shelf-a' } };
const ZEBRA = {
  vendor: 'zebra',
  topics: { events: 'zebra/{id}/data', status: 'zebra/{id}/status', management: 'zebra/{id}/events' },
  antennas: { '1': 'backroom', '2': 'shelf-a' },
};

async function rig(t: Test, options: Record<string, unknown>): Promise<Rig> {
  const transport = new MemoryMqtt();
  const clock = { now: 1_735_732_800_000 };
  const c = contextFor('rdr-1', options, transport, clock);
  const driver = rfidReaderFactory.create(c.ctx);
  await driver.start(new AbortController().signal);
  t.teardown(() => driver.stop());
  return {
    transport,
    driver,
    events: c.events,
    reads: () => c.events.filter((e): e is RfidReadEvent => e.type === 'rfid.read'),
    conditions: () => c.events.filter((e) => e.type === 'device.condition'),
    health: c.health,
    rejects: c.rejects,
    seen: c.seen,
    clock,
    housekeeping: () => (driver as unknown as { housekeeping(): void }).housekeeping(),
  };
}

const EPC = '3074257BF7194E4000001A85';
const EPC_B64 = Buffer.from(EPC, 'hex').toString('base64');

const impinjTag = (tag: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  timestamp: '2025-01-01T12:00:00.000Z',
  hostname: 'impinj-14-1a-5b',
  eventType: 'tagInventory',
  tagInventoryEvent: tag,
  ...extra,
});

// ---------------------------------------------------------------------------------------------
// Options

t.test('validate: one line per problem, naming the option', async (t) => {
  const device = (options: Record<string, unknown>) => ({ id: 'rdr-1', kind: 'rfid-reader', options });
  t.same(rfidReaderFactory.validate(device(IMPINJ)), []);
  t.same(rfidReaderFactory.validate(device(ZEBRA)), []);
  t.equal(rfidReaderFactory.kind, 'rfid-reader');
  t.same(rfidReaderFactory.transport, ['mqtt', 'http-stream']);

  const problems = rfidReaderFactory.validate(
    device({
      vendor: 'motorola',
      topics: { events: 'a/#/b', status: 'x+' },
      antennas: { '0': 'nowhere', '2': '', x: 'y' },
      maxReadsPerSecond: -1,
      colour: 'red',
    }),
  );
  t.equal(problems.length, 8, problems.join('\n'));
  t.match(problems.join('\n'), /options\.vendor/);
  t.match(problems.join('\n'), /options\.topics\.events uses '#'/);
  t.match(problems.join('\n'), /options\.topics\.status uses '\+'/);
  t.match(problems.join('\n'), /options\.antennas key "0"/);
  t.match(problems.join('\n'), /options\.antennas\.2 must be a zone name/);
  t.match(problems.join('\n'), /options\.antennas key "x"/);
  t.match(problems.join('\n'), /options\.maxReadsPerSecond must be a positive number/);
  t.match(problems.join('\n'), /options\.colour is not a known option/);

  t.match(rfidReaderFactory.validate(device({ vendor: 'impinj', antennas: { '1': 'a' } })), [/options\.topics must be an object/]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, antennas: {} })), [/at least one antenna/]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, topics: { events: 'impinj/{id}/#', status: 'impinj/{id}/status' } })), [
    /topics\.status \(impinj\/rdr-1\/status\) is also matched by options\.topics\.events/,
  ]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, topics: { ...IMPINJ.topics, management: 'm' } })), [/Zebra readers only/]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, statusMessages: { lost: 3 } })), [/statusMessages\.lost must be a string/]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, topics: { ...IMPINJ.topics, commands: 'impinj/{id}/mgmt/+' } })), [
    /options\.topics\.commands must be a topic, not a filter/,
  ]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, topics: { ...IMPINJ.topics, commands: 'x/{id}', responses: 'x/{id}' } })), [
    /commands and options\.topics\.responses must differ/,
  ]);
  t.match(rfidReaderFactory.validate(device({ ...IMPINJ, firmware: { chunkBytes: 10, colour: 1 } })), [
    /options\.firmware\.chunkBytes must be an integer 256\.\.131072/,
    /options\.firmware\.colour is not a known option/,
  ]);
});

t.test('topics get the device id; zones come from the antenna map', async (t) => {
  const device = { id: 'rdr-9', kind: 'rfid-reader', options: ZEBRA };
  // the management pair (firmware, get_version) and the control pair (start/stop) default to Zebra's sample layout under the vendor prefix
  t.same(readerTopics(device), [
    'zebra/rdr-9/data',
    'zebra/rdr-9/status',
    'zebra/rdr-9/events',
    'zebra/rdr-9/mgmt/cmd',
    'zebra/rdr-9/mgmt/res',
    'zebra/rdr-9/ctrl/cmd',
    'zebra/rdr-9/ctrl/res',
  ]);
  t.same(
    [...antennaZones(device)],
    [
      [1, 'backroom'],
      [2, 'shelf-a'],
    ],
  );
  t.same(readerTopics({ ...device, options: {} }), []);
});

t.test('start() refuses invalid options; stop() is idempotent and unsubscribes', async (t) => {
  const transport = new MemoryMqtt();
  const bad = rfidReaderFactory.create(contextFor('rdr-1', { vendor: 'impinj' }, transport).ctx);
  await t.rejects(bad.start(new AbortController().signal), /invalid rfid-reader options/);
  await bad.stop();

  const aborted = new AbortController();
  aborted.abort();
  const c = contextFor('rdr-1', IMPINJ, transport);
  const driver = rfidReaderFactory.create(c.ctx);
  await t.rejects(driver.start(aborted.signal));
  await driver.start(new AbortController().signal);
  t.equal(transport.subs.size, 3, 'events, status and management responses');
  await driver.stop();
  await driver.stop();
  t.equal(transport.subs.size, 0);
  transport.deliver('impinj/rdr-1/events', impinjTag({ epcHex: EPC, antennaPort: 1 }));
  t.equal(c.events.length, 0, 'nothing after stop');
  t.match(await driver.execute({ name: 'reboot' }), { ok: false, detail: /does not support/ });
});

// ---------------------------------------------------------------------------------------------
// Impinj

t.test('impinj: a full tag read becomes rfid.read (EPC hex upper-case, antenna, dBm, lastSeenTime)', async (t) => {
  const r = await rig(t, IMPINJ);
  r.transport.deliver(
    'impinj/rdr-1/events',
    impinjTag({
      epc: EPC_B64,
      tid: '4oARcCAAFM2bWgjs',
      tidHex: 'E2801170200014CD9B5A08EC',
      pc: 'NAA=',
      xpcHex: '',
      antennaPort: 2,
      antennaName: 'shelf A',
      transmitPowerCdbm: 3000,
      peakRssiCdbm: -6150,
      frequency: 927250,
      lastSeenTime: '2025-01-01T11:59:59.500Z',
      phaseAngle: 69.0,
    }),
  );
  t.same(r.reads(), [{ type: 'rfid.read', deviceId: 'rdr-1', time: Date.parse('2025-01-01T11:59:59.500Z'), epc: EPC, antenna: 2, rssi: -61.5 }]);
  t.same(r.rejects, []);
  t.equal(r.seen(), 1);
  t.same(r.health, [{ availability: 'online' }], 'hearing from the reader makes it online');
});

t.test('impinj: base64 vs hex EPC, and the minimal field set', async (t) => {
  const r = await rig(t, IMPINJ);
  r.transport.deliver('impinj/rdr-1/events', impinjTag({ epcHex: EPC.toLowerCase(), antennaPort: 1 }));
  r.transport.deliver('impinj/rdr-1/events', impinjTag({ epc: EPC_B64, antennaPort: 1 }));
  r.transport.deliver('impinj/rdr-1/events', impinjTag({ epc: 'AAAA', epcHex: EPC, antennaPort: 1 }, {}));
  r.transport.deliver('impinj/rdr-1/events', { tagInventoryEvent: { epcHex: 'E200', antennaPort: 1 } });
  const reads = r.reads();
  t.same(
    reads.map((e) => e.epc),
    [EPC, EPC, EPC, 'E200'],
    'epcHex wins over epc; eventType and timestamp may be missing',
  );
  t.equal(reads[0]?.time, Date.parse('2025-01-01T12:00:00.000Z'), 'envelope timestamp without lastSeenTime');
  t.equal(reads[3]?.time, r.clock.now, 'no timestamp: the driver clock');
  t.notOk('rssi' in (reads[0] as object), 'no peakRssiCdbm: no rssi');
});

t.test('impinj: any subset of the optional fields still gives the read', async (t) => {
  const optional: Record<string, unknown> = {
    tid: '4oARcCAAFM2bWgjs',
    tidHex: 'E2801170200014CD9B5A08EC',
    pc: 'NAA=',
    xpcHex: '',
    antennaName: 'A',
    transmitPowerCdbm: 3000,
    peakRssiCdbm: -5025,
    frequency: 902750,
    lastSeenTime: '2025-01-01T12:00:00.250Z',
    phaseAngle: 12.5,
  };
  fc.assert(
    fc.property(fc.subarray(Object.keys(optional)), fc.constantFrom('epc', 'epcHex', 'both'), fc.integer({ min: 1, max: 32 }), (keys, form, port) => {
      const tag: Record<string, unknown> = { antennaPort: port };
      if (form !== 'epcHex') tag.epc = EPC_B64;
      if (form !== 'epc') tag.epcHex = EPC;
      for (const k of keys) tag[k] = optional[k];
      const r = parseImpinjEvent(impinjTag(tag));
      if (!r.ok || r.value.kind !== 'tagInventory') return false;
      return r.value.epc === EPC && r.value.antenna === port && (keys.includes('peakRssiCdbm') ? r.value.rssi === -50.25 : r.value.rssi === undefined);
    }),
  );
  t.pass();
});

t.test('impinj: unknown antenna, malformed JSON and schema-invalid events are counted and dropped', async (t) => {
  const r = await rig(t, IMPINJ);
  const send = (p: string | object) => r.transport.deliver('impinj/rdr-1/events', p);
  send(impinjTag({ epcHex: EPC, antennaPort: 3 }));
  send('{"timestamp": "2025-01-01T12:00:00Z", "eventType": "tagInv');
  send(Buffer.from([0xff, 0xfe, 0x00]));
  send(impinjTag({ epcHex: EPC }));
  send(impinjTag({ antennaPort: 1 }));
  send(impinjTag({ epcHex: 'XYZ', antennaPort: 1 }));
  send(impinjTag({ epc: 'not base64!', antennaPort: 1 }));
  send(impinjTag({ epcHex: EPC, antennaPort: '1' }));
  send(impinjTag({ epcHex: EPC, antennaPort: 0 }));
  send({ eventType: 'tagInventory', timestamp: '2025-01-01T12:00:00Z' });
  send({ eventType: 7 });
  send([1, 2]);
  send('42');
  t.same(r.reads(), []);
  t.same(
    r.rejects.map((x) => x.reason),
    ['unknown_antenna', 'malformed', 'malformed', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema', 'schema'],
  );
  t.match(r.rejects[0]?.detail, /antenna 3/);
  // a wrongly typed optional field costs the field, not the read
  send(impinjTag({ epcHex: EPC, antennaPort: 1, peakRssiCdbm: 'loud', lastSeenTime: 'yesterday' }));
  t.same(r.reads(), [{ type: 'rfid.read', deviceId: 'rdr-1', time: Date.parse('2025-01-01T12:00:00.000Z'), epc: EPC, antenna: 1 }]);
});

t.test('impinj: several events in one message (newline-delimited or an array); a bad one costs only itself', async (t) => {
  const r = await rig(t, IMPINJ);
  const good = (port: number) => JSON.stringify(impinjTag({ epcHex: EPC, antennaPort: port, peakRssiCdbm: -5000 }));
  r.transport.deliver('impinj/rdr-1/events', `${good(1)}\n${good(2)}\r\n\n{broken\n${good(1)}\n`);
  t.equal(r.reads().length, 3);
  t.same(
    r.rejects.map((x) => x.reason),
    ['malformed'],
  );
  r.transport.deliver('impinj/rdr-1/events', `[${good(1)},${good(2)}]`);
  t.equal(r.reads().length, 5);
});

t.test('impinj: overflow becomes a condition, a counted loss and degraded health for a while', async (t) => {
  const r = await rig(t, { ...IMPINJ, overflowHoldMs: 60_000 });
  r.transport.deliver('impinj/rdr-1/events', impinjTag({ epcHex: EPC, antennaPort: 1 }));
  r.transport.deliver('impinj/rdr-1/events', {
    timestamp: '2025-01-01T12:00:01.000Z',
    hostname: 'impinj-14-1a-5b',
    eventType: 'overflow',
    overflowEvent: { firstEventTimestamp: '2025-01-01T11:59:00.000Z', lastEventTimestamp: '2025-01-01T12:00:00.000Z', eventsPurged: 1234, eventsRemaining: 10 },
  });
  t.match(r.conditions(), [
    {
      type: 'device.condition',
      deviceId: 'rdr-1',
      condition: 'reader_overflow',
      time: Date.parse('2025-01-01T12:00:01.000Z'),
      detail: { eventsPurged: 1234, eventsRemaining: 10, firstEventTime: Date.parse('2025-01-01T11:59:00.000Z') },
    },
  ]);
  t.match(r.rejects, [{ reason: 'overflow', detail: /1234/ }]);
  t.match(r.health.at(-1), { availability: 'degraded', reason: /overflow.*1234 events purged/ });
  r.clock.now += 59_000;
  r.housekeeping();
  t.equal(r.health.at(-1)?.availability, 'degraded');
  r.clock.now += 1_000;
  r.housekeeping();
  t.same(r.health.at(-1), { availability: 'online' });
});

t.test('impinj: an antenna lost and back, inventory status, and event types the driver does not act on', async (t) => {
  const r = await rig(t, IMPINJ);
  const event = (eventType: string, body: object) =>
    r.transport.deliver('impinj/rdr-1/events', { timestamp: '2025-01-01T12:00:00Z', eventType, [`${eventType}Event`]: body });
  event('antennaDisconnected', { antennaPort: 2 });
  t.match(r.health.at(-1), { availability: 'degraded', reason: 'antenna 2 (shelf-a) disconnected' });
  event('antennaActivation', { antennaPort: 1 });
  event('inventoryStatus', { status: 'running' });
  event('diagnostic', { metric: 1 });
  event('antennaConnected', { antennaPort: 2 });
  t.same(r.health.at(-1), { availability: 'online' });
  t.same(
    r.conditions().map((c) => (c as { condition: string }).condition),
    ['antenna_disconnected', 'inventory_status', 'antenna_connected'],
  );
  t.same(r.rejects, []);
});

t.test('impinj: connect and will messages make the device online and offline', async (t) => {
  const r = await rig(t, { ...IMPINJ, statusMessages: { disconnected: 'bye' } });
  const status = (text: string) => r.transport.deliver('impinj/rdr-1/status', text);
  status('connected');
  t.same(r.health.at(-1), { availability: 'online' });
  status('connection lost');
  t.same(r.health.at(-1), { availability: 'offline', reason: 'connection lost (reader will message)' });
  status('connected');
  status('bye');
  t.same(r.health.at(-1), { availability: 'offline', reason: 'reader disconnected' });
  status('something else');
  t.match(r.rejects, [{ reason: 'schema', detail: /status topic/ }]);
  t.match(r.conditions().at(-1), { condition: 'reader_connection', detail: { state: 'disconnected' } });
  // a read proves the session is up again, even without a connect message
  r.transport.deliver('impinj/rdr-1/events', impinjTag({ epcHex: EPC, antennaPort: 1 }));
  t.same(r.health.at(-1), { availability: 'online' });
});

t.test('a flooding reader is degraded while it floods; its reads are all kept', async (t) => {
  const r = await rig(t, { ...IMPINJ, maxReadsPerSecond: 10 });
  const read = () => r.transport.deliver('impinj/rdr-1/events', impinjTag({ epcHex: EPC, antennaPort: 1 }));
  for (let i = 0; i < 10; i++) read();
  t.same(r.health.at(-1), { availability: 'online' });
  read();
  t.match(r.health.at(-1), { availability: 'degraded', reason: /flooding: more than 10 reads\/s/ });
  t.equal(r.reads().length, 11);
  r.clock.now += 1000;
  read(); // closes the busy window: 12 reads in 1 s is still a flood
  t.equal(r.health.at(-1)?.availability, 'degraded');
  r.clock.now += 1000;
  r.housekeeping(); // a quiet second
  t.same(r.health.at(-1), { availability: 'online' });
  t.match(await r.driver.execute({ name: 'status' }), { ok: true, data: { reads: 12, flooding: false } });
});

// ---------------------------------------------------------------------------------------------
// Zebra

const zebraTag = (data: Record<string, unknown>, type = 'SIMPLE') => ({ type, timestamp: '2025-01-01T12:00:00.000+0000', data });

t.test('zebra: tag data becomes rfid.read; concatenated and array batches', async (t) => {
  const r = await rig(t, ZEBRA);
  const tag = zebraTag({ MAC: '84:24:8D:F0:F4:B5', antenna: 1, eventNum: 4, format: 'epc', idHex: EPC.toLowerCase(), peakRssi: -58, reads: 3 });
  r.transport.deliver('zebra/rdr-1/data', tag);
  t.same(r.reads(), [{ type: 'rfid.read', deviceId: 'rdr-1', time: Date.parse('2025-01-01T12:00:00.000Z'), epc: EPC, antenna: 1, rssi: -58 }]);
  r.transport.deliver('zebra/rdr-1/data', JSON.stringify(tag) + JSON.stringify(tag) + '\n' + JSON.stringify(tag));
  r.transport.deliver('zebra/rdr-1/data', JSON.stringify([tag, tag]));
  r.transport.deliver('zebra/rdr-1/data', zebraTag({ antenna: 2, idHex: 'E2801170' }, 'inventory'));
  t.equal(r.reads().length, 7);
  t.same(r.rejects, []);
  t.same(r.health, [{ availability: 'online' }]);
});

t.test('zebra: bad payloads are counted, the good events beside them kept', async (t) => {
  const r = await rig(t, ZEBRA);
  const good = JSON.stringify(zebraTag({ antenna: 1, idHex: EPC }));
  const send = (p: string | object) => r.transport.deliver('zebra/rdr-1/data', p);
  send('not json at all');
  send(`${good}garbage${good}`);
  send(`${good}{"type":"SIMPLE","data":{"idHex":"30`);
  send(zebraTag({ antenna: 1 }));
  send(zebraTag({ antenna: 1, idHex: EPC, format: 'tid' }));
  send(zebraTag({ antenna: 'one', idHex: EPC }));
  send(zebraTag({ antenna: 5, idHex: EPC }));
  send({ data: { idHex: EPC, antenna: 1 } });
  send('');
  t.equal(r.reads().length, 3);
  t.same(
    r.rejects.map((x) => x.reason),
    ['malformed', 'malformed', 'malformed', 'schema', 'schema', 'schema', 'unknown_antenna', 'schema', 'malformed'],
  );
});

t.test('zebra: heartbeats and management events on the management topic', async (t) => {
  const r = await rig(t, ZEBRA);
  r.transport.deliver('zebra/rdr-1/events', {
    type: 'heartbeat',
    timestamp: '2025-01-01T12:00:00.000+0000',
    data: { radio_control: { antennas: { '1': 'connected' } } },
  });
  r.transport.deliver('zebra/rdr-1/events', { type: 'gpi', timestamp: '2025-01-01T12:00:00.000+0000', data: { pin: 1, state: 'HIGH' } });
  r.transport.deliver('zebra/rdr-1/events', {
    type: 'errors',
    timestamp: '2025-01-01T12:00:00.000+0000',
    data: { component: 'radio_control', message: 'antenna 2 VSWR' },
  });
  t.equal(r.seen(), 3);
  t.same(r.reads(), []);
  t.same(r.rejects, []);
  t.match(r.conditions(), [{ condition: 'reader_errors', detail: { data: { message: 'antenna 2 VSWR' } } }]);
  t.same(r.health, [{ availability: 'online' }]);
});

t.test('zebra: connection status (mqttConnEVT birth and will, bare words)', async (t) => {
  const r = await rig(t, ZEBRA);
  const status = (p: string | object) => r.transport.deliver('zebra/rdr-1/status', p);
  status({ type: 'mqttConnEVT', timestamp: '2025-01-01T12:00:00.000+0000', data: { state: 'CONNECTED', deviceSerialNo: '84248DF0F4B5' } });
  t.same(r.health.at(-1), { availability: 'online' });
  status({ type: 'mqttConnEVT', data: { state: 'DISCONNECTED' } });
  t.same(r.health.at(-1), { availability: 'offline', reason: 'connection lost (reader will message)' });
  status('connected');
  t.same(r.health.at(-1), { availability: 'online' });
  status({ type: 'disconnect' });
  t.same(r.health.at(-1), { availability: 'offline', reason: 'reader disconnected' });
  status({ type: 'mqttConnEVT' });
  status('{');
  t.same(
    r.rejects.map((x) => x.reason),
    ['schema', 'malformed'],
  );
});

// ---------------------------------------------------------------------------------------------
// Stream splitters

t.test('NdjsonSplitter: lines cut anywhere, CRLF, keep-alive blank lines, runaway lines', async (t) => {
  const s = new NdjsonSplitter(40);
  const text = '{"a":1}\r\n\n{"b":"é"}\n' + '{"long":"' + 'x'.repeat(60) + '"}\n{"c":3}\n{"d":4}';
  const bytes = Buffer.from(text, 'utf8');
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 3) lines.push(...s.push(bytes.subarray(i, i + 3)));
  lines.push(...s.end());
  t.same(lines, ['{"a":1}', '{"b":"é"}', '{"c":3}', '{"d":4}']);
  t.equal(s.oversized, 1);
});

t.test('ConcatenatedJsonSplitter: braces in strings, escapes, arrays, garbage, runaway values', async (t) => {
  const s = new ConcatenatedJsonSplitter(50);
  const text = '{"a":"}{\\"x"}  {"b":[1,{"c":"]"}]}#[3]{"big":"' + 'y'.repeat(80) + '"}{"after":true}';
  const values: string[] = [];
  for (const ch of text) values.push(...s.push(ch));
  t.same(values, ['{"a":"}{\\"x"}', '{"b":[1,{"c":"]"}]}', '[3]', '{"after":true}']);
  t.equal(s.skipped, 1);
  t.equal(s.oversized, 1);
  t.equal(s.end(), false);
  s.push('{"open":');
  t.equal(s.end(), true, 'ended inside a value');
});

t.test('property: concatenated JSON split at arbitrary points gives back every value', async (t) => {
  const value = fc.oneof(fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }), fc.array(fc.jsonValue(), { maxLength: 4 }));
  fc.assert(
    fc.property(fc.array(value, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1 }), (values, cuts) => {
      const text = values.map((v) => JSON.stringify(v)).join('');
      const bytes = Buffer.from(text, 'utf8');
      const s = new ConcatenatedJsonSplitter();
      const out: string[] = [];
      let at = 0;
      for (let i = 0; at < bytes.length; i++) {
        const size = cuts[i % cuts.length] as number;
        out.push(...s.push(bytes.subarray(at, at + size)));
        at += size;
      }
      return !s.end() && s.skipped === 0 && JSON.stringify(out.map((o) => JSON.parse(o))) === JSON.stringify(values);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

// ---------------------------------------------------------------------------------------------
// Against a real embedded broker, with the simulator

async function waitFor(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('integration: simulated readers on the hub broker, through the driver, into item events', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const broker = h.hub.broker!;
  const transport: MqttTransport = {
    type: 'mqtt',
    subscribe: (filter, handler) => broker.subscribe(filter, (packet) => handler(packet.topic, packet.payload as Buffer)),
    publish: (topic, payload, qos) => broker.publish(topic, payload, qos),
  };

  for (const vendor of ['impinj', 'zebra'] as const) {
    t.test(vendor, async (t) => {
      const id = `${vendor}-reader`;
      const secret = await h.hub.store!.credentials.add(id, 'rfid-reader', [`${vendor}/{id}/#`]);
      const topics =
        vendor === 'impinj'
          ? { events: `impinj/${id}/events`, status: `impinj/${id}/status` }
          : { events: `zebra/${id}/data`, status: `zebra/${id}/status`, management: `zebra/${id}/mgmt` };
      const zones = { '1': 'backroom', '2': 'shelf-a', '3': 'shelf-b' };
      const c = contextFor(id, { vendor, topics, antennas: zones, maxReadsPerSecond: 1500 }, transport);
      const driver = rfidReaderFactory.create(c.ctx);
      await driver.start(new AbortController().signal);
      t.teardown(() => driver.stop());
      const aggregator = new RfidAggregator({ zoneOf: (_d, antenna) => zones[String(antenna) as keyof typeof zones] });
      const items: ItemEvent[] = [];
      const reads = () => c.events.filter((e): e is RfidReadEvent => e.type === 'rfid.read');
      let fed = 0;
      const feed = () => {
        const all = reads();
        for (; fed < all.length; fed++) {
          const item = aggregator.ingest(all[fed] as RfidReadEvent);
          if (item) items.push(item);
        }
      };
      const rejected = (reason: RejectReason) => c.rejects.filter((r) => r.reason === reason).length;
      const lastHealth = () => c.health.at(-1);

      const sim = new RfidReaderSimulator({
        url: h.mqttUrl,
        username: id,
        password: secret,
        vendor,
        topics,
        antennas: [1, 2, 3, 4], // antenna 4 is in no zone
        tags: 60,
        readsPerSecond: 300,
        qos: 1,
        seed: vendor === 'impinj' ? 7 : 8,
        heartbeatMs: 200,
        impinj: { epc: 'both', fields: 'all' },
      });
      t.teardown(() => sim.kill());
      await sim.start();

      await waitFor('the birth message', () => lastHealth()?.availability === 'online');
      await waitFor('every tag read', () => {
        feed();
        return new Set(reads().map((r) => r.epc)).size === 60;
      });
      t.same(new Set(reads().map((r) => r.epc)), new Set(sim.population), 'the EPCs are the population, upper-case hex');
      t.ok(
        reads().every((r) => r.antenna >= 1 && r.antenna <= 3 && typeof r.rssi === 'number' && r.rssi < -20 && r.rssi > -100),
        'antennas in the zone map, RSSI in dBm',
      );
      await waitFor('reads at the unmapped antenna counted', () => rejected('unknown_antenna') > 0);
      feed();
      t.equal(items.filter((i) => i.type === 'item.arrived').length, 60, 'each tag arrived once');
      t.ok(
        items.every((i) => i.sgtin?.gtin14.startsWith('00614141')),
        'SGTIN-96 EPCs decoded: indicator 0, company prefix 0614141',
      );

      await sim.sendMalformed('not-json');
      await sim.sendMalformed('schema');
      await waitFor('bad payloads counted', () => rejected('malformed') >= 1 && rejected('schema') >= 1);
      if (vendor === 'impinj') {
        await sim.overflow(500, 20);
        await waitFor('overflow reported', () => c.events.some((e) => e.type === 'device.condition' && e.condition === 'reader_overflow'));
        t.match(lastHealth(), { availability: 'degraded', reason: /500 events purged/ });
      } else {
        await waitFor('heartbeats keep the reader seen', () => c.seen() > 0);
      }

      // a read storm past the flood limit: degraded, and still every read processed
      const before = reads().length;
      sim.setRate(4000);
      await waitFor('flooding noticed', () => /flooding/.test(lastHealth()?.reason ?? ''));
      sim.setRate(100);
      await waitFor('the flood passes', () => !/flooding/.test(lastHealth()?.reason ?? ''));
      await sim.idle();
      // never a valid read lost: every read the reader sent is an rfid.read or a counted unknown antenna
      await waitFor('every read accounted for', () => reads().length + rejected('unknown_antenna') === sim.stats.reads);
      t.pass(`${sim.stats.reads} reads sent, ${reads().length - before} of them since the storm began, all accounted for`);
      t.equal(sim.stats.dropped, 0, 'the simulated reader dropped nothing');

      // power cut: the broker publishes the will
      sim.kill();
      await waitFor('the will message', () => lastHealth()?.availability === 'offline');
      t.same(lastHealth(), { availability: 'offline', reason: 'connection lost (reader will message)' });

      // back again
      await sim.start();
      await waitFor('online after reconnecting', () => lastHealth()?.availability !== 'offline');
      await sim.stop();
      feed();
      t.equal(items.filter((i) => i.type === 'item.arrived').length, 60, 'no tag arrived twice');
    });
  }
});
