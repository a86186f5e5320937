import { createRequire } from 'node:module';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { createMemoryLine } from '../hub/devices/transports/memory-line.js';
import { ModbusMaster, type FrameRejection } from '../drivers/smart-shelf/modbus-master.js';
import {
  crc16,
  decodeResponse,
  encodeRequest,
  FC,
  FrameAssembler,
  interFrameGapMs,
  isModbusError,
  ModbusError,
  type ModbusRequest,
} from '../drivers/smart-shelf/modbus-rtu.js';

// modbus-serial's CRC: another author's implementation to check ours against
const require = createRequire(import.meta.url);
const theirCrc16 = require('modbus-serial/utils/crc16.js') as (b: Buffer) => number;

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A response frame built here, byte by byte from the spec, not with the codec's encoder. */
function sealed(bytes: number[]): Buffer {
  const body = Buffer.from(bytes);
  const crc = theirCrc16(body);
  return Buffer.concat([body, Buffer.from([crc & 0xff, crc >> 8])]);
}

function readAnswer(unit: number, fc: number, registers: number[]): Buffer {
  return sealed([unit, fc, registers.length * 2, ...registers.flatMap((r) => [r >> 8, r & 0xff])]);
}

function expectModbusError(t: Test, fn: () => unknown, kind: ModbusError['kind'], code?: number): void {
  try {
    fn();
    t.fail(`expected a ${kind} error`);
  } catch (err) {
    t.ok(isModbusError(err, kind), `${kind} error: ${(err as Error).message}`);
    if (code !== undefined) t.equal((err as ModbusError).exceptionCode, code);
  }
}

async function rejectsWith(t: Test, p: Promise<unknown>, kind: ModbusError['kind'], code?: number): Promise<void> {
  await p.then(
    () => t.fail(`expected a ${kind} error`),
    (err: unknown) => {
      t.ok(isModbusError(err, kind), `${kind} error: ${(err as Error).message}`);
      if (code !== undefined) t.equal((err as ModbusError).exceptionCode, code);
    },
  );
}

t.test('CRC-16/MODBUS: known frames, another implementation, and the zero residue', async (t) => {
  // read 10 holding registers from unit 1: the CRC on the wire is C5 CD (low byte first)
  t.same(encodeRequest({ unit: 1, fc: FC.readHoldingRegisters, address: 0, quantity: 10 }), hex('01 03 0000 000A C5CD'));
  // the Modicon guide's example: unit 0x11 reads 3 registers from 0x006B
  t.same(encodeRequest({ unit: 0x11, fc: FC.readHoldingRegisters, address: 0x6b, quantity: 3 }), hex('11 03 006B 0003 7687'));
  t.equal(crc16(Buffer.alloc(0)), 0xffff, 'initial value 0xFFFF');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      const b = Buffer.from(bytes);
      const crc = crc16(b);
      // appending the CRC low byte first leaves a residue of zero: how receivers check whole frames
      return crc === theirCrc16(b) && crc16(Buffer.concat([b, Buffer.from([crc & 0xff, crc >> 8])])) === 0;
    }),
    { numRuns: 2000 },
  );
});

