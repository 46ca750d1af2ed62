/**
 * The shopper's queue page (GET /rooms/:room) in headless Chromium against the real gateway and
 * Redis: the position falls as others are admitted and the page ends on checkout with
 * `#admission=<token>` (a token that verifies against the JWKS); with the WebSocket blocked,
 * polling alone gets there; pre-queue, scheduled, paused, held, sold out; CAPTCHA; rate limits.
 */
import t from 'tap';
import type { Page } from 'playwright-core';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { saleStockKey, stockChannel } from '../../shared/keys.js';
import { startFakeSiteverify } from '../../waiting-room/defence/fake-siteverify.js';
import { manualClock, OPEN_LIMITS } from '../gateway/helpers.js';
import { checkoutStub, fakeHcaptcha, launch, open, pageErrors, shot, shots, stack, type Stack } from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();
const text = (page: Page, sel: string) => page.locator(sel).innerText();
const visitorId = (page: Page) => page.evaluate(() => localStorage.getItem('wr:vid') ?? '');

async function me(s: Stack, room: string, vid: string) {
  const res = await fetch(`${s.gw.url}/api/rooms/${room}/me`, { headers: { 'x-visitor-id': vid } });
  return (await res.json()) as { position: number | null; admitted: boolean; ticket: number | null };
}

async function showsPosition(page: Page, position: number) {
  await page.waitForFunction((p) => document.getElementById('posBig')?.textContent === '#' + p.toLocaleString(), position);
}

