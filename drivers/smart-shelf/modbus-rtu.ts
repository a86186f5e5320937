/**
 * Modbus RTU codec, the master's side: CRC, request encoding, response framing and decoding. Pure: no
 * I/O, no timers. Sources: "MODBUS over Serial Line Specification and Implementation Guide V1.02"
 * (SL) and "MODBUS Application Protocol Specification V1.1b3" (AP).
 */

/** Function codes this driver speaks (AP §6.3, §6.4, §6.6, §6.12). */
export const FC = {
  readHoldingRegisters: 0x03,
  readInputRegisters: 0x04,
  writeSingleRegister: 0x06,
  writeMultipleRegisters: 0x10,
} as const;

/** Exception codes (AP §7); other values are possible and are passed through. */
export const ExceptionCode = {
  illegalFunction: 0x01,
  illegalDataAddress: 0x02,
  illegalDataValue: 0x03,
  serverDeviceFailure: 0x04,
  acknowledge: 0x05,
  serverDeviceBusy: 0x06,
} as const;

/** SL §2.5.1.1: an RTU frame is at most 256 bytes (address + 253-byte PDU + 2-byte CRC). */
export const MAX_FRAME_BYTES = 256;
/** AP §6.3/§6.4: quantity 1..125 (0x7D); AP §6.12: 1..123 (0x7B). */
export const MAX_READ_REGISTERS = 125;
export const MAX_WRITE_REGISTERS = 123;

export type ModbusRequest =
  | { unit: number; fc: typeof FC.readHoldingRegisters | typeof FC.readInputRegisters; address: number; quantity: number }
  | { unit: number; fc: typeof FC.writeSingleRegister; address: number; value: number }
  | { unit: number; fc: typeof FC.writeMultipleRegisters; address: number; values: number[] };

export type ModbusResponse =
  | { unit: number; fc: typeof FC.readHoldingRegisters | typeof FC.readInputRegisters; registers: number[] }
  | { unit: number; fc: typeof FC.writeSingleRegister; address: number; value: number }
  | { unit: number; fc: typeof FC.writeMultipleRegisters; address: number; quantity: number };

export type ModbusErrorKind = 'crc' | 'exception' | 'unexpected' | 'short' | 'timeout' | 'closed';

/** Every failure of one request; `kind` is what retry logic and counters switch on, never the message. */
export class ModbusError extends Error {
  readonly kind: ModbusErrorKind;
  /** The exception code (AP §7) when kind is 'exception'. */
  readonly exceptionCode: number | undefined;

  constructor(kind: ModbusErrorKind, message: string, exceptionCode?: number) {
    super(message);
    this.name = 'ModbusError';
    this.kind = kind;
    this.exceptionCode = exceptionCode;
  }
}

export function isModbusError(err: unknown, kind?: ModbusErrorKind): err is ModbusError {
  return err instanceof ModbusError && (kind === undefined || err.kind === kind);
}

/**
 * CRC-16/MODBUS (SL §2.5.1.2 and §6.2.2): initial value 0xFFFF, reflected polynomial 0xA001, computed over
 * address + PDU. Bitwise on purpose: frames are short and this is the spec's own procedure, step for step.
 */
