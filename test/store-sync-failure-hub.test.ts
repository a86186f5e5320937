/**
 * A failed fsync of the WAL seen from a running hub: the message waiting for it gets no PUBACK (the
 * device keeps it), nothing more is taken, /healthz says why, a fatal line names the code, and the
 * hub asks to exit (`storehub start` exits 1, so systemd restarts it and SQLite recovers from disk).
 */
import mqtt from 'mqtt';
import t from 'tap';
import { metricValue, startHub } from './helpers/hub-harness.js';

t.test('a failed WAL sync refuses the waiting message and every later one, reports it and asks the hub to exit', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const store = h.hub.store!;
  const fatal: Error[] = [];
  (h.hub as unknown as { options: { onFatal?: (err: Error) => void } }).options.onFatal = (err) => fatal.push(err);
  const secret = await store.credentials.add('shelf-1', 'smart-shelf');
  const connect = (suffix: string) =>
    mqtt.connectAsync(h.mqttUrl, { clientId: `shelf-1:${suffix}`, username: 'shelf-1', password: secret, reconnectPeriod: 0, protocolVersion: 4 });
  const rows = () => (store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number }).n;

  const ok = await connect('ok');
  await ok.publishAsync('devices/shelf-1/weight', '{"g":1}', { qos: 1 });
  t.equal(rows(), 1, 'acknowledged and stored while the disk works');
  await ok.endAsync();

  // the disk fails: fdatasync answers EIO from now on (on the journal's thread, where the syncs run)
  store.journal.failSyncsForTest('EIO: i/o error, fdatasync');

  const refuse = async (suffix: string) => {
    const device = await connect(suffix);
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    // mqtt.js leaves the publish pending when the connection closes: the close is the refusal
    const outcome = await Promise.race([
      device.publishAsync('devices/shelf-1/weight', '{"g":2}', { qos: 1 }).then(() => 'acknowledged'),
      closed.then(() => 'refused'),
    ]);
    device.end(true);
    return outcome;
  };
  t.equal(await refuse('a'), 'refused', 'the message waiting for the failed sync gets no PUBACK');
  t.equal(fatal.length, 1, 'the hub is asked to exit');
  t.equal((fatal[0] as { code?: string }).code, 'HUB_ERR_STORE_SYNC');
  t.equal(await refuse('b'), 'refused', 'a later message is refused too');
  t.equal(fatal.length, 1, 'asked once');

  const res = await fetch(`${h.apiUrl}/healthz`);
  t.equal(res.status, 503, '/healthz answers 503');
  const body = (await res.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
  t.equal(body.checks.store?.ok, false);
  t.match(body.checks.store?.detail, /journal sync failed: EIO/, 'the store check says why');
  const line = h.logs.find((l) => l.code === 'HUB_ERR_STORE_SYNC');
  t.equal(line?.level, 60, 'one fatal line names HUB_ERR_STORE_SYNC');
  t.ok((await metricValue(h.hub, 'storehub_journal_messages_rejected_total', { reason: 'HUB_ERR_STORE_SYNC' })) >= 2, 'the refusals are counted');
});
