/**
 * The job state machine: the transition table against an independent list of legal moves, and
 * property tests that no sequence of events, applied in memory or through the SQLite store, ever
 * leaves a terminal state or makes a move outside that list.
 */
import fc from 'fast-check';
import t from 'tap';
import { JOB_EVENTS, JOB_STATUSES, type JobEvent, type JobStatus, isTerminal, nextStatus, TERMINAL_STATUSES } from '../hub/ops/job-states.js';
import { JobStore } from '../hub/ops/job-store.js';
import { Store } from '../hub/store/store.js';

/** The legal moves, written out independently of the implementation (after AWS IoT Jobs). */
const LEGAL = new Set([
  'QUEUED>IN_PROGRESS',
  'QUEUED>REJECTED',
  'QUEUED>CANCELED',
  'QUEUED>TIMED_OUT',
  'QUEUED>FAILED',
  'IN_PROGRESS>SUCCEEDED',
  'IN_PROGRESS>FAILED',
  'IN_PROGRESS>REJECTED',
  'IN_PROGRESS>CANCELED',
  'IN_PROGRESS>TIMED_OUT',
]);

t.test('the transition table is exactly the legal list', async (t) => {
  const moves = new Set<string>();
  for (const from of JOB_STATUSES)
    for (const event of JOB_EVENTS) {
      const to = nextStatus(from, event);
      if (to) moves.add(`${from}>${to}`);
    }
  t.strictSame([...moves].sort(), [...LEGAL].sort());
  t.strictSame(TERMINAL_STATUSES.slice().sort(), ['CANCELED', 'FAILED', 'REJECTED', 'SUCCEEDED', 'TIMED_OUT']);
  t.equal(nextStatus('QUEUED', 'succeed'), undefined, 'nothing succeeds without running');
  for (const s of TERMINAL_STATUSES) for (const e of JOB_EVENTS) t.equal(nextStatus(s, e), undefined, `${s} is final (${e})`);
});

const events = fc.array(fc.constantFrom(...JOB_EVENTS), { maxLength: 30 });

t.test('property: any sequence of events makes only legal moves and never leaves a terminal state', async (t) => {
  let runs = 0;
  fc.assert(
    fc.property(events, (sequence) => {
      runs++;
      let status: JobStatus = 'QUEUED';
      let terminalAt: JobStatus | undefined;
      for (const event of sequence) {
        const next = nextStatus(status, event);
        if (next === undefined) continue;
        if (!LEGAL.has(`${status}>${next}`)) return false;
        if (terminalAt) return false; // something moved after a terminal state
        if (next === 'QUEUED') return false;
        status = next;
        if (isTerminal(status)) terminalAt = status;
      }
      return terminalAt === undefined || status === terminalAt;
    }),
    { numRuns: 500 },
  );
  t.equal(runs, 500);
});

t.test('property: the SQLite store applies the same machine and refuses every other move', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'normal', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  const jobs = new JobStore(store.db);
  let n = 0;
  fc.assert(
    fc.property(events, events, (jobEvents, executionEvents) => {
      const id = `job-${n++}`;
      jobs.insert({ id, type: 'device.command', source: 'api', timeoutSeconds: 60, createdAt: 1000, document: '{}' }, [{ target: 'dev-1', wave: 0 }]);
      const check = (sequence: JobEvent[], read: () => JobStatus | undefined, move: (e: JobEvent, now: number) => JobStatus | undefined) => {
        let model: JobStatus = 'QUEUED';
        sequence.forEach((event, i) => {
          const expected = nextStatus(model, event);
          const moved = move(event, 2000 + i);
          if (moved !== expected) throw new Error(`${model} + ${event}: store moved to ${moved}, machine says ${expected}`);
          if (expected) model = expected;
          if (read() !== model) throw new Error(`stored ${read()}, expected ${model}`);
        });
      };
      check(
        jobEvents,
        () => jobs.job(id)?.status,
        (e, now) => jobs.moveJob(id, e, null, now),
      );
      check(
        executionEvents,
        () => jobs.execution(id, 'dev-1')?.status,
        (e, now) => jobs.moveExecution(id, 'dev-1', e, {}, now),
      );
      const job = jobs.job(id);
      return job !== undefined && isTerminal(job.status) === (job.completedAt !== null);
    }),
    { numRuns: 200 },
  );
  t.equal(n, 200, 'every run wrote a job');
  // and the database itself refuses a status outside the machine
  t.throws(() => store.db.prepare(`UPDATE jobs SET status = 'DONE' WHERE id = 'job-0'`).run(), /CHECK constraint failed/);
});

t.test('a stale compare-and-set is refused: a second writer cannot move from a status it no longer sees', async (t) => {
  const store = new Store({ dataDir: t.testdir(), synchronous: 'normal', maxBytes: 1024 ** 3 });
  t.teardown(() => store.close());
  const jobs = new JobStore(store.db);
  jobs.insert({ id: 'j', type: 'device.command', source: 'cloud', timeoutSeconds: 60, createdAt: 1, document: '{}' }, [{ target: 'a', wave: 0 }]);
  t.equal(jobs.moveExecution('j', 'a', 'start', {}, 2), 'IN_PROGRESS');
  t.equal(jobs.moveExecution('j', 'a', 'time_out', { reason: 'late' }, 3), 'TIMED_OUT');
  t.equal(jobs.moveExecution('j', 'a', 'succeed', { result: { ok: true } }, 4), undefined, 'a late success is not recorded');
  const e = jobs.execution('j', 'a');
  t.equal(e?.status, 'TIMED_OUT');
  t.equal(e?.reason, 'late');
  t.equal(e?.result, null, 'the late result was not written either');
  t.equal(e?.attempts, 1);
});
