/**
 * The HTML pages the gateway serves: the shopper's queue page (with the shop's shared look,
 * shared/shop-page.ts), the operator console, and `GET /rooms?sale=<sale>`, the way into the
 * queue of a sale: checkout links a shopper who has no admission there (docs/queue-page.md).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type uWS from 'uWebSockets.js';
import { shopCss, withShopStyle } from '../../shared/shop-page.js';
import type { GatewayContext } from '../context.js';
import { queryParam, route, type Handler } from '../http.js';
import type { RoomState, RoomView } from '../rooms.js';

const PAGES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'pages');
const HTML = { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' };

const page = (file: string, shop = false): Handler => async (_req, reply) => {
  let html: string;
  try {
    html = await readFile(path.join(PAGES_DIR, file), 'utf8');
  } catch {
    return reply.send(404, `The page ${file} is not built yet.`, { 'content-type': 'text/plain; charset=utf-8' });
  }
  reply.send(200, shop ? withShopStyle(html) : html, HTML);
};

/** Which of a sale's rooms a shopper is sent to: the one that can still let them in. */
const STATE_RANK: Record<RoomState, number> = { open: 0, paused: 1, prequeue: 2, scheduled: 3, sold_out: 4, closed: 5 };

/** The room guarding `sale` (room config `sale`): the most useful state first, then the latest to open. */
export function roomForSale(rooms: RoomView[], sale: string): RoomView | undefined {
  return rooms
    .filter((v) => v.cfg.sale === sale)
    .sort((a, b) => STATE_RANK[a.state] - STATE_RANK[b.state] || Date.parse(b.cfg.opensAt) - Date.parse(a.cfg.opensAt) || a.cfg.room.localeCompare(b.cfg.room))[0];
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The shop-styled page a shopper sees when no room guards the sale they came from. */
function noRoomPage(sale: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><meta name="robots" content="noindex"><link rel="icon" href="data:,"><title>No waiting room · ${esc(sale)}</title>
<style data-shop>${shopCss()}</style></head><body>
<header class="shop-top"><div class="shop-mark" aria-hidden="true">W</div><div class="shop-brand"><span>Waiting room</span><small>Virtual waiting room</small></div></header>
<main class="shop-main shop-card"><h1 style="font-size:24px;margin:0 0 8px">There is no waiting room for this sale</h1>
<p style="margin:0;color:var(--muted)">No queue lets shoppers into “${esc(sale)}” right now. Check the link you followed, or go back to the store.</p></main>
</body></html>`;
}

export function registerPageRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  route(app, 'get', '/rooms/:room', ctx.log, page('queue.html', true));
  route(app, 'get', '/admin', ctx.log, page('console.html'));
  route(app, 'get', '/rooms', ctx.log, async (req, reply) => {
    const sale = queryParam(req.query, 'sale') ?? '';
    const view = sale ? roomForSale(ctx.rooms.list(), sale) : undefined;
    if (!view) {
      // A browser (it asks for HTML) reads the shop's page; any other client gets the contract's error.
      if (/\btext\/html\b/i.test(req.headers.accept ?? '')) return reply.send(404, noRoomPage(sale), HTML);
      return reply.error('not_found', {}, sale ? 'No waiting room guards this sale.' : 'Say which sale: /rooms?sale=<sale>.');
    }
    reply.send(302, '', { location: `/rooms/${encodeURIComponent(view.cfg.room)}`, 'cache-control': 'no-store' });
  });
}
