/**
 * The OMS side of docs/cloud-protocol.md over HTTP(S): batches in, `{ epoch, appliedThrough }` out, with the
 * contract's status codes. Also a read side (cursor, stock balances, stats) for tests and humans, and fault
 * injection (off by default) so hub tests can exercise retries, lost answers and garbage answers against
 * the real thing rather than a mock.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { bodyHash, IdempotencyKeys } from './idempotency.js';
import { LedgerStore, MalformedBatchError } from './ledger-store.js';

export interface FaultInjection {
  /** The next N batch requests are answered 503 with `Retry-After`, before anything is applied. */
  unavailable?: number;
  /** Seconds in that Retry-After. Default 1. */
  retryAfterSeconds?: number;
  /** The next N batch requests are applied, then answered 200 with a body that is not the contract's. */
  garbage?: number;
  /** The next N batch requests are applied, then the connection is dropped unanswered: a lost ack. */
  resetAfterApply?: number;
  /** Every batch request waits this long first (client timeouts). */
  delayMs?: number;
}

export interface HttpServerOptions {
  store: LedgerStore;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port; see `url` after listen()). */
  port?: number;
  /** PEM contents (not paths). Without it the server speaks plain HTTP. */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** When set, every /v1 request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest request body in bytes; larger ones get 413. Default 8 MiB. */
  bodyLimit?: number;
  faults?: FaultInjection;
  logger?: Logger;
}

export interface HttpStats {
  requests: number;
  byStatus: Record<string, number>;
  idempotentReplays: number;
  faultsInjected: number;
}

// 200 answers that a hub must not take as an ack (the contract's "200 with a body that is not the above").
const GARBAGE: Array<{ type: string; body: string }> = [
  { type: 'text/html', body: '<html><body>OK</body></html>' },
  { type: 'application/json', body: '{"status":"ok"}' },
  { type: 'application/json', body: '{"epoch":"1","appliedThrough":"many"}' },
];

const digest = (s: string) => createHash('sha256').update(s).digest();

export class ReceiverHttpServer {
  readonly app: FastifyInstance;
  private readonly store: LedgerStore;
  private readonly keys: IdempotencyKeys;
  private readonly faults: Required<FaultInjection>;
  private readonly tokenDigest: Buffer | undefined;
  private readonly statsCounters: HttpStats = { requests: 0, byStatus: {}, idempotentReplays: 0, faultsInjected: 0 };
  private garbageTurn = 0;
  private address: string | undefined;

  constructor(private readonly options: HttpServerOptions) {
    this.store = options.store;
    this.keys = new IdempotencyKeys(options.store.db);
    this.faults = { unavailable: 0, retryAfterSeconds: 1, garbage: 0, resetAfterApply: 0, delayMs: 0, ...options.faults };
    this.tokenDigest = options.token !== undefined ? digest(options.token) : undefined;
    const common = { bodyLimit: options.bodyLimit ?? 8 * 1024 * 1024, ...(options.logger ? { loggerInstance: options.logger } : { logger: false }) };
    // The two branches differ only in the server type; the routes below do not care which it is.
    this.app = (options.https
      ? Fastify({ ...common, https: { cert: options.https.cert, key: options.https.key } })
      : Fastify(common)) as unknown as FastifyInstance;
    this.routes();
  }

  /** Replaces the fault settings; counts left over from earlier settings are dropped. */
  injectFaults(faults: FaultInjection): void {
    Object.assign(this.faults, { unavailable: 0, garbage: 0, resetAfterApply: 0, delayMs: 0, retryAfterSeconds: 1 }, faults);
  }

  get url(): string {
    if (!this.address) throw new Error('not listening');
    return this.address;
  }

  async listen(): Promise<string> {
    await this.app.listen({ host: this.options.host ?? '127.0.0.1', port: this.options.port ?? 0 });
    const { address, port } = this.app.server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.address = `${this.options.https ? 'https' : 'http'}://${host}:${port}`;
    return this.address;
  }

  stats(): HttpStats {
    return structuredClone(this.statsCounters);
  }

  async close(): Promise<void> {
    await this.app.close();
  }

  private authorized(req: FastifyRequest): boolean {
    if (!this.tokenDigest) return true;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    // Compare digests: equal length always, so the comparison time says nothing about the token.
    return m !== null && timingSafeEqual(digest(m[1]!), this.tokenDigest);
  }

