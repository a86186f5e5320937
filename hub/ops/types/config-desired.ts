/**
 * `config.desired`: versioned desired state `{ version, config }` for the hub itself (target `hub`).
 * A version not newer than the applied one is REJECTED ("older than applied version N"); a config the
 * hub's schema refuses is REJECTED with each problem. Applying records the document as the desired
 * state in the same transaction that marks the execution SUCCEEDED, so it is applied exactly once and
 * a restart in between can simply run it again. The API never shows the config (it may hold secrets).
 */
import { type Static, type TObject, Type } from '@sinclair/typebox';
import { desiredConfigProblems, DesiredStateStore, staleVersionReason } from '../desired-state.js';
import type { JobDocumentBase, JobType } from '../job-types.js';

/** The execution target of jobs the hub applies to itself. */
export const HUB_TARGET = 'hub';

const fields = {
  version: Type.Integer({ minimum: 1, description: 'increases with every change HQ makes' }),
  config: Type.Record(Type.String(), Type.Unknown(), { description: 'a whole hub config, as the YAML file would hold it' }),
};

export type DesiredStateDocument = JobDocumentBase & Static<TObject<typeof fields>>;

export const configDesiredJob: JobType<DesiredStateDocument> = {
  type: 'config.desired',
  summary: 'apply versioned desired state (a whole hub config) to the hub',
  fields,
  onInterrupted: 'retry',
  plan() {
    return [{ target: HUB_TARGET, wave: 0 }];
  },
  admit(doc, ctx) {
    const stale = staleVersionReason(doc.version, new DesiredStateStore(ctx.db).appliedVersion());
    if (stale) return stale;
    const problems = desiredConfigProblems(doc.config);
    return problems.length > 0 ? `the config is invalid: ${problems.slice(0, 5).join('; ')}` : undefined;
  },
  async execute(_target, doc, _prepared, ctx) {
    const desired = new DesiredStateStore(ctx.db);
    // checked again under the target lock: another desired-state job may have applied a newer version since submit
    const stale = staleVersionReason(doc.version, desired.appliedVersion());
    if (stale) return { status: 'REJECTED', reason: stale };
    const now = ctx.now();
    return {
      status: 'SUCCEEDED',
      result: { version: doc.version, appliedAt: now },
      commit: () => desired.record(doc.version, doc.config, doc.id ?? '', now),
    };
  },
  redact(doc) {
    return { ...doc, config: '[not shown: a config may hold secrets]' };
  },
  reported(doc, job) {
    if (job.status === 'SUCCEEDED') {
      const result = job.executions[0]?.result as { appliedAt?: number } | null | undefined;
      return { version: doc.version, appliedAt: result?.appliedAt ?? job.completedAt };
    }
    return { version: doc.version, rejected: job.reason ?? job.status };
  },
};

/**
 * The job document for a message on the cloud link's `desired` topic (`{ version, config }`). Its id
 * is derived from the version, so the retained message the broker delivers again on every reconnect
 * is the same job (submit returns it) rather than a new one refused as "already applied".
 */
export function desiredStateJobDocument(payload: unknown): unknown {
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) return payload;
  const fields = payload as Record<string, unknown>;
  const version = fields.version;
  const id = typeof version === 'number' && Number.isInteger(version) && version > 0 ? `desired-v${version}` : undefined;
  return { ...fields, type: 'config.desired', ...(id ? { id } : {}) };
}
