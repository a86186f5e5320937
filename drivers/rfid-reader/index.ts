/**
 * The rfid-reader device class: fixed UHF readers that publish to the hub's broker (Impinj IoT device
 * interface, Zebra IoT Connector), or, for Impinj, whose HTTP data stream and REST API the hub uses
 * (transport http-stream). See README.md for the protocols as this driver understands them.
 */
import type { DriverFactory, HttpStreamTransport, MqttTransport } from '../../hub/sdk/index.js';
import { validateRfidReader } from './options.js';
import { RfidReaderDriver } from './reader-driver.js';

export const rfidReaderFactory: DriverFactory<MqttTransport | HttpStreamTransport> = {
  kind: 'rfid-reader',
  // Zebra: mqtt only (validate() says so); Impinj: either
  transport: ['mqtt', 'http-stream'],
  validate: validateRfidReader,
  create: (ctx) => new RfidReaderDriver(ctx),
};

export default rfidReaderFactory;

export { antennaZones, readerTopics, resolveOptions, type RfidReaderOptions, validateRfidReader } from './options.js';
export { RfidReaderDriver } from './reader-driver.js';
export { IMPINJ_STREAM_PATH } from './http-event-stream.js';
export { CONTROL_TIMEOUT_MS, type InventoryState } from './inventory-control.js';
export { NdjsonSplitter, parseImpinjEvent, parseImpinjPayload, parseImpinjStatus, type ImpinjEvent } from './impinj.js';
export { ConcatenatedJsonSplitter, parseZebraEvent, parseZebraPayload, parseZebraStatus, type ZebraEvent } from './zebra.js';
export type { ParseResult, PayloadRejection } from './payload.js';
