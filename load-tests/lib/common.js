// @ts-check
/**
 * Helpers shared by the k6 scripts (drop-day.js, bots.js, soak.js): environment, operator
 * calls (room and sale), the shopper's steps, the end-of-test audit, and a plain summary.
 * Needs k6 v1.6.0 or later (`k6/websockets`); see load-tests/README.md.
 */
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend, Rate } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';
import exec from 'k6/execution';
import { loadEnv as planEnv, HUMAN_HEADERS } from './plan.js';

export { durationSeconds } from './plan.js';

/**
 * The scripts' variables from k6's __ENV (see plan.js loadEnv).
 * @param {{visitors: number, stock: number, duration: string}} defaults
 */
export function loadEnv(defaults) {
  return planEnv(__ENV, defaults);
}

/** @typedef {import('./plan.js').Env} Env */

// Metrics every script shares: thresholds name them.
export const serverErrors = new Counter('server_errors');
export const joinDuration = new Trend('join_duration', true);
export const oversell = new Counter('oversell');
export const auditFailed = new Counter('audit_failed');
export const purchases = new Counter('purchases');
export const admitted = new Counter('admitted');
export const admissionWait = new Trend('admission_wait', true);
/** A shopper left without a final answer (a wait that timed out, an error, a purchase that never settled). */
export const shopperFailed = new Rate('shopper_failed');
/** Shoppers by final answer: bought, or told sold out (at the join, while waiting, at the reservation). */
export const shoppersBought = new Counter('shoppers_bought');
export const shoppersSoldOut = new Counter('shoppers_sold_out');

/** @param {import('k6/http').RefinedResponse<any>} res */
export function countServerError(res) {
  if (res.status >= 500 || res.status === 0) serverErrors.add(1, { url: String(res.request && res.request.url).replace(/\?.*$/, '') });
  return res;
}

/** @param {Env} env */
function adminParams(env) {
  return { headers: { authorization: `Bearer ${env.adminToken}`, 'content-type': 'application/json' }, tags: { name: 'admin' } };
}

/**
 * Refuses to start against a product that is not there: both services' `GET /healthz` must
 * answer 200, or the test aborts (exit code 108) with a message naming the URL it tried.
 * Call it first in `setup`.
 * @param {Env} env
 */
export function preflight(env) {
  for (const [variable, base] of [['GATEWAY_URL', env.gateway], ['CHECKOUT_URL', env.checkout]]) {
    const url = `${base}/healthz`;
    const r = http.get(url, { timeout: '5s', tags: { name: 'healthz' }, responseCallback: http.expectedStatuses(200) });
    if (r.status !== 200) {
      const why = r.status === 0 ? `did not answer (${r.error})` : `answered HTTP ${r.status}`;
      exec.test.abort(`health check ${url} ${why}: start the product (npm start) or set ${variable} to a running one`);
    }
  }
}

/**
 * Creates the test's sale on checkout and its room on the gateway (PUT /admin/sales/:sale, then
 * PUT /admin/rooms/:room). Throws (failing setup) unless both answer 2xx.
 * @param {Env} env @param {string} name @param {number} opensInSeconds @param {Record<string, unknown>} roomExtra
 */
export function createRoomAndSale(env, name, opensInSeconds, roomExtra) {
  const now = Date.now();
  const sale = http.put(`${env.checkout}/admin/sales/${name}`, JSON.stringify({
    name: `k6 ${name}`, priceCents: 4999, currency: 'EUR', total: env.stock,
    startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 6 * 3600_000).toISOString(), reservationSeconds: 600,
  }), adminParams(env));
  if (sale.status !== 200 && sale.status !== 201) throw new Error(`PUT /admin/sales/${name}: ${sale.status} ${sale.body}`);
  const opensAt = new Date(now + opensInSeconds * 1000).toISOString();
  const room = http.put(`${env.gateway}/admin/rooms/${name}`, JSON.stringify({
    sale: name, opensAt, closesAt: null, prequeueSeconds: Math.ceil(opensInSeconds) + 60,
    admitRatePerMin: env.admitRatePerMin, maxActive: env.maxActive,
    checkoutUrl: `${env.checkout}/sales/${name}`, trustedProxies: [env.trustedProxy], ...roomExtra,
  }), adminParams(env));
  if (room.status !== 200 && room.status !== 201) throw new Error(`PUT /admin/rooms/${name}: ${room.status} ${room.body}`);
  return { room: name, sale: name, opensAt, t0: now };
}

