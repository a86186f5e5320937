/**
 * Message rate limits per device, not per connection: a device opening more connections (client
 * ids `id:a`, `id:b`) shares one budget instead of multiplying it. Each connection holds its
 * device's bucket until its socket closes (whatever closes it: the device, a takeover, revocation,
 * an error), and the bucket goes with the last one.
 */
import { TokenBucket } from './token-bucket.js';

/** What a connection's socket offers here: its close, once. */
export interface ClosingSocket {
  closed?: boolean;
  once?: (event: 'close', listener: () => void) => unknown;
}

export class DeviceRateLimits {
  private readonly buckets = new Map<string, { bucket: TokenBucket; connections: number }>();

  constructor(
    private readonly messagesPerSecond: number,
    private readonly burst: number,
  ) {}

  /** The bucket of `deviceId`, held for `socket` until it closes. */
  acquire(deviceId: string, socket: ClosingSocket | undefined): TokenBucket {
    let entry = this.buckets.get(deviceId);
    if (!entry) {
      entry = { bucket: new TokenBucket(this.messagesPerSecond, this.burst), connections: 0 };
      this.buckets.set(deviceId, entry);
    }
    entry.connections++;
    const held = entry;
    const release = () => {
      if (--held.connections === 0 && this.buckets.get(deviceId) === held) this.buckets.delete(deviceId);
    };
    if (!socket?.once || socket.closed)
      release(); // gone while authenticating: nothing will close it again
    else socket.once('close', release);
    return held.bucket;
  }

  /** Connections holding the bucket of `deviceId` (0: it has none). */
  connections(deviceId: string): number {
    return this.buckets.get(deviceId)?.connections ?? 0;
  }

  /** Devices with a bucket. */
  get size(): number {
    return this.buckets.size;
  }
}
