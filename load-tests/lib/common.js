// @ts-check
/**
 * Helpers shared by the k6 scripts (drop-day.js, bots.js, soak.js): environment, operator
 * calls (room and sale), the shopper's steps, the end-of-test audit, and a plain summary.
 * Written for k6 v2.x (type-checked against @types/k6 2.3.0); see load-tests/README.md.
 */
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Trend, Rate } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';

/** @param {string} name @param {string} dflt */
function envStr(name, dflt) {
  const v = __ENV[name];
  return v === undefined || v === '' ? dflt : v;
}
/** @param {string} name @param {number} dflt */
function envNum(name, dflt) {
  const n = Number(envStr(name, String(dflt)));
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number`);
  return n;
}

/** k6-style duration ("90s", "2m", "1h30m", "500ms") in seconds. @param {string} d */
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
 * @param {{visitors: number, stock: number, duration: string}} defaults
 */
export function loadEnv(defaults) {
  return {
    gateway: envStr('GATEWAY_URL', 'http://127.0.0.1:8080').replace(/\/$/, ''),
    checkout: envStr('CHECKOUT_URL', 'http://127.0.0.1:8081').replace(/\/$/, ''),
    adminToken: envStr('ADMIN_TOKEN', 'dev-admin-token'),
    visitors: envNum('VISITORS', defaults.visitors),
    stock: envNum('STOCK', defaults.stock),
    duration: envStr('DURATION', defaults.duration),
    /** The load generator's address as the gateway sees it: trusted to set x-forwarded-for. */
    trustedProxy: envStr('TRUSTED_PROXY', '127.0.0.1/32'),
    joinP99Ms: envNum('JOIN_P99_MS', 500),
    admitRatePerMin: envNum('ADMIT_RATE', 6000),
    maxActive: envNum('MAX_ACTIVE', 1000),
    runId: envStr('RUN_ID', `${Date.now().toString(36)}`),
  };
}

/** @typedef {ReturnType<typeof loadEnv>} Env */

// Metrics every script shares: thresholds name them.
export const serverErrors = new Counter('server_errors');
export const joinDuration = new Trend('join_duration', true);
export const oversell = new Counter('oversell');
export const auditFailed = new Counter('audit_failed');
export const purchases = new Counter('purchases');
export const admitted = new Counter('admitted');
export const admissionWait = new Trend('admission_wait', true);
export const shopperFailed = new Rate('shopper_failed');

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
  return { room: name, sale: name, opensAt };
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
  const sold = Number(state.sold ?? 0);
  oversell.add(Math.max(0, sold - env.stock));
  auditFailed.add(audit && audit.ok === true ? 0 : 1);
  check(audit, { 'audit ok': (x) => x && x.ok === true });
  console.log(`audit of ${sale}: ${JSON.stringify(audit)}; sold ${sold} of ${env.stock}`);
  return { audit, sold };
}

/** A client address for x-forwarded-for: distinct per n, 250 per /24. @param {number} n */
export function clientIp(n) {
  const x = n % (250 * 250 * 250);
  return `10.${1 + Math.floor(x / 62500)}.${Math.floor(x / 250) % 250}.${1 + (x % 250)}`;
}

export const BROWSER_UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

/**
 * POST /api/rooms/:room/join from `ip` (x-forwarded-for). Returns the response.
 * @param {Env} env @param {string} room @param {string} ip @param {Record<string, string>} [headers] @param {import('k6/http').CookieJar} [jar]
 */
export function join(env, room, ip, headers = { 'user-agent': BROWSER_UA, 'accept-language': 'en-GB,en;q=0.9' }, jar) {
  /** @type {import('k6/http').RefinedParams<'text'>} */
  const params = { headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...headers }, tags: { name: 'join' }, responseCallback: http.expectedStatuses(200, 403, 409, 429) };
  if (jar) params.jar = jar;
  const res = countServerError(http.post(`${env.gateway}/api/rooms/${room}/join`, '{}', params));
  joinDuration.add(res.timings.duration);
  return res;
}

/**
 * A shopper after admission: sign up (or log in), reserve with the admission token, pay with the
 * simulated provider, then poll the purchase until it settles. Returns true on success.
 * @param {Env} env @param {string} sale @param {string} token @param {string} email
 */
export function buy(env, sale, token, email) {
  const json = { 'content-type': 'application/json' };
  const password = 'k6-Passw0rd!';
  const su = countServerError(http.post(`${env.checkout}/api/users`, JSON.stringify({ email, password }), { headers: json, tags: { name: 'signup' }, responseCallback: http.expectedStatuses(201, 409) }));
  if (!check(su, { 'signed up': (r) => r.status === 201 || r.status === 409 })) return false;
  // A new account comes logged in; an existing one (a repeat iteration) logs in.
  let session = su.status === 201 ? /** @type {any} */ (su.json()).sessionToken : undefined;
  if (!session) {
    const li = countServerError(http.post(`${env.checkout}/api/sessions`, JSON.stringify({ email, password }), { headers: json, tags: { name: 'login' } }));
    if (!check(li, { 'logged in': (r) => r.status === 200 })) return false;
    session = /** @type {any} */ (li.json()).sessionToken;
  }
  const auth = `Bearer ${session}`;
  const rs = countServerError(http.post(`${env.checkout}/api/sales/${sale}/reservations`, '{}', {
    headers: { ...json, authorization: auth, 'x-admission-token': token, 'idempotency-key': email },
    tags: { name: 'reserve' }, responseCallback: http.expectedStatuses(201, 409),
  }));
  if (!check(rs, { 'reserved or sold out': (r) => r.status === 201 || r.status === 409 }) || rs.status !== 201) return false;
  const id = /** @type {any} */ (rs.json()).reservationId;
  const pay = countServerError(http.post(`${env.checkout}/api/reservations/${id}/payment`, JSON.stringify({ method: 'test_ok' }), { headers: { ...json, authorization: auth }, tags: { name: 'pay' } }));
  if (!check(pay, { 'payment accepted': (r) => r.status === 202 })) return false;
  for (let i = 0; i < 60; i++) {
    const pr = countServerError(http.get(`${env.checkout}/api/sales/${sale}/purchase`, { headers: { authorization: auth }, tags: { name: 'purchase' } }));
    const status = pr.status === 200 ? /** @type {any} */ (pr.json()).status : 'error';
    if (status === 'success') {
      purchases.add(1);
      return true;
    }
    if (status !== 'in_progress' && status !== 'none') return false;
    sleep(0.25);
  }
  return false;
}

/**
 * Holds the visitor's WebSocket until `{type:"admitted", token}` (resolves the token) or until
 * the room says sold_out/closed or `maxWaitSeconds` pass (resolves null).
 * @param {Env} env @param {string} room @param {string} visitorId @param {string} ip @param {number} maxWaitSeconds
 * @returns {Promise<{token: string | null, end: string}>}
 */
export function waitForAdmission(env, room, visitorId, ip, maxWaitSeconds) {
  const started = Date.now();
  const url = `${env.gateway.replace(/^http/, 'ws')}/api/rooms/${room}/ws?vid=${encodeURIComponent(visitorId)}`;
  return new Promise((resolve) => {
    const ws = new WebSocket(url, null, { headers: { 'x-forwarded-for': ip, 'user-agent': BROWSER_UA }, tags: { name: 'queue-ws' } });
    let done = false;
    /** @param {string | null} token @param {string} end */
    const finish = (token, end) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.close();
      resolve({ token, end });
    };
    const timer = setTimeout(() => finish(null, 'timeout'), maxWaitSeconds * 1000);
    ws.addEventListener('message', (e) => {
      /** @type {any} */
      let m;
      try {
        m = JSON.parse(String(/** @type {import('k6/websockets').MessageEvent} */ (e).data));
      } catch (_) {
        return;
      }
      if (m.type === 'admitted' && typeof m.token === 'string') {
        admitted.add(1);
        admissionWait.add(Date.now() - started);
        finish(m.token, 'admitted');
      } else if ((m.type === 'state' || m.type === 'position') && (m.state === 'sold_out' || m.state === 'closed')) {
        finish(null, m.state);
      }
    });
    ws.addEventListener('error', () => finish(null, 'ws_error'));
    ws.addEventListener('close', () => finish(null, 'ws_closed'));
  });
}

/**
 * One shopper, start to end: join, wait on the WebSocket, buy when admitted. A shopper told
 * the room is sold out or closed has been served correctly; a timeout or error is a failure.
 * Resolves the join's HTTP status.
 * @param {Env} env @param {{room: string, sale: string}} data @param {number} n @param {number} maxWaitSeconds
 * @returns {Promise<number>}
 */
export async function shopper(env, data, n, maxWaitSeconds) {
  const ip = clientIp(n);
  const res = join(env, data.room, ip);
  if (!check(res, { 'joined': (r) => r.status === 200 || r.status === 409 })) {
    shopperFailed.add(true);
    return res.status;
  }
  if (res.status !== 200) return res.status; // 409 sold_out / closed: nothing left to wait for
  const visitorId = /** @type {any} */ (res.json()).visitorId;
  const w = await waitForAdmission(env, data.room, visitorId, ip, maxWaitSeconds);
  if (w.token === null) {
    shopperFailed.add(w.end !== 'sold_out' && w.end !== 'closed');
    return res.status;
  }
  shopperFailed.add(!buy(env, data.sale, w.token, `k6-${env.runId}-${n}@load.test`));
  return res.status;
}

/**
 * A short text summary for the terminal (handleSummary replaces k6's own), with each threshold.
 * @param {any} data @param {string} title
 */
export function summaryText(data, title) {
  const lines = [`\n${title}`];
  const metrics = data.metrics || {};
  for (const name of Object.keys(metrics).sort()) {
    const m = metrics[name];
    const v = m.values || {};
    const shown = m.type === 'trend'
      ? `p50 ${fmt(v.med)} p95 ${fmt(v['p(95)'])} p99 ${fmt(v['p(99)'])} max ${fmt(v.max)}`
      : m.type === 'counter' ? `count ${fmt(v.count)}` : m.type === 'rate' ? `rate ${fmt(v.rate)}` : `value ${fmt(v.value)}`;
    const th = m.thresholds ? Object.entries(m.thresholds).map(([k, r]) => `${/** @type {any} */ (r).ok ? 'PASS' : 'FAIL'} ${k}`).join('; ') : '';
    lines.push(`  ${name.padEnd(28)} ${shown}${th ? `   [${th}]` : ''}`);
  }
  return lines.join('\n') + '\n';
}

/** @param {unknown} v */
function fmt(v) {
  return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : '-';
}
