/** Operations routes: `/healthz`, `/metrics`, `/.well-known/jwks.json`, `/openapi.json`. */
import type uWS from 'uWebSockets.js';
import type { GatewayContext } from '../context.js';
import { route } from '../http.js';
import { openApiDocument } from '../openapi.js';

/** How long /healthz waits for Redis's PING before saying 503. */
const HEALTH_TIMEOUT_MS = 1000;

export function registerOpsRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  route(app, 'get', '/healthz', ctx.log, async (_req, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([
      ctx.redis.ping().then(() => true, () => false),
      new Promise<boolean>((r) => { timer = setTimeout(r, HEALTH_TIMEOUT_MS, false); }),
    ]);
    clearTimeout(timer);
    reply.json(ok ? 200 : 503, { ok, redis: ok ? 'up' : 'down' }, ok ? {} : { 'retry-after': '1' });
  });
  route(app, 'get', '/metrics', ctx.log, async (_req, reply) => {
    reply.send(200, await ctx.metrics.registry.metrics(), { 'content-type': ctx.metrics.registry.contentType });
  });
  route(app, 'get', '/.well-known/jwks.json', ctx.log, async (_req, reply) => {
    reply.json(200, ctx.keys.jwks(), { 'cache-control': 'public, max-age=60' });
  });
  const doc = JSON.stringify(openApiDocument());
  route(app, 'get', '/openapi.json', ctx.log, async (_req, reply) => {
    reply.send(200, doc, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
  });
}
