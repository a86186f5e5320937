/**
 * CRC-32 as zlib, PNG and Ethernet compute it (ISO 3309 / ITU-T V.42: reflected polynomial 0xEDB88320,
 * initial value and final XOR 0xFFFFFFFF; check value of "123456789" is 0xCBF43926). Shelf controllers
 * check a firmware image with it because their microcontrollers often have it in hardware.
 * Table-driven: images are kilobytes, not the few bytes of a Modbus frame. Written here because
 * zlib.crc32 arrived only in Node 20.15 and the hub supports 20.11 (package.json engines).
 */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
