/**
 * Impinj IoT device interface (R700 firmware 7.x/8.x) event JSON, as the reader sends it over MQTT to
 * its `eventTopic` and over HTTP on `GET /api/v1/data/stream` (one event per line).
 *
 * Source: the reader configuration REST API's models (ReaderEvent, TagInventoryEvent, OverflowEvent,
 * AntennaConnectedEvent, AntennaDisconnectedEvent, AntennaActivationEvent, InventoryStatusEvent,
 * MqttConfiguration), version 1.7. See README.md beside this file.
 *
 * Envelope: `{timestamp, hostname, eventType, <one of> tagInventoryEvent | antennaConnectedEvent |
 * antennaDisconnectedEvent | inventoryStatusEvent | antennaActivationEvent | overflowEvent}`, where
 * eventType is the property name less "Event". Which tagInventoryEvent fields appear is configured on
 * the reader (tagReporting), so everything beyond the EPC (epc base64 and/or epcHex) and antennaPort
 * is optional here. Parsers never throw.
 */
import { StringDecoder } from 'node:string_decoder';
import { type ConnectionState, finiteOrUndefined, isAntennaPort, isRecord, normaliseHex, type ParseResult, parseJson, parseTime, rejected } from './payload.js';

interface ImpinjBase {
  /** The envelope's timestamp (UTC, when the reader queued the event), in ms. */
  time?: number;
  hostname?: string;
}

export interface ImpinjTagRead extends ImpinjBase {
  kind: 'tagInventory';
  /** EPC as upper-case hex. */
  epc: string;
  antenna: number;
  /** Peak RSSI in dBm (the reader sends centi-dBm). */
  rssi?: number;
  /** `lastSeenTime`, when reported, in ms. */
  lastSeen?: number;
  antennaName?: string;
  tid?: string;
  frequencyKhz?: number;
  transmitPowerDbm?: number;
  phaseAngle?: number;
}

export interface ImpinjAntennaEvent extends ImpinjBase {
  kind: 'antennaConnected' | 'antennaDisconnected' | 'antennaActivation';
  antenna: number;
}

export interface ImpinjInventoryStatus extends ImpinjBase {
  kind: 'inventoryStatus';
  status?: string;
}

export interface ImpinjOverflow extends ImpinjBase {
  kind: 'overflow';
  eventsPurged?: number;
  eventsRemaining?: number;
  firstEventTime?: number;
  lastEventTime?: number;
}

/** A well-formed event of a type this driver does not act on (diagnostics, newer firmware). */
export interface ImpinjUnhandled extends ImpinjBase {
  kind: 'unhandled';
  eventType: string;
}

export type ImpinjEvent = ImpinjTagRead | ImpinjAntennaEvent | ImpinjInventoryStatus | ImpinjOverflow | ImpinjUnhandled;

const KNOWN = ['tagInventory', 'antennaConnected', 'antennaDisconnected', 'inventoryStatus', 'antennaActivation', 'overflow'] as const;
type KnownType = (typeof KNOWN)[number];
const isKnown = (t: string): t is KnownType => (KNOWN as readonly string[]).includes(t);

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function base64ToHex(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length > 0 ? bytes.toString('hex').toUpperCase() : undefined;
}

/** Finds the event type: eventType when given, else the single `<type>Event` property present. */
function eventTypeOf(envelope: Record<string, unknown>): ParseResult<string> {
  const declared = envelope.eventType;
  if (declared !== undefined) {
    if (typeof declared !== 'string' || declared.length === 0) return rejected('schema', 'eventType is not a string');
    return { ok: true, value: declared };
  }
  const present = KNOWN.filter((t) => envelope[`${t}Event`] !== undefined);
  if (present.length === 1) return { ok: true, value: present[0] as string };
  return rejected('schema', present.length === 0 ? 'no eventType and no known event property' : 'several event properties and no eventType');
}

function parseTag(body: Record<string, unknown>, base: ImpinjBase): ParseResult<ImpinjTagRead> {
  let epc: string | undefined;
  if (body.epcHex !== undefined) {
    epc = normaliseHex(body.epcHex);
    if (!epc) return rejected('schema', 'epcHex is not whole-byte hex');
  } else if (body.epc !== undefined) {
    epc = base64ToHex(body.epc);
    if (!epc) return rejected('schema', 'epc is not base64');
  } else return rejected('schema', 'tagInventoryEvent has neither epc nor epcHex');
  if (!isAntennaPort(body.antennaPort)) return rejected('schema', 'tagInventoryEvent.antennaPort is missing or not a positive integer');

  const read: ImpinjTagRead = { kind: 'tagInventory', ...base, epc, antenna: body.antennaPort };
  // Optional fields: a wrongly typed one is dropped rather than costing the read (the EPC and port are valid).
  const cdbm = finiteOrUndefined(body.peakRssiCdbm);
  if (cdbm !== undefined) read.rssi = cdbm / 100;
  const lastSeen = parseTime(body.lastSeenTime);
  if (lastSeen !== undefined) read.lastSeen = lastSeen;
  if (typeof body.antennaName === 'string') read.antennaName = body.antennaName;
  const tid = normaliseHex(body.tidHex) ?? base64ToHex(body.tid);
  if (tid) read.tid = tid;
  const frequency = finiteOrUndefined(body.frequency);
  if (frequency !== undefined) read.frequencyKhz = frequency;
  const power = finiteOrUndefined(body.transmitPowerCdbm);
  if (power !== undefined) read.transmitPowerDbm = power / 100;
  const phase = finiteOrUndefined(body.phaseAngle);
  if (phase !== undefined) read.phaseAngle = phase;
  return { ok: true, value: read };
}

