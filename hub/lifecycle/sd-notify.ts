/**
 * The systemd notify protocol (man sd_notify): tell the service manager when the hub is ready, when
 * it is stopping, a one-line status, and keep its watchdog fed.
 *
 * Node has no unix datagram sockets, so the datagrams go through the native `unix-dgram` package,
 * loaded lazily on the first send. If it cannot be loaded the hub logs one warning and carries on
 * without notifications: a missing native module must never take the hub down.
 *
 * Like libsystemd's sd_notify(), every notification opens a socket, sends one datagram and closes it.
 * No socket is held between sends: unix-dgram's socket keeps a libuv handle referenced, which would
 * keep the process alive if a shutdown path forgot close().
 *
 * Watchdog: with WatchdogSec=N systemd sets WATCHDOG_USEC and kills the service when no WATCHDOG=1
 * arrives for N seconds. The pings come from an unref()'d timer on the main event loop, so they stop
 * by themselves while the loop is stuck. The timer ticks several times per ping interval and measures
 * the gaps between its own ticks; when a gap (a time the loop made no progress) was longer than the
 * ping interval, WATCHDOG_USEC/2, the next ping is skipped and the one after comes a full ping
 * interval later. The time between two pings then exceeds WATCHDOG_USEC, so systemd kills the hub.
 * In short: an event-loop stall longer than WatchdogSec/2 gets the hub restarted; shorter stalls,
 * however often they happen, are tolerated.
 *
 * Limitation: unix-dgram copies the socket address with strncpy(), so it cannot address abstract
 * sockets (NOTIFY_SOCKET=@name, a leading NUL byte). Such an address is parsed, but sending to it
 * logs one warning and does nothing. systemd's system and user managers use a path
 * (/run/systemd/notify, $XDG_RUNTIME_DIR/systemd/notify), which works.
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { getSystemErrorName } from 'node:util';

/** What SdNotify needs from a logger; a pino Logger fits. */
export interface SdNotifyLogger {
  warn(obj: object, msg: string): void;
}

/** The environment variables SdNotify reads: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. */
export type SdNotifyEnv = Readonly<Record<string, string | undefined>>;

/** The parts of unix-dgram 2.x this module and its test use (the package ships no types). */
export interface UnixDgramSocket {
  /**
   * sendto(2) on an unconnected socket. unix-dgram calls the callback synchronously, before send()
   * returns, with an Error whose `code` is a negative errno, or with nothing on success.
   */
  send(buf: Buffer, offset: number, length: number, path: string, callback: (err?: Error | null) => void): void;
  /** bind(2); emits 'listening' or 'error' synchronously. */
  bind(path: string): void;
  /** close(2); throws on failure. */
  close(): void;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'listening', listener: () => void): this;
  on(event: 'message', listener: (msg: Buffer) => void): this;
}

export interface UnixDgramModule {
  createSocket(type: 'unix_dgram', listener?: (msg: Buffer) => void): UnixDgramSocket;
}

export interface SdNotifyOptions {
  /** Loads unix-dgram; replaceable in tests (to simulate a missing or failing native module). */
  loadDgram?: () => UnixDgramModule;
}

export interface WatchdogStats {
  /** Time between pings, WATCHDOG_USEC/2, in milliseconds. */
  intervalMs: number;
  /** WATCHDOG=1 datagrams handed to the kernel. */
  pings: number;
  /** Pings withheld because the event loop had been blocked longer than intervalMs. */
  skipped: number;
  /** The longest stall behind the most recent skip, in milliseconds (0 before any skip). */
  lastBlockedMs: number;
}

/** A parsed NOTIFY_SOCKET. `address` is what goes into sun_path ('@name' becomes '\0name'). */
export type NotifyAddress =
  { kind: 'path'; address: string } | { kind: 'abstract'; address: string } | { kind: 'unsupported'; address: string; reason: string };

/** sun_path is 108 bytes on Linux; unix-dgram copies at most 107 and silently truncates the rest. */
const MAX_PATH_BYTES = 107;
/** The longest time between pings, whatever WATCHDOG_USEC says. */
const MAX_PING_INTERVAL_MS = 60_000;

/** Timer ticks per ping interval; a tick measures how long the loop was away. */
const TICKS_PER_PING = 8;

