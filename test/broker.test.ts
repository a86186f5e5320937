import { createConnection } from 'node:net';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import t from 'tap';
import { waitFor } from './helpers/ops.js';
import { type Harness, metricValue, startHub } from './helpers/hub-harness.js';

const connect = (h: Harness, id: string, password: string, extra: mqtt.IClientOptions = {}) =>
  mqtt.connectAsync(h.mqttUrl, { clientId: id, username: id, password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 10_000, ...extra });

async function refusedCode(p: Promise<MqttClient>): Promise<number | undefined> {
  try {
    const c = await p;
    await c.endAsync();
    return undefined;
  } catch (err) {
    return (err as { code?: number }).code;
  }
}

t.test('device authentication, ACLs and the durable acknowledgement', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const store = h.hub.store!;
  const secret = await store.credentials.add('reader-1', 'rfid-reader');
  const other = await store.credentials.add('reader-2', 'rfid-reader', ['zebra/{id}/#']);

  t.test('wrong secret and unknown device get CONNACK 4 and are counted', async (t) => {
    t.equal(await refusedCode(connect(h, 'reader-1', 'not-the-secret')), 4);
    t.equal(await refusedCode(connect(h, 'ghost', 'x')), 4);
    t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'bad_secret' }), 1);
    t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'unknown_device' }), 1);
  });

  t.test('a client id that is not the device id is refused (no session takeover)', async (t) => {
    t.equal(await refusedCode(connect(h, 'reader-1', secret, { clientId: 'reader-2' })), 5);
    t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'refused_identity' }), 1);
  });

  t.test('a QoS 1 message is committed before its PUBACK', async (t) => {
    const client = await connect(h, 'reader-1', secret);
    const payload = JSON.stringify({ n: 1, at: Date.now() });
    await client.publishAsync('devices/reader-1/events', payload, { qos: 1 });
    // PUBACK received: an independent connection must already see the row.
    const peer = new Database(store.file, { readonly: true });
    const row = peer.prepare('SELECT device_id, topic, payload, qos FROM device_messages WHERE topic = ?').get('devices/reader-1/events') as {
      device_id: string;
      payload: Buffer;
      qos: number;
    };
    peer.close();
    t.equal(row.device_id, 'reader-1');
    t.equal(row.payload.toString(), payload);
    t.equal(row.qos, 1);
    await client.endAsync();
  });

  t.test('the other device works in its own namespace', async (t) => {
    const client = await connect(h, 'reader-2', other);
    await client.publishAsync('zebra/reader-2/data', 'x', { qos: 1 });
    t.ok(true, 'published within zebra/reader-2/#');
    await client.endAsync();
  });

  t.test('publish outside the namespace: connection closed, nothing stored, counted', async (t) => {
    const before = store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number };
    const client = await connect(h, 'reader-1', secret);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish('devices/reader-2/events', 'spoof', { qos: 1 });
    await closed;
    const after = store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number };
    t.equal(after.n, before.n, 'nothing journaled');
    t.equal(await metricValue(h.hub, 'storehub_broker_acl_denied_total', { action: 'publish' }), 1);
    client.end(true);
  });

  t.test('subscribe outside the namespace gets SUBACK 0x80 and is counted', async (t) => {
    const client = await connect(h, 'reader-1', secret);
    // mqtt.js rejects a SUBACK holding a failure code; the packet is on the error
    const err = (await client.subscribeAsync(['devices/reader-1/cmd', 'devices/#']).catch((e: unknown) => e)) as { packet?: { granted: number[] } };
    t.same(err.packet?.granted, [0, 128]);
    t.equal(await metricValue(h.hub, 'storehub_broker_acl_denied_total', { action: 'subscribe' }), 1);
    await client.endAsync();
  });

  t.test('hub services subscribe in process and see device messages', async (t) => {
    const seen: string[] = [];
    const unsubscribe = h.hub.broker!.subscribe('devices/+/telemetry', (packet) => seen.push(`${packet.topic}=${packet.payload}`));
    const client = await connect(h, 'reader-1', secret);
    await client.publishAsync('devices/reader-1/telemetry', 'temp=21', { qos: 1 });
    await new Promise((r) => setTimeout(r, 50));
    t.same(seen, ['devices/reader-1/telemetry=temp=21']);
    unsubscribe();
    await client.endAsync();
  });

  t.test('the hub publishes commands a device receives', async (t) => {
    const client = await connect(h, 'reader-1', secret);
    await client.subscribeAsync('devices/reader-1/cmd', { qos: 1 });
    const got = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())));
    await h.hub.broker!.publish('devices/reader-1/cmd', '{"command":"start"}', 1);
    t.equal(await got, '{"command":"start"}');
    await client.endAsync();
  });
});

