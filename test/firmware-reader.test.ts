/**
 * Firmware update of fixed RFID readers over MQTT, end to end: a real hub (embedded broker, device
 * service, supervisor, registry) runs the rfid-reader driver for a simulated Impinj and a simulated
 * Zebra reader. Each reader's broker credential covers exactly `readerTopics(device)`: its own topics
 * and its management pair, so the transfer works inside the per-device ACL. Covered: a successful
 * update (with a lost acknowledgement), a corrupted image, a reader that loses power mid-transfer, an
 * image that boots unhealthy and is rolled back, and reads that resume after each.
 *
 * Robust on a slow machine: every wait is for a condition with a generous deadline.
 */
import t, { type Test } from 'tap';
import { readerTopics } from '../drivers/rfid-reader/index.js';
import { RfidReaderSimulator, type RfidReaderSimulatorOptions } from '../firmware-sim/rfid-reader/index.js';
import type { CommandResult, DeviceHealth } from '../hub/sdk/index.js';
import { metricValue, startHub } from './helpers/hub-harness.js';

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Small chunks (so an image is many messages), a short reboot, and time-outs generous for a busy machine. */
const FIRMWARE = { chunkBytes: 4096, ackTimeoutMs: 1500, retries: 3, rebootTimeoutMs: 15_000 };
const ANTENNAS = { '1': 'salesfloor', '2': 'backroom' };
const DEVICES = [
  {
    id: 'reader-i',
    kind: 'rfid-reader',
    transport: { type: 'mqtt' },
    options: { vendor: 'impinj', topics: { events: 'impinj/{id}/events', status: 'impinj/{id}/status' }, antennas: ANTENNAS, firmware: FIRMWARE },
  },
  {
    id: 'reader-z',
    kind: 'rfid-reader',
    transport: { type: 'mqtt' },
    options: {
      vendor: 'zebra',
      topics: { events: 'zebra/{id}/data', status: 'zebra/{id}/status', management: 'zebra/{id}/events' },
      antennas: ANTENNAS,
      firmware: FIRMWARE,
    },
  },
];

function image(bytes: number, marker = ''): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + (i >> 9)) & 0xff;
  if (marker) b.write(marker, 1000, 'latin1');
  return b;
}

