/**
 * Paces what one uplink sends, in records per second: a token bucket whose rate halves when the
 * receiver pushes back (acks time out, sends fail) and recovers step by step as acks return, so a
 * store coming back from a long outage, or a fleet of them, does not flatten the cloud broker.
 */
export class ReplayPacer {
  private tokens: number;
  private last: number;
  private current: number;

  constructor(
    private readonly maxRate: number,
    private readonly minRate = Math.min(100, maxRate),
    private readonly now: () => number = () => performance.now(),
  ) {
    this.current = maxRate;
    // one second of burst: a fresh record after a quiet spell goes out at once
    this.tokens = maxRate;
    this.last = now();
  }

  get rate(): number {
    return this.current;
  }

  /** Takes `n` tokens, going into debt; returns how many ms to wait before sending. */
  take(n: number): number {
    const t = this.now();
    this.tokens = Math.min(this.current, this.tokens + ((t - this.last) / 1000) * this.current);
    this.last = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.current) * 1000;
  }

  onPushback(): void {
    this.current = Math.max(this.minRate, this.current / 2);
  }

  onProgress(): void {
    if (this.current < this.maxRate) this.current = Math.min(this.maxRate, this.current * 1.25);
  }
}
