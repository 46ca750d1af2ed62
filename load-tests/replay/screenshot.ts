/**
 * `npx tsx load-tests/replay/screenshot.ts REPORT.html OUT.png`: renders a report page in
 * headless Chromium (Debian's /usr/bin/chromium through playwright-core) and saves a full-page
 * screenshot. Returns what the page shows so callers can check it.
 */
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

export async function screenshotReport(html: string, png: string): Promise<{ title: string; charts: number; requests: string[] }> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(path.resolve(html)).href);
    await page.screenshot({ path: png, fullPage: true });
    return { title: await page.title(), charts: await page.locator('svg').count(), requests };
  } finally {
    await browser.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [html, png] = process.argv.slice(2);
  if (!html || !png) {
    process.stderr.write('usage: npx tsx load-tests/replay/screenshot.ts REPORT.html OUT.png\n');
    process.exit(2);
  }
  screenshotReport(html, png).then((r) => process.stdout.write(`${png}: "${r.title}", ${r.charts} charts, ${r.requests.length} request(s)\n`));
}
