/**
 * Imported before any MQTT module. mqtt-packet (aedes' parser and writer, and mqtt.js') calls the
 * `debug` package dozens of times per packet. A disabled `debug` logger still collects its
 * arguments into a fresh array and checks its namespace on every call: at full ingest that was
 * 3% of the hub's CPU and a share of its garbage, about a tenth of its durable rate.
 *
 * So the `debug` these packages load hands out one shared no-op for every namespace that is not
 * enabled when the logger is created, and the real logger for the others: `DEBUG=mqtt-packet:*`
 * in the environment still prints their lines. Enabling a namespace later, from code, does not
 * reach loggers already created (nothing in the hub does that).
 */
import { createRequire } from 'node:module';

interface DebugLogger {
  (...args: unknown[]): void;
  enabled: boolean;
  namespace: string;
  extend(namespace: string, delimiter?: string): DebugLogger;
}

interface CreateDebug {
  (namespace: string): DebugLogger;
  enabled(namespace: string): boolean;
  default?: unknown;
}

/** The packages whose `debug` is made quiet: the MQTT parser and writer and the MQTT client. */
const CONSUMERS = ['mqtt-packet', 'mqtt'];

const QUIETED = Symbol.for('storehub.quietDebug');

/** `createDebug` that returns one shared no-op per namespace not enabled at creation. */
function quieted(createDebug: CreateDebug): CreateDebug {
  const noops = new Map<string, DebugLogger>();
  const create = (namespace: string): DebugLogger => {
    if (createDebug.enabled(namespace)) return createDebug(namespace);
    let logger = noops.get(namespace);
    if (!logger) {
      logger = (() => {}) as DebugLogger;
      logger.enabled = false;
      logger.namespace = namespace;
      logger.extend = (sub, delimiter = ':') => create(`${namespace}${delimiter}${sub}`);
      noops.set(namespace, logger);
    }
    return logger;
  };
  const quiet = Object.assign(create, createDebug, { [QUIETED]: true });
  quiet.default = quiet;
  return quiet;
}

/** Replaces, in Node's module cache, the `debug` each consumer resolves. Returns the files replaced. */
export function quietDebug(): string[] {
  const require = createRequire(import.meta.url);
  const replaced: string[] = [];
  for (const consumer of CONSUMERS) {
    let file: string;
    try {
      file = createRequire(require.resolve(consumer)).resolve('debug');
    } catch {
      continue; // not installed, or no longer uses debug
    }
    const createDebug = require(file) as CreateDebug & { [QUIETED]?: true };
    const cached = require.cache[file];
    if (createDebug[QUIETED] || !cached) continue;
    cached.exports = quieted(createDebug);
    replaced.push(file);
  }
  return replaced;
}

quietDebug();
