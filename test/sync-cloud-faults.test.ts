/**
 * The cloud link under faults, against Debian's mosquitto and the reference receiver: a link cut
 * while the store keeps producing (with a stream budget held), a broker crash mid-drain, and a
 * consumer that refuses batches. No ledger record is lost or applied twice.
 */
import t from 'tap';
import { metricValue } from './helpers/hub-harness.js';
import { cloudHub, startCloud, onHandAtHub, onHandAtReceiver, produce, until } from './helpers/sync.js';

t.test('a cut link: the store keeps producing, nothing is lost or applied twice, order is kept', async (t) => {
  const { broker, receiver } = await startCloud(t, 'receiver-2', { broker: { persistence: true }, reconnectPeriod: 200 });
  const h = await cloudHub(t, broker.url);
  const epoch = h.hub.store?.epoch as number;

  produce(h.hub, 300);
  await until('first 300 applied', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === 300);

  await broker.stop();
  await until('the hub sees the link down', () => h.hub.sync?.link?.connected === false);
  produce(h.hub, 2000, 300);
  t.equal(h.hub.outbox?.size('ledger').records, 2000, 'the outbox holds everything produced while cut');
  await new Promise((r) => setTimeout(r, 300));
  t.equal(receiver.cursor('hub-a', 'ledger', epoch).appliedThrough, 300, 'nothing reached the receiver meanwhile');

  await broker.restart();
  produce(h.hub, 200, 2300);
  await until('all 2500 applied', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === 2500);
  t.strictSame(
    receiver.seqs('hub-a', 'ledger', epoch).applied,
    Array.from({ length: 2500 }, (_, i) => i + 1),
    'each seq applied exactly once',
  );
  t.strictSame(onHandAtReceiver(receiver, 'hub-a'), onHandAtHub(h.hub));
  t.ok((await metricValue(h.hub, 'storehub_cloud_connects_total')) >= 2, 'the link reconnected');
});

t.test('a cut link with a small events budget: oldest events expire into one record, the ledger loses nothing', async (t) => {
  const { broker, receiver } = await startCloud(t, 'receiver-3', { reconnectPeriod: 200 });
  const budget = 32 * 1024;
  const h = await cloudHub(t, broker.url, { streams: { events: { maxBytes: budget } } });
  const epoch = h.hub.store?.epoch as number;
  await until('connected', () => h.hub.sync?.link?.connected === true);
  await broker.stop();
  await until('the hub sees the link down', () => h.hub.sync?.link?.connected === false);

  const events = h.hub.devices?.events;
  if (!events) throw new Error('no event log');
  for (let i = 0; i < 1500; i++) events.append('device.health', 'reader-9', Date.now(), { availability: i % 2 ? 'online' : 'degraded', note: 'x'.repeat(40) });
  events.flush();
  t.ok((h.hub.outbox?.size('events').bytes ?? 0) > budget, 'the events backlog outgrew its budget');
  produce(h.hub, 400);
  await until('events compacted to their budget', () => (h.hub.outbox?.size('events').bytes ?? Infinity) <= budget, 30_000);
  t.equal(h.hub.outbox?.size('ledger').records, 400, 'the ledger is never dropped');
  const expired = await metricValue(h.hub, 'storehub_outbox_given_up_total', { stream: 'events', outcome: 'expired' });
  t.ok(expired > 0, `${expired} events expired, counted`);
  t.match(
    h.hub.sync?.status().find((s) => s.stream === 'events'),
    { expired, overBudget: false },
  );

  await broker.restart();
  const head = (stream: 'events' | 'ledger') => (h.hub.outbox?.head(stream) ?? 0) - 1;
  await until(
    'both streams caught up at the receiver',
    () =>
      receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === head('ledger') &&
      receiver.cursor('hub-a', 'events', epoch).appliedThrough === head('events'),
  );
  const seqs = receiver.seqs('hub-a', 'events', epoch);
  t.equal(seqs.applied.length + seqs.covered.length, head('events'), 'every events seq is applied or covered by the expiry record');
  t.strictSame(onHandAtReceiver(receiver, 'hub-a'), onHandAtHub(h.hub));
});

t.test('a consumer that refuses batches (an error ack) holds the stream with its reason; nothing is lost', async (t) => {
  // this consumer takes at most 10 records per batch; the hub sends 50
  const { broker, consumer } = await startCloud(t, 'receiver-4', { receiver: { maxBatchRecords: 10 } });
  const h = await cloudHub(t, broker.url);
  produce(h.hub, 120);
  await until('the ledger is held', () => Boolean(h.hub.sync?.status().find((s) => s.stream === 'ledger')?.sinks[0]?.held));
  const ledger = h.hub.sync?.status().find((s) => s.stream === 'ledger');
  t.match(ledger?.sinks[0]?.held, { message: /refused a batch/ });
  t.equal(ledger?.backlogRecords, 120, 'everything kept');
  t.match(h.hub.health.report().checks.sync, { ok: true, detail: /ledger held by cloud/ });
  t.ok(consumer.stats().rejected >= 1);
});

t.test('a broker crash (kill -9) mid-drain: the hub resends from the last ack, each record applied once', async (t) => {
  const { broker, receiver } = await startCloud(t, 'receiver-6', { broker: { persistence: true }, reconnectPeriod: 200 });
  const h = await cloudHub(t, broker.url, { replayRecordsPerSecond: 2000 });
  const epoch = h.hub.store?.epoch as number;
  produce(h.hub, 3000);
  await until('the drain is under way', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough > 200);
  await broker.kill();
  await broker.restart();
  await until('all 3000 applied', () => receiver.cursor('hub-a', 'ledger', epoch).appliedThrough === 3000);
  t.strictSame(
    receiver.seqs('hub-a', 'ledger', epoch).applied,
    Array.from({ length: 3000 }, (_, i) => i + 1),
  );
  t.strictSame(onHandAtReceiver(receiver, 'hub-a'), onHandAtHub(h.hub));
});
