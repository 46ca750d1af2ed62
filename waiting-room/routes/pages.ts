/** The HTML pages the gateway serves: the shopper's queue page and the operator console. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type uWS from 'uWebSockets.js';
import type { GatewayContext } from '../context.js';
import { route, type Handler } from '../http.js';

const PAGES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'pages');

const page = (file: string): Handler => async (_req, reply) => {
  try {
    reply.send(200, await readFile(path.join(PAGES_DIR, file)), { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
  } catch {
    reply.send(404, `The page ${file} is not built yet.`, { 'content-type': 'text/plain; charset=utf-8' });
  }
};

export function registerPageRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  route(app, 'get', '/rooms/:room', ctx.log, page('queue.html'));
  route(app, 'get', '/admin', ctx.log, page('console.html'));
}
