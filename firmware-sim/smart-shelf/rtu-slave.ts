/**
 * The slave side of Modbus RTU, as the simulated shelf firmware runs it: cut requests out of the byte
 * stream, check them, and answer from a register bank. Sources: "MODBUS over Serial Line V1.02" (SL)
 * and "MODBUS Application Protocol V1.1b3" (AP). Independent of drivers/smart-shelf by design.
 */
import { crcOk, sealFrame } from './crc.js';

/** What the firmware's registers look like to the protocol layer. */
export interface RegisterBank {
  /** Registers, or an exception code (AP §7) such as 2 for an address outside the map. */
  read(table: 'holding' | 'input', address: number, quantity: number): number[] | { exception: number };
  write(address: number, values: number[]): { exception: number } | undefined;
}

export type SlaveAnswer =
  | { kind: 'reply'; frame: Buffer }
  | { kind: 'exception'; frame: Buffer; code: number }
  /** Not for us (another unit) or a broadcast (SL §2.1: unit 0 is never answered). */
  | { kind: 'silent' };

/**
 * Cuts requests out of received bytes. A request's length follows from its function code (AP §6: 8 bytes
 * for FC 1-6, 9 + byte count for FC 15/16). Real firmware frames by silence (SL §2.5.1.1); a pty keeps
 * no timing, so this frames by length, and treats a pause longer than `staleMs` as the end of whatever
 * partial frame was left (so one lost byte does not poison every later request).
 */
export class RequestFramer {
  private buf = Buffer.alloc(0);
  private lastAt = -Infinity;
  /** Candidate frames dropped because their CRC was wrong (SL §2.4.2: a slave does not answer those). */
  badFrames = 0;
  droppedBytes = 0;

  constructor(private readonly staleMs = 20) {}

  push(chunk: Buffer, now: number): Buffer[] {
    if (now - this.lastAt > this.staleMs && this.buf.length > 0) {
      this.droppedBytes += this.buf.length;
      this.buf = Buffer.alloc(0);
    }
    this.lastAt = now;
    this.buf = Buffer.concat([this.buf, chunk]);
    const frames: Buffer[] = [];
    while (this.buf.length >= 4) {
      const len = requestLength(this.buf);
      if (len === undefined) {
        // a function we do not know the length of: the whole buffer is the frame once its CRC fits
        if (!crcOk(this.buf)) break;
        frames.push(this.buf);
        this.buf = Buffer.alloc(0);
        break;
      }
      if (this.buf.length < len) break;
      const candidate = this.buf.subarray(0, len);
      if (crcOk(candidate)) {
        frames.push(Buffer.from(candidate));
        this.buf = this.buf.subarray(len);
      } else {
        // hunt: the frame may start one byte later (line noise in front of it)
        this.badFrames++;
        this.droppedBytes++;
        this.buf = this.buf.subarray(1);
      }
    }
    return frames;
  }
}

function requestLength(buf: Buffer): number | undefined {
  const fc = buf[1]!;
  if (fc >= 1 && fc <= 6) return 8;
  if (fc === 15 || fc === 16) return buf.length >= 7 ? 9 + buf[6]! : 9;
  return undefined;
}

function exception(unit: number, fc: number, code: number): SlaveAnswer {
  return { kind: 'exception', code, frame: sealFrame(Buffer.from([unit, fc | 0x80, code])) };
}

/** Answers one CRC-checked request frame for the slave at `unitId`. */
export function answerRequest(frame: Buffer, unitId: number, bank: RegisterBank): SlaveAnswer {
  const unit = frame[0]!;
  const fc = frame[1]!;
  if (unit !== unitId && unit !== 0) return { kind: 'silent' };
  const answer = (a: SlaveAnswer): SlaveAnswer => (unit === 0 ? { kind: 'silent' } : a);
  const address = frame.readUInt16BE(2);
  switch (fc) {
    case 3:
    case 4: {
      const quantity = frame.readUInt16BE(4);
      if (quantity < 1 || quantity > 125) return answer(exception(unit, fc, 3)); // AP §6.3/§6.4
      const got = bank.read(fc === 3 ? 'holding' : 'input', address, quantity);
      if (!Array.isArray(got)) return answer(exception(unit, fc, got.exception));
      const body = Buffer.alloc(3 + 2 * quantity);
      body[0] = unit;
      body[1] = fc;
      body[2] = 2 * quantity;
      got.forEach((v, i) => body.writeUInt16BE(v & 0xffff, 3 + 2 * i));
      return answer({ kind: 'reply', frame: sealFrame(body) });
    }
    case 6: {
      const failed = bank.write(address, [frame.readUInt16BE(4)]);
      if (failed) return answer(exception(unit, fc, failed.exception));
      return answer({ kind: 'reply', frame: sealFrame(frame.subarray(0, 6)) }); // AP §6.6: echo
    }
    case 16: {
      const quantity = frame.readUInt16BE(4);
      if (quantity < 1 || quantity > 123 || frame[6] !== 2 * quantity) return answer(exception(unit, fc, 3)); // AP §6.12
      const values: number[] = [];
      for (let i = 0; i < quantity; i++) values.push(frame.readUInt16BE(7 + 2 * i));
      const failed = bank.write(address, values);
      if (failed) return answer(exception(unit, fc, failed.exception));
      return answer({ kind: 'reply', frame: sealFrame(frame.subarray(0, 6)) });
    }
    default:
      return answer(exception(unit, fc, 1)); // AP §7: illegal function
  }
}
