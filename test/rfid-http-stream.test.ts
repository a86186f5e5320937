/**
 * The Impinj HTTP data stream over real HTTP(S) on 127.0.0.1: the http-stream transport against the
 * simulator's server (reconnects, refusals retried slowly, idle time-out, TLS with a CA), and a real
 * hub whose reader is configured with `transport: {type: http-stream}`: reads reach the stock ledger,
 * a dropped stream makes the device offline then online again with reasons, wrong credentials give a
 * clear 401 reason, and malformed lines are counted without stopping the stream.
 */
import { Writable } from 'node:stream';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { DRIVER_FACTORIES } from '../drivers/index.js';
import { readerTopics, rfidReaderFactory } from '../drivers/rfid-reader/index.js';
import { RfidReaderSimulator, type RfidReaderSimulatorOptions } from '../firmware-sim/rfid-reader/index.js';
import { encodeSgtin96 } from '../firmware-sim/rfid-reader/sgtin-encoder.js';
import type { DeviceConfig } from '../hub/config/schema.js';
import { validateDevices } from '../hub/devices/device-service.js';
import { HttpStreamLine } from '../hub/devices/transports/http-stream-line.js';
import { createLogger } from '../hub/observability/logger.js';
import type {
  DeviceEvent,
  DeviceHealth,
  DriverContext,
  HttpResponse,
  HttpStreamClosed,
  HttpStreamHandlers,
  HttpStreamTransport,
  RejectReason,
} from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';
import { until } from './helpers/sync.js';
import { makeCertificates } from './helpers/tls-certs.js';

const EPCS = [1, 2, 3, 4, 5].map((serial) => encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812345', serial: BigInt(serial) }));

/** An Impinj simulator serving only HTTP(S), reading the five EPCs on antenna 1. */
async function httpReader(t: Test, http: RfidReaderSimulatorOptions['http'], extra: Partial<RfidReaderSimulatorOptions> = {}): Promise<RfidReaderSimulator> {
  const sim = new RfidReaderSimulator({ vendor: 'impinj', http, antennas: [1], tags: EPCS, readsPerSecond: 100, crossReadRatio: 0, ...extra });
  await sim.start();
  t.teardown(() => sim.kill());
  return sim;
}

/** Records what a transport's stream reports. */
function recorder() {
  const r = { opens: 0, bytes: '', closes: [] as HttpStreamClosed[] };
  return {
    r,
    handlers: {
      open: () => r.opens++,
      data: (chunk: Buffer) => (r.bytes += chunk.toString('utf8')),
      closed: (info: HttpStreamClosed) => r.closes.push(info),
    },
  };
}

t.test('config: transport choice and credentials are checked before anything starts', async (t) => {
  const reader = (transport: DeviceConfig['transport'], options: Record<string, unknown>): DeviceConfig => ({
    id: 'r1',
    kind: 'rfid-reader',
    transport,
    options: { antennas: { '1': 'floor' }, ...options },
  });
  const stream = { type: 'http-stream', url: 'https://reader-1.local/api/v1', username: 'root', idleTimeoutSeconds: 90 } as const;
  t.same(validateDevices([reader(stream, { vendor: 'impinj', inventoryPreset: 'default' })], DRIVER_FACTORIES), []);
  t.same(validateDevices([reader({ type: 'mqtt' }, { vendor: 'impinj', topics: { events: 'impinj/{id}/events' } })], DRIVER_FACTORIES), []);
  t.match(validateDevices([reader(stream, { vendor: 'zebra' })], DRIVER_FACTORIES), [/options\.vendor zebra needs transport type mqtt/]);
  t.match(validateDevices([reader(stream, { vendor: 'impinj', topics: { events: 'x' }, firmware: {} })], DRIVER_FACTORIES), [
    /options\.topics is for transport type mqtt/,
    /options\.firmware is for transport type mqtt/,
  ]);
  t.match(validateDevices([reader({ ...stream, username: undefined, password: 'p' } as never, { vendor: 'impinj' })], DRIVER_FACTORIES), [
    /devices\[0\]\.transport\.username: is required with a password/,
  ]);
  t.match(validateDevices([reader({ type: 'serial', path: '/dev/x' } as never, { vendor: 'impinj' })], DRIVER_FACTORIES), [
    /rfid-reader needs mqtt or http-stream, not serial/,
  ]);
  t.match(validateDevices([reader({ type: 'mqtt' }, { vendor: 'impinj', topics: { events: 'e' }, inventoryPreset: 'p' })], DRIVER_FACTORIES), [
    /inventoryPreset needs transport type http-stream/,
  ]);
  t.same(
    readerTopics({ id: 'r1', kind: 'rfid-reader', options: { vendor: 'impinj', antennas: { '1': 'a' } }, transportType: 'http-stream' }),
    [],
    'no broker topics',
  );
  t.same(rfidReaderFactory.transport, ['mqtt', 'http-stream']);

  // the password is a secret wherever the config is logged
  const lines: string[] = [];
  const log = createLogger({
    pretty: false,
    destination: new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    }),
  });
  log.info({ config: { devices: [{ transport: { ...stream, password: 's3cret-pw' } }] }, transport: { password: 's3cret-pw' } }, 'config');
  t.notOk(lines.join('').includes('s3cret-pw'), 'transport.password redacted');
});

