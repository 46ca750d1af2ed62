// @ts-check
/**
 * Drop day: a pre-queue crowd arrives before the sale opens (their places are drawn at random
 * at open), then the spike at open. Every shopper joins, waits on the WebSocket for
 * `{type:"admitted"}`, signs up (which logs in), reserves with the admission token, pays and
 * polls the result. Passes when every shopper got a final answer (bought, or told sold out),
 * with no 5xx, the join p99 under JOIN_P99_MS, nothing oversold and the audit ok.
 *
 *   k6 run load-tests/drop-day.js                          # 1,000 shoppers, 100 units, 2m
 *   k6 run -e VISITORS=20000 -e STOCK=500 -e DURATION=10m -e GATEWAY_URL=... load-tests/drop-day.js
 *
 * k6 cannot change its source address: shoppers are told apart by x-forwarded-for, so the room
 * is created with the load generator (TRUSTED_PROXY, default 127.0.0.1/32) as a trusted proxy.
 *
 * On one 2-core machine running k6, `npm start` and Postgres together, the join p99 holds at
 * 500 ms only while checkout is not signing shoppers up: each sign-up is one scrypt
 * (N=16384, about 65 ms of a core here), run on libuv's 4 threads in the same process as the
 * gateway, and admitted shoppers sign up at the admission rate (100/s on defaults), which
 * takes both cores. See load-tests/README.md for the measurement; on such a machine give
 * JOIN_P99_MS what the README's table says, or run checkout on its own cores.
 */
import exec from 'k6/execution';
import { loadEnv, createRoomAndSale, auditSale, preflight, shopper, runShoppers, summaryText } from './lib/common.js';
import { dropDayPlan, durationSeconds, TREND_STATS } from './lib/plan.js';

const env = loadEnv({ visitors: 1000, stock: 100, duration: '2m' });
const preShare = Number(__ENV.PREQUEUE_SHARE || 0.3);
/** A shopper gives up waiting after this long (default: the run and two minutes more). */
const waitSeconds = Number(__ENV.MAX_WAIT_SECONDS || 0) || durationSeconds(env.duration) + 120;
const plan = dropDayPlan(env, preShare, waitSeconds);

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  teardownTimeout: '60s',
  summaryTrendStats: TREND_STATS,
  scenarios: plan.scenarios,
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    shopper_failed: ['rate==0'],
    // k6 offered the whole plan, on time: every planned shopper reached an end, none started late.
    shoppers_finished: [`count==${plan.arrivals.at.length}`],
    start_lag: [`p(99)<${env.startLagP99Ms}`],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
    purchases: [`count<=${env.stock}`],
  },
};

export function setup() {
  preflight(env);
  return createRoomAndSale(env, `k6-drop-${env.runId}`, plan.prequeueSec, { captcha: { mode: env.captchaMode || 'off', threshold: env.captchaThreshold } });
}

/**
 * One of the scenario's iterations: its share of the pre-queue and spike shoppers, each at its
 * planned time (lib/common.js runShoppers).
 * @param {{room: string, sale: string, t0: number}} data
 */
export async function shoppers(data) {
  const slots = plan.scenarios.shoppers.vus;
  await runShoppers(plan.arrivals, data.t0, exec.scenario.iterationInTest, slots, (n) => shopper(env, data, n, waitSeconds));
}

/** @param {{room: string, sale: string}} data */
export function teardown(data) {
  auditSale(env, data.sale);
}

/** @param {any} data */
export function handleSummary(data) {
  /** @type {Record<string, string>} */
  const out = { stdout: summaryText(data, `drop-day: ${env.visitors} shoppers, ${env.stock} units, ${env.duration}`) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
