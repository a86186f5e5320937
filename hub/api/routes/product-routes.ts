import { Type } from '@sinclair/typebox';
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { ApiContext } from '../context.js';

const Product = Type.Object(
  {
    gtin14: Type.String({ pattern: '^[0-9]{14}$' }),
    sku: Type.String({ minLength: 1, maxLength: 64 }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    unitWeightG: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  },
  { additionalProperties: false },
);

/** The product table that maps GTIN-14 (decoded from SGTIN-96 tags) to the store's SKUs. */
export function productRoutes(app: FastifyInstance, ctx: ApiContext, read: onRequestAsyncHookHandler, ops: onRequestAsyncHookHandler): void {
  const common = { tags: ['products'], security: [{ bearer: [] }] };
  const db = ctx.store.db;
  app.get('/api/v1/products', { onRequest: read, schema: common }, async () =>
    db.prepare('SELECT gtin14, sku, name, unit_weight_g AS unitWeightG FROM products ORDER BY sku').all(),
  );
  app.put<{ Body: { gtin14: string; sku: string; name?: string; unitWeightG?: number }[] }>(
    '/api/v1/products',
    { onRequest: ops, schema: { ...common, summary: 'upsert products (by GTIN-14)', body: Type.Array(Product, { maxItems: 10_000 }) } },
    async (req) => {
      const upsert = db.prepare(
        `INSERT INTO products (gtin14, sku, name, unit_weight_g, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (gtin14) DO UPDATE SET sku = excluded.sku, name = excluded.name, unit_weight_g = excluded.unit_weight_g, updated_at = excluded.updated_at`,
      );
      const now = Date.now();
      db.transaction(() => {
        for (const p of req.body) upsert.run(p.gtin14, p.sku, p.name ?? '', p.unitWeightG ?? null, now);
      })();
      return { upserted: req.body.length };
    },
  );
}
