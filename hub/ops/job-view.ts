/**
 * The shapes of a job as the rest of the hub sees it (API, CLI, cloud link): what `JobService`
 * returns and announces. Kept apart from the store's rows so the public shape can stay stable while
 * the table changes.
 */
import { JOB_STATUSES, type JobStatus, isTerminal } from './job-states.js';

export const JOB_SOURCES = ['api', 'cloud'] as const;
export type JobSource = (typeof JOB_SOURCES)[number];

export interface JobExecution {
  /** A device id, or `hub` for jobs the hub applies to itself (desired state). */
  target: string;
  /** Rollout wave, from 0; every target of a job without waves is in wave 0. */
  wave: number;
  status: JobStatus;
  reason: string | null;
  /** What the target answered (a command's data, the versions before and after an update, ...). */
  result: unknown;
  /** How many times the hub began it (more than 1 after a restart retried it). */
  attempts: number;
  startedAt: number | null;
  completedAt: number | null;
  updatedAt: number;
}

export interface JobSummary {
  id: string;
  type: string;
  source: JobSource;
  status: JobStatus;
  reason: string | null;
  /** Share of executions in a terminal state, 0..1; 1 once the job itself is terminal. */
  progress: number;
  /** Executions per status. */
  counts: Record<JobStatus, number>;
  timeoutSeconds: number;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  completedAt: number | null;
  /** When the job times out (ms since epoch), counted from acceptance. */
  deadlineAt: number;
}

export interface Job extends JobSummary {
  /** The job document as submitted, with what must not be shown (image bytes, secrets) left out. */
  document: unknown;
  executions: JobExecution[];
}

/** What `JobService.onStatus` announces, and the cloud link publishes on `jobs/<id>/status`. */
export interface JobStatusUpdate {
  id: string;
  type: string;
  source: JobSource;
  status: JobStatus;
  progress: number;
  reason: string | null;
  updatedAt: number;
  /** For jobs that change what the hub reports upstream (desired state): the `reported` payload. */
  reported?: unknown;
}

export interface JobFilter {
  status?: JobStatus;
  type?: string;
  source?: JobSource;
  /** Newest first; default 100. */
  limit?: number;
}

export function emptyCounts(): Record<JobStatus, number> {
  return Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
}

export function progressOf(status: JobStatus, counts: Record<JobStatus, number>): number {
  if (isTerminal(status)) return 1;
  const total = JOB_STATUSES.reduce((sum, s) => sum + counts[s], 0);
  if (total === 0) return 0;
  const done = JOB_STATUSES.filter(isTerminal).reduce((sum, s) => sum + counts[s], 0);
  return done / total;
}

/** What building a view needs: the stored rows and a way to show a document. */
export interface JobViewSource {
  job(id: string): StoredJobFields | undefined;
  counts(id: string): Record<JobStatus, number>;
  executions(id: string): JobExecution[];
  document(id: string): string | undefined;
}

type StoredJobFields = Omit<JobSummary, 'progress' | 'counts'>;

export function summarize(stored: StoredJobFields, counts: Record<JobStatus, number>): JobSummary {
  return { ...stored, progress: progressOf(stored.status, counts), counts };
}

/** The full view of a job; `show` turns the stored document into what may be shown. */
export function buildJobView(source: JobViewSource, id: string, show: (type: string, document: unknown) => unknown): Job | undefined {
  const stored = source.job(id);
  if (!stored) return undefined;
  const text = source.document(id);
  let document: unknown = null;
  try {
    document = text === undefined ? null : show(stored.type, JSON.parse(text) as unknown);
  } catch {
    document = null; // a rejected document that was not JSON-shaped as its type expects
  }
  return { ...summarize(stored, source.counts(id)), document, executions: source.executions(id) };
}