/** An http-stream transport the test drives by hand: what the driver does with each thing the stream says. */
class ScriptedStream implements HttpStreamTransport {
  readonly type = 'http-stream' as const;
  handlers: HttpStreamHandlers | undefined;
  paths: string[] = [];
  requests: { method: string; path: string }[] = [];
  answer: HttpResponse | Error = { status: 204, body: '' };
  stream(path: string, handlers: HttpStreamHandlers) {
    this.paths.push(path);
    this.handlers = handlers;
    return () => (this.handlers = undefined);
  }
  async request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string): Promise<HttpResponse> {
    this.requests.push({ method, path });
    if (this.answer instanceof Error) throw this.answer;
    return this.answer;
  }
  async close() {}
}

t.test('driver over a scripted stream: lines, health reasons, commands', async (t) => {
  const transport = new ScriptedStream();
  const events: DeviceEvent[] = [];
  const health: DeviceHealth[] = [];
  const rejects: { reason: RejectReason; detail?: string }[] = [];
  const ctx: DriverContext<HttpStreamTransport> = {
    device: { id: 'rdr-1', kind: 'rfid-reader', options: { vendor: 'impinj', antennas: { '1': 'floor' } } },
    transport,
    log: { debug() {}, info() {}, warn() {}, error() {} },
    now: () => Date.now(),
    emit: (e) => events.push(e),
    seen: () => {},
    setHealth: (h) => health.push(h),
    setInfo: () => {},
    reject: (reason, detail) => rejects.push({ reason, detail }),
    fail: (err) => {
      throw err;
    },
  };
  const driver = rfidReaderFactory.create(ctx);
  await driver.start(new AbortController().signal);
  t.teardown(() => driver.stop());
  t.same(transport.paths, ['/data/stream']);
  const h = transport.handlers as HttpStreamHandlers;
  const read = (port: number) => JSON.stringify({ eventType: 'tagInventory', tagInventoryEvent: { epcHex: EPCS[0], antennaPort: port } });

  h.closed({ reason: 'connection refused by r:443 (ECONNREFUSED)', retryInMs: 700 });
  t.same(health.at(-1), { availability: 'offline', reason: 'event stream unavailable: connection refused by r:443 (ECONNREFUSED)' });
  h.closed({ reason: 'connection refused by r:443 (ECONNREFUSED)', retryInMs: 1400 });
  t.equal(health.length, 1, 'the same failure again is not a new health event');
  t.match(await driver.execute({ name: 'inventory.stop' }), { ok: false, detail: /^the reader is offline: event stream unavailable/ });

  h.open();
  t.same(health.at(-1), { availability: 'online' });
  const first = Buffer.from(`${read(1)}\r\n\r\n${read(2)}\n`);
  h.data(first.subarray(0, 17));
  h.data(first.subarray(17));
  h.data(Buffer.from(`${'x'.repeat(300 * 1024)}\n${read(1)}\n{"eventType":"tagInv`));
  // the response ends mid-line: that line is malformed, and the next response starts clean
  h.closed({ reason: 'the connection to r:443 dropped (closed by the other side)', retryInMs: 600 });
  t.same(health.at(-1), { availability: 'offline', reason: 'event stream lost: the connection to r:443 dropped (closed by the other side)' });
  h.open();
  h.data(Buffer.from(`ventory"}\n${read(1)}`));
  h.closed({ reason: 'the device ended the stream', retryInMs: 500 });
  const reads = events.filter((e) => e.type === 'rfid.read');
  t.equal(reads.length, 3, 'two whole reads, and the last line of a response that ended without a newline');
  t.same(
    rejects.map((r) => r.reason),
    ['unknown_antenna', 'malformed', 'malformed', 'malformed'],
    'antenna 2 is unmapped; an oversized line, the cut line, and the stray rest of it',
  );
  t.match(rejects[1]?.detail, /longer than 262144 characters/);
  t.match(
    events.filter((e) => e.type === 'device.condition').map((e) => (e as { detail: unknown }).detail),
    [{ state: 'connected' }, { state: 'lost', reason: /dropped/ }, { state: 'connected' }, { state: 'lost' }],
  );

  h.open();
  t.match(await driver.execute({ name: 'inventory.start' }), { ok: false, detail: /args\.preset is required/ });
  t.match(await driver.execute({ name: 'inventory.start', args: { preset: 'default' } }), { ok: true, data: { state: 'running', preset: 'default' } });
  t.match(await driver.execute({ name: 'inventory.stop' }), { ok: true, data: { state: 'idle' } });
  t.same(transport.requests, [
    { method: 'POST', path: '/profiles/inventory/presets/default/start' },
    { method: 'POST', path: '/profiles/stop' },
  ]);
  transport.answer = { status: 403, body: '{"message":"Forbidden","detail":"user is read-only"}' };
  t.match(await driver.execute({ name: 'inventory.stop' }), { ok: false, detail: 'the reader refused to stop: HTTP 403: Forbidden (user is read-only)' });
  transport.answer = new Error('r:443 did not answer within 10 s');
  t.match(await driver.execute({ name: 'inventory.stop' }), {
    ok: false,
    detail: "the reader's REST API did not answer (stop): r:443 did not answer within 10 s",
  });
  t.match(await driver.execute({ name: 'firmware.update', args: { image: Buffer.from('x'), version: '9' } }), {
    ok: false,
    detail: /uses the MQTT management interface; this reader is on the http-stream transport/,
  });
  t.match(await driver.execute({ name: 'status' }), { ok: true, data: { transport: 'http-stream', connection: 'online', reads: 3 } });
  await driver.stop();
  t.equal(transport.handlers, undefined, 'stop() ends the stream');
});

