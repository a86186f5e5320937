/** Simulated fixed RFID readers (Impinj IoT device interface, Zebra IoT Connector) over MQTT, and Impinj's HTTP(S) REST API and data stream. */
export { RfidReaderSimulator, type RfidReaderSimulatorOptions, type SimulatorStats } from './reader-simulator.js';
export type { ImpinjHttpOptions } from './impinj-http.js';
export { encodeSgtin96, type SgtinFields } from './sgtin-encoder.js';
export type { MalformedKind, Vendor } from './wire-formats.js';
