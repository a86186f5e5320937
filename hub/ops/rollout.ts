/**
 * Rollout waves and the abort threshold. A job's `waves` lists the size of each wave, as a count of
 * targets (`2`) or a share of all targets (`"10%"`, rounded up, at least one); targets fill the waves
 * in the order the job lists them, and any targets left after the listed waves form one last wave.
 * After each wave, if the share of its targets that failed or timed out is above `abortThreshold`,
 * the rest of the rollout is canceled.
 */

export type WaveSize = number | string;

/** Sizes of the waves for `total` targets; they add up to `total`. */
export function waveSizes(total: number, waves: readonly WaveSize[] | undefined): number[] {
  const sizes: number[] = [];
  let left = total;
  for (const wave of waves ?? []) {
    if (left <= 0) break;
    const size = typeof wave === 'number' ? wave : Math.max(1, Math.ceil((total * parsePercent(wave)) / 100));
    const taken = Math.min(left, Math.max(1, Math.floor(size)));
    sizes.push(taken);
    left -= taken;
  }
  if (left > 0) sizes.push(left);
  return sizes;
}

/** The wave of each target, by position. */
export function waveOfEach(total: number, waves: readonly WaveSize[] | undefined): number[] {
  return waveSizes(total, waves).flatMap((size, wave) => Array.from({ length: size }, () => wave));
}

/** `"12.5%"` -> 12.5; NaN when it is not a percentage in (0, 100]. */
export function parsePercent(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(text);
  const value = m ? Number(m[1]) : NaN;
  return value > 0 && value <= 100 ? value : NaN;
}

/** Problems with a `waves` list, one line each. */
export function wavesProblems(waves: readonly WaveSize[] | undefined): string[] {
  return (waves ?? []).flatMap((w, i) =>
    typeof w === 'number'
      ? Number.isInteger(w) && w >= 1
        ? []
        : [`waves[${i}]: a count must be a whole number of at least 1`]
      : Number.isNaN(parsePercent(w))
        ? [`waves[${i}]: "${w}" is not a percentage in (0%, 100%]`]
        : [],
  );
}

/** True when a wave's failures are beyond the threshold (a share of the wave, 0..1). */
export function beyondThreshold(failed: number, waveSize: number, abortThreshold: number): boolean {
  return waveSize > 0 && failed / waveSize > abortThreshold;
}
