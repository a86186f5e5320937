/**
 * The real serial transport: a SerialTransport over node-serialport (v12). RS-485 adapters, USB CDC
 * devices and, in tests, pseudo-terminals (socat) all look the same from here.
 *
 * The constructor only stores settings; the port object is created and opened in open() (a fresh one
 * each time, so a line can be reopened after an unplug). serialport reports an unplug as a 'close'
 * event carrying an error with `disconnected: true` (@serialport/stream DisconnectedError); depending
 * on whether a read or a write noticed first, an 'error' may come before a plain 'close'. Either way
 * the close handlers hear about it once, with the error.
 */
import { SerialPort } from 'serialport';
import type { DeviceConfig } from '../../config/schema.js';
import type { SerialTransport, Unsubscribe } from '../../sdk/transport.js';

/** The config's serial transport section (hub/config/schema.ts), without its `type`. */
export type SerialLineSettings = Omit<Extract<DeviceConfig['transport'], { type: 'serial' }>, 'type'>;

export class SerialLine implements SerialTransport {
  readonly type = 'serial' as const;
  private port: SerialPort | undefined;
  private readonly dataHandlers = new Set<(data: Buffer) => void>();
  private readonly closeHandlers = new Set<(error?: Error) => void>();
  private lastError: Error | undefined;

  constructor(private readonly settings: SerialLineSettings) {}

  get path(): string {
    return this.settings.path;
  }

  /** For drivers that time the bus (Modbus RTU's 3.5-character gap). */
  get baudRate(): number {
    return this.settings.baudRate;
  }

  get isOpen(): boolean {
    return this.port?.isOpen === true;
  }

  async open(): Promise<void> {
    if (this.isOpen) return;
    const { path, baudRate, dataBits, parity, stopBits } = this.settings;
    const port = new SerialPort({ path, baudRate, dataBits, parity, stopBits, autoOpen: false });
    this.lastError = undefined;
    port.on('data', (chunk: Buffer) => {
      for (const h of this.dataHandlers) h(chunk);
    });
    // without a listener an 'error' event would be thrown at the top of the process
    port.on('error', (err: Error) => {
      this.lastError = err;
    });
    port.on('close', (err?: Error) => this.closed(port, err ?? this.lastError));
    await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
    this.port = port;
  }

  /** Resolves once the bytes are handed to the OS (drain), so a caller can time what follows. */
  async write(data: Buffer): Promise<void> {
    const port = this.port;
    if (port === undefined || !port.isOpen) throw new Error(`serial line ${this.settings.path} is not open`);
    await new Promise<void>((resolve, reject) => {
      port.write(data, (err) => {
        if (err) return reject(err);
        port.drain((e) => (e ? reject(e) : resolve()));
      });
    });
  }

  onData(handler: (data: Buffer) => void): Unsubscribe {
    this.dataHandlers.add(handler);
    return () => this.dataHandlers.delete(handler);
  }

  onClose(handler: (error?: Error) => void): Unsubscribe {
    this.closeHandlers.add(handler);
    return () => this.closeHandlers.delete(handler);
  }

  async close(): Promise<void> {
    const port = this.port;
    if (port === undefined || !port.isOpen) return;
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }

  private closed(port: SerialPort, err: Error | undefined): void {
    // a port can emit 'close' twice (stream auto-destroy after an error, then the disconnect); tell once
    if (this.port !== port) return;
    this.port = undefined;
    port.removeAllListeners('data');
    for (const h of this.closeHandlers) h(err);
  }
}
