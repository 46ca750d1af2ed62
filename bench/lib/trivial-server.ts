/**
 * The trivial endpoint the load generator is checked against: a uWebSockets.js server that
 * reads the request body and answers a small JSON body, with no Redis behind it. What the load
 * generator reaches here is its own ceiling on this machine; a figure measured against a real
 * server far below it says the server, not the generator, was the limit.
 */
import uWS from 'uWebSockets.js';

export async function startTrivial(): Promise<{ port: number; close(): Promise<void> }> {
  const app = uWS.App();
  app.any('/*', (res, _req) => {
    res.onAborted(() => undefined);
    res.onData((_chunk, last) => {
      if (last) res.cork(() => res.writeHeader('content-type', 'application/json').end('{"ticket":1,"position":1,"state":"open","visitorId":"x"}'));
    });
  });
  const listen = await new Promise<uWS.us_listen_socket>((resolve, reject) =>
    app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('trivial server could not listen')))));
  return {
    port: uWS.us_socket_local_port(listen),
    async close() { uWS.us_listen_socket_close(listen); },
  };
}
