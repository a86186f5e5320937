/**
 * Jobs and desired state between the cloud link and hub/ops: documents from `<prefix>/jobs` and
 * `<prefix>/desired` become jobs with source 'cloud'; every job's status changes go back up on
 * `<prefix>/jobs/<id>/status`, and an applied (or refused) desired state on the retained `reported`.
 */
import { desiredStateJobDocument, type JobService } from '../ops/index.js';
import { isHubError } from '../sdk/errors.js';
import type { CloudLink } from './cloud-link.js';
import type { DownlinkJobs } from './sync-service.js';

export function jobDownlink(ops: JobService, reject: (topic: string, reason: string) => void): DownlinkJobs {
  return {
    fromCloud(document) {
      try {
        ops.submit(document, 'cloud');
      } catch (err) {
        // A malformed job is recorded REJECTED and announced by ops; a repeat of a known id is not news.
        if (isHubError(err) && err.code === 'HUB_ERR_JOB_EXISTS') return;
        reject('jobs', (err as Error).message);
      }
    },
    desiredState(document) {
      try {
        ops.submit(desiredStateJobDocument(document), 'cloud');
      } catch (err) {
        // the retained desired state comes again on every reconnect: the same version is the same job
        if (isHubError(err) && err.code === 'HUB_ERR_JOB_EXISTS') return;
        reject('desired', (err as Error).message);
      }
    },
  };
}

/** Publishes job status changes upstream while the link lives; returns the unsubscribe. */
export function publishJobStatus(ops: JobService, link: CloudLink): () => void {
  return ops.onStatus((update) => {
    void link.publishJson(`jobs/${update.id}/status`, update, { qos: 1 });
    if (update.reported !== undefined) void link.publishJson('reported', update.reported, { qos: 1, retain: true });
  });
}
