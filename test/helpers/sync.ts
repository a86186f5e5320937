/** Shared pieces of the sync tests: waiting, selling stock in a hub, comparing balances. */
import type { Test } from 'tap';
import type { Hub } from '../../hub/hub.js';
import { LedgerStore, type LedgerStoreOptions } from '../../reference-receiver/ledger-store.js';
import { MqttConsumer } from '../../reference-receiver/mqtt-consumer.js';
import { type Harness, startHub } from './hub-harness.js';
import { type Mosquitto, type MosquittoOptions, startMosquitto } from './mosquitto.js';

/** The cloud side of a test: Debian's mosquitto and the reference receiver consuming from it. */
export async function startCloud(
  t: Test,
  clientId: string,
  options: { broker?: MosquittoOptions; receiver?: Partial<LedgerStoreOptions>; reconnectPeriod?: number } = {},
): Promise<{ broker: Mosquitto; receiver: LedgerStore; consumer: MqttConsumer }> {
  const broker = await startMosquitto(options.broker);
  t.teardown(() => broker.stop());
  const receiver = new LedgerStore({ file: ':memory:', ...options.receiver });
  t.teardown(() => receiver.close());
  const consumer = new MqttConsumer({
    url: broker.url,
    store: receiver,
    clientId,
    ...(options.reconnectPeriod ? { mqtt: { reconnectPeriod: options.reconnectPeriod } } : {}),
  });
  await consumer.start();
  t.teardown(() => consumer.stop());
  return { broker, receiver, consumer };
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export function produce(hub: Hub, n: number, offset = 0): void {
  const ledger = hub.inventory?.ledger;
  if (!ledger) throw new Error('no ledger');
  for (let i = 0; i < n; i++) ledger.applyDelta(`SKU-${(offset + i) % 7}`, 'salesfloor', (offset + i) % 3 === 0 ? 3 : -1, 'sale', 'pos-1', Date.now());
}

export function onHandAtHub(hub: Hub): Map<string, number> {
  return new Map((hub.inventory?.ledger?.stock({}) ?? []).map((s) => [s.sku, s.onHand]));
}

export function onHandAtReceiver(store: LedgerStore, hubId: string): Map<string, number> {
  return new Map(store.balances({ hub: hubId }).map((b) => [b.sku, b.quantity]));
}

/** A hub with the cloud link on, its data in `dir` (a test's testdir unless given). */
export async function cloudHub(t: Test, url: string, extra: Record<string, unknown> = {}, dir: string = t.testdir()): Promise<Harness> {
  const h = await startHub(dir, {
    hubId: 'hub-a',
    cloud: { enabled: true, url, batchSize: 50, window: 4, ackTimeoutSeconds: 5, keepaliveSeconds: 5, ...extra },
  } as never);
  t.teardown(() => h.stop());
  return h;
}