t.test('requests encode as the application protocol spec lays them out', async (t) => {
  // AP §6.6 example PDU: 06 0001 0003; AP §6.12 example PDU: 10 0001 0002 04 000A 0102
  t.same(encodeRequest({ unit: 1, fc: FC.writeSingleRegister, address: 1, value: 3 }).subarray(1, -2), hex('06 0001 0003'));
  t.same(encodeRequest({ unit: 1, fc: FC.writeMultipleRegisters, address: 1, values: [0x000a, 0x0102] }).subarray(1, -2), hex('10 0001 0002 04 000A 0102'));
  t.same(encodeRequest({ unit: 7, fc: FC.readInputRegisters, address: 8, quantity: 1 }).subarray(0, -2), hex('07 04 0008 0001'));
  t.throws(() => encodeRequest({ unit: 0, fc: FC.readHoldingRegisters, address: 0, quantity: 1 }), RangeError, 'nobody answers a broadcast read');
  t.throws(() => encodeRequest({ unit: 248, fc: FC.writeSingleRegister, address: 0, value: 1 }), RangeError, '248..255 are reserved');
  t.throws(() => encodeRequest({ unit: 1, fc: FC.readHoldingRegisters, address: 0, quantity: 126 }), RangeError, 'at most 125 registers');
  t.throws(() => encodeRequest({ unit: 1, fc: FC.readHoldingRegisters, address: 0xfff0, quantity: 32 }), RangeError, 'past the last address');
  t.throws(() => encodeRequest({ unit: 1, fc: FC.writeMultipleRegisters, address: 0, values: new Array(124).fill(0) }), RangeError, 'at most 123 registers');
  t.throws(() => encodeRequest({ unit: 1, fc: FC.writeSingleRegister, address: 0, value: 0x10000 }), RangeError);

  // round trip: every valid request reads back field for field (parsed here by hand, not by the codec)
  const request = fc.oneof(
    fc.record({
      unit: fc.integer({ min: 1, max: 247 }),
      fc: fc.constantFrom(FC.readHoldingRegisters, FC.readInputRegisters),
      address: fc.integer({ min: 0, max: 0xff00 }),
      quantity: fc.integer({ min: 1, max: 125 }),
    }),
    fc.record({
      unit: fc.integer({ min: 0, max: 247 }),
      fc: fc.constant(FC.writeSingleRegister),
      address: fc.integer({ min: 0, max: 0xffff }),
      value: fc.integer({ min: 0, max: 0xffff }),
    }),
    fc.record({
      unit: fc.integer({ min: 0, max: 247 }),
      fc: fc.constant(FC.writeMultipleRegisters),
      address: fc.integer({ min: 0, max: 0xff00 }),
      values: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 123 }),
    }),
  );
  fc.assert(
    fc.property(request, (req) => {
      const b = encodeRequest(req as ModbusRequest);
      if (theirCrc16(b.subarray(0, -2)) !== b.readUInt16LE(b.length - 2)) return false;
      const parsed: Record<string, unknown> = { unit: b[0], fc: b[1], address: b.readUInt16BE(2) };
      if (req.fc === FC.writeSingleRegister) parsed.value = b.readUInt16BE(4);
      else if (req.fc === FC.writeMultipleRegisters) {
        if (b[6] !== 2 * b.readUInt16BE(4)) return false;
        parsed.values = Array.from({ length: b.readUInt16BE(4) }, (_, i) => b.readUInt16BE(7 + 2 * i));
      } else parsed.quantity = b.readUInt16BE(4);
      return isDeepStrictEqual(parsed, { ...req }); // fast-check records have a null prototype
    }),
    { numRuns: 300 },
  );
  t.pass('300 random requests read back field for field');
});

t.test('responses decode, with typed errors for what is wrong with them', async (t) => {
  const read: ModbusRequest = { unit: 5, fc: FC.readHoldingRegisters, address: 0, quantity: 2 };
  t.same(decodeResponse(read, readAnswer(5, 3, [0x1234, 0xfffe])), { unit: 5, fc: 3, registers: [0x1234, 0xfffe] });
  const bad = readAnswer(5, 3, [1, 2]);
  bad[bad.length - 1]! ^= 0x01;
  expectModbusError(t, () => decodeResponse(read, bad), 'crc');
  expectModbusError(t, () => decodeResponse(read, sealed([5, 0x83, 0x02])), 'exception', 2);
  expectModbusError(t, () => decodeResponse(read, readAnswer(6, 3, [1, 2])), 'unexpected');
  expectModbusError(t, () => decodeResponse(read, readAnswer(5, 4, [1, 2])), 'unexpected');
  expectModbusError(t, () => decodeResponse(read, readAnswer(5, 3, [1])), 'short');
  expectModbusError(t, () => decodeResponse(read, readAnswer(5, 3, [1, 2, 3])), 'unexpected');
  expectModbusError(t, () => decodeResponse(read, hex('0503')), 'short');
  const write: ModbusRequest = { unit: 5, fc: FC.writeSingleRegister, address: 3, value: 1 };
  t.same(decodeResponse(write, sealed([5, 6, 0, 3, 0, 1])), { unit: 5, fc: 6, address: 3, value: 1 });
  expectModbusError(t, () => decodeResponse(write, sealed([5, 6, 0, 3, 0, 2])), 'unexpected');
  const multi: ModbusRequest = { unit: 5, fc: FC.writeMultipleRegisters, address: 0x100, values: [1, 2] };
  t.same(decodeResponse(multi, sealed([5, 0x10, 1, 0, 0, 2])), { unit: 5, fc: 16, address: 0x100, quantity: 2 });
  expectModbusError(t, () => decodeResponse(multi, sealed([5, 0x90, 4])), 'exception', 4);
});

