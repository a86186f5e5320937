/** Simulated fixed RFID readers (Impinj IoT device interface, Zebra IoT Connector) over MQTT. */
export { RfidReaderSimulator, type RfidReaderSimulatorOptions, type SimulatorStats } from './reader-simulator.js';
export { encodeSgtin96, type SgtinFields } from './sgtin-encoder.js';
export type { MalformedKind, Vendor } from './wire-formats.js';
