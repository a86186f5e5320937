/**
 * The journal seen from the hub's thread (journal-thread.ts): messages cross to the journal's own
 * thread intact, failures there reach the right callers, close() answers everything before the
 * store closes, a dead thread stops the journal, and the hub's own transactions are not broken by
 * the second writer.
 */
import Database from 'better-sqlite3';
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { HubError } from '../hub/sdk/errors.js';
import { BatchWriter, readBatch } from '../hub/store/journal-batch.js';
import { JournalThread } from '../hub/store/journal-thread.js';
import type { JournalMessage } from '../hub/store/message-journal.js';
import { Store } from '../hub/store/store.js';

function openStore(t: Test, dataDir = t.testdir()): Store {
  const store = new Store({ dataDir, synchronous: 'full', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  return store;
}

function append(store: Store, m: JournalMessage): Promise<Error | undefined> {
  return new Promise((resolve) => store.journal.append(m, (err) => resolve(err)));
}

function message(i: number, topic = `devices/d${i % 3}/m`): JournalMessage {
  return { deviceId: `d${i % 3}`, topic, payload: Buffer.from(`p${i}`), qos: 1, receivedAt: 1_700_000_000_000 + i };
}

interface Row {
  device_id: string;
  topic: string;
  payload: Buffer;
  qos: number;
  received_at: number;
}

function rows(db: Database.Database): Row[] {
  return db.prepare('SELECT device_id, topic, payload, qos, received_at FROM device_messages ORDER BY id').all() as Row[];
}

t.test('a batch written on one thread reads back the same on the other, whatever the strings and payloads', async (t) => {
  const arbitraryMessage = fc.record({
    deviceId: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    topic: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }),
    payload: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
    qos: fc.constantFrom(1, 2),
    receivedAt: fc.integer({ min: 0, max: 2 ** 52 }),
  });
  fc.assert(
    fc.property(fc.array(arbitraryMessage, { minLength: 1, maxLength: 300 }), (messages) => {
      const writer = new BatchWriter();
      for (const m of messages) writer.add(m);
      const { message } = writer.take(7);
      if (message.t !== 'batch') throw new Error('not a batch');
      const back = readBatch(message.bytes, message.length, message.count);
      t.equal(message.id, 7);
      return back.length === messages.length && back.every((b, i) => JSON.stringify(b) === JSON.stringify(messages[i]));
    }),
    { numRuns: 200 },
  );
  t.pass('every generated batch round-tripped');
});

t.test('messages cross to the journal thread intact and in order, non-ASCII names included', async (t) => {
  const store = openStore(t);
  const sent = [
    message(0),
    { deviceId: 'kühlregal-7', topic: 'devices/kühlregal-7/température', payload: Buffer.from('{"°C":4}'), qos: 1, receivedAt: 5 },
    { deviceId: '货架-1', topic: 'devices/货架-1/重量/🛒', payload: Buffer.alloc(0), qos: 2, receivedAt: 6 },
    { deviceId: 'big', topic: 'devices/big/blob', payload: Buffer.alloc(200_000, 0xab), qos: 1, receivedAt: 7 },
    // invalid UTF-8 on the wire decodes to U+FFFD, three bytes each: longer than 65,535 bytes here
    { deviceId: 'odd', topic: `devices/odd/${'\uFFFD'.repeat(30_000)}`, payload: Buffer.from('x'), qos: 1, receivedAt: 8 },
    message(4),
  ];
  const results = await Promise.all(sent.map((m) => append(store, m)));
  t.strictSame(results, Array(sent.length).fill(undefined), 'all acknowledged');
  t.strictSame(
    rows(store.db),
    sent.map((m) => ({ device_id: m.deviceId, topic: m.topic, payload: m.payload, qos: m.qos, received_at: m.receivedAt })),
    'every field as sent, in append order',
  );
  t.equal(store.journal.stats.committed, sent.length, "the thread's counts reach the hub thread");
});

t.test('a commit the journal thread cannot make fails its own callers only, with the reason', async (t) => {
  const store = openStore(t);
  t.equal(await append(store, message(0)), undefined, 'the thread is up');
  store.db.exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON device_messages WHEN NEW.topic = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poison refused'); END`);
  const failed = await Promise.all([append(store, message(1)), append(store, message(2, 'poison'))]);
  for (const err of failed) {
    t.ok(err instanceof HubError, 'a HubError on the hub thread');
    t.equal((err as HubError).code, 'HUB_ERR_INTERNAL');
    t.match((err as HubError).message, /journal commit failed: poison refused/, 'with the reason from the other thread');
  }
  t.equal(store.journal.stats.failed, 2, 'counted');
  t.equal(await append(store, message(3)), undefined, 'the next batch commits');
  t.strictSame(
    rows(store.db).map((r) => r.received_at),
    [message(0).receivedAt, message(3).receivedAt],
    'the failed batch left nothing behind',
  );
  t.notOk(store.journal.stopped, 'a failed commit does not stop the journal');
});

