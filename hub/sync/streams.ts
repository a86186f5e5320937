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

/** The seqs one record stands for besides itself (a folded delta, an expired range, a downsampled pair). */
export interface Replaces {
  from: number;
  to: number;
  seqs: number[];
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
