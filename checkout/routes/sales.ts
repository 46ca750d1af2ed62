/**
 * The public sale: `GET /api/sales/:sale`, the shopper's result, and the checkout page `GET /sales/:sale`.
 * The page gets the shop's shared look (shared/shop-page.ts) and the gateway's public URL
 * (GATEWAY_URL), where it sends a shopper without an admission: `GET /rooms?sale=` on the
 * gateway finds the room guarding the sale (docs/queue-page.md).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Type } from '@fastify/type-provider-typebox';
import { withShopStyle } from '../../shared/shop-page.js';
import { sessionUser } from '../auth.js';
import type { RoutePlugin } from '../context.js';
import { CheckoutError, errorResponses } from '../errors.js';
import { purchaseOf } from '../orders.js';
import { getSale, saleView } from '../sales.js';
import { PurchaseSchema, SaleParam, SaleViewSchema } from '../schemas.js';

const PAGE = fileURLToPath(new URL('../pages/sale.html', import.meta.url));
const GATEWAY_SLOT = '<meta name="gateway" content="">';
const attr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The checkout page as served: the shared shop style inlined, the gateway's public URL filled in. */
export function checkoutPage(gatewayUrl: string): string {
  const html = withShopStyle(readFileSync(PAGE, 'utf8'));
  if (!html.includes(GATEWAY_SLOT)) throw new Error(`sale.html has no ${GATEWAY_SLOT}`);
  return html.replace(GATEWAY_SLOT, () => `<meta name="gateway" content="${attr(gatewayUrl)}">`);
}

const sales: RoutePlugin = async (app, { ctx }) => {
  const page = checkoutPage(ctx.config.gatewayUrl);

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
