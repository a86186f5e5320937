/**
 * The `debug` that mqtt-packet and mqtt.js load hands out a shared no-op for namespaces nobody
 * enabled (quiet-debug.ts), and the real logger for those enabled with DEBUG at start.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import t from 'tap';
import { quietDebug } from '../hub/observability/quiet-debug.js';

const require = createRequire(import.meta.url);

interface Logger {
  (...args: unknown[]): void;
  enabled: boolean;
  namespace: string;
  extend(ns: string): Logger;
}

t.test('a namespace nobody enabled gets one shared no-op', async (t) => {
  quietDebug(); // idempotent: already done when the module was imported
  const createDebug = require(createRequire(require.resolve('mqtt-packet')).resolve('debug')) as (ns: string) => Logger;
  const a = createDebug('mqtt-packet:parser');
  t.equal(a.enabled, false);
  t.equal(a.namespace, 'mqtt-packet:parser');
  t.equal(createDebug('mqtt-packet:parser'), a, 'the same function every time: nothing to collect per call');
  t.equal(a.extend('x').namespace, 'mqtt-packet:parser:x');
  t.equal(a('%o', { any: 'thing' }), undefined);
});

const PARSE_ONE_PACKET = `
import '${new URL('../hub/observability/quiet-debug.ts', import.meta.url).href}';
import { createRequire } from 'node:module';
const mqtt = createRequire(import.meta.url)('mqtt-packet');
const parser = mqtt.parser();
parser.on('packet', (p) => process.stdout.write(p.cmd));
parser.parse(mqtt.generate({ cmd: 'publish', topic: 'devices/d1/x', payload: 'hi', qos: 0 }));
`;

function parseOnePacket(env: NodeJS.ProcessEnv): { stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', PARSE_ONE_PACKET], {
    cwd: new URL('..', import.meta.url).pathname,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { stdout: run.stdout, stderr: run.stderr };
}

t.test('DEBUG at start still prints the parser trace; without it nothing is printed', async (t) => {
  const quiet = parseOnePacket({ DEBUG: '' });
  t.equal(quiet.stdout, 'publish', 'the packet is parsed');
  t.notMatch(quiet.stderr, /mqtt-packet:parser/, 'no trace');
  const traced = parseOnePacket({ DEBUG: 'mqtt-packet:*' });
  t.equal(traced.stdout, 'publish');
  t.match(traced.stderr, /mqtt-packet:parser/, 'the enabled namespace traces');
});
