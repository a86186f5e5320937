/**
 * 200 hubs against one cloud broker (Debian's mosquitto) and one reference consumer: each hub's
 * real sync service (outbox in its own SQLite database, MQTT 5 cloud link) drains its ledger, and
 * every hub's records arrive exactly once. The only shared parts are the broker and the consumer:
 * the cloud side scales with the broker, not with anything hand-made in between.
 */
import { Value } from '@sinclair/typebox/value';
import Database from 'better-sqlite3';
import t from 'tap';
import { ConfigSchema, type HubConfig } from '../hub/config/schema.js';
import { StockLedger } from '../hub/inventory/stock-ledger.js';
import { createLogger } from '../hub/observability/logger.js';
import { createMetrics } from '../hub/observability/metrics.js';
import { migrate } from '../hub/store/migrate.js';
import { Outbox } from '../hub/sync/outbox.js';
import { SyncService } from '../hub/sync/sync-service.js';
import { LedgerStore } from '../reference-receiver/ledger-store.js';
import { MqttConsumer } from '../reference-receiver/mqtt-consumer.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { until } from './helpers/sync.js';

const HUBS = 200;
const RECORDS_PER_HUB = 50;

t.test(`${HUBS} hubs drain into one broker and one consumer, each record once`, async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const receiver = new LedgerStore({ file: `${t.testdir()}/receiver.db`, synchronous: 'NORMAL' });
  const consumer = new MqttConsumer({ url: broker.url, store: receiver, clientId: 'fleet-receiver' });
  await consumer.start();
  t.teardown(async () => {
    await consumer.stop();
    receiver.close();
  });

  const metrics = createMetrics();
  const log = createLogger({ level: 'error', pretty: false });
  const hubs: { id: string; db: Database.Database; sync: SyncService; epoch: number }[] = [];
  t.teardown(async () => {
    await Promise.all(hubs.map((h) => h.sync.stop()));
    for (const h of hubs) h.db.close();
  });
  for (let i = 0; i < HUBS; i++) {
    const id = `fleet-${String(i).padStart(3, '0')}`;
    const db = new Database(':memory:');
    migrate(db);
    const config = Value.Default(ConfigSchema, {
      version: 1,
      store: { id: `store-${i}` },
      hubId: id,
      cloud: { enabled: true, url: broker.url, batchSize: 25, window: 2, ackTimeoutSeconds: 30 },
    }) as HubConfig;
    const epoch = 1000 + i;
    const outbox = new Outbox(db, { hubId: id, storeId: `store-${i}`, epoch });
    const ledger = new StockLedger(db, undefined, Date.now, outbox);
    for (let k = 0; k < RECORDS_PER_HUB; k++) ledger.applyDelta(`SKU-${k % 4}`, 'floor', k % 2 === 0 ? 2 : -1, 'sale', null, Date.now());
    const sync = new SyncService({
      config,
      outbox,
      log,
      metrics,
      version: 'test',
      startedAt: Date.now(),
      health: () => ({ ready: true }),
      telemetrySample: () => ({}),
    });
    hubs.push({ id, db, sync, epoch });
  }
  await Promise.all(hubs.map((h) => h.sync.start()));

  await until('every hub drained', () => hubs.every((h) => receiver.cursor(h.id, 'ledger', h.epoch).appliedThrough === RECORDS_PER_HUB), 120_000);
  const stats = receiver.stats();
  t.equal(stats.applied, HUBS * RECORDS_PER_HUB, 'each record applied once across the fleet');
  for (const h of hubs) {
    const seqs = receiver.seqs(h.id, 'ledger', h.epoch).applied;
    if (seqs.length !== RECORDS_PER_HUB || seqs[seqs.length - 1] !== RECORDS_PER_HUB) t.fail(`${h.id}: ${seqs.length} records`);
  }
  await until('every birth message seen', () => hubs.every((h) => consumer.status(h.id)?.payload.online === true));
  t.equal(consumer.statuses().size, HUBS, 'one retained status per hub');
  const held = () => hubs.filter((h) => (h.db.prepare('SELECT count(*) FROM outbox').pluck().get() as number) > 0).length;
  await until('every hub got its acks and emptied its outbox', () => held() === 0);
  t.equal(held(), 0, 'no hub holds a record');
});
