/**
 * The HTTP API service: fastify with OpenAPI (/docs/json), coded errors, bearer scopes, and the
 * dashboard at /. Built without listening by `build()` so tests can use inject().
 */
import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import type { Logger } from '../observability/logger.js';
import { requireScope, SCOPE } from './bearer-auth.js';
import type { ApiContext } from './context.js';
import { installErrorHandler } from './error-handler.js';
import { cycleCountRoutes } from './routes/cycle-count-routes.js';
import { deviceCredentialRoutes } from './routes/device-credential-routes.js';
import { deviceRoutes } from './routes/device-routes.js';
import { healthRoutes } from './routes/health-routes.js';
import { jobRoutes } from './routes/job-routes.js';
import { messageRoutes } from './routes/message-routes.js';
import { productRoutes } from './routes/product-routes.js';
import { statusRoutes } from './routes/status-routes.js';
import { stockRoutes } from './routes/stock-routes.js';
import { syncRoutes } from './routes/sync-routes.js';
import { tokenRoutes } from './routes/token-routes.js';

const DASHBOARD = readFileSync(new URL('./dashboard/index.html', import.meta.url), 'utf8');

export async function buildApi(ctx: ApiContext, log: Logger): Promise<FastifyInstance> {
  const tls = ctx.config.api.tls;
  // fastify's types follow the https option into a different server type; the routes do not care
  const app = Fastify({
    ...(tls ? { https: { cert: readFileSync(tls.cert), key: readFileSync(tls.key) } } : {}),
    loggerInstance: log.child({ service: 'api' }) as FastifyBaseLogger,
    // per-request lines would drown the log of a busy store; errors are still logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.config.api.bodyLimitBytes,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    // errors raised before routing (a URL that does not decode) never reach the error handler
    frameworkErrors: (error, _request, reply) => {
      void (reply as FastifyReply).status(400).send({ code: 'HUB_ERR_API_VALIDATION', message: error.message });
    },
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'storehub API', version: ctx.version, description: 'Store edge hub: status, devices, stock and operations.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  installErrorHandler(app);
  // Every authenticated route says in the OpenAPI document which scope it needs.
  app.addHook('onRoute', (route) => {
    const hooks = [route.onRequest ?? []].flat() as { [SCOPE]?: string }[];
    const scope = hooks.map((h) => h[SCOPE]).find((s) => s !== undefined);
    if (!scope) return;
    const schema = (route.schema ?? {}) as { description?: string; security?: unknown; 'x-storehub-scope'?: string };
    route.schema = {
      ...schema,
      security: [{ bearer: [] }],
      'x-storehub-scope': scope,
      description: `${schema.description ? `${schema.description} ` : ''}Needs a bearer token with scope ${scope} or higher (read < ops < admin).`,
    } as typeof route.schema;
  });
  app.addHook('onResponse', async (req, reply) => {
    ctx.metrics.apiRequests.inc({ route: req.routeOptions.url ?? 'unmatched', status: `${Math.floor(reply.statusCode / 100)}xx` });
  });

  const tokens = ctx.store.tokens;
  const read = requireScope(tokens, ctx.metrics, 'read');
  const ops = requireScope(tokens, ctx.metrics, 'ops');
  const admin = requireScope(tokens, ctx.metrics, 'admin');

  healthRoutes(app, ctx);
  statusRoutes(app, ctx, read);
  messageRoutes(app, ctx, read);
  tokenRoutes(app, ctx, admin);
  deviceCredentialRoutes(app, ctx, admin);
  deviceRoutes(app, ctx, read);
  stockRoutes(app, ctx, read);
  cycleCountRoutes(app, ctx, read, ops);
  syncRoutes(app, ctx, read);
  productRoutes(app, ctx, read, ops);
  jobRoutes(app, ctx, read, ops);
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.type('text/html; charset=utf-8').send(DASHBOARD));
  return app;
}

export class ApiService {
  readonly name = 'api';
  private app: FastifyInstance | undefined;
  address = '';

  constructor(
    private readonly ctx: ApiContext,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.app = await buildApi(this.ctx, this.log);
    this.address = await this.app.listen({ host: this.ctx.config.api.host, port: this.ctx.config.api.port });
    this.log.info({ address: this.address }, 'API listening');
  }

  async stop(): Promise<void> {
    const app = this.app;
    this.app = undefined;
    await app?.close();
  }
}
