/**
 * `npx tsx load-tests/replay/screenshot.ts REPORT.html OUT.png [WIDTH]`: renders a report page in
 * headless Chromium (Debian's /usr/bin/chromium through playwright-core) at a viewport WIDTH px
 * wide (default 900) and saves a full-page screenshot. Returns what the page shows so callers
 * can check it, including how wide its content is (wider than the viewport: a sideways scroll).
 */
import { chromium } from 'playwright-core';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

export interface Shot {
  title: string;
  charts: number;
  requests: string[];
  /** The viewport's width and the page's scroll width (equal unless the page overflows sideways). */
  viewportWidth: number;
  scrollWidth: number;
}

export async function screenshotReport(html: string, png: string, width = 900): Promise<Shot> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(path.resolve(html)).href);
    await page.screenshot({ path: png, fullPage: true });
    return {
      title: await page.title(),
      charts: await page.locator('svg').count(),
      requests,
      viewportWidth: width,
      scrollWidth: await page.evaluate(() => document.documentElement.scrollWidth),
    };
  } finally {
    await browser.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [html, png, w] = process.argv.slice(2);
  const width = w === undefined ? 900 : Number(w);
  if (!html || !png || !(Number.isInteger(width) && width > 0)) {
    process.stderr.write('usage: npx tsx load-tests/replay/screenshot.ts REPORT.html OUT.png [WIDTH]\n');
    process.exit(2);
  }
  screenshotReport(html, png, width).then((r) =>
    process.stdout.write(`${png}: "${r.title}", ${r.charts} charts, ${r.requests.length} request(s), ${r.viewportWidth} px viewport, content ${r.scrollWidth} px wide\n`));
}
