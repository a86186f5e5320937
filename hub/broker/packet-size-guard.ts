/**
 * Closes a connection as soon as an MQTT packet header declares a body larger than the limit, before
 * the body is buffered: aedes' parser (mqtt-packet) would otherwise collect up to 256 MB per packet.
 * It watches the bytes a socket pushes into its readable side by wrapping the stream's own push(),
 * because aedes reads sockets with read() on 'readable' and a 'data' listener would change that mode.
 * Framing per MQTT 3.1.1 section 2.2: one fixed-header byte, then the remaining length as a
 * variable-length integer of at most 4 bytes.
 */
import type { Duplex } from 'node:stream';

export class MqttFrameScanner {
  private state: 'header' | 'length' | 'body' = 'header';
  private remaining = 0;
  private multiplier = 1;
  private lengthBytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Returns a reason when the stream must be closed, else undefined. */
  feed(chunk: Uint8Array): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'header') {
        i++;
        this.state = 'length';
        this.remaining = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
      } else if (this.state === 'length') {
        const b = chunk[i++] as number;
        this.remaining += (b & 0x7f) * this.multiplier;
        this.multiplier *= 128;
        this.lengthBytes++;
        if (b & 0x80) {
          if (this.lengthBytes >= 4) return 'malformed remaining length';
          continue;
        }
        if (this.remaining > this.maxBytes) return `packet of ${this.remaining} bytes exceeds ${this.maxBytes}`;
        this.state = this.remaining === 0 ? 'header' : 'body';
      } else {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 'header';
      }
    }
    return undefined;
  }
}

export function guardPacketSize(stream: Duplex, maxBytes: number, onViolation: (reason: string) => void): void {
  const scanner = new MqttFrameScanner(maxBytes);
  const push = stream.push.bind(stream);
  stream.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk instanceof Uint8Array) {
      const violation = scanner.feed(chunk);
      if (violation) {
        stream.push = push;
        onViolation(violation);
        stream.destroy(new Error(violation));
        return false;
      }
    }
    return push(chunk, encoding);
  };
}
