/**
 * WalSync (hub/store/wal-sync.ts): each sync in flight has its own descriptor of the WAL file, so a
 * writeback error reaches every sync that covers it; descriptors are reused and closed with the store.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { WalSync } from '../hub/store/wal-sync.js';

const openDescriptors = () => readdirSync('/proc/self/fd').length;

t.test('concurrent syncs get a descriptor each; later syncs reuse them; close releases them all', async (t) => {
  const file = join(t.testdir(), 'hub.db-wal');
  writeFileSync(file, 'frames');
  const before = openDescriptors();
  const wal = new WalSync(file);
  const sync = () => new Promise<Error | undefined>((resolve) => wal.sync(resolve));
  const both = Promise.all([sync(), sync()]);
  t.equal(wal.descriptors, 2, 'two syncs in flight, two descriptors');
  t.strictSame(await both, [undefined, undefined]);
  t.equal(await sync(), undefined);
  wal.syncNow();
  t.equal(wal.descriptors, 2, 'reused afterwards, none opened for later syncs');
  t.equal(openDescriptors(), before + 2);
  wal.close();
  t.equal(wal.descriptors, 0);
  t.equal(openDescriptors(), before, 'closed with the store');
  const refused = await sync();
  t.match(refused?.message, /closing/, 'a sync after close is answered with an error');
});

t.test('a sync still in flight at close closes its descriptor when it ends', async (t) => {
  const file = join(t.testdir(), 'hub.db-wal');
  writeFileSync(file, 'frames');
  const before = openDescriptors();
  const wal = new WalSync(file);
  const done = new Promise<Error | undefined>((resolve) => wal.sync(resolve));
  wal.close();
  t.equal(await done, undefined, 'the sync in flight still finishes');
  t.equal(openDescriptors(), before);
});

t.test('a WAL file that cannot be opened fails the sync, not the process', async (t) => {
  const wal = new WalSync(join(t.testdir(), 'missing-wal'));
  const err = await new Promise<Error | undefined>((resolve) => wal.sync(resolve));
  t.match(err?.message, /ENOENT/);
  t.throws(() => wal.syncNow(), /ENOENT/);
});
