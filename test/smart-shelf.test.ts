import { ModbusRTUServer } from 'jsmodbus';
import { ServerSerial } from 'modbus-serial';
import { SerialPort } from 'serialport';
import t, { type Test } from 'tap';
import { smartShelfDriver, validateOptions } from '../drivers/smart-shelf/index.js';
import { SerialLine } from '../hub/devices/transports/serial-line.js';
import type {
  DeviceConditionEvent,
  DeviceEvent,
  DeviceHealth,
  Driver,
  DriverContext,
  DriverDevice,
  RejectReason,
  SerialTransport,
  ShelfWeightEvent,
} from '../hub/sdk/index.js';
import { createPtyPair, ShelfSimulator, type ShelfSimulatorOptions } from '../firmware-sim/smart-shelf/index.js';

// Generous deadlines: these tests run real ptys on machines that may be slow and busy. Nothing below
// asserts how fast something happens, only that it happens before a deadline.
const DEADLINE_MS = 15_000;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A DriverContext that records everything the driver reports. */
function fakeContext(device: DriverDevice, transport: SerialTransport) {
  const rec = {
    events: [] as DeviceEvent[],
    health: [] as DeviceHealth[],
    rejects: [] as { reason: RejectReason; detail?: string }[],
    failures: [] as Error[],
    seen: 0,
    info: {} as Record<string, unknown>,
  };
  const ctx: DriverContext<SerialTransport> = {
    device,
    transport,
    log: { debug() {}, info() {}, warn() {}, error() {} },
    now: () => Date.now(),
    emit: (e) => rec.events.push(e),
    seen: () => rec.seen++,
    setHealth: (h) => rec.health.push(h),
    setInfo: (i) => Object.assign(rec.info, i),
    reject: (reason, detail) => rec.rejects.push({ reason, detail }),
    fail: (err) => rec.failures.push(err),
  };
  return { ctx, rec };
}

interface RigOptions {
  sim?: ShelfSimulatorOptions;
  options: Record<string, unknown>;
  /** Instead of the simulator, something else serves the far end of the pty. */
  peer?: (path: string) => Promise<() => Promise<void>>;
}

const FAST = { pollIntervalMs: 40, timeoutMs: 120, retries: 1 };

/** A pty pair, the simulator (or another peer) on one end, the driver on a SerialLine on the other. */
async function rig(t: Test, { sim: simOptions, options, peer }: RigOptions) {
  // undone in reverse: the driver stops before its peer, the peer before socat
  const cleanups: (() => Promise<void>)[] = [];
  t.teardown(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });
  const pair = await createPtyPair();
  cleanups.push(() => pair.close());
  const sim = new ShelfSimulator({ motionMs: 250, noiseGrams: 0.2, ...simOptions });
  if (peer) cleanups.push(await peer(pair.b));
  else {
    await sim.start(pair.b);
    cleanups.push(() => sim.stop());
  }
  const line = new SerialLine({ path: pair.a, baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 });
  const device: DriverDevice = { id: 'shelf-1', kind: 'smart-shelf', options: { ...FAST, ...options } };
  t.same(smartShelfDriver.validate(device), [], 'the options are valid');
  const { ctx, rec } = fakeContext(device, line);
  const driver = smartShelfDriver.create(ctx);
  await driver.start(new AbortController().signal);
  cleanups.push(() => driver.stop());
  return { pair, sim, line, driver, rec };
}

type LaneStatus = { lane: number; count?: number; stableGrams?: number; reading?: { motion: boolean } };
async function lanes(driver: Driver): Promise<LaneStatus[]> {
  const res = await driver.execute({ name: 'status' });
  return (res.data as { lanes: LaneStatus[] }).lanes;
}

async function laneStatus(driver: Driver, lane: number): Promise<LaneStatus | undefined> {
  return (await lanes(driver)).find((l) => l.lane === lane);
}

