/**
 * The inventory service: turns device facts into stock.
 * - A smart shelf's stable, counted lane is an absolute count of its SKU at that lane (coverage 1:
 *   the scale sees the whole lane), applied to the ledger as a count observation.
 * - RFID reads are folded into item events (arrived, moved, departed) by the aggregator; each
 *   SGTIN item event moves one unit of its SKU between zones in the ledger. Ledger writes made in
 *   one event-loop turn share a transaction.
 */
import type { DeviceConfig } from '../config/schema.js';
import type { EventBus } from '../devices/event-bus.js';
import type { DeviceEventLog } from '../devices/event-log.js';
import type { Logger } from '../observability/logger.js';
import type { ShelfWeightEvent } from '../sdk/events.js';
import type { Store } from '../store/store.js';
import type { Outbox } from '../sync/outbox.js';
import { randomUUID } from 'node:crypto';
import { CycleCount } from './cycle-count.js';
import { type ItemEvent, RfidAggregator } from './rfid-aggregator.js';
import { decodeSgtin96, isSgtin96 } from './sgtin96.js';
import { DEFAULT_REVIEW_POLICY, StockLedger } from './stock-ledger.js';

/** How often tags not read for the departure timeout are swept (EdgeX checks every 30 s). */
const SWEEP_MS = 30_000;
/** The aggregator's departure timeout (EdgeX default), also applied to tags restored at start. */
const DEPARTED_AFTER_MS = 600_000;

export interface InventoryDeps {
  store: () => Store;
  events: () => DeviceEventLog | undefined;
  /** Where ledger entries also go for the cloud; none in tools and tests that do not sync. */
  outbox?: () => Outbox | undefined;
  devices: DeviceConfig[];
  bus: EventBus;
  log: Logger;
  /** Observes read-to-event latency in seconds. */
  readLatency?: (seconds: number) => void;
}

type Movement = [sku: string, location: string, delta: number, reason: string, source: string, time: number];

/** A cycle count as the API shows it. */
export interface CycleCountView {
  id: string;
  source: string;
  zones: string[] | null;
  startedAt: number;
  endsAt: number | null;
  endedAt: number | null;
  tagsSeen: number;
  results: { zone: string; sku: string; count: number; coverage: number; outcome: string; delta?: number; reason?: string }[];
}

/** Finished cycle counts kept for the API. */
const KEEP_CYCLE_COUNTS = 50;

export class InventoryService {
  readonly name = 'inventory';
  ledger: StockLedger | undefined;
  aggregator: RfidAggregator | undefined;
  private readonly owner = 'inventory';
  /** Last count applied per lane: the shelf reports every stable reading, the ledger wants changes. */
  private readonly lastLaneCount = new Map<string, number>();
  private pending: Movement[] = [];
  private timer: NodeJS.Timeout | undefined;
  private skuOfGtin: ((gtin: string) => string | undefined) | undefined;
  /**
   * Where each tag was before this start, from the item events already logged. The aggregator
   * starts empty, so its first sighting of a tag that was already here is not a new arrival.
   */
  private readonly restored = new Map<string, string>();
  private startedAt = 0;
  private zoneOfRead: ((deviceId: string, antenna: number) => string) | undefined;
  private readerZones: ((deviceId: string) => string[]) | undefined;
  private readonly cycles = new Map<string, { count: CycleCount; endsAt: number | null; timer?: NodeJS.Timeout; view?: CycleCountView }>();
  /** The reader-driven cycle of each reader (Impinj inventoryStatus running -> idle). */
  private readonly readerCycles = new Map<string, string>();

  constructor(private readonly deps: InventoryDeps) {}

