/**
 * Firmware update of a smart shelf over Modbus RTU, end to end on a socat pty pair: the driver sends
 * BEGIN, 240-byte chunks (FC 16) and COMMIT into the simulated controller's firmware area; the
 * controller verifies the CRC-32, reboots into the other slot and reports the new version. Also: a
 * corrupted image, a controller that loses power mid-transfer, an image that boots unhealthy and is
 * rolled back, and polling that stops for the transfer and comes back after it.
 *
 * Robust on a slow machine: every wait is for a condition with a generous deadline; nothing asserts
 * how fast anything happens.
 */
import t, { type Test } from 'tap';
import { crc32 } from '../drivers/smart-shelf/crc32.js';
import { smartShelfDriver, validateOptions } from '../drivers/smart-shelf/index.js';
import { crc32Bitwise } from '../firmware-sim/smart-shelf/firmware-registers.js';
import { createPtyPair, ShelfSimulator, type ShelfSimulatorOptions } from '../firmware-sim/smart-shelf/index.js';
import { SerialLine } from '../hub/devices/transports/serial-line.js';
import type { CommandResult, DeviceEvent, DeviceHealth, Driver, DriverContext, DriverDevice, RejectReason, SerialTransport } from '../hub/sdk/index.js';

const DEADLINE_MS = 15_000;

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = DEADLINE_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function fakeContext(device: DriverDevice, transport: SerialTransport) {
  const rec = {
    events: [] as DeviceEvent[],
    health: [] as DeviceHealth[],
    rejects: [] as { reason: RejectReason; detail?: string }[],
    failures: [] as Error[],
    info: {} as Record<string, unknown>,
  };
  const ctx: DriverContext<SerialTransport> = {
    device,
    transport,
    log: { debug() {}, info() {}, warn() {}, error() {} },
    now: () => Date.now(),
    emit: (e) => rec.events.push(e),
    seen: () => {},
    setHealth: (h) => rec.health.push(h),
    setInfo: (i) => Object.assign(rec.info, i),
    reject: (reason, detail) => rec.rejects.push({ reason, detail }),
    fail: (err) => rec.failures.push(err),
  };
  return { ctx, rec };
}

/** Fast polling and a quick reboot, so a whole update takes a second or two on a pty. */
const OPTIONS = {
  unitId: 3,
  model: 'ws-4lane-int32',
  pollIntervalMs: 40,
  timeoutMs: 120,
  retries: 1,
  offlineAfterPolls: 3,
  lanes: [{ lane: 1, sku: 'SKU-COLA', unitWeightGrams: 50 }],
  firmware: { chunkRetries: 3, rebootTimeoutMs: 10_000 },
};

async function rig(t: Test, sim: ShelfSimulatorOptions = {}) {
  const cleanups: (() => Promise<void>)[] = [];
  t.teardown(async () => {
    for (const undo of cleanups.reverse()) await undo();
  });
  const pair = await createPtyPair();
  cleanups.push(() => pair.close());
  const shelf = new ShelfSimulator({ unitId: 3, motionMs: 100, noiseGrams: 0.1, bootMs: 300, firmwareVersion: '1.0.0', ...sim });
  await shelf.start(pair.b);
  cleanups.push(() => shelf.stop());
  const line = new SerialLine({ path: pair.a, baudRate: 9600, dataBits: 8, parity: 'none', stopBits: 1 });
  const device: DriverDevice = { id: 'shelf-fw', kind: 'smart-shelf', options: OPTIONS };
  t.same(smartShelfDriver.validate(device), [], 'the options are valid');
  const { ctx, rec } = fakeContext(device, line);
  const driver = smartShelfDriver.create(ctx);
  await driver.start(new AbortController().signal);
  cleanups.push(() => driver.stop());
  await until('the firmware version read at start', () => rec.info.firmware === '1.0.0');
  return { sim: shelf, driver, rec };
}

type Status = { lanes: { lane: number; count?: number }[]; health?: DeviceHealth; firmware?: { version: string; previous: string; slot: string } };
const status = async (driver: Driver) => (await driver.execute({ name: 'status' })).data as Status;
const untilCount = (driver: Driver, count: number) => until(`lane 1 counts ${count}`, async () => (await status(driver)).lanes[0]?.count === count);

/** A made-up image: bytes that are not all alike, so a flipped bit or a lost chunk changes the CRC. */
function image(bytes: number, marker = ''): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + (i >> 8)) & 0xff;
  if (marker) b.write(marker, 100, 'latin1');
  return b;
}