async function untilCount(driver: Driver, lane: number, count: number): Promise<void> {
  await until(`lane ${lane} counts ${count}`, async () => (await laneStatus(driver, lane))?.count === count);
}

const weights = (rec: { events: DeviceEvent[] }, lane: number) => rec.events.filter((e): e is ShelfWeightEvent => e.type === 'shelf.weight' && e.lane === lane);
const conditions = (rec: { events: DeviceEvent[] }, condition: string, lane?: number) =>
  rec.events.filter(
    (e): e is DeviceConditionEvent => e.type === 'device.condition' && e.condition === condition && (lane === undefined || e.detail?.lane === lane),
  );
/** Weights are compared within half a gram: the simulated load cells carry a little noise. */
const near = (grams: number | undefined, expected: number, tolerance = 0.5) => grams !== undefined && Math.abs(grams - expected) <= tolerance;
const isActive = (rec: { events: DeviceEvent[] }, condition: string, lane: number) => conditions(rec, condition, lane).at(-1)?.detail?.active === true;

t.test('validate() names every bad option; create() does no I/O; start() fails on a missing port', async (t) => {
  const good = { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 1, unitWeightGrams: 50 }] };
  t.same(validateOptions(good), []);
  const problems = validateOptions({
    unitId: 0,
    model: 'ws-9lane',
    pollIntervalMs: 1,
    retries: -1,
    itemTolerance: 0.7,
    colour: 'red',
    lanes: [{ lane: 1, unitWeightGrams: 0 }, { lane: 1, lowStock: 5, lowStockClear: 5, unitWeightGrams: 10 }, { lane: 2 }, 'x'],
  });
  for (const expected of [
    /options\.unitId must be an integer 1\.\.247/,
    /options\.model must be one of ws-4lane-int32, ws-4lane-float32/,
    /options\.pollIntervalMs/,
    /options\.retries/,
    /options\.itemTolerance/,
    /options\.colour is not an option/,
    /options\.lanes\[0\]\.unitWeightGrams must be a number of grams > 0/,
    /options\.lanes\[1\]\.lowStockClear must be greater than lowStock/,
    /options\.lanes\[2\]\.unitWeightGrams is required/,
    /options\.lanes\[3\] must be an object/,
  ]) {
    t.ok(
      problems.some((p) => expected.test(p)),
      `reports ${expected}`,
    );
  }
  t.match(validateOptions({ ...good, lanes: [{ lane: 5, unitWeightGrams: 1 }] }), [/lane 5 is not a lane of ws-4lane-int32/]);
  t.match(validateOptions({ ...good, lanes: [] }), [/options\.lanes is required/]);

  const line = new SerialLine({ path: '/dev/does-not-exist-storehub', baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 });
  const { ctx, rec } = fakeContext({ id: 's', kind: 'smart-shelf', options: good }, line);
  const driver = smartShelfDriver.create(ctx);
  t.notOk(line.isOpen, 'nothing opened by create()');
  await t.rejects(driver.start(new AbortController().signal), 'start() rejects when the port cannot be opened');
  t.same(rec.failures, []);
  await driver.stop();
  await driver.stop();
  t.pass('stop() is idempotent, also after a failed start');
});