  private routes(): void {
    const app = this.app;
    // Batches are JSON only; fastify would otherwise hand a text/plain body over as a string.
    app.removeContentTypeParser('text/plain');
    app.addHook('onRequest', async (req, reply) => {
      this.statsCounters.requests++;
      if (req.url.startsWith('/v1/') && !this.authorized(req)) {
        reply.header('WWW-Authenticate', 'Bearer');
        return reply.code(401).send({ code: 'unauthorized', message: 'missing or wrong bearer token' });
      }
    });
    app.addHook('onResponse', async (_req, reply) => {
      const k = String(reply.statusCode);
      this.statsCounters.byStatus[k] = (this.statsCounters.byStatus[k] ?? 0) + 1;
    });
    app.setErrorHandler((err: FastifyError, _req, reply) => {
      const status = err.statusCode ?? 500;
      // Keep the answers inside the contract's vocabulary: a hub holds the stream on 400/413/422.
      if (status === 413) return reply.code(413).send({ code: 'too_large', message: err.message });
      if (status === 415) return reply.code(400).send({ code: 'unsupported_media_type', message: err.message });
      if (status >= 400 && status < 500)
        return reply.code(400).send({ code: err.code?.includes('JSON') ? 'invalid_json' : 'bad_request', message: err.message });
      reply.log.error({ err }, 'request failed');
      return reply.code(500).send({ code: 'internal', message: 'internal error' });
    });
    app.setNotFoundHandler((req, reply) => reply.code(404).send({ code: 'not_found', message: `${req.method} ${req.url}` }));

    app.get('/healthz', async () => ({ ok: true }));
    app.post<{ Params: { hub: string; stream: string } }>('/v1/hubs/:hub/streams/:stream/batches', (req, reply) => this.batch(req, reply));
    app.get<{ Params: { hub: string; stream: string }; Querystring: { epoch?: string } }>('/v1/hubs/:hub/streams/:stream/cursor', async (req, reply) => {
      const epoch = req.query.epoch;
      if (epoch !== undefined && !/^\d+$/.test(epoch)) return reply.code(400).send({ code: 'bad_request', message: 'epoch must be a non-negative integer' });
      return this.store.cursor(req.params.hub, req.params.stream, epoch === undefined ? undefined : Number(epoch));
    });
    app.get<{ Querystring: { hub?: string; store?: string; sku?: string; location?: string } }>('/v1/stock', async (req) => {
      const { hub, store, sku, location } = req.query;
      return { balances: this.store.balances({ hub, store, sku, location }) };
    });
    app.get('/v1/stats', async () => ({ ...this.store.stats(), http: this.stats() }));
  }

  private async batch(req: FastifyRequest<{ Params: { hub: string; stream: string } }>, reply: FastifyReply): Promise<unknown> {
    const f = this.faults;
    if (f.delayMs > 0) await new Promise((r) => setTimeout(r, f.delayMs));
    if (f.unavailable > 0) {
      f.unavailable--;
      this.statsCounters.faultsInjected++;
      return reply.code(503).header('Retry-After', String(f.retryAfterSeconds)).send({ code: 'unavailable', message: 'injected fault' });
    }
    const { hub, stream } = req.params;
    const key = req.headers['idempotency-key'];
    const idemKey = typeof key === 'string' && key.length > 0 ? key : undefined;
    const hash = idemKey ? bodyHash(req.body) : '';
    if (idemKey) {
      const seen = this.keys.recall(hub, idemKey, hash);
      if (seen.kind === 'mismatch') {
        return reply.code(422).send({ code: 'idempotency_key_reused', message: `Idempotency-Key ${idemKey} was used before for a different body` });
      }
      if (seen.kind === 'hit') {
        this.statsCounters.idempotentReplays++;
        return reply.code(seen.answer.status).send(seen.answer.body);
      }
    }

    let result;
    try {
      result = this.store.apply(req.body, { hub, stream });
    } catch (err) {
      if (err instanceof MalformedBatchError) {
        req.log.warn({ hub, stream, reason: err.message }, 'batch rejected');
        return reply.code(422).send({ code: err.code, message: err.message });
      }
      throw err;
    }
    const answer = { epoch: result.epoch, appliedThrough: result.appliedThrough };
    if (result.gap) {
      // Not remembered under the key: a gap answer is about that moment, and the retry after the hub has
      // filled the gap should be judged afresh.
      return reply.code(409).send({ code: 'gap', ...answer });
    }
    if (idemKey) this.keys.remember(hub, idemKey, hash, { status: 200, body: answer });

    if (f.resetAfterApply > 0) {
      f.resetAfterApply--;
      this.statsCounters.faultsInjected++;
      reply.hijack();
      req.raw.socket.destroy();
      return undefined;
    }
    if (f.garbage > 0) {
      f.garbage--;
      this.statsCounters.faultsInjected++;
      const g = GARBAGE[this.garbageTurn++ % GARBAGE.length]!;
      return reply.code(200).type(g.type).send(g.body);
    }
    return reply.code(200).send(answer);
  }
}
