/** Lookups every public route makes: the room named in the URL, the visitor the request speaks for. */
import type { Config } from '../../shared/config.js';
import type { GatewayContext } from '../context.js';
import { readCookie } from '../defence/captcha.js';
import { queryParam, type Reply } from '../http.js';
import { ROOM_NAME } from '../room-config.js';
import type { RoomView } from '../rooms.js';
import { isValidVisitorId, VISITOR_COOKIE } from '../visitor.js';

/**
 * The room, or null after answering 404 unknown_room: at once when this process knows the room (a
 * hot route can skip the await: `found instanceof Promise`), else a promise of Redis's answer.
 */
export function findRoom(ctx: GatewayContext, name: string | undefined, reply: Reply): RoomView | null | Promise<RoomView | null> {
  if (!name || !ROOM_NAME.test(name)) { reply.error('unknown_room'); return null; }
  const known = ctx.rooms.get(name);
  if (known) return known;
  return ctx.rooms.find(name).then((view) => {
    if (!view) { reply.error('unknown_room'); return null; }
    return view;
  });
}

/** The signed visitor id from the cookie, else `x-visitor-id`, else (WebSocket only) `?vid=`. */
export function visitorFrom(config: Config, headers: Record<string, string>, query?: string): string | null {
  const candidates = [readCookie(headers.cookie, VISITOR_COOKIE), headers['x-visitor-id'], query ? queryParam(query, 'vid') : undefined];
  for (const c of candidates) if (isValidVisitorId(config.visitorSecret, c)) return c;
  return null;
}
