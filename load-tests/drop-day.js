// @ts-check
/**
 * Drop day: a pre-queue crowd arrives before the sale opens (their places are drawn at random
 * at open), then the spike at open. Every shopper joins, waits on the WebSocket for
 * `{type:"admitted"}`, signs up, logs in, reserves with the admission token, pays and polls the
 * result. Fails (thresholds) on any 5xx, a slow join p99, an oversell or a failed audit.
 *
 *   k6 run load-tests/drop-day.js                          # 1,000 shoppers, 100 units, 2m
 *   k6 run -e VISITORS=20000 -e STOCK=500 -e DURATION=5m -e GATEWAY_URL=... load-tests/drop-day.js
 *
 * k6 cannot change its source address: shoppers are told apart by x-forwarded-for, so the room
 * is created with the load generator (TRUSTED_PROXY, default 127.0.0.1/32) as a trusted proxy.
 */
import exec from 'k6/execution';
import {
  loadEnv, durationSeconds, createRoomAndSale, auditSale, shopper, summaryText,
} from './lib/common.js';

const env = loadEnv({ visitors: 1000, stock: 100, duration: '2m' });
const total = durationSeconds(env.duration);
/** The pre-queue is the first third of the run; the sale opens then. */
const prequeueSec = Math.max(10, Math.round(total / 3));
const spikeSec = Math.max(10, total - prequeueSec);
const preShare = Number(__ENV.PREQUEUE_SHARE || 0.3);
// Linear ramp 0 -> r1 over the pre-queue gives r1 * prequeueSec / 2 shoppers.
const r1 = Math.max(1, Math.ceil((2 * preShare * env.visitors) / prequeueSec));
// 5 s ramp to the peak, a hold, then a tail down to half: peak * (2.5 + hold + 0.75 * tail) shoppers.
const hold = Math.max(5, Math.round(spikeSec / 6));
const tail = Math.max(5, spikeSec - hold - 5);
const peak = Math.max(1, Math.ceil(((1 - preShare) * env.visitors) / (hold + 2.5 + 0.75 * tail)));
const maxWait = Number(__ENV.MAX_WAIT_SECONDS || total + 120);

/** @type {import('k6/options').Options} */
export const options = {
  setupTimeout: '60s',
  teardownTimeout: '60s',
  scenarios: {
    prequeue: {
      executor: 'ramping-arrival-rate',
      exec: 'prequeueShopper',
      startTime: '0s',
      timeUnit: '1s',
      startRate: 0,
      preAllocatedVUs: Math.min(env.visitors, 200),
      maxVUs: Math.max(1, Math.ceil(env.visitors * preShare) + 10),
      stages: [{ target: r1, duration: `${prequeueSec}s` }],
      gracefulStop: `${maxWait}s`,
    },
    spike: {
      executor: 'ramping-arrival-rate',
      exec: 'spikeShopper',
      startTime: `${prequeueSec}s`,
      timeUnit: '1s',
      startRate: 0,
      preAllocatedVUs: Math.min(env.visitors, 500),
      maxVUs: Math.max(1, env.visitors + 10),
      stages: [
        { target: peak, duration: '5s' },
        { target: peak, duration: `${hold}s` },
        { target: Math.max(1, Math.round(peak / 2)), duration: `${tail}s` },
      ],
      gracefulStop: `${maxWait}s`,
    },
  },
  thresholds: {
    server_errors: ['count==0'],
    join_duration: [`p(99)<${env.joinP99Ms}`],
    oversell: ['count==0'],
    audit_failed: ['count==0'],
    shopper_failed: ['rate<0.01'],
    purchases: [`count<=${env.stock}`],
  },
};

export function setup() {
  const name = `k6-drop-${env.runId}`;
  return createRoomAndSale(env, name, prequeueSec, { captcha: { mode: __ENV.CAPTCHA_MODE || 'off' } });
}

/** @param {{room: string, sale: string}} data */
export async function prequeueShopper(data) {
  await shopper(env, data, exec.scenario.iterationInTest, maxWait);
}

/** @param {{room: string, sale: string}} data */
export async function spikeShopper(data) {
  await shopper(env, data, 5_000_000 + exec.scenario.iterationInTest, maxWait);
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
