import t from 'tap';
import { Backoff } from '../hub/devices/backoff.js';
import { DRIVER_STOP_TIMEOUT_MS, DriverSupervisor, type SupervisorHooks } from '../hub/devices/supervisor.js';
import { createMemoryLine } from '../hub/devices/transports/memory-line.js';
import { createLogger } from '../hub/observability/logger.js';
import type { Driver, DriverContext, DriverFactory } from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';

const quiet = createLogger({ level: 'silent', pretty: false, destination: process.stderr });

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A test device class: behaviour chosen per device through its options. */
function fakeFactory(log: string[]): DriverFactory {
  return {
    kind: 'fake',
    transport: 'serial',
    validate: (d) => (typeof d.options.mode === 'string' ? [] : ['mode: required']),
    create(ctx: DriverContext): Driver {
      let timer: NodeJS.Timeout | undefined;
      return {
        async start() {
          log.push(`start ${ctx.device.id}`);
          const mode = ctx.device.options.mode;
          if (mode === 'refuse') throw new Error('port busy');
          ctx.setHealth({ availability: 'online' });
          ctx.setInfo({ firmware: '2.1.0', battery: 87 });
          let n = 0;
          timer = setInterval(() => {
            n++;
            ctx.emit({ type: 'device.condition', deviceId: ctx.device.id, time: Date.now(), condition: 'tick', detail: { n } });
            if (mode === 'crash-after-3' && n === 3) ctx.fail(new Error('line vanished'));
            if (mode === 'bad-input') ctx.reject('crc', 'bad frame');
          }, 20);
        },
        async stop() {
          log.push(`stop ${ctx.device.id}`);
          clearInterval(timer);
          // a driver stuck in I/O on its way down (a serial port that never drains)
          if (ctx.device.options.mode === 'hang-on-stop') await new Promise(() => {});
        },
        async execute(cmd) {
          if (cmd.name === 'explode') throw new Error('boom');
          return { ok: true, detail: `did ${cmd.name}` };
        },
      };
    },
  };
}

function recordingHooks() {
  const record = { events: 0, health: [] as string[], rejects: 0, restarts: 0 };
  const hooks: SupervisorHooks = {
    emit: () => record.events++,
    seen: () => {},
    setHealth: (_id, h) => record.health.push(`${h.availability}${h.reason ? `: ${h.reason}` : ''}`),
    setInfo: () => {},
    reject: () => record.rejects++,
    restarted: () => record.restarts++,
  };
  return { record, hooks };
}

t.test('jittered backoff grows, is capped, and resets after a healthy run', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, resetAfterMs: 5000, random: () => 1 });
  t.same([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  b.ranFor(6000);
  t.equal(b.next(), 100);
  const low = new Backoff({ initialMs: 100, maxMs: 1000, resetAfterMs: 5000, random: () => 0 });
  t.equal(low.next(), 50, 'full jitter down to half the initial delay');
});

t.test('the supervisor restarts a failing driver and keeps the failure to itself', async (t) => {
  const log: string[] = [];
  const factory = fakeFactory(log);
  const mk = (id: string, mode: string, hooks: SupervisorHooks) =>
    new DriverSupervisor({
      factory,
      device: { id, kind: 'fake', options: { mode } },
      makeTransport: () => createMemoryLine('serial')[0],
      closeTransport: async (tr) => {
        if (tr.type !== 'mqtt') await tr.close();
      },
      hooks,
      log: quiet,
      backoff: { initialMs: 20, maxMs: 100 },
    });
  const crashy = recordingHooks();
  const steady = recordingHooks();
  const refusing = recordingHooks();
  const a = mk('crashy', 'crash-after-3', crashy.hooks);
  const b = mk('steady', 'ok', steady.hooks);
  const c = mk('refusing', 'refuse', refusing.hooks);
  a.start();
  b.start();
  c.start();
  await until(() => crashy.record.restarts >= 2 && refusing.record.restarts >= 2, 'restarts');
  t.ok(
    crashy.record.health.some((h) => h.startsWith('offline: driver failed: line vanished')),
    'failure reason surfaced',
  );
  t.ok(
    refusing.record.health.every((h) => h.startsWith('offline')),
    'a driver that cannot start stays offline',
  );
  t.equal(steady.record.restarts, 0, 'the healthy driver is untouched');
  t.ok(steady.record.events > 0);
  t.same(await b.execute({ name: 'tare' }), { ok: true, detail: 'did tare' });
  t.same(await b.execute({ name: 'explode' }), { ok: false, detail: 'boom' }, 'a throwing command is an answer, not a crash');
  await Promise.all([a.stop(), b.stop(), c.stop()]);
  await a.stop();
  const eventsAfterStop = steady.record.events;
  await new Promise((r) => setTimeout(r, 100));
  t.equal(steady.record.events, eventsAfterStop, 'nothing emitted after stop');
  t.equal(log.filter((l) => l.startsWith('start crashy')).length, log.filter((l) => l.startsWith('stop crashy')).length, 'every start was stopped');
});

