/** The smart-shelf simulator: a Modbus RTU slave on a serial port, with fault injection. */
export { ShelfSimulator, type ShelfSimulatorOptions, type ShelfSimulatorStats } from './shelf-simulator.js';
export { createPtyPair, type PtyPair } from './pty-pair.js';
export type { FaultRates } from './faults.js';
export type { SimModel, SimWordOrder } from './shelf-registers.js';
