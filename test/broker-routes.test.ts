/**
 * Direct routes (hub/broker/route-table.ts): device messages that only the hub's own handlers
 * listen to skip aedes' publish pipeline. These tests hold it to aedes' delivery rules with real
 * MQTT clients: a subscriber gets everything published after its SUBACK, a persistent session gets
 * what was published while it was away, retained messages are kept, and in-process handlers see
 * each topic's messages in order while subscriptions change around them.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { Aedes, type Client, type PublishPacket } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import mqemitter from 'mqemitter';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import t from 'tap';
import { type Deliver, RouteTable, type SubscriptionStore } from '../hub/broker/route-table.js';
import { type Harness, startHub } from './helpers/hub-harness.js';
import { waitFor } from './helpers/ops.js';

const TOPIC = 'devices/screen-1/status';

function connect(h: Harness, clientId: string, password: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(h.mqttUrl, { clientId, username: 'screen-1', password, reconnectPeriod: 0, protocolVersion: 4, connectTimeout: 10_000, ...extra });
}

async function publishAll(client: MqttClient, from: number, to: number, topic = TOPIC): Promise<void> {
  const sent: Promise<unknown>[] = [];
  for (let i = from; i <= to; i++) sent.push(client.publishAsync(topic, String(i), { qos: 1 }));
  await Promise.all(sent);
}

function range(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
}

t.test('direct routes keep aedes delivery rules', async (t) => {
  const h = await startHub(t.testdir());
  t.teardown(() => h.stop());
  const broker = h.hub.broker!;
  const secret = await h.hub.store!.credentials.add('screen-1', 'guide-screen');
  const local: string[] = [];
  const unsubscribeLocal = broker.subscribe('devices/+/status', (packet) => local.push(String(packet.payload)));
  const publisher = await connect(h, 'screen-1:pub', secret);
  t.teardown(() => publisher.end(true));

  t.test('a topic only the hub listens to is handed over directly, in order', async (t) => {
    const before = { ...broker.routes.stats };
    await publishAll(publisher, 1, 200);
    await waitFor(() => local.length === 200, 'in-process handler got 200');
    t.same(local, range(1, 200));
    t.ok(broker.routes.stats.direct - before.direct > 100, 'most messages took the direct route');
  });

  t.test('a client subscribing later gets everything published after its SUBACK', async (t) => {
    local.length = 0;
    const subscriber = await connect(h, 'screen-1:sub', secret);
    const got: string[] = [];
    subscriber.on('message', (_topic, payload) => got.push(payload.toString()));
    // connected, not subscribed: the topic is routed directly again
    const directBefore = broker.routes.stats.direct;
    await publishAll(publisher, 201, 250);
    t.ok(broker.routes.stats.direct > directBefore, 'routed directly before the subscription');
    await subscriber.subscribeAsync(TOPIC, { qos: 1 });
    const pipelineBefore = broker.routes.stats.pipeline;
    await publishAll(publisher, 251, 350);
    await waitFor(() => got.length === 100 && local.length === 150, 'both got theirs');
    t.same(got, range(251, 350), 'the socket subscriber got every message after its SUBACK');
    t.same(local, range(201, 350), 'the hub still got every message');
    t.equal(broker.routes.stats.pipeline - pipelineBefore, 100, 'all went through aedes while a client subscribes');

    await subscriber.unsubscribeAsync(TOPIC);
    const directAfter = broker.routes.stats.direct;
    await publishAll(publisher, 351, 400);
    await waitFor(() => local.length === 200, 'hub got 50 more');
    t.equal(got.length, 100, 'nothing after UNSUBACK');
    t.ok(broker.routes.stats.direct > directAfter, 'the topic is routed directly again');
    await subscriber.endAsync();
  });

  t.test('a persistent session gets what was published while it was away', async (t) => {
    const options = { clean: false };
    const away = await connect(h, 'screen-1:persist', secret, options);
    await away.subscribeAsync(TOPIC, { qos: 1 });
    await away.endAsync();
    await publishAll(publisher, 1001, 1020);
    // listen before the CONNACK: the queued messages follow it at once
    const back = mqtt.connect(h.mqttUrl, {
      clientId: 'screen-1:persist',
      username: 'screen-1',
      password: secret,
      reconnectPeriod: 0,
      protocolVersion: 4,
      ...options,
    });
    const got: string[] = [];
    back.on('message', (_topic, payload) => got.push(payload.toString()));
    await waitFor(() => got.length >= 20, 'queued messages delivered');
    t.same(got.slice(0, 20), range(1001, 1020));
    // end the session so the stored subscription does not hold the topic on aedes' pipeline
    await back.unsubscribeAsync(TOPIC);
    await back.endAsync();
  });

  t.test('a retained message is kept for later subscribers', async (t) => {
    await publisher.publishAsync('devices/screen-1/config', 'theme=dark', { qos: 1, retain: true });
    const late = await connect(h, 'screen-1:late', secret);
    const got = new Promise<string>((resolve) => late.once('message', (_topic, payload) => resolve(payload.toString())));
    await late.subscribeAsync('devices/screen-1/config', { qos: 1 });
    t.equal(await got, 'theme=dark');
    await late.endAsync();
  });

  t.test('in-process handlers see one topic in order while subscriptions change around it', async (t) => {
    local.length = 0;
    const churner = await connect(h, 'screen-1:churn', secret);
    let churning = true;
    const churn = (async () => {
      while (churning) {
        await churner.subscribeAsync(TOPIC, { qos: 1 });
        await churner.unsubscribeAsync(TOPIC);
      }
    })();
    const invalidationsBefore = broker.routes.stats.invalidations;
    const statsBefore = { ...broker.routes.stats };
    for (let from = 1; from <= 2000; from += 100) await publishAll(publisher, from, from + 99);
    churning = false;
    await churn;
    await waitFor(() => local.length === 2000, 'hub got 2000');
    t.same(local, range(1, 2000), 'every message once, in order');
    t.ok(broker.routes.stats.invalidations > invalidationsBefore, 'subscriptions changed during the run');
    t.ok(broker.routes.stats.direct > statsBefore.direct && broker.routes.stats.pipeline > statsBefore.pipeline, 'both routes were used');
    await churner.endAsync();
  });

  t.test('an in-process handler removed is not called again', async (t) => {
    unsubscribeLocal();
    local.length = 0;
    await new Promise((r) => setImmediate(r));
    await publishAll(publisher, 1, 20);
    await new Promise((r) => setTimeout(r, 50));
    t.same(local, []);
  });
});

t.test('a topic waits for its earlier message inside aedes before taking the direct route', async (t) => {
  const table = new RouteTable();
  const mq = mqemitter({ concurrency: 1000, matchEmptyLevels: true });
  table.watchEmitter(mq);
  table.watchPersistence((aedesPersistence as unknown as () => SubscriptionStore)());
  // aedes' pipeline stand-in that holds each message until released, then emits it as aedes does
  const held: (() => void)[] = [];
  const broker = Object.assign(new EventEmitter(), {
    published: (_p: unknown, _c: unknown, done: () => void) => done(),
    publish(packet: PublishPacket, _client: unknown, done: () => void) {
      held.push(() => mq.emit(packet, () => done()));
    },
  });
  table.install(broker as unknown as Aedes);
  const seen: string[] = [];
  const deliver: Deliver = (packet, done) => {
    seen.push(String(packet.payload));
    done();
  };
  table.markLocal(deliver);
  mq.on('devices/+/weight', deliver as unknown as Parameters<typeof mq.on>[1]);
  const device = {} as Client;
  const publish = (n: number) =>
    (broker.publish as unknown as (p: PublishPacket, c: Client, d: () => void) => void)(
      { cmd: 'publish', topic: 'devices/shelf-1/weight', payload: Buffer.from(String(n)), qos: 1, retain: false, dup: false },
      device,
      () => {},
    );
  publish(1); // route not known yet: through the pipeline, held there
  await new Promise((r) => setImmediate(r)); // the lookup finds only the hub's handler
  publish(2); // must not overtake message 1
  t.same(seen, [], 'nothing delivered while message 1 is held');
  t.equal(held.length, 2);
  for (const release of held.splice(0)) release();
  t.same(seen, ['1', '2'], 'in order');
  publish(3);
  t.same(seen, ['1', '2', '3'], 'direct once the pipeline is empty');
  t.same(table.stats.direct, 1);
  t.same(table.stats.pipeline, 2);
});

/**
 * aedes removes the same listener twice in ordinary situations (an UNSUBSCRIBE naming a filter
 * twice; two UNSUBSCRIBEs in one segment; an UNSUBSCRIBE followed by something that closes the
 * client before the first removal took effect). Another client holding the same filter must keep
 * getting every message. Found by review: a table that counted subscriptions on the side forgot
 * the other client and routed its topic direct.
 */
