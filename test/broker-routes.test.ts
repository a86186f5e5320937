/**
 * Direct routes (hub/broker/route-table.ts): device messages that only the hub's own handlers
 * listen to skip aedes' publish pipeline. These tests hold it to aedes' delivery rules with real
 * MQTT clients: a subscriber gets everything published after its SUBACK, a persistent session gets
 * what was published while it was away, retained messages are kept, and in-process handlers see
 * each topic's messages in order while subscriptions change around them.
 */
import { EventEmitter } from 'node:events';
import type { Aedes, Client, PublishPacket } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import mqemitter from 'mqemitter';
import mqtt, { type MqttClient } from 'mqtt';
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
