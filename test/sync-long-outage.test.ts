/**
 * A long cut: the cloud broker (Debian's mosquitto) is gone for two minutes while the store keeps
 * selling, its devices keep reporting and telemetry keeps sampling. Throughout, the lossy streams
 * stay inside their disk budgets; afterwards every ledger record reaches the receiver exactly once
 * and in order, and every seq of every stream is accounted for.
 */
import t from 'tap';
import { cloudHub, startCloud, onHandAtHub, onHandAtReceiver, produce, until } from './helpers/sync.js';

const OUTAGE_MS = Number(process.env.STOREHUB_TEST_OUTAGE_MS ?? 120_000);

t.setTimeout(OUTAGE_MS + 240_000);

t.test(`a ${OUTAGE_MS / 1000} s outage: budgets held while cut, nothing of the ledger lost or doubled after`, async (t) => {
  const { broker, receiver } = await startCloud(t, 'outage-receiver', { reconnectPeriod: 500 });
  const budget = 48 * 1024;
  const h = await cloudHub(t, broker.url, { telemetryIntervalSeconds: 1, streams: { events: { maxBytes: budget }, telemetry: { maxBytes: 16 * 1024 } } });
  const epoch = h.hub.store?.epoch as number;
  await until('connected', () => h.hub.sync?.link?.connected === true);

  await broker.stop();
  await until('the hub sees the link down', () => h.hub.sync?.link?.connected === false);
  const events = h.hub.devices?.events;
  if (!events) throw new Error('no event log');
  let sold = 0;
  let worstEvents = 0;
  const started = Date.now();
  while (Date.now() - started < OUTAGE_MS) {
    produce(h.hub, 10, sold);
    sold += 10;
    for (let i = 0; i < 25; i++) events.append('device.health', 'reader-9', Date.now(), { availability: i % 2 ? 'online' : 'degraded', note: 'y'.repeat(60) });
    await new Promise((r) => setTimeout(r, 500));
    // compaction runs every few seconds: measure after it has had its chance
    if (Date.now() - started > 3000) worstEvents = Math.max(worstEvents, h.hub.outbox?.size('events').bytes ?? 0);
  }
  t.ok(worstEvents <= budget * 1.5, `the events backlog stayed within 1.5x its budget while cut (worst ${worstEvents} of ${budget} bytes)`);
  t.equal(h.hub.outbox?.size('ledger').records, sold, `all ${sold} ledger records held`);
  t.ok((h.hub.sync?.status().find((s) => s.stream === 'events')?.expired ?? 0) > 0, 'events expired, counted');
  t.ok((h.hub.sync?.status().find((s) => s.stream === 'telemetry')?.backlogRecords ?? 0) > 0, 'telemetry kept sampling');

  await broker.restart();
  const head = (stream: 'ledger' | 'events' | 'telemetry') => (h.hub.outbox?.head(stream) ?? 0) - 1;
  await until(
    'every stream caught up',
    () => (['ledger', 'events', 'telemetry'] as const).every((s) => receiver.cursor('hub-a', s, epoch).appliedThrough === head(s)),
    120_000,
  );
  t.strictSame(
    receiver.seqs('hub-a', 'ledger', epoch).applied,
    Array.from({ length: sold }, (_, i) => i + 1),
    'each ledger seq applied once, in order',
  );
  t.strictSame(onHandAtReceiver(receiver, 'hub-a'), onHandAtHub(h.hub));
  for (const s of ['events', 'telemetry'] as const) {
    const seqs = receiver.seqs('hub-a', s, epoch);
    t.equal(seqs.applied.length + seqs.covered.length, head(s), `${s}: every seq applied or covered`);
  }
});
