/**
 * The test broker helper itself: a real mosquitto that MQTT 5 clients can use, whose persistence really
 * survives a restart (the root-user trap in FACTS.md), whose queue limit is applied, and whose TLS listener
 * checks client certificates. Other tests lean on these, so they are checked once here.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import t from 'tap';
import { startMosquitto } from './helpers/mosquitto.js';
import { freePort } from './helpers/hub-process.js';
import { makeCertificates } from './helpers/tls-certs.js';

interface Received {
  topic: string;
  payload: string;
}

/** Connects and starts collecting messages before CONNACK, so a persistent session's queue is not missed. */
async function open(url: string, opts: IClientOptions = {}): Promise<{ client: MqttClient; got: Received[] }> {
  const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
  const got: Received[] = [];
  client.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
  return { client, got };
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const persistent = (clientId: string): IClientOptions => ({ clientId, clean: false, properties: { sessionExpiryInterval: 3600 } });

t.test('MQTT 5 publish and subscribe', async (t) => {
  const broker = await startMosquitto();
  t.teardown(() => broker.stop());
  t.match(broker.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
  const sub = await open(broker.url);
  await sub.client.subscribeAsync('a/#', { qos: 1 });
  const pub = await open(broker.url);
  await pub.client.publishAsync('a/b', 'hello', { qos: 1 });
  await until('the message', () => sub.got.length === 1);
  t.same(sub.got, [{ topic: 'a/b', payload: 'hello' }]);
  await Promise.all([sub.client.endAsync(), pub.client.endAsync()]);
});

t.test('persistence: a queued QoS 1 message survives stop() and restart()', async (t) => {
  const broker = await startMosquitto({ persistence: true });
  t.teardown(() => broker.stop());
  const first = await open(broker.url, persistent('consumer-1'));
  await first.client.subscribeAsync('q/#', { qos: 1 });
  await first.client.endAsync();

  const pub = await open(broker.url);
  await pub.client.publishAsync('q/1', 'kept', { qos: 1 });
  await pub.client.endAsync();

  await broker.stop();
  await t.rejects(open(broker.url), 'nothing listens while stopped');
  await broker.restart();
  const again = await open(broker.url, persistent('consumer-1'));
  await until('the queued message', () => again.got.length === 1);
  t.same(again.got, [{ topic: 'q/1', payload: 'kept' }], 'session and queue restored from the persistence file');
  await again.client.endAsync();
});

t.test('kill(): a crash loses what came after the last snapshot; restart() works on the same port', async (t) => {
  const broker = await startMosquitto({ persistence: true });
  t.teardown(() => broker.stop());
  const first = await open(broker.url, persistent('consumer-2'));
  await first.client.subscribeAsync('k/#', { qos: 1 });
  await first.client.endAsync();
  await broker.restart(); // SIGTERM: the session is now on disk
  const pub = await open(broker.url);
  await pub.client.publishAsync('k/1', 'after the snapshot', { qos: 1 });
  await pub.client.endAsync();

  await broker.kill();
  await broker.restart();
  const again = await open(broker.url, persistent('consumer-2'));
  t.ok(again.client.connected, 'the same port accepts connections after a kill');
  await new Promise((r) => setTimeout(r, 300));
  t.same(again.got, [], 'the message queued after the last save is gone: the broker is not the durable point');
  // The session (saved at the SIGTERM) survived, so a fresh publish still reaches it without resubscribing.
  const pub2 = await open(broker.url);
  await pub2.client.publishAsync('k/2', 'fresh', { qos: 1 });
  await until('the fresh message', () => again.got.length === 1);
  t.equal(again.got[0]?.topic, 'k/2');
  await Promise.all([again.client.endAsync(), pub2.client.endAsync()]);
});

t.test('maxQueuedMessages is applied (and mosquitto drops the newest)', async (t) => {
  const broker = await startMosquitto({ maxQueuedMessages: 2 });
  t.teardown(() => broker.stop());
  const first = await open(broker.url, persistent('consumer-3'));
  await first.client.subscribeAsync('m/#', { qos: 1 });
  await first.client.endAsync();
  const pub = await open(broker.url);
  for (let i = 1; i <= 4; i++) await pub.client.publishAsync('m/x', String(i), { qos: 1 });
  await pub.client.endAsync();
  const again = await open(broker.url, persistent('consumer-3'));
  await until('the queued messages', () => again.got.length >= 2);
  await new Promise((r) => setTimeout(r, 200));
  t.same(
    again.got.map((m) => m.payload),
    ['1', '2'],
  );
  await again.client.endAsync();
});

t.test('TLS listener with a required client certificate', async (t) => {
  const certs = makeCertificates(t.testdir());
  const tlsPort = await freePort();
  const broker = await startMosquitto({ tls: { port: tlsPort, ca: certs.ca, cert: certs.serverCert, key: certs.serverKey, requireCertificate: true } });
  t.teardown(() => broker.stop());
  t.equal(broker.tlsUrl, `mqtts://127.0.0.1:${tlsPort}`);
  const ca = readFileSync(certs.ca);
  const ok = await open(broker.tlsUrl!, { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) });
  await ok.client.subscribeAsync('t/#', { qos: 1 });
  await ok.client.publishAsync('t/1', 'over tls', { qos: 1 });
  await until('the message over TLS', () => ok.got.length === 1);
  t.equal(ok.got[0]?.payload, 'over tls');
  await ok.client.endAsync();
  await t.rejects(open(broker.tlsUrl!, { ca }), 'no client certificate: refused');
  await t.rejects(open(broker.tlsUrl!, { cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) }), 'server not trusted without the CA');
  // The plain listener is still there next to it.
  const plain = await open(broker.url);
  t.ok(plain.client.connected);
  await plain.client.endAsync();
});
