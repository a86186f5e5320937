/**
 * Two in-memory byte transports joined back to back, like the two ends of a socat pty pair:
 * what one end writes, the other receives (asynchronously, as a real line delivers it).
 * For unit tests of drivers and simulators without a serial port.
 */
import type { ByteTransport, Unsubscribe } from '../../sdk/transport.js';

class MemoryEnd<K extends 'serial' | 'hid'> implements ByteTransport<K> {
  peer: MemoryEnd<K> | undefined;
  private readonly dataHandlers = new Set<(data: Buffer) => void>();
  private readonly closeHandlers = new Set<(error?: Error) => void>();
  isOpen = false;

  constructor(readonly type: K) {}

  async open(): Promise<void> {
    this.isOpen = true;
  }

  async write(data: Buffer): Promise<void> {
    if (!this.isOpen) throw new Error('line is not open');
    const peer = this.peer;
    const copy = Buffer.from(data);
    setImmediate(() => {
      if (peer?.isOpen) for (const h of peer.dataHandlers) h(copy);
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
    if (!this.isOpen) return;
    this.isOpen = false;
    for (const h of this.closeHandlers) h();
  }

  /** Simulates the adapter being unplugged: the driver sees a close with an error. */
  fail(error: Error): void {
    this.isOpen = false;
    for (const h of this.closeHandlers) h(error);
  }
}

export function createMemoryLine<K extends 'serial' | 'hid'>(type: K): [MemoryEnd<K>, MemoryEnd<K>] {
  const a = new MemoryEnd(type);
  const b = new MemoryEnd(type);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

export type { MemoryEnd };
