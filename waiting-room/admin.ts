/**
 * The operator API (CONTRACT.md section 4), under /admin/ with `authorization: Bearer
 * <ADMIN_TOKEN>` compared in constant time. Room changes are compare-and-set in Redis
 * (lua/saveRoomConfig) with an audit entry, and nudge every process over pub/sub.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import { readJson, route, type Handler, type Reply, type Req } from './http.js';
import { defaultRoomConfig, ROOM_NAME, withNewDefaults, type RoomConfig } from './room-config.js';
import { applyPatch, validateRoomPatch, type Patch } from './room-validate.js';
import { configChannel, roomsSetKey } from './rooms.js';
import { orderFairness } from './fairness.js';
import { queueKeys, queueSnapshot } from './scripts.js';
import type { GatewayContext } from './server.js';

const AUDIT_CAP = 1000;
const sha = (s: string) => createHash('sha256').update(s).digest();

export function isAdmin(adminToken: string, header: string | undefined): boolean {
  const given = header?.startsWith('Bearer ') ? header.slice(7) : '';
  return timingSafeEqual(sha(given), sha(adminToken)) && given.length > 0;
}

export type SaveResult = { ok: true; cfg: RoomConfig; created: boolean } | { ok: false; field: string; message: string };

/** Create or update a room: merge, compare-and-set (retrying on a concurrent writer), audit, nudge. */
export async function saveRoom(ctx: GatewayContext, room: string, patch: Patch, action: string): Promise<SaveResult> {
  const k = queueKeys(ctx.prefix, room);
  for (let attempt = 0; attempt < 10; attempt++) {
    const raw = await ctx.redis.get(k.cfg);
    const cur = raw ? withNewDefaults(JSON.parse(raw) as RoomConfig) : defaultRoomConfig(room, ctx.config.checkoutUrl, new Date(ctx.clock()));
    const { next, changes } = applyPatch(cur, patch);
    if (next.closesAt && Date.parse(next.closesAt) <= Date.parse(next.opensAt)) {
      return { ok: false, field: 'closesAt', message: 'closesAt must be after opensAt.' };
    }
    if (raw && changes.length === 0) return { ok: true, cfg: cur, created: false };
    next.version = cur.version + 1;
    next.updatedAt = new Date(ctx.clock()).toISOString();
    const entry = { at: next.updatedAt, action: raw ? action : 'create', version: next.version, changes };
    const movesOpensAt = raw !== null && next.opensAt !== cur.opensAt ? '1' : '0';
    const saved = await ctx.redis.saveRoomConfig(k.cfg, k.audit, k.q, raw ? cur.version : 0, JSON.stringify(next), JSON.stringify(entry), AUDIT_CAP, movesOpensAt);
    if (saved === -1) {
      return { ok: false, field: 'opensAt', message: 'opensAt cannot change once the room has opened: its pre-queue has been drawn. Use a new room for a new drop.' };
    }
    if (saved !== 1) continue;
    await ctx.redis.sadd(roomsSetKey(ctx.prefix), room);
    await ctx.redis.publish(configChannel(ctx.prefix), room);
    ctx.rooms.put(next);
    ctx.log.info({ room, ...entry }, 'room config changed');
    return { ok: true, cfg: next, created: !raw };
  }
  throw new Error(`room ${room}: too many concurrent config writers`);
}

export async function roomStats(ctx: GatewayContext, room: string) {
  const k = queueKeys(ctx.prefix, room);
  const now = ctx.clock();
  const sec = Math.floor(now / 1000);
  const p = ctx.redis.pipeline();
  for (let s = sec - 59; s <= sec; s++) p.hget(k.sec(s * 1000), 'arrivals');
  const [perSec, totals, snap, active, fair, arrivals] = await Promise.all([
    p.exec(),
    ctx.redis.hgetall(k.stats),
    queueSnapshot(ctx.redis, ctx.prefix, room),
    ctx.redis.zcount(k.active, now, '+inf'),
    ctx.redis.hmget(k.q, 'fsum', 'fn', 'N'),
    ctx.redis.lrange(k.fairPost, 0, -1),
  ]);
  const post = orderFairness(arrivals.map(Number));
  const n = (f: string) => Number(totals[f] ?? 0);
  const passed = n('captcha_passed');
  const failed = n('captcha_failed');
  const fsum = Number(fair[0] ?? 0);
  const fn = Number(fair[1] ?? 0);
  return {
    room,
    arrivalsPerSecond: (perSec ?? []).map(([, v], i) => ({ at: new Date((sec - 59 + i) * 1000).toISOString(), arrivals: Number(v ?? 0) })),
    arrivals: n('arrivals'), joined: n('joined'), queued: snap.queued, admitted: n('admitted'), admittedThrough: snap.at, active,
    challenged: n('challenged'), challengePassRate: passed + failed > 0 ? passed / (passed + failed) : null,
    captchaPassed: passed, captchaFailed: failed, captchaUnavailable: n('captcha_unavailable'), rateLimited: n('rate_limited'), blocked: n('blocked'),
    fairness: {
      // Of the pre-queue visitors admitted so far, their mean join percentile: 0.5 means joining the
      // pre-queue early was worth nothing (FIFO would give about 0 for the first admitted).
      prequeue: Number(fair[2] ?? 0), prequeueAdmitted: fn, meanJoinPercentileOfAdmitted: fn > 0 ? fsum / fn : null,
      // After open, over the last admitted post-open tickets (fairness.ts): Kendall tau between
      // arrival and admission order (1 = strict FIFO) and how many pairs were admitted out of order.
      kendallTau: post.kendallTau, overtakes: post.overtakes, sample: post.sample,
    },
  };
}

