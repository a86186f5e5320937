/**
 * A simulated fixed RFID reader (Impinj R700 IoT device interface or Zebra FX IoT Connector) that
 * connects to an MQTT broker as the real reader does — its own credentials, a last will on its status
 * topic, a birth message after connecting — and publishes what a store's tags would make it say:
 *
 * - read storms over a population of SGTIN-96 tags: repeated EPCs, a home antenna per tag with cross
 *   reads at the others, RSSI jitter, any rate (several events per publish above `batchAbove` reads/s);
 * - a reader-side buffer: when the broker pushes back and the socket backlog passes `maxBacklogBytes`,
 *   reads are dropped and an Impinj reader reports them in an overflowEvent, as the real one does;
 * - faults on demand: overflow events, antennas lost and back, malformed payloads, a power cut
 *   (`kill()`: the socket dies without DISCONNECT, so the broker publishes the will), a clean stop;
 * - a management interface (command and response topics) that takes firmware into A/B slots, verifies
 *   it, reboots (disconnects, boots for `bootMs`, reconnects with a new birth message) and rolls back
 *   (management-agent.ts); an image that boots unhealthy loses every antenna;
 * - inventory that can be started and stopped: Zebra's control topics (control-agent.ts), Impinj's REST
 *   API on the simulator's HTTP(S) server (impinj-http.ts), which also serves the HTTP data stream
 *   (`GET /api/v1/data/stream`, the same events as on the event topic, one per line). An Impinj reader
 *   reports each start and stop with an inventoryStatusEvent, as the real one does.
 *
 * It shares no code with the hub's driver (drivers/rfid-reader): formats come from wire-formats.ts.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { handleControl } from './control-agent.js';
import { type ImpinjHttpOptions, ImpinjHttpServer } from './impinj-http.js';
import { type AgentOutcome, ManagementAgent } from './management-agent.js';
import { encodeSgtin96 } from './sgtin-encoder.js';
import {
  batch,
  type ImpinjFormat,
  impinjEvent,
  impinjInventoryStatus,
  impinjOverflow,
  impinjTagEvent,
  type MalformedKind,
  malformed,
  type SimRead,
  type Vendor,
  zebraConnection,
  zebraHeartbeat,
  zebraTagEvent,
} from './wire-formats.js';

export interface RfidReaderSimulatorOptions {
  /** Broker URL, e.g. mqtt://127.0.0.1:1883. Without it the reader does not use MQTT (HTTP only). */
  url?: string;
  /** MQTT credentials (required with `url`). */
  username?: string;
  password?: string;
  /** Default: the username (the hub's broker wants the device id as client id). */
  clientId?: string;
  vendor: Vendor;
  /** Impinj only: serve the REST API and the HTTP data stream (impinj-http.ts). */
  http?: ImpinjHttpOptions;
  /** Inventory runs from power-on (a preset started at boot, a Zebra autostart). Default true. */
  autostart?: boolean;
  /** MQTT topics (required with `url`). */
  topics?: {
    /** Impinj eventTopic / Zebra data topic. */
    events: string;
    /** Impinj willTopic / Zebra connection-status topic: will, birth and goodbye messages. */
    status?: string;
    /** Zebra management events (heartbeats). */
    management?: string;
    /** Management interface: commands the reader takes (it subscribes). Without it, no management interface. */
    commands?: string;
    /** Management interface: where the reader answers. */
    responses?: string;
    /** Zebra control interface: start/stop commands the reader takes (it subscribes). */
    controlCommands?: string;
    /** Zebra control interface: where the reader answers. */
    controlResponses?: string;
  };
  firmware?: {
    /** The version it runs from the factory. Default 8.0.1 (Impinj) or 3.21.13 (Zebra). */
    version?: string;
    /** Largest image a slot holds, bytes. Default 8 MiB. */
    capacity?: number;
    /** How long a reboot keeps it away, ms. Default 3000. */
    bootMs?: number;
    /** An image holding these bytes boots with every antenna lost. Default SIM-UNHEALTHY. */
    unhealthyMarker?: string;
  };
  /** Antenna ports that read tags. Default [1, 2, 3, 4]. */
  antennas?: number[];
  /** The tag population: how many SGTIN-96 tags to make up, or the EPCs (hex) to use. Default 200. */
  tags?: number | string[];
  /** GS1 company prefix of generated tags (6..12 digits). Default 0614141. */
  companyPrefix?: string;
  /** Raw reads per second while running. Default 500. */
  readsPerSecond?: number;
  /** Above this rate, several events share one MQTT message. Default 200 reads/s. */
  batchAbove?: number;
  /** Events per message when batching. Default 50. */
  batchMax?: number;
  /** Standard deviation of RSSI jitter, dB. Default 2. */
  rssiJitterDb?: number;
  /** Share of reads taken at an antenna other than the tag's home antenna. Default 0.2. */
  crossReadRatio?: number;
  /** QoS of tag data (Impinj eventQualityOfService). Default 0. */
  qos?: 0 | 1;
  /** Seed for the tag population, antenna choice and jitter. Default 1. */
  seed?: number;
  /** Scheduling granularity, ms. Default 20. */
  tickMs?: number;
  /** Socket backlog beyond which new reads are dropped (and reported as overflow on Impinj). Default 2 MiB. */
  maxBacklogBytes?: number;
  /** Zebra heartbeat period on the management topic, ms; 0 for none. Default 30 000. */
  heartbeatMs?: number;
  impinj?: Partial<ImpinjFormat> & {
    connectMessage?: string;
    willMessage?: string;
    /** Sent before a clean stop; Impinj's default is '' (none). */
    disconnectMessage?: string;
  };
  zebra?: { mac?: string; framing?: 'concatenated' | 'array' };
  /** MQTT keepalive, s. Default 10. */
  keepalive?: number;
}

