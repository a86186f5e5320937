import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { ApiContext } from '../context.js';

/** GET /api/v1/status: the hub at a glance, as `storehub status` and the dashboard show it. */
export function statusRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler): void {
  app.get(
    '/api/v1/status',
    {
      onRequest: read,
      schema: {
        tags: ['status'],
        security: [{ bearer: [] }],
        response: {
          200: Type.Object({
            store: Type.Object({ id: Type.String(), name: Type.Optional(Type.String()) }),
            hub: Type.Object({ id: Type.String(), epoch: Type.Integer(), version: Type.String(), uptimeSeconds: Type.Number() }),
            health: Type.Object({
              ready: Type.Boolean(),
              checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean(), detail: Type.Optional(Type.String()) })),
            }),
            broker: Type.Object({ clients: Type.Integer() }),
            database: Type.Object({
              usedBytes: Type.Number(),
              maxBytes: Type.Number(),
              budgetExceeded: Type.Boolean(),
              journal: Type.Object({ committed: Type.Number(), batches: Type.Number(), rejectedBudget: Type.Number() }),
            }),
            incidents: Type.Array(Type.Object({ id: Type.Integer(), time: Type.Number(), kind: Type.String(), detail: Type.Unknown() })),
          }),
        },
      },
    },
    async () => {
      const budget = ctx.store.budget.current;
      return {
        store: { id: ctx.config.store.id, ...(ctx.config.store.name ? { name: ctx.config.store.name } : {}) },
        hub: { id: ctx.store.hubId, epoch: ctx.store.epoch, version: ctx.version, uptimeSeconds: (Date.now() - ctx.startedAt) / 1000 },
        health: ctx.health.report(),
        broker: { clients: ctx.brokerClients() },
        database: {
          usedBytes: budget.usedBytes,
          maxBytes: budget.maxBytes,
          budgetExceeded: budget.exceeded,
          journal: ctx.store.journal.stats,
        },
        incidents: ctx.store.incidents(10),
      };
    },
  );
}