t.test('the position falls as others are admitted, then the page forwards to checkout with the token', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false });
  const checkout = await checkoutStub(t);
  await s.admin('PUT', '/admin/rooms/drop', {
    ...OPEN_LIMITS, opensAt: iso(clock.now() - 60_000), prequeueSeconds: 0, admitRatePerMin: 600, maxActive: 1000,
    checkoutUrl: `${checkout}/sales/drop`,
  });
  const ahead = await Promise.all(Array.from({ length: 49 }, () => s.join('drop')));
  t.same(ahead.map((a) => a.body.ticket).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 49 }, (_, i) => i + 1));

  const browser = await launch(t);
  const page = await open(browser);
  const sockets: string[] = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  await page.goto(`${s.gw.url}/rooms/drop`);
  await showsPosition(page, 50);
  t.equal(await text(page, '#posText'), 'You are number 50 in line');
  t.equal(await text(page, '#ahead'), '49');
  t.match(await page.title(), /^#50 in line · Drop$/);
  t.equal(await page.locator('[role=progressbar]').getAttribute('aria-valuenow'), '0');
  t.equal(await page.locator('#posText').evaluate((e) => e.closest('[aria-live]')?.getAttribute('aria-live')), 'polite');
  await page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Live');
  const vid = await visitorId(page);
  t.ok(vid, 'the visitor id is kept in localStorage');
  t.ok(sockets.length > 0 && sockets.every((u) => !u.includes('vid=')), `the WebSocket URL carries no visitor id (the cookie does): ${sockets.join(', ')}`);
  t.equal((await me(s, 'drop', vid)).ticket, 50, 'the page joined as the 50th');

  // admit in steps; after each, the page shows exactly what the API says, and never more
  const seen: number[] = [50];
  for (;;) {
    clock.advance(1000);
    await s.gw.admitOnce!();
    const place = await me(s, 'drop', vid);
    if (place.admitted) break;
    if (place.position === seen.at(-1)) continue; // the first tick only starts the rate's clock
    await s.gw.positionsOnce!();
    await showsPosition(page, place.position!);
    seen.push(place.position!);
    const pct = Number(await page.locator('[role=progressbar]').getAttribute('aria-valuenow'));
    t.equal(pct, Math.round(((50 - place.position!) / 50) * 100), `progress at #${place.position}`);
    if (place.position === 30) {
      await shots(page, 'queue-waiting');
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'queue-waiting-dark-phone');
      await page.emulateMedia({ colorScheme: 'light' });
      await page.setViewportSize({ width: 360, height: 740 });
      t.equal(await page.evaluate(() => document.documentElement.scrollWidth), 360, 'nothing overflows 360 px');
      await page.setViewportSize({ width: 390, height: 844 });
    }
  }
  t.ok(seen.length >= 3, `several positions were shown: ${seen.join(' → ')}`);
  t.ok(seen.every((p, i) => i === 0 || p < seen[i - 1]!), 'each shown position is below the one before');
  t.equal(seen.at(-1)! <= 10, true, 'the last position shown was within one admission step of the front');

  // the admitted message (pushed by the next position round) → "It's your turn!" → checkout
  await s.gw.positionsOnce!();
  await page.waitForFunction(() => !document.getElementById('turnView')!.hidden);
  t.equal(await text(page, '#headline'), 'It’s your turn!');
  t.match(await text(page, '#turnExp'), /held until/);
  const href = await page.locator('#goBtn').getAttribute('href');
  await shots(page, 'queue-admitted');
  await page.waitForURL((u) => u.origin === checkout, { timeout: 10_000 });
  const url = new URL(page.url());
  t.equal(url.pathname, '/sales/drop');
  t.match(url.hash, /^#admission=/);
  t.equal(page.url(), href, 'forwarded to what the button pointed at');
  const token = decodeURIComponent(url.hash.slice('#admission='.length));

  const jwks = (await (await fetch(`${s.gw.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: 'waiting-room', audience: 'checkout', currentDate: new Date(clock.now()) });
  t.match(payload, { sub: vid, room: 'drop', sale: 'drop', ticket: 50 });
  const claim = await fetch(`${s.gw.url}/api/rooms/drop/claim`, { method: 'POST', headers: { 'x-visitor-id': vid, 'content-type': 'application/json' }, body: '{}' });
  t.equal(((await claim.json()) as { token: string }).token, token, 'the same token /claim hands out');
  t.same(pageErrors(page), []);
});

t.test('with the WebSocket blocked, polling /me alone carries the visitor to checkout', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false });
  const checkout = await checkoutStub(t);
  await s.admin('PUT', '/admin/rooms/nows', {
    ...OPEN_LIMITS, opensAt: iso(clock.now() - 60_000), prequeueSeconds: 0, admitRatePerMin: 600, checkoutUrl: `${checkout}/go`,
  });
  await Promise.all([s.join('nows'), s.join('nows'), s.join('nows')]);
  const browser = await launch(t);
  const page = await open(browser);
  let wsTries = 0;
  await page.routeWebSocket(/\/api\/rooms\/nows\/ws/, (ws) => { wsTries++; ws.close({ code: 1006 }); });
  await page.goto(`${s.gw.url}/rooms/nows`);
  await showsPosition(page, 4);
  await page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Updating every few seconds');

  const vid = await visitorId(page);
  for (let step = 0; step < 5 && !(await me(s, 'nows', vid)).admitted; step++) {
    clock.advance(1000);
    await s.gw.admitOnce!();
  }
  t.equal((await me(s, 'nows', vid)).admitted, true);
  await page.waitForURL((u) => u.origin === checkout, { timeout: 15_000 });
  const token = decodeURIComponent(new URL(page.url()).hash.slice('#admission='.length));
  const claim = await fetch(`${s.gw.url}/api/rooms/nows/claim`, { method: 'POST', headers: { 'x-visitor-id': vid, 'content-type': 'application/json' }, body: '{}' });
  t.equal(((await claim.json()) as { token: string }).token, token, 'the claimed token');
  t.ok(wsTries >= 2, `the page kept trying the socket with backoff (${wsTries} tries)`);
  t.same(pageErrors(page), []);
});

t.test('a dropped socket reconnects by itself, and a higher position is never shown', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false, positionIntervalMs: 300 });
  await s.admin('PUT', '/admin/rooms/flaky', { ...OPEN_LIMITS, opensAt: iso(clock.now() - 60_000), prequeueSeconds: 0, admitRatePerMin: 60 });
  await Promise.all(Array.from({ length: 7 }, () => s.join('flaky')));
  const browser = await launch(t);
  const page = await open(browser);
  // every socket goes through to the gateway; the test can inject a message or drop the first one
  const sockets: { page: import('playwright-core').WebSocketRoute; server: import('playwright-core').WebSocketRoute }[] = [];
  await page.routeWebSocket(/\/api\/rooms\/flaky\/ws/, (ws) => {
    const server = ws.connectToServer();
    sockets.push({ page: ws, server });
  });
  await page.goto(`${s.gw.url}/rooms/flaky`);
  await showsPosition(page, 8);
  await page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Live');

  sockets[0]!.page.send(JSON.stringify({ type: 'position', position: 40, etaSeconds: 40, state: 'open', held: false }));
  await s.gw.positionsOnce!();
  await page.waitForTimeout(400); // two position rounds; the page must still say 8
  t.equal(await text(page, '#posBig'), '#8', 'a position above the best seen is not shown');

  await sockets[0]!.page.close({ code: 1011, reason: 'gone' });
  await sockets[0]!.server.close();
  await page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Reconnecting…');
  await page.waitForFunction(() => document.getElementById('connText')?.textContent === 'Live', undefined, { timeout: 15_000 });
  t.ok(sockets.length >= 2, 'a new socket was opened');
  for (let step = 0; step < 5; step++) {
    clock.advance(1000);
    await s.gw.admitOnce!();
  }
  const place = await me(s, 'flaky', await visitorId(page));
  t.ok(place.position! < 8, `admission moved on (#${place.position})`);
  await showsPosition(page, place.position!);
  t.same(pageErrors(page), []);
});

t.test('pre-queue: a calm countdown, then the drawn place; a scheduled room joins when its pre-queue opens', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false, positionIntervalMs: 200 });
  const opensAt = clock.now() + 10 * 60_000;
  await s.admin('PUT', '/admin/rooms/pre', { ...OPEN_LIMITS, opensAt: iso(opensAt), prequeueSeconds: 900, admitRatePerMin: 60 });
  const browser = await launch(t);
  const page = await open(browser);
  await page.goto(`${s.gw.url}/rooms/pre`);
  await page.waitForFunction(() => document.getElementById('headline')?.textContent === "You're in.");
  t.match(await text(page, '#lead'), /everyone here gets a random place — arriving early doesn't help, leaving the page doesn't hurt/);
  t.match(await text(page, '#countBig'), /^(10:00|09:5\d)$/);
  t.equal(await text(page, '#pill'), 'Pre-queue');
  t.match(await page.title(), /^In the pre-queue/);
  await shots(page, 'queue-prequeue');

  // others join the pre-queue too; at opensAt everyone gets a place in a random order
  await Promise.all([s.join('pre'), s.join('pre'), s.join('pre')]);
  clock.set(opensAt + 1000);
  await s.gw.refreshRooms!();
  await s.gw.admitOnce!(); // drains the pre-queue into tickets (and admits the first)
  const place = await me(s, 'pre', await visitorId(page));
  t.ok(place.ticket !== null && place.ticket >= 1 && place.ticket <= 4, `drawn ticket ${place.ticket}`);
  if (place.admitted) await page.waitForFunction(() => !document.getElementById('turnView')!.hidden);
  else await showsPosition(page, place.position!);

  // a room whose pre-queue is not open yet: 409 not_open → countdown, then joins by itself
  clock.set(Date.now());
  const pre2 = clock.now() + 4_000;
  await s.admin('PUT', '/admin/rooms/soon', { ...OPEN_LIMITS, opensAt: iso(pre2 + 60_000), prequeueSeconds: 60 });
  const p2 = await open(browser);
  await p2.goto(`${s.gw.url}/rooms/soon`);
  await p2.waitForFunction(() => document.getElementById('headline')?.textContent === 'The waiting room opens soon');
  t.match(await text(p2, '#countSub'), /until the pre-queue opens/);
  clock.set(pre2 + 100);
  await s.gw.refreshRooms!();
  await p2.waitForFunction(() => document.getElementById('headline')?.textContent === "You're in.", undefined, { timeout: 15_000 });
  t.same([...pageErrors(page), ...pageErrors(p2)], []);
});

