/**
 * The cloud-link side of docs/cloud-protocol.md: consumes the hubs' `streams/<stream>` batches from an MQTT 5
 * broker, applies them through the same LedgerStore as the HTTP server, and answers each with an ack
 * `{ stream, epoch, appliedThrough }` on the hub's `acks` topic. It also keeps the latest retained `status`
 * (birth or will) of every hub it sees.
 *
 * The batch is committed before its PUBACK goes back to the broker (handleMessage runs before mqtt.js sends
 * it), so a consumer that dies mid-batch gets the message again from its persistent session; the ack to the
 * hub is sent only after the commit, so it never names a record that is not durable.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { type ApplyResult, type LedgerStore, MalformedBatchError } from './ledger-store.js';

export interface MqttConsumerOptions {
  /** mqtt://, mqtts:// or ws(s):// broker URL. */
  url: string;
  store: LedgerStore;
  /** Fixed, so the broker keeps one persistent session for the consumer. Default 'storehub-reference-receiver'. */
  clientId?: string;
  /** Topic root; the hubs' default prefix is `<root>/<store>/<hub>`. Default 'storehub/v1'. */
  root?: string;
  /** Subscriptions for batches. Default [`<root>/+/+/streams/+`]. The hub's prefix is whatever precedes `/streams/<stream>`. */
  streamFilters?: string[];
  /** Subscriptions for status messages. Default [`<root>/+/+/status`]. */
  statusFilters?: string[];
  /** Seconds the broker keeps the session (and queues batches) while the consumer is away. Default 7 days. */
  sessionExpiryInterval?: number;
  /** How long start() waits for the first connection. Default 10 s. */
  startTimeoutMs?: number;
  /** Extra mqtt.js options: TLS ca/cert/key, username/password, reconnectPeriod, ... */
  mqtt?: IClientOptions;
  logger?: Logger;
}

export interface HubStatus {
  /** The topic prefix the hub publishes under. */
  prefix: string;
  /** The parsed payload: birth `{ online: true, ... }` or will / clean stop `{ online: false, ... }`. */
  payload: Record<string, unknown>;
  retained: boolean;
  receivedAt: number;
}

export interface BatchEvent {
  topic: string;
  prefix: string;
  stream: string;
  result: ApplyResult;
}

export interface RejectionEvent {
  topic: string;
  reason: string;
}

export interface ConsumerStats {
  batches: number;
  acksSent: number;
  rejected: number;
  lastRejection?: RejectionEvent;
}

const STREAM_TOPIC = /^(.+)\/streams\/([^/]+)$/;
const STATUS_TOPIC = /^(.+)\/status$/;

export class MqttConsumer extends EventEmitter<{ batch: [BatchEvent]; rejected: [RejectionEvent]; status: [string, HubStatus | undefined]; error: [Error] }> {
  private client: MqttClient | undefined;
  private readonly latest = new Map<string, HubStatus>();
  private readonly counters: ConsumerStats = { batches: 0, acksSent: 0, rejected: 0 };
  private readonly streamFilters: string[];
  private readonly statusFilters: string[];

  constructor(private readonly options: MqttConsumerOptions) {
    super();
    const root = options.root ?? 'storehub/v1';
    this.streamFilters = options.streamFilters ?? [`${root}/+/+/streams/+`];
    this.statusFilters = options.statusFilters ?? [`${root}/+/+/status`];
  }