const update = (driver: Driver, img: Buffer, version: string): Promise<CommandResult> =>
  driver.execute({ name: 'firmware.update', args: { image: img, version } });

t.test('CRC-32 (zlib/ISO 3309): the check value, and driver and simulator agree', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  t.equal(crc32Bitwise(Buffer.from('123456789')), 0xcbf43926);
  t.equal(crc32(Buffer.alloc(0)), 0);
  const img = image(5000);
  t.equal(crc32(img), crc32Bitwise(img), 'table-driven and bitwise give the same CRC');
});

t.test('firmware options are checked like the others', async (t) => {
  const base = { unitId: 1, model: 'ws-4lane-int32', lanes: [{ lane: 1, unitWeightGrams: 50 }] };
  t.same(validateOptions({ ...base, firmware: { chunkRetries: 5, rebootTimeoutMs: 60_000 } }), []);
  t.same(validateOptions({ ...base, firmware: { chunkRetries: 11, rebootTimeoutMs: 'soon', colour: 1 } }), [
    'options.firmware.colour is not an option of smart-shelf',
    'options.firmware.chunkRetries must be an integer 0..10, got 11',
    'options.firmware.rebootTimeoutMs must be an integer 100..3600000, got "soon"',
  ]);
  t.same(validateOptions({ ...base, firmware: [] }), ['options.firmware must be an object']);
});

t.test('an update goes over in chunks, the shelf reboots into it, polling pauses and resumes', async (t) => {
  const { sim, driver, rec } = await rig(t);
  sim.place(1, 50, 4);
  await untilCount(driver, 4);

  // the replies to two chunk writes (FC 16 after BEGIN and 9 chunks) come back garbled: that chunk is sent again
  sim.faults.corruptNext(2, 0x10, 10);
  const logFrom = sim.requestLog.length;
  const img = image(10_000); // 42 chunks of 240 bytes (the last one 160)
  const res = await update(driver, img, '1.1.0');
  t.match(res, { ok: true, data: { version: '1.1.0', previous: '1.0.0', slot: 'B', bytes: 10_000 } }, res.detail ?? 'updated');
  t.match(sim.firmware, { version: '1.1.0', standby: '1.0.0', slot: 'B', bootCount: 2 }, 'the controller runs the new image from slot B');
  t.equal(rec.info.firmware, '1.1.0', 'the registry learns the new version');
  t.ok(sim.stats.corrupted >= 2, 'the garbled replies were sent');
  t.ok(
    rec.rejects.some((r) => r.reason === 'crc'),
    'and counted as CRC errors, then retried',
  );

  const log = sim.requestLog.slice(logFrom);
  const chunkWrites = log.filter((r) => r.fc === 0x10 && r.address === 0x0100 + 64);
  t.ok(chunkWrites.length >= 44, `42 chunks, one of them sent three times (${chunkWrites.length} chunk writes)`);
  const begin = log.findIndex((r) => r.fc === 0x10 && r.address === 0x0100 + 32);
  const commit = log.findIndex((r) => r.fc === 0x06 && r.address === 0x0100 + 32);
  t.ok(begin >= 0 && commit > begin, 'begin, then chunks, then commit');
  t.notOk(
    log.slice(begin, commit).some((r) => r.fc === 0x03 && r.address === 0),
    'no lane poll between begin and commit: polling paused for the transfer',
  );
  t.ok(
    rec.health.some((h) => /firmware update in progress/.test(h.reason ?? '')),
    'health said why the shelf was not polled',
  );

  sim.place(1, 50, 2);
  await untilCount(driver, 6);
  await until('online again', () => rec.health.at(-1)?.availability === 'online');
  t.match((await status(driver)).firmware, { version: '1.1.0', previous: '1.0.0', slot: 'B' }, 'status shows the firmware');
  t.same(rec.failures, [], 'the driver never failed');
});

t.test('a corrupted image fails its CRC-32 at commit; the shelf keeps its old image', async (t) => {
  const { sim, driver, rec } = await rig(t);
  sim.corruptNextChunk();
  const res = await update(driver, image(3000), '1.2.0');
  t.equal(res.ok, false);
  t.match(res.detail, /refused the commit: CRC-32 of the received image does not match/);
  t.match(res.detail, /keeps running 1\.0\.0/);
  t.match(sim.firmware, { version: '1.0.0', slot: 'A', bootCount: 1, receiving: false }, 'no reboot, nothing activated');
  t.equal(rec.info.firmware, '1.0.0');
  sim.place(1, 50, 3);
  await untilCount(driver, 3);

  // the same image sent again arrives whole and is taken
  const again = await update(driver, image(3000), '1.2.0');
  t.match(again, { ok: true, data: { version: '1.2.0' } }, again.detail ?? 'updated');
});

