/**
 * The composition root: builds every service from the config and runs them in dependency order
 * (store -> broker -> maintenance -> api). Nothing here does I/O until start().
 */
import { DRIVER_FACTORIES } from '../drivers/index.js';
import { ApiService } from './api/api-service.js';
import { BrokerService } from './broker/broker.js';
import type { DriverFactory } from './sdk/driver.js';
import type { HubConfig } from './config/schema.js';
import { DeviceService } from './devices/device-service.js';
import { EventBus } from './devices/event-bus.js';
import { InventoryService } from './inventory/inventory-service.js';
import { SimulationService } from './simulation/simulation-service.js';
import { Health } from './lifecycle/health.js';
import { Lifecycle, type Service } from './lifecycle/lifecycle.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type HubMetrics } from './observability/metrics.js';
import { VERSION } from './package-info.js';
import { StoreMaintenance } from './store/maintenance.js';
import { Store } from './store/store.js';

export const STOP_TIMEOUT_MS = 10_000;

export interface HubOptions {
  log: Logger;
  /** Called once the API listens (the hub is serving). */
  onReady?: () => void;
  /** Device classes by kind; defaults to everything in drivers/. */
  factories?: ReadonlyMap<string, DriverFactory>;
}

export class Hub {
  readonly health = new Health();
  readonly metrics: HubMetrics = createMetrics();
  store: Store | undefined;
  broker: BrokerService | undefined;
  api: ApiService | undefined;
  devices: DeviceService | undefined;
  inventory: InventoryService | undefined;
  readonly bus: EventBus;
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;

  constructor(
    readonly config: HubConfig,
    private readonly options: HubOptions,
  ) {
    this.log = options.log;
    this.lifecycle = new Lifecycle(options.log);
    this.bus = new EventBus((err, event, owner) => this.log.error({ err, event, owner }, 'bus listener failed'));
  }

  async start(): Promise<void> {
    const startedAt = Date.now();
    const { config, log, metrics, health } = this;
    const services: Service[] = [
      {
        name: 'store',
        start: async () => {
          const store = new Store({ dataDir: config.dataDir, synchronous: config.database.synchronous, maxBytes: config.database.maxBytes });
          this.store = store;
          metrics.storeSalvaged.set(store.corruption ? 1 : 0);
          if (store.corruption) {
            const { reason, damagedFile, salvage } = store.corruption;
            log.error(
              { code: 'HUB_ERR_STORE_CORRUPT', reason, damagedFile, salvage },
              'DATABASE WAS CORRUPT: salvaged what could be read into a fresh database; the damaged file is kept aside',
            );
          }
          if (store.migrationsApplied.length > 0) log.info({ applied: store.migrationsApplied }, 'database migrated');
          health.register('store', () => {
            if (!store.db.open) return { ok: false, detail: 'database closed' };
            const budget = store.budget.current;
            return budget.exceeded ? { ok: false, detail: budget.reason ?? 'disk budget reached' } : { ok: true };
          });
          metrics.serviceUp.set({ service: 'store' }, 1);
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'store' }, 0);
          this.store?.close();
        },
      },
      {
        name: 'broker',
        start: async () => {
          const store = this.store as Store;
          const broker = new BrokerService({ config: config.broker, store, metrics, log: log.child({ service: 'broker' }) });
          this.broker = broker;
          await broker.start();
          health.register('broker', () => ({ ok: true, detail: `${broker.clientCount} clients` }));
          metrics.serviceUp.set({ service: 'broker' }, 1);
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'broker' }, 0);
          await this.broker?.stop();
        },
      },
      new StoreMaintenance(() => this.store as Store, config.database, metrics, log),
      ...(config.simulation.enabled
        ? [
            new SimulationService({
              devices: config.devices,
              credentials: () => (this.store as Store).credentials,
              brokerUrl: () => `mqtt://${(this.broker as BrokerService).addresses.tcp}`,
              log: log.child({ service: 'simulation' }),
            }),
          ]
        : []),
      // inventory subscribes to the bus before any driver starts, so no early reading is missed
      {
        name: 'inventory',
        start: async () => {
          this.inventory = new InventoryService({
            store: () => this.store as Store,
            events: () => this.devices?.events,
            devices: config.devices,
            bus: this.bus,
            log: log.child({ service: 'inventory' }),
            readLatency: (seconds) => metrics.rfidReadToEvent.observe(seconds),
          });
          await this.inventory.start();
        },
        stop: async () => {
          await this.inventory?.stop();
        },
      },
      {
        name: 'devices',
        start: async () => {
          this.devices = new DeviceService({
            devices: config.devices,
            factories: this.options.factories ?? DRIVER_FACTORIES,
            store: this.store as Store,
            broker: () => this.broker as BrokerService,
            bus: this.bus,
            metrics,
            log: log.child({ service: 'devices' }),
          });
          await this.devices.start();
        },
        stop: async () => {
          await this.devices?.stop();
        },
      },
      {
        name: 'api',
        start: async () => {
          const api = new ApiService(
            {
              config,
              store: this.store as Store,
              health,
              metrics,
              version: VERSION,
              startedAt,
              brokerClients: () => this.broker?.clientCount ?? 0,
              devices: () => this.devices && { registry: this.devices.registry, events: this.devices.events },
              ledger: () => this.inventory?.ledger,
            },
            log,
          );
          this.api = api;
          await api.start();
          metrics.serviceUp.set({ service: 'api' }, 1);
          this.options.onReady?.();
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'api' }, 0);
          await this.api?.stop();
        },
      },
    ];
    await this.lifecycle.start(services);
    log.info({ store: config.store.id, version: VERSION, ms: Date.now() - startedAt }, 'storehub ready');
  }

  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    await this.lifecycle.stop(timeoutMs);
    this.log.info('storehub stopped');
  }
}
