import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

const Result = Type.Object({
  zone: Type.String(),
  sku: Type.String(),
  count: Type.Integer(),
  coverage: Type.Number({ description: 'share of the tags believed in the zone at the start that the cycle saw' }),
  outcome: Type.String({ description: 'applied, unchanged, review (held: coverage or difference), stale' }),
  delta: Type.Optional(Type.Integer()),
  reason: Type.Optional(Type.String()),
});

const CycleCountView = Type.Object({
  id: Type.String(),
  source: Type.String(),
  zones: Type.Union([Type.Array(Type.String()), Type.Null()]),
  startedAt: Type.Integer(),
  endsAt: Type.Union([Type.Integer(), Type.Null()]),
  endedAt: Type.Union([Type.Integer(), Type.Null()]),
  tagsSeen: Type.Integer(),
  results: Type.Array(Result),
});

/**
 * RFID cycle counts: POST /api/v1/stock/cycle-counts (ops) starts one over some zones for a while;
 * when it ends, each SKU's count per zone is an absolute observation for the ledger.
 */
export function cycleCountRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler, ops: onRequestAsyncHookHandler): void {
  const common = { tags: ['stock'], security: [{ bearer: [] }] };
  const inventory = () => {
    const i = ctx.cycleCounts();
    if (!i) throw new HubError('HUB_ERR_SERVICE_STOPPED', 'the inventory service is not running');
    return i;
  };
  app.post<{ Body: { zones?: string[]; seconds: number } }>(
    '/api/v1/stock/cycle-counts',
    {
      onRequest: ops,
      schema: {
        ...common,
        body: Type.Object(
          {
            zones: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 100, description: 'zones to count; all when absent' })),
            seconds: Type.Integer({ minimum: 1, maximum: 3600, description: 'how long to collect reads' }),
          },
          { additionalProperties: false },
        ),
        response: { 202: CycleCountView },
      },
    },
    async (req, reply) => {
      reply.code(202);
      return inventory().startCycleCount({ ...(req.body.zones ? { zones: req.body.zones } : {}), seconds: req.body.seconds, source: 'api' });
    },
  );
  app.get('/api/v1/stock/cycle-counts', { onRequest: read, schema: { ...common, response: { 200: Type.Array(CycleCountView) } } }, async () =>
    inventory().cycleCounts(),
  );
  app.get<{ Params: { id: string } }>(
    '/api/v1/stock/cycle-counts/:id',
    { onRequest: read, schema: { ...common, params: Type.Object({ id: Type.String() }), response: { 200: CycleCountView } } },
    async (req) => {
      const view = inventory().cycleView(req.params.id);
      if (!view) throw new HubError('HUB_ERR_API_NOT_FOUND', `no cycle count ${req.params.id}`);
      return view;
    },
  );
}
