/**
 * The public routes of the verifiable draw and the fairness report (docs/api.md section 8):
 *   GET /api/rooms/:room/draw?after=N&limit=L   the drawn entrants in ticket order, once open
 *   GET /api/rooms/:room/report                 the signed fairness report, once closed or sold out
 *   GET /rooms/:room/draw                       the in-browser verifier page (WebCrypto)
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type uWS from 'uWebSockets.js';
import { entrantId, memberVisitor } from '../draw.js';
import { queryParam, route, type Reply } from '../http.js';
import { buildReport } from '../report.js';
import { ROOM_NAME } from '../room-config.js';
import { DrawQuery, validator } from '../schemas.js';
import type { RoomView } from '../rooms.js';
import { roomKeys } from '../../shared/keys.js';
import type { GatewayContext } from '../context.js';

const PAGE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'pages', 'draw.html');

const checkDrawQuery = validator(DrawQuery);
/** A query parameter of DrawQuery: its default when absent, a number when it is digits (the schema checks the range), else the text (refused). */
function intParam(query: string, name: keyof typeof DrawQuery.properties): number | string {
  const raw = queryParam(query, name);
  if (raw === undefined) return (DrawQuery.properties[name] as unknown as { default: number }).default;
  return /^\d{1,15}$/.test(raw) ? Number(raw) : raw;
}

export function registerDrawRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  const findRoom = async (name: string | undefined, reply: Reply): Promise<RoomView | null> => {
    const view = name && ROOM_NAME.test(name) ? await ctx.rooms.find(name) : undefined;
    if (!view) { reply.error('unknown_room'); return null; }
    return view;
  };

  route(app, 'get', '/api/rooms/:room/draw', ctx.log, async (req, reply) => {
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    const q = { after: intParam(req.query, 'after'), limit: intParam(req.query, 'limit') };
    const v = checkDrawQuery(q);
    if (!v.ok) return reply.error('bad_request', { field: v.field }, v.message);
    const { after, limit } = q as { after: number; limit: number };
    const k = roomKeys(ctx.prefix, view.cfg.room);
    const n = await ctx.draws.openedCount(view.cfg.room, k.q);
    if (n === null) return reply.error('not_open', { opensAt: view.cfg.opensAt }, 'The draw is revealed when the room opens.');
    const members = after >= n ? [] : await ctx.redis.zrange(k.pre, String(after), String(Math.min(n, after + limit) - 1));
    const entrants = members.map((m, i) => ({ ticket: after + 1 + i, entrantId: entrantId(memberVisitor(m)) }));
    const last = after + entrants.length;
    // The list never changes once open: caches may keep it.
    reply.json(200, { entrants, next: last < n ? last : null }, { 'cache-control': 'public, max-age=300' });
  });

  route(app, 'get', '/api/rooms/:room/report', ctx.log, async (req, reply) => {
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    if (view.state !== 'closed' && view.state !== 'sold_out') {
      return reply.error('not_yet', { state: view.state }, 'The fairness report is published once the room has closed or sold out.');
    }
    reply.json(200, await buildReport(ctx, view));
  });

  route(app, 'get', '/rooms/:room/draw', ctx.log, async (_req, reply) => {
    reply.send(200, await readFile(PAGE), { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
  });
}