t.test('removing a device ends its live session', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const store = h.hub.store!;
  const secret = await store.credentials.add('robot-9', 'robot');
  const client = await connect(h, 'robot-9', secret);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  t.equal(h.hub.broker!.closeRevokedSessions(), 0, 'a valid session is left alone');
  store.credentials.remove('robot-9');
  t.equal(h.hub.broker!.closeRevokedSessions(), 1);
  await closed;
  t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'revoked' }), 1);
  client.end(true);
});

t.test('oversize packets close the connection before the body is buffered', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { maxPacketBytes: 1024 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('shelf-1', 'smart-shelf');
  const client = await connect(h, 'shelf-1', secret);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.publish('devices/shelf-1/big', Buffer.alloc(4096, 1), { qos: 1 });
  await closed;
  t.equal(await metricValue(h.hub, 'storehub_broker_oversize_packets_total'), 1);
  client.end(true);

  // A raw socket that only declares a 100 MB packet is cut off right after the header.
  const raw = createConnection(Number(h.mqttUrl.split(':').pop()), '127.0.0.1');
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x30]));
  await rawClosed;
  t.equal(await metricValue(h.hub, 'storehub_broker_oversize_packets_total'), 2);
  const ok = await connect(h, 'shelf-1', secret);
  await ok.publishAsync('devices/shelf-1/small', 'fine', { qos: 1 });
  t.pass('the broker still serves others');
  await ok.endAsync();
});

t.test('admission control: a connection storm is answered with CONNACK 3, not starvation', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { connectsPerSecond: 5, connectBurst: 5, maxClients: 1000 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('screen-1', 'guide-screen', ['devices/screen-1/#']);
  const attempts = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      refusedCode(
        mqtt.connectAsync(h.mqttUrl, { clientId: `screen-1:${i}`, username: 'screen-1', password: secret, reconnectPeriod: 0, connectTimeout: 20_000 }),
      ),
    ),
  );
  const accepted = attempts.filter((c) => c === undefined).length;
  const busy = attempts.filter((c) => c === 3).length;
  t.ok(accepted >= 5 && accepted < 30, `some admitted (${accepted})`);
  t.equal(accepted + busy, 30, 'every other attempt told to come back later');
  t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'refused_admission' }), busy);
});

t.test('maxClients caps connected clients', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { maxClients: 2 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('robot-1', 'robot');
  const opts = (i: number) => ({ clientId: `robot-1:${i}`, username: 'robot-1', password: secret, reconnectPeriod: 0 });
  const a = await mqtt.connectAsync(h.mqttUrl, opts(1));
  const b = await mqtt.connectAsync(h.mqttUrl, opts(2));
  t.equal(await refusedCode(mqtt.connectAsync(h.mqttUrl, opts(3))), 3);
  t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'refused_capacity' }), 1);
  await a.endAsync();
  await b.endAsync();
});

t.test('a flooding client is slowed by back-pressure, and loses nothing', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { messagesPerSecond: 200, messageBurst: 20 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('scanner-1', 'scanner');
  const client = await connect(h, 'scanner-1', secret);
  await Promise.all(Array.from({ length: 120 }, (_, i) => client.publishAsync('devices/scanner-1/scan', String(i), { qos: 1 })));
  t.ok((await metricValue(h.hub, 'storehub_broker_throttled_total')) > 0, 'throttled');
  const n = h.hub.store!.db.prepare("SELECT count(*) AS n FROM device_messages WHERE device_id = 'scanner-1'").get() as { n: number };
  t.equal(n.n, 120, 'every acknowledged message stored');
  await client.endAsync();
});

