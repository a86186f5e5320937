/** What the API's routes may reach: narrow views of the services, not the services themselves. */
import type { HubConfig } from '../config/schema.js';
import type { DeviceEventLog } from '../devices/event-log.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { StockLedger } from '../inventory/stock-ledger.js';
import type { Health } from '../lifecycle/health.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { Store } from '../store/store.js';

export interface ApiContext {
  config: HubConfig;
  store: Store;
  health: Health;
  metrics: HubMetrics;
  version: string;
  startedAt: number;
  brokerClients(): number;
  devices(): { registry: DeviceRegistry | undefined; events: DeviceEventLog | undefined } | undefined;
  ledger(): StockLedger | undefined;
}