t.test('counts follow weights, and weights count only once the lane is still', async (t) => {
  const { sim, driver, rec } = await rig(t, {
    sim: { unitId: 7, motionMs: 600 },
    options: {
      unitId: 7,
      model: 'ws-4lane-int32',
      lanes: [
        { lane: 1, sku: 'SKU-COLA', unitWeightGrams: 50 },
        { lane: 3, sku: 'SKU-GUM', unitWeightGrams: 20, tareGrams: 100 },
      ],
    },
  });
  sim.place(1, 50, 10);
  sim.setLoad(3, 100 + 7 * 20); // a 100 g tray and seven packs
  await untilCount(driver, 1, 10);
  await untilCount(driver, 3, 7);
  t.ok(near(weights(rec, 1).at(-1)?.grams, 500), 'lane 1 weighs 500 g');
  t.match(
    weights(rec, 1).at(-1),
    { type: 'shelf.weight', deviceId: 'shelf-1', lane: 1, count: 10, sku: 'SKU-COLA', stable: true },
    'the event carries count and SKU',
  );
  t.match(weights(rec, 3).at(-1), { count: 7, sku: 'SKU-GUM' });
  t.ok(near(weights(rec, 3).at(-1)?.grams, 240), 'the event carries the net weight; the tray is taken off only for the count');

  // three more cans, put in by a hand that rests on the lane: the motion bit stays set until it lets go
  const before = weights(rec, 1).length;
  sim.touch(1, true);
  sim.place(1, 50, 3);
  await until('the driver sees the motion bit', async () => (await laneStatus(driver, 1))?.reading?.motion === true);
  const polled = sim.stats.requests;
  await until('a few polls while in motion', () => sim.stats.requests >= polled + 5);
  t.equal(weights(rec, 1).length, before, 'nothing is stable while the hand is on the lane');
  sim.touch(1, false);
  await untilCount(driver, 1, 13);
  const during = weights(rec, 1).slice(before);
  t.ok(during.length >= 1, 'the new weight was reported');
  for (const e of during) {
    t.ok(near(e.grams, 650, 2), `no swinging weight was reported as stable (${e.grams} g)`);
    t.same(e.flags, { motion: false, overCapacity: false, dataOk: true });
    t.equal(e.stable, true);
  }
  t.equal(rec.info.model, 'ws-4lane-int32');
  t.ok(rec.seen > 0, 'the device was marked as seen');
  t.equal(rec.health[0]?.availability, 'online');
});

t.test('out of stock, low stock with hysteresis, wrong item, over capacity', async (t) => {
  const { sim, driver, rec } = await rig(t, {
    sim: { capacityGrams: 1000 },
    options: { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 2, sku: 'SKU-SOUP', unitWeightGrams: 50, lowStock: 3, lowStockClear: 5 }] },
  });
  sim.place(2, 50, 6);
  await untilCount(driver, 2, 6);
  t.notOk(isActive(rec, 'shelf.low-stock', 2));
  sim.remove(2, 50, 3);
  await until('low stock', () => isActive(rec, 'shelf.low-stock', 2));
  t.match(conditions(rec, 'shelf.low-stock', 2).at(-1)?.detail, { lane: 2, sku: 'SKU-SOUP', count: 3, active: true });
  sim.place(2, 50, 1);
  await untilCount(driver, 2, 4);
  t.ok(isActive(rec, 'shelf.low-stock', 2), 'four is above the alert level but below the clear level: still low');
  sim.place(2, 50, 1);
  await until('low stock cleared at 5', () => !isActive(rec, 'shelf.low-stock', 2));
  t.equal(conditions(rec, 'shelf.low-stock', 2).length, 2, 'one alert, one clear: no flapping');

  sim.remove(2, 50, 5);
  await until('out of stock', () => isActive(rec, 'shelf.out-of-stock', 2));
  t.match(conditions(rec, 'shelf.out-of-stock', 2).at(-1)?.detail, { count: 0, active: true });
  sim.place(2, 23); // something that weighs 23 g on a lane of 50 g items
  await until('wrong item', () => isActive(rec, 'shelf.wrong-item', 2));
  const wrong = conditions(rec, 'shelf.wrong-item', 2).at(-1)?.detail as { grams: number; residualGrams: number; count: number };
  t.ok(near(wrong.grams, 23) && near(wrong.residualGrams, 23) && wrong.count === 0, 'the detail says how far off a multiple it is');
  t.equal(weights(rec, 2).at(-1)?.count, undefined, 'a weight that is no multiple of the unit weight carries no count for the ledger');
  sim.remove(2, 23);
  await until('wrong item cleared', () => !isActive(rec, 'shelf.wrong-item', 2));
  sim.place(2, 50, 2);
  await until('back in stock', () => !isActive(rec, 'shelf.out-of-stock', 2));
  t.equal(conditions(rec, 'shelf.wrong-item', 2).length, 2);

  sim.place(2, 50, 30); // 1600 g on a lane rated for 1000 g
  await until('over capacity', () => isActive(rec, 'shelf.over-capacity', 2));
  sim.remove(2, 50, 30);
  await until('over capacity cleared', () => !isActive(rec, 'shelf.over-capacity', 2));
});