  /** Connects (clean start false) and subscribes; resolves once both are done. */
  async start(): Promise<void> {
    const o = this.options;
    const client = mqtt.connect(o.url, {
      protocolVersion: 5,
      clean: false,
      clientId: o.clientId ?? 'storehub-reference-receiver',
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...o.mqtt,
      properties: { sessionExpiryInterval: o.sessionExpiryInterval ?? 7 * 24 * 3600, ...o.mqtt?.properties },
    });
    this.client = client;
    client.handleMessage = (packet, done) => this.handle(packet, done);
    client.on('error', (err) => {
      o.logger?.warn({ err }, 'mqtt consumer: connection error');
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    client.on('connect', (connack) => o.logger?.info({ url: o.url, sessionPresent: connack.sessionPresent }, 'mqtt consumer connected'));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`mqtt consumer: no connection to ${o.url} within ${o.startTimeoutMs ?? 10_000} ms`)),
        o.startTimeoutMs ?? 10_000,
      );
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    }).catch(async (err: unknown) => {
      await client.endAsync(true);
      throw err;
    });
    // Subscribing again on a present session is harmless, and covers a session that expired meanwhile.
    await client.subscribeAsync([...this.streamFilters, ...this.statusFilters], { qos: 1 });
  }

  /** The latest status per hub (keyed by the payload's `hub`, else the topic prefix). */
  statuses(): Map<string, HubStatus> {
    return new Map(this.latest);
  }

  status(hub: string): HubStatus | undefined {
    return this.latest.get(hub);
  }

  stats(): ConsumerStats {
    return { ...this.counters };
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Disconnects; the broker keeps the session, so batches published meanwhile wait for the next start(). */
  async stop(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    if (c) await c.endAsync();
  }

  private handle(packet: IPublishPacket, done: (err?: Error) => void): void {
    const topic = packet.topic;
    try {
      const s = STREAM_TOPIC.exec(topic);
      if (s) this.onBatch(topic, s[1]!, s[2]!, packet.payload);
      else {
        const st = STATUS_TOPIC.exec(topic);
        if (st) this.onStatus(st[1]!, packet);
      }
    } catch (err) {
      // Not a bad message but a failure to commit (disk full, database closed): no PUBACK, drop the
      // connection, and the broker redelivers the batch from the session when the consumer reconnects.
      this.options.logger?.error({ err, topic }, 'mqtt consumer: could not apply a batch; disconnecting to get it redelivered');
      if (this.listenerCount('error') > 0) this.emit('error', err as Error);
      this.client?.stream.destroy();
      return;
    }
    done();
  }

  private onBatch(topic: string, prefix: string, stream: string, payload: Buffer | string): void {
    let parsed: unknown;
    let result: ApplyResult;
    try {
      parsed = JSON.parse(payload.toString());
      result = this.options.store.apply(parsed, { stream });
    } catch (err) {
      if (!(err instanceof SyntaxError || err instanceof MalformedBatchError)) throw err;
      // A malformed batch is consumed, counted and logged, and answered with an error ack naming where this
      // receiver stands, so the hub holds the stream with a reason instead of resending it blindly.
      const event = { topic, reason: err.message };
      this.counters.rejected++;
      this.counters.lastRejection = event;
      this.options.logger?.warn(event, 'mqtt consumer: batch rejected');
      this.emit('rejected', event);
      const hub = (parsed as { hub?: unknown } | undefined)?.hub;
      const epoch = (parsed as { epoch?: unknown } | undefined)?.epoch;
      const cursor =
        typeof hub === 'string'
          ? this.options.store.cursor(hub, stream, Number.isInteger(epoch) ? (epoch as number) : undefined)
          : { epoch: 0, appliedThrough: 0 };
      const code = err instanceof MalformedBatchError ? err.code : 'malformed';
      const nack = { stream, epoch: cursor.epoch, appliedThrough: cursor.appliedThrough, error: { code, message: err.message } };
      this.client?.publish(`${prefix}/acks`, JSON.stringify(nack), { qos: 1 });
      return;
    }
    this.counters.batches++;
    const ack = { stream, epoch: result.epoch, appliedThrough: result.appliedThrough };
    this.client?.publish(`${prefix}/acks`, JSON.stringify(ack), { qos: 1 }, (err) => {
      if (err) this.options.logger?.warn({ err, topic }, 'mqtt consumer: ack not sent');
      else this.counters.acksSent++;
    });
    this.emit('batch', { topic, prefix, stream, result });
  }

  private onStatus(prefix: string, packet: IPublishPacket): void {
    const text = packet.payload.toString();
    if (text.length === 0) {
      // An empty retained message clears the status (a hub removed from the fleet).
      for (const [k, v] of this.latest) if (v.prefix === prefix) this.latest.delete(k);
      this.emit('status', prefix, undefined);
      return;
    }
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      this.options.logger?.warn({ topic: packet.topic }, 'mqtt consumer: status is not JSON');
      return;
    }
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return;
    const p = payload as Record<string, unknown>;
    const key = typeof p.hub === 'string' ? p.hub : prefix;
    const status: HubStatus = { prefix, payload: p, retained: packet.retain, receivedAt: Date.now() };
    this.latest.set(key, status);
    this.emit('status', key, status);
  }
}
