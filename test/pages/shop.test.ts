/**
 * What the shopper sees (issue 13), in headless Chromium against the real gateway, the real
 * checkout, Redis and Postgres: the queue page's units left and chance in words, no estimate
 * while paused or held (and why), sold out as soon as it is true, the room's display name; the
 * checkout page's live stock count, the way back to the queue without an admission, and one look
 * for both pages.
 */
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { shopCss } from '../../shared/shop-page.js';
import { manualClock, OPEN_LIMITS } from '../gateway/helpers.js';
import { launch, open, pageErrors, shop, shot, shots, type Shop } from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();
const text = (page: Page, sel: string) => page.locator(sel).innerText();
const visitorId = (page: Page) => page.evaluate(() => localStorage.getItem('wr:vid') ?? '');
const until = async (what: string, check: () => Promise<boolean>, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const shows = (page: Page, sel: string, want: string | RegExp) =>
  page.waitForFunction(([s, w, re]) => {
    const got = document.querySelector(s as string)?.textContent ?? '';
    return re ? new RegExp(w as string).test(got) : got === w;
  }, [sel, want instanceof RegExp ? want.source : want, want instanceof RegExp] as const);

/** A room guarding `sale` (named after it), open since a minute, one admission a second, its checkout the real one. */
async function openRoom(s: Shop, room: string, name: string, opensAt: number, fields: Record<string, unknown> = {}) {
  await s.admin('PUT', `/admin/rooms/${room}`, {
    ...OPEN_LIMITS, name, sale: room, opensAt: iso(opensAt - 60_000), prequeueSeconds: 0,
    admitRatePerMin: 60, checkoutUrl: `${s.checkout.url}/sales/${room}`, ...fields,
  });
  await s.gw.refreshRooms!();
}

async function me(s: Shop, room: string, vid: string) {
  const res = await fetch(`${s.gw.url}/api/rooms/${room}/me`, { headers: { 'x-visitor-id': vid } });
  return (await res.json()) as { position: number | null; admitted: boolean; unitsLeft: number | null; chance: number | null; etaSeconds: number | null; held: boolean };
}
/** The estimated-wait tile shows no time at all: no minutes, hours or clock time. */
async function noEstimate(t: Test, page: Page, why: string) {
  t.equal(await text(page, '#eta'), `No estimate\n${why}`, `no estimate, and why: ${why}`);
  t.notMatch(await text(page, '#eta'), /\d|min|hour|around/, 'no time promised');
}

t.test('queue page: units left and the chance in words; paused: no estimate, and why', async (t) => {
  const clock = manualClock(Date.now());
  const s = await shop(t, 'qunits', { clock: clock.now, positionIntervalMs: 200 });
  await s.sale('kicks', { name: 'Winter Sneaker', total: 40 });
  await openRoom(s, 'kicks', 'Winter Sneaker Drop', clock.now());
  const first = await s.join('kicks');
  await s.join('kicks');

  const browser = await launch(t);
  const page = await open(browser);
  await page.goto(`${s.gw.url}/rooms/kicks`);
  await shows(page, '#posBig', '#3');
  t.equal(await text(page, '#saleName'), 'Winter Sneaker Drop', 'the room’s display name heads the page');
  t.match(await page.title(), /^#3 in line · Winter Sneaker Drop$/);
  // nobody admitted has bought or lapsed yet, but #3 is within the 40 units left of the front:
  // even if everyone ahead buys, a unit is left (chance 1)
  await shows(page, '#units', /^About 40 units left · good chance/);
  // a visitor beyond the units left, before any outcome: units, and no chance yet
  await Promise.all(Array.from({ length: 40 }, () => s.join('kicks')));
  const late = await open(browser);
  await late.goto(`${s.gw.url}/rooms/kicks`);
  await shows(late, '#posBig', '#44');
  await shows(late, '#units', /^About 40 units left/);
  t.equal(await text(late, '#units'), 'About 40 units left\nYour chance shows once the first shoppers let in have bought or let their turn pass.');
  await late.context().close();

  // the first shopper is admitted and buys: now there is something to go on
  const vid1 = String(first.body.visitorId);
  await until('the first shopper admitted', async () => {
    clock.advance(1000);
    await s.gw.admitOnce!();
    return (await me(s, 'kicks', vid1)).admitted;
  });
  const session = await s.shopper();
  await s.reserve('kicks', session, await s.claim('kicks', vid1));
  const vid = await visitorId(page);
  await until('a chance for the page’s visitor', async () => {
    await s.gw.admitOnce!();
    return (await me(s, 'kicks', vid)).chance !== null;
  });
  const place = await me(s, 'kicks', vid);
  t.equal(place.chance, 1, `39 units for at most ${place.position} shoppers who all buy: a unit is left`);
  await s.gw.positionsOnce!();
  await shows(page, '#units', /good chance/);
  t.equal(await text(page, '#units'), 'About 40 units left · good chance\nNearly every shopper at your place in line gets one.');
  t.match(await text(page, '#eta'), /min/, 'an estimate while the line moves');
  await shots(page, 'queue-units');

  // paused: no estimated time at all, not even one that slides forward, and the reason instead
  t.equal((await s.admin('POST', '/admin/rooms/kicks/pause', {})).status, 200);
  await shows(page, '#pill', 'Paused');
  await noEstimate(t, page, 'the sale is paused');
  t.equal((await me(s, 'kicks', vid)).etaSeconds, null, 'the API gives none either');
  clock.advance(90_000);
  await s.gw.positionsOnce!();
  await page.waitForTimeout(400);
  await noEstimate(t, page, 'the sale is paused');
  t.match(await text(page, '#units'), /^About 40 units left · good chance/, 'units and chance stay shown');
  await shots(page, 'queue-paused');
  await s.admin('POST', '/admin/rooms/kicks/resume', {});
  await shows(page, '#pill', 'In line');
  await shows(page, '#eta', /min/);
  t.same(pageErrors(page), []);
});

t.test('queue page: a slim outlook, held while every unit is taken, sold out the moment it is', async (t) => {
  const clock = manualClock(Date.now());
  const s = await shop(t, 'qheld', { clock: clock.now, positionIntervalMs: 200 });
  await s.sale('last', { name: 'Last pair', total: 2 });
  await openRoom(s, 'last', 'Last Pair Standing', clock.now());
  const [a, b] = [await s.join('last'), await s.join('last'), await s.join('last')].map((j) => String(j.body.visitorId));
  const browser = await launch(t);
  const page = await open(browser);
  await page.goto(`${s.gw.url}/rooms/last`);
  await shows(page, '#posBig', '#4');

  // A is admitted and reserves: every admitted shopper so far bought, two are ahead of the page's
  // visitor, one unit is left for them: unlikely
  await until('A admitted', async () => { clock.advance(1000); await s.gw.admitOnce!(); return (await me(s, 'last', a!)).admitted; });
  const sa = await s.shopper();
  const ra = await s.reserve('last', sa, await s.claim('last', a!));
  const vid = await visitorId(page);
  await until('the outlook counts the reservation', async () => { await s.gw.admitOnce!(); return (await me(s, 'last', vid)).chance !== null; });
  t.match(await me(s, 'last', vid), { unitsLeft: 1, chance: 0, held: false });
  await s.gw.positionsOnce!();
  await shows(page, '#units', /^1 unit left · unlikely/);
  t.equal(await text(page, '#chanceText'), 'Few shoppers at your place in line get one, unless units come back from carts.');

  // B is admitted for the last unit: the room holds the line, and says why instead of a time
  await until('B admitted', async () => { clock.advance(1000); await s.gw.admitOnce!(); return (await me(s, 'last', b!)).admitted; });
  await until('the room held', async () => { clock.advance(1000); await s.gw.admitOnce!(); return (await me(s, 'last', vid)).held; });
  await s.gw.positionsOnce!();
  await shows(page, '#pill', 'On hold');
  await noEstimate(t, page, 'all units are in carts or held for shoppers ahead of you; a unit may come back');
  t.match(await text(page, '#units'), /^No units free right now · unlikely/);
  t.equal(await text(page, '#note'), 'Every unit is in a cart or held for a shopper ahead of you. If one comes back, the line moves again.');
  t.equal((await me(s, 'last', vid)).etaSeconds, null);
  await shots(page, 'queue-held');

  // both buy: sold out, on the page at once (the stock signal's state message), without a reload
  const sb = await s.shopper();
  const rb = await s.reserve('last', sb, await s.claim('last', b!));
  await s.pay(sa, ra);
  await s.pay(sb, rb);
  await shows(page, '#headline', 'Sold out');
  t.equal(await page.title(), 'Sold out · Last Pair Standing');
  t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
  await shots(page, 'queue-sold-out');
  t.same(pageErrors(page), []);
});

t.test('checkout page: live stock on the log-in screen, a way into the queue without an admission, one look', async (t) => {
  const s = await shop(t, 'cpage', { positionIntervalMs: 200 });
  await s.sale('boots', { name: 'Trail Boot — limited run', total: 3 });
  await openRoom(s, 'boots', 'Trail Boot Drop', Date.now(), { admitRatePerMin: 600 });
  const browser = await launch(t);

  // a shopper comes through the queue: admitted, forwarded to checkout with the token, log-in screen
  const page = await open(browser, 1024);
  await page.goto(`${s.gw.url}/rooms/boots`);
  await shows(page, '#posBig', '#1');
  await until('admitted', async () => { await s.gw.admitOnce!(); return (await me(s, 'boots', await visitorId(page))).admitted; });
  await page.waitForURL((u) => u.origin === s.checkout.url, { timeout: 15_000 });
  await page.getByRole('heading', { name: 'Log in to buy' }).waitFor();
  t.equal(await text(page, '#stock-text'), '3 of 3 left');
  t.equal(await page.locator('#auth-queue').isHidden(), true, 'an admitted shopper is not sent back to the queue');
  t.equal(await text(page, '.shop-brand'), 'Trail Boot — limited run\nCheckout');
  await shot(page, 'checkout-login-before');

  // another shopper takes a unit: the count on the log-in screen follows, without a reload
  const other = String((await s.join('boots')).body.visitorId);
  await until('the other shopper admitted', async () => { await s.gw.admitOnce!(); return (await me(s, 'boots', other)).admitted; });
  await s.reserve('boots', await s.shopper(), await s.claim('boots', other));
  await shows(page, '#stock-text', '2 of 3 left');
  t.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
  t.equal(await page.locator('#stock-bar').evaluate((e) => (e as HTMLElement).style.width), '67%');
  await shot(page, 'checkout-login-after');

  // a shopper who arrives without an admission: a link to the sale's queue, which finds the room
  const lost = await open(browser);
  await lost.goto(`${s.checkout.url}/sales/boots`);
  await lost.getByRole('heading', { name: 'Log in to buy' }).waitFor();
  t.equal(await text(lost, '#auth-queue'), 'To buy, you first need your turn in the waiting room. Join the waiting room');
  const link = lost.getByRole('link', { name: 'Join the waiting room' });
  t.equal(await link.getAttribute('href'), `${s.gw.url}/rooms?sale=boots`);
  await shot(lost, 'checkout-no-admission');
  // logged in, still without an admission: the buy screen points to the queue instead of a dead end
  await lost.getByRole('button', { name: 'Create an account' }).click();
  await lost.getByLabel('Email').fill('no-turn@example.com');
  await lost.getByLabel('Password').fill('a long enough password');
  await lost.getByRole('button', { name: 'Create account' }).click();
  await lost.getByRole('link', { name: 'Go to the waiting room' }).waitFor();
  t.equal(await lost.getByRole('button', { name: 'Buy now' }).isHidden(), true);
  t.equal(await lost.getByRole('link', { name: 'Go to the waiting room' }).getAttribute('href'), `${s.gw.url}/rooms?sale=boots`);
  await lost.getByRole('link', { name: 'Go to the waiting room' }).click();
  await lost.waitForURL(`${s.gw.url}/rooms/boots`);
  await shows(lost, '#saleName', 'Trail Boot Drop');
  await shows(lost, '#posBig', /^#\d+$/);

  // no room guards a sale: told so, in the shop's look
  const none = await fetch(`${s.gw.url}/rooms?sale=nothing-here`, { redirect: 'manual', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  t.equal(none.status, 404);
  t.match(await none.text(), /There is no waiting room for this sale/);
  // a client that does not ask for HTML gets the contract's error shape (the fuzzer's finding: GET /rooms)
  for (const q of ['?sale=nothing-here', '']) {
    const api = await fetch(`${s.gw.url}/rooms${q}`, { redirect: 'manual' });
    t.same([api.status, api.headers.get('content-type'), ((await api.json()) as { error: string }).error], [404, 'application/json', 'not_found'], `GET /rooms${q} without accept: text/html`);
  }

  // one shop: both pages carry the one shared stylesheet and render the same header and palette
  const css = shopCss();
  for (const url of [`${s.gw.url}/rooms/boots`, `${s.checkout.url}/sales/boots`]) {
    t.ok((await (await fetch(url)).text()).includes(css), `${url} inlines shared/pages/shop.css`);
  }
  // (a string: the test runner's transform would name inner functions with a helper the page lacks)
  const look = (p: Page) => p.evaluate(`(() => {
    const cs = (sel) => getComputedStyle(document.querySelector(sel));
    const root = getComputedStyle(document.documentElement);
    return {
      palette: ['--bg', '--card', '--text', '--muted', '--accent', '--ok', '--bad-ink'].map((v) => root.getPropertyValue(v).trim()),
      body: [cs('body').backgroundColor, cs('body').fontFamily, cs('body').color],
      header: [cs('.shop-top').maxWidth, cs('.shop-top').display, cs('.shop-mark').backgroundColor, cs('.shop-mark').width, cs('.shop-brand').fontSize, cs('.shop-brand small').color],
      card: [cs('.shop-card').backgroundColor, cs('.shop-card').borderRadius, cs('.shop-card').borderTopColor],
    };
  })()`);
  const queueLook = await look(lost);
  await lost.goto(`${s.checkout.url}/sales/boots`);
  await lost.locator('#shop-name', { hasText: 'Trail Boot' }).waitFor();
  t.same(await look(lost), queueLook, 'the same palette, header and cards on the queue and checkout pages');
  t.equal((await lost.locator('header.shop-top').count()), 1, 'one header');
  t.same([...pageErrors(page), ...pageErrors(lost)], []);
});
