/**
 * The Lifecycle on its own: dependency order, reverse stop, one deadline, stop during start.
 * (test/lifecycle.test.ts runs the whole hub process under signals.)
 */
import { Writable } from 'node:stream';
import t from 'tap';
import { Lifecycle, type Service } from '../hub/lifecycle/lifecycle.js';
import { createLogger } from '../hub/observability/logger.js';

function rig() {
  const events: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const lifecycle = new Lifecycle(createLogger({ level: 'debug', pretty: false, destination: sink }));
  const service = (name: string, behaviour: { start?: () => Promise<void>; stop?: () => Promise<void> } = {}): Service => ({
    name,
    async start() {
      events.push(`start ${name}`);
      await behaviour.start?.();
    },
    async stop() {
      events.push(`stop ${name}`);
      await behaviour.stop?.();
    },
  });
  return { events, lines, lifecycle, service };
}

const never = () => new Promise<void>(() => {});

t.test('services start in order and stop in reverse', async (t) => {
  const { events, lifecycle, service } = rig();
  await lifecycle.start([service('store'), service('broker'), service('api')]);
  await lifecycle.stop(1000);
  t.same(events, ['start store', 'start broker', 'start api', 'stop api', 'stop broker', 'stop store']);
});

t.test('a service that fails to stop is logged, the others still stop, and stop() rejects', async (t) => {
  const { events, lines, lifecycle, service } = rig();
  await lifecycle.start([service('store'), service('broker', { stop: () => Promise.reject(new Error('socket stuck')) }), service('api')]);
  await t.rejects(lifecycle.stop(1000), { message: /1 service\(s\) failed to stop cleanly: socket stuck/ }, 'stop rejects, so the process does not exit 0');
  t.same(events.slice(3), ['stop api', 'stop broker', 'stop store'], 'after stopping every service');
  const line = lines.find((l) => l.service === 'broker' && l.level === 50);
  t.match(line, { msg: 'service failed to stop cleanly', err: { message: 'socket stuck' } });
  t.ok(lifecycle.stopping, 'and says it is stopping');
});

t.test('a stop that hangs is cut off by the deadline with a coded error', async (t) => {
  const { lifecycle, service } = rig();
  await lifecycle.start([service('store'), service('drivers', { stop: never })]);
  await t.rejects(lifecycle.stop(100), { code: 'HUB_ERR_LIFECYCLE_TIMEOUT' });
});

t.test('a failed start leaves what did start stoppable', async (t) => {
  const { events, lifecycle, service } = rig();
  await t.rejects(lifecycle.start([service('store'), service('broker', { start: () => Promise.reject(new Error('port in use')) }), service('api')]), {
    message: 'port in use',
  });
  await lifecycle.stop(1000);
  t.same(events, ['start store', 'start broker', 'stop store'], 'api never started; broker never finished starting');
});

t.test('stop during start waits for the step in progress, skips the rest, stops what started', async (t) => {
  const { events, lifecycle, service } = rig();
  let release!: () => void;
  const slow = new Promise<void>((resolve) => (release = resolve));
  const starting = lifecycle.start([service('store'), service('broker', { start: () => slow }), service('api')]);
  await new Promise((r) => setImmediate(r));
  const stopping = lifecycle.stop(1000);
  await new Promise((r) => setTimeout(r, 20));
  t.same(events, ['start store', 'start broker'], 'nothing stops while broker is starting');
  release();
  await starting;
  await stopping;
  t.same(events, ['start store', 'start broker', 'stop broker', 'stop store']);
});

t.test('a start that hangs cannot hang stop: the deadline covers it', async (t) => {
  const { lifecycle, service } = rig();
  void lifecycle.start([service('store'), service('camera', { start: never })]);
  await new Promise((r) => setImmediate(r));
  await t.rejects(lifecycle.stop(100), { code: 'HUB_ERR_LIFECYCLE_TIMEOUT' });
});
