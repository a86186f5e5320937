/**
 * JobService with device commands: running on each target, verdicts and reasons, malformed documents
 * (rejected, recorded, announced, thrown with a code), idempotent resubmission, listing, metrics.
 */
import t from 'tap';
import { isHubError } from '../hub/sdk/errors.js';
import { FakeCommander } from './helpers/fake-commander.js';
import { metric, openOps, waitFor, waitForStatus } from './helpers/ops.js';

t.test('device.command runs on every target and the job succeeds', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ 'shelf-1': {}, 'shelf-2': {} }) });
  const job = rig.service.submit({ type: 'device.command', targets: ['shelf-1', 'shelf-2'], command: { name: 'tare', args: { row: 2 } } }, 'api');
  t.equal(job.status, 'QUEUED', 'submit returns the job before it runs');
  t.equal(job.progress, 0);
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'SUCCEEDED');
  t.equal(done.progress, 1);
  t.strictSame(
    done.executions.map((e) => [e.target, e.status, e.attempts]),
    [
      ['shelf-1', 'SUCCEEDED', 1],
      ['shelf-2', 'SUCCEEDED', 1],
    ],
  );
  t.same(done.executions[0]?.result, { ok: true, data: { ran: 'tare', args: { row: 2 } } }, "the driver's answer is kept");
  t.strictSame(rig.commander.sent('shelf-1'), ['tare']);
  t.equal(done.counts.SUCCEEDED, 2);
  t.equal(await metric(rig.metrics, 'storehub_jobs_finished_total', { type: 'device.command', status: 'SUCCEEDED' }), 1);
  t.equal(await metric(rig.metrics, 'storehub_jobs_submitted_total', { type: 'device.command', source: 'api' }), 1);
  t.equal(await metric(rig.metrics, 'storehub_job_executions_in_progress', { type: 'device.command' }), 0);
  t.strictSame(
    rig.updates.filter((u) => u.id === job.id).map((u) => u.status),
    ['QUEUED', 'IN_PROGRESS', 'IN_PROGRESS', 'IN_PROGRESS', 'IN_PROGRESS', 'SUCCEEDED'],
    'announced: accepted, each start and end, and the verdict',
  );
});

t.test('a failing target fails the job with a reason naming it; the other target still runs', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ 'shelf-1': {} }) });
  const job = rig.service.submit({ type: 'device.command', targets: ['ghost', 'shelf-1'], command: { name: 'status' } }, 'cloud');
  const done = await waitForStatus(rig.service, job.id, 'SUCCEEDED', 'FAILED');
  t.equal(done.status, 'FAILED');
  t.equal(done.reason, '1 of 2 targets did not succeed: ghost FAILED (no device ghost)');
  t.equal(done.executions[0]?.status, 'FAILED');
  t.equal(done.executions[1]?.status, 'SUCCEEDED');
  t.equal(done.source, 'cloud');
  t.equal(await metric(rig.metrics, 'storehub_jobs_finished_total', { type: 'device.command', status: 'FAILED' }), 1);
});

t.test('the in-progress gauge counts executions on a device now', async (t) => {
  const commander = new FakeCommander({ 'shelf-1': {} });
  const release = commander.block('shelf-1');
  const rig = await openOps(t, t.testdir(), { commander });
  const job = rig.service.submit({ type: 'device.command', targets: ['shelf-1'], command: { name: 'reboot' } }, 'api');
  await waitFor(() => commander.calls.length === 1, 'the command to be sent');
  t.equal(await metric(rig.metrics, 'storehub_job_executions_in_progress', { type: 'device.command' }), 1);
  t.equal(rig.service.get(job.id)?.status, 'IN_PROGRESS');
  release();
  await waitForStatus(rig.service, job.id, 'SUCCEEDED');
  t.equal(await metric(rig.metrics, 'storehub_job_executions_in_progress', { type: 'device.command' }), 0);
});