/**
 * The end-of-test proof: recount the sale through the audit route and count an oversell
 * (units sold beyond stock) and a failed audit; both have `count==0` thresholds.
 * @param {Env} env @param {string} sale
 */
export function auditSale(env, sale) {
  const a = http.get(`${env.checkout}/admin/sales/${sale}/audit`, adminParams(env));
  const s = http.get(`${env.checkout}/api/sales/${sale}`, { tags: { name: 'sale' } });
  /** @type {any} */
  const audit = a.status === 200 ? a.json() : { ok: false, status: a.status };
  /** @type {any} */
  const state = s.status === 200 ? s.json() : {};
  const sold = Number(audit.sold ?? state.sold ?? 0);
  oversell.add(Math.max(0, sold - env.stock));
  auditFailed.add(audit && audit.ok === true ? 0 : 1);
  check(audit, { 'audit ok': (x) => x && x.ok === true });
  console.log(`audit of ${sale}: ${audit.ok === true ? 'ok' : `FAILED ${JSON.stringify(audit)}`}; sold ${sold} of ${env.stock}`);
  return { audit, sold };
}

/**
 * A client address for x-forwarded-for, distinct per n: consecutive n fall in different /24s
 * (62,500 of them), so a crowd arriving together is not one subnet's bucket.
 * @param {number} n
 */
export function clientIp(n) {
  const net = n % 62500;
  return `10.${1 + Math.floor(net / 250)}.${net % 250}.${1 + (Math.floor(n / 62500) % 250)}`;
}

/** A request k6 answered status 0 with an error of a reused keep-alive connection the server closed. */
const STALE_CONNECTION = /EOF|connection reset|broken pipe|server closed idle connection/i;
/** Requests sent a second time after such an error (each is sent at most twice). */
export const httpRetried = new Counter('http_retried');

/**
 * One request, sent once more when k6 answers status 0 for a kept-alive connection that the
 * server had closed (k6 reports `EOF` / `connection reset by peer` on a reused connection; a
 * browser retries those by itself). Counts a 5xx or a failure of the second try in server_errors.
 * @param {string} method @param {string} url @param {string | null} body @param {import('k6/http').RefinedParams<any>} params
 */
export function request(method, url, body, params) {
  let res = http.request(method, url, body, params);
  if (res.status === 0 && STALE_CONNECTION.test(String(res.error))) {
    httpRetried.add(1);
    res = http.request(method, url, body, params);
  }
  return countServerError(res);
}

/**
 * `request` without blocking the VU: the shopper's steps run through it, so one VU carries
 * many shoppers at once.
 * @param {string} method @param {string} url @param {string | null} body @param {import('k6/http').RefinedParams<any>} params
 */
export async function requestAsync(method, url, body, params) {
  let res = await http.asyncRequest(method, url, body, params);
  if (res.status === 0 && STALE_CONNECTION.test(String(res.error))) {
    httpRetried.add(1);
    res = await http.asyncRequest(method, url, body, params);
  }
  return countServerError(res);
}

/** @param {number} ms */
export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** @param {Record<string, string>} headers @param {string} ip @param {import('k6/http').CookieJar} [jar] */
function joinParams(headers, ip, jar) {
  /** @type {import('k6/http').RefinedParams<'text'>} */
  const params = { headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...headers }, tags: { name: 'join' }, responseCallback: http.expectedStatuses(200, 403, 409, 429) };
  if (jar) params.jar = jar;
  return params;
}

/**
 * POST /api/rooms/:room/join from `ip` (x-forwarded-for). Returns the response.
 * @param {Env} env @param {string} room @param {string} ip @param {Record<string, string>} [headers] @param {import('k6/http').CookieJar} [jar]
 */
export function join(env, room, ip, headers = HUMAN_HEADERS, jar) {
  const res = request('POST', `${env.gateway}/api/rooms/${room}/join`, '{}', joinParams(headers, ip, jar));
  joinDuration.add(res.timings.duration);
  return res;
}