export function crc16(data: Uint8Array, start = 0, end = data.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) {
    crc ^= data[i]!;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

/** Appends the CRC low byte first (SL §2.5.1.2: "the low-order byte of the field is appended first"). */
function withCrc(body: Buffer): Buffer {
  const frame = Buffer.alloc(body.length + 2);
  body.copy(frame);
  frame.writeUInt16LE(crc16(body), body.length);
  return frame;
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer ${min}..${max}, got ${value}`);
}

/** Encodes a request ADU. Unit 0 is broadcast (SL §2.2), which only writes may use since nobody answers. */
export function encodeRequest(req: ModbusRequest): Buffer {
  checkRange('unit', req.unit, req.fc === FC.readHoldingRegisters || req.fc === FC.readInputRegisters ? 1 : 0, 247);
  checkRange('address', req.address, 0, 0xffff);
  switch (req.fc) {
    case FC.readHoldingRegisters:
    case FC.readInputRegisters: {
      checkRange('quantity', req.quantity, 1, MAX_READ_REGISTERS);
      checkRange('last address', req.address + req.quantity - 1, 0, 0xffff);
      const b = Buffer.alloc(6);
      b.writeUInt8(req.unit, 0);
      b.writeUInt8(req.fc, 1);
      b.writeUInt16BE(req.address, 2); // AP §4.2: Modbus is big-endian on the wire, except the CRC
      b.writeUInt16BE(req.quantity, 4);
      return withCrc(b);
    }
    case FC.writeSingleRegister: {
      checkRange('value', req.value, 0, 0xffff);
      const b = Buffer.alloc(6);
      b.writeUInt8(req.unit, 0);
      b.writeUInt8(req.fc, 1);
      b.writeUInt16BE(req.address, 2);
      b.writeUInt16BE(req.value, 4);
      return withCrc(b);
    }
    case FC.writeMultipleRegisters: {
      checkRange('quantity', req.values.length, 1, MAX_WRITE_REGISTERS);
      checkRange('last address', req.address + req.values.length - 1, 0, 0xffff);
      const b = Buffer.alloc(7 + 2 * req.values.length);
      b.writeUInt8(req.unit, 0);
      b.writeUInt8(req.fc, 1);
      b.writeUInt16BE(req.address, 2);
      b.writeUInt16BE(req.values.length, 4);
      b.writeUInt8(2 * req.values.length, 6);
      req.values.forEach((v, i) => {
        checkRange('value', v, 0, 0xffff);
        b.writeUInt16BE(v, 7 + 2 * i);
      });
      return withCrc(b);
    }
  }
}

/**
 * The length of a normal response to `req` (AP §6.3/§6.4: unit, fc, byte count, 2N bytes, CRC;
 * AP §6.6/§6.12: unit, fc, address, value-or-quantity, CRC). An exception response is always 5 bytes
 * (AP §7: unit, fc | 0x80, exception code, CRC).
 */
export function expectedResponseLength(req: ModbusRequest): number {
  return req.fc === FC.readHoldingRegisters || req.fc === FC.readInputRegisters ? 5 + 2 * req.quantity : 8;
}
export const EXCEPTION_FRAME_BYTES = 5;

/** Decodes a complete response frame to `req`; throws a ModbusError describing what is wrong with it. */
export function decodeResponse(req: ModbusRequest, frame: Buffer): ModbusResponse {
  if (frame.length < EXCEPTION_FRAME_BYTES) throw new ModbusError('short', `frame of ${frame.length} bytes is shorter than any response`);
  const crc = frame.readUInt16LE(frame.length - 2);
  if (crc !== crc16(frame, 0, frame.length - 2))
    throw new ModbusError('crc', `CRC mismatch: frame says 0x${hex16(crc)}, computed 0x${hex16(crc16(frame, 0, frame.length - 2))}`);
  const unit = frame[0]!;
  const fc = frame[1]!;
  if (unit !== req.unit) throw new ModbusError('unexpected', `answer from unit ${unit}, asked unit ${req.unit}`);
  if (fc === (req.fc | 0x80)) {
    const code = frame[2]!;
    throw new ModbusError('exception', `exception ${code} (${exceptionName(code)}) to function ${req.fc}`, code);
  }
  if (fc !== req.fc) throw new ModbusError('unexpected', `answer with function ${fc}, asked function ${req.fc}`);
  const expected = expectedResponseLength(req);
  if (frame.length < expected) throw new ModbusError('short', `frame of ${frame.length} bytes, expected ${expected}`);
  if (frame.length > expected) throw new ModbusError('unexpected', `frame of ${frame.length} bytes, expected ${expected}`);
  switch (req.fc) {
    case FC.readHoldingRegisters:
    case FC.readInputRegisters: {
      if (frame[2] !== 2 * req.quantity) throw new ModbusError('unexpected', `byte count ${frame[2]}, expected ${2 * req.quantity}`);
      const registers: number[] = [];
      for (let i = 0; i < req.quantity; i++) registers.push(frame.readUInt16BE(3 + 2 * i));
      return { unit, fc: req.fc, registers };
    }
    case FC.writeSingleRegister: {
      // AP §6.6: the normal response is an echo of the request
      const address = frame.readUInt16BE(2);
      const value = frame.readUInt16BE(4);
      if (address !== req.address || value !== req.value) throw new ModbusError('unexpected', `echo ${address}=${value} differs from the request`);
      return { unit, fc: req.fc, address, value };
    }
    case FC.writeMultipleRegisters: {
      const address = frame.readUInt16BE(2);
      const quantity = frame.readUInt16BE(4);
      if (address !== req.address || quantity !== req.values.length)
        throw new ModbusError('unexpected', `echo ${address}/${quantity} differs from the request`);
      return { unit, fc: req.fc, address, quantity };
    }
  }
}

export function exceptionName(code: number): string {
  const name = Object.entries(ExceptionCode).find(([, c]) => c === code)?.[0];
  return name ?? 'unknown';
}

function hex16(n: number): string {
  return n.toString(16).padStart(4, '0');
}

/**
 * RTU character and gap times (SL §2.5.1: a character is 11 bits: start, 8 data, parity or a second
 * stop bit, stop; SL §2.5.1.1: frames are separated by at least 3.5 character times, and above 19200
 * baud the spec fixes t3.5 at 1.750 ms, t1.5 at 0.750 ms, so a fast line does not need microsecond timers).
 */
export function characterTimeMs(baudRate: number): number {
  return (11 * 1000) / baudRate;
}

export function interFrameGapMs(baudRate: number): number {
  return baudRate > 19200 ? 1.75 : 3.5 * characterTimeMs(baudRate);
}

/** How long `bytes` take on the wire at `baudRate`, for timeouts that grow with the frame. */
export function frameTimeMs(bytes: number, baudRate: number): number {
  return bytes * characterTimeMs(baudRate);
}

export interface AssembledFrame {
  frame: Buffer;
  /** Bytes dropped in front of it because they could not start the expected answer. */
  skipped: number;
}

/**
 * Cuts the answer to a pending request out of the bytes received. RTU delimits frames by silence
 * (SL §2.5.1.1), but a pseudo-terminal or a USB RS-485 adapter does not preserve those gaps: chunks
 * arrive split or glued. A master that knows its pending request knows the length of the answer
 * (normal, or 5 bytes for an exception), so it frames by length instead, and hunts past leading bytes
 * that cannot start that answer (wrong unit, wrong function, wrong byte count). The CRC is checked by
 * decodeResponse, not here: a frame with the right header and length is the answer, good or bad.
 */
export class FrameAssembler {
  private buf: Buffer = Buffer.alloc(0);
  private dropped = 0;

  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
  }

  /** Drops everything held (bytes between frames are garbage once no answer is expected); returns how many. */
  discard(): number {
    const n = this.buf.length + this.dropped;
    this.buf = Buffer.alloc(0);
    this.dropped = 0;
    return n;
  }

  /** The complete answer to `req` when it is there; bytes after it stay for the next call. */
  take(req: ModbusRequest): AssembledFrame | undefined {
    const buf = this.buf;
    let i = 0;
    let found: number | undefined;
    while (i < buf.length) {
      const len = this.candidateLength(req, buf, i);
      if (len === 'skip') {
        i++;
        continue;
      }
      if (len !== 'more' && buf.length - i >= len) found = len;
      break;
    }
    // bytes before i can never start the answer: drop them now so the buffer stays bounded
    this.dropped += i;
    this.buf = buf.subarray(i);
    if (found === undefined) return undefined;
    const frame = Buffer.from(this.buf.subarray(0, found));
    this.buf = this.buf.subarray(found);
    const skipped = this.dropped;
    this.dropped = 0;
    return { frame, skipped };
  }

  private candidateLength(req: ModbusRequest, buf: Buffer, i: number): number | 'skip' | 'more' {
    if (buf[i] !== req.unit) return 'skip';
    if (i + 1 >= buf.length) return 'more';
    const fc = buf[i + 1];
    if (fc === (req.fc | 0x80)) return EXCEPTION_FRAME_BYTES;
    if (fc !== req.fc) return 'skip';
    if (req.fc === FC.readHoldingRegisters || req.fc === FC.readInputRegisters) {
      if (i + 2 >= buf.length) return 'more';
      if (buf[i + 2] !== 2 * req.quantity) return 'skip';
    }
    return expectedResponseLength(req);
  }
}
