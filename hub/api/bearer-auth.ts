/**
 * Bearer-token authentication with scopes read < ops < admin, as a fastify onRequest hook: it runs
 * before the body is read, so a caller without the scope gets 401/403 and never makes the hub read,
 * parse or validate a body (up to api.bodyLimitBytes) for a route it may not use.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HubMetrics } from '../observability/metrics.js';
import { HubError } from '../sdk/errors.js';
import { type ApiToken, type ApiTokens, type Scope, scopeAllows } from '../store/api-tokens.js';

declare module 'fastify' {
  interface FastifyRequest {
    token?: ApiToken;
  }
}

/** The scope a route's auth hook demands, for the OpenAPI document (api-service.ts). */
export const SCOPE = Symbol('storehub.scope');

export function requireScope(tokens: ApiTokens, metrics: HubMetrics, scope: Scope) {
  const hook = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    const m = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!m) {
      metrics.apiAuthFailures.inc({ reason: 'missing' });
      throw new HubError('HUB_ERR_AUTH_MISSING', 'send Authorization: Bearer <token> (create one with `storehub token create`)');
    }
    const token = tokens.verify(m[1] as string);
    if (!token) {
      metrics.apiAuthFailures.inc({ reason: 'invalid' });
      throw new HubError('HUB_ERR_AUTH_INVALID');
    }
    if (!scopeAllows(token.scope, scope)) {
      metrics.apiAuthFailures.inc({ reason: 'scope' });
      throw new HubError('HUB_ERR_AUTH_SCOPE', `this route needs scope ${scope}; the token has ${token.scope}`);
    }
    request.token = token;
  };
  return Object.assign(hook, { [SCOPE]: scope });
}
