/**
 * SdNotify against a real unix datagram socket standing in for systemd's notify socket.
 * Timing assertions are lower bounds taken on the sender's side (a slow machine only makes the
 * measured gaps longer), plus order and presence of datagrams at the receiver.
 */

import { symlinkSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { parseNotifySocket, SdNotify, type SdNotifyLogger, type UnixDgramModule, type UnixDgramSocket } from '../hub/lifecycle/sd-notify.js';
import type { Logger } from '../hub/observability/logger.js';

const dgram = createRequire(import.meta.url)('unix-dgram') as UnixDgramModule;

// A pino Logger must be usable as the SdNotify logger (checked by tsc).
const pinoFits: (l: Logger) => SdNotifyLogger = (l) => l;
void pinoFits;

interface Datagram {
  text: string;
  at: number;
}

interface Warning {
  obj: Record<string, unknown>;
  msg: string;
}

function recordingLogger(): SdNotifyLogger & { warnings: Warning[] } {
  const warnings: Warning[] = [];
  return {
    warnings,
    warn(obj, msg) {
      warnings.push({ obj: obj as Record<string, unknown>, msg });
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let links = 0;

/**
 * A socket path inside tt.testdir(). sun_path holds at most 107 bytes and tap's fixture directories
 * are long, so the path goes through a short symlink in the temp directory.
 */
function socketPath(tt: Test): string {
  const link = join(tmpdir(), `storehub-sdn-${process.pid}-${links++}`);
  symlinkSync(tt.testdir(), link);
  tt.teardown(() => unlinkSync(link));
  return join(link, 'n.sock');
}

/** Binds a unix datagram socket at `path`, as systemd does for NOTIFY_SOCKET. */
function listen(tt: Test, path: string): Datagram[] {
  const received: Datagram[] = [];
  const server = dgram.createSocket('unix_dgram', (buf) => {
    received.push({ text: buf.toString('utf8'), at: performance.now() });
  });
  // The socket holds a referenced libuv handle: close it even if bind fails.
  tt.teardown(() => server.close());
  let bindError: Error | undefined;
  server.on('error', (err) => {
    bindError = err;
  });
  server.bind(path); // synchronous: 'error' has been emitted by now if it failed
  if (bindError) throw bindError;
  return received;
}

/** unix-dgram, with the time and text of every datagram recorded as it is handed to sendto(2). */
function recordingDgram(sent: Datagram[]): UnixDgramModule {
  return {
    createSocket(type) {
      const sock = dgram.createSocket(type);
      const send = sock.send.bind(sock);
      sock.send = (buf, offset, length, path, callback) => {
        sent.push({ text: buf.toString('utf8', offset, offset + length), at: performance.now() });
        send(buf, offset, length, path, callback);
      };
      return sock;
    },
  };
}

const texts = (list: Datagram[]) => list.map((d) => d.text);

t.test('READY, STATUS and STOPPING arrive at the notify socket', async (tt) => {
  const path = socketPath(tt);
  const received = listen(tt, path);
  const log = recordingLogger();
  const notify = new SdNotify({ NOTIFY_SOCKET: path }, log);
  tt.equal(notify.enabled, true);
  tt.same(notify.socket, { kind: 'path', address: path });

  tt.equal(notify.ready(), true);
  tt.equal(notify.status('line one\nline two'), true);
  tt.equal(notify.ready('listening on 8080'), true);
  tt.equal(notify.stopping(), true);
  tt.equal(notify.stopping('draining'), true);
  await waitFor('five datagrams', () => received.length >= 5);
  tt.same(texts(received), ['READY=1', 'STATUS=line one line two', 'READY=1\nSTATUS=listening on 8080', 'STOPPING=1', 'STOPPING=1\nSTATUS=draining']);

  notify.close();
  notify.close();
  tt.equal(notify.ready(), false, 'nothing is sent after close()');
  tt.equal(notify.startWatchdog(), false, 'no watchdog after close()');
  tt.same(log.warnings, []);
});

t.test('watchdog pings from the event loop, and a stall withholds the next ping', async (tt) => {
  const path = socketPath(tt);
  const received = listen(tt, path);
  const sent: Datagram[] = [];
  const log = recordingLogger();
  const notify = new SdNotify({ NOTIFY_SOCKET: path, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }, log, {
    loadDgram: () => recordingDgram(sent),
  });
  tt.teardown(() => notify.close());

  tt.equal(notify.startWatchdog(), true);
  tt.equal(notify.startWatchdog(), true, 'starting twice is harmless');
  tt.equal(notify.watchdog?.intervalMs, 100, 'pings every WATCHDOG_USEC/2');
  await waitFor('two pings', () => received.filter((d) => d.text === 'WATCHDOG=1').length >= 2);
  tt.same(log.warnings, [], 'no stall, no warning');

  // Block the event loop for longer than the whole watchdog timeout.
  notify.status('block-start');
  const blockStart = performance.now();
  while (performance.now() - blockStart < 500) {
    // busy-wait
  }
  const blockEnd = performance.now();
  notify.status('block-end');

  await waitFor('a ping after the stall', () => {
    const end = received.findIndex((d) => d.text === 'STATUS=block-end');
    return end >= 0 && received.slice(end + 1).some((d) => d.text === 'WATCHDOG=1');
  });

  // At the receiver: nothing between the markers (the pings come from the blocked loop).
  const order = texts(received);
  const start = order.indexOf('STATUS=block-start');
  const end = order.indexOf('STATUS=block-end');
  tt.ok(start >= 2 && end === start + 1, 'no datagram was sent while the loop was blocked', { order });

  // At the sender: the first ping after the stall is held back a full interval, so the gap between
  // pings exceeds WATCHDOG_USEC and systemd's watchdog would fire.
  const sentStart = sent.findIndex((d) => d.text === 'STATUS=block-start');
  const lastBefore = sent
    .slice(0, sentStart)
    .filter((d) => d.text === 'WATCHDOG=1')
    .at(-1);
  const firstAfter = sent.slice(sentStart + 2).find((d) => d.text === 'WATCHDOG=1');
  if (lastBefore === undefined || firstAfter === undefined) throw new Error('pings missing around the stall');
  tt.ok(firstAfter.at - blockEnd >= 100, `first ping after the stall came ${Math.round(firstAfter.at - blockEnd)} ms after it (>= 100)`);
  tt.ok(firstAfter.at - lastBefore.at >= 200, `gap between pings ${Math.round(firstAfter.at - lastBefore.at)} ms (>= 200)`);

  const stats = notify.watchdog;
  tt.ok(stats !== undefined && stats.skipped >= 1, 'the skip is counted');
  tt.ok(
    log.warnings.some((w) => /blocked/.test(w.msg) && (w.obj.blockedMs as number) >= 500),
    'the skip is logged with the stall length',
  );

  // close() stops the pings.
  notify.close();
  const count = sent.length;
  await sleep(400);
  tt.equal(sent.length, count, 'no pings after close()');
});

t.test('without NOTIFY_SOCKET everything is a no-op', async (tt) => {
  for (const env of [{}, { NOTIFY_SOCKET: '' }, { WATCHDOG_USEC: '200000' }]) {
    const log = recordingLogger();
    let loads = 0;
    const notify = new SdNotify(env, log, {
      loadDgram: () => {
        loads += 1;
        return dgram;
      },
    });
    tt.equal(notify.enabled, false);
    tt.equal(notify.socket, undefined);
    tt.equal(notify.ready(), false);
    tt.equal(notify.status('x'), false);
    tt.equal(notify.stopping(), false);
    tt.equal(notify.startWatchdog(), false);
    tt.equal(notify.watchdog, undefined);
    notify.close();
    tt.equal(loads, 0, 'unix-dgram is not even loaded');
    tt.same(log.warnings, []);
  }
  // Defaults: process.env and a console logger.
  tt.equal(new SdNotify().enabled, Boolean(process.env.NOTIFY_SOCKET));
});

t.test('no watchdog unless it is asked for and meant for this process', async (tt) => {
  const path = socketPath(tt);
  const received = listen(tt, path);
  const log = recordingLogger();
  const cases: Record<string, string | undefined>[] = [
    { WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' }, // another process's watchdog
    { WATCHDOG_USEC: undefined },
    { WATCHDOG_USEC: '' },
  ];
  const notifiers = cases.map((extra) => new SdNotify({ NOTIFY_SOCKET: path, ...extra }, log));
  for (const n of notifiers) {
    tt.equal(n.startWatchdog(), false);
    tt.equal(n.watchdog, undefined);
  }
  await sleep(500); // five ping intervals, had a watchdog started
  notifiers[0]?.status('end');
  await waitFor('the end marker', () => received.some((d) => d.text === 'STATUS=end'));
  tt.same(texts(received), ['STATUS=end'], 'no WATCHDOG=1 was sent');
  for (const n of notifiers) n.close();

  for (const usec of ['abc', '0', '1999', '-5']) {
    const n = new SdNotify({ NOTIFY_SOCKET: path, WATCHDOG_USEC: usec }, log);
    tt.equal(n.startWatchdog(), false, `WATCHDOG_USEC=${usec}`);
  }
  tt.equal(log.warnings.length, 4);
  tt.match(log.warnings[0], { msg: /WATCHDOG_USEC/, obj: { WATCHDOG_USEC: 'abc' } });
});

t.test('a slow start step asks systemd for more time (EXTEND_TIMEOUT_USEC) with a status', async (tt) => {
  const path = socketPath(tt);
  const received = listen(tt, path);
  const notify = new SdNotify({ NOTIFY_SOCKET: path }, recordingLogger());
  tt.equal(notify.extendStartTimeout(3_600_000, 'salvaging a corrupt database'), true);
  await waitFor('the datagram', () => received.length >= 1);
  tt.same(texts(received), ['EXTEND_TIMEOUT_USEC=3600000000\nSTATUS=salvaging a corrupt database']);
  notify.close();
});

t.test('a huge WATCHDOG_USEC pings at most a minute apart instead of overflowing the timer', async (tt) => {
  const path = socketPath(tt);
  listen(tt, path);
  const log = recordingLogger();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  tt.teardown(() => process.off('warning', onWarning));
  const n = new SdNotify({ NOTIFY_SOCKET: path, WATCHDOG_USEC: '40000000000000' }, log); // about 15 months
  tt.equal(n.startWatchdog(), true);
  await sleep(100);
  tt.equal(n.watchdog?.intervalMs, 60_000, 'capped at 60 s');
  tt.equal(n.watchdog?.pings, 1, 'only the first ping: no 1 ms timer');
  tt.notOk(warnings.includes('TimeoutOverflowWarning'), 'no timer overflow');
  n.close();
});

t.test('NOTIFY_SOCKET forms', async (tt) => {
  tt.same(parseNotifySocket('/run/systemd/notify'), { kind: 'path', address: '/run/systemd/notify' });
  tt.same(parseNotifySocket('@/org/freedesktop/systemd1/notify'), {
    kind: 'abstract',
    address: '\0/org/freedesktop/systemd1/notify',
  });
  tt.equal(parseNotifySocket('run/notify').kind, 'unsupported');
  tt.equal(parseNotifySocket('vsock:2:1234').kind, 'unsupported');
  tt.equal(parseNotifySocket(`/${'x'.repeat(106)}`).kind, 'path');
  tt.equal(parseNotifySocket(`/${'x'.repeat(107)}`).kind, 'unsupported', 'longer than sun_path');

  // unix-dgram cannot address abstract sockets: warn once, send nothing, never throw.
  for (const NOTIFY_SOCKET of ['@storehub-test', 'vsock:2:1234']) {
    const log = recordingLogger();
    const notify = new SdNotify({ NOTIFY_SOCKET }, log);
    tt.equal(notify.enabled, true);
    tt.equal(notify.ready(), false);
    tt.equal(notify.stopping(), false);
    tt.equal(log.warnings.length, 1, `${NOTIFY_SOCKET}: warned once`);
    tt.match(log.warnings[0]?.msg, /NOTIFY_SOCKET/);
  }

  // The default logger is the console.
  const warn = tt.capture(console, 'warn', () => {});
  new SdNotify({ NOTIFY_SOCKET: '@x' }).ready();
  tt.equal(warn().length, 1);
});

t.test('a missing unix-dgram is logged once and never crashes the hub', async (tt) => {
  const log = recordingLogger();
  let loads = 0;
  const notify = new SdNotify({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '200000' }, log, {
    loadDgram: () => {
      loads += 1;
      throw Object.assign(new Error("Cannot find module 'unix-dgram'"), { code: 'MODULE_NOT_FOUND' });
    },
  });
  tt.equal(notify.ready(), false);
  tt.equal(notify.startWatchdog(), true, 'the timer runs; its pings are no-ops');
  tt.equal(notify.stopping(), false);
  notify.close();
  tt.equal(loads, 1);
  tt.equal(log.warnings.length, 1);
  tt.match(log.warnings[0], { msg: /unix-dgram could not be loaded/, obj: { err: /MODULE_NOT_FOUND/ } });
});

t.test('send failures are logged once per cause, and sending recovers', async (tt) => {
  const path = socketPath(tt);
  const log = recordingLogger();
  const notify = new SdNotify({ NOTIFY_SOCKET: path }, log);
  tt.equal(notify.ready(), false, 'nobody listening yet');
  tt.equal(notify.status('again'), false);
  tt.equal(log.warnings.length, 1, 'the same failure is logged once');
  tt.match(log.warnings[0], { obj: { code: 'ENOENT', socket: path } });

  const received = listen(tt, path);
  tt.equal(notify.ready(), true);
  await waitFor('READY=1', () => received.length >= 1);
  tt.same(texts(received), ['READY=1']);
});

t.test('errors from the socket itself are contained', async (tt) => {
  const fakeSocket = (send: UnixDgramSocket['send']): UnixDgramSocket =>
    ({
      send,
      close() {
        throw new Error('close failed');
      },
    }) as unknown as UnixDgramSocket;
  const failures: [string, UnixDgramModule][] = [
    [
      'boom',
      {
        createSocket() {
          throw 'boom';
        },
      },
    ],
    ['EAGAIN: busy', { createSocket: () => fakeSocket((_b, _o, _l, _p, cb) => cb(Object.assign(new Error('busy'), { code: 'EAGAIN' }))) }],
    ['plain', { createSocket: () => fakeSocket((_b, _o, _l, _p, cb) => cb(new Error('plain'))) }],
  ];
  for (const [code, module] of failures) {
    const log = recordingLogger();
    const notify = new SdNotify({ NOTIFY_SOCKET: '/run/x.sock' }, log, { loadDgram: () => module });
    tt.equal(notify.ready(), false, code);
    tt.same(log.warnings[0]?.obj, { code, socket: '/run/x.sock' });
  }
  // A close() error after a successful send does not make the send fail.
  const ok = new SdNotify({ NOTIFY_SOCKET: '/run/x.sock' }, recordingLogger(), {
    loadDgram: () => ({ createSocket: () => fakeSocket((_b, _o, _l, _p, cb) => cb()) }),
  });
  tt.equal(ok.ready(), true);
});

t.test('a pino logger receives the warnings as JSON', async (tt) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const notify = new SdNotify({ NOTIFY_SOCKET: '@abstract' }, pino({}, sink));
  notify.ready();
  await waitFor('a log line', () => lines.length >= 1);
  tt.match(JSON.parse(lines[0] as string), { level: 40, NOTIFY_SOCKET: '@abstract', msg: /abstract socket/ });
});