t.test('close() hands over what is queued, waits for the thread and answers everyone before it returns', async (t) => {
  const dir = t.testdir();
  const store = new Store({ dataDir: dir, synchronous: 'full', maxBytes: 1024 ** 3 });
  t.equal(await append(store, message(0)), undefined, 'the thread is up');
  const answers: (Error | undefined)[] = [];
  for (let i = 1; i <= 500; i++) store.journal.append(message(i), (err) => answers.push(err));
  t.equal(store.journal.pending, 500, 'queued, not yet handed over');
  store.close();
  t.equal(answers.length, 500, 'every caller answered inside close()');
  t.ok(
    answers.every((e) => e === undefined),
    'all durable',
  );
  const again = openStore(t, dir);
  t.equal(rows(again.db).length, 501, 'all there after reopening');
});

t.test('a journal thread that dies stops the journal: waiting callers fail, the hub is told, later messages are refused', async (t) => {
  const store = openStore(t);
  t.equal(await append(store, message(0)), undefined, 'the thread is up');
  const told: HubError[] = [];
  store.journal.onSyncFailure = (err) => told.push(err);
  const waiting = append(store, message(1));
  store.journal.flush();
  await (store.journal as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  const err = await waiting;
  t.equal((err as HubError | undefined)?.code, 'HUB_ERR_STORE_SYNC', 'the message handed over is not acknowledged');
  t.equal(told.length, 1, 'the hub is told once');
  t.match(told[0]?.message, /journal thread exited/);
  t.equal(store.journal.stopped?.code, 'HUB_ERR_STORE_SYNC');
  t.equal(((await append(store, message(2))) as HubError).code, 'HUB_ERR_STORE_SYNC', 'later messages are refused');
  t.equal(told.length, 1, 'still once');
});

t.test('a WAL sync that fails while the store closes fails its messages: the last sync does not call them durable', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  t.equal(await append(store, message(0)), undefined, 'the thread is up');
  // From now on a sync that was running fails; one through a fresh descriptor (the last, at
  // close) succeeds, as Linux reports a writeback error once per open file description.
  store.journal.failSyncsForTest('EIO: i/o error, fdatasync');
  const answers: (Error | undefined)[] = [];
  for (let i = 1; i <= 3; i++) store.journal.append(message(i), (err) => answers.push(err));
  store.close(); // the batch's sync is still running when the thread is told to close
  t.equal(answers.length, 3, 'everyone answered inside close()');
  for (const err of answers) t.equal((err as HubError | undefined)?.code, 'HUB_ERR_STORE_SYNC', 'refused, not acknowledged');
});

t.test('a journal thread that cannot open the database does not hold close() for its timeout', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  const journal = new JournalThread(store.db, `${store.file}.missing`, store.budget, 'full');
  const told: HubError[] = [];
  journal.onSyncFailure = (err) => told.push(err);
  const answers: (Error | undefined)[] = [];
  journal.append(message(0), (err) => answers.push(err));
  journal.flush();
  const started = performance.now();
  journal.close();
  const ms = performance.now() - started;
  t.ok(ms < 8_000, `close() returned in ${Math.round(ms)} ms (its timeout is 10 s)`);
  t.equal((answers[0] as HubError | undefined)?.code, 'HUB_ERR_STORE_SYNC', 'the message is refused');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(told.length, 0, 'a thread ending during close is not reported as a failure');
  store.close();
});

t.test("the hub's own read-then-write transactions survive the journal thread committing in between", async (t) => {
  const store = openStore(t);
  t.equal(await append(store, message(0)), undefined, 'the thread is up');
  const watcher = new Database(store.file, { readonly: true, fileMustExist: true });
  t.teardown(() => watcher.close());
  const version = () => watcher.pragma('data_version', { simple: true }) as number;
  store.db.exec('CREATE TABLE tally (n INTEGER)');
  // A third connection holds the write lock, so the thread's next commit waits in its busy handler.
  const holder = new Database(store.file, { fileMustExist: true });
  t.teardown(() => holder.close());
  holder.exec('BEGIN IMMEDIATE');
  const answered = append(store, message(1));
  store.journal.flush();
  await new Promise((r) => setTimeout(r, 300)); // the thread has the batch and waits for the lock
  holder.exec('COMMIT'); // released: the thread commits at its next retry, a few ms from now
  let sawCommitInside = false;
  const readThenWrite = store.db.transaction(() => {
    const n = (store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number }).n;
    // With a DEFERRED transaction the thread commits here, between our read and our write, and
    // the write then fails at once with SQLITE_BUSY (a stale snapshot). IMMEDIATE holds the write
    // lock from the start, so the thread waits for us instead.
    const before = version();
    const until = performance.now() + 1000;
    while (performance.now() < until && version() === before);
    sawCommitInside = version() !== before;
    store.db.prepare('INSERT INTO tally (n) VALUES (?)').run(n);
  });
  t.doesNotThrow(() => readThenWrite(), 'the transaction commits');
  t.notOk(sawCommitInside, 'the journal thread could not commit inside it');
  t.equal(await answered, undefined, 'and committed right after');
  t.strictSame(store.db.prepare('SELECT n FROM tally').all(), [{ n: 1 }], 'written from what was read');
  t.equal(rows(store.db).length, 2);
});

t.test('a store that journals nothing starts no thread', async (t) => {
  const store = openStore(t);
  store.credentials.list();
  t.equal((store.journal as unknown as { worker?: unknown }).worker, undefined);
});
