import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import { HubError } from '../../sdk/errors.js';
import type { ApiContext } from '../context.js';

const Held = Type.Union([Type.Null(), Type.Object({ reason: Type.String(), message: Type.String(), since: Type.Integer() })]);

const SinkStatus = Type.Object({
  sink: Type.String({ description: 'cloud (MQTT link) or oms (HTTPS adapter)' }),
  connected: Type.Boolean(),
  ackedEpoch: Type.Integer(),
  ackedSeq: Type.Integer({ description: 'the receiver has applied everything up to this seq' }),
  lastAckAt: Type.Union([Type.Integer(), Type.Null()]),
  lagSeconds: Type.Number({ description: 'age of the oldest record not yet acknowledged; 0 when caught up' }),
  inFlightBatches: Type.Integer(),
  held: Held,
});

const StreamStatus = Type.Object({
  stream: Type.String(),
  epoch: Type.Integer(),
  head: Type.Integer({ description: 'the seq the next record gets' }),
  backlogRecords: Type.Integer(),
  backlogBytes: Type.Integer(),
  budgetBytes: Type.Integer(),
  overBudget: Type.Boolean(),
  expired: Type.Integer(),
  dropped: Type.Integer(),
  folded: Type.Integer(),
  sinks: Type.Array(SinkStatus),
});

/** GET /api/v1/sync (read scope): backlog, last ack and lag per stream and uplink. */
export function syncRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler): void {
  app.get(
    '/api/v1/sync',
    {
      onRequest: read,
      schema: { tags: ['sync'], security: [{ bearer: [] }], response: { 200: Type.Object({ streams: Type.Array(StreamStatus) }) } },
    },
    async () => {
      const sync = ctx.sync();
      if (!sync) throw new HubError('HUB_ERR_SERVICE_STOPPED', 'the sync service is not running');
      return { streams: sync.status() };
    },
  );
}
