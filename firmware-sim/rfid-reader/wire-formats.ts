/**
 * What a simulated reader puts on the wire, per vendor, written from the vendors' documentation (see
 * README.md) and not from the hub's driver: Impinj IoT device interface events and status messages,
 * Zebra IoT Connector tag data, management events and connection status.
 */

export type Vendor = 'impinj' | 'zebra';

export interface SimRead {
  epc: string;
  antenna: number;
  /** dBm */
  rssi: number;
  time: number;
}

export interface ImpinjFormat {
  hostname: string;
  /** Which EPC fields the reader reports (tagReporting: epc base64 is on by default, epcHex off). */
  epc: 'base64' | 'hex' | 'both';
  /** 'all' reports every optional field; 'minimal' only the EPC and antennaPort. */
  fields: 'all' | 'minimal';
}

const iso = (ms: number) => new Date(ms).toISOString();

export function impinjTagEvent(read: SimRead, f: ImpinjFormat): Record<string, unknown> {
  const tag: Record<string, unknown> = {};
  if (f.epc !== 'hex') tag.epc = Buffer.from(read.epc, 'hex').toString('base64');
  if (f.epc !== 'base64') tag.epcHex = read.epc;
  tag.antennaPort = read.antenna;
  if (f.fields === 'all') {
    tag.antennaName = `Antenna ${read.antenna}`;
    tag.peakRssiCdbm = Math.round(read.rssi * 100);
    tag.frequency = 902750 + 500 * ((read.time >> 4) % 50);
    tag.transmitPowerCdbm = 3000;
    tag.lastSeenTime = iso(read.time);
    tag.phaseAngle = Math.round(((read.time * 37) % 36000) / 100) + 0.25;
  }
  return { timestamp: iso(read.time), hostname: f.hostname, eventType: 'tagInventory', tagInventoryEvent: tag };
}

export function impinjEvent(hostname: string, time: number, eventType: string, body: Record<string, unknown>): Record<string, unknown> {
  return { timestamp: iso(time), hostname, eventType, [`${eventType}Event`]: body };
}

export function impinjOverflow(hostname: string, time: number, purged: number, remaining: number, firstTime: number): Record<string, unknown> {
  return impinjEvent(hostname, time, 'overflow', {
    firstEventTimestamp: iso(firstTime),
    lastEventTimestamp: iso(time),
    eventsPurged: purged,
    eventsRemaining: remaining,
  });
}

/** An Impinj inventoryStatusEvent: the reader's inventory started ("running") or stopped ("idle"). */
export function impinjInventoryStatus(hostname: string, time: number, status: 'running' | 'idle'): Record<string, unknown> {
  return impinjEvent(hostname, time, 'inventoryStatus', { status });
}

/** Zebra writes its offset as +0000. */
const zebraTime = (ms: number) => new Date(ms).toISOString().replace('Z', '+0000');

export function zebraTagEvent(read: SimRead, mac: string, eventNum: number, reads = 1): Record<string, unknown> {
  return {
    type: 'SIMPLE',
    timestamp: zebraTime(read.time),
    data: { MAC: mac, antenna: read.antenna, eventNum, format: 'epc', idHex: read.epc.toLowerCase(), peakRssi: Math.round(read.rssi), reads },
  };
}

export function zebraHeartbeat(time: number, reads: number, antennas: number[], disconnected: ReadonlySet<number>): Record<string, unknown> {
  return {
    type: 'heartbeat',
    timestamp: zebraTime(time),
    data: {
      radio_control: {
        antennas: Object.fromEntries(antennas.map((a) => [String(a), disconnected.has(a) ? 'disconnected' : 'connected'])),
        radioActivity: 'active',
        radioConnection: 'connected',
        numTagReads: reads,
      },
      system: { cpu: { user: 12, system: 5 }, ram: { total: 262144000, free: 120000000 } },
    },
  };
}

/** `firmwareVersion` (our extension) tells the hub what the reader booted, in the birth message itself. */
export function zebraConnection(time: number, mac: string, state: 'CONNECTED' | 'DISCONNECTED', firmwareVersion?: string): Record<string, unknown> {
  const data = { state, deviceSerialNo: mac.replaceAll(':', ''), deviceModel: 'FX9600', ...(firmwareVersion ? { firmwareVersion } : {}) };
  return { type: 'mqttConnEVT', timestamp: zebraTime(time), data };
}

/**
 * Joins several events into one MQTT payload: Impinj as newline-delimited JSON (the framing of its HTTP
 * data stream), Zebra as objects written back to back with no delimiter (its TCP/WebSocket framing) or
 * as a JSON array.
 */
export function batch(vendor: Vendor, events: Record<string, unknown>[], zebraFraming: 'concatenated' | 'array'): string {
  if (vendor === 'impinj') return events.map((e) => JSON.stringify(e)).join('\n');
  if (zebraFraming === 'array') return JSON.stringify(events);
  return events.map((e) => JSON.stringify(e)).join('');
}

export type MalformedKind = 'not-json' | 'truncated' | 'binary' | 'schema' | 'wrong-types';

/** A payload a broken or misconfigured reader might send. */
export function malformed(vendor: Vendor, kind: MalformedKind, time: number): Buffer {
  switch (kind) {
    case 'not-json':
      return Buffer.from('reader rebooting, inventory stopped');
    case 'truncated':
      return Buffer.from(
        vendor === 'impinj'
          ? `{"timestamp":"${iso(time)}","eventType":"tagInventory","tagInventoryEvent":{"epcHex":"30`
          : `{"type":"SIMPLE","data":{"idHex":"30`,
      );
    case 'binary':
      return Buffer.from([0x00, 0xff, 0x7b, 0x22, 0xc3, 0x28, 0x10, 0x80]);
    case 'schema':
      // valid JSON, but the read has no antenna
      return Buffer.from(
        JSON.stringify(
          vendor === 'impinj'
            ? { timestamp: iso(time), eventType: 'tagInventory', tagInventoryEvent: { epcHex: '3074257BF7194E4000001A85' } }
            : { type: 'SIMPLE', timestamp: zebraTime(time), data: { idHex: '3074257bf7194e4000001a85', format: 'epc' } },
        ),
      );
    case 'wrong-types':
      return Buffer.from(
        JSON.stringify(
          vendor === 'impinj'
            ? { timestamp: iso(time), eventType: 'tagInventory', tagInventoryEvent: { epcHex: 'XYZ', antennaPort: '1' } }
            : { type: 'SIMPLE', timestamp: zebraTime(time), data: { idHex: 42, antenna: 'one' } },
        ),
      );
  }
}
