/**
 * The operator console (GET /admin) in headless Chromium against the real gateway and Redis:
 * the token prompt (and back to it on a 401), rooms, live figures and charts, a threshold
 * changed through the form (verified through the API), a refused value shown at its field,
 * pause/resume, and the audit entries.
 */
import t from 'tap';
import type { Page } from 'playwright-core';
import { OPEN_LIMITS, until } from '../gateway/helpers.js';
import { saleStockKey, stockChannel } from '../../shared/keys.js';
import { ADMIN, cutLabels, launch, open, pageErrors, phoneShot, shot, stack, viewShots } from './harness.js';

const iso = (ms: number) => new Date(ms).toISOString();
const text = (page: Page, sel: string) => page.locator(sel).innerText();
const figure = (page: Page, label: string) => page.locator('.fig', { has: page.locator('.k', { hasText: new RegExp(`^${label}$`) }) }).locator('.v');

t.test('sign in, watch a room, change thresholds, pause and resume, read the audit log', async (t) => {
  const s = await stack(t);
  await s.admin('PUT', '/admin/rooms/launch', {
    // one IP (127.0.0.1) sends everything: its bucket bites and the suspicion score makes challenges
    opensAt: iso(Date.now() - 60_000), prequeueSeconds: 0, admitRatePerMin: 600, captcha: { mode: 'suspicious', threshold: 30 },
    limits: { ip: { capacity: 50, refillPerSec: 2 }, subnet: { capacity: 1_000_000, refillPerSec: 1_000_000 } },
  });
  await s.admin('PUT', '/admin/rooms/quiet', { opensAt: iso(Date.now() + 3_600_000) });
  // traffic for the figures and charts while the console watches (at most 40 s of it)
  let flowing = true;
  const traffic = (async () => {
    for (let i = 0; flowing && i < 100; i++) {
      await Promise.all(Array.from({ length: 5 + ((i * 7) % 23) }, () => s.join('launch')));
      await new Promise((r) => setTimeout(r, 400));
    }
  })();

  const browser = await launch(t);
  const page = await open(browser, 1280);
  await page.goto(`${s.gw.url}/admin`);
  await page.waitForSelector('#loginView:not([hidden])');
  t.equal(await page.locator('#app').isHidden(), true, 'nothing but the prompt before a token');

  // a wrong token: told so, still at the prompt
  await page.fill('#token', 'not-the-token');
  await page.click('#loginForm button[type=submit]');
  await page.waitForFunction(() => !document.getElementById('loginMsg')!.hidden);
  t.equal(await text(page, '#loginMsg'), 'That admin token was not accepted. Enter it again.');
  t.equal(await page.evaluate(() => sessionStorage.getItem('wr:adminToken')), null, 'a refused token is not kept');

  await page.fill('#token', ADMIN);
  await page.click('#loginForm button[type=submit]');
  await page.waitForSelector('#roomList table');
  t.same(await page.locator('#roomList tbody td:first-child').allInnerTexts(), ['launch', 'quiet']);
  t.equal(await page.evaluate(() => sessionStorage.getItem('wr:adminToken')), ADMIN, 'kept in sessionStorage');
  t.equal(await page.evaluate(() => localStorage.length), 0, 'and nowhere else');

  await page.selectOption('#roomSelect', 'launch');
  await page.waitForSelector('#roomView:not([hidden])');
  t.equal(await text(page, '#stateBadge'), 'OPEN');
  // a few polls' worth of live figures, then the traffic stops so the figures can be compared exactly
  await page.waitForFunction(() => (window as unknown as { __console: { hist: { level: object }[] } }).__console.hist.filter((p) => Object.keys(p.level).length > 0).length >= 10, undefined, { timeout: 30_000 });
  await viewShots(page, 'console-overview', 'body');
  flowing = false;
  await traffic;
  const queued = Number((await s.admin('GET', '/admin/rooms/launch/stats')).body.queued);
  t.ok(queued > 0);
  await page.waitForFunction((q) => Array.from(document.querySelectorAll('.fig')).some((f) => f.querySelector('.k')?.textContent === 'Queued (waiting)' && f.querySelector('.v')?.textContent === q.toLocaleString()), queued);
  t.equal(await figure(page, 'Joined').innerText(), String(await s.admin('GET', '/admin/rooms/launch/stats').then((r) => r.body.joined)));
  t.match(await figure(page, 'Arrivals / s').innerText(), /^\d/);
  const st = (await s.admin('GET', '/admin/rooms/launch/stats')).body;
  t.ok(Number(st.rateLimited) > 0, `some joins were rate-limited (${st.rateLimited})`);
  await page.waitForFunction((n) => Array.from(document.querySelectorAll('.fig')).some((f) => f.querySelector('.k')?.textContent === 'Rate-limited' && f.querySelector('.v')?.textContent === n.toLocaleString()), Number(st.rateLimited));
  for (const label of ['Admitted', 'Active in checkout', 'Challenged', 'Challenge pass rate', 'Rate-limited', 'Blocked', 'Fairness after open τ', 'Pre-queue draw']) {
    t.equal(await figure(page, label).count(), 1, `figure: ${label}`);
  }
  // the headline fairness figure is the gateway's post-open Kendall tau (or '–' before anyone is admitted)
  const tau = (st.fairness as { kendallTau?: unknown }).kendallTau;
  t.equal(await figure(page, 'Fairness after open τ').innerText(), typeof tau === 'number' ? new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(tau) : '–');
  t.same(await page.locator('canvas').evaluateAll((cs) => cs.map((c) => c.id)), ['cv-traffic', 'cv-defence', 'cv-queue']);
  // the traffic chart drew something besides its axes: some pixel in the plot has the arrivals colour
  const drawn = await page.locator('#cv-traffic').evaluate((c: HTMLCanvasElement) => {
    const g = c.getContext('2d')!;
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i + 2]! > 150 && d[i]! < 90 && d[i + 1]! < 120) n++;
    return n;
  });
  t.ok(drawn > 20, `arrivals line drawn (${drawn} px)`);
  t.match(await text(page, '#lg-traffic'), /Arrivals\/s/);

  // the form: prefilled from GET /admin/rooms/:room
  t.equal(await page.inputValue('#f-admitRatePerMin'), '600');
  t.equal(await page.inputValue('#f-limits-ip-capacity'), '50');
  t.equal(await page.inputValue('#f-captcha-mode'), 'suspicious');
  t.equal(await page.isDisabled('#saveBtn'), true, 'nothing to save yet');

  // a value the gateway refuses: its message appears at the field; nothing changes
  await page.fill('#f-block', '203.0.113.0/24\nnot-a-cidr');
  await page.click('#saveBtn');
  await page.waitForFunction(() => document.querySelector('[data-field="block"] .err')?.textContent !== '');
  t.equal(await text(page, '[data-field="block"] .err'), 'block[1] is not an IPv4 or IPv6 CIDR.');
  t.equal(await page.getAttribute('#f-block', 'aria-invalid'), 'true');
  t.same((await s.admin('GET', '/admin/rooms/launch')).body.block, [], 'the room kept its block list');

  // fix it and change a few thresholds: only those go in the PUT
  const puts: unknown[] = [];
  page.on('request', (r) => { if (r.method() === 'PUT') puts.push(r.postDataJSON()); });
  await page.fill('#f-block', '203.0.113.0/24');
  await page.fill('#f-admitRatePerMin', '120');
  await page.fill('#f-limits-subnet-refillPerSec', '25');
  await page.selectOption('#f-captcha-mode', 'always');
  await page.fill('#f-trustedProxies', '10.0.0.0/8\n192.168.1.1');
  await page.check('#f-record');
  t.equal(await text(page, '#dirtyText'), '6 changes not saved');
  await viewShots(page, 'console-form', 'section:has(#cfgForm)');
  await page.click('#saveBtn');
  await page.waitForFunction(() => document.getElementById('saveMsg')?.classList.contains('ok'));
  t.match(await text(page, '#saveMsg'), /^Saved \(config v\d+\).*within 2 s\.$/);
  t.same(puts, [{
    block: ['203.0.113.0/24'], admitRatePerMin: 120, limits: { subnet: { refillPerSec: 25 } }, captcha: { mode: 'always' },
    trustedProxies: ['10.0.0.0/8', '192.168.1.1'], record: true,
  }], 'only the changed fields were sent');
  const cfg = (await s.admin('GET', '/admin/rooms/launch')).body as Record<string, any>;
  t.match(cfg, {
    admitRatePerMin: 120, block: ['203.0.113.0/24'], trustedProxies: ['10.0.0.0/8', '192.168.1.1'], record: true,
    captcha: { mode: 'always', threshold: 30 }, limits: { subnet: { capacity: 1_000_000, refillPerSec: 25 }, ip: { capacity: 50, refillPerSec: 2 } },
  });
  t.equal(await page.isDisabled('#saveBtn'), true, 'the form now matches the room');

  // pause and resume
  await page.click('#pauseBtn');
  await page.waitForFunction(() => document.getElementById('stateBadge')?.textContent === 'paused');
  t.equal((await s.admin('GET', '/admin/rooms/launch')).body.state, 'paused');
  t.equal(await page.locator('#resumeBtn').isVisible(), true);
  t.equal(await page.locator('#pauseBtn').isVisible(), false);
  await page.click('#resumeBtn');
  await page.waitForFunction(() => document.getElementById('stateBadge')?.textContent === 'open');
  t.equal((await s.admin('GET', '/admin/rooms/launch')).body.state, 'open');

  // the audit log: newest first, old → new for each field
  await page.waitForFunction(() => /^resume/i.test(document.querySelector('#audit tbody tr td:nth-child(2)')?.textContent ?? ''));
  const actions = await page.locator('#audit tbody tr td:nth-child(2)').allInnerTexts();
  t.same(actions.map((a) => a.toLowerCase()), ['resume', 'pause', 'update', 'create']);
  const update = page.locator('#audit tbody tr').nth(2);
  t.match(await update.innerText(), /admitRatePerMin: 600 → 120/);
  t.match(await update.innerText(), /captcha: mode: suspicious, threshold: 30 → mode: always, threshold: 30/);
  t.match(await page.locator('#audit tbody tr').nth(0).innerText(), /paused: true → false/);
  await viewShots(page, 'console-audit', 'section:has(#audit)');

  // the token stops working (rotated): the next call sends the operator back to the prompt
  await page.evaluate(() => sessionStorage.setItem('wr:adminToken', 'rotated-away'));
  await page.waitForSelector('#loginView:not([hidden])', { timeout: 10_000 });
  t.equal(await text(page, '#loginMsg'), 'That admin token was not accepted. Enter it again.');
  t.same(pageErrors(page), []);
});

