import fc from 'fast-check';
import t from 'tap';
import { decodeSgtin96, gs1CheckDigit, isSgtin96 } from '../hub/inventory/sgtin96.js';

/*
 * An encoder written for this test only, independently of the decoder: it builds the 96 bits as a
 * string of '0'/'1' characters from its own copy of the TDS partition table, then reads them out four
 * at a time. (The decoder works on a BigInt.)
 */
const TABLE: Record<number, [cpBits: number, cpDigits: number, irBits: number, irDigits: number]> = {
  0: [40, 12, 4, 1],
  1: [37, 11, 7, 2],
  2: [34, 10, 10, 3],
  3: [30, 9, 14, 4],
  4: [27, 8, 17, 5],
  5: [24, 7, 20, 6],
  6: [20, 6, 24, 7],
};

const bits = (value: bigint, width: number) => value.toString(2).padStart(width, '0');

function encode(filter: number, partition: number, companyPrefix: bigint, itemReference: bigint, serial: bigint): string {
  const [cpBits, , irBits] = TABLE[partition]!;
  const binary =
    '00110000' + bits(BigInt(filter), 3) + bits(BigInt(partition), 3) + bits(companyPrefix, cpBits) + bits(itemReference, irBits) + bits(serial, 38);
  let hex = '';
  for (let i = 0; i < 96; i += 4) hex += parseInt(binary.slice(i, i + 4), 2).toString(16);
  return hex.toUpperCase();
}

/** GTIN-14 check digit the long way: weight 3 on odd positions counted from the left of 13 digits. */
function checkDigit(thirteen: string): number {
  let sum = 0;
  for (let i = 0; i < 13; i++) sum += Number(thirteen[i]) * (i % 2 === 0 ? 3 : 1);
  return (10 - (sum % 10)) % 10;
}

t.test('the TDS worked example decodes (TDS section 14.5.1 / Annex E)', async (t) => {
  const r = decodeSgtin96('3074257BF7194E4000001A85');
  t.ok(isSgtin96(r));
  t.match(r, {
    kind: 'sgtin-96',
    filter: 3,
    partition: 5,
    companyPrefix: '0614141',
    itemReference: '812345',
    serial: '6789',
    gtin14: '80614141123458',
    pureIdentityUri: 'urn:epc:id:sgtin:0614141.812345.6789',
    tagUri: 'urn:epc:tag:sgtin-96:3.0614141.812345.6789',
  });
  t.same(decodeSgtin96('3074257bf7194e4000001a85'), r, 'lower-case hex is the same EPC');
});

t.test('the test encoder agrees with the worked example', async (t) => {
  t.equal(encode(3, 5, 614141n, 812345n, 6789n), '3074257BF7194E4000001A85');
});

t.test('GS1 check digits', async (t) => {
  t.equal(gs1CheckDigit('8061414112345'), 8);
  t.equal(gs1CheckDigit('0950110153000'), 3, 'GS1 General Specifications example GTIN 09501101530003');
  t.equal(gs1CheckDigit('0000000000000'), 0);
});

t.test('every partition, at the edges of its fields', async (t) => {
  for (let p = 0; p <= 6; p++) {
    const [, cpDigits, , irDigits] = TABLE[p]!;
    const cpMax = 10n ** BigInt(cpDigits) - 1n;
    const irMax = 10n ** BigInt(irDigits) - 1n;
    for (const [cp, ir, serial] of [
      [0n, 0n, 0n],
      [cpMax, irMax, (1n << 38n) - 1n],
      [1n, irMax, 1n],
    ] as const) {
      const r = decodeSgtin96(encode(1, p, cp, ir, serial));
      if (!isSgtin96(r)) {
        t.fail(`partition ${p} did not decode: ${r.reason}`);
        continue;
      }
      t.equal(r.companyPrefix.length, cpDigits, `partition ${p}: company prefix has ${cpDigits} digits`);
      t.equal(r.itemReference.length, irDigits, `partition ${p}: item reference has ${irDigits} digits`);
      t.equal(r.gtin14.length, 14);
      t.equal(BigInt(r.serial), serial);
    }
  }
});

