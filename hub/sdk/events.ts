/**
 * Events drivers emit. Each carries the device id and the time the device (or the driver, when the
 * device gives none) says it happened; the hub adds its receive time.
 */
export interface RfidReadEvent {
  type: 'rfid.read';
  deviceId: string;
  time: number;
  /** EPC as upper-case hex. */
  epc: string;
  antenna: number;
  /** Peak RSSI in dBm, when reported. */
  rssi?: number;
}

export interface ShelfWeightEvent {
  type: 'shelf.weight';
  deviceId: string;
  time: number;
  lane: number;
  /** Net weight on the lane in grams (after the scale's own tare). */
  grams: number;
  stable: boolean;
  flags: { motion: boolean; overCapacity: boolean; dataOk: boolean };
  /** Items on the lane, when the lane's unit weight is configured: round((grams - tare) / unit). */
  count?: number;
  /** The SKU the lane holds, from the lane's configuration. */
  sku?: string;
}

/** A device-level condition the device itself reported (reader overflow, antenna lost, ...). */
export interface DeviceConditionEvent {
  type: 'device.condition';
  deviceId: string;
  time: number;
  condition: string;
  detail?: Record<string, unknown>;
}

export type DeviceEvent = RfidReadEvent | ShelfWeightEvent | DeviceConditionEvent;
