/**
 * The rfid-reader device options: what the config says, checked (one line per problem) and resolved
 * (topics with the device id, the antenna-to-zone map, defaults filled in). Which options apply
 * depends on the transport the config chose: MQTT topics for `mqtt`, none for `http-stream` (an
 * Impinj reader's REST API, where events come from `GET /data/stream`).
 */
import { topicMatches } from '../../hub/broker/topic-acl.js';
import type { DriverDevice } from '../../hub/sdk/index.js';
import { IMPINJ_DEFAULT_STATUS, type ImpinjStatusMessages } from './impinj.js';
import { isRecord } from './payload.js';

export type ReaderVendor = 'impinj' | 'zebra';
export type ReaderTransport = 'mqtt' | 'http-stream';

/** The device's `options` in the config, as written there. `{id}` in topics is replaced by the device id. */
export interface RfidReaderOptions {
  vendor: ReaderVendor;
  /** MQTT readers only (transport type mqtt). */
  topics?: {
    /** Impinj: the reader's eventTopic. Zebra: the data endpoint's topic. */
    events: string;
    /** Impinj: willTopic (connect/will/disconnect messages). Zebra: the connection-status topic. */
    status?: string;
    /** Zebra only: the management-events topic (heartbeats, errors, warnings). */
    management?: string;
    /** Management interface, commands from the hub (firmware, get_version). Default `<vendor>/{id}/mgmt/cmd`. */
    commands?: string;
    /** Management interface, the reader's responses. Default `<vendor>/{id}/mgmt/res`. */
    responses?: string;
    /** Zebra only: the control interface's command topic (start/stop). Default `zebra/{id}/ctrl/cmd`. */
    controlCommands?: string;
    /** Zebra only: the control interface's response topic. Default `zebra/{id}/ctrl/res`. */
    controlResponses?: string;
  };
  /** Impinj over http-stream only: the preset `inventory.start` runs when its args name none. */
  inventoryPreset?: string;
  /** Firmware transfer over the management interface; see README.md. */
  firmware?: Partial<ReaderFirmwareOptions>;
  /** Antenna port (as a string key, JSON style) to zone name. Reads from other ports are rejected. */
  antennas: Record<string, string>;
  /** Raw reads per second above which the reader counts as flooding (health degraded). Default 5000. */
  maxReadsPerSecond?: number;
  /** How long one overflow keeps the health degraded, in ms. Default 60000. */
  overflowHoldMs?: number;
  /** Impinj status message texts as configured on the reader (connectMessage, willMessage, disconnectMessage). */
  statusMessages?: Partial<ImpinjStatusMessages>;
}

export interface ReaderFirmwareOptions {
  /** Image bytes per chunk message (base64 in JSON: about 4/3 of this on the wire). */
  chunkBytes: number;
  /** How long the reader may take to answer one management command. */
  ackTimeoutMs: number;
  /** Extra attempts for a command that went unanswered (a chunk is sent again at the same offset). */
  retries: number;
  /** How long the reader may take to reboot into the new image and answer again. */
  rebootTimeoutMs: number;
}

/** Fixed readers take minutes to flash and reboot (Linux inside); 16 KiB keeps a message far below broker limits. */
export const FIRMWARE_DEFAULTS: ReaderFirmwareOptions = { chunkBytes: 16 * 1024, ackTimeoutMs: 10_000, retries: 3, rebootTimeoutMs: 300_000 };

export const DEFAULT_MAX_READS_PER_SECOND = 5000;

/** An Impinj preset id as it goes into `/profiles/inventory/presets/{presetId}/start`. */
export const PRESET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const DEFAULT_OVERFLOW_HOLD_MS = 60_000;

export interface ResolvedOptions {
  vendor: ReaderVendor;
  transport: ReaderTransport;
  /** The MQTT events filter; undefined over http-stream. */
  events: string | undefined;
  status: string | undefined;
  management: string | undefined;
  /** The management pair (MQTT). Over http-stream there is none: these are never used there. */
  commands: string;
  responses: string;
  /** Zebra's control pair (start/stop); undefined for Impinj. */
  controlCommands: string | undefined;
  controlResponses: string | undefined;
  inventoryPreset: string | undefined;
  firmware: ReaderFirmwareOptions;
  zones: Map<number, string>;
  maxReadsPerSecond: number;
  overflowHoldMs: number;
  statusMessages: ImpinjStatusMessages;
}

/** MQTT 3.1.1 section 4.7: '#' only as the last level, '+' and '#' only as whole levels. */
function filterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'is empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "uses '#' other than as the whole last level";
    if (level.includes('+') && level !== '+') return "uses '+' other than as a whole level";
  }
  return undefined;
}

interface ResolvedTopics {
  events: string | undefined;
  status: string | undefined;
  management: string | undefined;
  commands: string;
  responses: string;
  controlCommands: string | undefined;
  controlResponses: string | undefined;
}

