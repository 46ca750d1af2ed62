/**
 * Operator routes of checkout (docs/api.md section 4), registered under the `/admin` prefix:
 * every route of this plugin, and any unknown path under it, needs the admin token first.
 */
import { requireAdmin } from '../auth.js';
import type { RoutePlugin } from '../context.js';
import { bodyOf, CheckoutError, ERRORS, errorResponses } from '../errors.js';
import { auditSale, saleView, upsertSale } from '../sales.js';
import { AuditSchema, SaleInputSchema, SaleParam, SaleViewSchema } from '../schemas.js';
import { addErrorResponses } from '../../shared/openapi.js';

const admin: RoutePlugin = async (app, { ctx }) => {
  app.addHook('onRoute', (route) => addErrorResponses(((route.schema ??= {}).response ??= {}) as Record<string, unknown>, ERRORS, ['unauthorized']));
  app.addHook('onRequest', requireAdmin(ctx));
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(bodyOf('not_found')));

  app.put(
    '/sales/:sale',
    { schema: { params: SaleParam, body: SaleInputSchema, response: { 200: SaleViewSchema, 201: SaleViewSchema, ...errorResponses('stock_below_committed') } } },
    async (req, reply) => {
      const { created, row } = await upsertSale(ctx.db, req.params.sale, req.body);
      await ctx.signal.publish(row);
      return reply.code(created ? 201 : 200).send(saleView(row, ctx.clock()));
    },
  );

  app.get('/sales/:sale/audit', { schema: { params: SaleParam, response: { 200: AuditSchema, ...errorResponses('unknown_sale') } } }, async (req) => {
    const a = await auditSale(ctx.db, req.params.sale, { now: ctx.clock(), reconcileAfterMs: ctx.reconcileAfterMs });
    if (!a) throw new CheckoutError('unknown_sale');
    return a;
  });
};

export default admin;
