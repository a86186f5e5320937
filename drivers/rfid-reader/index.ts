/**
 * The rfid-reader device class: fixed UHF readers that publish to the hub's broker (Impinj IoT device
 * interface, Zebra IoT Connector). See README.md for the protocols as this driver understands them.
 */
import type { DriverFactory, MqttTransport } from '../../hub/sdk/index.js';
import { validateRfidReader } from './options.js';
import { RfidReaderDriver } from './reader-driver.js';

export const rfidReaderFactory: DriverFactory<MqttTransport> = {
  kind: 'rfid-reader',
  transport: 'mqtt',
  validate: validateRfidReader,
  create: (ctx) => new RfidReaderDriver(ctx),
};

export default rfidReaderFactory;

export { antennaZones, readerTopics, resolveOptions, type RfidReaderOptions, validateRfidReader } from './options.js';
export { RfidReaderDriver } from './reader-driver.js';
export { NdjsonSplitter, parseImpinjEvent, parseImpinjPayload, parseImpinjStatus, type ImpinjEvent } from './impinj.js';
export { ConcatenatedJsonSplitter, parseZebraEvent, parseZebraPayload, parseZebraStatus, type ZebraEvent } from './zebra.js';
export type { ParseResult, PayloadRejection } from './payload.js';
