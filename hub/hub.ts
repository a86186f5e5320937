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
import { Health } from './lifecycle/health.js';
import { lazyService } from './lifecycle/lazy-service.js';
import { Lifecycle, type Service } from './lifecycle/lifecycle.js';
import { deviceServiceCommander } from './ops/device-commander.js';
import { JobService } from './ops/job-service.js';
import type { Logger } from './observability/logger.js';
import { createMetrics, type HubMetrics } from './observability/metrics.js';
import { VERSION } from './package-info.js';
import { StoreMaintenance } from './store/maintenance.js';
import { Store } from './store/store.js';
import { Outbox } from './sync/outbox.js';
import { jobDownlink, publishJobStatus } from './sync/job-downlink.js';
import { SyncService } from './sync/sync-service.js';

export const STOP_TIMEOUT_MS = 10_000;

export interface HubOptions {
  log: Logger;
  /** Called once the API listens (the hub is serving). */
  onReady?: () => void;
  /**
   * Called when the hub cannot go on safely and must exit (a failed WAL sync: the database is
   * recovered from the disk at restart). `storehub start` exits 1; the hub has logged it as fatal.
   */
  onFatal?: (err: Error) => void;
  /** Called before a start step that may take long (a salvage), with how long it may take. */
  onSlowStep?: (what: string, mayTakeMs: number) => void;
  /** Device classes by kind; defaults to everything in drivers/. */
  factories?: ReadonlyMap<string, DriverFactory>;
}

/** Start-up time asked of systemd for a salvage: reading a damaged multi-GB file page by page. */
const SALVAGE_MAY_TAKE_MS = 60 * 60_000;

