/** What the API's routes may reach: narrow views of the services, not the services themselves. */
import type { HubConfig } from '../config/schema.js';
import type { DeviceEventLog } from '../devices/event-log.js';
import type { DeviceRegistry } from '../devices/registry.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { StockLedger } from '../inventory/stock-ledger.js';
import type { Health } from '../lifecycle/health.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { JobService } from '../ops/job-service.js';
import type { Store } from '../store/store.js';
import type { SyncService } from '../sync/sync-service.js';

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
  /** Remote operations, while the ops service runs. */
  jobs(): Pick<JobService, 'submit' | 'get' | 'list' | 'cancel'> | undefined;
  sync(): SyncService | undefined;
  cycleCounts(): Pick<InventoryService, 'startCycleCount' | 'cycleView' | 'cycleCounts'> | undefined;
}
