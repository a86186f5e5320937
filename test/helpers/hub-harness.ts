/**
 * Starts a real Hub in process on ephemeral loopback ports with its data in a test directory,
 * and gives tests what they need to reach it: MQTT url, API base url, a logger that collects lines.
 */
import { Writable } from 'node:stream';
import { Value } from '@sinclair/typebox/value';
import { ConfigSchema, type HubConfig } from '../../hub/config/schema.js';
import { Hub } from '../../hub/hub.js';
import { createLogger } from '../../hub/observability/logger.js';
import type { DriverFactory } from '../../hub/sdk/driver.js';

export interface Harness {
  hub: Hub;
  config: HubConfig;
  mqttUrl: string;
  apiUrl: string;
  logs: Record<string, unknown>[];
  stop(): Promise<void>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function testConfig(dataDir: string, overrides: DeepPartial<HubConfig> = {}): HubConfig {
  const raw = {
    version: 1,
    store: { id: 'test-store' },
    dataDir,
    api: { host: '127.0.0.1', port: 0 },
    broker: { host: '127.0.0.1', port: 0 },
    ...overrides,
    log: { level: 'debug', ...(overrides.log ?? {}) },
  } as Record<string, unknown>;
  if (overrides.broker) raw.broker = { host: '127.0.0.1', port: 0, ...overrides.broker };
  if (overrides.api) raw.api = { host: '127.0.0.1', port: 0, ...overrides.api };
  const config = Value.Default(ConfigSchema, raw) as HubConfig;
  if (!Value.Check(ConfigSchema, config)) throw new Error(`bad test config: ${JSON.stringify([...Value.Errors(ConfigSchema, config)].slice(0, 3))}`);
  return config;
}

export async function startHub(dataDir: string, overrides: DeepPartial<HubConfig> = {}, factories?: ReadonlyMap<string, DriverFactory>): Promise<Harness> {
  const config = testConfig(dataDir, overrides);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const log = createLogger({ level: config.log.level, pretty: false, destination: sink });
  const hub = new Hub(config, { log, ...(factories ? { factories } : {}) });
  await hub.start();
  const tcp = hub.broker?.addresses.tcp ?? '';
  return {
    hub,
    config,
    mqttUrl: `mqtt://${tcp}`,
    apiUrl: hub.api?.address ?? '',
    logs,
    stop: () => hub.stop(),
  };
}

/** Reads one counter or gauge value (with optional labels) from the hub's registry. */
export async function metricValue(hub: Hub, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await hub.metrics.registry.getSingleMetric(name)?.get();
  if (!metric) throw new Error(`no metric ${name}`);
  const match = metric.values.filter((v) => Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val));
  return match.reduce((sum, v) => sum + v.value, 0);
}
