/** The public sale: `GET /api/sales/:sale`, the shopper's result, and the checkout page `GET /sales/:sale`. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Type } from '@fastify/type-provider-typebox';
import { sessionUser } from '../auth.js';
import type { RoutePlugin } from '../context.js';
import { CheckoutError, errorResponses } from '../errors.js';
import { purchaseOf } from '../orders.js';
import { getSale, saleView } from '../sales.js';
import { PurchaseSchema, SaleParam, SaleViewSchema } from '../schemas.js';

const PAGE = fileURLToPath(new URL('../pages/sale.html', import.meta.url));

const sales: RoutePlugin = async (app, { ctx }) => {
  const page = readFileSync(PAGE, 'utf8');

  app.get('/api/sales/:sale', { schema: { params: SaleParam, response: { 200: SaleViewSchema, ...errorResponses('unknown_sale') } } }, async (req) => {
    const s = await getSale(ctx.db, req.params.sale);
    if (!s) throw new CheckoutError('unknown_sale');
    return saleView(s, ctx.clock());
  });

  app.get(
    '/api/sales/:sale/purchase',
    { schema: { params: SaleParam, response: { 200: PurchaseSchema, ...errorResponses('unauthenticated') } } },
    async (req) => purchaseOf(ctx.db, req.params.sale, sessionUser(ctx, req)),
  );

  app.get(
    '/sales/:sale',
    { schema: { params: SaleParam, produces: ['text/html'], response: { 200: Type.String({ description: 'The checkout page (HTML).' }) } } },
    async (_req, reply) => {
      return reply
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer') // the admission token is in the URL fragment on arrival
        .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
        .send(page);
    },
  );
};

export default sales;