t.test('paused, held and sold out are said plainly', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false, positionIntervalMs: 200 });
  await s.admin('PUT', '/admin/rooms/calm', { ...OPEN_LIMITS, name: 'Calm Before the Drop', opensAt: iso(clock.now() - 60_000), prequeueSeconds: 0, sale: 'calm-sale' });
  await s.join('calm');
  const browser = await launch(t);
  const page = await open(browser);
  await page.goto(`${s.gw.url}/rooms/calm`);
  await showsPosition(page, 2);

  t.equal((await s.admin('POST', '/admin/rooms/calm/pause', {})).status, 200);
  await page.waitForFunction(() => document.getElementById('pill')?.textContent === 'Paused');
  t.equal(await text(page, '#note'), 'The queue is paused by the store; you keep your place.');
  t.equal(await text(page, '#eta'), 'No estimate\nthe sale is paused', 'paused: no estimated time, the reason instead');
  t.equal(await text(page, '#saleName'), 'Calm Before the Drop', 'the room’s display name, not its id');
  await s.admin('POST', '/admin/rooms/calm/resume', {});
  await page.waitForFunction(() => document.getElementById('pill')?.textContent === 'In line');
  t.equal(await page.locator('#note').isHidden(), true);

  // checkout's stock signal: every unit in a cart → held; then sold → sold out
  const stock = saleStockKey(s.config.redisPrefix, 'calm-sale');
  const signal = async (h: Record<string, string | number>) => {
    await s.gw.redis.hset(stock, { total: 1, updatedAt: Date.now(), ...h });
    await s.gw.redis.publish(stockChannel(s.config.redisPrefix), 'calm-sale');
  };
  await signal({ available: 0, reserved: 1, sold: 0, state: 'active' });
  await page.waitForFunction(() => document.getElementById('pill')?.textContent === 'On hold');
  t.equal(await text(page, '#note'), 'Every unit is in a cart or held for a shopper ahead of you. If one comes back, the line moves again.');
  t.equal(await text(page, '#eta'), 'No estimate\nall units are in carts or held for shoppers ahead of you; a unit may come back', 'held: no estimated time');
  await signal({ available: 0, reserved: 0, sold: 1, state: 'sold_out' });
  await page.waitForFunction(() => document.getElementById('headline')?.textContent === 'Sold out');
  t.match(await text(page, '#lead'), /Thank you for waiting/);
  t.equal(await page.title(), 'Sold out · Calm Before the Drop');

  // a fresh visitor to a sold-out room gets the same answer from the join (409 sold_out)
  const p2 = await open(browser);
  await p2.goto(`${s.gw.url}/rooms/calm`);
  await p2.waitForFunction(() => document.getElementById('headline')?.textContent === 'Sold out');
  const unknown = await open(browser);
  await unknown.goto(`${s.gw.url}/rooms/no-such-room`);
  await unknown.waitForFunction(() => document.getElementById('headline')?.textContent === 'This waiting room doesn’t exist');
  t.same([...pageErrors(page), ...pageErrors(p2), ...pageErrors(unknown)], []);
});

