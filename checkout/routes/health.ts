/** `GET /healthz` (200 when Postgres and Redis answer, else 503) and `GET /metrics` (Prometheus text). */
import { Type } from '@fastify/type-provider-typebox';
import { sql } from 'kysely';
import type { RoutePlugin } from '../context.js';
import { HealthSchema } from '../schemas.js';

const health: RoutePlugin = async (app, { ctx }) => {
  app.get('/healthz', { schema: { response: { 200: HealthSchema, 503: HealthSchema } } }, async (_req, reply) => {
    const [pg, redis] = await Promise.all([
      sql`SELECT 1`.execute(ctx.db).then(() => true, () => false),
      Promise.race([ctx.redis.ping().then((p) => p === 'PONG', () => false), new Promise<boolean>((r) => setTimeout(r, 1000, false))]),
    ]);
    const ok = pg && redis;
    return reply.code(ok ? 200 : 503).send({ ok, postgres: pg, redis });
  });

  app.get('/metrics', { schema: { produces: ['text/plain'], response: { 200: Type.String({ description: 'Prometheus text format' }) } } }, async (_req, reply) => {
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
};

export default health;