t.test('CRC errors, exceptions, garbage and a failed load cell are counted and degrade health', async (t) => {
  const { sim, driver, rec } = await rig(t, {
    options: {
      unitId: 1,
      model: 'ws-4lane-int32',
      lanes: [
        { lane: 1, unitWeightGrams: 10 },
        { lane: 2, unitWeightGrams: 10 },
      ],
    },
  });
  sim.place(1, 10, 4);
  await untilCount(driver, 1, 4);
  await until('online', () => rec.health.at(-1)?.availability === 'online');

  sim.faults.corruptNext(3);
  await until('3 CRC errors counted', () => rec.rejects.filter((r) => r.reason === 'crc').length >= 3);
  await until('degraded for CRC errors', () => rec.health.some((h) => h.availability === 'degraded' && /CRC error/.test(h.reason ?? '')));
  await until('online again', () => rec.health.at(-1)?.availability === 'online');

  sim.faults.exceptionNextReplies(2, 4);
  await until('2 exceptions counted', () => rec.rejects.filter((r) => r.reason === 'exception').length >= 2);
  t.match(rec.rejects.find((r) => r.reason === 'exception')?.detail, /exception 4 \(serverDeviceFailure\)/);
  await until('degraded for exceptions', () => rec.health.some((h) => h.availability === 'degraded' && /exception response/.test(h.reason ?? '')));
  t.ok(
    rec.health.every((h) => h.availability !== 'offline'),
    'a shelf that answers with exceptions is not offline',
  );

  // noise before replies and between frames, and replies dribbling in pieces: still read correctly
  sim.faults.garbageBeforeNext(3);
  sim.babble(Buffer.from([0x00, 0xff, 0x13, 0x37]));
  sim.faults.fragment = true;
  sim.place(1, 10, 3);
  await until('stray bytes counted', () => rec.rejects.some((r) => r.reason === 'malformed' && /stray/.test(r.detail ?? '')));
  await untilCount(driver, 1, 7);
  sim.faults.fragment = false;

  sim.setDataOk(2, false);
  await until('degraded: lane 2 data not ok', () => /lane 2 reports data not ok/.test(rec.health.at(-1)?.reason ?? ''));
  sim.setDataOk(2, true);
  await until('online once the cell recovers', () => rec.health.at(-1)?.availability === 'online');
  t.ok(sim.stats.corrupted >= 3 && sim.stats.exceptions >= 2, 'the simulator did inject the faults');
});

t.test('a shelf that stops answering goes offline, then recovers', async (t) => {
  const { sim, driver, rec } = await rig(t, {
    options: { unitId: 1, model: 'ws-4lane-int32', offlineAfterPolls: 3, lanes: [{ lane: 4, unitWeightGrams: 25 }] },
  });
  sim.place(4, 25, 2);
  await untilCount(driver, 4, 2);
  sim.faults.silent = true;
  await until('offline', () => rec.health.at(-1)?.availability === 'offline');
  t.match(rec.health.at(-1)?.reason, /no answer from unit 1 for 3 polls/);
  t.ok(rec.rejects.filter((r) => r.reason === 'timeout').length >= 3, 'every unanswered attempt is counted');
  sim.place(4, 25, 1); // stock changes while nobody can see it
  sim.faults.silent = false;
  await until('online again', () => rec.health.at(-1)?.availability === 'online');
  await untilCount(driver, 4, 3);

  // a slow controller: answers later than the time-out are time-outs, and polling goes on
  const timeouts = rec.rejects.filter((r) => r.reason === 'timeout').length;
  sim.faults.delayMs = 400;
  await until('late answers time out', () => rec.rejects.filter((r) => r.reason === 'timeout').length >= timeouts + 2);
  await until('degraded for time-outs', () => /timeout/.test(rec.health.at(-1)?.reason ?? '') || rec.health.at(-1)?.availability === 'offline');
  sim.faults.delayMs = 0;
  await until('online once it is quick again', () => rec.health.at(-1)?.availability === 'online');
  t.same(rec.failures, [], 'silence and slowness are not driver failures');
});

