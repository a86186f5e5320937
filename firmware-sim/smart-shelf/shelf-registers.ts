/**
 * The register maps of the simulated shelf controllers, as the firmware lays them out. They follow the
 * description in drivers/smart-shelf/README.md ("Register maps"), re-implemented here so that a mistake
 * in the driver's map shows up as a failing test instead of being shared.
 *
 * ws-4lane-int32: holding registers, lane n block at 4(n-1): weight int32 in 0.1 g (2 registers),
 *   status (bit 0 motion, 1 over-capacity, 2 data ok), command (write 1 = tare, 2 = zero; reads 0).
 * ws-4lane-float32: input registers, lane n block at 3(n-1): weight float32 in grams (2 registers),
 *   status (bit 0 data ok, 1 motion, 4 over-capacity); commands in holding registers 0x0100 + (n-1).
 * Both: a firmware area in holding registers (firmware-registers.ts), at 0x0100 on ws-4lane-int32 and
 *   0x0200 on ws-4lane-float32. An image that boots unhealthy leaves every lane without data ok.
 */
import type { FirmwareRegisters } from './firmware-registers.js';
import type { SimLane } from './lane.js';
import type { RegisterBank } from './rtu-slave.js';

export type SimModel = 'ws-4lane-int32' | 'ws-4lane-float32';

/** Where each model keeps its firmware area. */
export const FIRMWARE_BASE: Record<SimModel, number> = { 'ws-4lane-int32': 0x0100, 'ws-4lane-float32': 0x0200 };
export type SimWordOrder = 'high-first' | 'low-first';

const ILLEGAL_ADDRESS = { exception: 2 };
const ILLEGAL_VALUE = { exception: 3 };

export class ShelfRegisters implements RegisterBank {
  /** Every accepted write, for tests that check what the driver sent. */
  readonly writes: { address: number; value: number }[] = [];

  constructor(
    private readonly model: SimModel,
    private readonly wordOrder: SimWordOrder,
    private readonly lanes: SimLane[],
    private readonly now: () => number,
    private readonly firmware: FirmwareRegisters,
  ) {}

  read(table: 'holding' | 'input', address: number, quantity: number): number[] | { exception: number } {
    if (table === 'holding' && this.firmware.contains(address)) return this.firmware.read(address, quantity);
    const out: number[] = [];
    const samples = new Map<number, number[]>();
    for (let a = address; a < address + quantity; a++) {
      const v = this.register(table, a, samples);
      if (v === undefined) return ILLEGAL_ADDRESS;
      out.push(v);
    }
    return out;
  }

  write(address: number, values: number[]): { exception: number } | undefined {
    if (this.firmware.contains(address)) return this.firmware.write(address, values);
    for (let i = 0; i < values.length; i++) {
      const lane = this.commandLane(address + i);
      if (lane === undefined) return ILLEGAL_ADDRESS;
      const value = values[i]!;
      if (value === 1) lane.tareNow(this.now());
      else if (value === 2) lane.zeroNow(this.now());
      else return ILLEGAL_VALUE;
      this.writes.push({ address: address + i, value });
    }
    return undefined;
  }

  private commandLane(address: number): SimLane | undefined {
    if (this.model === 'ws-4lane-int32') return address % 4 === 3 ? this.lanes[(address - 3) / 4] : undefined;
    return address >= 0x100 ? this.lanes[address - 0x100] : undefined;
  }

  /** One register's value; a lane's sample is taken once per request so its words belong together. */
  private register(table: 'holding' | 'input', address: number, samples: Map<number, number[]>): number | undefined {
    const int32 = this.model === 'ws-4lane-int32';
    if (table !== (int32 ? 'holding' : 'input')) {
      // float32 model: the command registers are the only holding registers, and read as 0
      return !int32 && table === 'holding' && this.commandLane(address) ? 0 : undefined;
    }
    const stride = int32 ? 4 : 3;
    const index = Math.floor(address / stride);
    if (index >= this.lanes.length) return undefined;
    let block = samples.get(index);
    if (block === undefined) {
      block = this.laneBlock(this.lanes[index]!, int32);
      samples.set(index, block);
    }
    return block[address % stride];
  }

  private laneBlock(lane: SimLane, int32: boolean): number[] {
    const s = lane.sample(this.now());
    if (!this.firmware.slots.running.healthy) {
      // the image boots, but its ADC driver does not: every lane loses its data
      s.dataOk = false;
      s.grams = 0;
    }
    const bytes = Buffer.alloc(4);
    if (int32) bytes.writeInt32BE(Math.round(s.grams * 10));
    else bytes.writeFloatBE(s.grams);
    const high = bytes.readUInt16BE(0);
    const low = bytes.readUInt16BE(2);
    const words = this.wordOrder === 'high-first' ? [high, low] : [low, high];
    if (int32) {
      const status = (s.motion ? 1 : 0) | (s.overCapacity ? 2 : 0) | (s.dataOk ? 4 : 0);
      return [...words, status, 0];
    }
    const status = (s.dataOk ? 1 : 0) | (s.motion ? 2 : 0) | (s.overCapacity ? 16 : 0);
    return [...words, status];
  }
}
