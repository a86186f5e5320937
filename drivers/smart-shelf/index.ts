/**
 * The smart-shelf driver factory: weight-sensing shelves polled over Modbus RTU on a serial line.
 * validate() checks a device's `options` (one line per problem, naming the key); create() builds the
 * driver without I/O. The protocol, the register maps and the options are described in README.md.
 */
import type { DriverDevice, DriverFactory, SerialTransport } from '../../hub/sdk/index.js';
import type { ShelfFirmwareOptions } from './firmware-update.js';
import { findModel, SHELF_MODELS, validateLaneNumbers, type ShelfModel, type WordOrder } from './register-map.js';
import { ShelfDriver } from './shelf-driver.js';

export interface LaneOptions {
  lane: number;
  sku?: string;
  unitWeightGrams: number;
  /** Weight of what always sits on the lane (a tray, a divider), subtracted before counting. */
  tareGrams: number;
  /** Low stock when count <= lowStock; cleared when count >= lowStockClear (hysteresis). */
  lowStock?: number;
  lowStockClear?: number;
}

export interface ShelfOptions {
  unitId: number;
  model: ShelfModel;
  wordOrder: WordOrder;
  /** Only for bus timing (t3.5, time-outs); the line itself is opened with the transport's settings. */
  baudRate: number | undefined;
  lanes: LaneOptions[];
  pollIntervalMs: number;
  timeoutMs: number;
  retries: number;
  /** Readings in a row, motion bit clear, spread within stableToleranceGrams, before a weight is stable. */
  stableReadings: number;
  stableToleranceGrams: number;
  /** A weight further than this fraction of a unit weight from a multiple of it is a wrong item. */
  itemTolerance: number;
  /** Polls in a row without any answer before the shelf is offline. */
  offlineAfterPolls: number;
  firmware: ShelfFirmwareOptions;
}

export const DEFAULTS = {
  pollIntervalMs: 250,
  timeoutMs: 200,
  retries: 2,
  stableReadings: 3,
  stableToleranceGrams: 2,
  itemTolerance: 0.25,
  offlineAfterPolls: 3,
} as const;

/** A controller reboots in a few seconds; 30 s leaves room for one that checks its flash first. */
export const FIRMWARE_DEFAULTS: ShelfFirmwareOptions = { chunkRetries: 3, rebootTimeoutMs: 30_000 };

const TOP_KEYS = ['unitId', 'model', 'wordOrder', 'baudRate', 'lanes', 'firmware', ...Object.keys(DEFAULTS)];
const FIRMWARE_KEYS = Object.keys(FIRMWARE_DEFAULTS);
const LANE_KEYS = ['lane', 'sku', 'unitWeightGrams', 'tareGrams', 'lowStock', 'lowStockClear'];

type Check = (v: unknown) => boolean;
const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const num =
  (min: number, max: number, exclusiveMin = false): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && (exclusiveMin ? v > min : v >= min) && v <= max;

function check(problems: string[], obj: Record<string, unknown>, path: string, key: string, ok: Check, wanted: string, required = false): void {
  const v = obj[key];
  if (v === undefined) {
    if (required) problems.push(`${path}${key} is required (${wanted})`);
  } else if (!ok(v)) {
    problems.push(`${path}${key} must be ${wanted}, got ${JSON.stringify(v)}`);
  }
}

function unknownKeys(problems: string[], obj: Record<string, unknown>, path: string, known: string[]): void {
  for (const key of Object.keys(obj)) if (!known.includes(key)) problems.push(`${path}${key} is not an option of smart-shelf`);
}

