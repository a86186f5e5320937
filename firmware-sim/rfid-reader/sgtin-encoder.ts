/**
 * The simulator's own GS1 SGTIN-96 encoder (TDS section 14.5.1), kept apart from the hub's decoder so
 * that a shared mistake cannot hide in both. Builds the 96 bits by arithmetic on a BigInt.
 */

/** Company prefix digits -> partition value and bit widths (TDS Table 14-2). */
const PARTITION_BY_CP_DIGITS: Record<number, { partition: number; cpBits: number; irBits: number }> = {
  12: { partition: 0, cpBits: 40, irBits: 4 },
  11: { partition: 1, cpBits: 37, irBits: 7 },
  10: { partition: 2, cpBits: 34, irBits: 10 },
  9: { partition: 3, cpBits: 30, irBits: 14 },
  8: { partition: 4, cpBits: 27, irBits: 17 },
  7: { partition: 5, cpBits: 24, irBits: 20 },
  6: { partition: 6, cpBits: 20, irBits: 24 },
};

export interface SgtinFields {
  /** 0..7; 1 = point of sale item (TDS Table 10-1). */
  filter: number;
  /** 6 to 12 digits. */
  companyPrefix: string;
  /** Indicator digit followed by the item reference: 13 - companyPrefix.length digits. */
  itemReference: string;
  /** 0 .. 2^38 - 1. */
  serial: bigint | number;
}

/** The EPC as 24 upper-case hex digits. Throws on fields that do not fit (simulator set-up errors). */
export function encodeSgtin96(f: SgtinFields): string {
  const layout = PARTITION_BY_CP_DIGITS[f.companyPrefix.length];
  if (!layout || !/^\d+$/.test(f.companyPrefix)) throw new Error(`company prefix ${f.companyPrefix} must be 6 to 12 digits`);
  if (!/^\d+$/.test(f.itemReference) || f.companyPrefix.length + f.itemReference.length !== 13) {
    throw new Error(`item reference ${f.itemReference} must have ${13 - f.companyPrefix.length} digits`);
  }
  const serial = BigInt(f.serial);
  if (serial < 0n || serial >= 1n << 38n) throw new Error(`serial ${serial} does not fit in 38 bits`);
  if (!Number.isInteger(f.filter) || f.filter < 0 || f.filter > 7) throw new Error(`filter ${f.filter} must be 0..7`);
  let value = 0x30n;
  value = (value << 3n) | BigInt(f.filter);
  value = (value << 3n) | BigInt(layout.partition);
  value = (value << BigInt(layout.cpBits)) | BigInt(f.companyPrefix);
  value = (value << BigInt(layout.irBits)) | BigInt(f.itemReference);
  value = (value << 38n) | serial;
  return value.toString(16).padStart(24, '0').toUpperCase();
}
