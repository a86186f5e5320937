/**
 * The embedded MQTT broker (aedes) with the hub's policy injected: device authentication, per-device
 * topic ACLs, admission control, per-client rate limits, a packet size cap, and the durable-ack rule
 * (QoS >= 1 messages are committed to the journal before aedes writes the PUBACK).
 */
import type { Server } from 'node:net';
import '../observability/quiet-debug.js';
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes';
import aedesPersistence from 'aedes-persistence';
import mqemitter from 'mqemitter';
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';
import { DeviceAuthenticator } from './device-auth.js';
import { corkUntilNextTick, waitForDrain } from './client-writes.js';
import { closeListeners, type ListenerAddresses, openListeners } from './listeners.js';
import { type ClosingSocket, DeviceRateLimits } from './device-rate-limits.js';
import { TokenBucket } from './token-bucket.js';
import { type Deliver, RouteTable, type SubscriptionStore } from './route-table.js';
import { usePublishFastPath } from './publish-parser.js';
import { compilePublishAcl, maySubscribe } from './topic-acl.js';

/** What the hub knows about a connected client; aedes' Client stays untouched. */
interface Session {
  deviceId: string;
  /** The stored hash the device authenticated against: a changed or removed credential ends the session. */
  secretHash: string;
  topics: readonly string[];
  mayPublish: (topic: string) => boolean;
  /** The device's message budget, shared by all its connections (client ids with a `:suffix`). */
  bucket: TokenBucket;
}

// A CommonJS module whose type declarations claim an ES default export: the import is the factory.
const memoryPersistence = aedesPersistence as unknown as () => SubscriptionStore;

/** CONNACK return codes, MQTT 3.1.1 section 3.2.2.3. */
const CONNACK = { serverUnavailable: 3, badCredentials: 4, notAuthorized: 5 } as const;

