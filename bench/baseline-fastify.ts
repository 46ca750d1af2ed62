/**
 * The obvious baseline for the join benchmark (bench/join.ts): the gateway's own join script,
 * called ONCE PER REQUEST behind a plain Fastify route. Everything else a join does is the
 * gateway's code too — the room view (Rooms), the visitor id (mintVisitorId), the bot defence
 * (createDefence with config), the script and its arguments (a JoinBatcher of its own per request,
 * so it never batches two requests: one EVALSHA with one entry each) — so the difference
 * measured is batching and the HTTP server, nothing else.
 *
 * Run alone: `npx tsx bench/baseline-fastify.ts` (port 8090, REDIS_PREFIX from the environment).
 */
import Fastify from 'fastify';
import { loadConfig } from '../shared/config.js';
import { createRedis } from '../shared/redis.js';
import { createDefence } from '../waiting-room/defence/index.js';
import { Draws } from '../waiting-room/draw.js';
import { JoinBatcher } from '../waiting-room/join.js';
import { createMetrics } from '../waiting-room/metrics.js';
import { Rooms } from '../waiting-room/rooms.js';
import { defineScripts } from '../shared/scripts.js';
import { isValidVisitorId, mintVisitorId, VISITOR_COOKIE, visitorCookie } from '../waiting-room/visitor.js';

export interface BaselineOptions {
  env: Record<string, string>;
  port?: number;
}

function cookieVid(cookie: string | undefined): string | undefined {
  const m = cookie && new RegExp(`(?:^|;\\s*)${VISITOR_COOKIE}=([^;]+)`).exec(cookie);
  return m ? m[1] : undefined;
}

export async function startBaseline(opts: BaselineOptions): Promise<{ port: number; close(): Promise<void> }> {
  const config = loadConfig(opts.env);
  const redis = defineScripts(createRedis(config.redisUrl));
  const defence = createDefence(config, redis);
  const metrics = createMetrics();
  const draws = new Draws(redis, config.redisPrefix);
  const rooms = new Rooms(redis, config.redisPrefix, Date.now, () => undefined);
  await rooms.refresh();
  rooms.start(1000);
  const app = Fastify({ logger: false, bodyLimit: 4096 });

  app.post<{ Params: { room: string }; Body: { captchaToken?: string } | null }>('/api/rooms/:room/join', async (req, reply) => {
    const now = Date.now();
    const view = await rooms.find(req.params.room);
    if (!view) return reply.code(404).send({ error: 'unknown_room', message: 'There is no such room.' });
    const captchaToken = req.body?.captchaToken;
    const headers = req.headers as Record<string, string>;
    const given = [cookieVid(headers.cookie), headers['x-visitor-id']].find((v) => isValidVisitorId(config.visitorSecret, v));
    const vid = given ?? mintVisitorId(config.visitorSecret);
    const verdict = await defence.beforeJoin({
      room: view.cfg, socketIp: req.socket.remoteAddress ?? '', headers, visitorId: vid, newVisitor: !given, captchaToken, now,
    });
    reply.header('set-cookie', visitorCookie(vid, false));
    if (verdict.kind !== 'continue') return reply.code(verdict.kind === 'rate_limited' ? 429 : 403).send({ error: verdict.kind, message: verdict.kind });
    const r = await new JoinBatcher(redis, config.redisPrefix, Date.now, metrics, draws).join(view, {
      vid, ip: verdict.ip, subnet: verdict.subnet, allowListed: verdict.allowListed,
      headerScore: verdict.headerScore, captchaPassed: verdict.captchaPassed,
    });
    if (r.code !== 'new' && r.code !== 'have' && r.code !== 'pre') {
      return reply.code(r.code === 'rate_limited' ? 429 : r.code === 'captcha_required' ? 403 : 409).send({ error: r.code, message: r.code });
    }
    return { ticket: r.ticket, position: r.position, state: view.state, visitorId: vid };
  });

  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const addr = app.server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    async close() {
      rooms.stop();
      await app.close();
      await defence.close();
      redis.disconnect();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const b = await startBaseline({ env: { ...process.env } as Record<string, string>, port: 8090 });
  console.log(`baseline join route on http://127.0.0.1:${b.port}/api/rooms/:room/join (Ctrl-C stops)`);
  process.once('SIGINT', () => { b.close().finally(() => process.exit(0)); });
}