t.test("a device's connections share one message rate: a second client id does not double it", async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { messagesPerSecond: 40, messageBurst: 10 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('scanner-2', 'scanner');
  const a = await connect(h, 'scanner-2:a', secret, { username: 'scanner-2' });
  const b = await connect(h, 'scanner-2:b', secret, { username: 'scanner-2' });
  // 8 messages on each connection: within a per-connection burst of 10, over a shared one
  const sends = [a, b].flatMap((c) => Array.from({ length: 8 }, (_, i) => c.publishAsync('devices/scanner-2/scan', String(i), { qos: 1 })));
  await Promise.all(sends);
  t.ok((await metricValue(h.hub, 'storehub_broker_throttled_total')) >= 6, 'the messages past the shared burst were delayed');
  const n = h.hub.store!.db.prepare("SELECT count(*) AS n FROM device_messages WHERE device_id = 'scanner-2'").get() as { n: number };
  t.equal(n.n, 16, 'and every one stored');
  await a.endAsync();
  await b.endAsync();
});

t.test("a device's rate bucket lives while any of its connections does, and goes with the last", async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const limits = h.hub.broker!.rateLimits;
  const secret = await h.hub.store!.credentials.add('scanner-3', 'scanner');
  const a = await connect(h, 'scanner-3:a', secret, { username: 'scanner-3' });
  const b = await connect(h, 'scanner-3:b', secret, { username: 'scanner-3' });
  t.equal(limits.connections('scanner-3'), 2, 'one bucket, held by both connections');
  await a.endAsync();
  await waitFor(() => limits.connections('scanner-3') === 1, 'a released');
  t.equal(limits.connections('scanner-3'), 1, 'kept while b is connected');
  b.end(true); // no DISCONNECT: the socket just goes
  await waitFor(() => limits.connections('scanner-3') === 0, 'bucket dropped');
  t.equal(limits.size, 0, 'dropped with the last connection');
});

t.test('a subscriber that stops reading does not stall delivery to others', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { drainTimeoutMs: 500 } } });
  t.teardown(() => h.stop());
  const store = h.hub.store!;
  // Namespaces are disjoint, so a store-wide message goes to each screen's own topic: the hub fans out.
  const s1 = await store.credentials.add('screen-slow', 'guide-screen');
  const s2 = await store.credentials.add('screen-fast', 'guide-screen');
  const slow = await connect(h, 'screen-slow', s1);
  await slow.subscribeAsync('devices/screen-slow/#', { qos: 0 });
  // stop reading the socket: the kernel buffers fill and aedes must not wait forever
  (slow.stream as unknown as { pause(): void }).pause();
  const fast = await connect(h, 'screen-fast', s2);
  await fast.subscribeAsync('devices/screen-fast/#', { qos: 0 });
  let received = 0;
  fast.on('message', () => received++);
  const big = Buffer.alloc(60_000, 7);
  for (let i = 0; i < 200; i++) {
    await h.hub.broker!.publish('devices/screen-slow/prices', big, 0);
    await h.hub.broker!.publish('devices/screen-fast/prices', big, 0);
  }
  const deadline = Date.now() + 20_000;
  while (received < 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  t.equal(received, 200, 'the reading subscriber got every message');
  await fast.endAsync();
  slow.end(true);
});

t.test('a client far over its message rate is slowed, then disconnected, and both are counted', async (t) => {
  const h = await startHub(t.testdir(), { broker: { limits: { messagesPerSecond: 1, messageBurst: 1 } } });
  t.teardown(() => h.stop());
  const secret = await h.hub.store!.credentials.add('shelf-3', 'smart-shelf');
  const client = await connect(h, 'shelf-3', secret);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  // one per second allowed, burst 1: the 7th of a burst would wait more than 5 s
  for (let i = 0; i < 10; i++) client.publish('devices/shelf-3/weight', String(i), { qos: 1 });
  await closed;
  client.end(true);
  t.ok((await metricValue(h.hub, 'storehub_broker_throttled_total')) >= 1, 'excess messages were delayed first');
  t.equal(await metricValue(h.hub, 'storehub_broker_connections_total', { outcome: 'rate_limited' }), 1, 'the disconnect is counted');
  t.ok(
    h.logs.some((l) => l.deviceId === 'shelf-3' && /rate over its limit/.test(String(l.msg))),
    'and logged with the device id',
  );
});

t.test('the broker health check reports shutdown', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const healthz = async () => {
    const res = await fetch(`${h.apiUrl}/healthz`);
    return { status: res.status, broker: ((await res.json()) as { checks: Record<string, { ok: boolean; detail?: string }> }).checks.broker };
  };
  t.same(await healthz(), { status: 200, broker: { ok: true, detail: '0 clients' } });
  await h.hub.broker!.closeIntake();
  const after = await healthz();
  t.equal(after.status, 503);
  t.same(after.broker, { ok: false, detail: 'shutting down: device messages are not taken' });
});
