/**
 * Zebra IoT Connector (FX7500 / FX9600 / ATR7000) JSON, as the reader publishes it to its data and
 * management-events endpoints. Sources: Zebra's IoT Connector documentation (interfaces, tag data
 * format, management events / heartbeat) and, for connection status, the mqttConnEVT birth/last-will
 * convention of Zebra's MQTT API. See README.md beside this file.
 *
 * Tag data: `{type: 'SIMPLE', timestamp: '2025-01-01T12:00:00.000+0000', data: {MAC, antenna, eventNum,
 * format: 'epc', idHex, peakRssi (dBm), reads}}`; the type names the operating mode. Management events:
 * `{type: 'heartbeat' | ..., timestamp, data}`. On TCP and WebSocket streams, and in batched messages,
 * objects arrive concatenated with no delimiter. Parsers never throw.
 */
import { StringDecoder } from 'node:string_decoder';
import { type ConnectionState, finiteOrUndefined, isAntennaPort, isRecord, normaliseHex, type ParseResult, parseJson, parseTime, rejected } from './payload.js';

export interface ZebraTagRead {
  kind: 'tag';
  /** Operating mode that produced it (SIMPLE, INVENTORY, PORTAL, CONVEYOR). */
  mode: string;
  time?: number;
  /** EPC as upper-case hex. */
  epc: string;
  antenna: number;
  /** Peak RSSI in dBm. */
  rssi?: number;
  mac?: string;
  eventNum?: number;
  /** How many times the tag was read in the interval this record sums up. */
  reads?: number;
}

export interface ZebraHeartbeat {
  kind: 'heartbeat';
  time?: number;
  data?: Record<string, unknown>;
}

/** Any other management event (errors, warnings, GPI, firmware update progress, ...). */
export interface ZebraManagementEvent {
  kind: 'management';
  type: string;
  time?: number;
  data?: unknown;
}

export type ZebraEvent = ZebraTagRead | ZebraHeartbeat | ZebraManagementEvent;

/** Operating modes whose data events are tag reads. */
const TAG_MODES = new Set(['SIMPLE', 'INVENTORY', 'PORTAL', 'CONVEYOR', 'CUSTOM']);

function parseTag(type: string, value: Record<string, unknown>, data: unknown): ParseResult<ZebraTagRead> {
  if (!isRecord(data)) return rejected('schema', `${type} event without a data object`);
  if (data.format !== undefined && data.format !== 'epc') return rejected('schema', `data.format ${JSON.stringify(data.format)} is not epc`);
  const epc = normaliseHex(data.idHex);
  if (!epc) return rejected('schema', 'data.idHex is missing or not whole-byte hex');
  if (!isAntennaPort(data.antenna)) return rejected('schema', 'data.antenna is missing or not a positive integer');
  const read: ZebraTagRead = { kind: 'tag', mode: type, epc, antenna: data.antenna };
  const time = parseTime(value.timestamp);
  if (time !== undefined) read.time = time;
  // Optional fields: a wrongly typed one is dropped rather than costing a valid read.
  const rssi = finiteOrUndefined(data.peakRssi);
  if (rssi !== undefined) read.rssi = rssi;
  if (typeof data.MAC === 'string') read.mac = data.MAC;
  const eventNum = finiteOrUndefined(data.eventNum);
  if (eventNum !== undefined) read.eventNum = eventNum;
  const reads = finiteOrUndefined(data.reads);
  if (reads !== undefined) read.reads = reads;
  return { ok: true, value: read };
}

/** Parses one decoded JSON value: a tag data event or a management event. */
export function parseZebraEvent(value: unknown): ParseResult<ZebraEvent> {
  if (!isRecord(value)) return rejected('schema', 'event is not a JSON object');
  const type = value.type;
  if (typeof type !== 'string' || type.length === 0) return rejected('schema', 'event has no type');
  const data = value.data;
  if (TAG_MODES.has(type.toUpperCase()) || (isRecord(data) && data.idHex !== undefined)) return parseTag(type.toUpperCase(), value, data);
  const time = parseTime(value.timestamp);
  if (type.toLowerCase() === 'heartbeat') {
    const beat: ZebraHeartbeat = { kind: 'heartbeat' };
    if (time !== undefined) beat.time = time;
    if (isRecord(data)) beat.data = data;
    return { ok: true, value: beat };
  }
  const event: ZebraManagementEvent = { kind: 'management', type };
  if (time !== undefined) event.time = time;
  if (data !== undefined) event.data = data;
  return { ok: true, value: event };
}

/**
 * Parses one MQTT payload: one event, several events concatenated with no delimiter, or a JSON array
 * of events. Each event gets its own result.
 */
