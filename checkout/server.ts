/**
 * The checkout HTTP server: Fastify with TypeBox schemas, unknown fields refused,
 * one error handler that turns everything into the contract's `{error, message}` bodies.
 */
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { JwksUnavailable } from './admission.js';
import { isDatabaseUnavailable } from './db.js';
import type { Ctx } from './context.js';
import { bodyOf, CheckoutError } from './errors.js';
import { accountRoutes } from './routes/accounts.js';
import { adminRoutes } from './routes/admin.js';
import { reservationRoutes } from './routes/reservations.js';
import { saleRoutes } from './routes/sales.js';
import { webhookRoutes } from './routes/webhook.js';

export const BODY_LIMIT = 16 * 1024;

export function buildServer(ctx: Ctx): FastifyInstance {
  const app = Fastify({
    logger: ctx.config.logLevel === 'silent' ? false : { level: ctx.config.logLevel },
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    return503OnClosing: true,
  });

  app.setErrorHandler((e: FastifyError, req, reply) => {
    if (e instanceof CheckoutError) return reply.code(e.status).send(e.body());
    if (e.validation) return reply.code(400).send(bodyOf('bad_request', { detail: e.message }));
    if (e instanceof JwksUnavailable) {
      req.log.warn({ err: e }, 'admission keys unavailable');
      return reply.code(503).send(bodyOf('unavailable', { detail: 'admission keys could not be fetched' }));
    }
    if (isDatabaseUnavailable(e)) {
      req.log.warn({ err: e }, 'postgres unavailable');
      return reply.code(503).header('retry-after', '1').send(bodyOf('unavailable', { detail: 'the database does not answer' }));
    }
    switch (e.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.code(413).send(bodyOf('payload_too_large', { limitBytes: BODY_LIMIT }));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return reply.code(415).send(bodyOf('unsupported_media_type'));
    }
    if (e.statusCode === 400 || e instanceof SyntaxError) return reply.code(400).send(bodyOf('bad_request', { detail: e.message }));
    req.log.error({ err: e }, 'request failed');
    return reply.code(500).send(bodyOf('internal'));
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(bodyOf('not_found')));

  accountRoutes(app, ctx);
  saleRoutes(app, ctx);
  reservationRoutes(app, ctx);
  webhookRoutes(app, ctx);
  adminRoutes(app, ctx);

  app.get('/healthz', async (_req, reply) => {
    const [pg, redis] = await Promise.all([
      sql`SELECT 1`.execute(ctx.db).then(() => true, () => false),
      Promise.race([ctx.redis.ping().then((p) => p === 'PONG', () => false), new Promise<boolean>((r) => setTimeout(r, 1000, false))]),
    ]);
    const ok = pg && redis;
    return reply.code(ok ? 200 : 503).send({ ok, postgres: pg, redis });
  });
  app.get('/metrics', async (_req, reply) => {
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
  return app;
}
