/**
 * The operator API (docs/api.md section 4), under /admin/ with `authorization: Bearer
 * <ADMIN_TOKEN>`: rooms (create/update, pause/resume, audit, stats, recording) and key rotation.
 */
import type uWS from 'uWebSockets.js';
import { isAdmin, roomStats, saveRoom } from '../admin.js';
import type { GatewayContext } from '../context.js';
import { readJson, route, type Handler, type Reply, type Req } from '../http.js';
import { ROOM_NAME } from '../room-config.js';
import { validateRoomPatch } from '../room-validate.js';
import { roomKeys } from '../../shared/keys.js';

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
    const entries = await ctx.redis.lrange(roomKeys(ctx.prefix, req.params[0]!).audit, 0, -1);
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