t.test('the assembler frames answers split anywhere, glued together, or behind garbage', async (t) => {
  const arb = fc.record({
    unit: fc.integer({ min: 1, max: 247 }),
    registers: fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 1, maxLength: 125 }),
    exception: fc.option(fc.integer({ min: 1, max: 11 }), { nil: undefined }),
    garbage: fc.uint8Array({ maxLength: 12 }),
    cuts: fc.array(fc.nat(), { maxLength: 6 }),
  });
  fc.assert(
    fc.property(arb, ({ unit, registers, exception, garbage, cuts }) => {
      const req: ModbusRequest = { unit, fc: FC.readInputRegisters, address: 0, quantity: registers.length };
      const answer = exception === undefined ? readAnswer(unit, 4, registers) : sealed([unit, 0x84, exception]);
      // garbage that could pass for the answer's header would be a real ambiguity, not a framing bug
      const noise = Buffer.from(garbage.map((b) => (b === unit ? (b + 1) & 0xff : b)));
      const stream = Buffer.concat([noise, answer]);
      const points = [...new Set(cuts.map((c) => c % stream.length))].sort((a, b) => a - b);
      const asm = new FrameAssembler();
      let got: ReturnType<FrameAssembler['take']>;
      let from = 0;
      for (const p of [...points, stream.length]) {
        if (got !== undefined) return false; // complete before its last byte arrived
        asm.push(stream.subarray(from, p));
        from = p;
        got = asm.take(req);
      }
      if (got === undefined || !got.frame.equals(answer) || got.skipped !== noise.length) return false;
      if (exception !== undefined) {
        try {
          decodeResponse(req, got.frame);
          return false;
        } catch (err) {
          return isModbusError(err, 'exception') && err.exceptionCode === exception;
        }
      }
      const res = decodeResponse(req, got.frame);
      return 'registers' in res && res.registers.every((r, i) => r === registers[i]);
    }),
    { numRuns: 1000 },
  );

  // glued: two answers in one chunk (a late answer and the next one) come out one at a time
  const req: ModbusRequest = { unit: 1, fc: FC.readHoldingRegisters, address: 0, quantity: 2 };
  const asm = new FrameAssembler();
  asm.push(Buffer.concat([readAnswer(1, 3, [1, 2]), readAnswer(1, 3, [3, 4]), hex('01')]));
  t.same(asm.take(req)?.frame, readAnswer(1, 3, [1, 2]));
  t.same(asm.take(req)?.frame, readAnswer(1, 3, [3, 4]));
  t.equal(asm.take(req), undefined, 'a lone unit byte waits for more');
  t.equal(asm.discard(), 1, 'leftovers are discarded before the next request');
  // a frame with the right header and length but a bad CRC is still the answer: decode reports it
  const corrupt = readAnswer(1, 3, [1, 2]);
  corrupt[4]! ^= 0xff;
  asm.push(corrupt);
  const got = asm.take(req);
  t.ok(got);
  expectModbusError(t, () => decodeResponse(req, got!.frame), 'crc');
});

t.test('inter-frame gap: 3.5 characters of 11 bits, fixed 1.75 ms above 19200 baud', async (t) => {
  t.equal(interFrameGapMs(9600).toFixed(3), '4.010');
  t.equal(interFrameGapMs(19200).toFixed(3), '2.005');
  t.equal(interFrameGapMs(38400), 1.75);
  t.equal(interFrameGapMs(115200), 1.75);
});

