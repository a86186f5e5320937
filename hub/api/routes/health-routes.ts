import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';

/** Unauthenticated: /healthz for supervisors and load balancers, /metrics for Prometheus. */
export function healthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'readiness; 503 names the failing checks' } }, async (_req, reply) => {
    const report = ctx.health.report();
    return reply.status(report.ready ? 200 : 503).send({ status: report.ready ? 'ok' : 'unavailable', checks: report.checks });
  });
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus text format' } }, async (_req, reply) => {
    const body = await ctx.metrics.registry.metrics();
    return reply.type(ctx.metrics.registry.contentType).send(body);
  });
}
