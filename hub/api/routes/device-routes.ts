import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

const Device = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  model: Type.Union([Type.String(), Type.Null()]),
  firmware: Type.Union([Type.String(), Type.Null()]),
  battery: Type.Union([Type.Number(), Type.Null()]),
  lastSeen: Type.Union([Type.Number(), Type.Null()]),
  availability: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  rejected: Type.Record(Type.String(), Type.Number()),
});

const Event = Type.Object({
  id: Type.Integer(),
  uid: Type.String(),
  deviceId: Type.Union([Type.String(), Type.Null()]),
  kind: Type.String(),
  time: Type.Number(),
  body: Type.Unknown(),
});

/** GET /api/v1/devices, /api/v1/devices/:id and /api/v1/events (read scope). */
export function deviceRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler): void {
  const common = { tags: ['devices'], security: [{ bearer: [] }] };
  const devices = () => {
    const d = ctx.devices();
    if (!d?.registry || !d.events) throw new HubError('HUB_ERR_SERVICE_STOPPED', 'the devices service is not running');
    return { registry: d.registry, events: d.events };
  };
  app.get('/api/v1/devices', { onRequest: read, schema: { ...common, response: { 200: Type.Array(Device) } } }, async () => devices().registry.list());

  app.get<{ Params: { id: string } }>(
    '/api/v1/devices/:id',
    { onRequest: read, schema: { ...common, params: Type.Object({ id: Type.String() }), response: { 200: Device } } },
    async (req) => {
      const device = devices().registry.get(req.params.id);
      if (!device) throw new HubError('HUB_ERR_DEVICE_UNKNOWN', `no device ${req.params.id}`);
      return device;
    },
  );

  app.get<{ Querystring: { since?: number; kind?: string; device?: string; cursor?: string; limit: number } }>(
    '/api/v1/events',
    {
      onRequest: read,
      schema: {
        tags: ['devices'],
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            since: Type.Optional(Type.Integer({ minimum: 0, description: 'events at or after this time (ms since epoch)' })),
            kind: Type.Optional(Type.String({ description: "exact kind, or a prefix ending in '.' (e.g. item.)" })),
            device: Type.Optional(Type.String()),
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Event), next: Type.Union([Type.String(), Type.Null()]) }) },
      },
    },
    async (req) => {
      const q = req.query;
      const items = devices().events.list({
        limit: q.limit,
        ...(q.cursor ? { after: Number(q.cursor) } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.since !== undefined ? { since: q.since } : {}),
        ...(q.device ? { device: q.device } : {}),
      });
      const last = items[items.length - 1];
      return { items, next: items.length === q.limit && last ? String(last.id) : null };
    },
  );
}
