/**
 * A USB HID device (barcode scanner, scale) as a byte transport, over node-hid's async API.
 * Input reports arrive as 'data' events; output reports are written with write(). On Linux node-hid
 * uses its hidraw binding, which loads Debian's libusb-1.0-0 (FACTS.md). `openDevice` is
 * replaceable so tests can use an in-memory device of node-hid's shape (no /dev/uhid here).
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { HidTransport, Unsubscribe } from '../../sdk/transport.js';

/** The part of node-hid's HIDAsync the transport uses. */
export interface HidDeviceLike extends EventEmitter {
  write(data: Buffer | number[]): Promise<number>;
  close(): Promise<void>;
}

export interface HidLineOptions {
  vendorId: number;
  productId: number;
  path?: string;
}

type Opener = (options: HidLineOptions) => Promise<HidDeviceLike>;

const openWithNodeHid: Opener = async (o) => {
  const hid = createRequire(import.meta.url)('node-hid') as {
    HIDAsync: { open(path: string): Promise<HidDeviceLike>; open(vid: number, pid: number): Promise<HidDeviceLike> };
  };
  return o.path ? hid.HIDAsync.open(o.path) : hid.HIDAsync.open(o.vendorId, o.productId);
};

export class HidLine implements HidTransport {
  readonly type = 'hid' as const;
  private device: HidDeviceLike | undefined;
  private readonly events = new EventEmitter();

  constructor(
    private readonly options: HidLineOptions,
    private readonly openDevice: Opener = openWithNodeHid,
  ) {}

  get isOpen(): boolean {
    return this.device !== undefined;
  }

  async open(): Promise<void> {
    if (this.device) return;
    const device = await this.openDevice(this.options);
    device.on('data', (data: Buffer) => this.events.emit('data', data));
    // node-hid reports an unplugged device as an error on its read loop
    device.on('error', (err: Error) => {
      this.device = undefined;
      this.events.emit('close', err);
    });
    this.device = device;
  }

  async write(data: Buffer): Promise<void> {
    if (!this.device) throw new Error('HID device is not open');
    await this.device.write(data);
  }

  onData(handler: (data: Buffer) => void): Unsubscribe {
    this.events.on('data', handler);
    return () => this.events.off('data', handler);
  }

  onClose(handler: (error?: Error) => void): Unsubscribe {
    this.events.on('close', handler);
    return () => this.events.off('close', handler);
  }

  async close(): Promise<void> {
    const device = this.device;
    if (!device) return;
    this.device = undefined;
    device.removeAllListeners('data');
    await device.close().catch(() => undefined);
    this.events.emit('close');
  }
}
