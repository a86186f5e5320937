import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { ApiContext } from '../context.js';

interface Row {
  id: number;
  device_id: string;
  topic: string;
  payload: Buffer;
  qos: number;
  received_at: number;
}

/** GET /api/v1/messages: the journal of acknowledged device messages, paged by an opaque cursor. */
export function messageRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler): void {
  const byCursor = ctx.store.db.prepare(
    'SELECT id, device_id, topic, payload, qos, received_at FROM device_messages WHERE id > @after AND (@device IS NULL OR device_id = @device) ORDER BY id LIMIT @limit',
  );
  app.get<{ Querystring: { cursor?: string; device?: string; limit: number } }>(
    '/api/v1/messages',
    {
      onRequest: read,
      schema: {
        tags: ['messages'],
        security: [{ bearer: [] }],
        querystring: Type.Object(
          {
            cursor: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: 'the `next` value of the previous page' })),
            device: Type.Optional(Type.String()),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(
              Type.Object({
                id: Type.Integer(),
                deviceId: Type.String(),
                topic: Type.String(),
                qos: Type.Integer(),
                receivedAt: Type.Number(),
                payloadBase64: Type.String(),
              }),
            ),
            next: Type.Union([Type.String(), Type.Null()]),
          }),
        },
      },
    },
    async (req) => {
      const rows = byCursor.all({ after: Number(req.query.cursor ?? 0), device: req.query.device ?? null, limit: req.query.limit }) as Row[];
      const last = rows[rows.length - 1];
      return {
        items: rows.map((r) => ({
          id: r.id,
          deviceId: r.device_id,
          topic: r.topic,
          qos: r.qos,
          receivedAt: r.received_at,
          payloadBase64: r.payload.toString('base64'),
        })),
        next: rows.length === req.query.limit && last ? String(last.id) : null,
      };
    },
  );
}
