/**
 * Fault injection for the simulated shelf: what a flaky RS-485 bus and a struggling controller do to a
 * master. Faults are armed one-shot ("the next 3 replies") for tests, or as probabilities per request
 * (seeded, so a demo run can be replayed) for the demo store.
 */
export interface FaultRates {
  /** Reply with a corrupted CRC. */
  crc?: number;
  /** No reply at all: the master times out. */
  silence?: number;
  /** Exception response (code 4, server device failure) instead of data. */
  exception?: number;
  /** Random bytes on the line in front of the reply. */
  garbage?: number;
}

export interface FaultDecision {
  silent: boolean;
  exception: number | undefined;
  corruptCrc: boolean;
  garbage: Buffer | undefined;
  delayMs: number;
  /** Write the reply in several pieces, as a USB adapter or a busy pty may deliver it. */
  fragment: boolean;
}

/** A one-shot fault: `count` replies, to function `fc` only when given, after letting `skip` of them pass. */
interface OneShot {
  count: number;
  fc: number | undefined;
  skip: number;
}

export class FaultPlan {
  private crcNext: OneShot = { count: 0, fc: undefined, skip: 0 };
  private silenceNext: OneShot = { count: 0, fc: undefined, skip: 0 };
  private exceptionNext: { count: number; code: number; fc: number | undefined } = { count: 0, code: 4, fc: undefined };
  private garbageNext = 0;
  private rates: FaultRates = {};
  /** While true, nothing is answered (a shelf that stopped talking). */
  silent = false;
  /** Added before every reply (a slow controller). */
  delayMs = 0;
  fragment = false;

  constructor(private readonly random: () => number) {}

  /** The next `n` replies (only those to function code `fc`, when given, after skipping `skip` of them) get a wrong CRC. */
  corruptNext(n: number, fc?: number, skip = 0): void {
    this.crcNext = { count: this.crcNext.count + n, fc, skip };
  }

  /** The next `n` replies (only those to function code `fc`, when given, after skipping `skip` of them) are lost. */
  silenceNextReplies(n: number, fc?: number, skip = 0): void {
    this.silenceNext = { count: this.silenceNext.count + n, fc, skip };
  }

  /** The next `n` requests (only those with function code `fc`, when given) get exception `code`. */
  exceptionNextReplies(n: number, code = 4, fc?: number): void {
    this.exceptionNext = { count: this.exceptionNext.count + n, code, fc };
  }

  garbageBeforeNext(n: number): void {
    this.garbageNext += n;
  }

  setRates(rates: FaultRates): void {
    this.rates = { ...rates };
  }

  clear(): void {
    this.crcNext = { count: 0, fc: undefined, skip: 0 };
    this.silenceNext = { count: 0, fc: undefined, skip: 0 };
    this.garbageNext = 0;
    this.exceptionNext = { count: 0, code: 4, fc: undefined };
    this.rates = {};
    this.silent = false;
    this.delayMs = 0;
    this.fragment = false;
  }

  /** Decides the fate of the reply to a request with function code `fc`; one-shot faults are used up in order. */
  decide(fc: number): FaultDecision {
    const roll = (p: number | undefined) => p !== undefined && p > 0 && this.random() < p;
    const d: FaultDecision = {
      silent: this.silent,
      exception: undefined,
      corruptCrc: false,
      garbage: undefined,
      delayMs: this.delayMs,
      fragment: this.fragment,
    };
    const due = (one: OneShot) => {
      if (one.count === 0 || (one.fc !== undefined && one.fc !== fc)) return false;
      if (one.skip === 0) return true;
      one.skip--;
      return false;
    };
    if (due(this.silenceNext)) {
      this.silenceNext.count--;
      d.silent = true;
    } else if (roll(this.rates.silence)) d.silent = true;
    if (d.silent) return d;
    if (this.exceptionNext.count > 0 && (this.exceptionNext.fc === undefined || this.exceptionNext.fc === fc)) {
      this.exceptionNext.count--;
      d.exception = this.exceptionNext.code;
    } else if (roll(this.rates.exception)) d.exception = 4;
    if (due(this.crcNext)) {
      this.crcNext.count--;
      d.corruptCrc = true;
    } else if (roll(this.rates.crc)) d.corruptCrc = true;
    if (this.garbageNext > 0 || roll(this.rates.garbage)) {
      if (this.garbageNext > 0) this.garbageNext--;
      d.garbage = Buffer.from(Array.from({ length: 3 + Math.floor(this.random() * 6) }, () => Math.floor(this.random() * 256)));
    }
    return d;
  }
}
