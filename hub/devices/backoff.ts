/**
 * Restart delays for failed drivers: exponential with full jitter (AWS architecture blog,
 * "Exponential Backoff and Jitter"), so a store's worth of drivers failing together (a power blip
 * on an RS-485 hub) do not all retry in the same instant.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** A run this long counts as healthy and resets the attempt count. */
  resetAfterMs: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly options: BackoffOptions) {}

  next(): number {
    const cap = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.attempt);
    this.attempt++;
    const r = (this.options.random ?? Math.random)();
    return Math.round(this.options.initialMs / 2 + r * (cap - this.options.initialMs / 2));
  }

  /** Called when a run ended: resets if it lasted long enough to count as healthy. */
  ranFor(ms: number): void {
    if (ms >= this.options.resetAfterMs) this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
