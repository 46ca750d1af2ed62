/**
 * The checkout page in headless Chromium: arrive from the waiting room with the admission
 * token in the URL fragment, sign up, buy, pay with the approving test card, see success.
 * Then a second shopper on a phone-sized screen finds the sale sold out.
 * Set CHECKOUT_SCREENSHOTS=1 to write docs/screenshots/checkout-*.png.
 */
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { audit, createSale, world } from './helpers.js';

const SHOTS = process.env.CHECKOUT_SCREENSHOTS === '1' ? fileURLToPath(new URL('../../docs/screenshots/', import.meta.url)) : null;
if (SHOTS) mkdirSync(SHOTS, { recursive: true });
const shot = async (page: Page, name: string) => {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}checkout-${name}.png`, fullPage: true });
};

t.test('sign up → buy → pay → success in a real browser', async (t) => {
  const w = await world(t, 'page', { provider: { delayMs: 300 } });
  await createSale(w.url, 'sneakers', { name: 'Aurora Runner — limited drop', priceCents: 12900, total: 1, reservationSeconds: 300 });
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1024, height: 800 } });
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  const token = await w.keys.sign({ sale: 'sneakers', room: 'sneakers' });
  await page.goto(`${w.url}/sales/sneakers#admission=${token}`);
  await page.getByRole('heading', { name: 'Log in to buy' }).waitFor();
  t.equal(new URL(page.url()).hash, '', 'the token is taken out of the address bar');
  t.equal(await page.locator('#sale-name').textContent(), 'Aurora Runner — limited drop');
  t.match(await page.locator('#stock-text').textContent(), /1 of 1 left/);
  await shot(page, 'login');

  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Email').fill('mia@example.com');
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  t.match(await page.getByRole('alert').first().textContent(), /at least 8 characters/);
  await page.getByLabel('Password').fill('a long enough password');
  await page.getByRole('button', { name: 'Create account' }).click();

  await page.getByRole('button', { name: 'Buy now' }).waitFor();
  await shot(page, 'buy');
  await page.getByRole('button', { name: 'Buy now' }).click();
  await page.getByRole('heading', { name: 'Your item is held' }).waitFor();
  t.match(await page.locator('#timer').textContent(), /^[45]:\d\d$/, 'countdown of the hold');
  await shot(page, 'pay');
  t.ok(await page.getByLabel(/Test card — approved/).isChecked(), 'approving test card preselected');
  await page.getByRole('button', { name: /^Pay/ }).click();
  await page.getByRole('heading', { name: 'Success — it’s yours!' }).waitFor();
  await shot(page, 'success');
  const a = await audit(w.url, 'sneakers');
  t.same([a.ok, a.sold, a.available], [true, 1, 0], 'the unit is sold');

  await page.reload();
  await page.getByRole('heading', { name: 'Already purchased' }).waitFor();
  t.pass('a returning buyer sees "already purchased"');

  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  phone.setDefaultTimeout(20_000);
  await phone.goto(`${w.url}/sales/sneakers#admission=${await w.keys.sign({ sale: 'sneakers' })}`);
  await phone.getByRole('button', { name: 'Create an account' }).click();
  await phone.getByLabel('Email').fill('leo@example.com');
  await phone.getByLabel('Password').fill('another long password');
  await phone.getByRole('button', { name: 'Create account' }).click();
  await phone.getByRole('heading', { name: 'Sold out' }).waitFor();
  await shot(phone, 'sold-out-phone');

  // Another browser logs in to the first account: a wrong password is refused, the right one
  // shows that account's order.
  const again = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  again.setDefaultTimeout(20_000);
  again.on('pageerror', (e) => errors.push(String(e)));
  await again.goto(`${w.url}/sales/sneakers#admission=${await w.keys.sign({ sale: 'sneakers' })}`);
  await again.getByLabel('Email').fill('mia@example.com');
  await again.getByLabel('Password').fill('not the password');
  await again.getByRole('button', { name: 'Log in', exact: true }).click();
  t.match(await again.getByRole('alert').first().textContent(), /do not match/);
  await again.getByLabel('Password').fill('a long enough password');
  await again.getByRole('button', { name: 'Log in', exact: true }).click();
  await again.getByRole('heading', { name: 'Already purchased' }).waitFor();
  t.pass('logging in shows the account\'s purchase');
  t.same(errors, [], 'no script errors');
});
