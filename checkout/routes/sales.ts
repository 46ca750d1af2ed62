/** The public sale: its live state, the shopper's result, and the checkout page. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors, SaleParam, userOf, type Ctx } from '../context.js';
import { CheckoutError } from '../errors.js';
import { purchaseOf } from '../orders.js';
import { getSale, saleView } from '../sales.js';

const PAGE = fileURLToPath(new URL('../pages/sale.html', import.meta.url));

export const SaleViewSchema = Type.Object({
  sale: Type.String(),
  name: Type.String(),
  priceCents: Type.Integer(),
  currency: Type.String(),
  state: Type.Union([Type.Literal('upcoming'), Type.Literal('active'), Type.Literal('ended'), Type.Literal('sold_out')]),
  startsAt: Type.String(),
  endsAt: Type.String(),
  total: Type.Integer(),
  available: Type.Integer(),
  reserved: Type.Integer(),
  sold: Type.Integer(),
  reservationSeconds: Type.Integer(),
});

export function saleRoutes(app: FastifyInstance, ctx: Ctx) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const page = readFileSync(PAGE, 'utf8');

  r.get('/api/sales/:sale', { schema: { params: SaleParam, response: { 200: SaleViewSchema, ...errors(400, 404) } } }, async (req) => {
    const s = await getSale(ctx.db, req.params.sale);
    if (!s) throw new CheckoutError('unknown_sale');
    return saleView(s, ctx.clock());
  });

  r.get(
    '/api/sales/:sale/purchase',
    {
      schema: {
        params: SaleParam,
        response: {
          200: Type.Object({
            status: Type.Union([
              Type.Literal('success'),
              Type.Literal('in_progress'),
              Type.Literal('failed'),
              Type.Literal('expired'),
              Type.Literal('cancelled'),
              Type.Literal('none'),
            ]),
            orderId: Type.Optional(Type.String()),
            reservationId: Type.Optional(Type.String()),
            reservationStatus: Type.Optional(Type.String()),
            expiresAt: Type.Optional(Type.String()),
          }),
          ...errors(400, 401),
        },
      },
    },
    async (req) => purchaseOf(ctx.db, req.params.sale, userOf(ctx, req)),
  );

  r.get('/sales/:sale', { schema: { params: SaleParam } }, async (_req, reply) => {
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer') // the admission token is in the URL fragment on arrival
      .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
      .send(page);
  });
}
