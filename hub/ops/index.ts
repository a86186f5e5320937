/**
 * Remote operations (jobs from HQ): what the rest of the hub, and the cloud link in particular, may
 * use. The cloud link feeds documents from `<prefix>/jobs` and `<prefix>/desired` to
 * `JobService.submit(doc, 'cloud')` and publishes what `onStatus` announces (docs/jobs.md).
 */
export { type DeviceCommander, deviceServiceCommander } from './device-commander.js';
export { INTERRUPTED_REASON, JobService, type JobServiceOptions, RETRIED_REASON } from './job-service.js';
export type { OpsMetrics, StatusListener } from './job-recorder.js';
export { JOB_STATUSES, type JobStatus, TERMINAL_STATUSES, isTerminal } from './job-states.js';
export type { JobDocumentBase, JobType, JobTypeContext, TargetOutcome } from './job-types.js';
export { JOB_SOURCES, type Job, type JobExecution, type JobFilter, type JobSource, type JobStatusUpdate, type JobSummary } from './job-view.js';
export { desiredStateJobDocument, HUB_TARGET } from './types/config-desired.js';
