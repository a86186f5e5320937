/** Every device class the hub can drive, by kind. The composition root hands this to the devices service. */
import type { DriverFactory } from '../hub/sdk/index.js';
import { rfidReaderFactory } from './rfid-reader/index.js';
import { smartShelfDriver } from './smart-shelf/index.js';

export const DRIVER_FACTORIES: ReadonlyMap<string, DriverFactory> = new Map<string, DriverFactory>([
  [rfidReaderFactory.kind, rfidReaderFactory as DriverFactory],
  [smartShelfDriver.kind, smartShelfDriver as DriverFactory],
]);
