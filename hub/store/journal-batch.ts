/**
 * How device messages cross to the journal's thread: each append is written at once into one
 * buffer per batch, and at the end of the event loop's turn that buffer's memory is transferred,
 * not cloned. Posting the messages as objects would make the hub's thread serialize every string
 * and clone every payload's whole backing store (a payload is a slice of a socket read); posting
 * columns still cost half a microsecond a message in the serializer. Decoding runs on the
 * journal's thread, which has time to spare.
 *
 * Layout of one message: u32 device id length, device id (UTF-8), u32 topic length, topic, u32
 * payload length, payload, u8 QoS, f64 received-at (ms since the epoch), all little-endian. (A
 * topic may be 65,535 bytes on the wire and decode to three times that: invalid UTF-8 becomes
 * U+FFFD, so the lengths here are not 16-bit.)
 */
import type { JournalMessage } from './message-journal.js';

/** From the hub's thread to the journal's. */
export type ToJournal = { t: 'batch'; id: number; count: number; bytes: ArrayBuffer; length: number } | { t: 'close' } | { t: 'fail-syncs'; message: string };

export interface JournalThreadStats {
  committed: number;
  batches: number;
  syncs: number;
  failed: number;
}

/** From the journal's thread back. */
export type FromJournal =
  | {
      t: 'answers';
      /** Batches now durable or failed, in the order they were answered. */
      ids: number[];
      /** [batch id, error code, message] for those that failed. */
      failed: [number, string, string][];
      /** [messages, seconds from commit start to durable] per group commit. */
      commits: [number, number][];
      stats: JournalThreadStats;
    }
  | { t: 'stopped'; code: string; message: string };

/** Fixed bytes per message besides its strings and payload. */
const FIXED_BYTES = 4 + 4 + 4 + 1 + 8;
const INITIAL_BYTES = 64 * 1024;

/** One batch being written on the hub's thread. */
export class BatchWriter {
  private buf = Buffer.allocUnsafeSlow(INITIAL_BYTES);
  private at = 0;
  count = 0;

  add(m: JournalMessage): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    this.reserve(FIXED_BYTES + 3 * (m.deviceId.length + m.topic.length) + m.payload.length);
    const buf = this.buf;
    let at = this.at;
    at = this.writeString(m.deviceId, at);
    at = this.writeString(m.topic, at);
    buf.writeUInt32LE(m.payload.length, at);
    at += 4;
    at += m.payload.copy(buf, at);
    buf[at++] = m.qos;
    buf.writeDoubleLE(m.receivedAt, at);
    this.at = at + 8;
    this.count++;
  }

  /** Hands over the memory written (the writer starts a new buffer, sized for what this one held). */
  take(id: number): { message: ToJournal; transfer: ArrayBuffer[] } {
    const { buffer, byteOffset } = this.buf;
    const message: ToJournal = { t: 'batch', id, count: this.count, bytes: buffer as ArrayBuffer, length: this.at };
    if (byteOffset !== 0) throw new Error('batch buffer must own its memory');
    this.buf = Buffer.allocUnsafeSlow(Math.max(INITIAL_BYTES, this.at));
    this.at = 0;
    this.count = 0;
    return { message, transfer: [buffer as ArrayBuffer] };
  }

  private writeString(s: string, at: number): number {
    const buf = this.buf;
    const start = at + 4;
    let n = 0;
    // Device ids and topics are short and nearly always ASCII: copying their code units here is
    // several times cheaper than a call into the UTF-8 encoder. Anything else is encoded properly.
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      buf[start + n] = c;
    }
    if (n < s.length) n = buf.write(s, start, 'utf8');
    buf.writeUInt32LE(n, at);
    return start + n;
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }
}

export function readBatch(bytes: ArrayBuffer, length: number, count: number): JournalMessage[] {
  const buf = Buffer.from(bytes, 0, length);
  const messages = new Array<JournalMessage>(count);
  let at = 0;
  const readString = (): string => {
    const n = buf.readUInt32LE(at);
    const s = buf.toString('utf8', at + 4, at + 4 + n);
    at += 4 + n;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const deviceId = readString();
    const topic = readString();
    const size = buf.readUInt32LE(at);
    at += 4;
    const payload = buf.subarray(at, at + size);
    at += size;
    const qos = buf[at++] as number;
    const receivedAt = buf.readDoubleLE(at);
    at += 8;
    messages[i] = { deviceId, topic, payload, qos, receivedAt };
  }
  return messages;
}