export function validateOptions(options: Record<string, unknown>): string[] {
  const p: string[] = [];
  unknownKeys(p, options, 'options.', TOP_KEYS);
  // SL §2.2: individual addresses are 1..247; 0 is broadcast (nobody answers a read)
  check(p, options, 'options.', 'unitId', int(1, 247), 'an integer 1..247', true);
  check(p, options, 'options.', 'model', (v) => findModel(v) !== undefined, `one of ${Object.keys(SHELF_MODELS).join(', ')}`, true);
  check(p, options, 'options.', 'wordOrder', (v) => v === 'high-first' || v === 'low-first', "'high-first' or 'low-first'");
  check(p, options, 'options.', 'baudRate', int(50, 4_000_000), 'an integer baud rate');
  check(p, options, 'options.', 'pollIntervalMs', int(10, 3_600_000), 'an integer 10..3600000');
  check(p, options, 'options.', 'timeoutMs', int(5, 60_000), 'an integer 5..60000');
  check(p, options, 'options.', 'retries', int(0, 10), 'an integer 0..10');
  check(p, options, 'options.', 'stableReadings', int(1, 100), 'an integer 1..100');
  check(p, options, 'options.', 'stableToleranceGrams', num(0, 1e6, true), 'a number of grams > 0');
  check(p, options, 'options.', 'itemTolerance', num(0, 0.5, true), 'a fraction of the unit weight, > 0 and <= 0.5');
  check(p, options, 'options.', 'offlineAfterPolls', int(1, 1000), 'an integer 1..1000');
  const fw = options.firmware;
  if (fw !== undefined) {
    if (typeof fw !== 'object' || fw === null || Array.isArray(fw)) p.push('options.firmware must be an object');
    else {
      const f = fw as Record<string, unknown>;
      unknownKeys(p, f, 'options.firmware.', FIRMWARE_KEYS);
      check(p, f, 'options.firmware.', 'chunkRetries', int(0, 10), 'an integer 0..10');
      check(p, f, 'options.firmware.', 'rebootTimeoutMs', int(100, 3_600_000), 'an integer 100..3600000');
    }
  }
  const lanes = options.lanes;
  if (!Array.isArray(lanes) || lanes.length === 0) {
    p.push('options.lanes is required (a non-empty list of lanes)');
    return p;
  }
  lanes.forEach((lane: unknown, i) => {
    const path = `options.lanes[${i}].`;
    if (typeof lane !== 'object' || lane === null || Array.isArray(lane)) {
      p.push(`options.lanes[${i}] must be an object`);
      return;
    }
    const l = lane as Record<string, unknown>;
    unknownKeys(p, l, path, LANE_KEYS);
    check(p, l, path, 'lane', int(1, 0xffff), 'a lane number', true);
    check(p, l, path, 'sku', (v) => typeof v === 'string' && v.length > 0, 'a non-empty string');
    check(p, l, path, 'unitWeightGrams', num(0, 1e6, true), 'a number of grams > 0', true);
    check(p, l, path, 'tareGrams', num(0, 1e6), 'a number of grams >= 0');
    check(p, l, path, 'lowStock', int(0, 1e6), 'an integer count >= 0');
    check(p, l, path, 'lowStockClear', int(1, 1e6), 'an integer count >= 1');
    if (l.lowStockClear !== undefined && l.lowStock === undefined) p.push(`${path}lowStockClear needs lowStock`);
    if (typeof l.lowStock === 'number' && typeof l.lowStockClear === 'number' && l.lowStockClear <= l.lowStock) {
      p.push(`${path}lowStockClear must be greater than lowStock (${l.lowStock}) for hysteresis`);
    }
  });
  const model = findModel(options.model);
  if (model !== undefined) {
    const numbers = lanes.map((l: unknown) => (typeof l === 'object' && l !== null ? (l as Record<string, unknown>).lane : undefined));
    for (const line of validateLaneNumbers(model, numbers)) p.push(`options.lanes: ${line}`);
  }
  return p;
}

/** The shape validateOptions() guarantees, before defaults. */
type RawLane = Omit<LaneOptions, 'tareGrams'> & { tareGrams?: number };
type RawOptions = Partial<Omit<ShelfOptions, 'model' | 'lanes' | 'firmware'>> & {
  unitId: number;
  model: string;
  lanes: RawLane[];
  firmware?: Partial<ShelfFirmwareOptions>;
};

/** Options with defaults filled in; call only on options that validateOptions() accepted. */
export function parseOptions(options: Record<string, unknown>): ShelfOptions {
  const o = options as unknown as RawOptions;
  const model = findModel(o.model);
  if (model === undefined) throw new Error(`unknown shelf model ${String(o.model)}`);
  const lanes = o.lanes.map((l) => ({
    lane: l.lane,
    sku: l.sku,
    unitWeightGrams: l.unitWeightGrams,
    tareGrams: l.tareGrams ?? 0,
    lowStock: l.lowStock,
    // without an explicit clear level, two items above the alert level clear it
    lowStockClear: l.lowStockClear ?? (l.lowStock === undefined ? undefined : l.lowStock + 2),
  }));
  return {
    unitId: o.unitId,
    model,
    wordOrder: o.wordOrder ?? model.wordOrder,
    baudRate: o.baudRate,
    lanes,
    pollIntervalMs: o.pollIntervalMs ?? DEFAULTS.pollIntervalMs,
    timeoutMs: o.timeoutMs ?? DEFAULTS.timeoutMs,
    retries: o.retries ?? DEFAULTS.retries,
    stableReadings: o.stableReadings ?? DEFAULTS.stableReadings,
    stableToleranceGrams: o.stableToleranceGrams ?? DEFAULTS.stableToleranceGrams,
    itemTolerance: o.itemTolerance ?? DEFAULTS.itemTolerance,
    offlineAfterPolls: o.offlineAfterPolls ?? DEFAULTS.offlineAfterPolls,
    firmware: { ...FIRMWARE_DEFAULTS, ...o.firmware },
  };
}

export const smartShelfDriver: DriverFactory<SerialTransport> = {
  kind: 'smart-shelf',
  transport: 'serial',
  validate: (device: DriverDevice) => validateOptions(device.options),
  create: (ctx) => new ShelfDriver(ctx, parseOptions(ctx.device.options)),
};

export default smartShelfDriver;
export { ShelfDriver } from './shelf-driver.js';
export { SHELF_MODELS } from './register-map.js';
