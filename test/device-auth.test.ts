/**
 * DeviceAuthenticator (hub/broker/device-auth.ts): an unknown device id costs the same scrypt work
 * as a wrong secret, under the same concurrency limit, so refusals do not tell which ids exist.
 */
import t from 'tap';
import { DeviceAuthenticator } from '../hub/broker/device-auth.js';
import { Store } from '../hub/store/store.js';

t.test('an unknown device id is checked like a wrong secret, not refused at once', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'full', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  const secret = await store.credentials.add('shelf-1', 'smart-shelf');
  const auth = new DeviceAuthenticator(store.credentials, 1);
  const unknown = auth.check('shelf-404', 'guess');
  // the unknown id holds the one scrypt slot, as a real check would
  t.strictSame(await auth.check('shelf-1', secret), { ok: false, reason: 'busy' }, 'a second check meanwhile is told to come back');
  t.strictSame(await unknown, { ok: false, reason: 'unknown_device' }, 'the unknown id is refused after the work');
  const ok = await auth.check('shelf-1', secret);
  t.equal(ok.ok, true, 'the slot is free again');
  t.strictSame(await auth.check('shelf-1', 'wrong'), { ok: false, reason: 'bad_secret' });
});
