/**
 * The inventory service: turns device facts into stock. A smart shelf's stable, counted lane is an
 * absolute count of its SKU at that lane (coverage 1: the scale sees the whole lane), applied to the
 * ledger as a count observation.
 */
import type { EventBus } from '../devices/event-bus.js';
import type { Logger } from '../observability/logger.js';
import type { ShelfWeightEvent } from '../sdk/events.js';
import type { Store } from '../store/store.js';
import { StockLedger } from './stock-ledger.js';

export class InventoryService {
  readonly name = 'inventory';
  ledger: StockLedger | undefined;
  private readonly owner = 'inventory';
  /** Last count applied per lane: the shelf reports every stable reading, the ledger wants changes. */
  private readonly lastLaneCount = new Map<string, number>();

  constructor(
    private readonly store: () => Store,
    private readonly bus: EventBus,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const ledger = new StockLedger(this.store().db);
    this.ledger = ledger;
    this.bus.on('device.event', this.owner, (event) => {
      if (event.type === 'shelf.weight') this.onShelf(ledger, event);
    });
  }

  async stop(): Promise<void> {
    this.bus.removeOwner(this.owner);
  }

  private onShelf(ledger: StockLedger, event: ShelfWeightEvent): void {
    if (!event.stable || event.count === undefined || event.sku === undefined || !event.flags.dataOk) return;
    const location = `${event.deviceId}/${event.lane}`;
    if (this.lastLaneCount.get(location) === event.count) return;
    const result = ledger.observe({ sku: event.sku, location, count: event.count, cutoff: event.time, coverage: 1, source: event.deviceId });
    this.lastLaneCount.set(location, event.count);
    if (result.outcome === 'review') this.log.warn({ location, sku: event.sku, ...result }, 'shelf count held for review');
  }
}
