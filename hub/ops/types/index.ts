/** Every job type the hub runs. A new type is one file in this folder and one entry here. */
import type { JobType } from '../job-types.js';
import { configDesiredJob } from './config-desired.js';
import { deviceCommandJob } from './device-command.js';
import { firmwareUpdateJob } from './firmware-update.js';

export const JOB_TYPES: readonly JobType[] = [deviceCommandJob, configDesiredJob, firmwareUpdateJob];