t.test('tare and zero are register writes; bad commands are refused', async (t) => {
  const { sim, driver, rec } = await rig(t, { options: { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 2, unitWeightGrams: 100 }] } });
  sim.setLoad(2, 212); // an empty crate
  await until('212 g stable', () => near(weights(rec, 2).at(-1)?.grams, 212));
  const tare = await driver.execute({ name: 'tare', args: { lane: 2 } });
  t.equal(tare.ok, true, tare.detail ?? 'no detail');
  t.same(sim.writes.at(-1), { address: 2 * 4 - 1, value: 1 }, 'FC 6 to lane 2 command register, value 1');
  await until('net 0 after tare', () => near(weights(rec, 2).at(-1)?.grams, 0));
  sim.place(2, 100, 3);
  await untilCount(driver, 2, 3);
  t.ok(near(weights(rec, 2).at(-1)?.grams, 300), 'items weigh net of the crate');

  const zero = await driver.execute({ name: 'zero', args: { lane: 2 } });
  t.equal(zero.ok, true);
  t.same(sim.writes.at(-1), { address: 7, value: 2 });

  t.match(await driver.execute({ name: 'tare', args: { lane: 3 } }), { ok: false, detail: /args\.lane must be one of 2/ });
  t.match(await driver.execute({ name: 'reboot' }), { ok: false, detail: /unknown command/ });
  sim.faults.exceptionNextReplies(1, 4, 0x06); // only the write is refused, not a poll
  const refused = await driver.execute({ name: 'tare', args: { lane: 2 } });
  t.match(refused, { ok: false, detail: /exception 4/ }, 'a refused command says why');
});

t.test('float32 weights, words low first, on input registers', async (t) => {
  const { sim, driver, rec } = await rig(t, {
    sim: { model: 'ws-4lane-float32', wordOrder: 'low-first', unitId: 12 },
    options: {
      unitId: 12,
      model: 'ws-4lane-float32',
      wordOrder: 'low-first',
      lanes: [
        { lane: 1, unitWeightGrams: 355.5 },
        { lane: 4, unitWeightGrams: 1.25 },
      ],
    },
  });
  sim.place(1, 355.5, 9);
  sim.place(4, 1.25, 40);
  await untilCount(driver, 1, 9);
  await untilCount(driver, 4, 40);
  t.ok(near(weights(rec, 1).at(-1)?.grams, 3199.5), 'nine items of 355.5 g');
  sim.place(4, 1.25); // lighter than the 2 g stability tolerance: the count still moves
  await untilCount(driver, 4, 41);
  const res = await driver.execute({ name: 'zero', args: { lane: 4 } });
  t.equal(res.ok, true);
  t.same(sim.writes.at(-1), { address: 0x103, value: 2 }, 'float32 model: command registers at 0x0100 + lane - 1');
});

t.test('a vanished serial port is a driver failure for the supervisor', async (t) => {
  const { pair, driver, rec } = await rig(t, { options: { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 1, unitWeightGrams: 10 }] } });
  await until('polling', () => rec.seen > 2);
  await pair.close(); // the adapter is unplugged
  await until('ctx.fail called', () => rec.failures.length > 0);
  t.equal(rec.failures.length, 1, 'reported once');
  await driver.stop();
  t.pass('stop() after a failure resolves');
});

// ---- interoperability: the driver against Modbus slaves written by other authors ----