t.test('on a phone: a room opened by name, created when missing', async (t) => {
  const s = await stack(t);
  const browser = await launch(t);
  const page = await open(browser, 390);
  await page.addInitScript((tok) => sessionStorage.setItem('wr:adminToken', tok), ADMIN);
  await page.goto(`${s.gw.url}/admin#room=fresh`);
  await page.waitForFunction(() => /There is no room called “fresh”/.test(document.getElementById('roomList')?.textContent ?? ''));
  await page.click('#createBtn');
  await page.waitForSelector('#roomView:not([hidden])');
  t.equal((await s.admin('GET', '/admin/rooms/fresh')).status, 200, 'created through PUT');
  t.equal(await text(page, '#roomName'), 'fresh');
  await page.waitForSelector('#audit tbody tr');
  t.equal((await page.locator('#audit tbody tr td:nth-child(2)').allInnerTexts()).map((a) => a.toLowerCase()).join(), 'create');
  t.match(await text(page, '#audit tbody tr'), /created with the defaults/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  t.equal(overflow, 0, 'nothing wider than the phone');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'console-new-room-phone', false);
  t.same(pageErrors(page), []);
});

t.test('the picker says a room’s true state and name, the fairness tile counts the first admitted, no label is cut', async (t) => {
  const s = await stack(t);
  await s.admin('PUT', '/admin/rooms/gala', { ...OPEN_LIMITS, name: 'Gala Night', opensAt: iso(Date.now() - 60_000), prequeueSeconds: 0, admitRatePerMin: 6000 });
  await s.admin('PUT', '/admin/rooms/later', { opensAt: iso(Date.now() + 3_600_000) });
  for (let i = 0; i < 4; i++) await s.join('gala');
  const browser = await launch(t);
  const page = await open(browser, 1280);
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.addInitScript((tok) => sessionStorage.setItem('wr:adminToken', tok), ADMIN);
  await page.goto(`${s.gw.url}/admin#room=gala`);
  await page.waitForSelector('#roomView:not([hidden])');
  t.equal(await text(page, '#roomName'), 'Gala Night', 'the display name heads the room');
  t.match(await text(page, '#roomMeta'), /^room gala · sale gala/);
  const option = (room: string) => page.locator(`#roomSelect option[value="${room}"]`).innerText();
  t.equal(await option('gala'), 'Gala Night (gala) · open');
  t.equal(await option('later'), 'later · scheduled');
  await page.waitForFunction(() => /none admitted after open yet/.test(document.body.textContent ?? ''));

  // someone is admitted after open: the tile says so, with the gateway's figure
  while ((await s.gw.admitOnce!()) === 0) await new Promise((r) => setTimeout(r, 50));
  const fair = (await s.admin('GET', '/admin/rooms/gala/stats')).body.fairness as { kendallTau: number | null; sample: number; overtakes: number };
  t.ok(fair.sample > 0, `${fair.sample} admitted after open`);
  const tile = figure(page, 'Fairness after open τ');
  const value = typeof fair.kendallTau === 'number' ? new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(fair.kendallTau) : 'in order';
  await page.waitForFunction(([v, n]) => Array.from(document.querySelectorAll('.fig')).some((f) => f.querySelector('.k')?.textContent === 'Fairness after open τ'
    && f.querySelector('.v')?.textContent === v && new RegExp(`in ${n} admitted$`).test(f.querySelector('.s')?.textContent ?? '')), [value, fair.sample] as const);
  t.equal(await tile.innerText(), value);

  // paused elsewhere (the API, not this console): the badge and the picker both say so
  t.equal((await s.admin('POST', '/admin/rooms/gala/pause', {})).status, 200);
  await page.waitForFunction(() => document.getElementById('stateBadge')?.textContent === 'paused');
  await page.waitForFunction(() => document.querySelector('#roomSelect option[value="gala"]')?.textContent === 'Gala Night (gala) · paused');
  t.equal(await option('gala'), 'Gala Night (gala) · paused', 'the picker does not say "open" while paused');
  t.equal(await page.locator('#resumeBtn').isVisible(), true);

  // nothing cut at a laptop's and a phone's size
  t.same(await cutLabels(page), [], 'no label cut at 1280x800');
  await viewShots(page, 'console-paused', 'body');
  await page.setViewportSize({ width: 390, height: 844 });
  t.same(await cutLabels(page), [], 'no label cut at 390x844');
  t.same(pageErrors(page), []);
});

