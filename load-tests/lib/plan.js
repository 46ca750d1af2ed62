// @ts-check
/**
 * What the k6 scripts ask k6 to do, as plain JavaScript with no k6 module: the environment,
 * each script's scenarios, and the bot-defence promise the bots script holds the room to.
 * k6 imports it through the scripts; Node's tests import it directly (test/load/k6-plan.test.ts).
 */

/**
 * k6-style duration ("90s", "2m", "1h30m", "500ms") in seconds.
 * @param {string} d
 */
export function durationSeconds(d) {
  if (/^\d+(\.\d+)?$/.test(d)) return Number(d);
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let m;
  let matched = '';
  while ((m = re.exec(d)) !== null) {
    matched += m[0];
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
  }
  if (!matched || matched !== d) throw new Error(`DURATION "${d}" is not a duration like 90s, 2m or 1h30m`);
  return total;
}

/**
 * The scripts' variables (load-tests/README.md), read from `E` (k6's __ENV, or a plain object).
 * @param {Record<string, string | undefined>} E
 * @param {{visitors: number, stock: number, duration: string}} defaults
 */
export function loadEnv(E, defaults) {
  /** @param {string} name @param {string} dflt */
  const str = (name, dflt) => {
    const v = E[name];
    return v === undefined || v === '' ? dflt : v;
  };
  /** @param {string} name @param {number} dflt */
  const num = (name, dflt) => {
    const n = Number(str(name, String(dflt)));
    if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number`);
    return n;
  };
  const duration = str('DURATION', defaults.duration);
  durationSeconds(duration);
  return {
    gateway: str('GATEWAY_URL', 'http://127.0.0.1:8080').replace(/\/$/, ''),
    checkout: str('CHECKOUT_URL', 'http://127.0.0.1:8081').replace(/\/$/, ''),
    adminToken: str('ADMIN_TOKEN', 'dev-admin-token'),
    visitors: num('VISITORS', defaults.visitors),
    stock: num('STOCK', defaults.stock),
    duration,
    /** The load generator's address as the gateway sees it: trusted to set x-forwarded-for. */
    trustedProxy: str('TRUSTED_PROXY', '127.0.0.1/32'),
    joinP99Ms: num('JOIN_P99_MS', 500),
    admitRatePerMin: num('ADMIT_RATE', 6000),
    maxActive: num('MAX_ACTIVE', 50),
    captchaMode: str('CAPTCHA_MODE', ''),
    captchaThreshold: num('CAPTCHA_THRESHOLD', 50),
    runId: str('RUN_ID', `${Date.now().toString(36)}`),
    /** VUs that carry the shoppers (each carries many at once); 0: one per 50 shoppers, 2 to 200. */
    shopperVus: num('SHOPPER_VUS', 0),
    /** start_lag p99 threshold (ms): how late k6 may start a planned shopper. */
    startLagP99Ms: num('START_LAG_P99_MS', 1000),
  };
}

/** @typedef {ReturnType<typeof loadEnv>} Env */

/** Percentiles every script's summary shows (k6's default has no p(99)). */
export const TREND_STATS = ['avg', 'med', 'p(95)', 'p(99)', 'max'];

/**
 * Iterations an arrival-rate scenario starts (time unit 1 s), as k6 counts them.
 * @param {any} s
 */
export function iterationsOf(s) {
  if (s.executor === 'constant-arrival-rate') return s.rate * durationSeconds(s.duration);
  let rate = s.startRate ?? 0;
  let n = 0;
  for (const st of s.stages) {
    n += ((rate + st.target) / 2) * durationSeconds(st.duration);
    rate = st.target;
  }
  return n;
}

/**
 * Planned arrival times (ms from the run's start) of an arrival rate that goes linearly from
 * `startRate` to each stage's `target` over its `duration` (as k6's ramping-arrival-rate, time
 * unit 1 s): arrival k comes when the rate's integral from `startSec` reaches k + 0.5.
 * @param {number} startSec @param {number} startRate @param {{target: number, duration: string}[]} stages
 */
export function arrivalTimes(startSec, startRate, stages) {
  /** @type {number[]} */
  const out = [];
  let t = startSec;
  let rate = startRate;
  let before = 0;
  for (const st of stages) {
    const d = durationSeconds(st.duration);
    const a = (st.target - rate) / (2 * d);
    const b = rate;
    const n = ((rate + st.target) / 2) * d;
    // Solve a x^2 + b x = need for the first x >= 0 (stable for a of either sign and a = 0).
    for (let need = out.length + 0.5 - before; out.length + 0.5 <= before + n + 1e-9; need = out.length + 0.5 - before) {
      const x = (2 * need) / (b + Math.sqrt(Math.max(0, b * b + 4 * a * need)));
      out.push(Math.round((t + Math.min(d, x)) * 1000));
    }
    before += n;
    t += d;
    rate = st.target;
  }
  return out;
}

/** VUs that carry the shoppers of one scenario: SHOPPER_VUS, else one per 50 shoppers, 2 to 200. */
function shopperVus(/** @type {Env} */ env, /** @type {number} */ shoppers) {
  const asked = Number(env.shopperVus || 0);
  return Math.max(1, Math.min(shoppers, asked || Math.max(2, Math.min(200, Math.ceil(shoppers / 50)))));
}

/**
 * A scenario that carries shoppers on a fixed set of VUs (k6's arrival-rate executors give
 * each waiting shopper a VU of its own: 20,000 of them took 6.6 GB and 22 min here). Each of
 * its `vus` iterations (shared-iterations, one per VU) runs every `vus`-th arrival, each at its
 * planned time, all at once (lib/common.js runShoppers). `start_lag` says how late they started.
 * @param {string} execName @param {number} vus @param {number} lastArrivalSec @param {number} maxWait
 */
export function shopperScenario(execName, vus, lastArrivalSec, maxWait) {
  return {
    executor: /** @type {const} */ ('shared-iterations'),
    exec: execName,
    vus,
    iterations: vus,
    // The last arrival's wait, its purchase (up to 30 s of polling) and some slack.
    maxDuration: `${Math.ceil(lastArrivalSec + maxWait + 90)}s`,
    gracefulStop: '30s',
  };
}

/**
 * drop-day: the first third of the run is the pre-queue (a linear ramp of arrivals up to the
 * opening), then the spike (a 5 s ramp to the peak, a hold, a tail down to half the peak).
 * Pre-queue shopper k is shopper number k, spike shopper k number 5,000,000 + k (their
 * addresses, clientIp). Every shopper may wait at once; they are carried by `vus` VUs.
 * @param {Env} env @param {number} preShare @param {number} maxWait
 */
export function dropDayPlan(env, preShare, maxWait) {
  const total = durationSeconds(env.duration);
  const prequeueSec = Math.max(10, Math.round(total / 3));
  const spikeSec = Math.max(10, total - prequeueSec);
  // A linear ramp 0 -> r1 over the pre-queue gives r1 * prequeueSec / 2 shoppers.
  const r1 = Math.max(1, Math.ceil((2 * preShare * env.visitors) / prequeueSec));
  const hold = Math.max(5, Math.round(spikeSec / 6));
  const tail = Math.max(5, spikeSec - hold - 5);
  // 5 s ramp to the peak, the hold, then the tail to half: peak * (2.5 + hold + 0.75 * tail).
  const peak = Math.max(1, Math.ceil(((1 - preShare) * env.visitors) / (hold + 2.5 + 0.75 * tail)));
  const pre = arrivalTimes(0, 0, [{ target: r1, duration: `${prequeueSec}s` }]);
  const spike = arrivalTimes(prequeueSec, 0, [
    { target: peak, duration: '5s' },
    { target: peak, duration: `${hold}s` },
    { target: Math.max(1, Math.round(peak / 2)), duration: `${tail}s` },
  ]);
  const arrivals = { at: [...pre, ...spike], n: [...pre.map((_, k) => k), ...spike.map((_, k) => 5000000 + k)] };
  const vus = shopperVus(env, arrivals.at.length);
  const last = arrivals.at.length ? arrivals.at[arrivals.at.length - 1] / 1000 : 0;
  return { prequeueSec, arrivals, prequeue: pre.length, spike: spike.length, scenarios: { shoppers: shopperScenario('shoppers', vus, last, maxWait) } };
}

/**
 * soak: a constant arrival rate of shoppers for the whole run (shopper k is number k), carried
 * by a fixed set of VUs.
 * @param {Env} env @param {number} maxWait
 */
export function soakPlan(env, maxWait) {
  const seconds = durationSeconds(env.duration);
  const perSecond = Math.max(1, Math.round(env.visitors / seconds));
  const at = arrivalTimes(0, perSecond, [{ target: perSecond, duration: env.duration }]);
  const arrivals = { at, n: at.map((_, k) => k) };
  const vus = shopperVus(env, at.length);
  return { perSecond, arrivals, scenarios: { steady: shopperScenario('steadyShopper', vus, seconds, maxWait) } };
}

/**
 * The bots' headers, and what each scores in the gateway's header score
 * (waiting-room/defence/score.ts: a tool user-agent 30, no accept-language 15, no accept 10,
 * no user-agent 40); k6 adds no accept headers of its own. The test checks these scores.
 */
export const BOT_HEADERS = {
  hammer: { 'user-agent': 'curl/8.5.0' },
  subnet: { 'user-agent': 'Mozilla/5.0 (compatible; ScalperBot/1.0)' },
  nocookie: { 'user-agent': 'python-requests/2.32.3' },
};
export const BOT_HEADER_SCORES = { hammer: 55, subnet: 55, nocookie: 55 };
/** The shoppers' headers: a browser's user-agent and language; they score 10 (no accept). */
export const HUMAN_HEADERS = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  'accept-language': 'en-GB,en;q=0.9',
};

/** The product's default buckets (docs/api.md section 4). */
export const DEFAULT_LIMITS = {
  ip: { capacity: 10, refillPerSec: 1 },
  subnet: { capacity: 200, refillPerSec: 20 },
  room: { capacity: 20000, refillPerSec: 5000 },
};

/**
 * How many of `n` joins over `seconds` from `ips` addresses of one /24 (spread evenly) the
 * buckets can let through at most: each IP's bucket, then the subnet's.
 * @param {typeof DEFAULT_LIMITS} limits @param {number} n @param {number} ips @param {number} seconds
 */
function bucketAllows(limits, n, ips, seconds) {
  const perIp = Math.min(n / ips, limits.ip.capacity + limits.ip.refillPerSec * seconds);
  return Math.min(n, ips * perIp, limits.subnet.capacity + limits.subnet.refillPerSec * seconds);
}

/**
 * bots: four constant-arrival-rate scenarios (hammer, subnet, nocookie, humans) and, for each
 * bot kind, the share of its joins the room's settings promise to stop: 1 when the CAPTCHA
 * challenges its headers (`always`, or `suspicious` at a threshold at or under its score: the
 * bots solve none), else the share its buckets cannot let through at the planned rate.
 * @param {Env} env @param {{hammerRate: number, limits: typeof DEFAULT_LIMITS, captcha: {mode: string, threshold: number}, maxWait: number}} room
 */
export function botsPlan(env, room) {
  const seconds = durationSeconds(env.duration);
  /** @param {number} share */
  const rate = (share) => Math.max(1, Math.round((env.visitors * share) / seconds));
  /** @param {string} execName @param {number} perSecond @param {number} vus */
  const steady = (execName, perSecond, vus) => ({
    executor: /** @type {const} */ ('constant-arrival-rate'),
    exec: execName, rate: perSecond, timeUnit: '1s', duration: env.duration, preAllocatedVUs: vus, maxVUs: vus * 4,
  });
  const humansRate = rate(0.4);
  const scenarios = {
    hammer: steady('hammer', room.hammerRate, 20),
    subnet: steady('subnet', rate(0.3), 20),
    nocookie: steady('nocookie', rate(0.3), 20),
  };
  // Humans wait for admission and buy, many at once on a few VUs (shopperScenario).
  const humanAt = arrivalTimes(0, humansRate, [{ target: humansRate, duration: env.duration }]);
  const humanArrivals = { at: humanAt, n: humanAt.map((_, k) => 9000000 + k) };
  const humans = shopperScenario('humans', shopperVus(env, humanAt.length), seconds, room.maxWait);
  const ips = { hammer: 3, subnet: 254, nocookie: 50 };
  /** @type {Record<keyof typeof ips, number>} */
  const promised = { hammer: 0, subnet: 0, nocookie: 0 };
  for (const kind of /** @type {(keyof typeof ips)[]} */ (Object.keys(ips))) {
    const n = scenarios[kind].rate * seconds;
    const challenged = room.captcha.mode === 'always' || (room.captcha.mode === 'suspicious' && BOT_HEADER_SCORES[kind] >= room.captcha.threshold);
    promised[kind] = challenged ? 1 : Math.max(0, 1 - bucketAllows(room.limits, n, ips[kind], seconds) / n);
  }
  return { scenarios: { ...scenarios, humans }, promised, humans: humanAt.length, humanArrivals };
}

/**
 * The thresholds of bot_stopped: at least the promised share for each kind with a promise of
 * at least 5% (2 points of slack for a bucket's promise, which assumes evenly spread arrivals).
 * @param {Record<string, number>} promised
 */
export function botThresholds(promised) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const [kind, p] of Object.entries(promised)) {
    if (p >= 1) out[`bot_stopped{kind:${kind}}`] = ['rate==1'];
    else if (p >= 0.05) out[`bot_stopped{kind:${kind}}`] = [`rate>=${Math.floor((p - 0.02) * 1000) / 1000}`];
  }
  return out;
}
