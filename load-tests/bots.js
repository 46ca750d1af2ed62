// @ts-check
/**
 * The bot mix against one room, alongside a stream of real-looking shoppers:
 *  - hammer:   3 IPs of one /24 sending joins at HAMMER_RATE per second in all (curl user-agent);
 *  - subnet:   254 IPs of ONE /24 (203.0.113.0/24), each joining a few times (a scraper's user-agent);
 *  - nocookie: 50 IPs that never keep the visitor cookie (a fresh cookie jar per request);
 *  - humans:   one browser per address, one join each, who then wait and buy.
 * Passes when each bot kind is stopped (429 rate_limited or 403 captcha_required / blocked) at
 * least as often as the room's settings promise (plan.js botsPlan: every join when the CAPTCHA
 * challenges its headers, else what its buckets cannot let through at that rate), no human is
 * refused (the false-positive rate), every human got a final answer, with no 5xx, the join p99
 * under JOIN_P99_MS, nothing oversold and the audit ok. A join answered 409 (the sale sold out)
 * was not judged by the defences and counts in `bot_unjudged`, not in `bot_stopped`: the
 * default STOCK lasts the humans of the run, so that only happens with a smaller STOCK.
 *
 * k6 cannot change its source address: every client is told apart by x-forwarded-for, and the
 * room trusts the load generator (TRUSTED_PROXY, default 127.0.0.1/32) as a proxy.
 */
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import { loadEnv, createRoomAndSale, auditSale, preflight, join, shopper, runShoppers, summaryText } from './lib/common.js';
import { botsPlan, botThresholds, BOT_HEADERS, DEFAULT_LIMITS, TREND_STATS } from './lib/plan.js';

const env = loadEnv({ visitors: 600, stock: 0, duration: '1m' });
/** The room's bucket limits: the product's defaults, or LIMITS (JSON, as in PUT /admin/rooms/:room). */
const limits = { ...DEFAULT_LIMITS, ...(__ENV.LIMITS ? JSON.parse(__ENV.LIMITS) : {}) };
const captcha = { mode: env.captchaMode || 'suspicious', threshold: env.captchaThreshold };
const waitSeconds = Number(__ENV.MAX_WAIT_SECONDS || 120);
const plan = botsPlan(env, { hammerRate: Number(__ENV.HAMMER_RATE || 30), limits, captcha, maxWait: waitSeconds });
const stock = env.stock || Math.max(50, plan.humans);
const botStopped = new Rate('bot_stopped');
const botUnjudged = new Counter('bot_unjudged');
const humanRefused = new Rate('human_refused');

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  summaryTrendStats: TREND_STATS,
  scenarios: plan.scenarios,
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    ...botThresholds(plan.promised),
    human_refused: [`rate<=${__ENV.MAX_FALSE_POSITIVE || 0}`],
    shopper_failed: ['rate==0'],
    // k6 offered the whole plan: no bot join dropped, every planned human reached an end, none started late.
    dropped_iterations: ['count==0'],
    shoppers_finished: [`count==${plan.humans}`],
    start_lag: [`p(99)<${env.startLagP99Ms}`],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
  },
};

export function setup() {
  preflight(env);
  console.log(`bots: the room's settings promise to stop ${JSON.stringify(plan.promised)} of each kind's joins`);
  return createRoomAndSale({ ...env, stock }, `k6-bots-${env.runId}`, 0, { captcha, limits });
}

/**
 * @param {import('k6/http').RefinedResponse<any>} res @param {'hammer' | 'subnet' | 'nocookie'} kind
 */
function judge(res, kind) {
  if (res.status === 409) botUnjudged.add(1, { kind });
  else if (res.status === 200 || res.status === 403 || res.status === 429) botStopped.add(res.status !== 200, { kind });
}

/** @param {{room: string}} data */
export function hammer(data) {
  const ip = `198.51.100.${1 + (exec.scenario.iterationInTest % 3)}`;
  judge(join(env, data.room, ip, BOT_HEADERS.hammer), 'hammer');
}

/** @param {{room: string}} data */
export function subnet(data) {
  const ip = `203.0.113.${1 + (exec.scenario.iterationInTest % 254)}`;
  judge(join(env, data.room, ip, BOT_HEADERS.subnet), 'subnet');
}

/** @param {{room: string}} data */
export function nocookie(data) {
  const ip = `192.0.2.${1 + (exec.scenario.iterationInTest % 50)}`;
  judge(join(env, data.room, ip, BOT_HEADERS.nocookie, new http.CookieJar()), 'nocookie');
}

/** @param {{room: string, sale: string, t0: number}} data */
export async function humans(data) {
  // Each human has its own address (shopper() picks it from n): a refused join is a false positive.
  await runShoppers(plan.humanArrivals, data.t0, exec.scenario.iterationInTest, plan.scenarios.humans.vus, async (n) => {
    const r = await shopper({ ...env, stock }, data, n, waitSeconds);
    humanRefused.add(r.status === 429 || r.status === 403);
  });
}

/** @param {{sale: string}} data */
export function teardown(data) {
  auditSale({ ...env, stock }, data.sale);
}

/** @param {any} data */
export function handleSummary(data) {
  /** @type {Record<string, string>} */
  const out = { stdout: summaryText(data, `bots: ${env.visitors} clients over ${env.duration}, ${stock} units, captcha ${JSON.stringify(captcha)}`) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
