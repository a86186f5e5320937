/**
 * The job state machine, shared by jobs and by their per-target executions, after AWS IoT Jobs
 * (developer guide, "Jobs and job execution states"): QUEUED until work starts, IN_PROGRESS while it
 * runs, then exactly one terminal state. A terminal state is final: no event leaves it, and nothing
 * ever goes back to QUEUED. Every writer goes through `nextStatus`, so an illegal move cannot be stored.
 */

export const JOB_STATUSES = ['QUEUED', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const TERMINAL_STATUSES: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'REJECTED', 'CANCELED'];

/** What can happen to a job or an execution. */
export const JOB_EVENTS = ['start', 'succeed', 'fail', 'reject', 'cancel', 'time_out'] as const;
export type JobEvent = (typeof JOB_EVENTS)[number];

/**
 * Legal moves. From QUEUED: it starts, or it ends without having run (refused, canceled, out of
 * time, or failed before it could begin, e.g. the firmware image could not be fetched); it cannot
 * succeed without running. From IN_PROGRESS: any terminal state (REJECTED when the target refuses it,
 * e.g. desired state that is no longer newer than what is applied).
 */
const TRANSITIONS: Record<JobStatus, Partial<Record<JobEvent, JobStatus>>> = {
  QUEUED: { start: 'IN_PROGRESS', reject: 'REJECTED', cancel: 'CANCELED', time_out: 'TIMED_OUT', fail: 'FAILED' },
  IN_PROGRESS: { succeed: 'SUCCEEDED', fail: 'FAILED', reject: 'REJECTED', cancel: 'CANCELED', time_out: 'TIMED_OUT' },
  SUCCEEDED: {},
  FAILED: {},
  TIMED_OUT: {},
  REJECTED: {},
  CANCELED: {},
};

/** The status an event leads to from `from`, or undefined when the event is not legal there. */
export function nextStatus(from: JobStatus, event: JobEvent): JobStatus | undefined {
  return TRANSITIONS[from][event];
}

export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** The event that ends something in `status` (a terminal status); used when an outcome names its status. */
export function eventFor(status: Exclude<JobStatus, 'QUEUED'>): JobEvent {
  switch (status) {
    case 'IN_PROGRESS':
      return 'start';
    case 'SUCCEEDED':
      return 'succeed';
    case 'FAILED':
      return 'fail';
    case 'REJECTED':
      return 'reject';
    case 'CANCELED':
      return 'cancel';
    case 'TIMED_OUT':
      return 'time_out';
  }
}
