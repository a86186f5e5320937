/**
 * aedes has had reconnect-storm bugs (moscajs/aedes#784, #192); admission control is ours. 2,000
 * connections arrive at once, as after a store-wide network blip, from 200 devices the hub has
 * never verified (so every first check is a real scrypt). A device already connected must keep
 * getting its QoS 1 messages acknowledged, /healthz must keep answering, and every device must
 * get in eventually by retrying after CONNACK 3, as MQTT clients do.
 */
import t from 'tap';
import { RawDevice } from '../bench/raw-device.js';
import { metricValue, startHub } from './helpers/hub-harness.js';

const DEVICES = 200;
let resets = 0;
const CONNECTIONS_PER_DEVICE = 10;

async function connectWithRetry(port: number, clientId: string, user: string, secret: string): Promise<{ device: RawDevice; refusals: number }> {
  for (let refusals = 0; ; refusals++) {
    try {
      return { device: await RawDevice.open(port, clientId, user, secret), refusals };
    } catch (err) {
      const code = (err as { code?: number | string }).code;
      // CONNACK 4/5 would be a real refusal; anything else (3, or a reset while the listen backlog
      // overflows) is what a device meets in a storm and retries after a pause.
      if (code === 4 || code === 5) throw err;
      if (code !== 3) resets++;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
    }
  }
}

t.test('a reconnect storm of 2,000 clients does not starve the hub', async (t) => {
  const h = await startHub(t.testdir(), { log: { level: 'warn' }, broker: { limits: { connectsPerSecond: 400, connectBurst: 400 } } });
  t.teardown(() => h.stop());
  const port = Number(h.mqttUrl.split(':').pop());
  const store = h.hub.store!;
  const secrets = await Promise.all(Array.from({ length: DEVICES }, (_, i) => store.credentials.add(`tag-${i}`, 'esl-ap')));
  const sentinelSecret = await store.credentials.add('sentinel', 'smart-shelf');
  const sentinel = await RawDevice.open(port, 'sentinel', 'sentinel', sentinelSecret);

  let storming = true;
  const sentinelLatencies: number[] = [];
  const healthStatuses: number[] = [];
  const probe = (async () => {
    while (storming) {
      const t0 = performance.now();
      await sentinel.publish('devices/sentinel/weights', Buffer.from('{"g":1200}'));
      sentinelLatencies.push(performance.now() - t0);
      healthStatuses.push((await fetch(`${h.apiUrl}/healthz`)).status);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  const storm = await Promise.all(
    Array.from({ length: DEVICES * CONNECTIONS_PER_DEVICE }, (_, n) => {
      const i = n % DEVICES;
      return connectWithRetry(port, `tag-${i}:${Math.floor(n / DEVICES)}`, `tag-${i}`, secrets[i] as string);
    }),
  );
  storming = false;
  await probe;

  t.equal(storm.length, 2000, 'every client got in');
  t.equal(h.hub.broker!.clientCount, 2001);
  const refused = storm.reduce((s, r) => s + r.refusals, 0) - resets;
  t.ok(refused > 0, `admission control engaged (${refused} CONNACK 3 answers)`);
  t.equal(
    (await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'refused_admission' })) +
      (await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'busy' })),
    refused,
    'every refusal counted',
  );
  t.ok(sentinelLatencies.length > 3, `the connected device kept publishing (${sentinelLatencies.length} acks)`);
  // generous: on a slow shared machine this is seconds at worst; starvation would be the whole storm
  t.ok(Math.max(...sentinelLatencies) < 10_000, `worst ack during the storm: ${Math.round(Math.max(...sentinelLatencies))} ms`);
  t.ok(
    healthStatuses.every((s) => s === 200),
    '/healthz answered 200 throughout',
  );
  for (const { device } of storm) device.close();
  sentinel.close();
});
