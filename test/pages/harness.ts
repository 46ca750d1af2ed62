/**
 * What the page tests share: headless Chromium (the system's, never a downloaded one), the real
 * gateway on its own Redis prefix, a tiny "checkout" page on 127.0.0.1 for admitted visitors to
 * land on, a stand-in for hCaptcha's script, and screenshots when SCREENSHOTS=1.
 */
import http from 'node:http';
import path from 'node:path';
import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Config } from '../../shared/config.js';
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