/** The MQTT topics of a reader, `{id}` replaced and defaults filled in; problems are pushed. */
function resolveTopics(device: DriverDevice, vendor: unknown, problems: string[]): ResolvedTopics {
  const topics = isRecord(device.options.topics) ? device.options.topics : undefined;
  if (!topics) problems.push('options.topics must be an object with at least an events topic');
  const topic = (key: string, required: boolean): string | undefined => {
    const raw = topics?.[key];
    if (raw === undefined) {
      if (required && topics) problems.push(`options.topics.${key} is required`);
      return undefined;
    }
    if (typeof raw !== 'string') {
      problems.push(`options.topics.${key} must be a string`);
      return undefined;
    }
    const value = raw.replaceAll('{id}', device.id);
    const problem = filterProblem(value);
    if (problem) problems.push(`options.topics.${key} ${problem}`);
    return value;
  };
  const events = topic('events', true);
  const status = topic('status', false);
  const management = topic('management', false);
  if (management !== undefined && vendor === 'impinj')
    problems.push('options.topics.management is for Zebra readers only (Impinj sends everything to its event topic)');
  for (const [key, value] of [
    ['status', status],
    ['management', management],
  ] as const) {
    if (events && value && !value.includes('+') && !value.includes('#') && topicMatches(events, value)) {
      problems.push(`options.topics.${key} (${value}) is also matched by options.topics.events (${events}); give them separate topics`);
    }
  }
  // Command/response pairs default to Zebra's sample layout under the vendor's prefix, beside the other
  // topics, with the device id in them: the broker's ACL gives a device only topics that carry its id.
  const prefix = vendor === 'impinj' || vendor === 'zebra' ? vendor : 'reader';
  const commands = topic('commands', false) ?? `${prefix}/${device.id}/mgmt/cmd`;
  const responses = topic('responses', false) ?? `${prefix}/${device.id}/mgmt/res`;
  let controlCommands = topic('controlCommands', false);
  let controlResponses = topic('controlResponses', false);
  if (vendor === 'zebra') {
    controlCommands ??= `zebra/${device.id}/ctrl/cmd`;
    controlResponses ??= `zebra/${device.id}/ctrl/res`;
  } else if (controlCommands !== undefined || controlResponses !== undefined) {
    problems.push('options.topics.controlCommands and controlResponses are for Zebra readers only (Impinj starts and stops inventory over its REST API)');
  }
  const pairs: [string, string | undefined][] = [
    ['commands', commands],
    ['responses', responses],
    ['controlCommands', controlCommands],
    ['controlResponses', controlResponses],
  ];
  const partner: Record<string, string> = { responses: 'commands', controlResponses: 'controlCommands' };
  const taken = new Map<string, string>();
  for (const [key, value] of pairs) {
    if (value === undefined) continue;
    // the hub publishes commands to one topic and the reader answers on one: filters make no sense here
    if (value.includes('+') || value.includes('#')) {
      problems.push(`options.topics.${key} must be a topic, not a filter with '+' or '#'`);
      continue;
    }
    const clash = [events, status, management].includes(value) ? 'other' : taken.get(value);
    if (clash === undefined) taken.set(value, key);
    else if (partner[key] === clash) problems.push(`options.topics.${clash} and options.topics.${key} must differ (both ${value})`);
    else problems.push(`options.topics.${key} (${value}) must differ from the other topics`);
  }
  return { events, status, management, commands, responses, controlCommands, controlResponses };
}

