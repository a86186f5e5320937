/**
 * The cloud link: one MQTT 5 connection from the hub to the cloud broker (docs/cloud-protocol.md).
 * Persistent session, QoS 1, a retained birth message with the epoch and a health summary, a will
 * that reports the hub offline when it vanishes, stream batches up, application acks, jobs and
 * desired state down. The store works without it: the link connects in the background and the
 * outbox holds everything until it is back.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { AckAnswer, SinkTransport } from './stream-pump.js';
import { isStreamName, type OutboxBatch, type StreamName } from './streams.js';
import { safeUrl } from '../observability/safe-url.js';

export interface CloudLinkHandlers {
  onAck(stream: StreamName, answer: AckAnswer): void;
  /** The consumer refused a batch (an ack with `error`): hold the stream with its reason. */
  onRefused(stream: StreamName, answer: AckAnswer, error: { code: string; message: string }): void;
  /** The session was lost (or this is a fresh one): everything unacknowledged must be resent. */
  onSession(present: boolean): void;
  onDisconnect(): void;
  onJob(document: unknown, raw: string): void;
  onDesired(document: unknown): void;
  /** A downlink message that could not be understood. */
  onRejected(topic: string, reason: string): void;
}

export interface CloudIdentity {
  hubId: string;
  storeId: string;
  epoch: number;
  version: string;
  startedAt: number;
}

export function defaultTopicPrefix(storeId: string, hubId: string): string {
  return `storehub/v1/${storeId}/${hubId}`;
}

export class CloudLink implements SinkTransport {
  readonly sink = 'cloud';
  readonly prefix: string;
  private client: MqttClient | undefined;
  private stopping = false;
  connects = 0;

  constructor(
    private readonly config: HubConfig['cloud'],
    private readonly identity: CloudIdentity,
    private readonly handlers: CloudLinkHandlers,
    private readonly health: () => unknown,
    private readonly log: Logger,
  ) {
    this.prefix = config.topicPrefix ?? defaultTopicPrefix(identity.storeId, identity.hubId);
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  start(): void {
    const c = this.config;
    if (!c.url) throw new Error('cloud.url is required when cloud.enabled is true');
    const options: IClientOptions = {
      protocolVersion: 5,
      clientId: `storehub-${this.identity.hubId}`,
      clean: false,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: 2000,
      connectTimeout: 15_000,
      properties: { sessionExpiryInterval: c.sessionExpirySeconds },
      will: { topic: `${this.prefix}/status`, payload: Buffer.from(JSON.stringify(this.statusBody(false, 'connection lost'))), qos: 1, retain: true },
      ...(c.username !== undefined ? { username: c.username } : {}),
      ...(c.password !== undefined ? { password: c.password } : {}),
      ...(c.tls.ca ? { ca: readFileSync(c.tls.ca) } : {}),
      ...(c.tls.cert ? { cert: readFileSync(c.tls.cert) } : {}),
      ...(c.tls.key ? { key: readFileSync(c.tls.key) } : {}),
    };
    const client = mqtt.connect(c.url, options);
    this.client = client;
    client.on('connect', (connack) => {
      this.connects++;
      const present = connack.sessionPresent === true;
      this.log.info({ url: safeUrl(c.url ?? ''), sessionPresent: present }, 'cloud link connected');
      void this.publishJson('status', this.statusBody(true), { qos: 1, retain: true });
      // subscriptions live in the session; re-subscribing is harmless and covers a lost session
      client.subscribe(
        [`${this.prefix}/acks`, `${this.prefix}/jobs`, `${this.prefix}/desired`].map((topic) => topic),
        { qos: 1 },
        (err) => {
          if (err && !this.stopping) this.log.warn({ err: err.message }, 'cloud subscribe failed');
        },
      );
      this.handlers.onSession(present);
    });
    client.on('close', () => {
      if (!this.stopping) this.handlers.onDisconnect();
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'cloud link error'));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  async send(batch: OutboxBatch): Promise<undefined> {
    const client = this.client;
    if (!client?.connected) throw new Error('cloud link not connected');
    await client.publishAsync(`${this.prefix}/streams/${batch.stream}`, JSON.stringify(batch), { qos: 1 });
    return undefined;
  }

  /** Publishes a JSON document under the prefix; resolves on PUBACK (QoS 1) or at once (QoS 0). */
  async publishJson(subtopic: string, body: unknown, options: { qos: 0 | 1; retain?: boolean } = { qos: 1 }): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      await client.publishAsync(`${this.prefix}/${subtopic}`, JSON.stringify(body), { qos: options.qos, retain: options.retain ?? false });
    } catch (err) {
      if (!this.stopping) this.log.debug({ err: (err as Error).message, subtopic }, 'cloud publish failed');
    }
  }

  /** Reports offline (retained) and closes the session cleanly; the broker keeps the session. */
  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.stopping = true;
    if (client.connected) {
      await Promise.race([this.publishJson('status', this.statusBody(false, 'stopped'), { qos: 1, retain: true }), new Promise((r) => setTimeout(r, 2000))]);
    }
    // a clean DISCONNECT suppresses the will: the offline status above says why instead
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    this.client = undefined;
  }

  private statusBody(online: boolean, reason?: string): Record<string, unknown> {
    const base = { online, hub: this.identity.hubId, store: this.identity.storeId, epoch: this.identity.epoch };
    if (!online) return { ...base, reason };
    return { ...base, version: this.identity.version, startedAt: this.identity.startedAt, health: this.health() };
  }

  private onMessage(topic: string, payload: Buffer): void {
    const sub = topic.slice(this.prefix.length + 1);
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch {
      this.handlers.onRejected(topic, 'not JSON');
      return;
    }
    if (sub === 'acks') {
      const a = doc as { stream?: unknown; epoch?: unknown; appliedThrough?: unknown };
      if (typeof a.stream !== 'string' || !isStreamName(a.stream) || !Number.isInteger(a.epoch) || !Number.isInteger(a.appliedThrough)) {
        this.handlers.onRejected(topic, 'an ack needs stream, epoch and appliedThrough');
        return;
      }
      const answer = { epoch: a.epoch as number, appliedThrough: a.appliedThrough as number };
      const error = (doc as { error?: { code?: unknown; message?: unknown } }).error;
      if (error !== undefined) {
        this.handlers.onRefused(a.stream, answer, { code: String(error?.code ?? 'refused'), message: String(error?.message ?? 'refused by the consumer') });
        return;
      }
      this.handlers.onAck(a.stream, answer);
    } else if (sub === 'jobs') {
      this.handlers.onJob(doc, payload.toString('utf8'));
    } else if (sub === 'desired') {
      this.handlers.onDesired(doc);
    }
  }
}
