/**
 * Folds raw `rfid.read` events into item events, after the EdgeX RFID inventory service's rules
 * (edgexfoundry/app-rfid-llrp-inventory, internal/inventory: tagprocessor.go, tagstats.go):
 *
 * - Arrived: the first read of a tag, or a read of a tag that has departed (or was forgotten).
 * - Moved: a read in another zone, once that zone has seen the tag at least `minReadsToMove` times and
 *   its moving-average RSSI (last `rssiWindow` reads) beats the current zone's by `mobilityThresholdDb`,
 *   and `holdOffMs` has passed since the tag's last move (a tag that has not moved since it arrived may
 *   move at once: its first zone came from a single read). A zone with no RSSI samples cannot hold a tag
 *   against one that has them, and a current zone that has not seen the tag for `staleZoneMs` gives way
 *   to any zone with enough reads (readers without RSSI, or a tag carried out of an antenna's field).
 * - Departed: no read for `departedAfterMs`, found by `sweep(now)`, which the caller runs on its own
 *   schedule (EdgeX checks every 30 s).
 *
 * Pure and clock-injected: no timers, no I/O; read times come from the events, sweep times from the
 * caller. Built for throughput: one Map lookup per read, per-zone statistics in preallocated ring
 * buffers, and no allocation on a read that changes nothing.
 */
import type { RfidReadEvent } from '../sdk/events.js';
import { decodeSgtin96, type Sgtin96 } from './sgtin96.js';

interface ItemEventBase {
  epc: string;
  /** The zone the item is in (for departed: the last zone it was in). */
  zone: string;
  /** Read time for arrived and moved; the sweep's time for departed. */
  time: number;
  /** The EPC decoded, when it is a GS1 SGTIN-96; other EPCs stay opaque. */
  sgtin?: Sgtin96;
}

export interface ItemArrived extends ItemEventBase {
  type: 'item.arrived';
}
export interface ItemMoved extends ItemEventBase {
  type: 'item.moved';
  fromZone: string;
}
export interface ItemDeparted extends ItemEventBase {
  type: 'item.departed';
  /** When the item was last read. */
  lastSeen: number;
}
export type ItemEvent = ItemArrived | ItemMoved | ItemDeparted;

/** Maps a reader's antenna to a zone; undefined for an antenna that is in no zone (the read is ignored). */
export type ZoneResolver = (deviceId: string, antenna: number) => string | undefined;

export interface RfidAggregatorOptions {
  /** Default: `<deviceId>:<antenna>`, every antenna its own zone (as EdgeX names locations). */
  zoneOf?: ZoneResolver;
  /** dB by which a new zone's average RSSI must beat the current zone's. Default 6 (EdgeX retail garment). */
  mobilityThresholdDb?: number;
  /** Minimum time between two moves of one tag, ms. Default 60 000 (EdgeX retail garment). */
  holdOffMs?: number;
  /** A tag not read for this long departs at the next sweep, ms. Default 600 000 (EdgeX). */
  departedAfterMs?: number;
  /** Reads a new zone needs before the tag can move there. Default 2. */
  minReadsToMove?: number;
  /** Reads in each zone's RSSI moving average. Default 20 (EdgeX tagStatsWindowSize). */
  rssiWindow?: number;
  /** A current zone that has not read the tag for this long no longer holds it, ms. Default 30 000. */
  staleZoneMs?: number;
  /** Departed tags not read for this long are dropped from memory at a sweep, ms. Default 24 h. */
  forgetAfterMs?: number;
}

class ZoneStats {
  readonly ring: Float32Array;
  next = 0;
  samples = 0;
  sum = 0;
  reads = 0;
  lastRead = -Infinity;

  constructor(
    readonly zone: string,
    window: number,
  ) {
    this.ring = new Float32Array(window);
  }

  add(time: number, rssi: number | undefined): void {
    this.reads++;
    if (time > this.lastRead) this.lastRead = time;
    if (rssi === undefined || !Number.isFinite(rssi)) return;
    const value = Math.fround(rssi);
    const ring = this.ring;
    if (this.samples === ring.length) this.sum -= ring[this.next] as number;
    else this.samples++;
    ring[this.next] = value;
    this.sum += value;
    this.next = this.next + 1 === ring.length ? 0 : this.next + 1;
  }

  mean(): number {
    return this.sum / this.samples;
  }

  reset(): void {
    this.next = 0;
    this.samples = 0;
    this.sum = 0;
    this.reads = 0;
    this.lastRead = -Infinity;
  }
}

interface TagState {
  epc: string;
  present: boolean;
  zone: ZoneStats;
  /** Every zone that has read the tag since it (last) arrived; few, so a list beats a Map. */
  zones: ZoneStats[];
  lastRead: number;
  /** Read time of the last move; -Infinity until the first move. */
  lastMove: number;
  sgtin: Sgtin96 | undefined;
}

export interface AggregatorCounters {
  reads: number;
  /** Reads from antennas the zone resolver put in no zone. */
  unzoned: number;
  arrived: number;
  moved: number;
  departed: number;
  forgotten: number;
}

export class RfidAggregator {
  private readonly tags = new Map<string, TagState>();
  private readonly zoneOf: ZoneResolver;
  private readonly threshold: number;
  private readonly holdOffMs: number;
  private readonly departedAfterMs: number;
  private readonly minReads: number;
  private readonly window: number;
  private readonly staleZoneMs: number;
  private readonly forgetAfterMs: number;
  readonly counters: AggregatorCounters = { reads: 0, unzoned: 0, arrived: 0, moved: 0, departed: 0, forgotten: 0 };

