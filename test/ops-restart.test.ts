/**
 * Jobs across a restart, on a real SQLite file closed and opened again: what was queued runs, an
 * interrupted device command is failed (never sent twice), an interrupted firmware update is run
 * again (installing a version is idempotent), applied desired state is remembered, and a deadline
 * that passed while the hub was down times the job out.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { generateSigningKeyPair, signImage } from '../hub/ops/firmware-signature.js';
import { INTERRUPTED_REASON, RETRIED_REASON } from '../hub/ops/job-service.js';
import { FakeCommander } from './helpers/fake-commander.js';
import { metric, openOps, waitFor, waitForStatus } from './helpers/ops.js';

t.test('a device command interrupted by a restart is failed, not repeated; queued work runs after the restart', async (t) => {
  const dir = t.testdir();
  const before = new FakeCommander({ door: {} });
  before.block('door'); // never answers in this process
  const first = await openOps(t, dir, { commander: before });
  const interrupted = first.service.submit({ type: 'device.command', id: 'open-door', targets: ['door'], command: { name: 'open' } }, 'cloud');
  const queued = first.service.submit({ type: 'device.command', id: 'close-door', targets: ['door'], command: { name: 'close' } }, 'cloud');
  await waitFor(() => before.calls.length === 1, 'open to be sent');
  t.equal(first.service.get(queued.id)?.executions[0]?.status, 'QUEUED');
  await first.close();

  const after = new FakeCommander({ door: {} });
  const second = await openOps(t, dir, { commander: after });
  const failed = await waitForStatus(second.service, interrupted.id, 'FAILED', 'SUCCEEDED');
  t.equal(failed.status, 'FAILED');
  t.equal(failed.executions[0]?.reason, INTERRUPTED_REASON);
  t.match(failed.reason, /1 of 1 targets did not succeed: door FAILED \(interrupted by a hub restart/);
  const ran = await waitForStatus(second.service, queued.id, 'SUCCEEDED', 'FAILED');
  t.equal(ran.status, 'SUCCEEDED', 'the queued job ran after the restart');
  t.strictSame(after.sent('door'), ['close'], 'open was not sent a second time');
  t.ok(
    second.updates.some((u) => u.id === interrupted.id && u.status === 'FAILED'),
    'the outcome is announced after the restart',
  );
  t.equal(await metric(second.metrics, 'storehub_jobs_finished_total', { status: 'FAILED' }), 1, 'counted once, by the process that ended it');
});

t.test('a firmware update interrupted by a restart runs again and succeeds', async (t) => {
  const dir = t.testdir();
  const keys = generateSigningKeyPair();
  const image = Buffer.from('firmware image 2.0.0 '.repeat(200));
  const doc = {
    type: 'firmware.update',
    id: 'fw-2',
    targets: ['reader-1', 'reader-2'],
    waves: [1],
    version: '2.0.0',
    image: { data: image.toString('base64'), sha256: createHash('sha256').update(image).digest('hex'), size: image.length },
    signature: signImage(image, keys.privateKeyPem),
  };
  const before = new FakeCommander({ 'reader-1': { firmware: '1.0.0' }, 'reader-2': { firmware: '1.0.0' } });
  before.block('reader-1');
  const first = await openOps(t, dir, { commander: before, firmwareKeys: [keys.publicKeyBase64] });
  first.service.submit(doc, 'cloud');
  await waitFor(() => before.sent('reader-1').includes('firmware.update'), 'the transfer to start');
  await first.close();

  const after = new FakeCommander({ 'reader-1': { firmware: '1.0.0' }, 'reader-2': { firmware: '1.0.0' } });
  const second = await openOps(t, dir, { commander: after, firmwareKeys: [keys.publicKeyBase64] });
  const done = await waitForStatus(second.service, 'fw-2', 'SUCCEEDED', 'FAILED', 'REJECTED');
  t.equal(done.status, 'SUCCEEDED', done.reason ?? '');
  t.equal(done.executions[0]?.attempts, 2, 'reader-1 was begun twice');
  t.equal(done.executions[0]?.reason, RETRIED_REASON);
  t.equal(done.executions[1]?.attempts, 1, 'reader-2 (second wave) ran once, after the restart');
  t.strictSame(before.sent('reader-2'), [], 'the second wave had not started before the restart');
  t.equal(after.firmwareVersion('reader-1'), '2.0.0');
  t.equal(after.firmwareVersion('reader-2'), '2.0.0');
});

t.test('jobs, executions and applied desired state survive close and reopen', async (t) => {
  const dir = t.testdir();
  const first = await openOps(t, dir, { commander: new FakeCommander({ a: {} }) });
  const command = first.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'ping' } }, 'api');
  const desired = first.service.submit({ type: 'config.desired', version: 3, config: { version: 1, store: { id: 'store-9' } } }, 'cloud');
  await waitForStatus(first.service, command.id, 'SUCCEEDED');
  await waitForStatus(first.service, desired.id, 'SUCCEEDED');
  const snapshot = first.service.get(command.id);
  await first.close();

  const second = await openOps(t, dir, { commander: new FakeCommander({ a: {} }) });
  t.same(second.service.get(command.id), snapshot, 'the job reads back the same');
  t.strictSame(
    second.service.list().map((j) => [j.type, j.status]),
    [
      ['config.desired', 'SUCCEEDED'],
      ['device.command', 'SUCCEEDED'],
    ],
  );
  const older = second.service.submit({ type: 'config.desired', version: 2, config: { version: 1, store: { id: 'store-9' } } }, 'cloud');
  t.equal(older.status, 'REJECTED');
  t.equal(older.reason, 'older than applied version 3', 'the applied version was remembered');
  t.equal(second.service.active, 0, 'finished jobs are not resumed');
});

t.test('a deadline that passed while the hub was down times the job out at start', async (t) => {
  const dir = t.testdir();
  const before = new FakeCommander({ a: {}, b: {} });
  before.block('a');
  const first = await openOps(t, dir, { commander: before });
  const job = first.service.submit({ type: 'device.command', targets: ['a', 'b'], command: { name: 'ping' }, timeoutSeconds: 60 }, 'api');
  await waitFor(() => before.calls.length === 2, 'both commands to be sent');
  await first.close();

  const later = () => Date.now() + 3600_000;
  const after = new FakeCommander({ a: {}, b: {} });
  const second = await openOps(t, dir, { commander: after, now: later });
  const done = await waitForStatus(second.service, job.id, 'TIMED_OUT', 'FAILED', 'SUCCEEDED');
  t.equal(done.status, 'TIMED_OUT');
  t.strictSame(
    done.executions.map((e) => [e.target, e.status]),
    [
      ['a', 'FAILED'],
      ['b', 'SUCCEEDED'],
    ],
    'the interrupted command failed as interrupted; the finished one keeps its outcome',
  );
  t.strictSame(after.calls, [], 'nothing was sent after the deadline');
});