/** Parses one decoded JSON value (an event envelope). */
export function parseImpinjEvent(value: unknown): ParseResult<ImpinjEvent> {
  if (!isRecord(value)) return rejected('schema', 'event is not a JSON object');
  const type = eventTypeOf(value);
  if (!type.ok) return type;
  const base: ImpinjBase = {};
  const time = parseTime(value.timestamp);
  if (time !== undefined) base.time = time;
  if (typeof value.hostname === 'string') base.hostname = value.hostname;

  const eventType = type.value;
  if (!isKnown(eventType)) return { ok: true, value: { kind: 'unhandled', eventType, ...base } };
  const body = value[`${eventType}Event`];
  if (!isRecord(body)) return rejected('schema', `eventType ${eventType} without an object ${eventType}Event`);

  switch (eventType) {
    case 'tagInventory':
      return parseTag(body, base);
    case 'antennaConnected':
    case 'antennaDisconnected':
    case 'antennaActivation':
      if (!isAntennaPort(body.antennaPort)) return rejected('schema', `${eventType}Event.antennaPort is not a positive integer`);
      return { ok: true, value: { kind: eventType, ...base, antenna: body.antennaPort } };
    case 'inventoryStatus':
      return { ok: true, value: { kind: 'inventoryStatus', ...base, ...(typeof body.status === 'string' ? { status: body.status } : {}) } };
    case 'overflow': {
      const overflow: ImpinjOverflow = { kind: 'overflow', ...base };
      const purged = finiteOrUndefined(body.eventsPurged);
      if (purged !== undefined) overflow.eventsPurged = purged;
      const remaining = finiteOrUndefined(body.eventsRemaining);
      if (remaining !== undefined) overflow.eventsRemaining = remaining;
      const first = parseTime(body.firstEventTimestamp);
      if (first !== undefined) overflow.firstEventTime = first;
      const last = parseTime(body.lastEventTimestamp);
      if (last !== undefined) overflow.lastEventTime = last;
      return { ok: true, value: overflow };
    }
  }
}

/**
 * Parses one MQTT payload. The reader publishes one event per message; several events per message,
 * newline-delimited (the HTTP stream's framing) or as a JSON array, are accepted too. Each event gets
 * its own result, so one bad event does not cost its neighbours.
 */
export function parseImpinjPayload(text: string): ParseResult<ImpinjEvent>[] {
  if (!text.includes('\n')) return parseImpinjText(text);
  const out: ParseResult<ImpinjEvent>[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.length > 0) out.push(...parseImpinjText(trimmed));
  }
  return out;
}

function parseImpinjText(text: string): ParseResult<ImpinjEvent>[] {
  const json = parseJson(text);
  if (!json.ok) return [json];
  if (Array.isArray(json.value)) return json.value.map(parseImpinjEvent);
  return [parseImpinjEvent(json.value)];
}

/**
 * The reader's MQTT status messages on `willTopic` (MqttConfiguration): `connectMessage` (default
 * "connected") after every (re)connect, `willMessage` (default "connection lost") published by the broker
 * when the reader drops off ungracefully, `disconnectMessage` (default empty: none sent) on a graceful
 * disconnect. All three are configurable on the reader, so the driver takes them as options.
 */
export interface ImpinjStatusMessages {
  connected: string;
  lost: string;
  disconnected: string;
}

export const IMPINJ_DEFAULT_STATUS: ImpinjStatusMessages = { connected: 'connected', lost: 'connection lost', disconnected: 'disconnected' };

export function parseImpinjStatus(text: string, messages: ImpinjStatusMessages = IMPINJ_DEFAULT_STATUS): ParseResult<ConnectionState> {
  const message = text.trim();
  if (message === messages.connected) return { ok: true, value: 'connected' };
  if (message === messages.lost) return { ok: true, value: 'lost' };
  if (message !== '' && message === messages.disconnected) return { ok: true, value: 'disconnected' };
  return rejected('schema', `unknown status message ${JSON.stringify(message.slice(0, 64))}`);
}

/**
 * Splits the HTTP data stream (`GET /api/v1/data/stream`, newline-delimited JSON) into lines. Chunks may
 * cut lines and UTF-8 characters anywhere; blank lines (keep-alives) are skipped; a line longer than
 * maxLineChars is dropped whole and counted, so one runaway line cannot grow the buffer without bound.
 */
export class NdjsonSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private discarding = false;
  /** Lines dropped for being longer than maxLineChars. */
  oversized = 0;

  constructor(private readonly maxLineChars = 1 << 20) {}

  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const lines: string[] = [];
    let from = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', from)) {
      const piece = text.slice(from, nl);
      from = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        this.partial = '';
        continue;
      }
      const line = (this.partial + piece).trim();
      this.partial = '';
      if (line.length > this.maxLineChars) this.oversized++;
      else if (line.length > 0) lines.push(line);
    }
    if (!this.discarding) {
      this.partial += text.slice(from);
      if (this.partial.length > this.maxLineChars) {
        this.oversized++;
        this.discarding = true;
        this.partial = '';
      }
    }
    return lines;
  }

  /** The last line when the stream ends without a newline. */
  end(): string[] {
    const rest = (this.partial + this.decoder.end()).trim();
    this.partial = '';
    const dropped = this.discarding;
    this.discarding = false;
    return rest.length > 0 && !dropped ? [rest] : [];
  }
}