/** A scripted slave on the far end of an in-memory line: answers each request with `reply(req, n)`. */
function scriptedSlave(reply: (frame: Buffer, n: number) => Buffer | Buffer[] | undefined) {
  const [master, slave] = createMemoryLine('serial');
  const seen: { frame: Buffer; at: number }[] = [];
  slave.onData((frame) => {
    seen.push({ frame, at: performance.now() });
    const out = reply(frame, seen.length);
    for (const chunk of Array.isArray(out) ? out : out ? [out] : []) void slave.write(chunk);
  });
  return { master, slave, seen };
}

t.test('master: one request at a time, gaps kept, retries, exceptions not retried, stray bytes counted', async (t) => {
  const req: ModbusRequest = { unit: 9, fc: FC.readHoldingRegisters, address: 0, quantity: 1 };
  let replyAfter = 0;
  const {
    master: line,
    slave,
    seen,
  } = scriptedSlave((frame, n) => {
    if (n === 2) return undefined; // the second request goes unanswered: a timeout, then a retry
    if (n === 4) {
      const corrupt = readAnswer(9, 3, [7]);
      corrupt[4]! ^= 1;
      return corrupt; // a CRC error, retried
    }
    if (frame[1] === 6) return sealed([9, 0x86, 3]); // writes are refused: an exception, not retried
    // answer split in two chunks behind two bytes of noise
    const a = readAnswer(9, 3, [replyAfter++]);
    return [Buffer.from([0xee, 0x00]), a.subarray(0, 3), a.subarray(3)];
  });
  await line.open();
  await slave.open();
  const rejects: FrameRejection[] = [];
  const m = new ModbusMaster(line, { baudRate: 1200, timeoutMs: 60, retries: 2 }, (r) => rejects.push(r));
  m.attach();
  // three requests at once: the slave must see them one after another, each after the previous answer
  const results = await Promise.allSettled([m.request(req), m.request(req), m.request(req)]);
  t.same(
    results.map((r) => (r.status === 'fulfilled' && 'registers' in r.value ? r.value.registers[0] : r.status)),
    [0, 1, 2],
    'all answered, in order (the second after a timeout and a retry, the third after a CRC error)',
  );
  for (let i = 1; i < seen.length; i++) {
    // at 1200 baud t3.5 is 32 ms: no request may follow the previous one sooner (lower bound only)
    t.ok(seen[i]!.at - seen[i - 1]!.at >= 30, `request ${i + 1} waited for the gap`);
  }
  t.equal(m.counters.timeouts, 1);
  t.equal(m.counters.crcErrors, 1);
  t.ok(m.counters.strayBytes >= 4, 'noise in front of answers is counted');
  const before = seen.length;
  await rejectsWith(t, m.request({ unit: 9, fc: FC.writeSingleRegister, address: 3, value: 1 }), 'exception', 3);
  t.equal(seen.length, before + 1, 'an exception is the device saying no: not retried');
  t.equal(m.counters.exceptions, 1);
  t.ok(rejects.includes('timeout') && rejects.includes('crc') && rejects.includes('exception') && rejects.includes('malformed'));

  // a babbling slave between frames: the bytes are flushed and counted before the next request
  await slave.write(Buffer.from('babble'));
  await new Promise((r) => setTimeout(r, 20));
  const stray = m.counters.strayBytes;
  await m.request(req);
  t.ok(m.counters.strayBytes >= stray + 6, 'bytes between frames are flushed and counted');

  // silence: every attempt times out, and the error says so
  const silent = new ModbusMaster(line, { baudRate: 19200, timeoutMs: 20, retries: 1 });
  m.close();
  silent.attach();
  await rejectsWith(t, silent.request({ ...req, unit: 10 }), 'timeout'); // an answer from another unit is not ours
  t.equal(silent.counters.attempts, 2, 'one try and one retry');
  const pending = silent.request({ ...req, unit: 10 });
  silent.close();
  await rejectsWith(t, pending, 'closed'); // closing fails what is in flight
});
