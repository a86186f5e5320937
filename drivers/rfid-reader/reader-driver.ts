/**
 * The RFID reader driver: listens to one fixed reader's MQTT topics on the hub's broker (Impinj IoT
 * device interface or Zebra IoT Connector), turns tag reads into `rfid.read` events, reader conditions
 * (overflow, antenna lost, connection) into `device.condition` events, and keeps the device's health:
 * offline after the reader's will message, degraded while it floods, overflows or has lost an antenna.
 *
 * Bad input is counted through ctx.reject and dropped, one event at a time; nothing here throws into
 * the broker. Reads from antennas the config does not map to a zone are counted and dropped.
 *
 * Two transports: MQTT (the reader publishes to the hub's broker) for both vendors, or, for Impinj,
 * http-stream: the hub holds the reader's `GET /data/stream` open (http-event-stream.ts) and the
 * device is offline, with the transport's reason, while the stream cannot be had. Parsing, health,
 * flood and overflow handling are the same for both.
 *
 * Through the reader's management interface (MQTT: a command and a response topic) it asks the reader's
 * firmware version after each birth message, and runs firmware updates and rollbacks (firmware-update.ts).
 * `inventory.start` / `inventory.stop` go to Impinj's REST API or Zebra's control topics (inventory-control.ts).
 */
import type {
  CommandResult,
  DeviceCommand,
  DeviceHealth,
  Driver,
  DriverContext,
  HttpStreamClosed,
  HttpStreamTransport,
  MqttTransport,
  RejectReason,
  Unsubscribe,
} from '../../hub/sdk/index.js';
import { MAX_LINE_CHARS, openEventStream } from './http-event-stream.js';
import { type ImpinjEvent, parseImpinjPayload, parseImpinjStatus } from './impinj.js';
import { InventoryControl, type InventoryState } from './inventory-control.js';
import { type ResolvedOptions, resolveOptions } from './options.js';
import type { ConnectionState, ParseResult } from './payload.js';
import { ReaderMaintenance } from './reader-maintenance.js';
import { parseZebraPayload, parseZebraStatus, type ZebraEvent } from './zebra.js';