t.test('CAPTCHA: the widget appears, a refused answer says so and resets it, a good one joins', async (t) => {
  const fake = await startFakeSiteverify();
  t.teardown(() => fake.close());
  const s = await stack(t, { botDefence: true, env: { HCAPTCHA_VERIFY_URL: fake.url } });
  await s.admin('PUT', '/admin/rooms/human', { opensAt: iso(Date.now() - 60_000), prequeueSeconds: 0, captcha: { mode: 'always', threshold: 50 } });
  const browser = await launch(t);
  const page = await open(browser);
  await fakeHcaptcha(page);
  await page.goto(`${s.gw.url}/rooms/human`);
  await page.waitForSelector('#hc-check');
  t.equal(await text(page, '#headline'), 'One quick check');
  t.equal(await page.evaluate(() => (window as unknown as { __hc: { sitekey: string } }).__hc.sitekey), s.config.hcaptchaSitekey, 'rendered with the siteKey of the 403');
  await shots(page, 'queue-captcha');

  await page.evaluate(() => { (window as unknown as { __captchaAnswer: string }).__captchaAnswer = 'a-wrong-answer'; });
  await page.locator('#hc-check').check();
  await page.waitForFunction(() => /didn’t go through/.test(document.getElementById('note')?.textContent ?? ''));
  t.equal(await page.evaluate(() => (window as unknown as { __hc: { resets: number } }).__hc.resets), 1, 'the widget was reset');
  t.equal(await page.locator('#hc-check').isChecked(), false);

  await page.evaluate(() => { delete (window as unknown as { __captchaAnswer?: string }).__captchaAnswer; });
  await page.locator('#hc-check').check();
  await showsPosition(page, 1);
  t.same(fake.calls.map((c) => c.response), ['a-wrong-answer', '10000000-aaaa-bbbb-cccc-000000000001']);

  // a block-listed network is told plainly, once, and the page stops asking
  await s.admin('PUT', '/admin/rooms/walled', { opensAt: iso(Date.now() - 60_000), captcha: { mode: 'off' }, block: ['127.0.0.0/8'] });
  const blocked = await open(browser);
  const joins: number[] = [];
  blocked.on('response', (r) => { if (r.url().endsWith('/join')) joins.push(r.status()); });
  await blocked.goto(`${s.gw.url}/rooms/walled`);
  await blocked.waitForFunction(() => document.getElementById('pill')?.textContent === 'Access refused');
  t.equal(await text(blocked, '#headline'), 'We can’t let you in from this connection');
  t.same(joins, [403]);
  t.same([...pageErrors(page), ...pageErrors(blocked)], []);
});

