import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

/** GET /api/v1/stock, /api/v1/stock/:sku/ledger and /api/v1/stock/reviews (read scope). */
export function stockRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler): void {
  const common = { tags: ['stock'], security: [{ bearer: [] }] };
  const ledger = () => {
    const l = ctx.ledger();
    if (!l) throw new HubError('HUB_ERR_SERVICE_STOPPED', 'the inventory service is not running');
    return l;
  };
  app.get<{ Querystring: { sku?: string; location?: string } }>(
    '/api/v1/stock',
    {
      onRequest: read,
      schema: {
        ...common,
        querystring: Type.Object({ sku: Type.Optional(Type.String()), location: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: { 200: Type.Array(Type.Object({ sku: Type.String(), location: Type.String(), onHand: Type.Number(), lastChange: Type.Number() })) },
      },
    },
    async (req) => ledger().stock({ ...(req.query.sku ? { sku: req.query.sku } : {}), ...(req.query.location ? { location: req.query.location } : {}) }),
  );

  app.get<{ Params: { sku: string }; Querystring: { location?: string; cursor?: string; limit: number } }>(
    '/api/v1/stock/:sku/ledger',
    {
      onRequest: read,
      schema: {
        ...common,
        params: Type.Object({ sku: Type.String() }),
        querystring: Type.Object(
          {
            location: Type.Optional(Type.String()),
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (req) => {
      const items = ledger().history(req.params.sku, {
        limit: req.query.limit,
        ...(req.query.location ? { location: req.query.location } : {}),
        ...(req.query.cursor ? { after: Number(req.query.cursor) } : {}),
      });
      const last = items[items.length - 1];
      return { items, next: items.length === req.query.limit && last ? String(last.id) : null };
    },
  );

  app.get('/api/v1/stock/reviews', { onRequest: read, schema: { ...common, summary: 'counts held for review instead of applied' } }, async () =>
    ledger().openReviews(),
  );
}
