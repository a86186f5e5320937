import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { HubError } from '../../sdk/errors.js';
import { SCOPES, type Scope } from '../../store/api-tokens.js';
import type { ApiContext } from '../context.js';

const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scope: Type.String(),
  createdAt: Type.Number(),
  revokedAt: Type.Union([Type.Number(), Type.Null()]),
  lastUsedAt: Type.Union([Type.Number(), Type.Null()]),
});

/** API tokens (admin): list, create (the secret is in this one response only), revoke. */
export function tokenRoutes(app: FastifyInstance, ctx: ApiContext, admin: onRequestAsyncHookHandler): void {
  const common = { tags: ['tokens'], security: [{ bearer: [] }] };
  app.get('/api/v1/tokens', { onRequest: admin, schema: { ...common, response: { 200: Type.Array(TokenView) } } }, async () => ctx.store.tokens.list());

  app.post<{ Body: { scope: Scope; name?: string } }>(
    '/api/v1/tokens',
    {
      onRequest: admin,
      schema: {
        ...common,
        body: Type.Object(
          { scope: Type.Union(SCOPES.map((s) => Type.Literal(s))), name: Type.Optional(Type.String({ maxLength: 100 })) },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ id: Type.String(), token: Type.String(), scope: Type.String() }) },
      },
    },
    async (req, reply) => {
      const { id, token } = ctx.store.tokens.create(req.body.scope, req.body.name ?? '');
      req.log.info({ tokenId: id, scope: req.body.scope, by: req.token?.id }, 'API token created');
      return reply.status(201).send({ id, token, scope: req.body.scope });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    { onRequest: admin, schema: { ...common, params: Type.Object({ id: Type.String() }), response: { 204: Type.Null() } } },
    async (req, reply) => {
      if (!ctx.store.tokens.revoke(req.params.id)) throw new HubError('HUB_ERR_API_NOT_FOUND', `no active token ${req.params.id}`);
      req.log.info({ tokenId: req.params.id, by: req.token?.id }, 'API token revoked');
      return reply.status(204).send();
    },
  );
}
