/**
 * The firmware area of the simulated shelf controller, written from the layout in
 * drivers/smart-shelf/README.md ("Firmware update"), not from the driver's code, so that a mistake in
 * either shows up as a failing test. Holding registers from `base`:
 *
 *   +0..+7 running version (ASCII, 2 chars a register, high byte first, NUL-padded)
 *   +8..+15 standby version (the other slot; all 0 when empty)   +16 active slot (0 A, 1 B)
 *   +17 boot count   +18 state (0 idle, 1 receiving)   +19 last error   +20..+21 bytes received
 *   +22..+23 slot capacity (uint32 values high word first)
 *   +32 command: BEGIN block [1, size(2), crc32(2), version(8)] by FC 16; 2 COMMIT, 3 ABORT, 4 ROLLBACK by FC 6
 *   +64 chunk: [offset(2), length in bytes, data...] by FC 16
 *
 * The image is checked with CRC-32 (the zlib one), computed bitwise here; the driver's is table-driven.
 */
import { FirmwareSlots, type SlotError } from '../common/firmware-slots.js';

const AREA_REGISTERS = 0x80;
const STATUS_REGISTERS = 24;
const COMMAND = 32;
const CHUNK = 64;

/** Last-error register values, as the README lists them. */
const ERROR_CODE: Record<SlotError, number> = {
  checksum_mismatch: 1,
  incomplete: 2,
  out_of_order: 3,
  not_receiving: 4,
  no_previous_image: 5,
  too_large: 6,
  bad_begin: 7,
};

/** AP §7: 3 for values the controller cannot take, 4 for what failed while it acted on them. */
const EXCEPTION: Record<SlotError, number> = {
  too_large: 3,
  bad_begin: 3,
  out_of_order: 3,
  not_receiving: 4,
  incomplete: 4,
  checksum_mismatch: 4,
  no_previous_image: 4,
};

export function crc32Bitwise(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

export interface FirmwareRegistersOptions {
  version: string;
  capacity: number;
  /** Bytes that, found anywhere in an image, make it boot without working sensors. */
  unhealthyMarker: string;
}

export class FirmwareRegisters {
  readonly slots: FirmwareSlots;
  /** Set by an accepted COMMIT or ROLLBACK: the controller reboots once its answer is on the wire. */
  rebootRequested = false;
  /** Set when the armed power cut is due: the controller dies before it answers. */
  powerCutDue = false;
  private cutAfterChunks: number | undefined;
  private flipNextChunk = false;

  constructor(
    readonly base: number,
    opts: FirmwareRegistersOptions,
  ) {
    const marker = Buffer.from(opts.unhealthyMarker);
    this.slots = new FirmwareSlots({
      version: opts.version,
      capacity: opts.capacity,
      digest: (image) => hex8(crc32Bitwise(image)),
      healthy: (image) => marker.length === 0 || !image.includes(marker),
    });
  }

  contains(address: number): boolean {
    return address >= this.base && address < this.base + AREA_REGISTERS;
  }

  /** Arms a power cut right after the n-th chunk (counted from now) is taken. */
  cutPowerAfterChunks(n: number): void {
    this.cutAfterChunks = this.slots.chunks + n;
  }

  /** The next chunk lands in flash with one bit flipped (a flash write error, or line noise the frame CRC missed). */
  corruptNextChunk(): void {
    this.flipNextChunk = true;
  }

  read(address: number, quantity: number): number[] | { exception: number } {
    const at = address - this.base;
    if (at < 0 || at + quantity > STATUS_REGISTERS) return { exception: 2 };
    return this.statusBlock().slice(at, at + quantity);
  }

  write(address: number, values: number[]): { exception: number } | undefined {
    const at = address - this.base;
    if (at === COMMAND) return this.command(values);
    if (at === CHUNK) return this.chunk(values);
    return { exception: 2 };
  }

  private command(values: number[]): { exception: number } | undefined {
    const [code] = values;
    if (code === 1 && values.length === 13) {
      const size = ((values[1]! << 16) | values[2]!) >>> 0;
      const crc = ((values[3]! << 16) | values[4]!) >>> 0;
      return this.outcome(this.slots.begin(size, hex8(crc), ascii(values.slice(5))));
    }
    if (values.length !== 1) return { exception: 3 };
    if (code === 2) return this.outcome(this.slots.commit(), true);
    if (code === 3) {
      this.slots.abort();
      return undefined;
    }
    if (code === 4) return this.outcome(this.slots.rollback(), true);
    return { exception: 3 };
  }

  private chunk(values: number[]): { exception: number } | undefined {
    if (values.length < 4) return { exception: 3 };
    const offset = ((values[0]! << 16) | values[1]!) >>> 0;
    const length = values[2]!;
    if (length === 0 || Math.ceil(length / 2) !== values.length - 3) return { exception: 3 };
    const data = Buffer.alloc(values.length * 2);
    values.slice(3).forEach((v, i) => data.writeUInt16BE(v, 2 * i));
    if (this.flipNextChunk) {
      this.flipNextChunk = false;
      data[0] = data[0]! ^ 0x01;
    }
    const failed = this.outcome(this.slots.write(offset, data.subarray(0, length)));
    if (!failed && this.cutAfterChunks !== undefined && this.slots.chunks >= this.cutAfterChunks) {
      this.cutAfterChunks = undefined;
      this.powerCutDue = true;
    }
    return failed;
  }

  private outcome(error: SlotError | undefined, reboots = false): { exception: number } | undefined {
    if (error) return { exception: EXCEPTION[error] };
    if (reboots) this.rebootRequested = true;
    return undefined;
  }

  private statusBlock(): number[] {
    const s = this.slots;
    const u32 = (n: number) => [(n >>> 16) & 0xffff, n & 0xffff];
    return [
      ...words(s.running.version),
      ...words(s.standby?.version ?? ''),
      s.active,
      s.bootCount & 0xffff,
      s.receiving ? 1 : 0,
      s.lastError ? ERROR_CODE[s.lastError] : 0,
      ...u32(s.received),
      ...u32(s.capacity),
    ];
  }
}

/** 16 characters in 8 registers, the first of each pair in the high byte. */
function words(text: string): number[] {
  const b = Buffer.alloc(16);
  b.write(text.slice(0, 16), 'latin1');
  return Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
}

function ascii(regs: number[]): string {
  const bytes = regs.flatMap((r) => [r >> 8, r & 0xff]);
  const end = bytes.indexOf(0);
  return Buffer.from(end === -1 ? bytes : bytes.slice(0, end)).toString('latin1');
}
