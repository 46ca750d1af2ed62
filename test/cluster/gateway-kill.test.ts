/**
 * A gateway process SIGKILLed under its WebSocket clients (docs/api.md section 6): three
 * `npm run gateway` processes share one port on a Redis Cluster of three masters with a replica
 * each; shoppers wait on the real queue page in headless Chromium. The process holding the most
 * connections is killed: every page whose socket it held reconnects by itself to another process
 * (the kernel hands the new connection to a live one), shows the same ticket and place, and once
 * the room admits, lands on checkout with a token for its own ticket, the same token /claim hands
 * out on any process.
 */
import t from 'tap';
import type { Page, WebSocket as PageSocket } from 'playwright-core';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { ADMIN } from '../gateway/helpers.js';
import { checkoutStub, launch, open, pageErrors } from '../pages/harness.js';
import { redisCluster } from './harness.js';
import { connectionsByPid, putRoom, serviceEnv, sleep, startGateways, timedCall } from './faults.js';

const PAGES = 8;

interface Shopper { page: Page; sockets: PageSocket[]; closed: number; vid: string; ticket: number; position: string }

const placeShown = (page: Page) => page.evaluate(() => ({
  ticket: (window as unknown as { __waitingRoom: { ticket: number } }).__waitingRoom.ticket,
  position: document.getElementById('posBig')?.textContent ?? '',
  conn: document.getElementById('connText')?.textContent ?? '',
}));

t.test('a gateway SIGKILLed: its queue pages reconnect to another process, keep their place, and get their token there', async (t) => {
  const cluster = await redisCluster(t, { replicas: 1 });
  const env = serviceEnv(cluster.seeds);
  const gws = await startGateways(t, 3, env);
  const checkout = await checkoutStub(t);
  await putRoom(gws.url, 'drop', { opensAt: new Date(Date.now() - 60_000).toISOString(), prequeueSeconds: 0, admitRatePerMin: 6000, maxActive: 1000, checkoutUrl: `${checkout}/sales/drop` });
  // Paused: everyone joins and waits; nobody is admitted until the room resumes.
  const admin = (action: string) => timedCall(`${gws.url}/admin/rooms/drop/${action}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
  t.equal((await admin('pause')).status, 200, 'room paused');
  await sleep(2500); // every process hears the pause within 2 s (contract section 4)

  const browser = await launch(t);
  const shoppers: Shopper[] = [];
  for (let i = 0; i < PAGES; i++) {
    const page = await open(browser);
    const s: Shopper = { page, sockets: [], closed: 0, vid: '', ticket: 0, position: '' };
    page.on('websocket', (ws) => { s.sockets.push(ws); ws.on('close', () => { s.closed++; }); });
    await page.goto(`${gws.url}/rooms/drop`);
    shoppers.push(s);
  }
  for (const s of shoppers) {
    await s.page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Live' && /^#\d+$/.test(document.getElementById('posBig')?.textContent ?? ''));
    const shown = await placeShown(s.page);
    s.vid = await s.page.evaluate(() => localStorage.getItem('wr:vid') ?? '');
    s.ticket = shown.ticket;
    s.position = shown.position;
  }
  t.same(shoppers.map((s) => s.ticket).sort((a, b) => a - b), Array.from({ length: PAGES }, (_, i) => i + 1), `${PAGES} pages joined, tickets 1..${PAGES}`);
  t.same(shoppers.map((s) => s.position), shoppers.map((s) => `#${s.ticket}`), 'each shows its place');

  // Kill the process holding the most connections; should none of the pages' sockets have been
  // on it (they were all HTTP ones), kill the next, always leaving one alive.
  const alive = [...gws.list];
  const lost = () => shoppers.filter((s) => s.closed > 0);
  while (lost().length === 0 && alive.length > 1) {
    const by = connectionsByPid(gws.port);
    alive.sort((a, b) => (by.get(b.pid) ?? 0) - (by.get(a.pid) ?? 0));
    const victim = alive.shift()!;
    t.comment(`SIGKILL ${victim.name} (pid ${victim.pid}), holding ${by.get(victim.pid) ?? 0} of the port's connections`);
    await victim.kill();
    await sleep(1000);
  }
  const cut = lost();
  t.ok(cut.length > 0, `${cut.length} of ${PAGES} pages had their WebSocket on a killed process`);

  // Each reconnects by itself, to a live process, and keeps its ticket and place.
  for (const s of cut) {
    await s.page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Live', undefined, { timeout: 20_000 });
    t.ok(s.sockets.length >= 2, `ticket ${s.ticket}: the page opened a new WebSocket by itself (${s.sockets.length} in all)`);
    const shown = await placeShown(s.page);
    t.same({ ticket: shown.ticket, position: shown.position }, { ticket: s.ticket, position: s.position }, `ticket ${s.ticket}: same ticket and place after reconnecting`);
    const me = await timedCall(`${gws.url}/api/rooms/drop/me`, { headers: { 'x-visitor-id': s.vid } });
    t.match(me, { status: 200, body: { ticket: s.ticket, position: s.ticket } }, `ticket ${s.ticket}: /me on a live process agrees`);
  }
  for (const s of shoppers) {
    const j = await timedCall(`${gws.url}/api/rooms/drop/join`, { method: 'POST', headers: { 'x-visitor-id': s.vid, 'content-type': 'application/json' }, body: '{}' });
    t.equal(j.body.ticket, s.ticket, `ticket ${s.ticket}: joining again through a live process keeps the ticket`);
  }

  // Admission: the surviving processes admit; every page lands on checkout with its own token.
  t.equal((await admin('resume')).status, 200, 'room resumed');
  const jwks = createLocalJWKSet((await (await fetch(`${gws.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet);
  for (const s of shoppers) {
    await s.page.waitForURL((u) => u.origin === checkout, { timeout: 30_000 });
    const url = new URL(s.page.url());
    t.match(url.hash, /^#admission=/, `ticket ${s.ticket}: on checkout with an admission token`);
    const token = decodeURIComponent(url.hash.slice('#admission='.length));
    const { payload } = await jwtVerify(token, jwks, { issuer: 'waiting-room', audience: 'checkout' });
    t.match(payload, { sub: s.vid, room: 'drop', ticket: s.ticket }, `ticket ${s.ticket}: the token is its own`);
    const claim = await timedCall(`${gws.url}/api/rooms/drop/claim`, { method: 'POST', headers: { 'x-visitor-id': s.vid, 'content-type': 'application/json' }, body: '{}' });
    t.equal(claim.body.token, token, `ticket ${s.ticket}: /claim on a live process gives the same token`);
    t.same(pageErrors(s.page), [], `ticket ${s.ticket}: no page errors`);
  }
});