export function parseNotifySocket(value: string): NotifyAddress {
  if (value.startsWith('@')) return { kind: 'abstract', address: `\0${value.slice(1)}` };
  if (!value.startsWith('/')) {
    // sd_notify also accepts vsock:CID:PORT (systemd 254+); unix-dgram cannot reach it.
    return { kind: 'unsupported', address: value, reason: 'not an absolute path or @abstract name' };
  }
  if (Buffer.byteLength(value) > MAX_PATH_BYTES) {
    return { kind: 'unsupported', address: value, reason: `path longer than ${MAX_PATH_BYTES} bytes` };
  }
  return { kind: 'path', address: value };
}

const consoleLogger: SdNotifyLogger = {
  warn(obj, msg) {
    console.warn(`storehub: ${msg}`, obj);
  },
};

const requireCjs = createRequire(import.meta.url);

function loadUnixDgram(): UnixDgramModule {
  return requireCjs('unix-dgram') as UnixDgramModule;
}

/** unix-dgram's errors carry a negative errno as `code`; name it (ENOENT, ECONNREFUSED...). */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException | { code?: unknown }).code;
  if (typeof code === 'number' && code < 0) return getSystemErrorName(code);
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
}

/** One line of sd_notify text: a newline would start another assignment. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

export class SdNotify {
  /** True when NOTIFY_SOCKET is set, i.e. a service manager is waiting for notifications. */
  readonly enabled: boolean;
  /** The parsed NOTIFY_SOCKET, or undefined when it is not set. */
  readonly socket: NotifyAddress | undefined;

  readonly #env: SdNotifyEnv;
  readonly #log: SdNotifyLogger;
  readonly #loadDgram: () => UnixDgramModule;
  /** undefined: not loaded yet; null: loading failed, stay silent. */
  #dgram: UnixDgramModule | null | undefined;
  readonly #warned = new Set<string>();
  /** The last send failure logged, so a persistent failure is logged once, not every ping. */
  #failing: string | undefined;
  #closed = false;

  #timer: NodeJS.Timeout | undefined;
  #stats: WatchdogStats | undefined;
  #lastTick = 0;
  #nextPingAt = 0;
  #maxGap = 0;

  constructor(env: SdNotifyEnv = process.env, logger: SdNotifyLogger = consoleLogger, options: SdNotifyOptions = {}) {
    this.#env = env;
    this.#log = logger;
    this.#loadDgram = options.loadDgram ?? loadUnixDgram;
    const value = env.NOTIFY_SOCKET;
    this.enabled = value !== undefined && value !== '';
    this.socket = this.enabled ? parseNotifySocket(value as string) : undefined;
  }

  /** READY=1: startup is finished (systemd then considers the unit started). */
  ready(status?: string): boolean {
    return this.#send(status === undefined ? 'READY=1' : `READY=1\nSTATUS=${oneLine(status)}`);
  }

  /** STOPPING=1: shutdown has begun. */
  stopping(status?: string): boolean {
    return this.#send(status === undefined ? 'STOPPING=1' : `STOPPING=1\nSTATUS=${oneLine(status)}`);
  }

  /** STATUS=...: free text shown by `systemctl status`. */
  /**
   * Asks systemd for more start-up time (EXTEND_TIMEOUT_USEC): a step such as salvaging a corrupt
   * database can outlast TimeoutStartSec, and without this systemd would kill and restart the hub
   * in the middle of it, over and over.
   */
  extendStartTimeout(ms: number, status: string): boolean {
    return this.#send(`EXTEND_TIMEOUT_USEC=${Math.round(ms * 1000)}\nSTATUS=${oneLine(status)}`);
  }

  status(text: string): boolean {
    return this.#send(`STATUS=${oneLine(text)}`);
  }

  /**
   * Starts the watchdog pings if systemd asked for them (WATCHDOG_USEC set, WATCHDOG_PID unset or
   * ours). Sends the first ping at once. Returns true when the watchdog is running.
   */
  startWatchdog(): boolean {
    if (this.#timer !== undefined) return true;
    if (this.#closed || !this.enabled) return false;
    const usecText = this.#env.WATCHDOG_USEC;
    if (usecText === undefined || usecText === '') return false;
    const pidText = this.#env.WATCHDOG_PID;
    if (pidText !== undefined && pidText !== '' && pidText !== String(process.pid)) return false;
    const usec = /^\d+$/.test(usecText) ? Number(usecText) : Number.NaN;
    if (!(usec >= 2000)) {
      this.#log.warn({ WATCHDOG_USEC: usecText }, 'WATCHDOG_USEC is not a usable number of microseconds; watchdog not started');
      return false;
    }
    // Pinging more often than WATCHDOG_USEC/2 is always allowed; the cap keeps the timer within
    // what setInterval takes (a WatchdogSec of a year would overflow it into a 1 ms timer).
    const intervalMs = Math.min(usec / 2000, MAX_PING_INTERVAL_MS);
    const tickMs = Math.max(1, Math.floor(intervalMs / TICKS_PER_PING));
    this.#stats = { intervalMs, pings: 0, skipped: 0, lastBlockedMs: 0 };
    const now = performance.now();
    this.#ping(now, tickMs);
    this.#lastTick = now;
    this.#timer = setInterval(() => this.#tick(tickMs), tickMs);
    // The watchdog must never be what keeps the hub alive.
    this.#timer.unref();
    return true;
  }

  /** Watchdog counters, or undefined when the watchdog was never started. */
  get watchdog(): Readonly<WatchdogStats> | undefined {
    return this.#stats === undefined ? undefined : { ...this.#stats };
  }

  /** Stops the watchdog; later calls send nothing. Idempotent. No socket is held between sends. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #tick(tickMs: number): void {
    const stats = this.#stats as WatchdogStats;
    const now = performance.now();
    const gap = now - this.#lastTick;
    this.#lastTick = now;
    if (gap > this.#maxGap) this.#maxGap = gap;
    if (now < this.#nextPingAt) return;
    if (this.#maxGap > stats.intervalMs) {
      // The loop stood still for longer than a ping interval. A ping now would tell systemd all is
      // well; withholding it (and waiting a full interval for the next) lets the watchdog fire.
      stats.skipped += 1;
      stats.lastBlockedMs = Math.round(this.#maxGap);
      this.#log.warn(
        { blockedMs: stats.lastBlockedMs, watchdogMs: stats.intervalMs * 2 },
        'event loop was blocked for more than half the watchdog timeout; withholding the watchdog ping',
      );
      this.#nextPingAt = now + stats.intervalMs;
    } else {
      this.#ping(now, tickMs);
    }
    this.#maxGap = 0;
  }

  #ping(now: number, tickMs: number): void {
    const stats = this.#stats as WatchdogStats;
    if (this.#send('WATCHDOG=1')) stats.pings += 1;
    // Ticks land up to one tick after this; aiming half a tick early keeps the mean period on target.
    this.#nextPingAt = now + stats.intervalMs - tickMs / 2;
  }

  #warnOnce(key: string, obj: object, msg: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#log.warn(obj, msg);
  }

  #send(state: string): boolean {
    const socket = this.socket;
    if (this.#closed || socket === undefined) return false;
    if (socket.kind === 'unsupported') {
      this.#warnOnce('address', { NOTIFY_SOCKET: socket.address, reason: socket.reason }, 'NOTIFY_SOCKET is not supported; systemd notifications are off');
      return false;
    }
    if (socket.kind === 'abstract') {
      this.#warnOnce(
        'address',
        { NOTIFY_SOCKET: this.#env.NOTIFY_SOCKET },
        'NOTIFY_SOCKET is an abstract socket, which unix-dgram cannot address; systemd notifications are off',
      );
      return false;
    }
    const dgram = this.#dgramModule();
    if (dgram === null) return false;
    const buf = Buffer.from(state, 'utf8');
    let error: unknown;
    try {
      const sock = dgram.createSocket('unix_dgram');
      try {
        sock.send(buf, 0, buf.length, socket.address, (err) => {
          if (err) error = err;
        });
      } finally {
        try {
          sock.close();
        } catch {
          // The datagram is already with the kernel (or failed above); nothing to do about a close error.
        }
      }
    } catch (err) {
      error = err;
    }
    if (error === undefined) {
      this.#failing = undefined;
      return true;
    }
    const code = describeError(error);
    if (this.#failing !== code) {
      this.#failing = code;
      this.#log.warn({ code, socket: socket.address }, 'could not send a notification to systemd');
    }
    return false;
  }

  #dgramModule(): UnixDgramModule | null {
    if (this.#dgram === undefined) {
      try {
        this.#dgram = this.#loadDgram();
      } catch (err) {
        this.#dgram = null;
        this.#log.warn({ err: describeError(err) }, 'unix-dgram could not be loaded; systemd notifications are off');
      }
    }
    return this.#dgram;
  }
}
