/**
 * What the page tests share: headless Chromium (the system's, never a downloaded one), the real
 * gateway on its own Redis prefix, a tiny "checkout" page on 127.0.0.1 for admitted visitors to
 * land on, a stand-in for hCaptcha's script, and screenshots when SCREENSHOTS=1; `shop()` is the
 * real gateway with the real checkout (its own Postgres database) for the pages that need both.
 */
import http from 'node:http';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig, type Config } from '../../shared/config.js';
import { startCheckout, type Checkout } from '../../checkout/main.js';
import { startGateway } from '../../waiting-room/server.js';
import { productEnv } from '../checkout/helpers.js';
import { createRedis } from '../../shared/redis.js';
import { PROJECT_ROOT } from '../../shared/config.js';
import { createDefence } from '../../waiting-room/defence/index.js';
import type { Gateway, GatewayOptions } from '../../waiting-room/server.js';
import { ADMIN, gateway, testConfig } from '../gateway/helpers.js';

export { ADMIN };
export const CHROMIUM = '/usr/bin/chromium';
interface Teardown { teardown(fn: () => unknown): void }

export async function launch(t: Teardown): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    timeout: 30_000,
  });
  t.teardown(() => browser.close());
  return browser;
}

/** A phone (390 px) or desktop (1280 px) page; page errors fail loudly in the test output. */
export async function open(browser: Browser, width = 390, dark = false): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width, height: width < 600 ? 844 : 900 }, colorScheme: dark ? 'dark' : 'light' });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  (page as Page & { errors: string[] }).errors = errors;
  return page;
}
export const pageErrors = (page: Page): string[] => (page as Page & { errors?: string[] }).errors ?? [];

