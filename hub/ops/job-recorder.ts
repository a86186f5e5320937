/**
 * Records job and execution transitions in the store and makes them known: the finished-jobs metric
 * (counted when a move to a terminal status is written, so a restart never counts a job twice), the
 * in-progress gauge, and the status listeners the cloud link publishes upstream through. A throwing
 * listener is logged and skipped.
 */
import type { Logger } from '../observability/logger.js';
import type { HubMetrics } from '../observability/metrics.js';
import type { JobDocuments } from './job-document.js';
import { type JobEvent, type JobStatus, isTerminal } from './job-states.js';
import type { JobStore } from './job-store.js';
import { buildJobView, type Job, type JobStatusUpdate, progressOf } from './job-view.js';

export type OpsMetrics = Pick<HubMetrics, 'jobsSubmitted' | 'jobsFinished' | 'jobExecutionsInProgress'>;

export type StatusListener = (update: JobStatusUpdate) => void;

export class JobRecorder {
  constructor(
    readonly store: JobStore,
    private readonly documents: JobDocuments,
    /** The status listeners; the service owns the set, so subscribing before start works. */
    private readonly listeners: ReadonlySet<StatusListener>,
    private readonly metrics: OpsMetrics | undefined,
    private readonly log: Logger,
    readonly now: () => number,
  ) {}

  transaction<T>(fn: () => T): T {
    return this.store.transaction(fn);
  }

  moveJob(jobId: string, event: JobEvent, reason: string | null = null): JobStatus | undefined {
    const moved = this.store.moveJob(jobId, event, reason, this.now());
    if (moved && isTerminal(moved)) {
      const type = this.store.job(jobId)?.type ?? 'unknown';
      this.metrics?.jobsFinished.inc({ type: this.documents.type(type) ? type : 'unknown', status: moved });
      this.log.info({ jobId, type, status: moved, reason }, 'job finished');
    }
    return moved;
  }

  moveExecution(jobId: string, target: string, event: JobEvent, detail: { reason?: string | null; result?: unknown } = {}): JobStatus | undefined {
    return this.store.moveExecution(jobId, target, event, detail, this.now());
  }

  /** Ends every execution of the job still in one of `from`. */
  endExecutions(jobId: string, from: readonly JobStatus[], event: JobEvent, reason: string): string[] {
    return this.store.moveExecutionsIn(jobId, from, event, reason, this.now());
  }

  /** The job as the API shows it. */
  view(jobId: string): Job | undefined {
    return buildJobView(this.store, jobId, (type, document) => {
      const jobType = this.documents.type(type);
      return jobType?.redact ? jobType.redact(document as never) : document;
    });
  }

  /** Tells the listeners where a job stands now, and refreshes the in-progress gauge. */
  announce(jobId: string): void {
    this.refreshGauge();
    const job = this.store.job(jobId);
    if (!job || this.listeners.size === 0) return;
    const update: JobStatusUpdate = {
      id: job.id,
      type: job.type,
      source: job.source,
      status: job.status,
      progress: progressOf(job.status, this.store.counts(jobId)),
      reason: job.reason,
      updatedAt: job.updatedAt,
    };
    const jobType = this.documents.type(job.type);
    if (jobType?.reported && isTerminal(job.status)) {
      const view = this.view(jobId);
      const text = this.store.document(jobId);
      try {
        const parsed = text === undefined ? undefined : this.documents.parse(JSON.parse(text) as unknown);
        // a malformed document reports nothing upstream beyond its job status: it named no state
        if (view && parsed?.ok) update.reported = jobType.reported(parsed.doc as never, view);
      } catch (err) {
        this.log.warn({ jobId, err }, 'could not build the reported state of a job');
      }
    }
    for (const listener of this.listeners) {
      try {
        listener(update);
      } catch (err) {
        this.log.error({ err, jobId }, 'job status listener failed');
      }
    }
  }

  refreshGauge(): void {
    if (!this.metrics) return;
    const running = this.store.inProgressByType();
    for (const jobType of this.documents.types) this.metrics.jobExecutionsInProgress.set({ type: jobType.type }, running.get(jobType.type) ?? 0);
  }
}
