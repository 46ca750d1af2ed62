// @ts-check
/**
 * Soak: a long steady stream of shoppers (constant arrival rate) into a room whose stock lasts
 * the whole run and which admits twice as fast as shoppers arrive, to find leaks and slow
 * drift: join latency, admission wait and checkout must hold for hours. Passes when every
 * shopper got a final answer, with no 5xx, the join p99 under JOIN_P99_MS, the admission wait
 * p95 under ADMISSION_P95_MS, nothing oversold and the audit ok.
 *
 *   k6 run -e DURATION=2h -e VISITORS=72000 load-tests/soak.js    # 10 shoppers/s for 2 h
 *
 * Every shopper signs up: one scrypt (N=16384, about 65 ms of a core on this project's 2-core
 * machines). On such a machine running k6, `npm start` and Postgres together, checkout keeps up
 * with about 10 shoppers/s; at 20,000 visitors in 10 min (33/s) the sign-ups alone need more
 * than both cores (load-tests/README.md has the measurement): run a soak that size with
 * checkout on cores of its own.
 */
import exec from 'k6/execution';
import { loadEnv, createRoomAndSale, auditSale, preflight, shopper, runShoppers, summaryText } from './lib/common.js';
import { soakPlan, TREND_STATS } from './lib/plan.js';

const env = loadEnv({ visitors: 18000, stock: 1000000, duration: '30m' });
const waitSeconds = Number(__ENV.MAX_WAIT_SECONDS || 120);
const plan = soakPlan(env, waitSeconds);

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  summaryTrendStats: TREND_STATS,
  scenarios: plan.scenarios,
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    // Admission keeps up with arrivals: nobody waits long in a steady state.
    admission_wait: [`p(95)<${Number(__ENV.ADMISSION_P95_MS || 10000)}`],
    shopper_failed: ['rate==0'],
    // k6 offered the whole plan, on time: every planned shopper reached an end, none started late.
    shoppers_finished: [`count==${plan.arrivals.at.length}`],
    start_lag: [`p(99)<${env.startLagP99Ms}`],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
  },
};

export function setup() {
  preflight(env);
  // Admission twice as fast as arrivals (unless ADMIT_RATE says otherwise), so the queue stays short.
  const e = { ...env, admitRatePerMin: __ENV.ADMIT_RATE ? env.admitRatePerMin : Math.max(env.admitRatePerMin, plan.perSecond * 120) };
  return createRoomAndSale(e, `k6-soak-${env.runId}`, 0, { captcha: { mode: env.captchaMode || 'off', threshold: env.captchaThreshold } });
}

/** @param {{room: string, sale: string, t0: number}} data */
export async function steadyShopper(data) {
  await runShoppers(plan.arrivals, data.t0, exec.scenario.iterationInTest, plan.scenarios.steady.vus, (n) => shopper(env, data, n, waitSeconds));
}

/** @param {{sale: string}} data */
export function teardown(data) {
  auditSale(env, data.sale);
}

/** @param {any} data */
export function handleSummary(data) {
  /** @type {Record<string, string>} */
  const out = { stdout: summaryText(data, `soak: ${plan.perSecond} shoppers/s for ${env.duration}`) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
