/**
 * The vendor-style firmware area of a shelf controller, as holding registers from the model's
 * `firmware.base` (register-map.ts): a status block the master reads with FC 3, a command register,
 * and a chunk window written with FC 16 (AP §6.12: at most 123 registers per request). The layout is
 * documented in README.md ("Firmware update"); this file turns it into requests and back. Pure: no I/O.
 *
 * Modbus has no firmware transfer of its own (FC 0x15 Write File Record exists but few controllers
 * implement it), so shelf vendors map a begin/chunk/commit sequence onto registers, as here.
 */
import { FC, type ModbusRequest } from './modbus-rtu.js';
import type { ShelfModel } from './register-map.js';

/** Offsets inside the firmware area. */
export const FW = {
  /** Running version: 8 registers of ASCII, two characters each, first in the high byte, NUL-padded. */
  running: 0,
  /** The other slot's version (what a rollback returns to); all NUL when that slot holds nothing. */
  standby: 8,
  /** 0 = slot A, 1 = slot B. */
  activeSlot: 16,
  /** Counts boots (wraps at 0xFFFF): tells the master that a reboot happened. */
  bootCount: 17,
  state: 18,
  /** Why the last firmware write was refused (FwError); explains an exception response. */
  lastError: 19,
  /** Bytes of the image received so far, uint32, high word first. */
  received: 20,
  /** Largest image a slot holds, uint32, high word first. */
  capacity: 22,
  statusRegisters: 24,
  /** Command register: BEGIN starts a block written with FC 16; COMMIT, ABORT and ROLLBACK are FC 6. */
  command: 32,
  /** Chunk window: offset (uint32, high word first), length in bytes, then the data. */
  chunk: 64,
} as const;

export const FwCommand = { begin: 1, commit: 2, abort: 3, rollback: 4 } as const;
export const FwState = { idle: 0, receiving: 1 } as const;

/** Values of the last-error register. */
export const FwError = {
  none: 0,
  checksumMismatch: 1,
  incomplete: 2,
  outOfOrder: 3,
  notReceiving: 4,
  noPreviousImage: 5,
  tooLarge: 6,
  badBegin: 7,
} as const;

const ERROR_TEXT: Record<number, string> = {
  [FwError.none]: 'no error recorded',
  [FwError.checksumMismatch]: 'CRC-32 of the received image does not match the one announced (corrupted image or transfer)',
  [FwError.incomplete]: 'the image is incomplete',
  [FwError.outOfOrder]: 'a chunk was out of order or beyond the announced size',
  [FwError.notReceiving]: 'no update in progress',
  [FwError.noPreviousImage]: 'no previous image to roll back to',
  [FwError.tooLarge]: 'the image is larger than a firmware slot',
  [FwError.badBegin]: 'the begin block was refused (size 0 or a bad version string)',
};

export const fwErrorText = (code: number): string => ERROR_TEXT[code] ?? `vendor error ${code}`;

/** Header registers in front of the data in one chunk write: offset (2) and length (1). */
const CHUNK_HEADER = 3;
/** AP §6.12 allows 123 registers in one FC 16 request; the header takes 3, leaving 120 = 240 bytes. */
export const CHUNK_BYTES = (123 - CHUNK_HEADER) * 2;
export const VERSION_CHARS = 16;

export interface FirmwareStatus {
  version: string;
  /** The version a rollback would return to; '' when there is none. */
  standby: string;
  slot: 'A' | 'B';
  bootCount: number;
  state: number;
  lastError: number;
  received: number;
  capacity: number;
}

/** A version the area can hold: 1..16 printable ASCII characters (no spaces, no NUL padding confusion). */
export function versionProblem(version: unknown): string | undefined {
  if (typeof version !== 'string' || !/^[\x21-\x7e]{1,16}$/.test(version)) return 'args.version must be 1..16 printable ASCII characters without spaces';
  return undefined;
}

const u32 = (n: number): number[] => [(n >>> 16) & 0xffff, n & 0xffff];
const readU32 = (regs: readonly number[], at: number): number => (((regs[at] ?? 0) << 16) | (regs[at + 1] ?? 0)) >>> 0;

function encodeAscii(text: string, registers: number): number[] {
  const bytes = Buffer.alloc(registers * 2);
  bytes.write(text, 'ascii');
  return Array.from({ length: registers }, (_, i) => bytes.readUInt16BE(2 * i));
}

function decodeAscii(regs: readonly number[], at: number, registers: number): string {
  const bytes = Buffer.alloc(registers * 2);
  for (let i = 0; i < registers; i++) bytes.writeUInt16BE((regs[at + i] ?? 0) & 0xffff, 2 * i);
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('latin1');
}

export function statusRequest(model: ShelfModel, unit: number): ModbusRequest {
  return { unit, fc: FC.readHoldingRegisters, address: model.firmware.base + FW.running, quantity: FW.statusRegisters };
}

export function decodeStatus(registers: readonly number[]): FirmwareStatus {
  return {
    version: decodeAscii(registers, FW.running, VERSION_CHARS / 2),
    standby: decodeAscii(registers, FW.standby, VERSION_CHARS / 2),
    slot: registers[FW.activeSlot] === 1 ? 'B' : 'A',
    bootCount: registers[FW.bootCount] ?? 0,
    state: registers[FW.state] ?? 0,
    lastError: registers[FW.lastError] ?? 0,
    received: readU32(registers, FW.received),
    capacity: readU32(registers, FW.capacity),
  };
}

/** BEGIN: command, image size, CRC-32 of the image, and the version the image carries, in one FC 16 write. */
export function beginRequest(model: ShelfModel, unit: number, size: number, crc: number, version: string): ModbusRequest {
  return {
    unit,
    fc: FC.writeMultipleRegisters,
    address: model.firmware.base + FW.command,
    values: [FwCommand.begin, ...u32(size), ...u32(crc), ...encodeAscii(version, VERSION_CHARS / 2)],
  };
}

/** One chunk of at most CHUNK_BYTES at `offset`; an odd last byte is padded with 0 (the length says so). */
export function chunkRequest(model: ShelfModel, unit: number, offset: number, data: Uint8Array): ModbusRequest {
  if (data.length === 0 || data.length > CHUNK_BYTES) throw new RangeError(`a chunk holds 1..${CHUNK_BYTES} bytes, got ${data.length}`);
  const words: number[] = [];
  for (let i = 0; i < data.length; i += 2) words.push((data[i]! << 8) | (data[i + 1] ?? 0));
  return { unit, fc: FC.writeMultipleRegisters, address: model.firmware.base + FW.chunk, values: [...u32(offset), data.length, ...words] };
}

export function fwCommandRequest(model: ShelfModel, unit: number, command: 'commit' | 'abort' | 'rollback'): ModbusRequest {
  return { unit, fc: FC.writeSingleRegister, address: model.firmware.base + FW.command, value: FwCommand[command] };
}