  async start(): Promise<void> {
    const db = this.deps.store().db;
    const ledger = new StockLedger(db, DEFAULT_REVIEW_POLICY, Date.now, this.deps.outbox?.());
    this.ledger = ledger;
    const bySku = db.prepare('SELECT sku FROM products WHERE gtin14 = ?');
    this.skuOfGtin = (gtin) => (bySku.get(gtin) as { sku: string } | undefined)?.sku;
    const zones = new Map<string, Record<string, unknown>>();
    for (const d of this.deps.devices) {
      const antennas = d.options.antennas;
      if (d.kind === 'rfid-reader' && typeof antennas === 'object' && antennas !== null) zones.set(d.id, antennas as Record<string, unknown>);
    }
    this.startedAt = Date.now();
    const last = db
      .prepare(
        `SELECT json_extract(body, '$.epc') AS epc, kind, json_extract(body, '$.zone') AS zone, max(id) AS id FROM events
         WHERE kind IN ('item.arrived', 'item.moved', 'item.departed') GROUP BY json_extract(body, '$.epc')`,
      )
      .all() as { epc: string; kind: string; zone: string }[];
    for (const r of last) if (r.kind !== 'item.departed') this.restored.set(r.epc, r.zone);
    const zoneOf = (deviceId: string, antenna: number) => {
      const zone = zones.get(deviceId)?.[String(antenna)];
      return typeof zone === 'string' ? zone : `${deviceId}:${antenna}`;
    };
    this.zoneOfRead = zoneOf;
    this.readerZones = (deviceId) => [...new Set(Object.values(zones.get(deviceId) ?? {}).filter((z): z is string => typeof z === 'string'))];
    const aggregator = new RfidAggregator({ departedAfterMs: DEPARTED_AFTER_MS, zoneOf });
    this.aggregator = aggregator;
    this.deps.bus.on('device.event', this.owner, (event) => {
      if (event.type === 'shelf.weight') this.onShelf(ledger, event);
      else if (event.type === 'rfid.read') {
        const item = aggregator.ingest(event);
        if (item) this.onItem(item, event.deviceId);
        if (this.cycles.size > 0) this.onCycleRead(event.deviceId, event.antenna, event.epc);
        this.deps.readLatency?.((Date.now() - event.time) / 1000);
      } else if (event.type === 'device.condition' && event.condition === 'inventory_status') {
        this.onInventoryStatus(event.deviceId, String(event.detail?.status ?? ''), event.time);
      }
    });
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const item of aggregator.sweep(now)) this.onItem(item, undefined);
      // tags that were here before the restart and have not been read since have left
      if (now - this.startedAt >= DEPARTED_AFTER_MS) {
        for (const [epc, zone] of this.restored) this.onItem({ type: 'item.departed', epc, zone, time: now, lastSeen: this.startedAt }, undefined);
        this.restored.clear();
      }
    }, SWEEP_MS);
    this.timer.unref();
  }

  /**
   * Starts a cycle count over some zones (all when none named); it ends after `seconds`, or when
   * finishCycleCount() is called when `seconds` is absent (a reader-driven cycle).
   */
  startCycleCount(options: { zones?: string[]; seconds?: number; source: string }): CycleCountView {
    const aggregator = this.aggregator;
    if (!aggregator) throw new Error('the inventory service is not running');
    const id = randomUUID();
    const startedAt = Date.now();
    const present = [...aggregator.present()].map((t) => ({ epc: t.epc, zone: t.zone, sku: t.sgtin ? this.skuOf(t.sgtin.gtin14) : undefined }));
    const count = new CycleCount({ id, startedAt, source: options.source, ...(options.zones ? { zones: options.zones } : {}) }, present);
    const endsAt = options.seconds === undefined ? null : startedAt + options.seconds * 1000;
    const entry: { count: CycleCount; endsAt: number | null; timer?: NodeJS.Timeout } = { count, endsAt };
    if (options.seconds !== undefined) {
      entry.timer = setTimeout(() => this.finishCycleCount(id), options.seconds * 1000);
      entry.timer.unref();
    }
    this.cycles.set(id, entry);
    this.deps.log.info({ id, zones: options.zones ?? 'all', seconds: options.seconds, source: options.source }, 'cycle count started');
    return this.cycleView(id) as CycleCountView;
  }

  /** Ends a cycle count and turns its counts into ledger observations at its end. */
  finishCycleCount(id: string): CycleCountView | undefined {
    const entry = this.cycles.get(id);
    const ledger = this.ledger;
    if (!entry || !ledger || entry.count.endedAt !== undefined) return this.cycleView(id);
    if (entry.timer) clearTimeout(entry.timer);
    // movements read before the end are in the count: write them first so the cut-off sees them
    this.flush();
    const endedAt = Date.now();
    const results: CycleCountView['results'] = [];
    for (const c of entry.count.finish(endedAt)) {
      const outcome = ledger.observe({ sku: c.sku, location: c.zone, count: c.count, cutoff: endedAt, coverage: c.coverage, source: `cycle-count:${id}` });
      results.push({
        ...c,
        outcome: outcome.outcome,
        ...('delta' in outcome ? { delta: outcome.delta } : {}),
        ...('reason' in outcome ? { reason: outcome.reason } : {}),
      });
    }
    // Tags the count did not see, where it was trusted, have gone: depart them now, at the cut-off,
    // so the ledger folds their departure into the count instead of counting it twice later.
    const trusted = new Set(results.filter((r) => r.outcome === 'applied' || r.outcome === 'unchanged').map((r) => `${r.zone}|${r.sku}`));
    for (const zone of new Set(results.map((r) => r.zone))) {
      for (const { epc, sku } of entry.count.missing(zone)) {
        if (sku === undefined || !trusted.has(`${zone}|${sku}`)) continue;
        const departed = this.aggregator?.depart(epc, endedAt);
        if (departed) this.onItem(departed, undefined);
      }
    }
    this.flush();
    entry.view = { ...(this.cycleView(id) as CycleCountView), endedAt, results };
    this.deps.log.info(
      { id, tagsSeen: entry.count.tagsSeen, observations: results.length, held: results.filter((r) => r.outcome === 'review').length },
      'cycle count finished',
    );
    // keep the newest finished ones for the API
    const finished = [...this.cycles].filter(([, e]) => e.count.endedAt !== undefined);
    for (const [old] of finished.slice(0, Math.max(0, finished.length - KEEP_CYCLE_COUNTS))) this.cycles.delete(old);
    return entry.view;
  }

  cycleView(id: string): CycleCountView | undefined {
    const entry = this.cycles.get(id);
    if (!entry) return undefined;
    if (entry.view) return entry.view;
    const spec = entry.count.spec;
    return {
      id,
      source: spec.source,
      zones: spec.zones ?? null,
      startedAt: spec.startedAt,
      endsAt: entry.endsAt,
      endedAt: null,
      tagsSeen: entry.count.tagsSeen,
      results: [],
    };
  }

  cycleCounts(): CycleCountView[] {
    return [...this.cycles.keys()].map((id) => this.cycleView(id) as CycleCountView).reverse();
  }

  private onCycleRead(deviceId: string, antenna: number, epc: string): void {
    const zone = this.zoneOfRead?.(deviceId, antenna);
    if (zone === undefined) return;
    const decoded = decodeSgtin96(epc);
    const sku = isSgtin96(decoded) ? this.skuOf(decoded.gtin14) : undefined;
    for (const { count } of this.cycles.values()) count.onRead(zone, epc, sku);
  }

  /** Impinj reports its inventory running and idle: one run is a cycle count of the reader's zones. */
  private onInventoryStatus(deviceId: string, status: string, _time: number): void {
    const current = this.readerCycles.get(deviceId);
    if (status === 'running') {
      if (current) return;
      const zones = this.readerZones?.(deviceId) ?? [];
      const view = this.startCycleCount({ ...(zones.length > 0 ? { zones } : {}), source: deviceId });
      this.readerCycles.set(deviceId, view.id);
    } else if (current) {
      this.readerCycles.delete(deviceId);
      this.finishCycleCount(current);
    }
  }

  private skuOf(gtin14: string): string {
    return this.skuOfGtin?.(gtin14) ?? `gtin:${gtin14}`;
  }

  async stop(): Promise<void> {
    for (const { timer } of this.cycles.values()) if (timer) clearTimeout(timer);
    clearInterval(this.timer);
    this.deps.bus.removeOwner(this.owner);
    this.flush();
  }

  private onShelf(ledger: StockLedger, event: ShelfWeightEvent): void {
    if (!event.stable || event.count === undefined || event.sku === undefined || !event.flags.dataOk) return;
    const location = `${event.deviceId}/${event.lane}`;
    if (this.lastLaneCount.get(location) === event.count) return;
    const result = ledger.observe({ sku: event.sku, location, count: event.count, cutoff: event.time, coverage: 1, source: event.deviceId });
    this.lastLaneCount.set(location, event.count);
    if (result.outcome === 'review') this.deps.log.warn({ location, sku: event.sku, ...result }, 'shelf count held for review');
  }

  private onItem(event: ItemEvent, deviceId: string | undefined): void {
    let item = event;
    const before = this.restored.get(item.epc);
    if (before !== undefined) {
      this.restored.delete(item.epc);
      if (item.type === 'item.arrived') {
        if (before === item.zone) return; // counted here before the restart
        item = { type: 'item.moved', epc: item.epc, zone: item.zone, fromZone: before, time: item.time, ...(item.sgtin ? { sgtin: item.sgtin } : {}) };
      }
    }
    const gtin14 = item.sgtin?.gtin14;
    const sku = gtin14 ? (this.skuOfGtin?.(gtin14) ?? `gtin:${gtin14}`) : undefined;
    const fromZone = item.type === 'item.moved' ? item.fromZone : undefined;
    const body = { epc: item.epc, zone: item.zone, ...(fromZone ? { fromZone } : {}), ...(gtin14 ? { gtin14, sku, serial: item.sgtin?.serial } : {}) };
    this.deps.events()?.append(item.type, deviceId ?? null, item.time, body);
    this.deps.bus.emit('item.event', {
      type: item.type,
      epc: item.epc,
      zone: item.zone,
      time: item.time,
      ...(fromZone ? { fromZone } : {}),
      ...(deviceId ? { deviceId } : {}),
      ...(gtin14 ? { gtin14 } : {}),
      ...(sku ? { sku } : {}),
    });
    if (!sku) return; // opaque EPCs are events, not stock
    const source = deviceId ?? 'rfid-sweep';
    if (item.type === 'item.arrived') this.queue([sku, item.zone, 1, 'rfid arrived', source, item.time]);
    else if (item.type === 'item.departed') this.queue([sku, item.zone, -1, 'rfid departed', source, item.time]);
    else {
      this.queue([sku, item.fromZone, -1, 'rfid moved out', source, item.time]);
      this.queue([sku, item.zone, 1, 'rfid moved in', source, item.time]);
    }
  }

  private queue(m: Movement): void {
    if (this.pending.length === 0) setImmediate(() => this.flush());
    this.pending.push(m);
  }

  private flush(): void {
    const ledger = this.ledger;
    if (!ledger || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.deps.store().db.transaction(() => {
        for (const [sku, location, delta, reason, source, time] of batch) ledger.applyDelta(sku, location, delta, reason, source, time);
      })();
    } catch (err) {
      // keep the movements (in order) for the next flush; stock must not silently lose them
      this.pending = batch.concat(this.pending);
      this.deps.log.error({ err, pending: this.pending.length }, 'stock movements not written yet; will retry');
      setTimeout(() => this.flush(), 1000).unref();
    }
  }
}