export function resolveOptions(device: DriverDevice): { problems: string[]; options?: ResolvedOptions } {
  const problems: string[] = [];
  const o = device.options;
  const vendor = o.vendor;
  if (vendor !== 'impinj' && vendor !== 'zebra') problems.push(`options.vendor must be 'impinj' or 'zebra' (got ${JSON.stringify(vendor)})`);
  const transport: ReaderTransport = device.transportType === 'http-stream' ? 'http-stream' : 'mqtt';

  let topics: ResolvedTopics;
  if (transport === 'mqtt') topics = resolveTopics(device, vendor, problems);
  else {
    // The reader's REST API: events come from GET /data/stream, commands go to its REST endpoints.
    if (vendor === 'zebra') problems.push('options.vendor zebra needs transport type mqtt (the hub drives Zebra readers through the IoT Connector over MQTT)');
    for (const [key, why] of [
      ['topics', 'MQTT topics; over http-stream the events come from GET /data/stream'],
      ['statusMessages', 'MQTT status messages; over http-stream the connection itself is the status'],
      ['firmware', 'the MQTT management interface; over http-stream there is none'],
    ] as const) {
      if (o[key] !== undefined) problems.push(`options.${key} is for transport type mqtt (${why})`);
    }
    const none = `http-stream/${device.id}`;
    topics = {
      events: undefined,
      status: undefined,
      management: undefined,
      commands: none,
      responses: none,
      controlCommands: undefined,
      controlResponses: undefined,
    };
  }

  let inventoryPreset: string | undefined;
  if (o.inventoryPreset !== undefined) {
    if (typeof o.inventoryPreset !== 'string' || !PRESET_ID.test(o.inventoryPreset))
      problems.push('options.inventoryPreset must be a preset id (letters, digits, . _ -; at most 64)');
    else if (vendor !== 'impinj') problems.push('options.inventoryPreset is for Impinj readers (Zebra starts its configured operating mode)');
    else if (transport !== 'http-stream')
      problems.push("options.inventoryPreset needs transport type http-stream (Impinj presets are started over the reader's REST API)");
    else inventoryPreset = o.inventoryPreset;
  }

  const firmware = { ...FIRMWARE_DEFAULTS };
  if (o.firmware !== undefined) {
    if (!isRecord(o.firmware)) problems.push('options.firmware must be an object');
    else {
      const limits: Record<keyof ReaderFirmwareOptions, [number, number]> = {
        chunkBytes: [256, 128 * 1024],
        ackTimeoutMs: [50, 600_000],
        retries: [0, 10],
        rebootTimeoutMs: [100, 3_600_000],
      };
      for (const [key, raw] of Object.entries(o.firmware)) {
        const range = (limits as Record<string, [number, number] | undefined>)[key];
        if (!range) problems.push(`options.firmware.${key} is not a known option`);
        else if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < range[0] || raw > range[1])
          problems.push(`options.firmware.${key} must be an integer ${range[0]}..${range[1]}`);
        else firmware[key as keyof ReaderFirmwareOptions] = raw;
      }
    }
  }

  const zones = new Map<number, string>();
  if (!isRecord(o.antennas) || Object.keys(o.antennas).length === 0) {
    problems.push('options.antennas must map at least one antenna port to a zone, e.g. {"1": "backroom"}');
  } else {
    for (const [port, zone] of Object.entries(o.antennas)) {
      const n = Number(port);
      if (!/^[1-9][0-9]{0,4}$/.test(port) || n > 0xffff) problems.push(`options.antennas key ${JSON.stringify(port)} is not an antenna port (1..65535)`);
      else if (typeof zone !== 'string' || zone.trim().length === 0) problems.push(`options.antennas.${port} must be a zone name`);
      else zones.set(n, zone);
    }
  }

  const positive = (key: string, fallback: number): number => {
    const raw = o[key];
    if (raw === undefined) return fallback;
    if (typeof raw !== 'number' || !Number.isFinite(raw) || raw <= 0) {
      problems.push(`options.${key} must be a positive number`);
      return fallback;
    }
    return raw;
  };
  const maxReadsPerSecond = positive('maxReadsPerSecond', DEFAULT_MAX_READS_PER_SECOND);
  const overflowHoldMs = positive('overflowHoldMs', DEFAULT_OVERFLOW_HOLD_MS);

  const statusMessages = { ...IMPINJ_DEFAULT_STATUS };
  if (o.statusMessages !== undefined) {
    if (!isRecord(o.statusMessages)) problems.push('options.statusMessages must be an object');
    else {
      for (const key of ['connected', 'lost', 'disconnected'] as const) {
        const text = o.statusMessages[key];
        if (text === undefined) continue;
        if (typeof text !== 'string') problems.push(`options.statusMessages.${key} must be a string`);
        else statusMessages[key] = text;
      }
    }
  }
  const known = new Set(['vendor', 'topics', 'antennas', 'maxReadsPerSecond', 'overflowHoldMs', 'statusMessages', 'firmware', 'inventoryPreset']);
  for (const key of Object.keys(o)) if (!known.has(key)) problems.push(`options.${key} is not a known option`);

  if (problems.length > 0 || (transport === 'mqtt' && !topics.events)) return { problems };
  return {
    problems,
    options: {
      vendor: vendor as ReaderVendor,
      transport,
      ...topics,
      inventoryPreset,
      firmware,
      zones,
      maxReadsPerSecond,
      overflowHoldMs,
      statusMessages,
    },
  };
}

/** Problems with a device's options, one line each; empty when valid. */
export function validateRfidReader(device: DriverDevice): string[] {
  return resolveOptions(device).problems;
}

/** The antenna-to-zone mapping of a valid device, for the inventory aggregator. */
export function antennaZones(device: DriverDevice): Map<number, string> {
  return resolveOptions(device).options?.zones ?? new Map();
}

/**
 * The topic filters a device's broker credential must cover, with `{id}` replaced: what the reader
 * publishes, plus the command topics it subscribes to (the ACL governs both). None for a reader on
 * the http-stream transport: it never meets the broker.
 */
export function readerTopics(device: DriverDevice): string[] {
  const o = resolveOptions(device).options;
  if (!o || o.transport !== 'mqtt') return [];
  return [o.events, o.status, o.management, o.commands, o.responses, o.controlCommands, o.controlResponses].filter((t): t is string => t !== undefined);
}
