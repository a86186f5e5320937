/**
 * A Modbus RTU master on one serial line: the bus's only talker. Sources: "MODBUS over Serial Line
 * V1.02" (SL) and "MODBUS Application Protocol V1.1b3" (AP).
 *
 * - SL §2.4.1: a master has one request outstanding at a time and waits for the answer or a response
 *   time-out; requests queue here, so a command never interleaves with a poll.
 * - SL §2.5.1.1: at least 3.5 character times of silence between frames (measured from the last byte
 *   heard or sent), and bytes that arrive when no answer is expected belong to no frame: they are
 *   counted and flushed before the next request.
 * - A CRC error, a timeout or a malformed answer is retried up to `retries` times; an exception
 *   response (AP §7) is the device's deliberate answer and is not.
 */
import type { SerialTransport, Unsubscribe } from '../../hub/sdk/index.js';
import {
  decodeResponse,
  encodeRequest,
  expectedResponseLength,
  FrameAssembler,
  frameTimeMs,
  interFrameGapMs,
  isModbusError,
  ModbusError,
  type ModbusRequest,
  type ModbusResponse,
} from './modbus-rtu.js';

export interface ModbusMasterOptions {
  baudRate: number;
  /** Silence allowed after a request before it counts as unanswered (SL §2.4.1 "response time-out"). */
  timeoutMs: number;
  /** Extra attempts after a timeout, CRC error or malformed answer. */
  retries: number;
}

export interface ModbusCounters {
  requests: number;
  attempts: number;
  answers: number;
  crcErrors: number;
  timeouts: number;
  exceptions: number;
  malformed: number;
  strayBytes: number;
}

/** Why one frame (or run of bytes) was rejected; maps onto the SDK's RejectReason. */
export type FrameRejection = 'crc' | 'exception' | 'timeout' | 'malformed';

export type RejectListener = (reason: FrameRejection, detail: string) => void;

interface Pending {
  req: ModbusRequest;
  settle: (frame: { frame: Buffer; skipped: number } | undefined) => void;
}

export class ModbusMaster {
  readonly counters: ModbusCounters = { requests: 0, attempts: 0, answers: 0, crcErrors: 0, timeouts: 0, exceptions: 0, malformed: 0, strayBytes: 0 };
  private readonly assembler = new FrameAssembler();
  private readonly gapMs: number;
  private tail: Promise<unknown> = Promise.resolve();
  private pending: Pending | undefined;
  private unsubscribe: Unsubscribe | undefined;
  private lastActivity = 0;
  private strayUnreported = 0;
  private closed = false;
  private readonly wakeups = new Set<() => void>();

  constructor(
    private readonly line: SerialTransport,
    private readonly options: ModbusMasterOptions,
    private readonly onReject: RejectListener = () => {},
  ) {
    this.gapMs = interFrameGapMs(options.baudRate);
  }

  /** Starts listening to the line. Call once the line is open. */
  attach(): void {
    this.closed = false;
    this.unsubscribe ??= this.line.onData((chunk) => this.onData(chunk));
  }

  /** Stops listening; the request in flight and every queued one fail with kind 'closed'. */
  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.pending?.settle(undefined);
    for (const wake of this.wakeups) wake();
  }

  /**
   * Queues one request; resolves with the decoded answer or rejects with a ModbusError. `retries`
   * overrides the line's setting for this request (a firmware chunk is worth more attempts than a poll
   * that is repeated anyway; a probe of a rebooting device is worth none).
   */
  request(req: ModbusRequest, retries = this.options.retries): Promise<ModbusResponse> {
    const run = this.tail.then(() => this.run(req, retries));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async run(req: ModbusRequest, retries: number): Promise<ModbusResponse> {
    // SL §2.1: nobody answers a broadcast; this master only ever talks to one unit at a time
    if (req.unit === 0) throw new RangeError('broadcast (unit 0) is not supported by this master');
    this.counters.requests++;
    const adu = encodeRequest(req);
    // the answer's own wire time is added, so a long read at a low baud rate is not cut short
    const waitMs = this.options.timeoutMs + frameTimeMs(adu.length + expectedResponseLength(req), this.options.baudRate);
    let last: ModbusError = new ModbusError('timeout', 'no attempt made');
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (this.closed) throw new ModbusError('closed', 'the master is closed');
      await this.quietGap();
      this.flushStray();
      this.counters.attempts++;
      const answer = new Promise<{ frame: Buffer; skipped: number } | undefined>((resolve) => {
        const timer = setTimeout(() => settle(undefined), waitMs);
        const settle = (f: { frame: Buffer; skipped: number } | undefined) => {
          clearTimeout(timer);
          if (this.pending?.req === req) this.pending = undefined;
          resolve(f);
        };
        this.pending = { req, settle };
      });
      try {
        await this.line.write(adu);
      } catch (err) {
        this.pending?.settle(undefined);
        throw new ModbusError('closed', `write failed: ${(err as Error).message}`);
      }
      this.lastActivity = performance.now();
      const got = await answer;
      if (this.closed) throw new ModbusError('closed', 'the master is closed');
      if (got === undefined) {
        this.counters.timeouts++;
        last = new ModbusError('timeout', `no answer from unit ${req.unit} within ${Math.round(waitMs)} ms`);
        this.onReject('timeout', last.message);
        continue;
      }
      if (got.skipped > 0) this.stray(got.skipped);
      try {
        const res = decodeResponse(req, got.frame);
        this.counters.answers++;
        return res;
      } catch (err) {
        if (!isModbusError(err)) throw err;
        last = err;
        if (err.kind === 'exception') {
          this.counters.exceptions++;
          this.onReject('exception', err.message);
          throw err;
        }
        if (err.kind === 'crc') this.counters.crcErrors++;
        else this.counters.malformed++;
        this.onReject(err.kind === 'crc' ? 'crc' : 'malformed', err.message);
      }
    }
    throw last;
  }

  private onData(chunk: Buffer): void {
    this.lastActivity = performance.now();
    const pending = this.pending;
    if (pending === undefined) {
      // nobody asked: a late answer after a timeout, line noise, or a babbling device
      this.strayUnreported += chunk.length;
      return;
    }
    this.assembler.push(chunk);
    const got = this.assembler.take(pending.req);
    if (got !== undefined) pending.settle(got);
  }

  private stray(bytes: number): void {
    this.counters.strayBytes += bytes;
    this.onReject('malformed', `${bytes} stray byte(s) outside a frame`);
  }

  private flushStray(): void {
    const n = this.assembler.discard() + this.strayUnreported;
    this.strayUnreported = 0;
    if (n > 0) this.stray(n);
  }

  /** Waits until the line has been silent for t3.5; bytes still arriving push the wait back. */
  private async quietGap(): Promise<void> {
    for (;;) {
      const left = this.lastActivity + this.gapMs - performance.now();
      if (left <= 0 || this.closed) return;
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.wakeups.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.ceil(left));
        this.wakeups.add(wake);
      });
    }
  }
}
