/**
 * The devices service: one supervised driver per configured device, the registry, the event log,
 * and the bus the rest of the hub listens to. Device classes come from drivers/ (DriverFactory per
 * kind), injected by the composition root; a device whose kind has no driver is registered and
 * stays offline with that reason.
 */
import type { BrokerService } from '../broker/broker.js';
import type { DeviceConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { HubMetrics } from '../observability/metrics.js';
import { HubError } from '../sdk/errors.js';
import type { DeviceHealth, DriverDevice, DriverFactory } from '../sdk/driver.js';
import type { Transport } from '../sdk/transport.js';
import type { Store } from '../store/store.js';
import type { Outbox } from '../sync/outbox.js';
import type { EventBus } from './event-bus.js';
import { DeviceEventLog } from './event-log.js';
import { DeviceRegistry } from './registry.js';
import { DriverSupervisor } from './supervisor.js';
import { BrokerTransport } from './transports/broker-transport.js';
import { HidLine } from './transports/hid-line.js';
import type { HttpStreamLine } from './transports/http-stream-line.js';
import type { SerialLine } from './transports/serial-line.js';

const SEEN_FLUSH_MS = 5_000;

export interface DeviceServiceDeps {
  devices: DeviceConfig[];
  factories: ReadonlyMap<string, DriverFactory>;
  store: Store;
  broker: () => BrokerService;
  bus: EventBus;
  metrics: HubMetrics;
  log: Logger;
  /** Where device events also go for the cloud. */
  outbox?: Outbox;
}

/** Checks every device's options against its driver; one line per problem, naming the device. */
export function validateDevices(devices: DeviceConfig[], factories: ReadonlyMap<string, DriverFactory>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  devices.forEach((d, i) => {
    if (seen.has(d.id)) problems.push(`devices[${i}].id: duplicate device id ${d.id}`);
    seen.add(d.id);
    if (d.transport.type === 'http-stream' && d.transport.password !== undefined && d.transport.username === undefined)
      problems.push(`devices[${i}].transport.username: is required with a password (HTTP basic auth)`);
    const factory = factories.get(d.kind);
    if (!factory) return;
    const accepted: readonly string[] = typeof factory.transport === 'string' ? [factory.transport] : factory.transport;
    if (!accepted.includes(d.transport.type)) problems.push(`devices[${i}].transport.type: ${d.kind} needs ${accepted.join(' or ')}, not ${d.transport.type}`);
    for (const p of factory.validate(driverDevice(d))) problems.push(`devices[${i}].options: ${p}`);
  });
  return problems;
}

/** What a driver sees of its device's config (the transport's settings stay with the transport). */
function driverDevice(d: DeviceConfig): DriverDevice {
  return { id: d.id, kind: d.kind, options: d.options, transportType: d.transport.type, ...(d.model ? { model: d.model } : {}) };
}

export class DeviceService {
  readonly name = 'devices';
  registry: DeviceRegistry | undefined;
  events: DeviceEventLog | undefined;
  private readonly supervisors = new Map<string, DriverSupervisor>();
  private timer: NodeJS.Timeout | undefined;
  private readonly lines: { serial?: typeof SerialLine; httpStream?: typeof HttpStreamLine } = {};

  constructor(private readonly deps: DeviceServiceDeps) {}

  async start(): Promise<void> {
    const { devices, factories, store, bus, metrics, log } = this.deps;
    const problems = validateDevices(devices, factories);
    if (problems.length > 0)
      throw new HubError('HUB_ERR_CONFIG_INVALID', `device configuration has ${problems.length} problem(s):\n${problems.join('\n')}`, {
        context: { problems },
      });
    await this.loadTransports(devices);
    const registry = new DeviceRegistry(store.db);
    const events = new DeviceEventLog(store.db, (err) => log.error({ err }, 'device events not written yet; will retry'), this.deps.outbox);
    this.registry = registry;
    this.events = events;
    const setHealth = (deviceId: string, health: DeviceHealth) => {
      const previous = registry.setHealth(deviceId, health);
      if (!previous) return;
      const time = Date.now();
      events.append('device.health', deviceId, time, { ...health, previous });
      bus.emit('device.health', { deviceId, health, previous, time });
      metrics.deviceAvailability.set({ device: deviceId, availability: previous.availability }, 0);
      metrics.deviceAvailability.set({ device: deviceId, availability: health.availability }, 1);
      log.info({ deviceId, ...health, was: previous.availability }, 'device health changed');
    };
    for (const d of devices) {
      registry.register(d.id, d.kind, d.model);
      if (d.transport.type === 'http-stream' && d.transport.password !== undefined && d.transport.url.startsWith('http://'))
        log.warn({ deviceId: d.id }, 'the device password crosses the network in clear text (http://): use https:// outside a lab');
      const factory = factories.get(d.kind);
      if (!factory) {
        setHealth(d.id, { availability: 'offline', reason: `no driver for kind ${d.kind}` });
        continue;
      }
      const supervisor = new DriverSupervisor({
        factory,
        device: driverDevice(d),
        makeTransport: () => this.makeTransport(d),
        closeTransport: async (t) => {
          if (t instanceof BrokerTransport) t.close();
          else if (t.type !== 'mqtt') await t.close();
        },
        log,
        hooks: {
          emit: (event) => {
            registry.seen(event.deviceId);
            if (event.type === 'device.condition') events.append(`device.${event.condition}`, event.deviceId, event.time, event.detail ?? {});
            else if (event.type === 'shelf.weight') events.append('shelf.weight', event.deviceId, event.time, event);
            metrics.deviceEvents.inc({ type: event.type });
            bus.emit('device.event', event);
          },
          seen: (id) => registry.seen(id),
          setHealth,
          setInfo: (id, info) => registry.setInfo(id, info),
          reject: (id, reason, detail) => {
            registry.countReject(id, reason);
            metrics.deviceRejected.inc({ device: id, reason });
            log.debug({ deviceId: id, reason, detail }, 'device input rejected');
          },
          restarted: (id) => metrics.deviceRestarts.inc({ device: id }),
        },
      });
      this.supervisors.set(d.id, supervisor);
      supervisor.start();
    }
    this.timer = setInterval(() => {
      try {
        registry.flushSeen();
      } catch (err) {
        log.warn({ err }, 'last-seen times not written; will retry');
      }
      events.flush();
    }, SEEN_FLUSH_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.supervisors.values()].map((s) => s.stop()));
    this.supervisors.clear();
    this.registry?.flushSeen();
    this.events?.flush();
  }

  supervisor(deviceId: string): DriverSupervisor | undefined {
    return this.supervisors.get(deviceId);
  }

  /**
   * Loads the serial and HTTP transports (serialport, undici) only when a configured device uses
   * them: a hub whose devices all speak MQTT does not carry their memory.
   */
  private async loadTransports(devices: readonly DeviceConfig[]): Promise<void> {
    const types = new Set(devices.map((d) => d.transport.type));
    if (types.has('serial')) this.lines.serial = (await import('./transports/serial-line.js')).SerialLine;
    if (types.has('http-stream')) this.lines.httpStream = (await import('./transports/http-stream-line.js')).HttpStreamLine;
  }

  private makeTransport(d: DeviceConfig): Transport {
    switch (d.transport.type) {
      case 'mqtt':
        return new BrokerTransport(this.deps.broker());
      case 'serial':
        return new (this.lines.serial as typeof SerialLine)(d.transport);
      case 'hid':
        return new HidLine(d.transport);
      case 'http-stream':
        return new (this.lines.httpStream as typeof HttpStreamLine)(d.transport);
    }
  }
}
