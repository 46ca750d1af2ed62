// @ts-check
/**
 * The bot mix against one room, alongside a trickle of real-looking shoppers:
 *  - hammer:   3 IPs sending joins as fast as the arrival rate allows (curl user-agent);
 *  - subnet:   many IPs of ONE /24 (203.0.113.0/24), each joining a few times;
 *  - nocookie: clients that never keep the visitor cookie (a fresh cookie jar per request);
 *  - humans:   one browser per address, one join each, who then wait and buy.
 * Passes when bots are mostly stopped (rate-limited, challenged or blocked), humans are not
 * (false-positive rate), there is no 5xx, the join p99 holds and the audit finds no oversell.
 *
 * k6 cannot change its source address: every client is told apart by x-forwarded-for, and the
 * room trusts the load generator (TRUSTED_PROXY, default 127.0.0.1/32) as a proxy.
 */
import http from 'k6/http';
import exec from 'k6/execution';
import { Rate } from 'k6/metrics';
import {
  loadEnv, durationSeconds, createRoomAndSale, auditSale, join, shopper, summaryText,
} from './lib/common.js';

const env = loadEnv({ visitors: 600, stock: 50, duration: '1m' });
const seconds = durationSeconds(env.duration);
const botStopped = new Rate('bot_stopped');
const humanRefused = new Rate('human_refused');
/** @param {number} share */
const rate = (share) => Math.max(1, Math.round((env.visitors * share) / seconds));

/** @param {string} execName @param {number} perSecond @param {number} vus */
const steady = (execName, perSecond, vus) => ({
  executor: /** @type {const} */ ('constant-arrival-rate'),
  exec: execName, rate: perSecond, timeUnit: '1s', duration: env.duration, preAllocatedVUs: vus, maxVUs: vus * 4,
});

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  scenarios: {
    hammer: steady('hammer', Number(__ENV.HAMMER_RATE || 30), 20),
    subnet: steady('subnet', rate(0.3), 20),
    nocookie: steady('nocookie', rate(0.3), 20),
    humans: { ...steady('humans', rate(0.4), 50), gracefulStop: `${seconds + 120}s` },
  },
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    'bot_stopped{kind:hammer}': ['rate>0.8'],
    'bot_stopped{kind:subnet}': ['rate>0.3'],
    human_refused: [`rate<${__ENV.MAX_FALSE_POSITIVE || 0.01}`],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
  },
};

export function setup() {
  return createRoomAndSale(env, `k6-bots-${env.runId}`, 0, { captcha: { mode: __ENV.CAPTCHA_MODE || 'suspicious' } });
}

/** @param {import('k6/http').RefinedResponse<any>} res */
const stopped = (res) => res.status === 429 || res.status === 403;

/** @param {{room: string}} data */
export function hammer(data) {
  const ip = `198.51.100.${1 + (exec.scenario.iterationInTest % 3)}`;
  const res = join(env, data.room, ip, { 'user-agent': 'curl/8.5.0' });
  botStopped.add(stopped(res), { kind: 'hammer' });
}

/** @param {{room: string}} data */
export function subnet(data) {
  const ip = `203.0.113.${1 + (exec.scenario.iterationInTest % 254)}`;
  const res = join(env, data.room, ip, { 'user-agent': 'Mozilla/5.0 (compatible; ScalperBot/1.0)' });
  botStopped.add(stopped(res), { kind: 'subnet' });
}

/** @param {{room: string}} data */
export function nocookie(data) {
  const n = exec.scenario.iterationInTest;
  const ip = `192.0.2.${1 + (n % 50)}`;
  const res = join(env, data.room, ip, {}, new http.CookieJar());
  botStopped.add(stopped(res), { kind: 'nocookie' });
}

/** @param {{room: string, sale: string}} data */
export async function humans(data) {
  // Each human has its own address (shopper() picks it from n): a refused join is a false positive.
  const status = await shopper(env, data, 9_000_000 + exec.scenario.iterationInTest, seconds + 60);
  humanRefused.add(status === 429 || status === 403);
}

/** @param {{sale: string}} data */
export function teardown(data) {
  auditSale(env, data.sale);
}

/** @param {any} data */
export function handleSummary(data) {
  /** @type {Record<string, string>} */
  const out = { stdout: summaryText(data, `bots: ${env.visitors} clients over ${env.duration}`) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
