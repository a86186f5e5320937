/**
 * Pruning the message journal past its retention: every old row goes, recent ones stay, and the
 * deletes run in chunks with the event loop (and the journal thread) free between them.
 */
import t from 'tap';
import { createLogger } from '../hub/observability/logger.js';
import { createMetrics } from '../hub/observability/metrics.js';
import { StoreMaintenance } from '../hub/store/maintenance.js';
import { Store } from '../hub/store/store.js';

t.test('retention pruning deletes every old message in chunks, keeps recent ones, and yields between chunks', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  const old = Date.now() - 100 * 3_600_000;
  const insert = store.db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, ?, ?)');
  store.db.transaction(() => {
    for (let i = 0; i < 25_000; i++) insert.run('d', 'devices/d/x', Buffer.from('x'), 1, old + i);
    for (let i = 0; i < 5; i++) insert.run('d', 'devices/d/x', Buffer.from('y'), 1, Date.now() + i);
  })();

  const lines: string[] = [];
  const log = createLogger({ level: 'info', pretty: false, destination: { write: (line: string) => lines.push(line) } as never });
  const maintenance = new StoreMaintenance(() => store, { synchronous: 'full', maxBytes: 1024 ** 3, ingestRetentionHours: 72 } as never, createMetrics(), log);
  // Each chunk is one statement on this thread; between chunks the loop runs other work.
  let turnsDuringPrune = 0;
  let pruning = true;
  const spin = () => {
    if (!pruning) return;
    turnsDuringPrune++;
    setImmediate(spin);
  };
  setImmediate(spin);
  await maintenance.prune();
  pruning = false;

  const left = store.db.prepare('SELECT count(*) AS n, min(received_at) >= ? AS recent FROM device_messages').get(Date.now() - 3_600_000) as {
    n: number;
    recent: number;
  };
  t.equal(left.n, 5, 'only the recent messages are left');
  t.equal(left.recent, 1);
  t.ok(turnsDuringPrune >= 2, `the event loop ran between the chunks (${turnsDuringPrune} turns)`);
  const logged = lines.map((l) => JSON.parse(l) as { msg: string; removed?: number }).find((l) => l.msg.startsWith('pruned'));
  t.equal(logged?.removed, 25_000, 'one line says how many were removed');
  t.equal(store.journal.prune(Number.MAX_SAFE_INTEGER, 2), 2, 'a limited prune deletes at most its limit');
});