t.test('malformed documents are rejected with a reason, recorded, announced and thrown as HUB_ERR_JOB_INVALID', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ 'shelf-1': {} }) });
  const cases: [string, unknown, RegExp][] = [
    ['not an object', [1, 2], /must be a JSON object/],
    ['no type', { id: 'm-1', targets: ['shelf-1'] }, /type: is required/],
    ['unknown type', { id: 'm-2', type: 'price.push' }, /unknown job type "price.push"/],
    ['missing field', { id: 'm-3', type: 'device.command', targets: ['shelf-1'] }, /command: is required/],
    ['unknown field', { id: 'm-4', type: 'device.command', targets: ['shelf-1'], command: { name: 'x' }, extra: 1 }, /extra: unknown field/],
    ['empty targets', { id: 'm-5', type: 'device.command', targets: [], command: { name: 'x' } }, /targets: must NOT have fewer than 1 items/],
    ['duplicate targets', { id: 'm-6', type: 'device.command', targets: ['a', 'a'], command: { name: 'x' } }, /targets: must NOT have duplicate items/],
    [
      'firmware through device.command',
      { id: 'm-7', type: 'device.command', targets: ['shelf-1'], command: { name: 'firmware.update' } },
      /firmware.update job/,
    ],
    ['bad timeout', { id: 'm-8', type: 'device.command', targets: ['shelf-1'], command: { name: 'x' }, timeoutSeconds: -1 }, /timeoutSeconds: must be > 0/],
  ];
  for (const [what, doc, reason] of cases) {
    let caught: unknown;
    try {
      rig.service.submit(doc, 'cloud');
    } catch (err) {
      caught = err;
    }
    t.ok(isHubError(caught, 'HUB_ERR_JOB_INVALID'), `${what}: HUB_ERR_JOB_INVALID`);
    t.match((caught as Error).message, reason, `${what}: the reason says why`);
    const id = (doc as { id?: string }).id;
    if (id) {
      const recorded = rig.service.get(id);
      t.equal(recorded?.status, 'REJECTED', `${what}: recorded REJECTED`);
      t.match(recorded?.reason, reason);
      t.strictSame(recorded?.executions, [], `${what}: nothing to run`);
      t.ok(
        rig.updates.some((u) => u.id === id && u.status === 'REJECTED'),
        `${what}: announced upstream`,
      );
    }
  }
  t.strictSame(rig.commander.calls, [], 'nothing reached a device');
  t.equal(await metric(rig.metrics, 'storehub_jobs_finished_total', { status: 'REJECTED' }), cases.length);
  t.equal(await metric(rig.metrics, 'storehub_jobs_submitted_total', { type: 'unknown' }), 3, 'no type, unknown type and not an object');
  t.equal(rig.updates.filter((u) => u.status === 'REJECTED').length, cases.length, 'even a document without an id is announced');
});

t.test('resubmitting the same document under the same id is harmless; a different one is refused', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ 'shelf-1': {} }) });
  const doc = { type: 'device.command', id: 'hq-42', targets: ['shelf-1'], command: { name: 'reboot' } };
  const first = rig.service.submit(doc, 'cloud');
  await waitForStatus(rig.service, 'hq-42', 'SUCCEEDED');
  const again = rig.service.submit(structuredClone(doc), 'cloud');
  t.equal(again.id, first.id);
  t.equal(again.status, 'SUCCEEDED', 'the existing job is returned');
  t.strictSame(rig.commander.sent('shelf-1'), ['reboot'], 'the command ran once');
  t.throws(() => rig.service.submit({ ...doc, command: { name: 'status' } }, 'cloud'), { code: 'HUB_ERR_JOB_EXISTS' });
  // a malformed document redelivered is refused again without a second record
  const bad = { type: 'device.command', id: 'hq-43', targets: [] };
  t.throws(() => rig.service.submit(bad, 'cloud'), { code: 'HUB_ERR_JOB_INVALID' });
  t.throws(() => rig.service.submit(bad, 'cloud'), { code: 'HUB_ERR_JOB_INVALID' });
  t.equal(rig.service.list({ status: 'REJECTED' }).length, 1);
});

t.test('list filters by status, type and source, newest first', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ a: {} }) });
  const ok = rig.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'x' } }, 'api');
  const bad = rig.service.submit({ type: 'device.command', targets: ['nope'], command: { name: 'x' } }, 'cloud');
  await waitForStatus(rig.service, ok.id, 'SUCCEEDED');
  await waitForStatus(rig.service, bad.id, 'FAILED');
  t.strictSame(
    rig.service.list().map((j) => j.id),
    [bad.id, ok.id],
  );
  t.strictSame(
    rig.service.list({ status: 'FAILED' }).map((j) => j.id),
    [bad.id],
  );
  t.strictSame(
    rig.service.list({ source: 'api' }).map((j) => j.id),
    [ok.id],
  );
  t.strictSame(rig.service.list({ type: 'firmware.update' }), []);
  t.strictSame(
    rig.service.list({ limit: 1 }).map((j) => j.id),
    [bad.id],
  );
  t.equal(rig.service.list()[0]?.progress, 1);
});

t.test('a throwing status listener is logged and does not stop the job', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ a: {} }) });
  rig.service.onStatus(() => {
    throw new Error('listener broke');
  });
  const job = rig.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'x' } }, 'api');
  await waitForStatus(rig.service, job.id, 'SUCCEEDED');
  t.ok(
    rig.updates.some((u) => u.id === job.id && u.status === 'SUCCEEDED'),
    'the other listener still heard',
  );
  t.ok(rig.logs.some((l) => l.msg === 'job status listener failed'));
});

t.test('a stopped service refuses work with HUB_ERR_JOB_SERVICE_STOPPED', async (t) => {
  const rig = await openOps(t, t.testdir());
  await rig.service.stop();
  t.throws(() => rig.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'x' } }, 'api'), { code: 'HUB_ERR_JOB_SERVICE_STOPPED' });
  t.throws(() => rig.service.list(), { code: 'HUB_ERR_JOB_SERVICE_STOPPED' });
});

t.test('an unparseable firmware key stops start-up with a configuration error naming it', async (t) => {
  let caught: unknown;
  try {
    await openOps(t, t.testdir(), { firmwareKeys: ['not a key'] });
  } catch (err) {
    caught = err;
  }
  t.ok(isHubError(caught, 'HUB_ERR_CONFIG_INVALID'));
  t.match((caught as Error).message, /ops\.firmwareKeys\[0\]/);
});
