/**
 * Shutdown keeps what it acknowledged: a device publishing QoS 1 while the hub stops gets PUBACKs
 * only for messages whose content still reached its driver (the broker stops taking traffic before
 * the drivers stop), so every acknowledged message is also an event, not only a raw journal row.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import t from 'tap';
import type { Driver, DriverContext, DriverFactory, MqttTransport } from '../hub/sdk/index.js';
import { startHub } from './helpers/hub-harness.js';

/** A device class that turns each message on devices/<id>/count into one event carrying its number. */
const counter: DriverFactory = {
  kind: 'counter',
  transport: 'mqtt',
  validate: () => [],
  create(ctx: DriverContext): Driver {
    let off: (() => void) | undefined;
    return {
      async start() {
        const transport = ctx.transport as MqttTransport;
        off = transport.subscribe(`devices/${ctx.device.id}/count`, (_topic, payload) => {
          ctx.emit({ type: 'device.condition', deviceId: ctx.device.id, time: Date.now(), condition: 'counted', detail: { n: Number(payload.toString()) } });
        });
        ctx.setHealth({ availability: 'online' });
      },
      async stop() {
        // a driver that takes a moment to stop (a port to close, a last poll): traffic the broker
        // still took meanwhile would have nowhere to go
        await new Promise((r) => setTimeout(r, 200));
        off?.();
      },
      async execute() {
        return { ok: false, detail: 'no commands' };
      },
    };
  },
};

t.test('messages acknowledged while the hub stops have all reached their driver', async (t) => {
  const dir = t.testdir();
  const h = await startHub(
    dir,
    { devices: [{ id: 'meter-1', kind: 'counter', transport: { type: 'mqtt' }, options: {} }] } as never,
    new Map([['counter', counter]]),
  );
  const secret = await h.hub.store!.credentials.add('meter-1', 'counter');
  const client = await mqtt.connectAsync(h.mqttUrl, { clientId: 'meter-1', username: 'meter-1', password: secret, reconnectPeriod: 0 });
  client.on('error', () => {});
  const acked: number[] = [];
  let next = 0;
  let running = true;
  // 20 publishers in parallel, each sending the next number as soon as its last one was acknowledged
  const publishers = Array.from({ length: 20 }, async () => {
    while (running) {
      const n = next++;
      try {
        await client.publishAsync('devices/meter-1/count', String(n), { qos: 1 });
        acked.push(n);
      } catch {
        return; // the hub closed the connection
      }
    }
  });
  while (acked.length < 300) await new Promise((r) => setTimeout(r, 5));
  const ackedBeforeStop = acked.length;
  await h.stop();
  running = false;
  client.end(true);
  await Promise.all(publishers);
  t.ok(acked.length >= ackedBeforeStop, `${acked.length} acknowledged, ${acked.length - ackedBeforeStop} of them after stop began`);

  const db = new Database(join(dir, 'hub.db'), { readonly: true });
  t.teardown(() => db.close());
  const journaled = (db.prepare("SELECT count(*) AS c FROM device_messages WHERE device_id = 'meter-1'").get() as { c: number }).c;
  const counted = new Set(
    (db.prepare("SELECT body FROM events WHERE kind = 'device.counted' AND device_id = 'meter-1'").all() as { body: string }[]).map(
      (r) => (JSON.parse(r.body) as { n: number }).n,
    ),
  );
  const missing = acked.filter((n) => !counted.has(n));
  t.strictSame(missing, [], 'every acknowledged message became an event');
  t.ok(journaled >= acked.length, `every acknowledged message is journaled (${journaled} rows)`);
});