export class Hub {
  readonly health = new Health();
  readonly metrics: HubMetrics = createMetrics();
  store: Store | undefined;
  broker: BrokerService | undefined;
  api: ApiService | undefined;
  devices: DeviceService | undefined;
  inventory: InventoryService | undefined;
  ops: JobService | undefined;
  outbox: Outbox | undefined;
  sync: SyncService | undefined;
  private stopJobStatus: (() => void) | undefined;
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
          const store = new Store({
            dataDir: config.dataDir,
            synchronous: config.database.synchronous,
            maxBytes: config.database.maxBytes,
            onSalvage: (reason) => {
              log.warn({ reason }, 'database is corrupt: salvaging what can be read (this can take minutes)');
              this.options.onSlowStep?.('salvaging a corrupt database', SALVAGE_MAY_TAKE_MS);
            },
          });
          this.store = store;
          this.outbox = new Outbox(store.db, { hubId: config.hubId ?? store.hubId, storeId: config.store.id, epoch: store.epoch });
          metrics.storeSalvaged.set(store.corruption ? 1 : 0);
          if (store.corruption) {
            const { reason, damagedFile, salvage } = store.corruption;
            log.error(
              { code: 'HUB_ERR_STORE_CORRUPT', reason, damagedFile, salvage },
              'DATABASE WAS CORRUPT: salvaged what could be read into a fresh database; the damaged file is kept aside',
            );
          }
          if (store.migrationsApplied.length > 0) log.info({ applied: store.migrationsApplied }, 'database migrated');
          store.journal.onSyncFailure = (err) => {
            log.fatal({ err, code: err.code }, 'WAL sync failed: device messages are refused; exiting so the database is recovered from the disk');
            this.options.onFatal?.(err);
          };
          health.register('store', () => {
            if (!store.db.open) return { ok: false, detail: 'database closed' };
            if (store.journal.stopped) return { ok: false, detail: store.journal.stopped.message };
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
          health.register('broker', () => broker.health());
          metrics.serviceUp.set({ service: 'broker' }, 1);
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'broker' }, 0);
          await this.broker?.stop();
        },
      },
      new StoreMaintenance(() => this.store as Store, config.database, metrics, log),
      ...(config.simulation.enabled && config.simulation.cloudReceiver
        ? [
            lazyService('demo-receiver', async () => {
              const { DemoReceiverService } = await import('./simulation/demo-receiver.js');
              return new DemoReceiverService(config, log.child({ service: 'demo-receiver' }));
            }),
          ]
        : []),
      ...(config.simulation.enabled
        ? [
            lazyService('simulation', async () => {
              const { SimulationService } = await import('./simulation/simulation-service.js');
              return new SimulationService({
                devices: config.devices,
                credentials: () => (this.store as Store).credentials,
                brokerUrl: () => `mqtt://${(this.broker as BrokerService).addresses.tcp}`,
                log: log.child({ service: 'simulation' }),
              });
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
            outbox: () => this.outbox,
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
            ...(this.outbox ? { outbox: this.outbox } : {}),
          });
          await this.devices.start();
        },
        stop: async () => {
          await this.devices?.stop();
        },
      },
      // remote operations reach devices only through the devices service, so they start after it
      {
        name: 'ops',
        start: async () => {
          const ops = new JobService({
            db: (this.store as Store).db,
            commander: deviceServiceCommander(() => this.devices),
            config: config.ops,
            metrics,
            log: log.child({ service: 'ops' }),
          });
          this.ops = ops;
          await ops.start();
          metrics.serviceUp.set({ service: 'ops' }, 1);
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'ops' }, 0);
          await this.ops?.stop();
        },
      },
      {
        name: 'sync',
        start: async () => {
          const sync = new SyncService({
            config,
            outbox: this.outbox as Outbox,
            log: log.child({ service: 'sync' }),
            metrics,
            version: VERSION,
            startedAt,
            health: () => {
              const report = health.report();
              return {
                ready: report.ready,
                failing: Object.entries(report.checks)
                  .filter(([, c]) => !c.ok)
                  .map(([name]) => name),
              };
            },
            jobs: () => this.ops && jobDownlink(this.ops, (topic, reason) => this.sync?.rejectDownlink(topic, reason)),
            telemetrySample: () => {
              const devices = this.devices?.registry?.list() ?? [];
              const by = (a: string) => devices.filter((d) => d.availability === a).length;
              return {
                devices: { online: by('online'), degraded: by('degraded'), offline: by('offline') },
                unhealthy: devices.filter((d) => d.availability !== 'online').map((d) => ({ id: d.id, availability: d.availability, reason: d.reason })),
              };
            },
          });
          this.sync = sync;
          await sync.start();
          const link = sync.link;
          if (link && this.ops) this.stopJobStatus = publishJobStatus(this.ops, link);
          health.register('sync', () => {
            // /healthz needs no token: it names the held stream, and the peer's refusal text (which
            // may carry HQ's internals) stays behind the read scope in /api/v1/sync.
            const held = sync.status().flatMap((s) => s.sinks.filter((k) => k.held).map((k) => `${s.stream} held by ${k.sink} (details: /api/v1/sync)`));
            // A held stream is degraded service, not a reason to stop serving the store: report it, stay ready.
            return {
              ok: true,
              detail: held.length > 0 ? held.join('; ') : sync.link ? (sync.link.connected ? 'cloud connected' : 'cloud disconnected') : 'no cloud link',
            };
          });
        },
        stop: async () => {
          this.stopJobStatus?.();
          await this.sync?.stop();
        },
      },
      // Stopped first of the device-facing services: the broker stops taking connections and
      // messages while drivers, inventory and sync still run, so what the last acknowledged
      // messages carry still becomes events and ledger entries before those services stop.
      {
        name: 'intake',
        start: async () => {},
        stop: async () => {
          await this.broker?.closeIntake();
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
              jobs: () => this.ops,
              sync: () => this.sync,
              cycleCounts: () => this.inventory,
            },
            log,
          );
          this.api = api;
          await api.start();
          metrics.serviceUp.set({ service: 'api' }, 1);
          // a SIGTERM that came while the API was starting: READY=1 after STOPPING=1 would be a lie
          if (!this.lifecycle.stopping) this.options.onReady?.();
        },
        stop: async () => {
          metrics.serviceUp.set({ service: 'api' }, 0);
          await this.api?.stop();
        },
      },
    ];
    await this.lifecycle.start(services);
    if (!this.lifecycle.stopping) log.info({ store: config.store.id, version: VERSION, ms: Date.now() - startedAt }, 'storehub ready');
  }

  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    await this.lifecycle.stop(timeoutMs);
    this.log.info('storehub stopped');
  }
}
