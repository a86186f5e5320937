/**
 * Desired state (`config.desired`): newer versions validated and recorded once; older or equal ones
 * and invalid configs REJECTED with a reason, reported upstream, nothing applied.
 */
import t from 'tap';
import { DesiredStateStore } from '../hub/ops/desired-state.js';
import { desiredStateJobDocument } from '../hub/ops/types/config-desired.js';
import { openOps, waitForStatus } from './helpers/ops.js';

const config = (storeId: string) => ({ version: 1, store: { id: storeId }, cloud: { enabled: false, password: 'secret-pw' } });

t.test('a newer version is applied, recorded and reported', async (t) => {
  const rig = await openOps(t, t.testdir());
  const job = rig.service.submit({ type: 'config.desired', id: 'desired-2', version: 2, config: config('store-a') }, 'cloud');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED', 'REJECTED');
  t.equal(done.status, 'SUCCEEDED');
  t.strictSame(
    done.executions.map((e) => e.target),
    ['hub'],
  );
  const applied = new DesiredStateStore(rig.store.db).applied();
  t.equal(applied?.version, 2);
  t.same(applied?.config, config('store-a'), 'the document is stored as sent');
  t.equal(applied?.jobId, 'desired-2');
  const update = rig.updates.find((u) => u.id === job.id && u.status === 'SUCCEEDED');
  t.same(update?.reported, { version: 2, appliedAt: applied?.appliedAt }, 'the reported payload for the cloud link');
  t.notMatch(JSON.stringify(done.document), /secret-pw/, 'the API never shows the config');
});

t.test('older or equal versions are REJECTED: "older than applied version N"; nothing applied', async (t) => {
  const rig = await openOps(t, t.testdir());
  const v5 = rig.service.submit({ type: 'config.desired', version: 5, config: config('store-5') }, 'cloud');
  await waitForStatus(rig.service, v5.id, 'SUCCEEDED');

  const older = rig.service.submit({ type: 'config.desired', version: 4, config: config('store-4') }, 'cloud');
  t.equal(older.status, 'REJECTED');
  t.equal(older.reason, 'older than applied version 5');
  t.equal(older.executions[0]?.status, 'REJECTED');
  const reported = rig.updates.find((u) => u.id === older.id && u.status === 'REJECTED')?.reported;
  t.same(reported, { version: 4, rejected: 'older than applied version 5' });

  const same = rig.service.submit({ type: 'config.desired', version: 5, config: config('store-5b') }, 'cloud');
  t.equal(same.status, 'REJECTED');
  t.equal(same.reason, 'already applied: not newer than applied version 5');

  const store = new DesiredStateStore(rig.store.db);
  t.equal(store.appliedVersion(), 5);
  t.same(store.applied()?.config, config('store-5'), 'the applied config is untouched');
  t.equal(rig.store.db.prepare('SELECT count(*) AS n FROM desired_states').pluck().get(), 1);
});

t.test('of two versions queued together, the newer wins and the older is refused under the lock', async (t) => {
  const rig = await openOps(t, t.testdir());
  const newer = rig.service.submit({ type: 'config.desired', version: 9, config: config('store-9') }, 'cloud');
  const older = rig.service.submit({ type: 'config.desired', version: 8, config: config('store-8') }, 'cloud');
  t.equal(older.status, 'QUEUED', 'at submit, 8 is newer than what is applied');
  t.equal((await waitForStatus(rig.service, newer.id, 'SUCCEEDED', 'REJECTED')).status, 'SUCCEEDED');
  const refused = await waitForStatus(rig.service, older.id, 'SUCCEEDED', 'REJECTED');
  t.equal(refused.status, 'REJECTED');
  t.equal(refused.reason, 'older than applied version 9');
  t.equal(new DesiredStateStore(rig.store.db).appliedVersion(), 9);
});

t.test('a config the hub schema refuses is REJECTED naming each problem', async (t) => {
  const rig = await openOps(t, t.testdir());
  const job = rig.service.submit(
    { type: 'config.desired', version: 1, config: { version: 1, store: { id: 'x' }, api: { port: 'eighty' }, colour: 'blue' } },
    'cloud',
  );
  t.equal(job.status, 'REJECTED');
  t.match(job.reason, /^the config is invalid: /);
  t.match(job.reason, /api\.port: must be integer/);
  t.match(job.reason, /colour: unknown key/);
  t.equal(new DesiredStateStore(rig.store.db).appliedVersion(), 0, 'nothing applied');
});

t.test('desired state without a version or config is malformed', async (t) => {
  const rig = await openOps(t, t.testdir());
  t.throws(() => rig.service.submit({ type: 'config.desired', config: {} }, 'cloud'), { code: 'HUB_ERR_JOB_INVALID', message: /version: is required/ });
  t.throws(() => rig.service.submit({ type: 'config.desired', version: 0, config: {} }, 'cloud'), {
    code: 'HUB_ERR_JOB_INVALID',
    message: /version: must be >= 1/,
  });
  const rejected = rig.updates.filter((u) => u.status === 'REJECTED');
  t.equal(rejected.length, 2);
  t.equal(rejected[0]?.reported, undefined, 'a malformed document reports no desired state upstream');
});

t.test('the retained desired message delivered again on reconnect is the same job, not a new rejection', async (t) => {
  const rig = await openOps(t, t.testdir());
  const message = { version: 6, config: config('store-6') };
  const first = rig.service.submit(desiredStateJobDocument(JSON.parse(JSON.stringify(message))), 'cloud');
  t.equal(first.id, 'desired-v6');
  await waitForStatus(rig.service, first.id, 'SUCCEEDED');
  const announced = rig.updates.length;
  const again = rig.service.submit(desiredStateJobDocument(JSON.parse(JSON.stringify(message))), 'cloud');
  t.equal(again.id, 'desired-v6');
  t.equal(again.status, 'SUCCEEDED', 'not REJECTED as already applied');
  t.equal(rig.updates.length, announced, 'nothing new is announced upstream');
  t.equal(rig.service.list().length, 1);
  t.throws(() => rig.service.submit(desiredStateJobDocument({ version: 6, config: config('other') }), 'cloud'), { code: 'HUB_ERR_JOB_EXISTS' });
  t.throws(() => rig.service.submit(desiredStateJobDocument('garbage'), 'cloud'), { code: 'HUB_ERR_JOB_INVALID' });
});
