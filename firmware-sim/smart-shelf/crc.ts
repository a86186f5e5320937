/**
 * CRC-16/MODBUS for the simulated shelf firmware, table-driven as small controllers usually do it
 * (MODBUS over Serial Line V1.02 §6.2.2 gives both the bitwise procedure and a table variant).
 * Written apart from the driver's codec on purpose: a simulator that shared the driver's CRC would
 * agree with any bug in it. Parameters: reflected polynomial 0xA001, initial value 0xFFFF, and the
 * result goes on the wire low byte first (§2.5.1.2).
 */
const TABLE = (() => {
  const table = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xa001 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function modbusCrc(bytes: Uint8Array): number {
  let crc = 0xffff;
  for (const b of bytes) crc = (crc >>> 8) ^ TABLE[(crc ^ b) & 0xff]!;
  return crc;
}

/** True when the last two bytes are the CRC of the rest, low byte first. */
export function crcOk(frame: Uint8Array): boolean {
  if (frame.length < 3) return false;
  const crc = modbusCrc(frame.subarray(0, frame.length - 2));
  return frame[frame.length - 2] === (crc & 0xff) && frame[frame.length - 1] === crc >>> 8;
}

/** The frame with its CRC appended. */
export function sealFrame(body: Uint8Array): Buffer {
  const crc = modbusCrc(body);
  return Buffer.concat([body, Buffer.from([crc & 0xff, crc >>> 8])]);
}
