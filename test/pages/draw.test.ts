/**
 * The draw in the browser: the queue page shows the shopper its entrantId and, once it holds a
 * drawn ticket, the link "your place was drawn fairly: check it"; that page recomputes the draw
 * with WebCrypto and shows the shopper's ticket. Through a tampering route it says the draw fails.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import type { Page } from 'playwright-core';
import { manualClock, OPEN_LIMITS } from '../gateway/helpers.js';
import { launch, open, pageErrors, stack } from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();
const text = (page: Page, sel: string) => page.locator(sel).innerText();
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

t.test('queue page → entrantId → the in-page verifier', async (t) => {
  const clock = manualClock(Date.now());
  const s = await stack(t, { clock: clock.now, admitter: false, positionIntervalMs: 200 });
  const opensAt = clock.now() + 10 * 60_000;
  await s.admin('PUT', '/admin/rooms/lucky', { ...OPEN_LIMITS, opensAt: iso(opensAt), prequeueSeconds: 900, admitRatePerMin: 60 });
  const browser = await launch(t);
  const page = await open(browser);
  await page.goto(`${s.gw.url}/rooms/lucky`);
  await page.waitForFunction(() => !document.getElementById('drawBox')!.hidden);
  const vid = await page.evaluate(() => localStorage.getItem('wr:vid') ?? '');
  t.equal(await text(page, '#entrantId'), sha(vid), 'the page shows the entrantId = SHA-256 of the visitor id');
  t.equal(await page.locator('#drawFair').isHidden(), true, 'no "drawn fairly" link before the draw');

  // Before open the verifier page shows the commitment and says to come back.
  const v0 = await open(browser);
  await v0.goto(`${s.gw.url}/rooms/lucky/draw`);
  await v0.waitForFunction(() => /not opened yet/.test(document.getElementById('verdict')!.textContent ?? ''));
  t.match(await text(v0, '#commitment'), /^[0-9a-f]{64}$/);

  for (let i = 0; i < 40; i++) await s.join('lucky');
  clock.set(opensAt + 1000);
  await s.gw.refreshRooms!();
  await s.gw.admitOnce!();
  await page.waitForFunction(() => !document.getElementById('drawFair')!.hidden, undefined, { timeout: 15_000 });
  t.match(await text(page, '#drawLink'), /Your place was drawn fairly: check it/);
  const mine = (await (await fetch(`${s.gw.url}/api/rooms/lucky/me`, { headers: { 'x-visitor-id': vid } })).json()) as { ticket: number };

  await page.click('#drawLink');
  await page.waitForFunction(() => /The draw (holds|does NOT hold)|Could not/.test(document.getElementById('verdict')!.textContent ?? ''));
  t.match(await text(page, '#verdict'), /The draw holds: .* all 41 places/);
  t.equal(await text(page, '#place'), `ticket ${mine.ticket} of 41`, "the page finds the shopper's drawn ticket");
  t.match(await text(page, '#cli'), new RegExp(`--room lucky --gateway ${s.gw.url} --entrant ${sha(vid)}`));

  // The same page, fed a tampered seed, says so.
  const bad = await open(browser);
  await bad.route('**/api/rooms/lucky', async (route) => {
    const res = await route.fetch();
    const body = (await res.json()) as { draw: { seed: string } };
    body.draw.seed = (body.draw.seed[0] === 'a' ? 'b' : 'a') + body.draw.seed.slice(1);
    await route.fulfill({ response: res, json: body });
  });
  await bad.goto(`${s.gw.url}/rooms/lucky/draw`);
  await bad.waitForFunction(() => /does NOT hold/.test(document.getElementById('verdict')!.textContent ?? ''));
  t.match(await text(bad, '#problems'), /does not match the commitment/);
  t.same([...pageErrors(page), ...pageErrors(v0), ...pageErrors(bad)], [], 'no page errors');
});
