/**
 * The shape of a batch as docs/cloud-protocol.md defines it, and the checks a receiver makes before it
 * applies anything: a malformed batch is rejected whole, so a hub bug can never half-apply. Unknown extra
 * fields are allowed (a newer hub may add some); missing or mistyped contract fields are not.
 */
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Int = Type.Integer({ minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER });
const Seq = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

/** `seqs` lists the seqs a record stands for; without it, every seq from `from` to `to`. */
export const ReplacesSchema = Type.Object({ from: Seq, to: Seq, seqs: Type.Optional(Type.Array(Seq, { minItems: 1 })) });

/** Every seq a `replaces` stands for. */
export function replacedSeqs(r: { from: number; to: number; seqs?: number[] | undefined }): number[] {
  return r.seqs ?? Array.from({ length: r.to - r.from + 1 }, (_, i) => r.from + i);
}

export const RecordSchema = Type.Object({
  id: Name,
  hub: Name,
  store: Name,
  stream: Name,
  epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  seq: Seq,
  type: Name,
  eventTime: Int,
  receivedAt: Int,
  body: Type.Record(Type.String(), Type.Unknown()),
  replaces: Type.Optional(ReplacesSchema),
});

export const BatchSchema = Type.Object({
  hub: Name,
  store: Name,
  stream: Name,
  epoch: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  records: Type.Array(RecordSchema),
});

// Stock bodies are checked further because the receiver sums them; other bodies are stored as they come.
const StockDeltaBody = Type.Object({ sku: Name, location: Name, delta: Type.Number(), reason: Type.String() });
const FoldedBody = Type.Object({ sku: Name, location: Name, delta: Type.Number() });

export type LedgerRecord = Static<typeof RecordSchema>;
export type Batch = Static<typeof BatchSchema>;

const batchCheck = TypeCompiler.Compile(BatchSchema);
const stockCheck = TypeCompiler.Compile(StockDeltaBody);
const foldedCheck = TypeCompiler.Compile(FoldedBody);

export const STOCK_DELTA = 'stock.delta';
export const STOCK_DELTA_FOLDED = 'stock.delta.folded';

/** A batch that must not be applied at all; `code` goes into the HTTP answer. */
export class MalformedBatchError extends Error {
  constructor(
    message: string,
    readonly code = 'malformed',
  ) {
    super(message);
    this.name = 'MalformedBatchError';
  }
}

export interface BatchExpectation {
  /** The hub and stream named by the URL or topic the batch came on; the body must agree. */
  hub?: string;
  stream?: string;
  maxRecords?: number;
}

/** Returns the batch typed, or throws MalformedBatchError naming the first problem. */
export function validateBatch(input: unknown, expect: BatchExpectation = {}): Batch {
  if (!batchCheck.Check(input)) {
    const first = batchCheck.Errors(input).First();
    throw new MalformedBatchError(first ? `${first.path || '/'}: ${first.message}` : 'not a batch');
  }
  const batch = input;
  if (expect.hub !== undefined && batch.hub !== expect.hub) throw new MalformedBatchError(`batch is for hub ${batch.hub}, sent as ${expect.hub}`);
  if (expect.stream !== undefined && batch.stream !== expect.stream)
    throw new MalformedBatchError(`batch is for stream ${batch.stream}, sent as ${expect.stream}`);
  if (expect.maxRecords !== undefined && batch.records.length > expect.maxRecords)
    throw new MalformedBatchError(`${batch.records.length} records, at most ${expect.maxRecords} allowed`, 'too_many_records');

  // Seqs accounted for by this batch: each record's own, and every seq a folded record replaces.
  const claimed = new Set<number>();
  let previous = 0;
  batch.records.forEach((r, i) => {
    const at = `/records/${i}`;
    for (const key of ['hub', 'store', 'stream', 'epoch'] as const) {
      if (r[key] !== batch[key]) throw new MalformedBatchError(`${at}/${key}: ${String(r[key])} differs from the batch's ${String(batch[key])}`);
    }
    if (r.seq <= previous) throw new MalformedBatchError(`${at}/seq: ${r.seq} after ${previous}: records must be in strictly ascending seq`);
    previous = r.seq;
    if (r.type === STOCK_DELTA && !stockCheck.Check(r.body)) {
      const e = stockCheck.Errors(r.body).First();
      throw new MalformedBatchError(`${at}/body${e?.path ?? ''}: ${e?.message ?? 'not a stock.delta body'}`);
    }
    if (r.type === STOCK_DELTA_FOLDED) {
      if (!foldedCheck.Check(r.body)) {
        const e = foldedCheck.Errors(r.body).First();
        throw new MalformedBatchError(`${at}/body${e?.path ?? ''}: ${e?.message ?? 'not a stock.delta.folded body'}`);
      }
      if (!r.replaces) throw new MalformedBatchError(`${at}/replaces: a folded record must name the seqs it replaces`);
    }
    // A plain delta standing for others would lose their stock: only folded deltas may.
    if (r.type === STOCK_DELTA && r.replaces)
      throw new MalformedBatchError(`${at}/replaces: a stock.delta cannot replace others; fold them into ${STOCK_DELTA_FOLDED}`);
    // Other records may stand for others (an expiry record, a downsampled sample); each keeps the
    // lowest seq of those it replaces (docs/cloud-protocol.md, "Gaps and folded records").
    if (r.replaces) {
      const { from, to } = r.replaces;
      if (to < from) throw new MalformedBatchError(`${at}/replaces/to: ${to} is before from ${from}`);
      if (to - from > 10_000_000) throw new MalformedBatchError(`${at}/replaces: a range of more than 10,000,000 seqs`);
      const seqs = replacedSeqs(r.replaces);
      if (seqs[0] !== r.seq || from !== r.seq) throw new MalformedBatchError(`${at}/replaces: must start at the record's own seq ${r.seq}`);
      if (seqs[seqs.length - 1] !== to) throw new MalformedBatchError(`${at}/replaces/to: must be the last of replaces.seqs`);
      for (let k = 1; k < seqs.length; k++) {
        if (seqs[k]! <= seqs[k - 1]!) throw new MalformedBatchError(`${at}/replaces/seqs: must be strictly ascending`);
      }
    }
    for (const s of r.replaces ? replacedSeqs(r.replaces) : [r.seq]) {
      if (claimed.has(s)) throw new MalformedBatchError(`${at}: seq ${s} is accounted for twice in this batch`);
      claimed.add(s);
    }
  });
  return batch;
}