t.test('transport: reconnects after a drop, retries refusals slowly, drops a silent stream', async (t) => {
  const sim = await httpReader(t, { username: 'hub', password: 'right', keepAliveMs: 0 });
  const timings = { initialMs: 100, maxMs: 400, refusedRetryMs: 600, requestTimeoutMs: 5000 };

  // a drop: the stream comes back after a short jittered delay
  const good = new HttpStreamLine({ url: sim.httpUrl, username: 'hub', password: 'right' }, timings);
  t.teardown(() => good.close());
  const a = recorder();
  good.stream('/data/stream', a.handlers);
  await until('the stream open', () => a.r.opens === 1 && sim.openStreams === 1, 20_000);
  await until('reads on the stream', () => a.r.bytes.includes('"tagInventoryEvent"'), 20_000);
  sim.dropStreams();
  await until('reopened after the drop', () => a.r.opens === 2, 20_000);
  t.match(a.r.closes[0], { reason: /dropped/ });
  t.ok((a.r.closes[0]?.retryInMs ?? 0) <= timings.maxMs, 'a drop is retried soon');
  const status = await good.request('GET', '/status');
  t.equal(status.status, 200);
  t.match(JSON.parse(status.body), { status: 'running', activePreset: { id: 'default' } });
  await good.close();
  t.throws(() => good.stream('/data/stream', a.handlers), /closed/);

  // wrong credentials: a clear 401, retried no sooner than the slow interval
  const bad = new HttpStreamLine({ url: sim.httpUrl, username: 'hub', password: 'wrong' }, timings);
  t.teardown(() => bad.close());
  const b = recorder();
  bad.stream('/data/stream', b.handlers);
  await until('three refusals', () => b.r.closes.length >= 3, 20_000);
  await bad.close();
  t.equal(b.r.opens, 0);
  t.match(b.r.closes[0], { status: 401, reason: /HTTP 401: the device refused the credentials \(check transport\.username and transport\.password\)/ });
  t.ok(
    b.r.closes.every((c) => c.retryInMs >= 0.75 * timings.refusedRetryMs),
    'each refusal waits the slow interval',
  );
  const refused = sim.httpRequests.filter((r) => r.status === 401);
  for (let i = 1; i < refused.length; i++)
    t.ok((refused[i]?.time ?? 0) - (refused[i - 1]?.time ?? 0) >= 0.7 * timings.refusedRetryMs, 'the reader is not hammered');

  // a stream that goes quiet (no keep-alives) is dropped after idleTimeoutSeconds and reopened
  sim.setRate(0);
  const quiet = new HttpStreamLine({ url: sim.httpUrl, username: 'hub', password: 'right', idleTimeoutSeconds: 0.5 }, timings);
  t.teardown(() => quiet.close());
  const q = recorder();
  quiet.stream('/data/stream', q.handlers);
  await until('the silent stream dropped', () => q.r.closes.length >= 1, 20_000);
  t.match(q.r.closes[0], { reason: /no data or keep-alive from 127\.0\.0\.1:\d+ for 1 s/ });
  await quiet.close();

  // nothing listening
  const nobody = new HttpStreamLine({ url: 'http://127.0.0.1:1/api/v1' }, timings);
  t.teardown(() => nobody.close());
  const n = recorder();
  nobody.stream('/data/stream', n.handlers);
  await until('refused', () => n.r.closes.length >= 1, 20_000);
  t.match(n.r.closes[0], { reason: /connection refused by 127\.0\.0\.1:1 \(ECONNREFUSED\)/ });
  await t.rejects(nobody.request('GET', '/status'), /connection refused/);
});