export interface SimulatorStats {
  reads: number;
  messages: number;
  /** Reads the simulated reader dropped because its outbound buffer was full. */
  dropped: number;
  overflowEvents: number;
  malformed: number;
}

interface SimTag {
  epc: string;
  home: number;
  /** Mean RSSI per antenna index (same order as `antennas`). */
  base: number[];
}

/** mulberry32: small, fast, seedable. */
function prng(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export class RfidReaderSimulator {
  readonly vendor: Vendor;
  readonly antennas: readonly number[];
  readonly stats: SimulatorStats = { reads: 0, messages: 0, dropped: 0, overflowEvents: 0, malformed: 0 };
  private readonly o: RfidReaderSimulatorOptions;
  private readonly random: () => number;
  private readonly tags: SimTag[] = [];
  private readonly disconnectedAntennas = new Set<number>();
  private readonly impinj: ImpinjFormat & { connectMessage: string; willMessage: string; disconnectMessage: string };
  private readonly mac: string;
  private client: MqttClient | undefined;
  private ticker: ReturnType<typeof setInterval> | undefined;
  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private rate: number;
  private carry = 0;
  private lastTick = 0;
  private eventNum = 0;
  private droppedSinceReport = 0;
  private firstDropAt = 0;
  private pending = 0;
  private idleWaiters: (() => void)[] = [];
  private serial = 1;
  /** Errors the MQTT client reported (connection refused, socket errors); the simulator never throws them. */
  readonly errors: Error[] = [];
  private readonly agent: ManagementAgent;
  private bootTimer: ReturnType<typeof setTimeout> | undefined;
  private dropAcks = 0;
  private killAtChunk: number | undefined;
  /** Antennas this reader lost to an unhealthy image (not to a test's antennaDisconnected). */
  private readonly firmwareDown = new Set<number>();
  /** The REST API and data stream (Impinj with `http`). */
  private readonly http: ImpinjHttpServer | undefined;
  private powered = false;
  private running = true;
  private activePreset: string | undefined;

  constructor(options: RfidReaderSimulatorOptions) {
    this.o = options;
    this.vendor = options.vendor;
    this.antennas = options.antennas ?? [1, 2, 3, 4];
    if (this.antennas.length === 0) throw new Error('a reader needs at least one antenna');
    this.random = prng(options.seed ?? 1);
    this.rate = options.readsPerSecond ?? 500;
    if (options.url !== undefined && (options.username === undefined || options.password === undefined || !options.topics))
      throw new Error('an MQTT reader (url) needs username, password and topics');
    if (options.http && this.vendor !== 'impinj') throw new Error('only the Impinj simulator serves HTTP (the Zebra IoT Connector is driven over MQTT)');
    if (options.url === undefined && !options.http) throw new Error('a reader needs url (MQTT) or http');
    this.impinj = {
      hostname: options.impinj?.hostname ?? `impinj-${options.username ?? 'r700'}`,
      epc: options.impinj?.epc ?? 'base64',
      fields: options.impinj?.fields ?? 'all',
      connectMessage: options.impinj?.connectMessage ?? 'connected',
      willMessage: options.impinj?.willMessage ?? 'connection lost',
      disconnectMessage: options.impinj?.disconnectMessage ?? '',
    };
    this.mac = options.zebra?.mac ?? '84:24:8D:F0:F4:B5';
    this.agent = new ManagementAgent({
      version: options.firmware?.version ?? (this.vendor === 'impinj' ? '8.0.1' : '3.21.13'),
      capacity: options.firmware?.capacity ?? 8 * 1024 * 1024,
      unhealthyMarker: options.firmware?.unhealthyMarker ?? 'SIM-UNHEALTHY',
    });
    const tags = options.tags ?? 200;
    if (typeof tags === 'number') this.addTags(tags);
    else for (const epc of tags) this.addTag(epc.toUpperCase());
    if (options.http) {
      this.http = new ImpinjHttpServer(options.http, {
        start: (preset) => this.startInventory(preset),
        stop: () => this.stopInventory(),
        status: () => ({
          status: this.running ? 'running' : 'idle',
          time: new Date().toISOString(),
          serialNumber: this.impinj.hostname,
          ...(this.running && this.activePreset ? { activePreset: { id: this.activePreset, profile: 'inventory' } } : {}),
        }),
      });
    }
  }

  /** The REST API base of the HTTP server (Impinj with `http`), e.g. https://127.0.0.1:40123/api/v1. */
  get httpUrl(): string {
    if (!this.http) throw new Error('this simulator has no HTTP server (options.http)');
    return this.http.url;
  }

  /** Requests the HTTP server answered (method, path, status, time), for tests. */
  get httpRequests(): readonly { method: string; path: string; status: number; time: number }[] {
    return this.http?.requests ?? [];
  }

  /** Open HTTP data streams. */
  get openStreams(): number {
    return this.http?.openStreams ?? 0;
  }

  /** True while inventory runs (tags are read). */
  get inventoryRunning(): boolean {
    return this.running;
  }

  /**
   * What `POST /profiles/inventory/presets/{preset}/start` (Impinj) or the control `start` (Zebra) does:
   * reading begins; an Impinj reader says so with an inventoryStatusEvent. Already running: nothing changes.
   */
  async startInventory(preset?: string): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.activePreset = preset;
    this.carry = 0;
    this.lastTick = Date.now();
    if (this.vendor === 'impinj') await this.inventoryStatus('running');
  }

  /** What `POST /profiles/stop` or the control `stop` does: reading ends (idle). Already idle: a no-op. */
  async stopInventory(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.activePreset = undefined;
    if (this.vendor === 'impinj') await this.inventoryStatus('idle');
  }

  /** The network drops every open HTTP data stream (the server stays up): the hub must reconnect. */
  dropStreams(): void {
    this.http?.dropStreams();
  }

  /** EPCs currently in the readers' field. */
  get population(): string[] {
    return this.tags.map((t) => t.epc);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Someone receives events: the MQTT session is up, or an HTTP data stream is open. */
  private get listened(): boolean {
    return (this.client?.connected ?? false) || (this.http?.openStreams ?? 0) > 0;
  }

  /** What the reader's bootloader knows: running and standby images, boot count, a transfer in progress. */
  get firmware(): { version: string; standby: string | undefined; slot: 'A' | 'B'; healthy: boolean; bootCount: number; receiving: boolean; received: number } {
    const s = this.agent.slots;
    return {
      version: s.running.version,
      standby: s.standby?.version,
      slot: s.active === 0 ? 'A' : 'B',
      healthy: s.running.healthy,
      bootCount: s.bootCount,
      receiving: s.receiving,
      received: s.received,
    };
  }

  /** True between a commit (or rollback) and the reader's return. */
  get rebooting(): boolean {
    return this.bootTimer !== undefined;
  }

  /** The next firmware chunk is stored with a bit flipped: the image fails its SHA-256 at commit. */
  corruptNextChunk(): void {
    this.agent.corruptNextChunk = true;
  }

  /** The next `n` firmware chunks are taken but their acknowledgements are lost. */
  dropNextAcks(n: number): void {
    this.dropAcks += n;
  }

  /** A power cut (as kill()) right after the n-th firmware chunk from now is taken, before it is acknowledged. */
  killAfterChunks(n: number): void {
    this.killAtChunk = this.agent.slots.chunks + n;
  }

  /**
   * Powers on: boots (a committed image or a rollback takes effect, a transfer in progress is lost),
   * connects with the will set, subscribes to its command topic, publishes the birth message, reads.
   */
  async start(): Promise<void> {
    if (this.powered) return;
    this.powered = true;
    this.agent.slots.boot();
    this.running = this.o.autostart ?? true;
    this.activePreset = this.running ? 'default' : undefined;
    try {
      await this.http?.listen();
      if (this.o.url !== undefined) await this.connectMqtt(this.o.url);
    } catch (err) {
      this.powered = false;
      this.http?.kill();
      throw err;
    }
    await this.afterBoot();
    this.lastTick = Date.now();
    this.carry = 0;
    this.ticker = setInterval(() => this.tick(), this.o.tickMs ?? 20);
    const beat = this.o.heartbeatMs ?? 30_000;
    if (this.vendor === 'zebra' && this.o.topics?.management && beat > 0) this.heartbeat = setInterval(() => void this.sendHeartbeat(), beat);
  }

  private async connectMqtt(url: string): Promise<void> {
    const o = this.o;
    const topics = o.topics ?? { events: '' };
    const options: IClientOptions = {
      clientId: o.clientId ?? o.username,
      username: o.username,
      password: o.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 15_000,
      keepalive: o.keepalive ?? 10,
      clean: true,
    };
    const status = topics.status;
    if (status) options.will = { topic: status, payload: Buffer.from(this.statusPayload('lost')), qos: 1, retain: false };
    const client = await mqtt.connectAsync(url, options);
    client.on('error', (err) => this.errors.push(err));
    this.client = client;
    client.on('message', (topic, payload) => {
      if (topic === topics.commands) this.onCommand(payload);
      else if (topic === topics.controlCommands) this.onControl(payload);
    });
    if (topics.commands) await client.subscribeAsync(topics.commands, { qos: 1 });
    if (topics.controlCommands && this.vendor === 'zebra') await client.subscribeAsync(topics.controlCommands, { qos: 1 });
    if (status) await client.publishAsync(status, this.statusPayload('connected'), { qos: 1 });
  }

  /** A clean shutdown: the goodbye message (if configured), then MQTT DISCONNECT, so no will. */
  async stop(): Promise<void> {
    this.cancelBoot();
    await this.shutdown();
  }

  private async shutdown(): Promise<void> {
    this.stopTimers();
    this.powered = false;
    await this.http?.close();
    const client = this.client;
    if (!client) return;
    this.client = undefined;
    const status = this.o.topics?.status;
    if (client.connected && status && this.vendor === 'impinj' && this.impinj.disconnectMessage !== '') {
      await client.publishAsync(status, this.impinj.disconnectMessage, { qos: 1 }).catch((err: Error) => this.errors.push(err));
    }
    await client.endAsync().catch((err: Error) => this.errors.push(err));
  }

  /** A power cut or cable pull: the socket dies without DISCONNECT and the broker publishes the will. */
  kill(): void {
    this.cancelBoot();
    this.stopTimers();
    this.powered = false;
    this.http?.kill();
    const client = this.client;
    this.client = undefined;
    client?.end(true);
  }

  /** Sets the raw read rate (reads/s); 0 pauses reading. */
  setRate(readsPerSecond: number): void {
    this.carry = 0;
    this.rate = Math.max(0, readsPerSecond);
  }

  /** Adds `count` generated SGTIN-96 tags (or the given EPCs) to the field; returns their EPCs. */
  addTags(count: number): string[] {
    const added: string[] = [];
    const prefix = this.o.companyPrefix ?? '0614141';
    const refDigits = 13 - prefix.length;
    for (let i = 0; i < count; i++) {
      // a small catalogue: 40 products, indicator digit 0, many serials each
      const product = Math.floor(this.random() * 40);
      const itemReference = `0${String(100 + product).padStart(refDigits - 1, '0')}`;
      added.push(this.addTag(encodeSgtin96({ filter: 1, companyPrefix: prefix, itemReference, serial: this.serial++ })));
    }
    return added;
  }

  /** Takes tags out of the field (sold, carried out): they are no longer read. */
  removeTags(epcs: string[]): void {
    const gone = new Set(epcs.map((e) => e.toUpperCase()));
    for (let i = this.tags.length - 1; i >= 0; i--) if (gone.has((this.tags[i] as SimTag).epc)) this.tags.splice(i, 1);
  }

  /** Carries a tag to another antenna's field: it now reads strongest there. */
  moveTag(epc: string, antenna: number): void {
    const tag = this.tags.find((t) => t.epc === epc.toUpperCase());
    if (!tag) throw new Error(`no tag ${epc} in the field`);
    tag.home = antenna;
    tag.base = this.antennas.map((a) => (a === antenna ? -45 - this.random() * 8 : -64 - this.random() * 10));
  }

  /** Publishes the given reads at once (one message each), whatever the storm is doing. */
  async readNow(reads: { epc: string; antenna: number; rssi?: number }[]): Promise<void> {
    const now = Date.now();
    for (const r of reads) {
      const read: SimRead = { epc: r.epc.toUpperCase(), antenna: r.antenna, rssi: r.rssi ?? -50, time: now };
      this.stats.reads++;
      await this.sendEvent(JSON.stringify(this.tagEvent(read)), this.o.qos ?? 0);
    }
  }

  /** An Impinj overflowEvent: the reader purged events it could not deliver. */
  async overflow(eventsPurged: number, eventsRemaining = 0): Promise<void> {
    if (this.vendor !== 'impinj') throw new Error('Zebra readers send no overflow event (their outage queue drops the oldest silently)');
    const now = Date.now();
    this.stats.overflowEvents++;
    await this.sendEvent(JSON.stringify(impinjOverflow(this.impinj.hostname, now, eventsPurged, eventsRemaining, now - 5000)), 1);
  }

  /**
   * An Impinj inventoryStatusEvent, as the reader sends when a preset starts and when it stops. Only
   * the event: startInventory() and stopInventory() also change what the reader does.
   */
  async inventoryStatus(status: 'running' | 'idle'): Promise<void> {
    if (this.vendor !== 'impinj') throw new Error('Zebra readers report start/stop as command responses, not events');
    await this.sendEvent(JSON.stringify(impinjInventoryStatus(this.impinj.hostname, Date.now(), status)), 1);
  }

  async antennaDisconnected(port: number): Promise<void> {
    this.disconnectedAntennas.add(port);
    await this.antennaEvent(port, 'antennaDisconnected');
  }

  async antennaConnected(port: number): Promise<void> {
    this.disconnectedAntennas.delete(port);
    await this.antennaEvent(port, 'antennaConnected');
  }

  /** Publishes one broken payload to the event topic. */
  async sendMalformed(kind: MalformedKind): Promise<void> {
    this.stats.malformed++;
    await this.sendEvent(malformed(this.vendor, kind, Date.now()), 1);
  }

  async sendHeartbeat(): Promise<void> {
    const topic = this.o.topics?.management;
    if (!topic || this.vendor !== 'zebra') return;
    await this.publishAsync(topic, JSON.stringify(zebraHeartbeat(Date.now(), this.stats.reads, [...this.antennas], this.disconnectedAntennas)), 0);
  }

  /** Resolves once every message handed to the client so far has been sent (QoS 0) or acknowledged (QoS 1). */
  async idle(): Promise<void> {
    if (this.pending === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private addTag(epc: string): string {
    const home = this.antennas[Math.floor(this.random() * this.antennas.length)] as number;
    this.tags.push({ epc, home, base: this.antennas.map((a) => (a === home ? -45 - this.random() * 8 : -64 - this.random() * 10)) });
    return epc;
  }

  private statusPayload(state: 'connected' | 'lost'): string {
    if (this.vendor === 'impinj') return state === 'connected' ? this.impinj.connectMessage : this.impinj.willMessage;
    // Zebra's birth carries the firmware it booted (Impinj's connectMessage is fixed text)
    const version = state === 'connected' ? this.agent.slots.running.version : undefined;
    return JSON.stringify(zebraConnection(Date.now(), this.mac, state === 'connected' ? 'CONNECTED' : 'DISCONNECTED', version));
  }

  /** Zebra control interface: start and stop reading, answered on the control response topic. */
  private onControl(payload: Buffer): void {
    const outcome = handleControl(payload);
    if (outcome.running === true) void this.startInventory();
    else if (outcome.running === false) void this.stopInventory();
    const responses = this.o.topics?.controlResponses;
    if (outcome.response && responses) void this.publishAsync(responses, JSON.stringify(outcome.response), 1);
  }

  private onCommand(payload: Buffer): void {
    const outcome: AgentOutcome = this.agent.handle(payload);
    if (outcome.chunk && this.killAtChunk !== undefined && this.agent.slots.chunks >= this.killAtChunk) {
      this.killAtChunk = undefined;
      this.kill();
      return;
    }
    if (outcome.chunk && this.dropAcks > 0) {
      this.dropAcks--;
      return;
    }
    const responses = this.o.topics?.responses;
    if (!outcome.response || !responses) return;
    const sent = this.publishAsync(responses, JSON.stringify(outcome.response), 1);
    if (outcome.reboot) void sent.then(() => this.reboot());
  }

  /** Disconnects cleanly (as a reboot does), stays away for `bootMs`, then powers on again. */
  private async reboot(): Promise<void> {
    await this.shutdown();
    this.bootTimer = setTimeout(() => {
      this.bootTimer = undefined;
      this.start().catch((err: Error) => this.errors.push(err));
    }, this.o.firmware?.bootMs ?? 3000);
  }

  private cancelBoot(): void {
    if (this.bootTimer) clearTimeout(this.bootTimer);
    this.bootTimer = undefined;
  }

  /** An unhealthy image loses every antenna; a healthy one after it brings them back. */
  private async afterBoot(): Promise<void> {
    if (!this.agent.slots.running.healthy) {
      for (const port of this.antennas) {
        if (this.disconnectedAntennas.has(port)) continue;
        this.firmwareDown.add(port);
        await this.antennaDisconnected(port);
      }
      return;
    }
    for (const port of [...this.firmwareDown]) {
      this.firmwareDown.delete(port);
      await this.antennaConnected(port);
    }
  }

  private async antennaEvent(port: number, type: 'antennaConnected' | 'antennaDisconnected'): Promise<void> {
    if (this.vendor === 'zebra') {
      await this.sendHeartbeat();
      return;
    }
    await this.sendEvent(JSON.stringify(impinjEvent(this.impinj.hostname, Date.now(), type, { antennaPort: port })), 1);
  }

  private tagEvent(read: SimRead): Record<string, unknown> {
    return this.vendor === 'impinj' ? impinjTagEvent(read, this.impinj) : zebraTagEvent(read, this.mac, ++this.eventNum);
  }

  /** Gaussian-ish jitter (sum of three uniforms). */
  private jitter(): number {
    const sd = this.o.rssiJitterDb ?? 2;
    return (this.random() + this.random() + this.random() - 1.5) * 2 * sd;
  }

  private tick(): void {
    const client = this.client;
    if (!this.listened) return;
    const now = Date.now();
    if (!this.running) {
      this.lastTick = now;
      this.carry = 0;
      return;
    }
    // a stalled event loop does not turn into one giant burst: at most one second of reads per tick
    const elapsed = Math.min(1000, now - this.lastTick);
    this.lastTick = now;
    const due = this.carry + (this.rate * elapsed) / 1000;
    const n = Math.floor(due);
    this.carry = due - n;
    if (n === 0 || this.tags.length === 0) return;

    const mqttBacklog = client?.connected ? ((client.stream as unknown as { writableLength?: number }).writableLength ?? 0) : 0;
    const backlog = Math.max(mqttBacklog, this.http?.backlog ?? 0);
    if (backlog > (this.o.maxBacklogBytes ?? 2 * 1024 * 1024)) {
      if (this.droppedSinceReport === 0) this.firstDropAt = now;
      this.droppedSinceReport += n;
      this.stats.dropped += n;
      return;
    }
    if (this.droppedSinceReport > 0 && this.vendor === 'impinj') {
      this.stats.overflowEvents++;
      this.emitEvents([impinjOverflow(this.impinj.hostname, now, this.droppedSinceReport, 0, this.firstDropAt)], 1);
    }
    this.droppedSinceReport = 0;

    const cross = this.o.crossReadRatio ?? 0.2;
    const events: Record<string, unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const tag = this.tags[Math.floor(this.random() * this.tags.length)] as SimTag;
      let index = this.antennas.indexOf(tag.home);
      if (this.random() < cross) index = Math.floor(this.random() * this.antennas.length);
      const antenna = this.antennas[index] as number;
      if (this.disconnectedAntennas.has(antenna)) continue;
      events.push(this.tagEvent({ epc: tag.epc, antenna, rssi: (tag.base[index] as number) + this.jitter(), time: now }));
    }
    this.stats.reads += events.length;
    this.emitEvents(events, this.o.qos ?? 0);
  }

  /**
   * Events to every listener: on the event topic (one per message, or batched above `batchAbove`
   * reads/s) and on every open HTTP data stream (one per line).
   */
  private emitEvents(events: Record<string, unknown>[], qos: 0 | 1): void {
    if (events.length === 0) return;
    if (this.http) this.http.broadcast(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    const topic = this.o.topics?.events;
    if (!this.client || !topic) return;
    if (this.rate <= (this.o.batchAbove ?? 200)) {
      for (const e of events) this.publish(topic, JSON.stringify(e), qos);
      return;
    }
    const size = Math.max(1, this.o.batchMax ?? 50);
    const framing = this.o.zebra?.framing ?? 'concatenated';
    for (let i = 0; i < events.length; i += size) this.publish(topic, batch(this.vendor, events.slice(i, i + size), framing), qos);
  }

  /** One event (or a broken payload) at once, to every listener; resolves once MQTT has it. */
  private async sendEvent(payload: string | Buffer, qos: 0 | 1): Promise<void> {
    this.http?.broadcast(Buffer.concat([Buffer.from(payload), Buffer.from('\n')]));
    const topic = this.o.topics?.events;
    if (this.o.url !== undefined && topic) await this.publishAsync(topic, payload, qos);
  }

  private publish(topic: string, payload: string | Buffer, qos: 0 | 1): void {
    const client = this.client;
    if (!client) return;
    this.pending++;
    this.stats.messages++;
    client.publish(topic, payload, { qos }, (err) => {
      if (err) this.errors.push(err);
      if (--this.pending === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    });
  }

  private publishAsync(topic: string, payload: string | Buffer, qos: 0 | 1): Promise<void> {
    return new Promise((resolve) => {
      const client = this.client;
      if (!client) {
        this.errors.push(new Error('simulator is not connected'));
        resolve();
        return;
      }
      this.stats.messages++;
      this.pending++;
      client.publish(topic, payload, { qos }, (err) => {
        if (err) this.errors.push(err);
        if (--this.pending === 0) for (const r of this.idleWaiters.splice(0)) r();
        resolve();
      });
    });
  }

  private stopTimers(): void {
    // messages still in flight will never be acknowledged now; nobody should wait for them
    this.pending = 0;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
    if (this.ticker) clearInterval(this.ticker);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ticker = undefined;
    this.heartbeat = undefined;
  }
}