t.test('rate limited: a calm countdown, then the page joins by itself', async (t) => {
  const s = await stack(t);
  await s.admin('PUT', '/admin/rooms/busy', {
    opensAt: iso(Date.now() - 60_000), prequeueSeconds: 0, captcha: { mode: 'off' },
    limits: { ip: { capacity: 1, refillPerSec: 0.25 }, subnet: { capacity: 1000, refillPerSec: 1000 }, room: { capacity: 1000, refillPerSec: 1000 } },
  });
  const browser = await launch(t);
  const page = await open(browser);
  const joins: number[] = [];
  page.on('response', (r) => { if (r.url().endsWith('/join')) joins.push(r.status()); });
  t.equal((await s.join('busy')).status, 200, 'this IP spends its one token');
  await page.goto(`${s.gw.url}/rooms/busy`);
  await page.waitForFunction(() => document.getElementById('headline')?.textContent === 'Lots of people are arriving right now');
  t.match(await text(page, '#countSub'), /until we try again|Trying again/);
  await showsPosition(page, 2);
  t.same(joins, [429, 200], 'one refused join, one retry after Retry-After');
  t.same(pageErrors(page), []);
});

t.test('the gateway unreachable for a moment: the page says so and tries again by itself', async (t) => {
  const s = await stack(t);
  await s.admin('PUT', '/admin/rooms/wobbly', { ...OPEN_LIMITS, opensAt: iso(Date.now() - 60_000), prequeueSeconds: 0 });
  const browser = await launch(t);
  const page = await open(browser);
  let failures = 1;
  await page.route('**/api/rooms/wobbly/join', (route) => (failures-- > 0 ? route.abort('connectionrefused') : route.continue()));
  await page.goto(`${s.gw.url}/rooms/wobbly`);
  await page.waitForFunction(() => document.getElementById('headline')?.textContent === 'We’re having trouble reaching the waiting room');
  t.match(await text(page, '#lead'), /Your place is not lost/);
  await showsPosition(page, 1);
  t.same(pageErrors(page), []);
});
