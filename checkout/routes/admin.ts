/** Operator routes of checkout (CONTRACT.md section 4). */
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors, requireAdmin, SaleParam, type Ctx } from '../context.js';
import { CheckoutError } from '../errors.js';
import { auditSale, saleView, upsertSale } from '../sales.js';
import { SaleViewSchema } from './sales.js';

const SaleInput = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    priceCents: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000 })),
    currency: Type.Optional(Type.String({ pattern: '^[A-Za-z]{3}$' })),
    total: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    startsAt: Type.Optional(Type.String({ minLength: 1 })),
    endsAt: Type.Optional(Type.String({ minLength: 1 })),
    reservationSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);

export function adminRoutes(app: FastifyInstance, ctx: Ctx) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  r.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/admin/')) requireAdmin(ctx, req);
  });

  r.put(
    '/admin/sales/:sale',
    { schema: { params: SaleParam, body: SaleInput, response: { 200: SaleViewSchema, 201: SaleViewSchema, ...errors(400, 401, 409, 413) } } },
    async (req, reply) => {
      const { created, row } = await upsertSale(ctx.db, req.params.sale, req.body);
      await ctx.signal.publish(row);
      return reply.code(created ? 201 : 200).send(saleView(row, ctx.clock()));
    },
  );

  r.get(
    '/admin/sales/:sale/audit',
    { schema: { params: SaleParam, response: { 200: Type.Object({ ok: Type.Boolean() }, { additionalProperties: true }), ...errors(400, 401, 404) } } },
    async (req) => {
      const a = await auditSale(ctx.db, req.params.sale);
      if (!a) throw new CheckoutError('unknown_sale');
      return a;
    },
  );
}