async function unsubscribeTwice(h: Harness, secret: string, how: 'topic-twice' | 'two-unsubscribes' | 'refused-publish', clean: boolean): Promise<net.Socket> {
  const [host, port] = h.mqttUrl.replace('mqtt://', '').split(':');
  const sock = net.connect(Number(port), host);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const seen: string[] = [];
  parser.on('packet', (p) => seen.push(p.cmd));
  sock.on('data', (d) => parser.parse(d));
  await new Promise((r) => sock.once('connect', r));
  const gen = (p: object) => mqttPacket.generate(p as never);
  sock.write(
    gen({
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 4,
      clean,
      clientId: 'screen-1:leave',
      keepalive: 0,
      username: 'screen-1',
      password: Buffer.from(secret),
    }),
  );
  await waitFor(() => seen.includes('connack'), 'connack');
  sock.write(gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: TOPIC, qos: 1 }] }));
  await waitFor(() => seen.includes('suback'), 'suback');
  const unsub = gen({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [TOPIC] });
  if (how === 'topic-twice') sock.write(gen({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: [TOPIC, TOPIC] }));
  else if (how === 'two-unsubscribes') sock.write(Buffer.concat([unsub, gen({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: [TOPIC] })]));
  // a publish outside the namespace makes the hub close the client while the removal is pending
  else sock.write(Buffer.concat([unsub, gen({ cmd: 'publish', topic: 'devices/other/x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })]));
  if (how === 'refused-publish') await new Promise((r) => sock.once('close', r));
  else await waitFor(() => seen.filter((c) => c === 'unsuback').length === (how === 'two-unsubscribes' ? 2 : 1), 'unsuback');
  return sock;
}

for (const [how, clean] of [
  ['topic-twice', true],
  ['two-unsubscribes', true],
  ['refused-publish', true],
  ['refused-publish', false],
  ['hub-unsubscribes-twice', true],
] as const) {
  t.test(`a listener removed twice does not hide another client's subscription (${how}, clean=${clean})`, async (t) => {
    const h = await startHub(t.testdir());
    t.teardown(() => h.stop());
    const broker = h.hub.broker!;
    const secret = await h.hub.store!.credentials.add('screen-1', 'guide-screen');
    const publisher = await connect(h, 'screen-1:pub', secret);
    t.teardown(() => publisher.end(true));
    const keeper = await connect(h, 'screen-1:keep', secret);
    t.teardown(() => keeper.end(true));
    const got: string[] = [];
    keeper.on('message', (_t, p) => got.push(p.toString()));
    await keeper.subscribeAsync(TOPIC, { qos: 1 });
    if (how === 'hub-unsubscribes-twice') {
      const off = broker.subscribe(TOPIC, () => {});
      off();
      off();
    } else {
      const sock = await unsubscribeTwice(h, secret, how, clean);
      t.teardown(() => sock.destroy());
    }
    await new Promise((r) => setTimeout(r, 50));
    // one at a time: the route is looked up after the first and would serve the rest
    for (let i = 1; i <= 20; i++) await publisher.publishAsync(TOPIC, String(i), { qos: 1 });
    await waitFor(() => got.length >= 20, 'keeper messages', 10_000).catch(() => {});
    t.same(got, range(1, 20), 'the client still subscribed gets every message');
    t.equal(broker.routes.stats.direct, 0, 'nothing took the direct route while a client listens');
  });
}

/**
 * Retained device messages and the hub's own publishes go through aedes' pipeline too; a later
 * device message on the same topic must wait for them. Shown with real aedes whose mqemitter is at
 * its concurrency limit (a subscriber elsewhere not draining), as happens with a stalled screen.
 */
for (const first of ['retained', 'hub'] as const) {
  t.test(`a ${first} message inside aedes is not overtaken by a later direct one on its topic`, async (t) => {
    const table = new RouteTable();
    const mq = mqemitter({ concurrency: 1000, matchEmptyLevels: true });
    const persistence = (aedesPersistence as unknown as () => SubscriptionStore)();
    table.watchEmitter(mq);
    table.watchPersistence(persistence);
    const aedes = await Aedes.createBroker({ mq, persistence: persistence as never, heartbeatInterval: 60_000 });
    t.teardown(() => new Promise<void>((r) => aedes.close(() => r())));
    table.install(aedes);
    const seen: string[] = [];
    const deliver: Deliver = (packet, done) => {
      seen.push(String(packet.payload));
      done();
    };
    table.markLocal(deliver);
    aedes.subscribe('devices/+/state', deliver as never, () => {});
    const held: (() => void)[] = [];
    aedes.subscribe('dashboard/feed', ((_p: PublishPacket, cb: () => void) => held.push(cb)) as never, () => {});
    const tick = () => new Promise((r) => setImmediate(r));
    await tick();
    const device = { id: 'shelf-1' } as Client;
    const pub = (aedes.publish as unknown as (p: object, c: Client | ((e?: Error) => void), d?: () => void) => void).bind(aedes);
    const msg = (payload: string, extra: object = {}) => ({
      cmd: 'publish',
      topic: 'devices/shelf-1/state',
      payload: Buffer.from(payload),
      qos: 1,
      retain: false,
      dup: false,
      ...extra,
    });
    pub(msg('0'), device, () => {});
    await tick(); // looked up: only the hub's handler listens, the route is direct
    for (let i = 0; i < 1000; i++) pub({ cmd: 'publish', topic: 'dashboard/feed', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => {});
    if (first === 'retained') pub(msg('first', { retain: true }), device, () => {});
    else pub(msg('first'), () => {}); // BrokerService.publish: no client
    await tick();
    pub(msg('second'), device, () => {});
    await tick();
    for (const release of held.splice(0)) release();
    for (let i = 0; i < 5; i++) await tick();
    t.same(seen, ['0', 'first', 'second'], 'in the order published');
  });
}