export class RfidReaderDriver implements Driver {
  private readonly options: ResolvedOptions | undefined;
  private readonly problems: string[];
  private subscriptions: Unsubscribe[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  private connection: 'unknown' | 'online' | 'offline' = 'unknown';
  private offlineReason = '';
  private windowStart = 0;
  private windowReads = 0;
  private flooding: string | undefined;
  private overflowUntil = 0;
  private overflowReason = '';
  private readonly lostAntennas = new Map<number, string>();
  private lastHealth = '';
  /** Management interface, firmware version and firmware operations (reader-maintenance.ts); MQTT only. */
  private maintenance: ReaderMaintenance | undefined;
  private control: InventoryControl | undefined;
  /** From Impinj's inventoryStatusEvent, or the last start/stop the reader accepted. */
  private inventory: InventoryState = 'unknown';

  /** Counters for the `status` command and tests. */
  readonly counters = { messages: 0, reads: 0, rejected: 0 };

  constructor(private readonly ctx: DriverContext<MqttTransport | HttpStreamTransport>) {
    // the options that apply depend on the transport the driver was actually given
    const { problems, options } = resolveOptions({ ...ctx.device, transportType: ctx.transport.type });
    this.problems = problems;
    this.options = options;
  }

  async start(signal: AbortSignal): Promise<void> {
    if (!this.options) throw new Error(`invalid rfid-reader options: ${this.problems.join('; ')}`);
    signal.throwIfAborted();
    if (this.subscriptions.length > 0) return;
    const o = this.options;
    const offlineReason = () => (this.connection === 'offline' ? this.offlineReason : undefined);
    this.windowStart = this.ctx.now();
    this.control = new InventoryControl(
      this.ctx,
      o,
      offlineReason,
      (state) => (this.inventory = state),
      (reason, detail) => this.reject(reason, detail),
    );
    const transport = this.ctx.transport;
    if (transport.type === 'http-stream') this.startHttp(transport);
    else this.startMqtt(transport, o, offlineReason);
    // Clears flooding and overflow when a reader goes quiet (no read would roll the window then).
    this.timer = setInterval(() => this.housekeeping(), 1000);
    this.timer.unref?.();
  }

  private startHttp(transport: HttpStreamTransport): void {
    this.subscriptions.push(
      openEventStream(transport, {
        open: () => this.streamOpen(),
        alive: () => this.ctx.seen(),
        line: (text) => this.guard('data stream', () => this.onEventsText(text)),
        oversized: (n) => {
          for (let i = 0; i < n; i++) this.reject('malformed', `data stream line longer than ${MAX_LINE_CHARS} characters`);
        },
        closed: (info) => this.streamClosed(info),
      }),
    );
    this.ctx.log.info(
      { vendor: 'impinj', transport: 'http-stream', antennas: Object.fromEntries((this.options as ResolvedOptions).zones) },
      'rfid reader driver streaming',
    );
  }

  private startMqtt(transport: MqttTransport, o: ResolvedOptions, offlineReason: () => string | undefined): void {
    const ctx = this.ctx as DriverContext<MqttTransport>;
    this.maintenance = new ReaderMaintenance(
      ctx,
      o,
      offlineReason,
      () => this.updateHealth(),
      (reason, detail) => this.reject(reason, detail),
    );
    // a wide events filter (`impinj/{id}/#`) also matches the command/response topics: those are not events
    const own = (topic: string) => [o.commands, o.responses, o.controlCommands, o.controlResponses].includes(topic);
    const on = (handle: (payload: Buffer) => void) => (topic: string, payload: Buffer) => {
      if (!own(topic)) this.guard(topic, () => handle(payload));
    };
    this.subscriptions.push(
      transport.subscribe(
        o.events as string,
        on((p) => this.onEvents(p)),
      ),
    );
    if (o.management)
      this.subscriptions.push(
        transport.subscribe(
          o.management,
          on((p) => this.onEvents(p)),
        ),
      );
    if (o.status)
      this.subscriptions.push(
        transport.subscribe(
          o.status,
          on((p) => this.onStatus(p)),
        ),
      );
    this.subscriptions.push(this.maintenance.subscribe((topic, work) => this.guard(topic, work)));
    const control = this.control?.subscribe((topic, work) => this.guard(topic, work));
    if (control) this.subscriptions.push(control);
    this.ctx.log.info({ vendor: o.vendor, events: o.events, status: o.status, antennas: Object.fromEntries(o.zones) }, 'rfid reader driver listening');
  }

  async stop(): Promise<void> {
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.maintenance?.stop();
    this.control?.stop();
  }

  async execute(command: DeviceCommand): Promise<CommandResult> {
    if (command.name === 'status') {
      return {
        ok: true,
        data: {
          ...this.counters,
          transport: this.options?.transport,
          connection: this.connection,
          inventory: this.inventory,
          flooding: this.flooding !== undefined,
          lostAntennas: [...this.lostAntennas.keys()],
          health: this.health(),
          firmware: this.maintenance?.status(),
        },
      };
    }
    const control = this.control?.execute(command);
    if (control !== undefined) {
      // Zebra sends no inventory status event: a start or stop it confirmed is the same news, so
      // a start/stop run counts as a cycle count just as an Impinj preset run does.
      if (this.options?.vendor !== 'zebra' || (command.name !== 'inventory.start' && command.name !== 'inventory.stop')) return control;
      const result = await control;
      if (result.ok) this.condition(this.ctx.now(), 'inventory_status', { status: command.name === 'inventory.start' ? 'running' : 'idle' });
      return result;
    }
    const maintenance = this.maintenance?.execute(command);
    if (maintenance !== undefined) return maintenance;
    if (/^firmware\./.test(command.name) && this.options?.transport === 'http-stream')
      return { ok: false, detail: `${command.name} uses the MQTT management interface; this reader is on the http-stream transport` };
    return {
      ok: false,
      detail: `rfid-reader does not support the command ${command.name} (status, inventory.start, inventory.stop, firmware.update, firmware.rollback)`,
    };
  }

  private guard(topic: string, work: () => void): void {
    try {
      work();
    } catch (err) {
      this.reject('other', `handler failed on ${topic}: ${(err as Error).message}`);
      this.ctx.log.error({ err, topic }, 'rfid reader message handling failed');
    }
  }

  private reject(reason: RejectReason, detail: string): void {
    this.counters.rejected++;
    this.ctx.reject(reason, detail);
  }

  private onEvents(payload: Buffer): void {
    this.onEventsText(payload.toString('utf8'));
  }

  /**
   * One MQTT message, or one line of the HTTP data stream (the last line of a response that ended
   * without a newline included: complete, it is an event; cut short, it is malformed like any other).
   */
  private onEventsText(text: string): void {
    const o = this.options as ResolvedOptions;
    this.counters.messages++;
    this.ctx.seen();
    if (o.vendor === 'impinj') {
      for (const result of parseImpinjPayload(text)) this.onImpinj(result);
    } else {
      for (const result of parseZebraPayload(text)) this.onZebra(result);
    }
    this.heard();
  }

  private onImpinj(result: ParseResult<ImpinjEvent>): void {
    if (!result.ok) {
      this.reject(result.reason, result.detail);
      return;
    }
    const e = result.value;
    const time = e.time ?? this.ctx.now();
    switch (e.kind) {
      case 'tagInventory':
        this.read(e.lastSeen ?? time, e.epc, e.antenna, e.rssi);
        break;
      case 'antennaDisconnected':
        this.antennaLost(time, e.antenna);
        break;
      case 'antennaConnected':
        this.antennaBack(time, e.antenna);
        break;
      case 'overflow':
        this.overflow(time, {
          eventsPurged: e.eventsPurged,
          eventsRemaining: e.eventsRemaining,
          firstEventTime: e.firstEventTime,
          lastEventTime: e.lastEventTime,
        });
        break;
      case 'inventoryStatus':
        if (e.status === 'running' || e.status === 'idle') this.inventory = e.status;
        this.condition(time, 'inventory_status', { status: e.status });
        break;
      case 'antennaActivation':
      case 'unhandled':
        break;
    }
  }

  private onZebra(result: ParseResult<ZebraEvent>): void {
    if (!result.ok) {
      this.reject(result.reason, result.detail);
      return;
    }
    const e = result.value;
    const time = e.time ?? this.ctx.now();
    if (e.kind === 'tag') this.read(time, e.epc, e.antenna, e.rssi);
    else if (e.kind === 'management') {
      // errors and warnings are what store IT needs to see; GPI and firmware progress stay in the debug log
      if (/error|warning/i.test(e.type)) this.condition(time, `reader_${e.type.toLowerCase()}`, { data: e.data });
      else this.ctx.log.debug({ type: e.type }, 'zebra management event');
    }
  }

  private read(time: number, epc: string, antenna: number, rssi: number | undefined): void {
    const o = this.options as ResolvedOptions;
    if (!o.zones.has(antenna)) {
      this.reject('unknown_antenna', `antenna ${antenna} is not mapped to a zone`);
      return;
    }
    this.counters.reads++;
    this.countForFlood();
    if (rssi === undefined) this.ctx.emit({ type: 'rfid.read', deviceId: this.ctx.device.id, time, epc, antenna });
    else this.ctx.emit({ type: 'rfid.read', deviceId: this.ctx.device.id, time, epc, antenna, rssi });
  }

  private countForFlood(): void {
    this.windowReads++;
    const limit = (this.options as ResolvedOptions).maxReadsPerSecond;
    if (this.flooding === undefined && this.windowReads > limit) {
      this.flooding = `flooding: more than ${limit} reads/s`;
      this.ctx.log.warn({ limit }, 'rfid reader is flooding; reads are still processed');
      this.updateHealth();
    }
    const now = this.ctx.now();
    if (now - this.windowStart >= 1000) this.rollWindow(now);
  }

  /** Closes the one-second counting window; a calm window clears flooding. */
  private rollWindow(now: number): void {
    const elapsed = now - this.windowStart;
    const rate = elapsed > 0 ? (this.windowReads * 1000) / elapsed : 0;
    this.windowStart = now;
    this.windowReads = 0;
    if (this.flooding !== undefined && rate <= (this.options as ResolvedOptions).maxReadsPerSecond) {
      this.flooding = undefined;
      this.updateHealth();
    }
  }

  private housekeeping(): void {
    const now = this.ctx.now();
    if (now - this.windowStart >= 1000) this.rollWindow(now);
    if (this.overflowUntil !== 0 && now >= this.overflowUntil) {
      this.overflowUntil = 0;
      this.updateHealth();
    }
  }

  private antennaLost(time: number, antenna: number): void {
    const zone = this.options?.zones.get(antenna);
    this.lostAntennas.set(antenna, zone ? `antenna ${antenna} (${zone}) disconnected` : `antenna ${antenna} disconnected`);
    this.condition(time, 'antenna_disconnected', { antenna, zone });
    this.updateHealth();
  }

  private antennaBack(time: number, antenna: number): void {
    if (!this.lostAntennas.delete(antenna)) return;
    this.condition(time, 'antenna_connected', { antenna, zone: this.options?.zones.get(antenna) });
    this.updateHealth();
  }

  private overflow(time: number, detail: Record<string, number | undefined>): void {
    const purged = detail.eventsPurged;
    // The reader threw events away before we saw them: count them as lost input, visible in metrics.
    this.reject('overflow', purged === undefined ? 'reader buffer overflow' : `reader purged ${purged} events`);
    this.condition(time, 'reader_overflow', detail);
    this.overflowUntil = this.ctx.now() + (this.options as ResolvedOptions).overflowHoldMs;
    this.overflowReason = purged === undefined ? 'reader buffer overflowed' : `reader buffer overflowed: ${purged} events purged`;
    this.updateHealth();
  }

  private onStatus(payload: Buffer): void {
    const o = this.options as ResolvedOptions;
    this.counters.messages++;
    const text = payload.toString('utf8');
    const result: ParseResult<ConnectionState> = o.vendor === 'impinj' ? parseImpinjStatus(text, o.statusMessages) : parseZebraStatus(text);
    if (!result.ok) {
      this.reject(result.reason, `status topic: ${result.detail}`);
      return;
    }
    const now = this.ctx.now();
    if (result.value === 'connected') {
      this.ctx.seen();
      this.connection = 'online';
      this.maintenance?.birth(text);
    } else {
      this.connection = 'offline';
      this.offlineReason = result.value === 'lost' ? 'connection lost (reader will message)' : 'reader disconnected';
      // whatever waits for an answer will not get one from this session
      this.maintenance?.offline(this.offlineReason);
      this.control?.offline(this.offlineReason);
    }
    this.condition(now, 'reader_connection', { state: result.value });
    this.updateHealth();
  }

  /** The HTTP data stream is open: the reader is there. */
  private streamOpen(): void {
    const was = this.connection;
    this.connection = 'online';
    if (was !== 'online') {
      this.ctx.log.info({ was }, 'reader data stream open');
      this.condition(this.ctx.now(), 'reader_connection', { state: 'connected' });
    }
    this.updateHealth();
  }

  /** The HTTP data stream ended or cannot be had: offline with the transport's reason until it reopens. */
  private streamClosed(info: HttpStreamClosed): void {
    const was = this.connection;
    // the same failure again (a retry) keeps the reason it had: health changes only when the cause does
    const changed = was !== 'offline' || !this.offlineReason.endsWith(`: ${info.reason}`);
    if (was === 'online')
      this.condition(this.ctx.now(), 'reader_connection', { state: 'lost', reason: info.reason, ...(info.status ? { status: info.status } : {}) });
    if (changed) this.offlineReason = `${was === 'online' ? 'event stream lost' : 'event stream unavailable'}: ${info.reason}`;
    this.connection = 'offline';
    const log = { reason: info.reason, status: info.status, retryInMs: info.retryInMs };
    if (changed) this.ctx.log.warn(log, 'reader data stream closed; reconnecting');
    else this.ctx.log.debug(log, 'reader data stream still unavailable');
    this.updateHealth();
  }

  /** Anything the reader sends on its event topics shows its session is up. */
  private heard(): void {
    if (this.connection !== 'online') {
      this.connection = 'online';
      this.updateHealth();
    }
  }

  private condition(time: number, condition: string, detail: Record<string, unknown>): void {
    this.ctx.emit({ type: 'device.condition', deviceId: this.ctx.device.id, time, condition, detail });
  }

  private health(): DeviceHealth {
    if (this.connection === 'offline') return { availability: 'offline', reason: this.offlineReason };
    const reasons: string[] = [];
    if (this.maintenance?.operation) reasons.push(`firmware ${this.maintenance.operation} in progress`);
    if (this.flooding) reasons.push(this.flooding);
    if (this.overflowUntil !== 0) reasons.push(this.overflowReason);
    reasons.push(...this.lostAntennas.values());
    if (reasons.length > 0) return { availability: 'degraded', reason: reasons.join('; ') };
    return { availability: 'online' };
  }

  private updateHealth(): void {
    if (this.connection === 'unknown') return;
    const health = this.health();
    const key = `${health.availability}|${health.reason ?? ''}`;
    if (key === this.lastHealth) return;
    this.lastHealth = key;
    this.ctx.setHealth(health);
  }
}