/** int32 registers for a lane, high word first, as the ws-4lane-int32 map describes them. */
function int32Lane(grams: number, status: number): number[] {
  const counts = Math.round(grams * 10);
  return [(counts >> 16) & 0xffff, counts & 0xffff, status, 0];
}

t.test("interoperates with modbus-serial's ServerSerial (int32 map, holding registers)", async (t) => {
  const registers = [...int32Lane(300, 0b100), ...int32Lane(7000.7, 0b100), ...int32Lane(-12, 0b100), ...int32Lane(0, 0b000)];
  const written: [number, number][] = [];
  const { driver, rec } = await rig(t, {
    options: {
      unitId: 21,
      model: 'ws-4lane-int32',
      lanes: [
        { lane: 1, unitWeightGrams: 25 },
        { lane: 2, unitWeightGrams: 1000.1 },
        { lane: 3, unitWeightGrams: 20 },
        { lane: 4, unitWeightGrams: 5 },
      ],
    },
    peer: async (path) => {
      const server = new ServerSerial(
        {
          getHoldingRegister: (addr: number) => registers[addr] ?? 0,
          setRegister: (addr: number, value: number) => {
            written.push([addr, value]);
          },
        },
        { path, baudRate: 9600, unitID: 21 },
      );
      await new Promise<void>((resolve) => server.once('initialized', () => resolve()));
      return () => new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  await untilCount(driver, 1, 12);
  await untilCount(driver, 2, 7);
  t.equal(weights(rec, 2).at(-1)?.grams, 7000.7, 'a weight past 16 bits uses the high word');
  await until('lane 3 weighed', () => weights(rec, 3).length > 0);
  t.equal(weights(rec, 3).at(-1)?.grams, -12, 'signed 32-bit');
  t.ok(isActive(rec, 'shelf.wrong-item', 3), 'a negative net weight is not a multiple of anything');
  await until('lane 4 degraded', () => /lane 4 reports data not ok/.test(rec.health.at(-1)?.reason ?? ''));
  const res = await driver.execute({ name: 'tare', args: { lane: 2 } });
  t.equal(res.ok, true, res.detail ?? 'no detail');
  t.same(written, [[7, 1]], 'tare of lane 2: FC 6 to register 7, value 1');
});

t.test("interoperates with jsmodbus's RTU server (float32 map, input registers)", async (t) => {
  const input = Buffer.alloc(4 * 3 * 2);
  const laneAt = (lane: number, grams: number, status: number) => {
    input.writeFloatBE(grams, (lane - 1) * 6);
    input.writeUInt16BE(status, (lane - 1) * 6 + 4);
  };
  laneAt(1, 1234.5, 0b01); // data ok
  laneAt(2, 99.9, 0b11); // data ok, in motion: never stable
  laneAt(3, 0, 0b10001); // over capacity
  const holding = Buffer.alloc(0x104 * 2);
  const { driver, rec } = await rig(t, {
    options: {
      unitId: 1,
      model: 'ws-4lane-float32',
      lanes: [
        { lane: 1, unitWeightGrams: 123.45 },
        { lane: 2, unitWeightGrams: 33.3 },
        { lane: 3, unitWeightGrams: 1 },
      ],
    },
    peer: async (path) => {
      const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
      await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
      new ModbusRTUServer(port, { input, holding });
      return () => new Promise<void>((resolve) => port.close(() => resolve()));
    },
  });
  await untilCount(driver, 1, 10);
  t.equal(weights(rec, 1).at(-1)?.grams, 1234.5);
  await until('over capacity from the status bit', () => isActive(rec, 'shelf.over-capacity', 3));
  t.equal(weights(rec, 2).length, 0, 'a lane in motion never reports a stable weight');
  const res = await driver.execute({ name: 'tare', args: { lane: 2 } });
  t.equal(res.ok, true, res.detail ?? 'no detail');
  t.equal(holding.readUInt16BE(0x101 * 2), 1, 'tare of lane 2 landed in holding register 0x0101');
});
