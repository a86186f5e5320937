/**
 * GS1 SGTIN-96 decoding: a 96-bit EPC (24 hex digits) to GTIN-14, serial and the EPC URIs.
 *
 * Layout per the GS1 EPC Tag Data Standard (TDS 2.x section 14.5.1, SGTIN-96):
 *   header 8 bits (0x30) | filter 3 | partition 3 | company prefix M bits | item reference N bits | serial 38
 * where M + N = 44 and the partition value selects M and N from the partition table below. The item
 * reference field carries the GTIN's indicator digit as its first digit, so a GTIN-14 is
 * indicator + company prefix + the rest of the item reference + the GS1 mod-10 check digit.
 *
 * Never throws: anything that is not a valid SGTIN-96 comes back as a typed NotSgtin96, and callers
 * keep such EPCs opaque.
 */

/** TDS Table 14-2 (SGTIN partition table): company prefix bits/digits vs item reference bits/digits. */
export const SGTIN_PARTITIONS: readonly { cpBits: number; cpDigits: number; irBits: number; irDigits: number }[] = [
  { cpBits: 40, cpDigits: 12, irBits: 4, irDigits: 1 },
  { cpBits: 37, cpDigits: 11, irBits: 7, irDigits: 2 },
  { cpBits: 34, cpDigits: 10, irBits: 10, irDigits: 3 },
  { cpBits: 30, cpDigits: 9, irBits: 14, irDigits: 4 },
  { cpBits: 27, cpDigits: 8, irBits: 17, irDigits: 5 },
  { cpBits: 24, cpDigits: 7, irBits: 20, irDigits: 6 },
  { cpBits: 20, cpDigits: 6, irBits: 24, irDigits: 7 },
];

/** The SGTIN-96 header value (TDS Table 14-1). */
export const SGTIN96_HEADER = 0x30;

export interface Sgtin96 {
  kind: 'sgtin-96';
  /** GTIN-14: indicator digit, company prefix, item reference without the indicator, check digit. */
  gtin14: string;
  /** GS1 company prefix, zero-padded to the digit count the partition gives it. */
  companyPrefix: string;
  /** Item reference including the leading indicator digit, zero-padded (13 - company prefix digits). */
  itemReference: string;
  /** Serial number in decimal, without leading zeros (SGTIN-96 serials are numeric, < 2^38). */
  serial: string;
  filter: number;
  partition: number;
  /** `urn:epc:id:sgtin:CompanyPrefix.ItemReference.Serial` (TDS section 6.3.1). */
  pureIdentityUri: string;
  /** `urn:epc:tag:sgtin-96:Filter.CompanyPrefix.ItemReference.Serial` (TDS section 12.3). */
  tagUri: string;
}

export type NotSgtin96Reason =
  /** Not 24 hexadecimal digits. */
  | 'not_96_bit_hex'
  /** A valid 96-bit EPC of another scheme (SSCC-96, GIAI-96, a vendor's own numbering...). */
  | 'other_header'
  /** Partition value 7, which the table does not define. */
  | 'invalid_partition'
  /** The company prefix or item reference field holds more digits than the partition allows. */
  | 'field_out_of_range';

export interface NotSgtin96 {
  kind: 'not-sgtin-96';
  reason: NotSgtin96Reason;
  /** The header byte, when the input was 96-bit hex. */
  header?: number;
}

export type Sgtin96Result = Sgtin96 | NotSgtin96;

export const isSgtin96 = (r: Sgtin96Result): r is Sgtin96 => r.kind === 'sgtin-96';

const HEX96 = /^[0-9A-Fa-f]{24}$/;
const SERIAL_MASK = (1n << 38n) - 1n;
const CP_IR_MASK = (1n << 44n) - 1n;

/** GS1 General Specifications section 7.9.1: weights 3,1,3,... from the rightmost digit. */
export function gs1CheckDigit(digits: string): number {
  let sum = 0;
  for (let i = digits.length - 1, weight = 3; i >= 0; i--, weight = 4 - weight) sum += (digits.charCodeAt(i) - 48) * weight;
  return (10 - (sum % 10)) % 10;
}

export function decodeSgtin96(epcHex: string): Sgtin96Result {
  if (typeof epcHex !== 'string' || !HEX96.test(epcHex)) return { kind: 'not-sgtin-96', reason: 'not_96_bit_hex' };
  const value = BigInt(`0x${epcHex}`);
  const header = Number(value >> 88n);
  if (header !== SGTIN96_HEADER) return { kind: 'not-sgtin-96', reason: 'other_header', header };
  const filter = Number((value >> 85n) & 7n);
  const partition = Number((value >> 82n) & 7n);
  const row = SGTIN_PARTITIONS[partition];
  if (!row) return { kind: 'not-sgtin-96', reason: 'invalid_partition', header };

  const cpAndIr = (value >> 38n) & CP_IR_MASK;
  const cpValue = cpAndIr >> BigInt(row.irBits);
  const irValue = cpAndIr & ((1n << BigInt(row.irBits)) - 1n);
  // TDS section 14.3.3: a field whose value needs more digits than the partition gives it is invalid.
  if (cpValue >= 10n ** BigInt(row.cpDigits) || irValue >= 10n ** BigInt(row.irDigits)) {
    return { kind: 'not-sgtin-96', reason: 'field_out_of_range', header };
  }
  const companyPrefix = cpValue.toString().padStart(row.cpDigits, '0');
  const itemReference = irValue.toString().padStart(row.irDigits, '0');
  const serial = (value & SERIAL_MASK).toString();
  const body = itemReference[0] + companyPrefix + itemReference.slice(1);
  return {
    kind: 'sgtin-96',
    gtin14: body + gs1CheckDigit(body),
    companyPrefix,
    itemReference,
    serial,
    filter,
    partition,
    pureIdentityUri: `urn:epc:id:sgtin:${companyPrefix}.${itemReference}.${serial}`,
    tagUri: `urn:epc:tag:sgtin-96:${filter}.${companyPrefix}.${itemReference}.${serial}`,
  };
}
