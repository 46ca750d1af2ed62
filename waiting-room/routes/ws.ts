/**
 * `WS /api/rooms/:room/ws`: the upgrade finds the room and the visitor (cookie on a same-origin
 * upgrade, `x-visitor-id`, or `?vid=` for cookieless clients), then hands the socket to Live.
 * Clients send nothing the contract defines: their frames are ignored.
 */
import type uWS from 'uWebSockets.js';
import type { GatewayContext } from '../context.js';
import { copyRequest, faultCode, noteRoute, Reply } from '../http.js';
import type { WsData } from '../live.js';
import { findRoom, visitorFrom } from './common.js';
import { throttledWarn } from '../../shared/log.js';

export function registerWsRoute(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  const { config, log, live } = ctx;
  const unavailableWarn = throttledWarn(log);
  /** Run a socket callback; a bug in it is logged, never thrown into uWS (one throw ends the process). */
  const guarded = <A extends unknown[]>(what: string, fn: (...a: A) => void) => (...a: A): void => {
    try { fn(...a); } catch (err) { log.error({ err }, `websocket ${what} failed`); }
  };

  noteRoute(app, 'get', '/api/rooms/:room/ws');
  app.ws<WsData>('/api/rooms/:room/ws', {
    maxPayloadLength: 1024,
    maxBackpressure: 64 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const reply = new Reply(res);
      try {
        const r = copyRequest(res, req, 1);
        if (!r) return reply.error('bad_request', {}, 'The URL has a malformed percent-escape.');
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        (async () => {
          const view = await findRoom(ctx, r.params[0], reply);
          if (!view || reply.aborted) return;
          const vid = visitorFrom(config, r.headers, r.query) ?? '';
          // No script per connect: the connects of one turn share one HMGET of tickets (live.ts place).
          const place = vid ? await live.place(view.cfg.room, vid) : null;
          if (reply.aborted || reply.done) return;
          const data: WsData = { room: view.cfg.room, vid, ticket: place?.kind === 'ticket' ? place.ticket : 0, admitted: false, closed: false, shown: -1, counted: false };
          reply.done = true;
          res.cork(() => res.upgrade(data, key, protocol, extensions, context));
        })().catch((err: unknown) => {
          const code = faultCode(err);
          // Redis away is a 503 the client retries, as on every other route: a warning, not an error.
          if (code === 'internal') log.error({ err, url: r.url }, 'websocket upgrade failed');
          else unavailableWarn({ err: err instanceof Error ? err.message : String(err), url: r.url }, 'websocket upgrade failed: redis unavailable');
          reply.error(code);
        });
      } catch (err) {
        log.error({ err }, 'websocket upgrade failed');
        reply.error('internal');
      }
    },
    open: guarded('open', (ws: uWS.WebSocket<WsData>) => live.add(ws)),
    message: () => {},
    drain: () => {},
    close: guarded('close', (ws: uWS.WebSocket<WsData>) => live.remove(ws)),
  });
}