/**
 * `join` without blocking the VU.
 * @param {Env} env @param {string} room @param {string} ip @param {import('k6/http').CookieJar} jar
 */
async function joinAsync(env, room, ip, jar) {
  const res = await requestAsync('POST', `${env.gateway}/api/rooms/${room}/join`, '{}', joinParams(HUMAN_HEADERS, ip, jar));
  joinDuration.add(res.timings.duration);
  return res;
}

/** @param {import('k6/http').RefinedResponse<any>} r */
function errorCode(r) {
  try {
    return String(/** @type {any} */ (r.json()).error);
  } catch (_) {
    return `http_${r.status}`;
  }
}

/**
 * A shopper after admission: sign up (a new account comes logged in; an existing one logs in),
 * reserve with the admission token, pay with the simulated provider, then poll the purchase
 * until it settles. Resolves the final answer: `bought`, `sold_out` (the reservation was
 * refused: an honest answer), or `error:<step>:<code>` (no final answer).
 * @param {Env} env @param {string} sale @param {string} token @param {string} email @param {import('k6/http').CookieJar} jar
 * @returns {Promise<string>}
 */
export async function buy(env, sale, token, email, jar) {
  const json = { 'content-type': 'application/json' };
  const password = 'k6-Passw0rd!';
  const su = await requestAsync('POST', `${env.checkout}/api/users`, JSON.stringify({ email, password }), { headers: json, jar, tags: { name: 'signup' }, responseCallback: http.expectedStatuses(201, 409) });
  if (su.status !== 201 && su.status !== 409) return `error:signup:${errorCode(su)}`;
  let session = su.status === 201 ? /** @type {any} */ (su.json()).sessionToken : undefined;
  if (!session) {
    const li = await requestAsync('POST', `${env.checkout}/api/sessions`, JSON.stringify({ email, password }), { headers: json, jar, tags: { name: 'login' } });
    if (li.status !== 200) return `error:login:${errorCode(li)}`;
    session = /** @type {any} */ (li.json()).sessionToken;
  }
  const auth = `Bearer ${session}`;
  const rs = await requestAsync('POST', `${env.checkout}/api/sales/${sale}/reservations`, '{}', {
    headers: { ...json, authorization: auth, 'x-admission-token': token, 'idempotency-key': email }, jar,
    tags: { name: 'reserve' }, responseCallback: http.expectedStatuses(201, 409),
  });
  if (rs.status === 409 && errorCode(rs) === 'sold_out') return 'sold_out';
  if (rs.status !== 201) return `error:reserve:${errorCode(rs)}`;
  const id = /** @type {any} */ (rs.json()).reservationId;
  const pay = await requestAsync('POST', `${env.checkout}/api/reservations/${id}/payment`, JSON.stringify({ method: 'test_ok' }), { headers: { ...json, authorization: auth }, jar, tags: { name: 'pay' } });
  if (pay.status !== 202) return `error:pay:${errorCode(pay)}`;
  for (let i = 0; i < 120; i++) {
    const pr = await requestAsync('GET', `${env.checkout}/api/sales/${sale}/purchase`, null, { headers: { authorization: auth }, jar, tags: { name: 'purchase' } });
    const status = pr.status === 200 ? String(/** @type {any} */ (pr.json()).status) : `http_${pr.status}`;
    if (status === 'success') {
      purchases.add(1);
      return 'bought';
    }
    if (status !== 'in_progress' && status !== 'none') return `error:purchase:${status}`;
    await delay(250);
  }
  return 'error:purchase:never_settled';
}

/**
 * Holds the visitor's WebSocket until `{type:"admitted", token}` or until the room says
 * sold_out/closed; a socket that fails or closes first falls back to `POST /claim` (as the
 * queue page does). Resolves `{token, end}` by `maxWaitSeconds` at the latest (end `timeout`).
 * The room sends each waiting socket a position every round: those of a room still open or in
 * its pre-queue (`{"type":"position"` with neither `sold_out` nor `closed` in it) carry nothing
 * the shopper acts on and are not parsed (at 20,000 sockets that is most of k6's CPU).
 * @param {Env} env @param {string} room @param {string} visitorId @param {string} ip @param {number} maxWaitSeconds @param {import('k6/http').CookieJar} jar
 * @returns {Promise<{token: string | null, end: string}>}
 */
