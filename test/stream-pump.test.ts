/**
 * The stream pump's flow control on a real outbox, with an in-memory transport standing in for the
 * uplink (the real ones are tested against mosquitto and the reference receiver): the window,
 * rewinds on an ack timeout and on a gap, pushback slowing the replay pace, and holds.
 */
import Database from 'better-sqlite3';
import t from 'tap';
import { migrate } from '../hub/store/migrate.js';
import { Outbox } from '../hub/sync/outbox.js';
import { ReplayPacer } from '../hub/sync/replay-pacer.js';
import { type AckAnswer, type PumpEvent, SinkError, type SinkTransport, StreamPump } from '../hub/sync/stream-pump.js';
import type { OutboxBatch } from '../hub/sync/streams.js';

class MemoryTransport implements SinkTransport {
  readonly sink = 'cloud';
  connected = true;
  sent: OutboxBatch[] = [];
  fail: SinkError | undefined;
  async send(batch: OutboxBatch): Promise<AckAnswer | undefined> {
    this.sent.push(batch);
    if (this.fail) throw this.fail;
    return undefined;
  }
}

function setup(records: number, options: { window?: number; ackTimeoutMs?: number; rate?: number } = {}) {
  const db = new Database(':memory:');
  migrate(db);
  const outbox = new Outbox(db, { hubId: 'h', storeId: 's', epoch: 1 });
  outbox.registerSink('cloud', ['ledger']);
  for (let i = 0; i < records; i++) outbox.append({ stream: 'ledger', type: 'stock.delta', eventTime: i, body: { sku: 'A', location: 'L', delta: 1 } });
  const transport = new MemoryTransport();
  const pacer = new ReplayPacer(options.rate ?? 1_000_000);
  const events: PumpEvent[] = [];
  const pump = new StreamPump({
    outbox,
    transport,
    stream: 'ledger',
    batchSize: 10,
    window: options.window ?? 3,
    ackTimeoutMs: options.ackTimeoutMs ?? 60_000,
    pacer,
    retryDelayMs: () => 10,
    holdRetryMs: 50,
    onEvent: (e) => events.push(e),
  });
  return { db, outbox, transport, pacer, pump, events };
}

const settle = () => new Promise((r) => setTimeout(r, 20));
const seqs = (b: OutboxBatch | undefined) => b && [b.records[0]?.seq, b.records[b.records.length - 1]?.seq];

t.test('at most `window` batches in flight; each ack lets the next one go', async (t) => {
  const { pump, transport, outbox, db } = setup(100);
  t.teardown(() => db.close());
  pump.wake();
  await settle();
  t.equal(transport.sent.length, 3, 'the window is full');
  t.strictSame(transport.sent.map(seqs), [
    [1, 10],
    [11, 20],
    [21, 30],
  ]);
  pump.onAck({ epoch: 1, appliedThrough: 10 });
  await settle();
  t.equal(transport.sent.length, 4);
  t.strictSame(seqs(transport.sent[3]), [31, 40]);
  t.equal(outbox.size('ledger').records, 90, 'acked records are deleted');
});

t.test('an ack short of the oldest batch in flight (a gap at the receiver) resends from it', async (t) => {
  const { pump, transport, events, db } = setup(50);
  t.teardown(() => db.close());
  pump.wake();
  await settle();
  pump.onAck({ epoch: 1, appliedThrough: 10 });
  await settle();
  transport.sent = [];
  // the receiver lost 11..20 and says it still has only 10
  pump.onAck({ epoch: 1, appliedThrough: 10 });
  pump.onAck({ epoch: 1, appliedThrough: 5 });
  t.notOk(
    events.some((e) => e.type === 'rewind'),
    'an ack behind the cursor changes nothing by itself',
  );
  pump.onAck({ epoch: 1, appliedThrough: 15 });
  await settle();
  t.ok(
    events.some((e) => e.type === 'rewind' && /stopped at 15/.test(e.reason)),
    'partly applied batch: rewind',
  );
  t.strictSame(seqs(transport.sent[0]), [16, 25], 'resent from the first seq the receiver lacks');
});

t.test('an ack timeout rewinds to the last ack and halves the replay pace; acks restore it', async (t) => {
  const { pump, transport, pacer, events, db } = setup(40, { ackTimeoutMs: 1000, rate: 10_000 });
  t.teardown(() => db.close());
  pump.wake();
  await settle();
  transport.sent = [];
  pump.checkTimeouts(Date.now() + 5000);
  t.equal(pacer.rate, 5000, 'pushback halves the pace');
  t.ok(events.some((e) => e.type === 'rewind' && /no ack/.test(e.reason)));
  await settle();
  t.strictSame(seqs(transport.sent[0]), [1, 10], 'everything unacknowledged is sent again');
  pump.onAck({ epoch: 1, appliedThrough: 10 });
  t.equal(pacer.rate, 6250, 'progress restores it step by step');
});

t.test('the pacer makes a sender wait once the burst is spent', async (t) => {
  let now = 0;
  const pacer = new ReplayPacer(1000, 100, () => now);
  t.equal(pacer.take(1000), 0, 'one second of burst');
  t.equal(pacer.take(500), 500, 'then 500 records wait half a second');
  now += 500;
  t.equal(pacer.take(0), 0);
  for (let i = 0; i < 10; i++) pacer.onPushback();
  t.equal(pacer.rate, 100, 'never below the floor');
});

t.test('a refused send holds the stream with its reason, keeps every record, and tries again', async (t) => {
  const { pump, transport, outbox, events, db } = setup(30);
  t.teardown(() => db.close());
  transport.fail = new SinkError('OMS refused the batch with 422', 'hold', 'http_422');
  pump.wake();
  await settle();
  t.match(pump.held, { reason: 'http_422', message: /422/ });
  t.equal(outbox.size('ledger').records, 30, 'nothing dropped');
  t.ok(events.some((e) => e.type === 'failed' && e.action === 'hold'));
  transport.fail = undefined;
  transport.sent = [];
  await new Promise((r) => setTimeout(r, 120));
  t.strictSame(seqs(transport.sent[0]), [1, 10], 'tried again after the hold delay, from the start');
  pump.onAck({ epoch: 1, appliedThrough: 10 });
  t.equal(pump.held, undefined, 'an ack clears the hold');
  pump.stop();
});
