/**
 * kill -9 of a hub mid-sync, with both uplinks on (MQTT to mosquitto, HTTPS to the reference
 * receiver): after a restart every committed ledger record is applied exactly once at both
 * receivers (duplicates only where the receiver drops them), and their stock equals the hub's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { stringify } from 'yaml';
import { ReceiverHttpServer } from '../reference-receiver/http-server.js';
import { LedgerStore } from '../reference-receiver/ledger-store.js';
import { MqttConsumer } from '../reference-receiver/mqtt-consumer.js';
import { freePort } from './helpers/hub-process.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { until } from './helpers/sync.js';

const PRODUCER = join(import.meta.dirname, 'helpers', 'producing-hub.ts');

function start(config: string, perTick: number): { child: ChildProcess; lines: string[]; exited: Promise<unknown> } {
  const child = spawn(process.execPath, ['--import', 'tsx', PRODUCER, config, String(perTick)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  child.stdout?.on('data', (c: Buffer) => lines.push(...String(c).split('\n').filter(Boolean)));
  child.stderr?.on('data', (c: Buffer) => lines.push(...String(c).split('\n').filter(Boolean)));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return { child, lines, exited };
}

t.test('kill -9 mid-sync: no loss, no double apply, at either receiver', async (t) => {
  const dir = t.testdir();
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  const mqttReceiver = new LedgerStore({ file: join(dir, 'mqtt-receiver.db') });
  const consumer = new MqttConsumer({ url: broker.url, store: mqttReceiver, clientId: 'crash-receiver' });
  await consumer.start();
  const httpReceiver = new LedgerStore({ file: join(dir, 'oms-receiver.db') });
  const server = new ReceiverHttpServer({ store: httpReceiver, token: 'k' });
  const omsUrl = await server.listen();
  t.teardown(async () => {
    await consumer.stop();
    await server.close();
    mqttReceiver.close();
    httpReceiver.close();
  });

  const config = join(dir, 'store.yaml');
  writeFileSync(
    config,
    stringify({
      version: 1,
      store: { id: 'crash-store' },
      hubId: 'hub-c',
      dataDir: 'data',
      api: { host: '127.0.0.1', port: await freePort() },
      broker: { host: '127.0.0.1', port: await freePort() },
      cloud: { enabled: true, url: broker.url, batchSize: 100, window: 4, oms: { enabled: true, url: omsUrl, token: 'k', batchSize: 100 } },
    }),
  );
  let hub = start(config, 25);
  t.teardown(() => hub.child.kill('SIGKILL'));
  await until('the hub produces', () => hub.lines.some((l) => l.startsWith('sold 2000')));
  const epoch = (() => {
    const meta = new Database(join(dir, 'data', 'hub.db'), { readonly: true });
    try {
      return Number((meta.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string }).value);
    } finally {
      meta.close();
    }
  })();
  await until(
    'both receivers have some of it',
    () => mqttReceiver.cursor('hub-c', 'ledger', epoch).appliedThrough > 500 && httpReceiver.cursor('hub-c', 'ledger', epoch).appliedThrough > 500,
  );
  hub.child.kill('SIGKILL');
  await hub.exited;

  // Back up, selling nothing more: everything committed before the kill must arrive.
  hub = start(config, 0);
  await until('restarted', () => hub.lines.includes('producing'));
  const db = new Database(join(dir, 'data', 'hub.db'), { readonly: true });
  const committed = (db.prepare('SELECT count(*) AS n FROM stock_ledger').get() as { n: number }).n;
  const stock = db.prepare('SELECT sku, sum(delta) AS q FROM stock_ledger GROUP BY sku ORDER BY sku').all() as { sku: string; q: number }[];
  db.close();
  t.ok(committed >= 2000, `${committed} ledger entries committed before the kill`);
  await until(
    `all ${committed} at both receivers`,
    () =>
      mqttReceiver.cursor('hub-c', 'ledger', epoch).appliedThrough === committed && httpReceiver.cursor('hub-c', 'ledger', epoch).appliedThrough === committed,
  );
  for (const [name, receiver] of [
    ['mqtt', mqttReceiver],
    ['oms', httpReceiver],
  ] as const) {
    t.strictSame(
      receiver.seqs('hub-c', 'ledger', epoch).applied,
      Array.from({ length: committed }, (_, i) => i + 1),
      `${name}: each seq applied once`,
    );
    const balances = receiver
      .balances({ hub: 'hub-c' })
      .map((b) => ({ sku: b.sku, q: b.quantity }))
      .sort((a, b) => (a.sku < b.sku ? -1 : 1));
    t.strictSame(balances, stock, `${name}: stock equals the hub's ledger`);
  }
  t.ok(mqttReceiver.stats().duplicates + httpReceiver.stats().duplicates >= 0, 'duplicates, if any, were dropped by the receivers');
  hub.child.kill('SIGTERM');
  await hub.exited;
});
