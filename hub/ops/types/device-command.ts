/**
 * `device.command`: one driver command (`{ name, args }`) on each target device, all at once, through
 * the DeviceCommander. A command is not assumed idempotent (a reboot, a door, a dispense): after a
 * restart an execution that was IN_PROGRESS is ended FAILED rather than sent a second time.
 * Firmware commands are refused here: they go through `firmware.update`, which verifies the image.
 */
import { type Static, type TObject, Type } from '@sinclair/typebox';
import type { JobDocumentBase, JobType } from '../job-types.js';

const DeviceId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' });

const fields = {
  targets: Type.Array(DeviceId, { minItems: 1, maxItems: 1000, uniqueItems: true, description: 'device ids' }),
  command: Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 64, description: "the driver's command name, e.g. status, reboot" }),
      args: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'passed to the driver as they are' })),
    },
    { additionalProperties: false },
  ),
};

export type DeviceCommandDocument = JobDocumentBase & Static<TObject<typeof fields>>;

export const deviceCommandJob: JobType<DeviceCommandDocument> = {
  type: 'device.command',
  summary: "run one command on each target device's driver",
  fields,
  onInterrupted: 'fail',
  problems(doc) {
    return /^firmware\./.test(doc.command.name) ? [`command.name: ${doc.command.name} is only sent by a firmware.update job (signed images)`] : [];
  },
  plan(doc) {
    return doc.targets.map((target) => ({ target, wave: 0 }));
  },
  async execute(target, doc, _prepared, ctx) {
    const command = { name: doc.command.name, ...(doc.command.args ? { args: doc.command.args } : {}) };
    const result = await ctx.commander.execute(target, command);
    const answer = {
      ok: result.ok,
      ...(result.detail !== undefined ? { detail: result.detail } : {}),
      ...(result.data !== undefined ? { data: result.data } : {}),
    };
    return result.ok ? { status: 'SUCCEEDED', result: answer } : { status: 'FAILED', reason: result.detail ?? `${doc.command.name} failed`, result: answer };
  },
};