t.test('the fairness report panel: waiting before the end, the signed report’s figures and links once sold out', async (t) => {
  // one clock for the gateway, moved forward to open the room
  let offset = 0;
  const s = await stack(t, { clock: () => Date.now() + offset });
  const opensAt = Date.now() + 600_000;
  await s.admin('PUT', '/admin/rooms/finale', { ...OPEN_LIMITS, name: 'Finale', sale: 'finale', opensAt: iso(opensAt), prequeueSeconds: 900, admitRatePerMin: 6000 });
  for (let i = 0; i < 6; i++) t.equal((await s.join('finale')).status, 200, 'a pre-queue join');
  const browser = await launch(t);
  const page = await open(browser, 1280);
  await page.addInitScript((tok) => sessionStorage.setItem('wr:adminToken', tok), ADMIN);
  await page.goto(`${s.gw.url}/admin#room=finale`);
  await page.waitForSelector('#roomView:not([hidden])');
  t.equal(await page.locator('#stateBadge').textContent(), 'prequeue');
  t.equal(await text(page, '#reportBody'), 'The fairness report comes when the room sells out or closes.');
  t.equal(await page.locator('#reportJson').count(), 0, 'no link before the end');

  // open, four more after open, admit everyone there is
  offset = opensAt - Date.now() + 1;
  await until(async () => (await s.gw.admitOnce!(), await fetch(`${s.gw.url}/api/rooms/finale`).then((r) => r.json()) as { draw?: { seed?: string } }).draw?.seed, 10_000, 'the room to open');
  for (let i = 0; i < 4; i++) t.equal((await s.join('finale')).status, 200, 'a join after open');
  while ((await s.admin('GET', '/admin/rooms/finale/stats')).body.admitted as number < 10) await s.gw.admitOnce!();
  await page.waitForFunction(() => document.getElementById('stateBadge')?.textContent === 'open');
  t.equal(await text(page, '#reportBody'), 'The fairness report comes when the room sells out or closes.', 'still waiting while open');
  t.equal((await fetch(`${s.gw.url}/api/rooms/finale/report`)).status, 409);

  // checkout says the sale sold out: the room ends and the panel shows the report
  await s.gw.redis.hset(saleStockKey(s.config.redisPrefix, 'finale'), { total: 8, available: 0, reserved: 0, sold: 8, state: 'on_sale', updatedAt: Date.now() });
  await s.gw.redis.publish(stockChannel(s.config.redisPrefix), 'finale');
  await page.waitForSelector('#reportFigs', { timeout: 20_000 });
  const res = await fetch(`${s.gw.url}/api/rooms/finale/report`);
  t.equal(res.status, 200);
  const { report } = (await res.json()) as { report: Record<string, any> };
  t.same(report.entrants, { prequeue: 6, afterOpen: 4, total: 10 });
  t.equal(report.state, 'sold_out');
  const f = (n: number) => new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(n);
  const o = report.orderAfterOpen as { kendallTau: number | null; overtakes: number; sample: number };
  t.equal(o.sample, 4, 'the four admitted after open are the sample');
  const tau = typeof o.kendallTau === 'number' ? f(o.kendallTau) : 'in order';
  t.equal(await figure(page, 'Entrants').innerText(), '10');
  t.match(await page.locator('#reportFigs .fig', { hasText: 'Entrants' }).innerText(), /6 in the pre-queue · 4 after open/);
  t.equal(await figure(page, 'Units sold').innerText(), '8 of 8');
  t.equal(await figure(page, 'Order after open τ').innerText(), tau);
  t.match(await page.locator('#reportFigs .fig', { hasText: 'Order after open' }).innerText(), new RegExp(`${o.overtakes} overtakes? in 4 admitted`));
  for (const label of ['Challenged', 'Rate-limited', 'Blocked', 'Units to flagged visitors', 'Open to sold out', 'Admitted']) {
    t.equal(await page.locator('#reportFigs .fig .k', { hasText: new RegExp(`^${label}$`) }).count(), 1, `report figure: ${label}`);
  }
  const lead = await text(page, '#reportLead');
  t.match(lead, /^Sold out .* after opening, 8 of 8 units sold\./);
  t.match(lead, /10 visitors entered: 6 in the pre-queue, placed by the draw, and 4 after open/);
  t.match(lead, new RegExp(`Kendall τ ${tau} and ${o.overtakes} overtakes? among 4 admitted`));
  t.equal(await text(page, '#reportCommitment'), report.draw.commitment);
  t.equal(await text(page, '#reportSeed'), report.draw.seed);
  // `chance` shown against what happened: one row per bucket of the signed report, its counts
  const buckets = report.chance.buckets as { visitors: number; gotUnit: number }[];
  t.ok(buckets.length > 0, 'the report carries the chance table');
  const rows = await page.locator('#reportChance tbody tr').allInnerTexts();
  t.equal(rows.length, buckets.length, 'the console shows every bucket');
  t.same(rows.map((r) => r.split('\t').slice(1, 4).filter((_, i) => i !== 1).map((c) => c.trim())),
    buckets.map((b) => [String(b.visitors), String(b.gotUnit)]), 'visitors and units got, bucket by bucket');
  t.equal(await page.getAttribute('#reportJson', 'href'), '/api/rooms/finale/report');
  t.equal(await page.getAttribute('#reportDraw', 'href'), '/rooms/finale/draw');
  // the links lead somewhere: the signed JSON and the verifier page
  t.equal((await fetch(new URL((await page.getAttribute('#reportJson', 'href'))!, s.gw.url)).then((r) => r.json()) as { jws?: string }).jws?.split('.').length, 3);
  t.equal((await fetch(new URL((await page.getAttribute('#reportDraw', 'href'))!, s.gw.url))).status, 200);

  t.same(await cutLabels(page), [], 'no label cut at 1280x800');
  await viewShots(page, 'console-report', '#report');
  await phoneShot(page, 'console-report', '#report'); // the whole panel on a phone, over the viewport shot
  await page.setViewportSize({ width: 390, height: 844 });
  t.same(await cutLabels(page), [], 'no label cut at 390x844');
  t.same(pageErrors(page), []);
});