  constructor(options: RfidAggregatorOptions = {}) {
    this.zoneOf = options.zoneOf ?? defaultZones();
    this.threshold = options.mobilityThresholdDb ?? 6;
    this.holdOffMs = options.holdOffMs ?? 60_000;
    this.departedAfterMs = options.departedAfterMs ?? 600_000;
    this.minReads = Math.max(1, options.minReadsToMove ?? 2);
    this.window = Math.max(1, Math.floor(options.rssiWindow ?? 20));
    this.staleZoneMs = options.staleZoneMs ?? 30_000;
    this.forgetAfterMs = Math.max(this.departedAfterMs, options.forgetAfterMs ?? 24 * 3_600_000);
  }

  /** Tags held in memory, present or departed. */
  get size(): number {
    return this.tags.size;
  }

  /** Every tag present now with its zone: what a cycle count expects to find. */
  *present(): Iterable<{ epc: string; zone: string; sgtin: Sgtin96 | undefined }> {
    for (const tag of this.tags.values()) if (tag.present) yield { epc: tag.epc, zone: tag.zone.zone, sgtin: tag.sgtin };
  }

  /**
   * A count that did not see a present tag says it has gone: departs it now (at `time`) rather than
   * after the timeout, whose later departure would be a second decrement after the count's cut-off.
   */
  depart(epc: string, time: number): ItemDeparted | undefined {
    const tag = this.tags.get(epc);
    if (!tag?.present) return undefined;
    tag.present = false;
    this.counters.departed++;
    const event: ItemDeparted = { type: 'item.departed', epc, zone: tag.zone.zone, time, lastSeen: tag.lastRead };
    if (tag.sgtin) event.sgtin = tag.sgtin;
    return event;
  }

  /** Where a tag is, if it is present. */
  zoneOfTag(epc: string): string | undefined {
    const tag = this.tags.get(epc);
    return tag?.present ? tag.zone.zone : undefined;
  }

  /** Folds one read in; returns the item event it causes, if any. */
  ingest(read: RfidReadEvent): ItemEvent | undefined {
    this.counters.reads++;
    const zone = this.zoneOf(read.deviceId, read.antenna);
    if (zone === undefined) {
      this.counters.unzoned++;
      return undefined;
    }
    const { epc, time, rssi } = read;
    let tag = this.tags.get(epc);
    if (tag === undefined) {
      const stats = new ZoneStats(zone, this.window);
      stats.add(time, rssi);
      const decoded = decodeSgtin96(epc);
      tag = { epc, present: true, zone: stats, zones: [stats], lastRead: time, lastMove: -Infinity, sgtin: decoded.kind === 'sgtin-96' ? decoded : undefined };
      this.tags.set(epc, tag);
      return this.arrived(tag, time);
    }
    if (time > tag.lastRead) tag.lastRead = time;
    if (!tag.present) {
      // A departed tag starts over: fresh statistics, as EdgeX resets them on departure.
      for (const z of tag.zones) z.reset();
      const stats = this.statsFor(tag, zone);
      stats.add(time, rssi);
      tag.present = true;
      tag.zone = stats;
      tag.lastRead = time;
      tag.lastMove = -Infinity;
      return this.arrived(tag, time);
    }
    const current = tag.zone;
    if (current.zone === zone) {
      current.add(time, rssi);
      return undefined;
    }
    const candidate = this.statsFor(tag, zone);
    candidate.add(time, rssi);
    if (candidate.reads < this.minReads || time - tag.lastMove < this.holdOffMs) return undefined;
    const stale = time - current.lastRead >= this.staleZoneMs;
    const stronger = candidate.samples > 0 && (current.samples === 0 || candidate.mean() > current.mean() + this.threshold);
    if (!stale && !stronger) return undefined;
    tag.zone = candidate;
    tag.lastMove = time;
    this.counters.moved++;
    const event: ItemMoved = { type: 'item.moved', epc, zone, fromZone: current.zone, time };
    if (tag.sgtin) event.sgtin = tag.sgtin;
    return event;
  }

  /**
   * Departs every present tag not read for departedAfterMs before `now`, and forgets departed tags not
   * read for forgetAfterMs. Returns the departures.
   */
  sweep(now: number): ItemDeparted[] {
    const out: ItemDeparted[] = [];
    const departBefore = now - this.departedAfterMs;
    const forgetBefore = now - this.forgetAfterMs;
    for (const [epc, tag] of this.tags) {
      if (tag.present) {
        if (tag.lastRead > departBefore) continue;
        tag.present = false;
        this.counters.departed++;
        const event: ItemDeparted = { type: 'item.departed', epc, zone: tag.zone.zone, time: now, lastSeen: tag.lastRead };
        if (tag.sgtin) event.sgtin = tag.sgtin;
        out.push(event);
      } else if (tag.lastRead <= forgetBefore) {
        this.tags.delete(epc);
        this.counters.forgotten++;
      }
    }
    return out;
  }

  private arrived(tag: TagState, time: number): ItemArrived {
    this.counters.arrived++;
    const event: ItemArrived = { type: 'item.arrived', epc: tag.epc, zone: tag.zone.zone, time };
    if (tag.sgtin) event.sgtin = tag.sgtin;
    return event;
  }

  private statsFor(tag: TagState, zone: string): ZoneStats {
    for (const z of tag.zones) if (z.zone === zone) return z;
    const stats = new ZoneStats(zone, this.window);
    tag.zones.push(stats);
    return stats;
  }
}

/** `<deviceId>:<antenna>`, with the strings built once per antenna rather than once per read. */
function defaultZones(): ZoneResolver {
  const names = new Map<string, string[]>();
  return (deviceId, antenna) => {
    let list = names.get(deviceId);
    if (!list) names.set(deviceId, (list = []));
    return (list[antenna] ??= `${deviceId}:${antenna}`);
  };
}
