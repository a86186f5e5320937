import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { DEVICE_ID_PATTERN } from '../../broker/topic-acl.js';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

const CredentialView = Type.Object({ deviceId: Type.String(), kind: Type.String(), topics: Type.Array(Type.String()), createdAt: Type.Number() });

/** MQTT credentials of devices (admin), the API twin of `storehub device add|list|remove`. */
export function deviceCredentialRoutes(app: FastifyInstance, ctx: ApiContext, admin: onRequestAsyncHookHandler): void {
  const common = { tags: ['device credentials'], security: [{ bearer: [] }] };
  app.get('/api/v1/device-credentials', { onRequest: admin, schema: { ...common, response: { 200: Type.Array(CredentialView) } } }, async () =>
    ctx.store.credentials.list().map(({ deviceId, kind, topics, createdAt }) => ({ deviceId, kind, topics, createdAt })),
  );

  app.post<{ Body: { deviceId: string; kind: string; topics?: string[] } }>(
    '/api/v1/device-credentials',
    {
      onRequest: admin,
      schema: {
        ...common,
        body: Type.Object(
          {
            deviceId: Type.String({ pattern: DEVICE_ID_PATTERN.source }),
            kind: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }),
            topics: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 32 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ deviceId: Type.String(), secret: Type.String(), topics: Type.Array(Type.String()) }) },
      },
    },
    async (req, reply) => {
      const { deviceId, kind, topics } = req.body;
      const secret = await ctx.store.credentials.add(deviceId, kind, topics);
      req.log.info({ deviceId, kind, by: req.token?.id }, 'device credentials created');
      return reply.status(201).send({ deviceId, secret, topics: ctx.store.credentials.get(deviceId)?.topics ?? [] });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/device-credentials/:id',
    { onRequest: admin, schema: { ...common, params: Type.Object({ id: Type.String() }), response: { 204: Type.Null() } } },
    async (req, reply) => {
      if (!ctx.store.credentials.remove(req.params.id)) throw new HubError('HUB_ERR_DEVICE_UNKNOWN', `no device ${req.params.id}`);
      req.log.info({ deviceId: req.params.id, by: req.token?.id }, 'device credentials removed');
      return reply.status(204).send();
    },
  );
}
