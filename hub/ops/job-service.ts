/**
 * Remote operations: jobs from HQ, over the API or the cloud link, run against devices and the hub.
 * `submit` validates and records a job (a malformed one is recorded REJECTED, announced, and thrown
 * as HUB_ERR_JOB_INVALID) and starts it; `cancel`, `get`, `list` and `onStatus` serve the API and
 * the cloud link. Jobs live in SQLite, so `start` resumes what a stop or crash interrupted: QUEUED
 * targets run as usual, and an execution found IN_PROGRESS is retried when its type's operation is
 * idempotent and ended FAILED when it is not (see JobType.onInterrupted and docs/jobs.md).
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { HubConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { HubError } from '../sdk/errors.js';
import type { DeviceCommander } from './device-commander.js';
import { fetchImageOverHttp, type ImageFetcher } from './firmware-image.js';
import { parseFirmwareKeys } from './firmware-signature.js';
import { JobDocuments } from './job-document.js';
import { JobRecorder, type OpsMetrics, type StatusListener } from './job-recorder.js';
import { JobRun } from './job-run.js';
import { isTerminal } from './job-states.js';
import { JobStore } from './job-store.js';
import type { JobDocumentBase, JobType, JobTypeContext } from './job-types.js';
import { type Job, type JobFilter, type JobSource, type JobSummary, summarize } from './job-view.js';
import { TargetLocks } from './target-locks.js';
import { JOB_TYPES } from './types/index.js';

/** How long stop() lets commands already on a device finish and be recorded. */
export const STOP_GRACE_MS = 3_000;

export const INTERRUPTED_REASON = 'interrupted by a hub restart: the operation may or may not have reached the target, so it is not repeated';
export const RETRIED_REASON = 'interrupted by a hub restart; running it again (the operation is idempotent)';

export interface JobServiceOptions {
  /** The hub's database (the store service's connection). */
  db: Database.Database;
  commander: DeviceCommander;
  /** The `ops` section of the config: firmwareKeys, defaultJobTimeoutSeconds. */
  config: HubConfig['ops'];
  log: Logger;
  metrics?: OpsMetrics;
  /** Job types; default: every type in hub/ops/types. */
  types?: readonly JobType[];
  /** How firmware images named by URL are fetched; default: HTTP(S) with fetch. */
  fetchImage?: ImageFetcher;
  now?: () => number;
  /** How long stop() waits for commands already on a device; default STOP_GRACE_MS. */
  stopGraceMs?: number;
}

export class JobService {
  readonly name = 'ops';
  private recorder: JobRecorder | undefined;
  private ctx: JobTypeContext | undefined;
  private readonly documents: JobDocuments;
  private readonly locks = new TargetLocks();
  private readonly runs = new Map<string, { run: JobRun; done: Promise<void> }>();
  private readonly listeners = new Set<StatusListener>();
  private stopping = new AbortController();
  private closed = true;

  constructor(private readonly options: JobServiceOptions) {
    this.documents = new JobDocuments(options.types ?? JOB_TYPES);
  }