t.test('a shelf that loses power mid-transfer: a clear failure, the old image runs on, nothing crashes', async (t) => {
  const { sim, driver, rec } = await rig(t);
  sim.cutPowerAfterChunks(5); // the fifth chunk (bytes 960..1199) is taken, then the power goes
  const res = await update(driver, image(5000), '1.3.0');
  t.equal(res.ok, false);
  t.match(res.detail, /stopped answering during the transfer \(chunk at byte 960 of 5000\)/, 'says where it stopped');
  t.match(res.detail, /keeps running 1\.0\.0 \(nothing is activated before a verified commit\)/);
  t.match(res.data, { version: '1.0.0' });
  t.same(rec.failures, [], 'a silent shelf is not a driver failure');

  await until('polled on, and offline while the shelf has no power', () => rec.health.at(-1)?.availability === 'offline');
  sim.powerOn();
  await until('online once it has booted', () => rec.health.at(-1)?.availability === 'online');
  t.match(sim.firmware, { version: '1.0.0', slot: 'A', receiving: false, bootCount: 2 }, 'it booted its old image; the partial transfer is gone');
  await until('the driver read the firmware again after the outage', async () => (await status(driver)).firmware?.version === '1.0.0');
  t.equal(rec.info.firmware, '1.0.0');

  const again = await update(driver, image(5000), '1.3.0');
  t.match(again, { ok: true, data: { version: '1.3.0' } }, again.detail ?? 'a fresh attempt works');
});

t.test('an image that boots unhealthy fails the health check and is rolled back', async (t) => {
  const { sim, driver, rec } = await rig(t);
  sim.place(1, 50, 5);
  await untilCount(driver, 5);
  const res = await update(driver, image(2000, 'SIM-UNHEALTHY'), '2.0.0-rc1');
  t.match(res, { ok: true, data: { version: '2.0.0-rc1' } }, 'the update itself succeeds: the device runs the new version');
  // the health check a job engine makes after the update
  await until('degraded: the load cells report no data', async () => /data not ok/.test((await status(driver)).health?.reason ?? ''));

  const back = await driver.execute({ name: 'firmware.rollback' });
  t.match(back, { ok: true, data: { version: '1.0.0', previous: '2.0.0-rc1', slot: 'A' } }, back.detail ?? 'rolled back');
  t.match(sim.firmware, { version: '1.0.0', standby: '2.0.0-rc1', slot: 'A', healthy: true });
  t.equal(rec.info.firmware, '1.0.0', 'the registry has the old version again');
  await until('healthy again', async () => (await status(driver)).health?.availability === 'online');
  await untilCount(driver, 5);
});

t.test('bad arguments, a rollback with nothing to return to, and overlapping commands are refused', async (t) => {
  const { sim, driver } = await rig(t);
  t.match(await driver.execute({ name: 'firmware.update', args: { version: '1.0.1' } }), { ok: false, detail: /args\.image must be a non-empty Buffer/ });
  t.match(await update(driver, Buffer.alloc(0), '1.0.1'), { ok: false, detail: /args\.image/ });
  t.match(await update(driver, image(10), 'a version with spaces'), { ok: false, detail: /args\.version must be 1\.\.16 printable ASCII/ });
  t.match(await update(driver, image(300 * 1024), '9.9.9'), { ok: false, detail: /larger than the shelf's firmware slot \(262144 bytes\)/ });
  t.match(await driver.execute({ name: 'firmware.rollback' }), { ok: false, detail: /no previous image to roll back to \(it runs 1\.0\.0\)/ });

  const first = update(driver, image(20_000), '1.0.1');
  t.match(await update(driver, image(10), '1.0.2'), { ok: false, detail: /a firmware update is already in progress/ });
  t.match(await driver.execute({ name: 'tare', args: { lane: 1 } }), { ok: false, detail: /busy with a firmware update/ });
  t.match(await first, { ok: true, data: { version: '1.0.1' } });
  t.equal(sim.firmware.version, '1.0.1');
});
