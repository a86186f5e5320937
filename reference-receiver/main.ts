#!/usr/bin/env node
/**
 * Command line of the reference receiver: one SQLite ledger, fed by an HTTP(S) server (the OMS adapter's
 * uplink), an MQTT consumer (the cloud link's), or both. See reference-receiver/README.md.
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { ReceiverHttpServer } from './http-server.js';
import { LedgerStore, type Synchronous } from './ledger-store.js';
import { MqttConsumer } from './mqtt-consumer.js';

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('not a port number');
  return n;
};

const program = new Command('storehub-reference-receiver')
  .description('Reference cloud receiver for storehub batches (docs/cloud-protocol.md)')
  .requiredOption('--db <file>', 'SQLite ledger file')
  .option('--https-port <n>', 'serve HTTPS on this port (needs --cert and --key)', port)
  .option('--cert <file>', 'PEM certificate for HTTPS')
  .option('--key <file>', 'PEM private key for HTTPS')
  .option('--http-port <n>', 'serve plain HTTP on this port', port)
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .option('--token <token>', 'bearer token every /v1 request must carry (default: $RECEIVER_TOKEN; none: no check)')
  .option('--mqtt <url>', 'consume batches from this MQTT broker')
  .option('--mqtt-root <root>', 'topic root of the hubs', 'storehub/v1')
  .option('--mqtt-client-id <id>', 'client id of the persistent session', 'storehub-reference-receiver')
  .option('--mqtt-ca <file>', 'CA to verify an mqtts:// broker')
  .option('--mqtt-cert <file>', 'client certificate for the broker')
  .option('--mqtt-key <file>', 'client key for the broker')
  .option('--synchronous <level>', 'SQLite synchronous pragma: FULL (durable acks) or NORMAL', 'FULL')
  .option('--log-level <level>', 'pino log level', 'info');

program.parse();
const opts = program.opts<{
  db: string;
  httpsPort?: number;
  cert?: string;
  key?: string;
  httpPort?: number;
  host: string;
  token?: string;
  mqtt?: string;
  mqttRoot: string;
  mqttClientId: string;
  mqttCa?: string;
  mqttCert?: string;
  mqttKey?: string;
  synchronous: string;
  logLevel: string;
}>();

const log = pino({ name: 'reference-receiver', level: opts.logLevel });

function fail(message: string): never {
  log.error(message);
  process.exit(2);
}

if (opts.httpsPort !== undefined && (!opts.cert || !opts.key)) fail('--https-port needs --cert and --key');
if (opts.httpsPort !== undefined && opts.httpPort !== undefined) fail('use either --https-port or --http-port');
if (opts.httpsPort === undefined && opts.httpPort === undefined && !opts.mqtt) fail('nothing to do: give --https-port, --http-port or --mqtt');
const synchronous = opts.synchronous.toUpperCase();
if (!['OFF', 'NORMAL', 'FULL', 'EXTRA'].includes(synchronous)) fail('--synchronous must be OFF, NORMAL, FULL or EXTRA');

const store = new LedgerStore({ file: opts.db, synchronous: synchronous as Synchronous });
const token = opts.token ?? process.env.RECEIVER_TOKEN;
let http: ReceiverHttpServer | undefined;
let consumer: MqttConsumer | undefined;

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Stop taking input first, then close the database: every answer already given is committed.
  await Promise.allSettled([http?.close(), consumer?.stop()]);
  store.close();
  log.info('receiver stopped');
  process.exit(code);
}

process.once('SIGTERM', () => void shutdown(0));
process.once('SIGINT', () => void shutdown(0));

try {
  if (opts.httpsPort !== undefined || opts.httpPort !== undefined) {
    http = new ReceiverHttpServer({
      store,
      host: opts.host,
      port: opts.httpsPort ?? opts.httpPort,
      ...(opts.httpsPort !== undefined ? { https: { cert: readFileSync(opts.cert!), key: readFileSync(opts.key!) } } : {}),
      ...(token ? { token } : {}),
      logger: log.child({ part: 'http' }),
    });
    log.info({ url: await http.listen(), auth: token ? 'bearer' : 'none' }, 'receiver listening');
  }
  if (opts.mqtt) {
    consumer = new MqttConsumer({
      url: opts.mqtt,
      store,
      root: opts.mqttRoot,
      clientId: opts.mqttClientId,
      mqtt: {
        ...(opts.mqttCa ? { ca: readFileSync(opts.mqttCa) } : {}),
        ...(opts.mqttCert ? { cert: readFileSync(opts.mqttCert) } : {}),
        ...(opts.mqttKey ? { key: readFileSync(opts.mqttKey) } : {}),
      },
      logger: log.child({ part: 'mqtt' }),
    });
    await consumer.start();
    log.info({ url: opts.mqtt, root: opts.mqttRoot }, 'mqtt consumer subscribed');
  }
} catch (err) {
  log.error({ err }, 'receiver failed to start');
  await shutdown(1);
}
