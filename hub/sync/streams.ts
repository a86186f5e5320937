/**
 * The outbox's streams and the record format every uplink carries (docs/cloud-protocol.md).
 * Streams differ in what may be given up under their disk budget: the ledger nothing, telemetry first.
 */

export const STREAMS = ['ledger', 'events', 'footfall', 'telemetry'] as const;
export type StreamName = (typeof STREAMS)[number];

/** What a stream does when its unsent backlog outgrows its budget. */
export const OVER_BUDGET: Record<StreamName, 'fold' | 'expire' | 'downsample'> = {
  ledger: 'fold',
  events: 'expire',
  footfall: 'expire',
  telemetry: 'downsample',
};

export function isStreamName(value: string): value is StreamName {
  return (STREAMS as readonly string[]).includes(value);
}

/**
 * The seqs one record stands for, itself included (a folded delta, an expired range, a downsampled
 * pair). `seqs` lists them when they are not every seq from `from` to `to`; when they are, it is
 * left out, so a long expired range costs a few bytes, not a list of every seq.
 */
export interface Replaces {
  from: number;
  to: number;
  seqs?: number[];
}

/** Every seq a `replaces` stands for. */
export function replacedSeqs(r: Replaces): number[] {
  return r.seqs ?? Array.from({ length: r.to - r.from + 1 }, (_, i) => r.from + i);
}

/** The `replaces` for a set of seqs: without the list when they are contiguous. */
export function replacesOf(seqs: number[]): Replaces {
  const sorted = [...new Set(seqs)].sort((a, b) => a - b);
  const from = sorted[0] as number;
  const to = sorted[sorted.length - 1] as number;
  return to - from + 1 === sorted.length ? { from, to } : { from, to, seqs: sorted };
}

/** One record as it leaves the hub, on every uplink. */
export interface OutboxRecord {
  id: string;
  hub: string;
  store: string;
  stream: StreamName;
  epoch: number;
  seq: number;
  type: string;
  eventTime: number;
  receivedAt: number;
  body: unknown;
  replaces?: Replaces;
}

/** A batch: records of one stream and one epoch in ascending seq. */
export interface OutboxBatch {
  hub: string;
  store: string;
  stream: StreamName;
  epoch: number;
  records: OutboxRecord[];
}
