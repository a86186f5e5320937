/**
 * Transports: how a driver reaches its device. Each has a real implementation (embedded broker,
 * serialport, node-hid) and an in-memory one for unit tests, with the same interface, as
 * node-serialport's bindings do.
 */
export type Unsubscribe = () => void;

/** Topics of a device on the hub's embedded broker, seen from inside the hub (no socket). */
export interface MqttTransport {
  type: 'mqtt';
  subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Unsubscribe;
  publish(topic: string, payload: Buffer | string, qos?: 0 | 1): Promise<void>;
}

/** A byte stream: a serial line (RS-485, USB CDC) or, in tests, a pseudo-terminal. */
export interface ByteTransport<K extends 'serial' | 'hid'> {
  type: K;
  open(): Promise<void>;
  write(data: Buffer): Promise<void>;
  onData(handler: (data: Buffer) => void): Unsubscribe;
  /** Called when the line closes or fails underneath the driver (unplugged adapter). */
  onClose(handler: (error?: Error) => void): Unsubscribe;
  close(): Promise<void>;
  readonly isOpen: boolean;
}

export type SerialTransport = ByteTransport<'serial'>;
export type HidTransport = ByteTransport<'hid'>;
export type Transport = MqttTransport | SerialTransport | HidTransport;
