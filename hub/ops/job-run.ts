/**
 * Runs one job to its end: refuse it if it may no longer run, prepare it (fetch and verify what it
 * needs), then its targets wave by wave under per-target locks, checking the abort threshold after
 * each wave, and finally the job's own verdict. It also owns the job's deadline. Cancel and timeout
 * halt it: nothing new starts, and what is already on a device is let finish (a device command
 * cannot be recalled). A hub stop leaves unfinished executions IN_PROGRESS for the next start.
 */
import type { Logger } from '../observability/logger.js';
import { eventFor, type JobEvent, type JobStatus, isTerminal } from './job-states.js';
import type { JobRecorder } from './job-recorder.js';
import type { JobDocumentBase, JobType, JobTypeContext, TargetOutcome } from './job-types.js';
import type { JobExecution } from './job-view.js';
import { beyondThreshold } from './rollout.js';
import type { TargetLocks } from './target-locks.js';

/** setTimeout's longest delay; later deadlines are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const VERDICT_REASONS_SHOWN = 3;

export interface JobRunOptions {
  jobId: string;
  jobType: JobType;
  /** The validated document, with `id` set to the job's id. */
  doc: JobDocumentBase;
  recorder: JobRecorder;
  ctx: JobTypeContext;
  locks: TargetLocks;
  /** Aborts when the service stops. */
  stopping: AbortSignal;
  /** True once the service has closed and nothing may be written. */
  closed(): boolean;
  log: Logger;
}

/** The job's verdict once every execution is terminal. */
export function verdict(executions: readonly JobExecution[]): { event: JobEvent; reason: string | null } {
  if (executions.every((e) => e.status === 'SUCCEEDED')) return { event: 'succeed', reason: null };
  if (executions.every((e) => e.status === 'REJECTED')) return { event: 'reject', reason: executions[0]?.reason ?? 'rejected' };
  const bad = executions.filter((e) => e.status !== 'SUCCEEDED');
  const shown = bad.slice(0, VERDICT_REASONS_SHOWN).map((e) => `${e.target} ${e.status}${e.reason ? ` (${e.reason})` : ''}`);
  const more = bad.length > VERDICT_REASONS_SHOWN ? `; and ${bad.length - VERDICT_REASONS_SHOWN} more` : '';
  return { event: 'fail', reason: `${bad.length} of ${executions.length} targets did not succeed: ${shown.join('; ')}${more}` };
}

