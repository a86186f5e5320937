/**
 * The OMS adapter against the reference receiver over real HTTPS (a CA and server certificate made
 * with openssl): retries through 503s, garbage answers and lost answers end with every ledger
 * record applied exactly once; a receiver that refuses the hub (401) holds the stream, loses nothing.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ReceiverHttpServer } from '../reference-receiver/http-server.js';
import { LedgerStore } from '../reference-receiver/ledger-store.js';
import { Hub } from '../hub/hub.js';
import { createLogger } from '../hub/observability/logger.js';
import { type Harness, metricValue, startHub, testConfig } from './helpers/hub-harness.js';
import { freePort } from './helpers/hub-process.js';
import { until } from './helpers/sync.js';
import { makeCertificates } from './helpers/tls-certs.js';

function produce(hub: Hub, n: number, offset = 0): void {
  const ledger = hub.inventory?.ledger;
  if (!ledger) throw new Error('no ledger');
  for (let i = 0; i < n; i++) ledger.applyDelta(`SKU-${(offset + i) % 5}`, 'backroom', (offset + i) % 4 === 0 ? 4 : -1, 'sale', 'pos-2', Date.now());
}

async function receiverOver(dir: string, options: { token: string; faults?: ConstructorParameters<typeof ReceiverHttpServer>[0]['faults'] }) {
  const certs = makeCertificates(dir);
  const store = new LedgerStore({ file: `${dir}/receiver.db` });
  const server = new ReceiverHttpServer({
    store,
    token: options.token,
    https: { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey) },
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const url = await server.listen();
  return { store, server, url, ca: certs.ca };
}

async function omsHub(dir: string, oms: Record<string, unknown>): Promise<Harness> {
  return startHub(dir, { hubId: 'hub-o', cloud: { oms: { enabled: true, batchSize: 40, timeoutSeconds: 2, ...oms } } } as never);
}

t.test('through 503s, garbage answers and lost answers, every ledger record is applied exactly once', async (t) => {
  const dir = t.testdir();
  const r = await receiverOver(dir, { token: 'oms-secret', faults: { unavailable: 3, retryAfterSeconds: 0, garbage: 2, resetAfterApply: 2 } });
  t.teardown(async () => {
    await r.server.close();
    r.store.close();
  });
  const h = await omsHub(`${dir}/hub`, { url: r.url, token: 'oms-secret', ca: r.ca });
  t.teardown(() => h.stop());
  const epoch = h.hub.store?.epoch as number;
  produce(h.hub, 500);
  await until('all 500 applied', () => r.store.cursor('hub-o', 'ledger', epoch).appliedThrough === 500);
  t.strictSame(
    r.store.seqs('hub-o', 'ledger', epoch).applied,
    Array.from({ length: 500 }, (_, i) => i + 1),
  );
  const hubStock = new Map((h.hub.inventory?.ledger?.stock({}) ?? []).map((s) => [s.sku, s.onHand]));
  t.strictSame(new Map(r.store.balances({ hub: 'hub-o' }).map((b) => [b.sku, b.quantity])), hubStock, 'the OMS holds the store’s stock');
  t.ok((await metricValue(h.hub, 'storehub_sync_send_failures_total', { sink: 'oms', reason: 'http_503' })) >= 3, '503s counted');
  t.ok(
    (await metricValue(h.hub, 'storehub_sync_send_failures_total', { sink: 'oms', reason: 'invalid_response' })) >= 2,
    'garbage answers counted, not taken as acks',
  );
  t.ok((await metricValue(h.hub, 'storehub_sync_send_failures_total', { sink: 'oms', reason: 'network' })) >= 2, 'lost answers counted');
  await until('outbox drained', () => h.hub.outbox?.size('ledger').records === 0);
});

t.test('a receiver that refuses the hub (401) holds the ledger: nothing skipped, reported, drained once fixed', async (t) => {
  const dir = t.testdir();
  const r = await receiverOver(dir, { token: 'right' });
  t.teardown(async () => {
    await r.server.close();
    r.store.close();
  });
  let h = await omsHub(`${dir}/hub`, { url: r.url, token: 'wrong', ca: r.ca });
  const epoch = h.hub.store?.epoch as number;
  produce(h.hub, 100);
  await until('the stream is held', () => h.hub.sync?.status().find((s) => s.stream === 'ledger')?.sinks[0]?.held !== null);
  const status = h.hub.sync?.status().find((s) => s.stream === 'ledger');
  t.match(status?.sinks[0]?.held, { reason: 'http_401', message: /401/ });
  t.equal(status?.backlogRecords, 100, 'nothing dropped');
  t.equal(r.store.cursor('hub-o', 'ledger', epoch).appliedThrough, 0, 'nothing applied');
  t.match(h.hub.health.report().checks.sync, { ok: true, detail: /ledger held by oms/ }, 'health names it without failing readiness');
  const words = status?.sinks[0]?.held?.message ?? '';
  t.ok(words.length > 0 && !String(h.hub.health.report().checks.sync?.detail).includes(words), "but not the OMS's own words: /healthz needs no token");
  await h.stop();

  h = await omsHub(`${dir}/hub`, { url: r.url, token: 'right', ca: r.ca });
  t.teardown(() => h.stop());
  produce(h.hub, 20, 100);
  await until('all 120 applied', () => r.store.cursor('hub-o', 'ledger', epoch).appliedThrough === 120);
  t.equal(r.store.stats().applied, 120);
});

t.test('a receiver that already has records (rebuilt hub, same epoch) is asked first and not resent', async (t) => {
  const dir = t.testdir();
  const r = await receiverOver(dir, { token: 'tok' });
  t.teardown(async () => {
    await r.server.close();
    r.store.close();
  });
  let h = await omsHub(`${dir}/hub`, { url: r.url, token: 'tok', ca: r.ca });
  const epoch = h.hub.store?.epoch as number;
  produce(h.hub, 60);
  await until('60 applied', () => r.store.cursor('hub-o', 'ledger', epoch).appliedThrough === 60);
  await h.stop();
  const before = r.server.stats().requests;
  h = await omsHub(`${dir}/hub`, { url: r.url, token: 'tok', ca: r.ca });
  t.teardown(() => h.stop());
  t.strictSame(h.hub.sync?.status().find((s) => s.stream === 'ledger')?.sinks[0]?.ackedSeq, 60);
  await new Promise((res) => setTimeout(res, 300));
  t.ok(r.server.stats().requests - before <= 1, 'only the cursor question was asked');
});

t.test('the demo runs the reference receiver in process at cloud.oms.url, and only on loopback', async (t) => {
  const port = await freePort();
  const h = await startHub(t.testdir(), {
    hubId: 'hub-demo',
    simulation: { enabled: true, cloudReceiver: true },
    cloud: { oms: { enabled: true, url: `http://127.0.0.1:${port}`, token: 'demo' } },
  } as never);
  t.teardown(() => h.stop());
  produce(h.hub, 30);
  await until('acked by the in-process receiver', () => h.hub.sync?.status().find((s) => s.stream === 'ledger')?.sinks[0]?.ackedSeq === 30);
  const res = await fetch(`http://127.0.0.1:${port}/v1/stats`, { headers: { authorization: 'Bearer demo' } });
  t.match(await res.json(), { applied: 30 });

  const remote = new Hub(
    testConfig(`${t.testdir()}-remote`, {
      simulation: { enabled: true, cloudReceiver: true },
      cloud: { oms: { enabled: true, url: 'https://oms.example.com' } },
    } as never),
    { log: createLogger({ level: 'fatal', pretty: false }) },
  );
  await t.rejects(remote.start(), /loopback/, 'a remote URL is refused');
  await remote.stop();
});
