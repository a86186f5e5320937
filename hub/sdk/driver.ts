/**
 * The Driver contract: the only way device code meets the hub. A driver is created without I/O,
 * reaches its device only through the Transport it is given, and reports only through its context.
 * The supervisor (hub/devices/supervisor.ts) starts it, restarts it with backoff when it fails,
 * and stops it; one driver's fault never reaches another.
 */
import type { DeviceEvent } from './events.js';
import type { Transport } from './transport.js';

export type Availability = 'online' | 'offline' | 'degraded';

export interface DeviceHealth {
  availability: Availability;
  /** Why it is not online (or what is degraded), in words store IT can act on. */
  reason?: string;
}

/** Facts a driver learns about its device; each field is optional and merged into the registry. */
export interface DeviceInfo {
  model?: string;
  firmware?: string;
  /** Battery charge 0..100, when the device reports one. */
  battery?: number;
}

/** Counters a driver keeps for rejected input, surfaced as device health and metrics. */
export type RejectReason = 'malformed' | 'schema' | 'unknown_antenna' | 'crc' | 'exception' | 'timeout' | 'overflow' | 'flood' | 'other';

export interface DriverLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface DriverDevice {
  id: string;
  kind: string;
  model?: string;
  /** Protocol settings from the config, validated by the driver's factory. */
  options: Record<string, unknown>;
  /** The transport type the config chose (one of the factory's), for options that depend on it. */
  transportType?: Transport['type'];
}

export interface DriverContext<T extends Transport = Transport> {
  readonly device: DriverDevice;
  readonly transport: T;
  readonly log: DriverLogger;
  now(): number;
  /** A fact from the device (a tag read, a weight): goes onto the hub's bus. */
  emit(event: DeviceEvent): void;
  /** Marks the device as heard from now. */
  seen(): void;
  setHealth(health: DeviceHealth): void;
  setInfo(info: DeviceInfo): void;
  /** Counts one rejected input (never throws, never stops the driver). */
  reject(reason: RejectReason, detail?: string): void;
  /** Reports a failure the driver cannot recover from by itself: the supervisor restarts it. */
  fail(error: Error): void;
}

export interface DeviceCommand {
  name: string;
  args?: Record<string, unknown>;
}

export interface CommandResult {
  ok: boolean;
  detail?: string;
  data?: unknown;
}

export interface Driver {
  /** Begins talking to the device; resolves once running. Rejecting means "failed to start". */
  start(signal: AbortSignal): Promise<void>;
  /** Releases everything start() acquired; safe to call twice or before start(). */
  stop(): Promise<void>;
  execute(command: DeviceCommand): Promise<CommandResult>;
}

export interface DriverFactory<T extends Transport = Transport> {
  kind: string;
  /** Which transport type the driver needs, or every type it accepts (the config picks one). */
  transport: T['type'] | readonly T['type'][];
  /** Problems with the device's `options`, one line each; empty when valid. */
  validate(device: DriverDevice): string[];
  create(ctx: DriverContext<T>): Driver;
}