t.test('firmware over the management interface, through the hub', async (t) => {
  const h = await startHub(t.testdir(), { log: { level: 'warn' }, devices: DEVICES } as never);
  t.teardown(() => h.stop());
  const devices = h.hub.devices!;
  const secrets = new Map<string, string>();
  for (const d of DEVICES) {
    const topics = readerTopics(d);
    secrets.set(d.id, await h.hub.store!.credentials.add(d.id, d.kind, topics));
  }
  t.same(
    readerTopics(DEVICES[0]!),
    ['impinj/reader-i/events', 'impinj/reader-i/status', 'impinj/reader-i/mgmt/cmd', 'impinj/reader-i/mgmt/res'],
    "the credential covers the reader's own topics and its management pair, nothing else",
  );

  const execute = (id: string, name: string, args?: Record<string, unknown>): Promise<CommandResult> =>
    devices.supervisor(id)!.execute(args ? { name, args } : { name });
  const status = async (id: string) =>
    (await execute(id, 'status')).data as { reads: number; health: DeviceHealth; lostAntennas: number[]; firmware?: { version: string; previous?: string } };
  const registry = (id: string) => devices.registry!.get(id)!;

  /** A reader as the store has it: reading its tags, with a management interface on the default topics. */
  async function reader(t: Test, id: string, extra: Partial<RfidReaderSimulatorOptions> = {}): Promise<RfidReaderSimulator> {
    const vendor = id === 'reader-i' ? 'impinj' : 'zebra';
    const topics =
      vendor === 'impinj'
        ? { events: `impinj/${id}/events`, status: `impinj/${id}/status` }
        : { events: `zebra/${id}/data`, status: `zebra/${id}/status`, management: `zebra/${id}/events` };
    const sim = new RfidReaderSimulator({
      url: h.mqttUrl,
      username: id,
      password: secrets.get(id)!,
      vendor,
      topics: { ...topics, commands: `${vendor}/${id}/mgmt/cmd`, responses: `${vendor}/${id}/mgmt/res` },
      antennas: [1, 2],
      tags: 20,
      readsPerSecond: 40,
      qos: 1,
      heartbeatMs: 0,
      firmware: { bootMs: 300 },
      ...extra,
    });
    t.teardown(() => sim.kill());
    await sim.start();
    await until(`${id} online`, async () => (await status(id)).health.availability === 'online');
    return sim;
  }

  const readsResume = async (id: string) => {
    const before = (await status(id)).reads;
    await until(`${id} reads again`, async () => (await status(id)).reads > before + 5);
  };

  t.test('impinj: an update (with a lost acknowledgement) reboots the reader into the new version', async (t) => {
    const sim = await reader(t, 'reader-i');
    await until('the version asked after the birth message', () => registry('reader-i').firmware === '8.0.1');

    sim.dropNextAcks(1); // the first chunk is taken, its acknowledgement lost: the driver sends it again
    const res = await execute('reader-i', 'firmware.update', { image: image(40_000), version: '8.1.0' });
    t.match(res, { ok: true, data: { version: '8.1.0', previous: '8.0.1', slot: 'B', bytes: 40_000 } }, res.detail ?? 'updated');
    t.match(sim.firmware, { version: '8.1.0', standby: '8.0.1', slot: 'B', bootCount: 2 }, 'the reader booted the new image');
    t.equal(registry('reader-i').firmware, '8.1.0', 'the registry records the new version');
    t.match((await status('reader-i')).firmware, { version: '8.1.0', previous: '8.0.1' });
    await until('online after the reboot', async () => (await status('reader-i')).health.availability === 'online');
    await readsResume('reader-i');
  });

  t.test('impinj: a corrupted image fails its SHA-256 at commit; the old image runs on', async (t) => {
    const sim = await reader(t, 'reader-i');
    const running = sim.firmware.version;
    sim.corruptNextChunk();
    const res = await execute('reader-i', 'firmware.update', { image: image(10_000), version: '8.2.0' });
    t.equal(res.ok, false);
    t.match(res.detail, /the reader refused the commit: checksum_mismatch: SHA-256 of the received image does not match/);
    t.match(res.detail, new RegExp(`keeps running ${running.replaceAll('.', '\\.')}`));
    t.match(sim.firmware, { version: running, bootCount: 1, receiving: false }, 'no reboot, nothing activated');
    t.equal(registry('reader-i').firmware, running);
    await readsResume('reader-i');
  });

  t.test('impinj: a reader that loses power mid-transfer: a clear failure, then back on its old image', async (t) => {
    const sim = await reader(t, 'reader-i');
    const running = sim.firmware.version;
    const restarts = devices.supervisor('reader-i')!.restarts;
    sim.killAfterChunks(3);
    const res = await execute('reader-i', 'firmware.update', { image: image(30_000), version: '9.0.0' });
    t.equal(res.ok, false);
    t.match(res.detail, /the reader went offline during the transfer \(chunk at byte 8192 of 30000\): connection lost \(reader will message\)/);
    t.match(res.detail, /keeps running .* \(nothing is activated before a verified commit\)/);
    t.equal((await status('reader-i')).health.availability, 'offline');

    await sim.start(); // power is back
    await until('online again', async () => (await status('reader-i')).health.availability === 'online');
    t.match(sim.firmware, { version: running, receiving: false, bootCount: 2 }, 'it booted its old image; the partial transfer is gone');
    await until('the registry has the version it booted', () => registry('reader-i').firmware === running);
    t.equal(devices.supervisor('reader-i')!.restarts, restarts, 'the driver never failed');
    await readsResume('reader-i');
  });

  t.test('impinj: an image that boots unhealthy fails the health check and is rolled back', async (t) => {
    const sim = await reader(t, 'reader-i');
    const good = sim.firmware.version;
    const res = await execute('reader-i', 'firmware.update', { image: image(12_000, 'SIM-UNHEALTHY'), version: '9.1.0-rc1' });
    t.match(res, { ok: true, data: { version: '9.1.0-rc1' } }, 'the update itself succeeds');
    // the health check a job engine makes after the update
    await until('degraded: every antenna lost', async () => /antenna 1 \(salesfloor\) disconnected/.test((await status('reader-i')).health.reason ?? ''));

    const back = await execute('reader-i', 'firmware.rollback');
    t.match(back, { ok: true, data: { version: good, previous: '9.1.0-rc1' } }, back.detail ?? 'rolled back');
    t.match(sim.firmware, { version: good, standby: '9.1.0-rc1', healthy: true });
    t.equal(registry('reader-i').firmware, good, 'the registry has the old version again');
    await until('healthy again', async () => (await status('reader-i')).health.availability === 'online');
    await readsResume('reader-i');

    t.match(await execute('reader-i', 'firmware.update', { version: '1' }), { ok: false, detail: /args\.image/ });
    const first = execute('reader-i', 'firmware.update', { image: image(8000), version: '9.2.0' });
    t.match(await execute('reader-i', 'firmware.rollback'), { ok: false, detail: /a firmware update is already in progress/ });
    t.match(await first, { ok: true, data: { version: '9.2.0' } });
  });

  t.test('zebra: the birth message names the new version; the registry follows', async (t) => {
    const sim = await reader(t, 'reader-z');
    await until('the version from the birth message', () => registry('reader-z').firmware === '3.21.13');
    t.match(await execute('reader-z', 'firmware.rollback'), { ok: false, detail: /refused the rollback: no_previous_image/ });
    const res = await execute('reader-z', 'firmware.update', { image: image(9000), version: '3.22.1' });
    t.match(res, { ok: true, data: { version: '3.22.1', previous: '3.21.13', slot: 'B' } }, res.detail ?? 'updated');
    t.equal(registry('reader-z').firmware, '3.22.1');
    t.equal(sim.firmware.version, '3.22.1');
    await readsResume('reader-z');
  });

  t.test('nothing left the per-device ACL', async (t) => {
    t.equal(await metricValue(h.hub, 'storehub_broker_acl_denied_total'), 0, 'no publish or subscribe was refused');
  });
});
