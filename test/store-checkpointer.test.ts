import { statSync } from 'node:fs';
import t from 'tap';
import { Checkpointer } from '../hub/store/checkpointer.js';
import { Store } from '../hub/store/store.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function writeInBursts(store: Store, bursts: number): Promise<void> {
  const insert = store.db.prepare('INSERT INTO device_messages (device_id, topic, payload, qos, received_at) VALUES (?, ?, ?, 1, ?)');
  const burst = store.db.transaction(() => {
    for (let i = 0; i < 400; i++) insert.run('d1', 'devices/d1/x', Buffer.alloc(200, i), Date.now());
  });
  for (let b = 0; b < bursts; b++) {
    burst();
    await sleep(40);
  }
}

const walBytes = (store: Store) => statSync(`${store.file}-wal`).size;

t.test('the hub connection never checkpoints by itself: the WAL grows without the checkpointer', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  t.equal(store.db.pragma('wal_autocheckpoint', { simple: true }), 0);
  await writeInBursts(store, 30);
  t.ok(walBytes(store) > 30 * 400 * 200, `WAL holds everything (${walBytes(store)} bytes)`);
});

t.test('the worker thread keeps the WAL bounded while writers go on', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  const checkpointer = new Checkpointer(store.file, 'full', 30);
  checkpointer.start();
  t.teardown(async () => {
    await checkpointer.stop();
    store.close();
  });
  await writeInBursts(store, 30);
  t.ok(checkpointer.stats.runs > 5, `${checkpointer.stats.runs} checkpoints ran`);
  t.equal(checkpointer.stats.failures, 0);
  t.ok(walBytes(store) < (30 * 400 * 200) / 3, `WAL stays small (${walBytes(store)} bytes)`);
  const n = store.db.prepare('SELECT count(*) AS n FROM device_messages').get() as { n: number };
  t.equal(n.n, 30 * 400, 'every row is there');
  await checkpointer.stop();
  await checkpointer.stop();
  t.pass('stop is idempotent');
});