export class JobRun {
  private readonly halted = new AbortController();
  /** Aborts on cancel, timeout or stop: no new work starts after it. */
  readonly signal: AbortSignal;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: JobRunOptions) {
    this.signal = AbortSignal.any([o.stopping, this.halted.signal]);
  }

  get jobId(): string {
    return this.o.jobId;
  }

  /** Stops scheduling more work; the caller has written why (cancel). */
  halt(reason: string): void {
    this.halted.abort(new Error(reason));
  }

  async run(): Promise<void> {
    const job = this.o.recorder.store.job(this.o.jobId);
    if (!job || isTerminal(job.status)) return;
    this.armDeadline(job.deadlineAt);
    try {
      await this.work(job.status);
    } catch (err) {
      this.o.log.error({ err, jobId: this.o.jobId }, 'job run failed');
      if (!this.o.closed() && !this.o.stopping.aborted) this.tryEnd('fail', `internal error: ${(err as Error).message}`, ['QUEUED', 'IN_PROGRESS']);
    } finally {
      clearTimeout(this.timer);
    }
  }

  /** Ends the job TIMED_OUT with every execution not yet ended. */
  timeOut(): void {
    const job = this.o.recorder.store.job(this.o.jobId);
    if (!job || isTerminal(job.status) || this.o.closed()) return;
    const reason = `did not finish within ${job.timeoutSeconds} s of being accepted`;
    this.end('time_out', reason, ['QUEUED', 'IN_PROGRESS']);
    this.halt(reason);
  }

  private armDeadline(deadlineAt: number): void {
    const delay = Math.max(0, deadlineAt - this.o.ctx.now());
    this.timer = setTimeout(() => (delay > MAX_TIMER_MS ? this.armDeadline(deadlineAt) : this.timeOut()), Math.min(delay, MAX_TIMER_MS));
    this.timer.unref();
  }

  private async work(status: JobStatus): Promise<void> {
    const { jobType, doc, ctx, recorder, jobId } = this.o;
    if (status === 'QUEUED') {
      // what was admitted at submit may not be any more (a newer desired state applied meanwhile)
      const refused = jobType.admit?.(doc, ctx);
      if (refused) return this.end('reject', refused, ['QUEUED']);
    }
    let prepared: unknown;
    if (jobType.prepare) {
      const preparation = await jobType.prepare(doc, ctx, this.signal).catch((err: Error) => {
        if (this.signal.aborted) return undefined;
        return { ok: false as const, status: 'FAILED' as const, reason: `could not prepare the job: ${err.message}` };
      });
      if (!preparation || this.signal.aborted) return;
      if (!preparation.ok) return this.end(preparation.status === 'REJECTED' ? 'reject' : 'fail', preparation.reason, ['QUEUED', 'IN_PROGRESS']);
      prepared = preparation.prepared;
    }
    const threshold = jobType.abortThreshold?.(doc);
    const waves = [...new Set(recorder.store.executions(jobId).map((e) => e.wave))].sort((a, b) => a - b);
    for (const wave of waves) {
      if (this.signal.aborted) return;
      const targets = recorder.store.executions(jobId).filter((e) => e.wave === wave);
      await Promise.all(targets.map((e) => this.runTarget(e, prepared)));
      if (this.signal.aborted || this.o.closed()) return;
      if (threshold !== undefined) {
        const ended = recorder.store.executions(jobId).filter((e) => e.wave === wave);
        const failed = ended.filter((e) => e.status === 'FAILED' || e.status === 'TIMED_OUT').length;
        if (beyondThreshold(failed, ended.length, threshold) && recorder.store.executions(jobId).some((e) => e.status === 'QUEUED')) {
          const reason = `rollout aborted after wave ${wave + 1}: ${failed} of ${ended.length} targets failed, more than abortThreshold ${threshold}`;
          recorder.transaction(() => {
            recorder.endExecutions(jobId, ['QUEUED'], 'cancel', reason);
            recorder.moveJob(jobId, 'fail', reason);
          });
          recorder.announce(jobId);
          return;
        }
      }
    }
    this.finish();
  }

  private async runTarget(execution: JobExecution, prepared: unknown): Promise<void> {
    const { jobType, doc, ctx, recorder, jobId, locks, log } = this.o;
    const { target } = execution;
    if (isTerminal(execution.status)) return;
    let release: () => void;
    try {
      release = await locks.acquire(target, this.signal);
    } catch {
      return; // halted while waiting for the target
    }
    try {
      if (this.signal.aborted) return;
      const current = recorder.store.execution(jobId, target);
      if (!current || isTerminal(current.status)) return;
      if (current.status === 'QUEUED') {
        const started = recorder.transaction(() => {
          const moved = recorder.moveExecution(jobId, target, 'start');
          if (moved && recorder.store.job(jobId)?.status === 'QUEUED') recorder.moveJob(jobId, 'start');
          return moved;
        });
        if (!started) return;
        recorder.announce(jobId);
      }
      let outcome: TargetOutcome;
      try {
        outcome = await jobType.execute(target, doc, prepared, ctx, this.o.stopping);
      } catch (err) {
        if (this.o.stopping.aborted) return; // left IN_PROGRESS: the next start settles it
        outcome = { status: 'FAILED', reason: (err as Error).message };
      }
      if (this.o.closed()) {
        log.warn(
          { jobId, target, status: outcome.status, reason: outcome.reason },
          'outcome arrived after remote operations stopped; the next start settles it',
        );
        return;
      }
      const moved = recorder.transaction(() => {
        if (recorder.store.execution(jobId, target)?.status !== 'IN_PROGRESS') return undefined;
        outcome.commit?.();
        return recorder.moveExecution(jobId, target, eventFor(outcome.status), { reason: outcome.reason ?? null, result: outcome.result });
      });
      if (!moved) log.warn({ jobId, target, status: outcome.status, reason: outcome.reason }, 'late outcome not recorded: the execution had already ended');
      recorder.announce(jobId);
    } finally {
      release();
    }
  }

  private finish(): void {
    const { recorder, jobId } = this.o;
    const job = recorder.store.job(jobId);
    if (!job || isTerminal(job.status)) return;
    const executions = recorder.store.executions(jobId);
    if (executions.some((e) => !isTerminal(e.status))) return;
    const { event, reason } = verdict(executions);
    recorder.moveJob(jobId, event, reason);
    recorder.announce(jobId);
  }

  /** Ends the job and its executions still in `from` with one event and reason. */
  private end(event: JobEvent, reason: string, from: readonly JobStatus[]): void {
    const { recorder, jobId } = this.o;
    recorder.transaction(() => {
      recorder.endExecutions(jobId, from, event, reason);
      recorder.moveJob(jobId, event, reason);
    });
    recorder.announce(jobId);
  }

  private tryEnd(event: JobEvent, reason: string, from: readonly JobStatus[]): void {
    try {
      this.end(event, reason, from);
    } catch (err) {
      this.o.log.error({ err, jobId: this.o.jobId }, 'could not record the job as failed; the next start resumes it');
    }
  }
}
