/**
 * Moves one outbox stream to one sink, in seq order, at least once: reads batches after the
 * sink's position, keeps at most `window` of them unacknowledged, advances on the receiver's
 * application-level ack (`appliedThrough`), and rewinds to the last ack on a gap, an ack timeout,
 * a lost session or a failed send. The outbox cursor, not this object, is the durable state:
 * a new pump after a restart resumes from the last ack.
 */
import type { Outbox, Position } from './outbox.js';
import type { ReplayPacer } from './replay-pacer.js';
import type { OutboxBatch, StreamName } from './streams.js';

/** The receiver's answer: it has applied every record of `epoch` up to `appliedThrough`. */
export interface AckAnswer {
  epoch: number;
  appliedThrough: number;
}

/** Why a send failed, and what to do about it. */
export class SinkError extends Error {
  constructor(
    message: string,
    /** retry: transient (5xx, 429, network); hold: the receiver refuses this (4xx): keep it, retry slowly. */
    readonly action: 'retry' | 'hold',
    readonly reason: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface SinkTransport {
  /** The sink's name in the outbox cursors: 'cloud', 'oms'. */
  readonly sink: string;
  readonly connected: boolean;
  /**
   * Sends a batch. Resolves once the transport took it (MQTT: PUBACK from the broker) with no answer,
   * the receiver's ack arriving later; or with the answer when the transport is request/response (HTTPS).
   */
  send(batch: OutboxBatch): Promise<AckAnswer | undefined>;
}

export interface PumpOptions {
  outbox: Outbox;
  transport: SinkTransport;
  stream: StreamName;
  batchSize: number;
  window: number;
  ackTimeoutMs: number;
  pacer: ReplayPacer;
  /** Delay before retrying after a transient failure, by attempt. */
  retryDelayMs(attempt: number): number;
  /** How long a held stream waits before trying again. */
  holdRetryMs: number;
  onEvent?(event: PumpEvent): void;
}

export type PumpEvent =
  | { type: 'sent'; records: number }
  | { type: 'acked'; records: number; lagMs: number | undefined }
  | { type: 'rewind'; reason: string }
  | { type: 'failed'; action: 'retry' | 'hold'; reason: string; message: string };

interface InFlight {
  epoch: number;
  first: number;
  last: number;
  sentAt: number;
  oldestReceivedAt: number;
}

export class StreamPump {
  private acked: Position;
  private next: Position;
  private inflight: InFlight[] = [];
  private pumping = false;
  private again = false;
  /** Waiting out a retry delay: the timer that ends it wakes the pump. */
  private blocked = false;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The sent mark last written to the outbox by this pump (see markSent). */
  private fence: Position = { epoch: -1, seq: 0 };
  /** Why the stream is held (the receiver refuses it), until a send succeeds. */
  held: { reason: string; message: string; since: number } | undefined;
  lastAckAt: number | undefined;

  constructor(private readonly o: PumpOptions) {
    this.acked = o.outbox.position(o.transport.sink, o.stream);
    this.next = { ...this.acked };
  }

  get stream(): StreamName {
    return this.o.stream;
  }

  get position(): Position {
    return { ...this.acked };
  }

  get inFlightBatches(): number {
    return this.inflight.length;
  }

  /** Something changed (new records, a reconnect, an ack): send what the window allows. */
  wake(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    void this.pump();
  }

  /** Starts over from the last ack: after a lost session, a gap, a timeout. */
  rewind(reason: string): void {
    if (this.inflight.length > 0 || this.next.seq !== this.acked.seq || this.next.epoch !== this.acked.epoch) this.o.onEvent?.({ type: 'rewind', reason });
    this.inflight = [];
    this.next = { ...this.acked };
  }

  /** The receiver's ack, from the downlink (MQTT) or an HTTP answer. */
  onAck(answer: AckAnswer): void {
    const { epoch, appliedThrough } = answer;
    if (!Number.isInteger(epoch) || !Number.isInteger(appliedThrough) || appliedThrough < 0) return;
    // Older than what this sink already acknowledged (a late ack, a duplicate's answer): nothing to learn.
    if (epoch < this.acked.epoch || (epoch === this.acked.epoch && appliedThrough < this.acked.seq)) return;
    const newly = this.o.outbox.ack(this.o.transport.sink, this.o.stream, epoch, appliedThrough);
    if (epoch > this.acked.epoch || (epoch === this.acked.epoch && appliedThrough > this.acked.seq)) this.acked = { epoch, seq: appliedThrough };
    const done = this.inflight.filter((b) => b.epoch < epoch || (b.epoch === epoch && b.last <= appliedThrough));
    this.inflight = this.inflight.filter((b) => !done.includes(b));
    if (newly > 0 || done.length > 0) {
      this.held = undefined;
      this.lastAckAt = Date.now();
      this.o.pacer.onProgress();
      const oldest = done.length > 0 ? Math.min(...done.map((b) => b.oldestReceivedAt)) : undefined;
      this.o.onEvent?.({ type: 'acked', records: newly, lagMs: oldest === undefined ? undefined : Date.now() - oldest });
    }
    const head = this.inflight[0];
    // Batches are applied in the order sent: an ack short of the oldest batch in flight means the
    // receiver stopped at a gap (or lost what it had): resend from what it has.
    if (head && head.epoch === epoch && head.first > appliedThrough + 1)
      this.rewind(`receiver has ${appliedThrough}, missing ${appliedThrough + 1}..${head.first - 1}`);
    else if (head && head.epoch === epoch && head.first <= appliedThrough && head.last > appliedThrough) {
      // partly applied: the receiver stopped inside this batch
      this.rewind(`receiver stopped at ${appliedThrough} inside ${head.first}..${head.last}`);
    }
    this.wake();
  }

  /** Called periodically: rewinds when the oldest batch waited too long for its ack. */
  checkTimeouts(now = Date.now()): void {
    const head = this.inflight[0];
    if (head && now - head.sentAt > this.o.ackTimeoutMs) {
      this.o.pacer.onPushback();
      this.rewind(`no ack for ${Math.round((now - head.sentAt) / 1000)} s`);
      this.wake();
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      do {
        this.again = false;
        while (!this.stopped && this.o.transport.connected && this.inflight.length < this.o.window && !this.blocked) {
          const batch = this.o.outbox.read(this.o.stream, this.next, this.o.batchSize);
          if (!batch) break;
          const wait = this.o.pacer.take(batch.records.length);
          if (wait > 0) {
            await new Promise((resolve) => setTimeout(resolve, wait));
            if (this.stopped || !this.o.transport.connected) break;
          }
          const first = (batch.records[0] as { seq: number }).seq;
          const last = (batch.records[batch.records.length - 1] as { seq: number }).seq;
          // Marked before it leaves, so compaction never folds a record a receiver might have.
          if (batch.epoch !== this.fence.epoch || last > this.fence.seq) this.markSent(batch.epoch, last);
          const entry: InFlight = {
            epoch: batch.epoch,
            first,
            last,
            sentAt: Date.now(),
            oldestReceivedAt: Math.min(...batch.records.map((r) => r.receivedAt)),
          };
          this.inflight.push(entry);
          this.next = { epoch: batch.epoch, seq: last };
          this.o.onEvent?.({ type: 'sent', records: batch.records.length });
          this.o.transport.send(batch).then(
            (answer) => {
              this.attempts = 0;
              if (answer) this.onAck(answer);
            },
            (err: unknown) => this.onSendFailed(entry, err),
          );
        }
      } while (this.again && !this.stopped);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Raises the sink's sent mark (the compaction fence) to at least `last`. Each mark is a commit, with
   * synchronous=FULL an fsync on the event loop, so during a backlog drain it is set a window's worth of
   * records ahead (never past what the outbox holds now) and written once per window instead of once
   * per batch. A mark above what was sent only keeps compaction further from the sink's position.
   */
  private markSent(epoch: number, last: number): void {
    const outbox = this.o.outbox;
    const ahead = epoch === outbox.identity.epoch ? Math.min(last + this.o.window * this.o.batchSize, outbox.head(this.o.stream) - 1) : last;
    const seq = Math.max(last, ahead);
    outbox.markSent(this.o.transport.sink, this.o.stream, epoch, seq);
    this.fence = { epoch, seq };
  }

  /** The receiver refused what was sent (an error ack): keep everything, say why, try again slowly. */
  hold(reason: string, message: string): void {
    this.pause(new SinkError(message, 'hold', reason));
  }

  private onSendFailed(entry: InFlight, err: unknown): void {
    if (!this.inflight.includes(entry)) return; // already rewound
    this.pause(err instanceof SinkError ? err : new SinkError((err as Error)?.message ?? String(err), 'retry', 'send_failed'));
  }

  private pause(e: SinkError): void {
    this.o.onEvent?.({ type: 'failed', action: e.action, reason: e.reason, message: e.message });
    this.rewind(`send failed: ${e.message}`);
    let delay: number;
    if (e.action === 'hold') {
      this.held = { reason: e.reason, message: e.message, since: this.held?.since ?? Date.now() };
      delay = this.o.holdRetryMs;
    } else {
      delay = Math.max(e.retryAfterMs ?? 0, this.o.retryDelayMs(this.attempts++));
    }
    this.blocked = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.blocked = false;
      this.wake();
    }, delay);
    this.retryTimer.unref();
  }
}