  async start(): Promise<void> {
    const { db, commander, config, log, metrics } = this.options;
    const now = this.options.now ?? Date.now;
    const firmwareKeys = parseFirmwareKeys(config.firmwareKeys);
    const recorder = new JobRecorder(new JobStore(db), this.documents, this.listeners, metrics, log, now);
    this.recorder = recorder;
    this.ctx = { db, commander, firmwareKeys, fetchImage: this.options.fetchImage ?? fetchImageOverHttp, log, now };
    this.stopping = new AbortController();
    this.closed = false;
    if (firmwareKeys.length === 0) log.info('no firmware keys configured (ops.firmwareKeys): firmware jobs will be rejected');
    this.resume();
    recorder.refreshGauge();
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.stopping.abort(new Error('remote operations are stopping'));
    const settled = Promise.all([...this.runs.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.stopGraceMs ?? STOP_GRACE_MS);
    });
    await Promise.race([settled, grace]);
    clearTimeout(timer);
    this.closed = true;
    if (this.runs.size > 0) this.options.log.warn({ jobs: [...this.runs.keys()] }, 'jobs still waiting on devices at stop; the next start settles them');
  }

  /** Subscribes to job status changes (also before start); returns the unsubscribe function. */
  onStatus(listener: StatusListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Records and starts a job. Returns it (QUEUED, or REJECTED when its type refuses it outright).
   * The same id with the same document returns the existing job (redelivery is harmless); with a
   * different document it throws HUB_ERR_JOB_EXISTS. A malformed document throws HUB_ERR_JOB_INVALID
   * after it has been recorded REJECTED and announced.
   */
  submit(document: unknown, source: JobSource): Job {
    const recorder = this.running();
    if (this.stopping.signal.aborted)
      throw new HubError('HUB_ERR_JOB_SERVICE_STOPPED', 'remote operations are stopping; submit the job again after the restart');
    const store = recorder.store;
    const now = recorder.now();
    const text = JSON.stringify(document) ?? 'null';
    const parsed = this.documents.parse(document);
    const id = parsed.ok ? (parsed.doc.id ?? randomUUID()) : (parsed.id ?? randomUUID());
    if (store.job(id)) {
      if (store.document(id) !== text)
        throw new HubError('HUB_ERR_JOB_EXISTS', `job ${id} already exists with a different document`, { context: { jobId: id } });
      if (!parsed.ok) throw new HubError('HUB_ERR_JOB_INVALID', `job ${id} rejected: ${parsed.reason}`, { context: { jobId: id } });
      return recorder.view(id) as Job;
    }
    const type = parsed.ok ? parsed.jobType.type : (parsed.type ?? 'unknown');
    this.options.metrics?.jobsSubmitted.inc({ type, source });
    const timeoutSeconds = (parsed.ok ? parsed.doc.timeoutSeconds : undefined) ?? this.options.config.defaultJobTimeoutSeconds;
    if (!parsed.ok) {
      recorder.transaction(() => {
        store.insert({ id, type, source, timeoutSeconds, createdAt: now, document: text }, []);
        recorder.moveJob(id, 'reject', parsed.reason);
      });
      recorder.announce(id);
      this.options.log.warn({ jobId: id, source, reason: parsed.reason }, 'malformed job rejected');
      throw new HubError('HUB_ERR_JOB_INVALID', `job ${id} rejected: ${parsed.reason}`, { context: { jobId: id } });
    }
    const doc: JobDocumentBase = { ...parsed.doc, id };
    const { jobType } = parsed;
    const refused = jobType.admit?.(doc, this.ctx as JobTypeContext);
    recorder.transaction(() => {
      store.insert({ id, type, source, timeoutSeconds, createdAt: now, document: text }, jobType.plan(doc));
      if (refused) {
        recorder.endExecutions(id, ['QUEUED'], 'reject', refused);
        recorder.moveJob(id, 'reject', refused);
      }
    });
    this.options.log.info({ jobId: id, type, source, rejected: refused }, refused ? 'job rejected' : 'job accepted');
    recorder.announce(id);
    if (!refused) this.launch(this.makeRun(id, jobType, doc));
    return recorder.view(id) as Job;
  }

  get(id: string): Job | undefined {
    return this.running().view(id);
  }

  list(filter: JobFilter = {}): JobSummary[] {
    const store = this.running().store;
    return store.list(filter).map((job) => summarize(job, store.counts(job.id)));
  }

  /**
   * Cancels a job that has not ended: targets not yet started are CANCELED at once, the job is
   * CANCELED, and nothing new starts; a target already running finishes and records how it ended.
   */
  cancel(id: string, reason = 'canceled'): Job {
    const recorder = this.running();
    const job = recorder.store.job(id);
    if (!job) throw new HubError('HUB_ERR_JOB_UNKNOWN', `no job ${id}`);
    if (isTerminal(job.status)) throw new HubError('HUB_ERR_JOB_FINISHED', `job ${id} is already ${job.status}`);
    recorder.transaction(() => {
      recorder.endExecutions(id, ['QUEUED'], 'cancel', reason);
      recorder.moveJob(id, 'cancel', reason);
    });
    this.runs.get(id)?.run.halt(reason);
    recorder.announce(id);
    return recorder.view(id) as Job;
  }

  /** Jobs being run now (for tests and status). */
  get active(): number {
    return this.runs.size;
  }

  private running(): JobRecorder {
    if (!this.recorder || this.closed) throw new HubError('HUB_ERR_JOB_SERVICE_STOPPED');
    return this.recorder;
  }

  private resume(): void {
    const recorder = this.recorder as JobRecorder;
    const { store } = recorder;
    for (const job of store.unfinished()) {
      const text = store.document(job.id) ?? 'null';
      const parsed = this.documents.parse(JSON.parse(text) as unknown);
      if (!parsed.ok) {
        // written by a storehub whose job types differed; it cannot be run as it was meant
        recorder.transaction(() => {
          recorder.endExecutions(job.id, ['QUEUED', 'IN_PROGRESS'], 'fail', `cannot resume: ${parsed.reason}`);
          recorder.moveJob(job.id, 'fail', `cannot resume: ${parsed.reason}`);
        });
        recorder.announce(job.id);
        continue;
      }
      const { jobType } = parsed;
      const interrupted = store.executions(job.id).filter((e) => e.status === 'IN_PROGRESS');
      recorder.transaction(() => {
        for (const e of interrupted) {
          if (jobType.onInterrupted === 'fail') recorder.moveExecution(job.id, e.target, 'fail', { reason: INTERRUPTED_REASON });
          else store.markRetry(job.id, e.target, RETRIED_REASON, recorder.now());
        }
      });
      if (interrupted.length > 0) recorder.announce(job.id);
      const run = this.makeRun(job.id, jobType, { ...parsed.doc, id: job.id });
      if (recorder.now() >= job.deadlineAt) {
        // the deadline passed while the hub was down: nothing more may start
        run.timeOut();
        continue;
      }
      this.options.log.info({ jobId: job.id, type: job.type, status: job.status, interrupted: interrupted.length }, 'resuming job after restart');
      this.launch(run);
    }
  }

  private makeRun(jobId: string, jobType: JobType, doc: JobDocumentBase): JobRun {
    return new JobRun({
      jobId,
      jobType,
      doc,
      recorder: this.recorder as JobRecorder,
      ctx: this.ctx as JobTypeContext,
      locks: this.locks,
      stopping: this.stopping.signal,
      closed: () => this.closed,
      log: this.options.log,
    });
  }

  private launch(run: JobRun): void {
    const { jobId } = run;
    // started after submit() has returned the QUEUED job; run() settles its own failures
    const done = Promise.resolve()
      .then(() => run.run())
      .finally(() => {
        if (this.runs.get(jobId)?.run === run) this.runs.delete(jobId);
      });
    this.runs.set(jobId, { run, done });
  }
}
