/**
 * Runs one driver: starts it, restarts it with jittered backoff when it fails (start rejects or it
 * calls ctx.fail), and stops it. Everything the driver calls on its context is wrapped, so a
 * throwing driver or listener can only ever take down its own run, which is then restarted.
 * A fresh transport is made for each run: a half-closed serial port is never reused.
 */
import type { Logger } from '../observability/logger.js';
import type { CommandResult, DeviceCommand, DeviceHealth, Driver, DriverContext, DriverDevice, DriverFactory, RejectReason } from '../sdk/driver.js';
import type { DeviceEvent } from '../sdk/events.js';
import type { Transport } from '../sdk/transport.js';
import { Backoff, type BackoffOptions } from './backoff.js';

export interface SupervisorHooks {
  emit(event: DeviceEvent): void;
  seen(deviceId: string): void;
  setHealth(deviceId: string, health: DeviceHealth): void;
  setInfo(deviceId: string, info: Parameters<DriverContext['setInfo']>[0]): void;
  reject(deviceId: string, reason: RejectReason, detail?: string): void;
  restarted(deviceId: string, error: Error): void;
}

export interface SupervisorOptions {
  factory: DriverFactory;
  device: DriverDevice;
  makeTransport(): Transport;
  closeTransport(transport: Transport): Promise<void>;
  hooks: SupervisorHooks;
  log: Logger;
  backoff?: Partial<BackoffOptions>;
  now?: () => number;
}

export class DriverSupervisor {
  private running = false;
  private driver: Driver | undefined;
  /** The driver being started (or running): what teardown must stop. */
  private starting: Driver | undefined;
  private transport: Transport | undefined;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private failure: ((err: Error) => void) | undefined;
  readonly backoff: Backoff;
  restarts = 0;

  constructor(private readonly options: SupervisorOptions) {
    this.backoff = new Backoff({ initialMs: 1000, maxMs: 60_000, resetAfterMs: 60_000, ...options.backoff });
  }

  get deviceId(): string {
    return this.options.device.id;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // run() guards its own steps; this catch is the last line that keeps a fault inside the device
    this.loop = this.run().catch((err) => this.options.log.error({ deviceId: this.deviceId, err }, 'supervisor loop failed'));
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort?.abort();
    this.wake?.();
    this.failure?.(new Error('stopping'));
    await this.loop;
  }

  async execute(command: DeviceCommand): Promise<CommandResult> {
    if (!this.driver) return { ok: false, detail: 'driver not running' };
    try {
      return await this.driver.execute(command);
    } catch (err) {
      return { ok: false, detail: (err as Error).message };
    }
  }

  private async run(): Promise<void> {
    const { device, hooks, log } = this.options;
    const now = this.options.now ?? Date.now;
    while (this.running) {
      const startedAt = now();
      let error: Error | undefined;
      try {
        error = await this.runOnce();
      } catch (err) {
        error = err as Error;
      }
      await this.teardown();
      if (!this.running) break;
      const failure = error ?? new Error('driver stopped by itself');
      this.restarts++;
      this.backoff.ranFor(now() - startedAt);
      const delay = this.backoff.next();
      try {
        hooks.setHealth(device.id, { availability: 'offline', reason: `driver failed: ${failure.message}; retrying in ${Math.round(delay / 1000)} s` });
        hooks.restarted(device.id, failure);
        log.warn({ deviceId: device.id, err: failure.message, delayMs: delay, restarts: this.restarts }, 'driver failed; restarting');
      } catch (err) {
        // e.g. the disk is full: the registry cannot record it, but the device must still be retried
        log.error({ deviceId: device.id, err }, 'could not record the driver failure');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        timer.unref();
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** One run: resolves with the error that ended it (undefined only when stopping). */
  private async runOnce(): Promise<Error | undefined> {
    const { factory, device, hooks, log } = this.options;
    const abort = new AbortController();
    this.abort = abort;
    // This run's own resolver: a driver left over from an earlier run that calls ctx.fail late must
    // not end this one.
    let end!: (error: Error) => void;
    const ended = new Promise<Error>((resolve) => {
      end = resolve;
    });
    this.failure = end;
    const transport = this.options.makeTransport();
    this.transport = transport;
    const guard =
      <A extends unknown[]>(fn: (...args: A) => void) =>
      (...args: A) => {
        if (abort.signal.aborted) return;
        try {
          fn(...args);
        } catch (err) {
          log.error({ deviceId: device.id, err }, 'device event handling failed');
        }
      };
    const ctx: DriverContext = {
      device,
      transport,
      log: log.child({ deviceId: device.id, kind: device.kind }),
      now: this.options.now ?? Date.now,
      emit: guard((event: DeviceEvent) => hooks.emit(event)),
      seen: guard(() => hooks.seen(device.id)),
      setHealth: guard((health: DeviceHealth) => hooks.setHealth(device.id, health)),
      setInfo: guard((info) => hooks.setInfo(device.id, info)),
      reject: guard((reason: RejectReason, detail?: string) => hooks.reject(device.id, reason, detail)),
      fail: (error: Error) => {
        if (!abort.signal.aborted) end(error);
      },
    };
    const driver = factory.create(ctx);
    this.starting = driver;
    await driver.start(abort.signal);
    // commands reach a driver only once it has started
    this.driver = driver;
    if (!this.running) return undefined;
    return ended;
  }

  private async teardown(): Promise<void> {
    this.abort?.abort();
    const driver = this.starting;
    const transport = this.transport;
    this.driver = undefined;
    this.starting = undefined;
    this.transport = undefined;
    this.failure = undefined;
    try {
      // one driver stuck in I/O must not use up the hub's whole stop deadline: the store, the
      // broker and every other device still have to close after it
      await withTimeout(driver?.stop(), DRIVER_STOP_TIMEOUT_MS);
    } catch (err) {
      this.options.log.warn({ deviceId: this.deviceId, err }, 'driver stop failed');
    }
    if (transport) await withTimeout(this.options.closeTransport(transport), DRIVER_STOP_TIMEOUT_MS).catch(() => undefined);
  }
}

/** How long one driver (and its transport) may take to stop. */
export const DRIVER_STOP_TIMEOUT_MS = 3_000;

function withTimeout(work: Promise<void> | undefined, ms: number): Promise<void> {
  if (!work) return Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not stop within ${ms} ms; left behind`)), ms);
    timer.unref();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
