/**
 * Register maps of the shelf models this driver knows, as data. Register maps are vendor-specific
 * (PROTOCOLS.md, smart shelves): a new shelf model is a new entry here, not a branch in the driver.
 * Both maps are documented in README.md; the simulator in firmware-sim/smart-shelf implements them
 * from that description, not from this file.
 *
 * Registers are 16-bit and big-endian on the wire (AP §4.2). A 32-bit value spans two registers;
 * Modbus says nothing about their order, so it is part of the map ("high-first" = the register
 * with the lower address holds the high word, the common default; "low-first" = swapped words).
 */
import { FC, type ModbusRequest } from './modbus-rtu.js';

export type WordOrder = 'high-first' | 'low-first';

export interface ShelfModel {
  readonly name: string;
  readonly description: string;
  /** Lanes are numbered 1..maxLanes. */
  readonly maxLanes: number;
  /** Where lane blocks are read: holding registers (FC 3, AP §6.3) or input registers (FC 4, AP §6.4). */
  readonly table: 'holding' | 'input';
  /** Address of lane 1's block, and the distance from one lane's block to the next. */
  readonly laneBase: number;
  readonly laneStride: number;
  /** Offsets inside a lane block: the weight (two registers) and the status register. */
  readonly weightOffset: number;
  readonly statusOffset: number;
  /** int32: signed counts of `gramsPerCount`; float32: IEEE 754 single, in grams. */
  readonly weight: { readonly type: 'int32'; readonly gramsPerCount: number } | { readonly type: 'float32' };
  readonly wordOrder: WordOrder;
  /** Bit numbers in the status register. */
  readonly statusBits: { readonly motion: number; readonly overCapacity: number; readonly dataOk: number };
  /** Commands are single-register writes (FC 6, AP §6.6) to a per-lane holding register. */
  readonly command: { readonly base: number; readonly stride: number; readonly tare: number; readonly zero: number };
  /** Where the vendor's firmware area starts (holding registers); its layout is firmware-area.ts. */
  readonly firmware: { readonly base: number };
}

export const SHELF_MODELS: Readonly<Record<string, ShelfModel>> = {
  'ws-4lane-int32': {
    name: 'ws-4lane-int32',
    description: '4 lanes; holding registers; weight int32 in 0.1 g, high word first; command register in each lane block',
    maxLanes: 4,
    table: 'holding',
    laneBase: 0x0000,
    laneStride: 4,
    weightOffset: 0,
    statusOffset: 2,
    weight: { type: 'int32', gramsPerCount: 0.1 },
    wordOrder: 'high-first',
    statusBits: { motion: 0, overCapacity: 1, dataOk: 2 },
    command: { base: 0x0003, stride: 4, tare: 1, zero: 2 },
    firmware: { base: 0x0100 },
  },
  'ws-4lane-float32': {
    name: 'ws-4lane-float32',
    description: '4 lanes; input registers; weight float32 grams (word order configurable); command registers at 0x0100',
    maxLanes: 4,
    table: 'input',
    laneBase: 0x0000,
    laneStride: 3,
    weightOffset: 0,
    statusOffset: 2,
    weight: { type: 'float32' },
    wordOrder: 'high-first',
    statusBits: { dataOk: 0, motion: 1, overCapacity: 4 },
    command: { base: 0x0100, stride: 1, tare: 1, zero: 2 },
    // 0x0100.. holds the lane commands on this model, so its firmware area sits higher
    firmware: { base: 0x0200 },
  },
};

export type ShelfCommand = 'tare' | 'zero';

export interface LaneReading {
  /** Net weight in grams as the shelf reports it (after its own tare). */
  grams: number;
  motion: boolean;
  overCapacity: boolean;
  dataOk: boolean;
}

export function findModel(name: unknown): ShelfModel | undefined {
  return typeof name === 'string' && Object.hasOwn(SHELF_MODELS, name) ? SHELF_MODELS[name] : undefined;
}

/** Problems with a list of lane numbers for a model, one line each. */
export function validateLaneNumbers(model: ShelfModel, lanes: readonly unknown[]): string[] {
  const problems: string[] = [];
  const seen = new Set<number>();
  for (const lane of lanes) {
    if (typeof lane !== 'number' || !Number.isInteger(lane) || lane < 1 || lane > model.maxLanes) {
      problems.push(`lane ${String(lane)} is not a lane of ${model.name} (1..${model.maxLanes})`);
    } else if (seen.has(lane)) {
      problems.push(`lane ${lane} is listed twice`);
    }
    if (typeof lane === 'number') seen.add(lane);
  }
  return problems;
}

function laneAddress(model: ShelfModel, lane: number): number {
  return model.laneBase + (lane - 1) * model.laneStride;
}

/** One read covering every listed lane: one request per poll keeps the bus turnaround count low. */
export function readRequest(model: ShelfModel, unit: number, lanes: readonly number[]): ModbusRequest {
  const first = laneAddress(model, Math.min(...lanes));
  const last = laneAddress(model, Math.max(...lanes)) + Math.max(model.weightOffset + 1, model.statusOffset);
  const fc = model.table === 'holding' ? FC.readHoldingRegisters : FC.readInputRegisters;
  return { unit, fc, address: first, quantity: last - first + 1 };
}

/** Reads one lane out of the registers returned for `readRequest` (block starting at `blockAddress`). */
export function decodeLane(model: ShelfModel, wordOrder: WordOrder, registers: readonly number[], blockAddress: number, lane: number): LaneReading {
  const at = laneAddress(model, lane) - blockAddress;
  const first = registers[at + model.weightOffset] ?? 0;
  const second = registers[at + model.weightOffset + 1] ?? 0;
  const [hi, lo] = wordOrder === 'high-first' ? [first, second] : [second, first];
  const bytes = Buffer.alloc(4);
  bytes.writeUInt16BE(hi, 0);
  bytes.writeUInt16BE(lo, 2);
  const grams =
    model.weight.type === 'int32'
      ? Math.round(bytes.readInt32BE(0) * model.weight.gramsPerCount * 1000) / 1000
      : // float32 carries ~7 significant digits: round away the representation noise at 0.01 g
        Math.round(bytes.readFloatBE(0) * 100) / 100;
  const status = registers[at + model.statusOffset] ?? 0;
  const bit = (n: number) => ((status >> n) & 1) === 1;
  // a NaN or infinite float is no weight at all, whatever the status register claims
  const finite = Number.isFinite(grams);
  return {
    grams: finite ? grams : 0,
    motion: bit(model.statusBits.motion),
    overCapacity: bit(model.statusBits.overCapacity),
    dataOk: finite && bit(model.statusBits.dataOk),
  };
}

/** The register write that asks the shelf to tare or zero one lane. */
export function commandRequest(model: ShelfModel, unit: number, lane: number, command: ShelfCommand): ModbusRequest {
  return { unit, fc: FC.writeSingleRegister, address: model.command.base + (lane - 1) * model.command.stride, value: model.command[command] };
}
