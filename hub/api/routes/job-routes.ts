/**
 * Remote operations over HTTP: submit a job (ops), list and show jobs with their per-target
 * executions and progress (read), cancel one (ops). The document is checked by the job service, not
 * by the route schema, so a malformed one is recorded REJECTED and answered 400 HUB_ERR_JOB_INVALID
 * whichever way it arrived (docs/jobs.md).
 */
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { JOB_STATUSES, type JobStatus } from '../../ops/job-states.js';
import { JOB_SOURCES, type JobSource } from '../../ops/job-view.js';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

/**
 * A firmware job may carry its image inline (base64), so job documents get a larger body limit than
 * the rest of the API; images beyond it are given by URL.
 */
export const JOB_DOCUMENT_LIMIT_BYTES = 16 * 1024 * 1024;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);
const Status = Type.Union(
  JOB_STATUSES.map((s) => Type.Literal(s)),
  { description: 'QUEUED, IN_PROGRESS, then one terminal state' },
);
const Source = Type.Union(JOB_SOURCES.map((s) => Type.Literal(s)));

const Execution = Type.Object({
  target: Type.String({ description: 'a device id, or hub' }),
  wave: Type.Integer({ minimum: 0 }),
  status: Status,
  reason: Nullable(Type.String()),
  result: Type.Unknown({ description: 'what the target answered' }),
  attempts: Type.Integer({ minimum: 0 }),
  startedAt: Nullable(Type.Number()),
  completedAt: Nullable(Type.Number()),
  updatedAt: Type.Number(),
});

const summaryProperties = {
  id: Type.String(),
  type: Type.String(),
  source: Source,
  status: Status,
  reason: Nullable(Type.String()),
  progress: Type.Number({ minimum: 0, maximum: 1, description: 'share of executions in a terminal state' }),
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'executions per status' }),
  timeoutSeconds: Type.Number(),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
  startedAt: Nullable(Type.Number()),
  completedAt: Nullable(Type.Number()),
  deadlineAt: Type.Number(),
};

const JobSummary = Type.Object(summaryProperties);
const JobView = Type.Object({
  ...summaryProperties,
  document: Type.Unknown({ description: 'as submitted, without image bytes or secrets' }),
  executions: Type.Array(Execution),
});

const JobDocument = Type.Unknown({
  description: 'a job document: { type: device.command | config.desired | firmware.update, id?, timeoutSeconds?, ...fields of the type } (docs/jobs.md)',
});

export function jobRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler, ops: onRequestAsyncHookHandler): void {
  const common = { tags: ['jobs'], security: [{ bearer: [] }] };
  const jobs = () => {
    const service = ctx.jobs();
    if (!service) throw new HubError('HUB_ERR_JOB_SERVICE_STOPPED');
    return service;
  };
  const IdParams = Type.Object({ id: Type.String() });

  app.post<{ Body: unknown }>(
    '/api/v1/jobs',
    {
      onRequest: ops,
      bodyLimit: Math.max(ctx.config.api.bodyLimitBytes, JOB_DOCUMENT_LIMIT_BYTES),
      schema: {
        ...common,
        summary: 'submit a job (201; 200 when the same document with the same id was submitted before)',
        body: JobDocument,
        response: { 200: JobView, 201: JobView },
      },
    },
    async (req, reply) => {
      const body = req.body as { id?: unknown } | null;
      const resubmitted = typeof body?.id === 'string' && jobs().get(body.id) !== undefined;
      const job = jobs().submit(req.body, 'api');
      req.log.info({ jobId: job.id, type: job.type, status: job.status, by: req.token?.id }, 'job submitted over the API');
      return reply.status(resubmitted ? 200 : 201).send(job);
    },
  );

  app.get<{ Querystring: { status?: JobStatus; type?: string; source?: JobSource; limit: number } }>(
    '/api/v1/jobs',
    {
      onRequest: read,
      schema: {
        ...common,
        summary: 'jobs, newest first',
        querystring: Type.Object(
          {
            status: Type.Optional(Status),
            type: Type.Optional(Type.String()),
            source: Type.Optional(Source),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Array(JobSummary) },
      },
    },
    async (req) => {
      const { status, type, source, limit } = req.query;
      return jobs().list({ limit, ...(status ? { status } : {}), ...(type ? { type } : {}), ...(source ? { source } : {}) });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/v1/jobs/:id',
    { onRequest: read, schema: { ...common, summary: 'a job with its executions and progress', params: IdParams, response: { 200: JobView } } },
    async (req) => {
      const job = jobs().get(req.params.id);
      if (!job) throw new HubError('HUB_ERR_JOB_UNKNOWN', `no job ${req.params.id}`);
      return job;
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/v1/jobs/:id/cancel',
    {
      onRequest: ops,
      schema: {
        ...common,
        summary: 'cancel a job: targets not started are canceled, targets already running finish',
        params: IdParams,
        response: { 200: JobView },
      },
    },
    async (req) => {
      const job = jobs().cancel(req.params.id, `canceled over the API${req.token ? ` by token ${req.token.id}` : ''}`);
      req.log.info({ jobId: job.id, by: req.token?.id }, 'job canceled');
      return job;
    },
  );
}
