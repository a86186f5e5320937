/**
 * Job timeouts and cancel. Timeouts are short and the tests wait for the resulting states, never
 * for a time: on a slow machine they take longer, they do not fail.
 */
import t from 'tap';
import { isHubError } from '../hub/sdk/errors.js';
import { FakeCommander } from './helpers/fake-commander.js';
import { metric, openOps, waitFor, waitForStatus } from './helpers/ops.js';

t.test('a job that does not finish in time is TIMED_OUT, and a late answer does not change that', async (t) => {
  const commander = new FakeCommander({ slow: {} });
  const release = commander.block('slow');
  const rig = await openOps(t, t.testdir(), { commander });
  const job = rig.service.submit({ type: 'device.command', targets: ['slow'], command: { name: 'reboot' }, timeoutSeconds: 0.2 }, 'cloud');
  const timedOut = await waitForStatus(rig.service, job.id, 'TIMED_OUT', 'SUCCEEDED', 'FAILED');
  t.equal(timedOut.status, 'TIMED_OUT');
  t.equal(timedOut.reason, 'did not finish within 0.2 s of being accepted');
  t.equal(timedOut.executions[0]?.status, 'TIMED_OUT');
  t.equal(timedOut.deadlineAt - timedOut.createdAt, 200);
  t.equal(await metric(rig.metrics, 'storehub_jobs_finished_total', { type: 'device.command', status: 'TIMED_OUT' }), 1);
  t.ok(
    rig.updates.some((u) => u.id === job.id && u.status === 'TIMED_OUT'),
    'announced',
  );

  release();
  await waitFor(() => commander.calls[0]?.answered === true, 'the device to answer late');
  await waitFor(() => rig.logs.some((l) => l.msg === 'late outcome not recorded: the execution had already ended'), 'the late answer to be logged');
  const after = rig.service.get(job.id);
  t.equal(after?.status, 'TIMED_OUT', 'still TIMED_OUT');
  t.equal(after?.executions[0]?.status, 'TIMED_OUT', 'the late success was not recorded');
});

t.test('a job waiting behind another on the same device times out from QUEUED', async (t) => {
  const commander = new FakeCommander({ door: {} });
  const release = commander.block('door');
  const rig = await openOps(t, t.testdir(), { commander });
  const first = rig.service.submit({ type: 'device.command', targets: ['door'], command: { name: 'open' } }, 'api');
  const second = rig.service.submit({ type: 'device.command', targets: ['door'], command: { name: 'close' }, timeoutSeconds: 0.1 }, 'api');
  const timedOut = await waitForStatus(rig.service, second.id, 'TIMED_OUT', 'SUCCEEDED', 'FAILED');
  t.equal(timedOut.status, 'TIMED_OUT');
  t.equal(timedOut.startedAt, null, 'it never started');
  release();
  t.equal((await waitForStatus(rig.service, first.id, 'SUCCEEDED', 'FAILED')).status, 'SUCCEEDED');
  t.strictSame(commander.sent('door'), ['open'], 'the timed-out command was never sent');
});

t.test('without timeoutSeconds the job gets ops.defaultJobTimeoutSeconds', async (t) => {
  const rig = await openOps(t, t.testdir(), { commander: new FakeCommander({ a: {} }), defaultJobTimeoutSeconds: 7 });
  const job = rig.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'x' } }, 'api');
  t.equal(job.timeoutSeconds, 7);
  t.equal(job.deadlineAt - job.createdAt, 7000);
  await waitForStatus(rig.service, job.id, 'SUCCEEDED');
});

t.test('cancel: targets not started are canceled at once; a target already running finishes and records it', async (t) => {
  const commander = new FakeCommander({ a: {}, b: {} });
  const releaseA = commander.block('a');
  const rig = await openOps(t, t.testdir(), { commander });
  const running = rig.service.submit({ type: 'device.command', targets: ['a'], command: { name: 'scan' } }, 'api');
  const waiting = rig.service.submit({ type: 'device.command', targets: ['b', 'a'], command: { name: 'scan' } }, 'api');
  await waitFor(() => commander.calls.length === 2, 'a and b to have been sent scan');
  await waitFor(() => rig.service.get(waiting.id)?.executions[0]?.status === 'SUCCEEDED', 'b to finish');

  const canceled = rig.service.cancel(waiting.id, 'HQ changed its mind');
  t.equal(canceled.status, 'CANCELED');
  t.equal(canceled.reason, 'HQ changed its mind');
  t.strictSame(
    canceled.executions.map((e) => [e.target, e.status]),
    [
      ['b', 'SUCCEEDED'],
      ['a', 'CANCELED'],
    ],
    'what already ran keeps its outcome',
  );

  const alsoCanceled = rig.service.cancel(running.id);
  t.equal(alsoCanceled.status, 'CANCELED');
  t.equal(alsoCanceled.executions[0]?.status, 'IN_PROGRESS', 'the command already on the device is not recalled');
  releaseA();
  await waitFor(() => rig.service.get(running.id)?.executions[0]?.status === 'SUCCEEDED', 'the running command to record its outcome');
  t.equal(rig.service.get(running.id)?.status, 'CANCELED', 'the job stays CANCELED');
  t.strictSame(commander.sent('a'), ['scan'], 'the canceled job never reached a');
  t.equal(await metric(rig.metrics, 'storehub_jobs_finished_total', { status: 'CANCELED' }), 2);

  let caught: unknown;
  try {
    rig.service.cancel(running.id);
  } catch (err) {
    caught = err;
  }
  t.ok(isHubError(caught, 'HUB_ERR_JOB_FINISHED'), 'a terminal job cannot be canceled');
  t.throws(() => rig.service.cancel('no-such-job'), { code: 'HUB_ERR_JOB_UNKNOWN' });
});