t.test('what is not an SGTIN-96 comes back typed, never thrown', async (t) => {
  t.same(decodeSgtin96('3074257BF7194E4000001A8'), { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' }, '23 digits');
  t.same(decodeSgtin96('3074257BF7194E4000001A8500'), { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' }, '26 digits');
  t.same(decodeSgtin96('3074257BF7194E4000001AXY'), { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' }, 'not hex');
  t.same(decodeSgtin96(''), { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' });
  // an SSCC-96 (header 0x31) and a vendor EPC seen on an Impinj test tag (header 0x7E)
  t.same(decodeSgtin96('317A7202CC164BA20B000000'), { kind: 'not-sgtin-96', reason: 'other_header', header: 0x31 });
  t.same(decodeSgtin96('7EDA9038051002710002C0AE'), { kind: 'not-sgtin-96', reason: 'other_header', header: 0x7e });
  // partition 7: header 0x30, filter 3, partition 111
  t.same(decodeSgtin96('307C257BF7194E4000001A85'), { kind: 'not-sgtin-96', reason: 'invalid_partition', header: 0x30 });
  // partition 5 has 24 bits for a 7-digit company prefix: 2^24 - 1 = 16777215 has 8 digits
  t.same(decodeSgtin96(encode(3, 5, (1n << 24n) - 1n, 0n, 0n)), { kind: 'not-sgtin-96', reason: 'field_out_of_range', header: 0x30 });
  // partition 0 has 4 bits for a 1-digit item reference: 15 is out of range
  t.same(decodeSgtin96(encode(3, 0, 0n, 15n, 0n)), { kind: 'not-sgtin-96', reason: 'field_out_of_range', header: 0x30 });
  t.same(decodeSgtin96(undefined as unknown as string), { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' });
});

const sgtinFields = fc
  .record({ filter: fc.integer({ min: 0, max: 7 }), partition: fc.integer({ min: 0, max: 6 }), serial: fc.bigInt({ min: 0n, max: (1n << 38n) - 1n }) })
  .chain((f) => {
    const [, cpDigits, , irDigits] = TABLE[f.partition]!;
    return fc.record({
      filter: fc.constant(f.filter),
      partition: fc.constant(f.partition),
      serial: fc.constant(f.serial),
      cp: fc.bigInt({ min: 0n, max: 10n ** BigInt(cpDigits) - 1n }),
      ir: fc.bigInt({ min: 0n, max: 10n ** BigInt(irDigits) - 1n }),
    });
  });

t.test('property: decode(encode(x)) gives x back, with the GTIN-14 and URI built from it', async (t) => {
  fc.assert(
    fc.property(sgtinFields, ({ filter, partition, serial, cp, ir }) => {
      const [, cpDigits, , irDigits] = TABLE[partition]!;
      const r = decodeSgtin96(encode(filter, partition, cp, ir, serial));
      if (!isSgtin96(r)) return false;
      const companyPrefix = cp.toString().padStart(cpDigits, '0');
      const itemReference = ir.toString().padStart(irDigits, '0');
      const thirteen = itemReference[0] + companyPrefix + itemReference.slice(1);
      return (
        r.filter === filter &&
        r.partition === partition &&
        r.companyPrefix === companyPrefix &&
        r.itemReference === itemReference &&
        r.serial === serial.toString() &&
        r.gtin14 === thirteen + checkDigit(thirteen) &&
        r.pureIdentityUri === `urn:epc:id:sgtin:${companyPrefix}.${itemReference}.${serial}`
      );
    }),
    { numRuns: 2000 },
  );
  t.pass('2000 round trips');
});

t.test('property: any 24 hex digits decode without throwing, and only header 0x30 with a valid partition is an SGTIN', async (t) => {
  fc.assert(
    fc.property(fc.oneof(fc.stringMatching(/^[0-9A-F]{24}$/), fc.stringMatching(/^30[0-9A-F]{22}$/)), (hex) => {
      const r = decodeSgtin96(hex);
      const header = parseInt(hex.slice(0, 2), 16);
      const partition = (parseInt(hex.slice(2, 4), 16) >> 2) & 7;
      if (header !== 0x30) return r.kind === 'not-sgtin-96' && r.reason === 'other_header';
      if (partition === 7) return r.kind === 'not-sgtin-96' && r.reason === 'invalid_partition';
      return r.kind === 'sgtin-96' || r.reason === 'field_out_of_range';
    }),
    { numRuns: 2000 },
  );
  fc.assert(fc.property(fc.string(), (s) => decodeSgtin96(s).kind !== undefined));
  t.pass('no throw');
});