export function parseZebraPayload(text: string): ParseResult<ZebraEvent>[] {
  const splitter = new ConcatenatedJsonSplitter(text.length + 1);
  const parts = splitter.push(text);
  const out: ParseResult<ZebraEvent>[] = [];
  for (const part of parts) {
    const json = parseJson(part);
    if (!json.ok) out.push(json);
    else if (Array.isArray(json.value)) for (const item of json.value) out.push(parseZebraEvent(item));
    else out.push(parseZebraEvent(json.value));
  }
  const tail = splitter.end();
  if (splitter.skipped > 0 || tail) out.push(rejected('malformed', tail ? 'truncated JSON at the end of the payload' : 'bytes outside any JSON value'));
  if (out.length === 0) out.push(rejected('malformed', 'empty payload'));
  return out;
}

const CONNECTED = new Set(['connected', 'online']);
const LOST = new Set(['disconnected', 'connection lost', 'offline', 'lost']);

function stateWord(value: unknown): ConnectionState | undefined {
  if (typeof value !== 'string') return undefined;
  const word = value.trim().toLowerCase();
  if (CONNECTED.has(word)) return 'connected';
  if (LOST.has(word)) return 'lost';
  return undefined;
}

/**
 * A connection status message: mqttConnEVT-style JSON whose state (in `state`, `status`,
 * `connectionState` or `event`, at the top or under `data`) is CONNECTED or DISCONNECTED, or the bare
 * word. DISCONNECTED is the last will, so it means the connection was lost. A graceful goodbye
 * (`{"type": "disconnect", ...}`, or a state of "GOODBYE") is told apart as 'disconnected'.
 */
export function parseZebraStatus(text: string): ParseResult<ConnectionState> {
  const trimmed = text.trim();
  const bare = stateWord(trimmed);
  if (bare) return { ok: true, value: bare };
  const json = parseJson(trimmed);
  if (!json.ok) return json;
  if (!isRecord(json.value)) return rejected('schema', 'status is not an object');
  const top = json.value;
  if (typeof top.type === 'string' && top.type.toLowerCase() === 'disconnect') return { ok: true, value: 'disconnected' };
  for (const scope of [top, top.data]) {
    if (!isRecord(scope)) continue;
    for (const key of ['state', 'status', 'connectionState', 'event']) {
      const raw = scope[key];
      if (typeof raw === 'string' && raw.trim().toLowerCase() === 'goodbye') return { ok: true, value: 'disconnected' };
      const state = stateWord(raw);
      if (state) return { ok: true, value: state };
    }
  }
  return rejected('schema', 'status message without a connection state');
}

/**
 * Splits a stream of JSON values written back to back with no delimiter (`{...}{...}[...]`), as Zebra
 * readers do on TCP/WebSocket streams. Tracks strings and escapes so braces inside strings do not count.
 * Non-whitespace outside any value is skipped and counted; a value longer than maxValueChars is dropped
 * whole and counted, then the splitter resynchronises at the end of that value.
 */
export class ConcatenatedJsonSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private buffer = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private discarding = false;
  /** Non-whitespace characters found outside any JSON value. */
  skipped = 0;
  /** Values dropped for being longer than maxValueChars. */
  oversized = 0;

  constructor(private readonly maxValueChars = 1 << 20) {}

  push(chunk: Buffer | string): string[] {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const values: string[] = [];
    // `buffer` holds the unfinished value (if any) from earlier chunks; scan only the new text.
    const offset = this.buffer.length;
    const all = this.discarding ? text : this.buffer + text;
    let start = this.depth > 0 && !this.discarding ? 0 : -1;
    for (let i = this.discarding ? 0 : offset; i < all.length; i++) {
      const c = all.charCodeAt(i);
      if (this.depth === 0) {
        if (c === 123 /* { */ || c === 91 /* [ */) {
          this.depth = 1;
          start = i;
        } else if (c !== 32 && c !== 10 && c !== 13 && c !== 9) this.skipped++;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 92 /* \ */) this.escaped = true;
        else if (c === 34 /* " */) this.inString = false;
        continue;
      }
      if (c === 34) this.inString = true;
      else if (c === 123 || c === 91) this.depth++;
      else if (c === 125 /* } */ || c === 93 /* ] */) {
        this.depth--;
        if (this.depth === 0) {
          if (this.discarding) this.discarding = false;
          else values.push(all.slice(start, i + 1));
          start = -1;
        }
      }
    }
    if (this.depth > 0 && !this.discarding) {
      this.buffer = all.slice(start);
      if (this.buffer.length > this.maxValueChars) {
        this.oversized++;
        this.discarding = true;
        this.buffer = '';
      }
    } else this.buffer = '';
    return values;
  }

  /** Ends the stream; returns true when it stopped inside an unfinished value (truncated). */
  end(): boolean {
    this.push(this.decoder.end());
    const truncated = this.depth > 0;
    this.buffer = '';
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.discarding = false;
    return truncated;
  }
}