t.test('transport: HTTPS needs the CA that issued the reader certificate', async (t) => {
  const dir = t.testdir();
  const certs = makeCertificates(dir);
  const sim = await httpReader(t, { tls: { cert: certs.serverCert, key: certs.serverKey }, username: 'hub', password: 'pw' });
  t.match(sim.httpUrl, /^https:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
  const timings = { initialMs: 100, maxMs: 400, refusedRetryMs: 600 };
  const untrusted = new HttpStreamLine({ url: sim.httpUrl, username: 'hub', password: 'pw' }, timings);
  t.teardown(() => untrusted.close());
  const u = recorder();
  untrusted.stream('/data/stream', u.handlers);
  await until('refused', () => u.r.closes.length >= 1, 20_000);
  t.match(u.r.closes[0], { reason: /TLS: the certificate of 127\.0\.0\.1:\d+ is not trusted .*set transport\.ca/ });
  t.ok((u.r.closes[0]?.retryInMs ?? 0) >= 450, 'an untrusted certificate is retried slowly');

  const missing = new HttpStreamLine({ url: sim.httpUrl, ca: join(dir, 'nope.pem') }, timings);
  t.teardown(() => missing.close());
  const m = recorder();
  missing.stream('/data/stream', m.handlers);
  await until('no CA file', () => m.r.closes.length >= 1, 20_000);
  t.match(m.r.closes[0], { reason: /cannot read transport\.ca .*nope\.pem: ENOENT/ });

  const trusted = new HttpStreamLine({ url: sim.httpUrl, username: 'hub', password: 'pw', ca: certs.ca }, timings);
  t.teardown(() => trusted.close());
  const ok = recorder();
  trusted.stream('/data/stream', ok.handlers);
  await until('reads over TLS', () => ok.r.opens === 1 && ok.r.bytes.includes('"epc"'), 20_000);
  t.pass('streaming over HTTPS');
});

t.test('a hub with an Impinj reader on the HTTP stream: stock, drops, refusals and bad lines', async (t) => {
  const dir = t.testdir();
  const certs = makeCertificates(join(dir, 'pki'));
  const password = 'reader-pw-7f3a';
  const sim = await httpReader(t, { tls: { cert: certs.serverCert, key: certs.serverKey }, username: 'hub', password, keepAliveMs: 500 });
  const transport = { type: 'http-stream', url: sim.httpUrl, username: 'hub', ca: certs.ca } as const;
  const h = await startHub(join(dir, 'hub'), {
    log: { level: 'debug' },
    devices: [
      { id: 'reader-h', kind: 'rfid-reader', transport: { ...transport, password }, options: { vendor: 'impinj', antennas: { '1': 'salesfloor' } } },
      { id: 'reader-x', kind: 'rfid-reader', transport: { ...transport, password: 'wrong' }, options: { vendor: 'impinj', antennas: { '1': 'backroom' } } },
    ],
  } as never);
  t.teardown(() => h.stop());
  const health: { deviceId: string; health: DeviceHealth }[] = [];
  h.hub.bus.on('device.health', 'test', (e) => health.push({ deviceId: e.deviceId, health: e.health }));
  const registry = h.hub.devices!.registry!;
  const onHand = () => h.hub.inventory?.ledger?.stock({}).reduce((sum, s) => sum + s.onHand, 0) ?? 0;

  // reads over HTTPS with basic auth, into item events and the stock ledger
  await until('five items in stock', () => onHand() === 5, 20_000);
  t.equal(registry.get('reader-h')?.availability, 'online');
  const stock = h.hub.inventory!.ledger!.stock({});
  t.same(
    stock.map((s) => [s.location, s.onHand]),
    [['salesfloor', 5]],
  );

  // wrong credentials: offline with the 401 reason, and no hammering (the next attempt is ~60 s away)
  await until('reader-x refused', () => /HTTP 401/.test(registry.get('reader-x')?.reason ?? ''), 20_000);
  t.match(registry.get('reader-x'), {
    availability: 'offline',
    reason: 'event stream unavailable: HTTP 401: the device refused the credentials (check transport.username and transport.password)',
  });
  const refusedAt = sim.httpRequests.filter((r) => r.status === 401).length;

  // a dropped stream: offline with the reason, then online again by itself
  health.length = 0;
  sim.dropStreams();
  await until('offline after the drop', () => health.some((e) => e.deviceId === 'reader-h' && e.health.availability === 'offline'), 20_000);
  await until('online again', () => registry.get('reader-h')?.availability === 'online', 20_000);
  const mine = health.filter((e) => e.deviceId === 'reader-h').map((e) => e.health);
  t.match(mine[0], { availability: 'offline', reason: /^event stream lost: the connection to 127\.0\.0\.1:\d+ dropped/ });
  t.same(mine.at(-1), { availability: 'online' });

  // malformed lines are counted and the stream goes on: a new tag read after them still arrives
  const before = registry.get('reader-h')?.rejected.malformed ?? 0;
  for (const kind of ['not-json', 'truncated', 'binary'] as const) await sim.sendMalformed(kind);
  await sim.sendMalformed('schema');
  const extra = encodeSgtin96({ filter: 1, companyPrefix: '0614141', itemReference: '812345', serial: 99n });
  await sim.readNow([{ epc: extra, antenna: 1 }]);
  await until('the read after the bad lines', () => onHand() === 6, 20_000);
  t.equal((registry.get('reader-h')?.rejected.malformed ?? 0) - before, 3, 'three malformed lines');
  t.ok((registry.get('reader-h')?.rejected.schema ?? 0) >= 1, 'one schema-invalid line');
  t.equal(registry.get('reader-h')?.availability, 'online', 'bad lines do not cost the connection');

  t.ok(sim.httpRequests.filter((r) => r.status === 401).length <= refusedAt + 1, 'the refused reader was not retried at the fast pace');
  t.notOk(JSON.stringify(h.logs).includes(password), 'the password never reaches the log');
  t.ok(
    h.logs.some((l) => l.msg === 'reader data stream closed; reconnecting' && l.deviceId === 'reader-h'),
    'the drop is logged',
  );
});
