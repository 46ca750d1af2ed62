/**
 * The header part of the suspicion score (0-100): what a join's headers say about the client,
 * decided in Node with no Redis. The join script adds the velocity part (bucket depletion of the
 * IP and subnet, visitor ids per IP, failed CAPTCHAs) and compares the sum with the room's
 * `captcha.threshold`.
 *
 * Weights, each counted once (a real browser scores 0; `curl` with its defaults scores 45, under
 * the default threshold of 50 until velocity adds to it; a request with no headers at all 65):
 */
export const HEADER_WEIGHTS = Object.freeze({
  /** No `user-agent` at all: browsers always send one. */
  noUserAgent: 40,
  /** A user agent that names an HTTP library, a crawler or a headless browser. */
  toolUserAgent: 30,
  /** No `accept-language`: every browser sends one. */
  noAcceptLanguage: 15,
  /** No `accept`. */
  noAccept: 10,
  /** `sec-fetch-site: cross-site` on a join: another site's page posting joins for its visitors. */
  crossSite: 15,
});

const TOOL_UA =
  /curl|wget|python|aiohttp|httpx|go-http-client|java\/|okhttp|libwww|perl|ruby|php|scrapy|httpclient|axios|node-fetch|undici|^node$|headless|phantomjs|selenium|webdriver|puppeteer|playwright|bot\b|spider|crawl/i;

/** Verdicts on user agents seen lately: a sale's shoppers send a few hundred distinct ones. */
const toolVerdicts = new Map<string, boolean>();
const TOOL_CACHE_SIZE = 2000;

function isToolUserAgent(ua: string): boolean {
  let v = toolVerdicts.get(ua);
  if (v === undefined) {
    v = TOOL_UA.test(ua);
    if (ua.length <= 512) {
      if (toolVerdicts.size >= TOOL_CACHE_SIZE) toolVerdicts.clear();
      toolVerdicts.set(ua, v);
    }
  }
  return v;
}

export type HeaderSignal = keyof typeof HEADER_WEIGHTS;

/** The signals present in `headers` (lower-cased names). */
export function headerSignals(headers: Readonly<Record<string, string>>): HeaderSignal[] {
  const out: HeaderSignal[] = [];
  const ua = headers['user-agent']?.trim();
  if (!ua) out.push('noUserAgent');
  else if (isToolUserAgent(ua)) out.push('toolUserAgent');
  if (!headers['accept-language']?.trim()) out.push('noAcceptLanguage');
  if (!headers['accept']?.trim()) out.push('noAccept');
  if (headers['sec-fetch-site'] === 'cross-site') out.push('crossSite');
  return out;
}

export function headerScore(headers: Readonly<Record<string, string>>): number {
  let score = 0;
  for (const s of headerSignals(headers)) score += HEADER_WEIGHTS[s];
  return Math.min(100, score);
}
