/**
 * One simulated weighing lane: a load cell behind an ADC (PROTOCOLS.md: HX711-class, 10 or 80
 * samples/s) as the shelf controller reports it. What is physically on the lane changes in steps
 * (place, remove); the reading follows with a damped swing while the motion bit is set, creeps slowly
 * (load-cell drift), and carries a little noise. Tare and zero work as on a scale: tare makes the
 * current load read 0 net; zero re-takes the empty point and drops the tare.
 */
export interface LaneSimOptions {
  capacityGrams: number;
  /** How long a change swings before the scale settles (the motion bit is set meanwhile). */
  motionMs: number;
  driftGramsPerMinute: number;
  /** Peak noise on each reading, in grams. */
  noiseGrams: number;
}

export interface LaneSample {
  /** Net grams: load + drift - zero point - tare. */
  grams: number;
  motion: boolean;
  overCapacity: boolean;
  dataOk: boolean;
}

export class SimLane {
  private load = 0;
  private swingFrom = 0;
  private changedAt = -Infinity;
  private zeroPoint = 0;
  private tareGrams = 0;
  private readonly bornAt: number;
  dataOk = true;
  /** A hand resting on the lane: the reading wobbles and the motion bit stays set until released. */
  touched = false;

  constructor(
    private readonly opts: LaneSimOptions,
    private readonly random: () => number,
    now: number,
  ) {
    this.bornAt = now;
  }

  /** What lies on the lane, in grams (gross, without drift). */
  get grams(): number {
    return this.load;
  }

  get tare(): number {
    return this.tareGrams;
  }

  set(grams: number, now: number): void {
    this.swingFrom = this.raw(now);
    this.load = Math.max(0, grams);
    this.changedAt = now;
  }

  tareNow(now: number): void {
    this.tareGrams = this.raw(now) - this.zeroPoint;
  }

  zeroNow(now: number): void {
    this.zeroPoint = this.raw(now);
    this.tareGrams = 0;
  }

  sample(now: number): LaneSample {
    const motion = this.touched || now - this.changedAt < this.opts.motionMs;
    const noise = (this.random() * 2 - 1) * this.opts.noiseGrams;
    const grams = this.raw(now) + noise - this.zeroPoint - this.tareGrams;
    return { grams: this.dataOk ? grams : 0, motion, overCapacity: this.load > this.opts.capacityGrams, dataOk: this.dataOk };
  }

  /** The cell's reading before zero and tare: the load plus creep, swinging after a change. */
  private raw(now: number): number {
    const drift = (this.opts.driftGramsPerMinute * (now - this.bornAt)) / 60_000;
    if (this.touched) return this.load + drift + 15 * Math.sin(now / 40);
    const t = now - this.changedAt;
    if (t >= this.opts.motionMs) return this.load + drift;
    // a damped oscillation around the new load, starting at the old reading: overshoot, then settle
    const phase = t / this.opts.motionMs;
    const swing = (this.swingFrom - this.load) * Math.cos(phase * 3 * Math.PI) * (1 - phase);
    return this.load + swing + drift;
  }
}
