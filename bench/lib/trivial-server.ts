/**
 * The trivial endpoints the load generators are checked against, with no Redis behind them:
 * - HTTP: reads the request body and answers a small JSON body. What the load generator reaches
 *   here is its own ceiling on this machine; a figure measured against a real server far below
 *   it says the server, not the generator, was the limit.
 * - WebSocket `/api/rooms/:room/ws`: every socket joins one topic; the `publish` command sends one
 *   position-shaped message to all of them with a single uWS publish. How long the WebSocket
 *   fleet takes to see that is the floor of any fan-out measured with the same clients.
 */
import { performance } from 'node:perf_hooks';
import uWS from 'uWebSockets.js';
import type { Started } from './server-child.js';

export async function startTrivial(): Promise<Started> {
  const app = uWS.App();
  app.any('/*', (res, _req) => {
    res.onAborted(() => undefined);
    res.onData((_chunk, last) => {
      if (last) res.cork(() => res.writeHeader('content-type', 'application/json').end('{"ticket":1,"position":1,"state":"open","visitorId":"x"}'));
    });
  });
  app.ws('/api/rooms/:room/ws', {
    idleTimeout: 120,
    sendPingsAutomatically: true,
    open: (ws) => { ws.subscribe('room'); },
  });
  let admittedThrough = 0;
  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('trivial server could not listen')))));
  return {
    port: uWS.us_socket_local_port(listen),
    async close() { uWS.us_listen_socket_close(listen); },
    commands: {
      /** One room-wide message; answers when it was published (wall-clock ms) and how long publish took. */
      publish() {
        const t = performance.timeOrigin + performance.now();
        app.publish('room', JSON.stringify({ type: 'position', admittedThrough: ++admittedThrough, queued: 0, state: 'open' }));
        return { t, admittedThrough, publishMs: performance.timeOrigin + performance.now() - t };
      },
    },
  };
}