export function registerAdminRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  const admin = (method: 'get' | 'post' | 'put', pattern: string, fn: Handler) =>
    route(app, method, pattern, ctx.log, async (req, reply, body) => {
      if (!isAdmin(ctx.config.adminToken, req.headers.authorization)) return reply.error('unauthorized');
      return fn(req, reply, body);
    });
  const knownRoom = async (req: Req, reply: Reply) => {
    const room = req.params[0] ?? '';
    const view = ROOM_NAME.test(room) ? await ctx.rooms.find(room) : undefined;
    if (!view) reply.error('unknown_room');
    return view;
  };

  admin('get', '/admin/rooms', async (_req, reply) => {
    await ctx.rooms.refresh();
    reply.json(200, { rooms: ctx.rooms.list().map((v) => ({ ...v.cfg, state: v.state, held: v.held })) });
  });

  admin('get', '/admin/rooms/:room', async (req, reply) => {
    const view = await knownRoom(req, reply);
    if (view) reply.json(200, { ...view.cfg, state: view.state, held: view.held });
  });

  admin('put', '/admin/rooms/:room', async (req, reply, body) => {
    const json = await readJson(reply.res, req, reply, body!);
    if (!json) return;
    const room = req.params[0] ?? '';
    if (!ROOM_NAME.test(room)) return reply.error('bad_request', { field: 'room' }, 'A room name is 1-64 letters, digits, "_" or "-".');
    const v = validateRoomPatch(room, json);
    if (!v.ok) return reply.error('bad_request', { field: v.field }, v.message);
    const r = await saveRoom(ctx, room, v.patch, 'update');
    if (!r.ok) return reply.error('bad_request', { field: r.field }, r.message);
    const view = ctx.rooms.get(room)!;
    reply.json(r.created ? 201 : 200, { ...r.cfg, state: view.state, held: view.held });
  });

  for (const [action, paused] of [['pause', true], ['resume', false]] as const) {
    admin('post', `/admin/rooms/:room/${action}`, async (req, reply, body) => {
      if (!(await readJson(reply.res, req, reply, body!))) return;
      if (!(await knownRoom(req, reply))) return;
      const r = await saveRoom(ctx, req.params[0]!, { paused }, action);
      if (!r.ok) return reply.error('bad_request', { field: r.field }, r.message);
      const view = ctx.rooms.get(req.params[0]!)!;
      reply.json(200, { room: view.cfg.room, state: view.state, paused: view.cfg.paused, version: view.cfg.version });
    });
  }

  admin('get', '/admin/rooms/:room/audit', async (req, reply) => {
    if (!(await knownRoom(req, reply))) return;
    const entries = await ctx.redis.lrange(queueKeys(ctx.prefix, req.params[0]!).audit, 0, -1);
    reply.json(200, { entries: entries.map((e) => JSON.parse(e) as unknown) });
  });

  admin('get', '/admin/rooms/:room/stats', async (req, reply) => {
    if (!(await knownRoom(req, reply))) return;
    reply.json(200, await roomStats(ctx, req.params[0]!));
  });

  admin('get', '/admin/rooms/:room/recording', async (req, reply) => {
    if (!(await knownRoom(req, reply))) return;
    const text = await ctx.recorder.read(req.params[0]!);
    if (text === null) return reply.error('not_found', {}, 'This room has no recording.');
    reply.send(200, text, { 'content-type': 'application/x-ndjson' });
  });

  admin('post', '/admin/keys/rotate', async (req, reply, body) => {
    if (!(await readJson(reply.res, req, reply, body!))) return;
    const kid = await ctx.keys.rotate();
    ctx.log.info({ kid }, 'signing key rotated');
    reply.json(200, { kid, keys: ctx.keys.jwks().keys.map((k) => k.kid) });
  });
}