function connackError(code: number, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

/** Delay beyond which a flooding client is disconnected instead of slowed further. */
const MAX_THROTTLE_MS = 5_000;
/** A journal commit the disk has not confirmed for this long makes the broker unhealthy. */
const JOURNAL_STALL_MS = 5_000;
/** How often live sessions are checked against their credentials (revocation takes effect within this). */
const REVOCATION_CHECK_MS = 5_000;

/** What an in-process subscriber is given: the message as the device published it. */
export type InProcessHandler = (packet: PublishPacket) => void;

export interface BrokerDeps {
  config: HubConfig['broker'];
  store: Store;
  metrics: HubMetrics;
  log: Logger;
}

export class BrokerService {
  readonly name = 'broker';
  private aedes: Aedes | undefined;
  private servers: Server[] = [];
  private readonly sessions = new WeakMap<Client, Session>();
  private readonly refusals = new WeakMap<Client, number>();
  private readonly admission: TokenBucket;
  /** Message rate buckets by device, shared by its connections (device-rate-limits.ts). */
  readonly rateLimits: DeviceRateLimits;
  private revocationTimer: NodeJS.Timeout | undefined;
  private intakeClosed = false;
  /** Device messages acknowledged and not yet handed to the in-process subscribers. */
  private undelivered = 0;
  private readonly auth: DeviceAuthenticator;
  addresses: ListenerAddresses = {};
  /** Which device topics only the hub's own handlers listen to (route-table.ts). */
  readonly routes = new RouteTable();
  /** Counter children bound once: labelling per message would hash the labels every time. */
  private readonly messagesIn;

  constructor(private readonly deps: BrokerDeps) {
    const limits = deps.config.limits;
    this.admission = new TokenBucket(limits.connectsPerSecond, limits.connectBurst);
    this.rateLimits = new DeviceRateLimits(limits.messagesPerSecond, limits.messageBurst);
    this.auth = new DeviceAuthenticator(deps.store.credentials, limits.maxPendingAuth);
    this.messagesIn = [0, 1, 2].map((qos) => deps.metrics.brokerMessagesIn.labels(String(qos)));
  }

  get clientCount(): number {
    return this.aedes?.connectedClients ?? 0;
  }

  async start(): Promise<void> {
    const { config, metrics, log } = this.deps;
    const limits = config.limits;
    // aedes' own defaults, built here so the route table can watch every subscription change
    usePublishFastPath(); // before aedes creates any client's parser
    const mq = mqemitter({ concurrency: 1000, matchEmptyLevels: true });
    const persistence = memoryPersistence();
    this.routes.watchEmitter(mq);
    this.routes.watchPersistence(persistence);
    const aedes = await Aedes.createBroker({
      id: 'storehub',
      mq,
      persistence,
      concurrency: 1000,
      connectTimeout: limits.connectTimeoutMs,
      drainTimeout: limits.drainTimeoutMs,
      heartbeatInterval: 60_000,
      maxClientsIdLength: 128,
      preConnect: (client, _packet, done) => this.preConnect(client, done),
      authenticate: (client, username, password, done) =>
        void this.authenticate(client, username, password, done).catch((err: Error) => {
          // a database or scrypt failure is the hub's problem: tell the device to come back later
          log.error({ err, clientId: client.id }, 'authentication failed unexpectedly');
          done(connackError(CONNACK.serverUnavailable, 'server unavailable'), false);
        }),
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.authorizeSubscribe(client, sub, done),
      authorizeForward: (_client, packet) => {
        metrics.brokerMessagesOut.inc();
        return packet;
      },
    });
    this.routes.install(aedes);
    aedes.on('client', () => metrics.brokerClients.set(aedes.connectedClients));
    // aedes emits 'publish' once a message has been handed to every subscriber (after its PUBACK)
    aedes.on('publish', (packet, client) => {
      if (client && packet.qos > 0 && this.undelivered > 0) this.undelivered--;
    });
    aedes.on('clientDisconnect', () => metrics.brokerClients.set(aedes.connectedClients));
    aedes.on('clientError', (client, err) => {
      metrics.brokerClientErrors.inc();
      log.debug({ clientId: client?.id, err: err.message }, 'mqtt client error');
    });
    aedes.on('connectionError', (_client, err) => {
      metrics.brokerClientErrors.inc();
      log.debug({ err: err.message }, 'mqtt connection error');
    });
    this.aedes = aedes;
    let opened: Awaited<ReturnType<typeof openListeners>>;
    try {
      opened = await openListeners(aedes, config, {
        onOversize: (reason) => {
          metrics.brokerOversize.inc();
          log.warn({ reason }, 'mqtt packet over the size limit; connection closed');
        },
      });
    } catch (err) {
      this.aedes = undefined;
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw err;
    }
    this.servers = opened.servers;
    this.addresses = opened.addresses;
    this.revocationTimer = setInterval(() => this.closeRevokedSessions(), REVOCATION_CHECK_MS);
    this.revocationTimer.unref();
    log.info({ ...this.addresses }, 'broker listening');
  }

  /** For /healthz: taking device messages, every listener up, the journal's disk answering. */
  health(): { ok: boolean; detail: string } {
    if (!this.aedes) return { ok: false, detail: 'broker not running' };
    if (this.intakeClosed) return { ok: false, detail: 'shutting down: device messages are not taken' };
    const down = this.servers.filter((server) => !server.listening).length;
    if (down > 0) return { ok: false, detail: `${down} of ${this.servers.length} listeners down` };
    const waitMs = this.deps.store.journal.oldestWaitMs;
    if (waitMs > JOURNAL_STALL_MS) {
      return { ok: false, detail: `the disk has not confirmed a journal commit for ${Math.round(waitMs / 1000)} s: devices wait for their PUBACK` };
    }
    return { ok: true, detail: `${this.clientCount} clients` };
  }

  /** Subscribes a hub service in process: no socket, no ACL, no loopback client. */
  subscribe(filter: string, handler: InProcessHandler): () => void {
    const aedes = this.aedes;
    if (!aedes) throw new Error('broker not started');
    const deliver: Deliver = (packet, cb) => {
      try {
        handler(packet);
      } catch (err) {
        this.deps.log.error({ err, topic: packet.topic }, 'in-process subscriber failed');
      }
      cb();
    };
    this.routes.markLocal(deliver);
    aedes.subscribe(filter, deliver, () => {});
    return () => aedes.unsubscribe(filter, deliver, () => {});
  }

  publish(topic: string, payload: Buffer | string, qos: 0 | 1 = 0, retain = false): Promise<void> {
    const aedes = this.aedes;
    if (!aedes) return Promise.reject(new Error('broker not started'));
    return new Promise((resolve, reject) => {
      const packet = { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false } as PublishPacket;
      aedes.publish(packet, (err?: Error) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * Stops taking device traffic: closes the listeners, takes no new messages, commits and
   * acknowledges every message already taken, lets the acknowledgements reach the sockets, then
   * closes every client. A message is thus either finished (stored and acknowledged) or never taken. In-process
   * subscribers keep working (the hub stops this before its drivers), and so does publish().
   */
  async closeIntake(): Promise<void> {
    const aedes = this.aedes;
    if (!aedes || this.intakeClosed) return;
    this.intakeClosed = true;
    clearInterval(this.revocationTimer);
    const listenersClosed = closeListeners(this.servers);
    this.deps.store.journal.flush();
    await this.deps.store.journal.settled();
    const clients = liveClients(aedes);
    await waitForDrain(clients, 1_000);
    // Closing a client destroys its socket, and aedes hands a message to subscribers only after its
    // PUBACK write has completed: wait for those hand-overs, or an acknowledged message's content
    // would never reach a driver.
    await until(() => this.undelivered === 0, 1_000);
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => c.close(() => resolve()))));
    this.deps.store.journal.flush();
    await this.deps.store.journal.settled();
    await listenersClosed;
    this.deps.metrics.brokerClients.set(0);
  }

  /** Closes the intake (if the hub has not already) and then the broker itself. */
  async stop(): Promise<void> {
    await this.closeIntake();
    const aedes = this.aedes;
    if (!aedes) return;
    this.aedes = undefined;
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    this.deps.store.journal.flush();
    await this.deps.store.journal.settled();
  }

  /** Ends the sessions of devices removed (or given a new secret) since they connected. */
  closeRevokedSessions(): number {
    const aedes = this.aedes;
    if (!aedes) return 0;
    let closed = 0;
    for (const client of liveClients(aedes)) {
      const session = this.sessions.get(client);
      if (!session) continue;
      let current: string | undefined;
      try {
        current = this.deps.store.credentials.get(session.deviceId)?.secretHash;
      } catch {
        continue; // the store is busy or closing: check again next time
      }
      if (current === session.secretHash) continue;
      this.sessions.delete(client);
      this.deps.log.warn({ deviceId: session.deviceId, clientId: client.id }, 'device credentials revoked: session closed');
      this.deps.metrics.brokerConnections.inc({ outcome: 'revoked' });
      client.close();
      closed++;
    }
    return closed;
  }

  private preConnect(client: Client, done: (err: Error | null, ok: boolean) => void): void {
    const aedes = this.aedes;
    if (aedes && aedes.connectedClients >= this.deps.config.limits.maxClients) {
      this.refusals.set(client, CONNACK.serverUnavailable);
      this.deps.metrics.brokerConnections.inc({ outcome: 'refused_capacity' });
    } else if (!this.admission.tryTake()) {
      this.refusals.set(client, CONNACK.serverUnavailable);
      this.deps.metrics.brokerConnections.inc({ outcome: 'refused_admission' });
    }
    // Refusals are answered in authenticate() so the device gets a CONNACK it can act on.
    done(null, true);
  }

  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean) => void,
  ): Promise<void> {
    const metrics = this.deps.metrics;
    if (this.refusals.has(client)) {
      done(connackError(CONNACK.serverUnavailable, 'server busy, retry later'), false);
      return;
    }
    const deviceId = username ?? '';
    // The client id is what aedes keys sessions by; tying it to the device stops one device from
    // taking over another's session. Ids may carry a ':suffix' for devices with several connections.
    if (deviceId === '' || (client.id !== deviceId && !client.id.startsWith(`${deviceId}:`))) {
      metrics.brokerConnections.inc({ outcome: 'refused_identity' });
      done(connackError(CONNACK.notAuthorized, 'client id must be the device id'), false);
      return;
    }
    const outcome = await this.auth.check(deviceId, password?.toString('utf8') ?? '');
    if (!outcome.ok) {
      metrics.brokerConnections.inc({ outcome: outcome.reason });
      // 'busy' is back-pressure during a storm, counted in metrics; a bad secret is worth a warning
      const level = outcome.reason === 'busy' ? 'debug' : 'warn';
      this.deps.log[level]({ deviceId, reason: outcome.reason, address: addressOf(client) }, 'mqtt connection refused');
      const code = outcome.reason === 'busy' ? CONNACK.serverUnavailable : CONNACK.badCredentials;
      done(connackError(code, outcome.reason), false);
      return;
    }
    this.sessions.set(client, {
      deviceId,
      secretHash: outcome.credential.secretHash,
      topics: outcome.credential.topics,
      mayPublish: compilePublishAcl(outcome.credential.topics),
      bucket: this.rateLimits.acquire(deviceId, client.conn as ClosingSocket | undefined),
    });
    metrics.brokerConnections.inc({ outcome: 'accepted' });
    // The first device to connect starts the journal's thread, before its first message needs it.
    this.deps.store.journal.open();
    done(null, true);
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const metrics = this.deps.metrics;
    // Shutting down: a message that arrives now is neither stored nor acknowledged (the device keeps
    // it and sends it again to the next hub), and its connection stays open until every message
    // taken before has its PUBACK. Refusing it would close the connection and lose those PUBACKs.
    if (this.intakeClosed) return;
    const session = client ? this.sessions.get(client) : undefined;
    if (!session || !session.mayPublish(packet.topic)) {
      metrics.brokerAclDenied.inc({ action: 'publish' });
      this.deps.log.warn({ clientId: client?.id, topic: packet.topic }, 'publish outside the device namespace refused');
      done(new Error(`publish to ${packet.topic} not allowed`));
      return;
    }
    const wait = session.bucket.take();
    if (wait > MAX_THROTTLE_MS) {
      // the connection closes; the device keeps what was not acknowledged and may come back slower
      metrics.brokerConnections.inc({ outcome: 'rate_limited' });
      this.deps.log.warn({ deviceId: session.deviceId, clientId: client?.id }, 'message rate over its limit by more than 5 s: connection closed');
      done(new Error('message rate limit exceeded'));
      return;
    }
    if (wait > 0) {
      // Delaying the callback stops aedes reading this client's socket: back-pressure, not loss.
      metrics.brokerThrottled.inc();
      setTimeout(() => this.accept(client, session, packet, done), wait);
    } else this.accept(client, session, packet, done);
  }

  /** Counts a message the device may send and, for QoS >= 1, journals it before aedes may PUBACK. */
  private accept(client: Client | null, session: Session, packet: PublishPacket, done: (err?: Error | null) => void): void {
    if (this.intakeClosed) return; // throttled past the start of shutdown: as in authorizePublish
    this.messagesIn[packet.qos]?.inc();
    if (packet.qos === 0) {
      done(null);
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    this.deps.store.journal.append({ deviceId: session.deviceId, topic: packet.topic, payload, qos: packet.qos, receivedAt: Date.now() }, (err) => {
      if (err) this.deps.metrics.journalRejected.inc({ reason: 'code' in err ? String(err.code) : 'error' });
      corkUntilNextTick(client?.conn); // this client's PUBACKs from the group leave in one write
      if (!err) this.undelivered++;
      done(err ?? null);
    });
  }

  private authorizeSubscribe(client: Client | null, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    const session = client ? this.sessions.get(client) : undefined;
    if (!session || !maySubscribe(session.topics, sub.topic)) {
      this.deps.metrics.brokerAclDenied.inc({ action: 'subscribe' });
      this.deps.log.warn({ clientId: client?.id, filter: sub.topic }, 'subscribe outside the device namespace refused');
      // [MQTT-3.9.3] a null subscription makes aedes answer SUBACK 0x80 (failure) for this filter
      done(null, null);
      return;
    }
    done(null, sub);
  }
}

/** aedes keeps its connected clients by id; its types do not declare the map. */
function liveClients(aedes: Aedes): Client[] {
  return Object.values((aedes as unknown as { clients: Record<string, Client> }).clients);
}

function addressOf(client: Client): string | undefined {
  const conn = client.conn as { remoteAddress?: string } | undefined;
  return conn?.remoteAddress;
}

async function until(done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
}