export function waitForAdmission(env, room, visitorId, ip, maxWaitSeconds, jar) {
  const started = Date.now();
  const deadline = started + maxWaitSeconds * 1000;
  const url = `${env.gateway.replace(/^http/, 'ws')}/api/rooms/${room}/ws?vid=${encodeURIComponent(visitorId)}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, null, { headers: { 'x-forwarded-for': ip, 'user-agent': HUMAN_HEADERS['user-agent'] }, tags: { name: 'queue-ws' } });
    let done = false;
    /** @param {string | null} token @param {string} end */
    const finish = (token, end) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (token) {
        admitted.add(1);
        admissionWait.add(Date.now() - started);
      }
      try {
        ws.close();
      } catch (_) { /* already closed */ }
      resolve({ token, end });
    };
    const timer = setTimeout(() => finish(null, 'timeout'), maxWaitSeconds * 1000);
    let claiming = false;
    /** Claims over HTTP until an answer or the deadline (a socket that failed). */
    const claim = async () => {
      if (done) return;
      claiming = true;
      const r = await requestAsync('POST', `${env.gateway}/api/rooms/${room}/claim`, '{}', {
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, 'x-visitor-id': visitorId, ...HUMAN_HEADERS }, jar,
        tags: { name: 'claim' }, responseCallback: http.expectedStatuses(200, 409, 429),
      });
      const code = r.status === 200 ? 'ok' : errorCode(r);
      if (r.status === 200) finish(/** @type {any} */ (r.json()).token, 'admitted');
      else if (code === 'sold_out' || code === 'closed') finish(null, code);
      else if (code !== 'not_yet' && code !== 'rate_limited') finish(null, `claim:${code}`);
      else if (Date.now() < deadline) setTimeout(claim, 1000);
    };
    ws.addEventListener('message', (e) => {
      const s = String(/** @type {import('k6/websockets').MessageEvent} */ (e).data);
      if (s.startsWith('{"type":"position"') && s.indexOf('"state":"sold_out"') < 0 && s.indexOf('"state":"closed"') < 0) return;
      /** @type {any} */
      let m;
      try {
        m = JSON.parse(s);
      } catch (_) {
        return;
      }
      if (m.type === 'admitted' && typeof m.token === 'string') finish(m.token, 'admitted');
      else if ((m.type === 'state' || m.type === 'position') && (m.state === 'sold_out' || m.state === 'closed')) finish(null, m.state);
    });
    const fallBack = () => { if (!done && !claiming) setTimeout(claim, 0); };
    ws.addEventListener('error', fallBack);
    ws.addEventListener('close', fallBack);
  });
}

/**
 * One shopper, start to end: join (a 429 is retried after its Retry-After, as the queue page
 * does, up to 3 times), wait on the WebSocket, buy when admitted. Final answers: bought, or
 * told sold out / closed (at the join, while waiting, or at the reservation): an honest
 * sold_out is not a failure. Anything else (a wait that timed out, a refused join, an error,
 * a purchase that never settled) is `shopper_failed`. Resolves the first join's status and
 * the end. Never blocks its VU: every step is asynchronous (runShoppers runs many at once).
 * @param {Env} env @param {{room: string, sale: string}} data @param {number} n @param {number} maxWaitSeconds
 * @returns {Promise<{status: number, end: string}>}
 */
export async function shopper(env, data, n, maxWaitSeconds) {
  const ip = clientIp(n);
  // Its own cookie jar: the VU's own is shared by every shopper it carries.
  const jar = new http.CookieJar();
  let res = await joinAsync(env, data.room, ip, jar);
  const status = res.status;
  for (let retry = 0; retry < 3 && res.status === 429; retry++) {
    await delay(1000 * Math.min(5, Math.max(1, Number(res.headers['Retry-After']) || 1)));
    res = await joinAsync(env, data.room, ip, jar);
  }
  let end;
  if (res.status === 200) {
    const visitorId = /** @type {any} */ (res.json()).visitorId;
    const w = await waitForAdmission(env, data.room, visitorId, ip, maxWaitSeconds, jar);
    end = w.token === null ? w.end : await buy(env, data.sale, w.token, `k6-${env.runId}-${n}@load.test`, jar);
  } else {
    end = res.status === 409 ? errorCode(res) : `join:${errorCode(res)}`;
  }
  const final = end === 'bought' || end === 'sold_out' || end === 'closed';
  shopperFailed.add(!final, { end: final ? 'final' : end });
  if (end === 'bought') shoppersBought.add(1);
  else if (end === 'sold_out') shoppersSoldOut.add(1);
  else if (!final) reportUnanswered(n, end);
  return { status, end };
}

/** How late a shopper started against its planned arrival (ms): k6 kept the schedule when it is small. */
export const startLag = new Trend('start_lag', true);
/** Shoppers that reached an end (bought, told, or failed): the run offered all it planned when it equals the plan. */
export const shoppersFinished = new Counter('shoppers_finished');

/**
 * The arrivals one iteration of a shoppers scenario (plan.js shopperScenario) carries: every
 * `slots`-th of the plan from `slot`, each started at its planned time (`t0` + its offset) and
 * run concurrently with the others on this VU; resolves when all of them ended. A VU holds no
 * shopper's wait: a few hundred VUs carry 20,000 waiting shoppers.
 * @param {{at: number[], n: number[]}} arrivals @param {number} t0 @param {number} slot @param {number} slots
 * @param {(n: number) => Promise<unknown>} run
 */
export async function runShoppers(arrivals, t0, slot, slots, run) {
  /** @type {Promise<unknown>[]} */
  const running = [];
  for (let j = slot; j < arrivals.at.length; j += slots) {
    const due = t0 + arrivals.at[j];
    const wait = due - Date.now();
    if (wait > 0) await delay(wait);
    startLag.add(Math.max(0, Date.now() - due));
    const n = arrivals.n[j];
    running.push(run(n).catch((e) => {
      shopperFailed.add(true, { end: 'exception' });
      reportUnanswered(n, `exception: ${e}`);
    }).finally(() => shoppersFinished.add(1)));
  }
  await Promise.all(running);
}

let unansweredLogged = 0;
/** The first few shoppers left without an answer, on the console (the summary counts them all). */
function reportUnanswered(/** @type {number} */ n, /** @type {string} */ end) {
  if (unansweredLogged++ < 5) console.warn(`shopper ${n} got no final answer: ${end}`);
}

/**
 * A short text summary for the terminal (handleSummary replaces k6's own), with each threshold.
 * @param {any} data @param {string} title
 */
export function summaryText(data, title) {
  const lines = [`\n${title}`];
  const metrics = data.metrics || {};
  for (const name of Object.keys(metrics).sort()) {
    if (/^(http_req_(blocked|connecting|receiving|sending|tls_handshaking|waiting)|data_|vus$)/.test(name)) continue;
    const m = metrics[name];
    const v = m.values || {};
    const shown = m.type === 'trend'
      ? `p50 ${fmt(v.med)} p95 ${fmt(v['p(95)'])} p99 ${fmt(v['p(99)'])} max ${fmt(v.max)}`
      : m.type === 'counter' ? `count ${fmt(v.count)}` : m.type === 'rate' ? `rate ${fmt(v.rate)} (${fmt(v.passes)} of ${fmt((v.passes ?? 0) + (v.fails ?? 0))})` : `value ${fmt(v.value)}`;
    const th = m.thresholds ? Object.entries(m.thresholds).map(([k, r]) => `${/** @type {any} */ (r).ok ? 'PASS' : 'FAIL'} ${k}`).join('; ') : '';
    lines.push(`  ${name.padEnd(34)} ${shown}${th ? `   [${th}]` : ''}`);
  }
  if (data.setup_data === undefined) {
    lines.push('NOT RUN: setup did not finish (the product did not answer, or the error above)');
    return lines.join('\n') + '\n';
  }
  const failed = Object.values(metrics).some((m) => m.thresholds && Object.values(m.thresholds).some((r) => !/** @type {any} */ (r).ok));
  lines.push(failed ? 'FAILED: a threshold was crossed' : 'PASSED: every threshold held');
  return lines.join('\n') + '\n';
}

/** @param {unknown} v */
function fmt(v) {
  return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : '-';
}
