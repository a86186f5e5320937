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
import { type ItemEvent, RfidAggregator } from './rfid-aggregator.js';
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
    const aggregator = new RfidAggregator({
      departedAfterMs: DEPARTED_AFTER_MS,
      zoneOf: (deviceId, antenna) => {
        const zone = zones.get(deviceId)?.[String(antenna)];
        return typeof zone === 'string' ? zone : `${deviceId}:${antenna}`;
      },
    });
    this.aggregator = aggregator;
    this.deps.bus.on('device.event', this.owner, (event) => {
      if (event.type === 'shelf.weight') this.onShelf(ledger, event);
      else if (event.type === 'rfid.read') {
        const item = aggregator.ingest(event);
        if (item) this.onItem(item, event.deviceId);
        this.deps.readLatency?.((Date.now() - event.time) / 1000);
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

  async stop(): Promise<void> {
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