export interface Stack {
  gw: Gateway;
  config: Config;
  /** Operator call with the admin token. */
  admin(method: string, p: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A shopper join from outside the browser (its own visitor id). */
  join(room: string): Promise<{ status: number; body: Record<string, unknown> }>;
}

/** The real gateway (and, with `defence`, the real bot defence) on a prefix of its own. */
export async function stack(t: Teardown, opts: Omit<GatewayOptions, 'defence'> & { env?: Record<string, string>; botDefence?: boolean } = {}): Promise<Stack> {
  const { env, botDefence, ...gwOpts } = opts;
  const config = testConfig(env);
  let defence;
  if (botDefence) {
    const redis = createRedis(config.redisUrl);
    defence = createDefence(config, redis);
    t.teardown(async () => { redis.disconnect(); });
  }
  const gw = await gateway(t, config, { ...gwOpts, ...(defence ? { defence } : {}) });
  if (defence) t.teardown(() => defence.close());
  const call = async (method: string, p: string, body: unknown, headers: Record<string, string>) => {
    const res = await fetch(gw.url + p, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  return {
    gw, config,
    admin: (method, p, body) => call(method, p, body, { authorization: `Bearer ${ADMIN}` }),
    join: (room) => call('POST', `/api/rooms/${room}/join`, {}, { 'user-agent': 'Mozilla/5.0 (test shopper)', accept: '*/*', 'accept-language': 'en' }),
  };
}

/** A stand-in for the checkout page: the admission token stays in the URL fragment, where the page reads it. */
export async function checkoutStub(t: Teardown): Promise<string> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Checkout</title><h1>Checkout</h1>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise((r) => server.close(r)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * hCaptcha's script, faked (the network is closed here): `render` draws a checkbox that, when
 * clicked, calls back with `window.__captchaAnswer` or hCaptcha's published passing test response.
 */
export const HCAPTCHA_TEST_RESPONSE = '10000000-aaaa-bbbb-cccc-000000000001';
export async function fakeHcaptcha(page: Page): Promise<void> {
  await page.route('https://js.hcaptcha.com/**', (route) => route.fulfill({
    status: 200,
    contentType: 'application/javascript',
    body: `(() => {
      window.__hc = { renders: 0, resets: 0, sitekey: null };
      window.hcaptcha = {
        render(el, o) {
          window.__hc.renders++; window.__hc.sitekey = o.sitekey;
          el.innerHTML = '<label id="hc-box" style="display:flex;align-items:center;gap:12px;width:302px;height:76px;padding:0 14px;border:1px solid #d5d5d5;border-radius:4px;background:#fafafa;color:#333;font:14px sans-serif"><input id="hc-check" type="checkbox" style="width:26px;height:26px;margin:0">I am human</label>';
          el.querySelector('#hc-check').addEventListener('change', () => o.callback(window.__captchaAnswer || ${JSON.stringify(HCAPTCHA_TEST_RESPONSE)}));
          return 7;
        },
        reset(id) { window.__hc.resets++; const c = document.getElementById('hc-check'); if (c) c.checked = false; },
      };
      const src = document.getElementById('hcaptcha-js').src;
      const onload = new URL(src).searchParams.get('onload');
      if (onload && typeof window[onload] === 'function') window[onload]();
    })();`,
  }));
}

/** A screenshot into docs/screenshots/ when SCREENSHOTS=1 (so a plain test run leaves the tree clean). */
export async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  if (!process.env.SCREENSHOTS) return;
  const dir = path.join(PROJECT_ROOT, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage, animations: 'disabled' });
}

/** Phone and desktop screenshots of the same moment. */
export async function shots(page: Page, name: string): Promise<void> {
  if (!process.env.SCREENSHOTS) return;
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, `${name}-phone`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await shot(page, `${name}-desktop`);
  await page.setViewportSize(size);
}

/** Phone and desktop screenshots of one part of a long page (scrolled to `selector`), as a person would see it. */
export async function viewShots(page: Page, name: string, selector: string): Promise<void> {
  if (!process.env.SCREENSHOTS) return;
  const size = page.viewportSize()!;
  for (const [suffix, width, height] of [['phone', 390, 844], ['desktop', 1280, 900]] as const) {
    await page.setViewportSize({ width, height });
    await page.locator(selector).evaluate((e) => e.scrollIntoView({ block: 'start' }));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await shot(page, `${name}-${suffix}`, false);
  }
  await page.setViewportSize(size);
}

/** A screenshot of one element, whole, at a phone's width (a panel taller than the screen). */
export async function phoneShot(page: Page, name: string, selector: string): Promise<void> {
  if (!process.env.SCREENSHOTS) return;
  const size = page.viewportSize()!;
  await page.setViewportSize({ width: 390, height: 844 });
  const dir = path.join(PROJECT_ROOT, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.locator(selector).screenshot({ path: path.join(dir, `${name}-phone.png`), animations: 'disabled' });
  await page.setViewportSize(size);
}

/** The whole shop: the real gateway and the real checkout (its own Postgres database), one Redis prefix. */
export interface Shop extends Stack {
  checkout: Checkout;
  /** A shopper account at checkout, logged in: its session token. */
  shopper(): Promise<string>;
  /** Reserve a unit of `sale` with an admission token; the reservation id. */
  reserve(sale: string, session: string, admission: string): Promise<string>;
  /** Pay a reservation with the approving test card. */
  pay(session: string, reservation: string): Promise<void>;
  /** A sale at checkout. */
  sale(sale: string, fields: Record<string, unknown>): Promise<void>;
  /** The admission token of a visitor the room has admitted. */
  claim(room: string, visitorId: string): Promise<string>;
}

export async function shop(t: Teardown, tag: string, opts: Omit<GatewayOptions, 'port'> = {}): Promise<Shop> {
  const { env, stop } = await productEnv(t, tag);
  const config = loadConfig(env);
  const gw = await startGateway(config, { port: 0, admitter: false, ...opts });
  stop(() => gw.close());
  const checkout = await startCheckout(loadConfig({ ...env, GATEWAY_URL: gw.url, JWKS_URL: `${gw.url}/.well-known/jwks.json` }), { port: 0, poolSize: 4, provider: { delayMs: 50 } });
  stop(() => checkout.close());
  const api = async (base: string, method: string, p: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(base + p, { method, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  const ok = <T extends { status: number; body: Record<string, unknown> }>(r: T, status: number, what: string): T => {
    if (r.status !== status) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`);
    return r;
  };
  let shoppers = 0;
  return {
    gw, config, checkout,
    admin: (method, p, body) => api(gw.url, method, p, body, { authorization: `Bearer ${ADMIN}` }),
    join: (room) => api(gw.url, 'POST', `/api/rooms/${room}/join`, {}, { 'user-agent': 'Mozilla/5.0 (test shopper)', accept: '*/*', 'accept-language': 'en' }),
    async shopper() {
      const email = `shopper${++shoppers}-${Math.random().toString(36).slice(2, 8)}@example.com`;
      return String(ok(await api(checkout.url, 'POST', '/api/users', { email, password: 'password123' }), 201, 'sign-up').body.sessionToken);
    },
    async reserve(sale, session, admission) {
      const r = ok(await api(checkout.url, 'POST', `/api/sales/${sale}/reservations`, undefined, { authorization: `Bearer ${session}`, 'x-admission-token': admission }), 201, 'reserve');
      return String(r.body.reservationId);
    },
    async pay(session, reservation) {
      ok(await api(checkout.url, 'POST', `/api/reservations/${reservation}/payment`, { method: 'test_ok' }, { authorization: `Bearer ${session}` }), 202, 'pay');
    },
    async sale(sale, fields) {
      const now = Date.now();
      ok(await api(checkout.url, 'PUT', `/admin/sales/${sale}`, {
        name: `Sale ${sale}`, priceCents: 4900, currency: 'EUR', total: 10,
        startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 3_600_000).toISOString(), ...fields,
      }, { authorization: `Bearer ${ADMIN}` }), 201, 'sale');
    },
    async claim(room, visitorId) {
      return String(ok(await api(gw.url, 'POST', `/api/rooms/${room}/claim`, {}, { 'x-visitor-id': visitorId }), 200, 'claim').body.token);
    },
  };
}

/** Elements whose text is cut: clipped (overflow hidden or an ellipsis) and wider than their box. */
export async function cutLabels(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    for (const e of Array.from(document.querySelectorAll<HTMLElement>('body *'))) {
      if (!e.offsetParent || !e.textContent?.trim() || ['SCRIPT', 'STYLE', 'SELECT', 'OPTION', 'TEXTAREA', 'INPUT', 'CANVAS'].includes(e.tagName)) continue;
      const cs = getComputedStyle(e);
      const clips = cs.overflowX !== 'visible' || cs.textOverflow === 'ellipsis';
      if (clips && e.scrollWidth > e.clientWidth + 1) out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className}: ${e.textContent.trim().slice(0, 60)}`);
    }
    if (document.documentElement.scrollWidth > document.documentElement.clientWidth) out.push(`the page is ${document.documentElement.scrollWidth} px wide in ${document.documentElement.clientWidth}`);
    return out;
  });
}