t.test('a driver that hangs on stop is left behind after its timeout, not waited for by the hub', async (t) => {
  const log: string[] = [];
  const warnings: string[] = [];
  const recording = createLogger({ level: 'warn', pretty: false, destination: { write: (line: string) => warnings.push(line) } as never });
  const sup = new DriverSupervisor({
    factory: fakeFactory(log),
    device: { id: 'stuck', kind: 'fake', options: { mode: 'hang-on-stop' } },
    makeTransport: () => createMemoryLine('serial')[0],
    closeTransport: async () => {},
    hooks: recordingHooks().hooks,
    log: recording,
  });
  sup.start();
  await until(() => log.includes('start stuck'), 'started');
  const stopped = await Promise.race([
    sup.stop().then(() => 'stopped'),
    new Promise((r) => setTimeout(() => r('still waiting'), DRIVER_STOP_TIMEOUT_MS + 5_000)),
  ]);
  t.equal(stopped, 'stopped', `stop returns after the driver's ${DRIVER_STOP_TIMEOUT_MS} ms`);
  t.ok(
    warnings.some((w) => /driver stop failed/.test(w) && /did not stop within/.test(w)),
    'and says the driver was left behind',
  );
});

t.test('devices in the config get a registry entry, events in the store and on the API', async (t) => {
  const log: string[] = [];
  const factories = new Map([['fake', fakeFactory(log)]]);
  const dir = t.testdir();
  const h = await startHub(
    dir,
    {
      devices: [
        { id: 'scale-1', kind: 'fake', transport: { type: 'serial', path: '/dev/null' }, options: { mode: 'bad-input' } },
        { id: 'screen-1', kind: 'guide-screen', transport: { type: 'mqtt' }, options: {} },
      ],
    } as never,
    factories,
  );
  t.teardown(() => h.stop());
  const token = h.hub.store!.tokens.create('read').token;
  const get = async (path: string) =>
    (await fetch(`${h.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` } })).json() as Promise<Record<string, unknown>>;
  await until(() => (h.hub.devices?.registry?.get('scale-1')?.rejected.crc ?? 0) > 2, 'rejects counted');
  const list = (await get('/api/v1/devices')) as unknown as { id: string; availability: string; reason: string | null; firmware: string | null }[];
  t.match(
    list.find((d) => d.id === 'scale-1'),
    { availability: 'online', firmware: '2.1.0' },
  );
  t.match(
    list.find((d) => d.id === 'screen-1'),
    { availability: 'offline', reason: 'no driver for kind guide-screen' },
  );
  const one = await get('/api/v1/devices/scale-1');
  t.ok((one.rejected as { crc: number }).crc > 0, 'rejected input counted per device');
  t.equal(((await fetch(`${h.apiUrl}/api/v1/devices/nope`, { headers: { authorization: `Bearer ${token}` } })).status as number) === 404, true);
  await until(() => (h.hub.devices?.events?.list({ kind: 'device.tick', limit: 10 }).length ?? 0) >= 3, 'events persisted', 10_000);
  const page1 = await get('/api/v1/events?kind=device.tick&limit=2');
  t.equal((page1.items as unknown[]).length, 2);
  const page2 = await get(`/api/v1/events?kind=device.tick&limit=2&cursor=${page1.next}`);
  const ids = [...(page1.items as { id: number }[]), ...(page2.items as { id: number }[])].map((e) => e.id);
  t.equal(new Set(ids).size, ids.length, 'pages never repeat');
  t.ok(
    ids.every((id, i) => i === 0 || id > (ids[i - 1] as number)),
    'pages are in order',
  );
  const health = await get('/api/v1/events?kind=device.health');
  t.ok(
    (health.items as { deviceId: string }[]).some((e) => e.deviceId === 'scale-1'),
    'health changes are events',
  );
});

t.test('check of device options names the device and the problem', async (t) => {
  const { validateDevices } = await import('../hub/devices/device-service.js');
  const factories = new Map([['fake', fakeFactory([])]]);
  t.same(
    validateDevices(
      [
        { id: 'a', kind: 'fake', transport: { type: 'serial', path: '/dev/x', baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 }, options: {} },
        { id: 'a', kind: 'fake', transport: { type: 'mqtt' }, options: { mode: 'ok' } },
      ],
      factories,
    ),
    ['devices[0].options: mode: required', 'devices[1].id: duplicate device id a', 'devices[1].transport.type: fake needs serial, not mqtt'],
  );
});
