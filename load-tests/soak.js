// @ts-check
/**
 * Soak: a long steady stream of shoppers (constant arrival rate) into a room whose stock lasts
 * the whole run, to find leaks and slow drift: join latency, admission wait and checkout must
 * hold for hours. Fails on any 5xx, a slow join p99, shoppers not served, an oversell or a
 * failed audit.
 *
 *   k6 run -e DURATION=2h -e VISITORS=72000 load-tests/soak.js    # 10 shoppers/s for 2 h
 */
import exec from 'k6/execution';
import { loadEnv, durationSeconds, createRoomAndSale, auditSale, shopper, summaryText } from './lib/common.js';

const env = loadEnv({ visitors: 18000, stock: 1_000_000, duration: '30m' });
const seconds = durationSeconds(env.duration);
const perSecond = Math.max(1, Math.round(env.visitors / seconds));

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      exec: 'steadyShopper',
      rate: perSecond,
      timeUnit: '1s',
      duration: env.duration,
      preAllocatedVUs: Math.min(500, perSecond * 30),
      maxVUs: perSecond * 120,
      gracefulStop: '2m',
    },
  },
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    // Admission keeps up with arrivals: nobody waits long in a steady state.
    admission_wait: [`p(95)<${Number(__ENV.ADMISSION_P95_MS || 10_000)}`],
    shopper_failed: ['rate<0.001'],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
  },
};

export function setup() {
  // Admission twice as fast as arrivals, so the queue stays short and the run measures drift.
  const e = { ...env, admitRatePerMin: Math.max(env.admitRatePerMin, perSecond * 120) };
  return createRoomAndSale(e, `k6-soak-${env.runId}`, 0, { captcha: { mode: __ENV.CAPTCHA_MODE || 'off' } });
}

/** @param {{room: string, sale: string}} data */
export async function steadyShopper(data) {
  await shopper(env, data, exec.scenario.iterationInTest, 120);
}

/** @param {{sale: string}} data */
export function teardown(data) {
  auditSale(env, data.sale);
}

/** @param {any} data */
export function handleSummary(data) {
  /** @type {Record<string, string>} */
  const out = { stdout: summaryText(data, `soak: ${perSecond} shoppers/s for ${env.duration}`) };
  if (__ENV.SUMMARY_JSON) out[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return out;
}
