/**
 * The disk budget seen from outside a running hub: once the database and its WAL reach
 * `database.maxBytes`, device messages are refused (no PUBACK, so the device keeps them), the metric
 * and /healthz say so, one error line names the code; freeing space resumes ingest by itself.
 */
import mqtt from 'mqtt';
import t from 'tap';
import { type Harness, metricValue, startHub } from './helpers/hub-harness.js';

const PAYLOAD = Buffer.alloc(60 * 1024, 'w'); // a shelf's calibration dump, say

async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function healthz(h: Harness): Promise<{ status: number; body: { checks: Record<string, { ok: boolean; detail?: string }> } }> {
  const res = await fetch(`${h.apiUrl}/healthz`);
  return { status: res.status, body: (await res.json()) as { checks: Record<string, { ok: boolean; detail?: string }> } };
}

t.test('a running hub at its disk budget refuses device messages, reports it, and resumes when space is freed', async (t) => {
  const h = await startHub(t.testdir(), { database: { maxBytes: 1024 * 1024 } });
  t.teardown(() => h.stop());
  const store = h.hub.store!;
  const secret = await store.credentials.add('shelf-1', 'smart-shelf');
  const connect = (suffix: string) =>
    mqtt.connectAsync(h.mqttUrl, { clientId: `shelf-1:${suffix}`, username: 'shelf-1', password: secret, reconnectPeriod: 0, protocolVersion: 4 });
  const rows = () => (store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number }).n;

  // 40 x 60 KiB is well past 1 MiB; the budget is checked every second, so some may be refused
  const filler = await connect('fill');
  const fillerClosed = new Promise<string>((resolve) => filler.once('close', () => resolve('refused')));
  let accepted = 0;
  for (let i = 0; i < 40; i++) {
    const outcome = await Promise.race([filler.publishAsync('devices/shelf-1/calibration', PAYLOAD, { qos: 1 }).then(() => 'acknowledged'), fillerClosed]);
    if (outcome === 'refused') break;
    accepted++;
  }
  filler.end(true);
  t.ok(accepted >= 5, `${accepted} messages of 60 KiB acknowledged before the budget was reached`);
  await eventually('the budget metric', async () => (await metricValue(h.hub, 'storehub_store_budget_exceeded')) === 1);

  const unhealthy = await healthz(h);
  t.equal(unhealthy.status, 503, '/healthz answers 503');
  t.equal(unhealthy.body.checks.store?.ok, false);
  t.match(unhealthy.body.checks.store?.detail, /budget/, 'the store check names the budget');
  const line = h.logs.find((l) => l.code === 'HUB_ERR_STORE_DISK_BUDGET');
  t.ok(line, 'one error line names HUB_ERR_STORE_DISK_BUDGET');
  t.equal(line?.level, 50, 'at error level');

  const before = rows();
  const device = await connect('late');
  const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
  // mqtt.js leaves the publish pending when the connection closes: the close is the refusal
  const outcome = await Promise.race([
    device.publishAsync('devices/shelf-1/weight', '{"g":1200}', { qos: 1 }).then(() => 'acknowledged'),
    closed.then(() => 'refused'),
  ]);
  t.equal(outcome, 'refused', 'no PUBACK: the device keeps the message');
  t.equal(rows(), before, 'nothing stored');
  t.ok((await metricValue(h.hub, 'storehub_journal_messages_rejected_total', { reason: 'HUB_ERR_STORE_DISK_BUDGET' })) >= 1, 'the refusal is counted');
  device.end(true);

  // operations frees space (here: the retention prune, run early)
  store.journal.prune(Date.now() + 1);
  await eventually('the budget cleared', async () => (await metricValue(h.hub, 'storehub_store_budget_exceeded')) === 0);
  t.equal((await healthz(h)).status, 200, 'healthy again');
  t.ok(
    h.logs.some((l) => /ingest resumed/.test(String(l.msg))),
    'a line says ingest resumed',
  );
  const again = await connect('again');
  await again.publishAsync('devices/shelf-1/weight', '{"g":1300}', { qos: 1 });
  t.equal(rows(), 1, 'ingest works again');
  await again.endAsync();
});
