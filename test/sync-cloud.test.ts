/**
 * The cloud link end to end: a real hub, Debian's mosquitto as the cloud broker, and the reference
 * receiver consuming the stream batches and acking them. Stock produced in the store reaches the
 * receiver exactly once and in order, through a cut link and a broker restart.
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import t from 'tap';
import { LedgerStore } from '../reference-receiver/ledger-store.js';
import { MqttConsumer } from '../reference-receiver/mqtt-consumer.js';
import { metricValue } from './helpers/hub-harness.js';
import { freePort } from './helpers/hub-process.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { cloudHub, startCloud, onHandAtHub, onHandAtReceiver, produce, until } from './helpers/sync.js';
import { makeCertificates } from './helpers/tls-certs.js';

t.test('ledger records reach the receiver once, in order; birth, acks, /api/v1/sync and metrics agree', async (t) => {
  const { broker, receiver, consumer } = await startCloud(t, 'receiver-1');

  const h = await cloudHub(t, broker.url);
  const epoch = h.hub.store?.epoch as number;
  await until('birth message', () => consumer.status('hub-a')?.payload.online === true);
  t.match(consumer.status('hub-a')?.payload, { online: true, hub: 'hub-a', store: 'test-store', epoch, health: { ready: Boolean } });

  produce(h.hub, 1000);
  await until('all 1000 applied', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === 1000);
  t.strictSame(onHandAtReceiver(receiver, 'hub-a'), onHandAtHub(h.hub), 'the receiver holds the store’s stock');
  const seqs = receiver.seqs('hub-a', 'ledger', epoch);
  t.strictSame(
    seqs.applied,
    Array.from({ length: 1000 }, (_, i) => i + 1),
    'every seq applied once',
  );
  await until('outbox drained', () => (h.hub.outbox?.size('ledger').records ?? -1) === 0);

  const { token } = h.hub.store?.tokens.create('read', 'test') as { token: string };
  const res = await fetch(`${h.apiUrl}/api/v1/sync`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(res.status, 200);
  const body = (await res.json()) as {
    streams: { stream: string; head: number; backlogRecords: number; sinks: { sink: string; ackedSeq: number; connected: boolean }[] }[];
  };
  const ledger = body.streams.find((s) => s.stream === 'ledger');
  t.match(ledger, { head: 1001, backlogRecords: 0, sinks: [{ sink: 'cloud', ackedSeq: 1000, connected: true }] });
  t.equal(await metricValue(h.hub, 'storehub_outbox_acked_total', { stream: 'ledger', sink: 'cloud' }), 1000);
  t.equal(await metricValue(h.hub, 'storehub_outbox_produced_total', { stream: 'ledger' }), 1000);
  t.equal(await metricValue(h.hub, 'storehub_cloud_connected'), 1);
});

t.test('malformed downlink is rejected and counted, never crashes the link', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const h = await cloudHub(t, broker.url);
  await until('connected', () => h.hub.sync?.link?.connected === true);
  const prefix = h.hub.sync?.link?.prefix as string;
  const hq = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  t.teardown(() => hq.endAsync());
  const rejections: unknown[] = [];
  await hq.subscribeAsync(`${prefix}/rejected`, { qos: 1 });
  hq.on('message', (_topic, payload) => rejections.push(JSON.parse(payload.toString())));
  await hq.publishAsync(`${prefix}/acks`, 'not json', { qos: 1 });
  await hq.publishAsync(`${prefix}/acks`, JSON.stringify({ stream: 'ledger', epoch: 'x' }), { qos: 1 });
  await hq.publishAsync(`${prefix}/acks`, JSON.stringify({ stream: 'nope', epoch: 1, appliedThrough: 5 }), { qos: 1 });
  await until('three rejections reported upstream', () => rejections.length === 3);
  t.match(rejections[0], { topic: `${prefix}/acks`, reason: 'not JSON' });
  t.equal(await metricValue(h.hub, 'storehub_cloud_downlink_rejected_total'), 3);
  produce(h.hub, 5);
  t.equal(h.hub.sync?.link?.connected, true, 'still connected');
});

t.test('mutual TLS: the hub connects with its client certificate; without one the broker refuses it', async (t) => {
  const dir = t.testdir();
  const certs = makeCertificates(join(dir, 'certs'), 'hub-a');
  const broker = await startMosquitto({
    tls: { port: await freePort(), ca: certs.ca, cert: certs.serverCert, key: certs.serverKey, requireCertificate: true },
  });
  t.teardown(() => broker.stop());
  const receiver = new LedgerStore({ file: ':memory:' });
  t.teardown(() => receiver.close());
  const consumer = new MqttConsumer({ url: broker.url, store: receiver, clientId: 'receiver-5' });
  await consumer.start();
  t.teardown(() => consumer.stop());

  const refused = await cloudHub(t, broker.tlsUrl as string, { tls: { ca: certs.ca } }, join(dir, 'hub-refused'));
  await new Promise((r) => setTimeout(r, 1500));
  t.equal(refused.hub.sync?.link?.connected, false, 'no client certificate: not connected');
  t.equal(await metricValue(refused.hub, 'storehub_cloud_connects_total'), 0);
  await refused.stop();

  const h = await cloudHub(t, broker.tlsUrl as string, { tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } }, join(dir, 'hub'));
  const epoch = h.hub.store?.epoch as number;
  produce(h.hub, 100);
  await until('100 applied over mutual TLS', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === 100);
  t.equal(await metricValue(h.hub, 'storehub_cloud_connected'), 1);
});

t.test('jobs and desired state arrive over the cloud link; their status goes back up', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const h = await cloudHub(t, broker.url);
  await until('connected', () => h.hub.sync?.link?.connected === true);
  const prefix = h.hub.sync?.link?.prefix as string;
  const hq = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  t.teardown(() => hq.endAsync());
  const statuses: { id: string; status: string; reason: string | null; source: string }[] = [];
  let reported: unknown;
  await hq.subscribeAsync([`${prefix}/jobs/+/status`, `${prefix}/reported`], { qos: 1 });
  hq.on('message', (topic, payload) => {
    if (topic.endsWith('/reported')) reported = JSON.parse(payload.toString());
    else statuses.push(JSON.parse(payload.toString()));
  });

  await hq.publishAsync(`${prefix}/jobs`, JSON.stringify({ type: 'device.command', id: 'hq-1', targets: ['no-such-shelf'], command: { name: 'tare' } }), {
    qos: 1,
  });
  await until('the job finished', () => statuses.some((s) => s.id === 'hq-1' && s.status === 'FAILED'));
  t.match(
    statuses.find((s) => s.id === 'hq-1' && s.status === 'FAILED'),
    { source: 'cloud', reason: String },
    'a command for an unknown device fails with a reason',
  );
  t.equal(h.hub.ops?.get('hq-1')?.status, 'FAILED', 'the job is in the hub too');

  await hq.publishAsync(`${prefix}/jobs`, JSON.stringify({ type: 'device.command', id: 'hq-2', targets: [] }), { qos: 1 });
  await until('the malformed job is rejected upstream', () => statuses.some((s) => s.id === 'hq-2' && s.status === 'REJECTED'));

  const desired = { version: 3, config: { version: 1, store: { id: 'test-store' } } };
  await hq.publishAsync(`${prefix}/desired`, JSON.stringify(desired), { qos: 1, retain: true });
  await until('reported', () => reported !== undefined);
  t.match(reported, { version: 3 }, 'the applied desired version is reported');
  reported = undefined;
  await hq.publishAsync(`${prefix}/desired`, JSON.stringify({ version: 2, config: desired.config }), { qos: 1, retain: true });
  await until('the older desired state is refused', () => statuses.some((s) => s.id === 'desired-v2' && s.status === 'REJECTED'));
  t.match(
    statuses.find((s) => s.id === 'desired-v2'),
    { reason: /older than applied version 3/ },
  );
});
