/**
 * `npm run chaos`: a drop on the rehearsal (scripts/rehearsal.ts: a Redis Cluster of three masters
 * with a replica each, three gateways on one port, two checkout workers on one port) while its
 * parts die in turn: a gateway (SIGKILL), the Redis master that holds the room (SIGKILL, its
 * replica is promoted), Postgres (SIGKILL of the whole server, started again a few seconds later:
 * a Postgres this script started itself, never one it found) and a checkout worker (SIGKILL; the
 * primary starts another). VISITORS visitors (default 3000) join from this process, wait on a
 * WebSocket that reconnects like the queue page (and falls back to /me, joining again if the room
 * lost them), and SHOPPERS of them (default 200, spread over the queue) sign up, reserve with their
 * admission token and pay once admitted; STOCK units (default 100) are for sale.
 *
 * The room admits about as many as there are units (docs/api.md section 7), so the admission rate
 * (ADMIT_RATE_PER_MIN, default: STOCK in about 25 s) spreads the shopping over the faults; every
 * admitted visitor shops (every fifth pays with a declined card, so its unit goes back and the room
 * admits another), up to SHOPPERS. The drop ends once the faults are over, every shopper is done,
 * and the room is sold out or holds.
 *
 * It prints what it did and what it saw, and exits 0 only when: the sale's audit is ok, units sold
 * <= stock, no ticket went to two visitors, every visitor answered (its token, or /me with the
 * ticket it was given), every shopper's reservation got a final answer, and no answer was a 5xx
 * other than 503 `unavailable` with Retry-After. Everything it started is stopped at the end (and
 * on Ctrl-C), by process id.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { roomKeys } from '../shared/keys.js';
import { describeError } from '../shared/errors.js';
import { stopsOnSignals } from './stops.js';
import { startRehearsal } from './rehearsal.js';
import { startPostgresServer } from './postgres-server.js';

const { stops, stopAll } = stopsOnSignals('chaos: stopping everything it started…');
const num = (name: string, dflt: number) => { const v = Number(process.env[name] ?? dflt); if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`); return v; };
const VISITORS = num('VISITORS', 3000);
const STOCK = num('STOCK', 100);
const SHOPPERS = num('SHOPPERS', 1000);
/** The stock's worth of visitors admitted in about 25 s: the faults happen while shoppers shop. */
const RATE = num('ADMIT_RATE_PER_MIN', Math.ceil((STOCK * 60) / 25));
const DEADLINE_MS = num('CHAOS_DEADLINE_MS', 240_000);
/** The visitors arrive over this long (ms). */
const JOIN_MS = num('JOIN_MS', 20_000);

const T0 = Date.now();
const stamp = () => `+${((Date.now() - T0) / 1000).toFixed(1)}s`;
const say = (line: string) => console.log(`chaos ${stamp()} ${line}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const jitter = (ms: number) => ms * (0.5 + Math.random() * 0.5);

// ---- what it saw ---------------------------------------------------------------------------
const answers = new Map<string, number>();
const bad: string[] = [];
let slowest = { ms: 0, what: '' };
const countAnswer = (what: string, status: number, error: unknown, retryAfter: string | null, ms: number) => {
  const k = `${what} ${status === 0 ? 'no answer' : status}${status >= 400 ? ` ${String(error)}` : ''}`;
  answers.set(k, (answers.get(k) ?? 0) + 1);
  if (status >= 500 && !(status === 503 && error === 'unavailable' && /^\d+$/.test(retryAfter ?? ''))) bad.push(`${what}: ${status} ${String(error)}`);
  if (ms > slowest.ms) slowest = { ms, what: `${what} ${status}` };
};

interface Reply { status: number; body: Record<string, unknown>; retryAfter: number }

/** One HTTP call, counted; status 0 when no answer came (a killed process, a refused connection). */
async function http(what: string, url: string, init: RequestInit = {}): Promise<Reply> {
  const started = performance.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    const ra = res.headers.get('retry-after');
    countAnswer(what, res.status, body.error, ra, performance.now() - started);
    return { status: res.status, body, retryAfter: Number(ra) || 1 };
  } catch {
    countAnswer(what, 0, 'no answer', null, performance.now() - started);
    return { status: 0, body: {}, retryAfter: 0.5 };
  }
}

/** Call until the answer is neither a 503 nor no answer (each retried after Retry-After), or the deadline. */
async function settled(what: string, url: string, init: () => RequestInit): Promise<Reply> {
  for (;;) {
    const r = await http(what, url, init());
    if ((r.status !== 503 && r.status !== 0) || Date.now() - T0 > DEADLINE_MS) return r;
    await sleep(jitter(r.retryAfter * 1000));
  }
}

const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'wr-chaos-'));
  stops.unshift(async () => rmSync(dataDir, { recursive: true, force: true }));
  const pg = await startPostgresServer();
  stops.unshift(() => pg.stop());
  say(`Postgres of its own on ${pg.adminUrl.replace(/\/postgres$/, '')} (pid ${pg.pid()})`);
  const r = await startRehearsal({
    env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: pg.url, GATEWAY_PORT: process.env.GATEWAY_PORT ?? '0', CHECKOUT_PORT: process.env.CHECKOUT_PORT ?? '0', LOG_LEVEL: process.env.LOG_LEVEL ?? 'error' },
    stops, say, echo: () => {},
  });
  const { config, gatewayUrl: gw, checkoutUrl: co } = r;
  say(`rehearsal up: gateways ${r.gateways.map((g) => g.pid).join(' ')} on ${gw}, checkout primary ${r.checkout.pid} with workers ${r.checkoutWorkers().join(' ')} on ${co}, Redis Cluster ${r.redis.seeds}`);
  const admin = { authorization: `Bearer ${config.adminToken}`, 'content-type': 'application/json' };
  const room = 'chaos';
  const sale = `chaos-${Date.now()}`;
  const put = async (url: string, body: unknown) => {
    const res = await fetch(url, { method: 'PUT', headers: admin, body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`PUT ${url}: ${res.status} ${await res.text()}`);
  };
  await put(`${co}/admin/sales/${sale}`, { name: 'Chaos Drop', priceCents: 4900, currency: 'EUR', total: STOCK, startsAt: new Date(Date.now() - 60_000).toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString() });
  const open = { capacity: 1_000_000, refillPerSec: 1_000_000 };
  await put(`${gw}/admin/rooms/${room}`, {
    name: 'Chaos Drop', sale, checkoutUrl: `${co}/sales/${sale}`, opensAt: new Date(Date.now() - 1000).toISOString(), prequeueSeconds: 0,
    admitRatePerMin: RATE, maxActive: 1_000_000, limits: { ip: open, subnet: open, room: open }, captcha: { mode: 'off' },
  });
  say(`room "${room}" open, admitting ${RATE}/min; sale "${sale}" with ${STOCK} units; ${VISITORS} visitors, every admitted one shops (up to ${SHOPPERS})`);
  await sleep(2500); // every gateway has heard of the room (within 2 s)

  // ---- the visitors ------------------------------------------------------------------------
  const holders = new Map<number, Set<number>>();
  const tokens: (string | null)[] = Array(VISITORS).fill(null);
  const vids: (string | null)[] = Array(VISITORS).fill(null);
  const tickets: (number | null)[] = Array(VISITORS).fill(null);
  const stats = { joins: 0, rejoins: 0, wsOpens: 0, wsDrops: 0, lastAdmitted: 0, shoppers: { started: 0, done: 0, final: 0, reserved: 0, paid: 0, declined: 0, pending: 0, refused: new Map<string, number>() } };
  const shopping: Promise<void>[] = [];
  /** Set when the drop is over: visitors still waiting stop waiting. */
  let over = false;

  const joinOnce = async (i: number) => {
    const r = await settled('join', `${gw}/api/rooms/${room}/join`, () => json({}, { 'user-agent': 'Mozilla/5.0 (chaos)', ...(vids[i] ? { 'x-visitor-id': vids[i]! } : {}) }));
    if (typeof r.body.visitorId === 'string') vids[i] = r.body.visitorId;
    if (r.status === 200 && typeof r.body.ticket === 'number') {
      stats.joins++;
      tickets[i] = r.body.ticket;
      const h = holders.get(r.body.ticket) ?? new Set<number>();
      holders.set(r.body.ticket, h.add(i));
    }
    return r;
  };

  const admitted = (i: number, token: string) => {
    if (tokens[i]) return;
    tokens[i] = token;
    stats.lastAdmitted = Date.now();
    if (stats.shoppers.started < SHOPPERS) { stats.shoppers.started++; shopping.push(shop(i, token).finally(() => { stats.shoppers.done++; })); }
  };

  const visitor = async (i: number) => {
    await joinOnce(i);
    if (!vids[i]) return;
    const me = async () => {
      const r = await http('me', `${gw}/api/rooms/${room}/me`, { headers: { 'x-visitor-id': vids[i]! } });
      if (r.status === 200 && (r.body.admitted === true || r.body.position === 0)) {
        const c = await http('claim', `${gw}/api/rooms/${room}/claim`, json({}, { 'x-visitor-id': vids[i]! }));
        if (c.status === 200 && typeof c.body.token === 'string') admitted(i, c.body.token);
      } else if (r.status === 404 && r.body.error === 'not_in_queue') {
        stats.rejoins++;
        await joinOnce(i);
      }
    };
    await waitWith(i, me);
  };
  /**
   * Wait for the token on a WebSocket that reconnects like the queue page (0.5 s doubling to 10 s,
   * jittered), with `me` (/me, /claim once admitted, join again if the room lost the visitor) every
   * few seconds while it is down.
   */
  const waitWith = (i: number, me: () => Promise<void>) => new Promise<void>((resolve) => {
    let attempts = 0;
    let poll: NodeJS.Timeout | null = null;
    const deadline = setTimeout(() => done(), Math.max(0, DEADLINE_MS - (Date.now() - T0)));
    const done = () => { clearTimeout(deadline); if (poll) clearInterval(poll); resolve(); };
    const connect = () => {
      if (tokens[i] || over || Date.now() - T0 > DEADLINE_MS) return done();
      const ws = new WebSocket(`${gw.replace('http', 'ws')}/api/rooms/${room}/ws`, { headers: { 'x-visitor-id': vids[i]! } });
      ws.on('open', () => { attempts = 0; stats.wsOpens++; if (poll) { clearInterval(poll); poll = null; } });
      ws.on('message', (raw) => {
        let m: { type?: string; token?: string; position?: number | null };
        try { m = JSON.parse(String(raw)) as typeof m; } catch { return; }
        if (m.type === 'admitted' && m.token) { admitted(i, m.token); ws.close(1000); }
        else if (m.type === 'position' && m.position === null) void me(); // the room does not know this visitor
        if (over) ws.close(1000);
      });
      ws.on('error', () => {});
      ws.on('close', () => {
        if (tokens[i] || over) return done();
        stats.wsDrops++;
        poll ??= setInterval(() => void me().then(() => { if (tokens[i]) done(); }), jitter(3000) + 1500);
        setTimeout(connect, jitter(Math.min(10_000, 500 * 2 ** attempts++)));
      });
    };
    connect();
  });

  // ---- the shoppers ------------------------------------------------------------------------
  const shop = async (i: number, token: string) => {
    const declines = stats.shoppers.started % 5 === 0;
    const email = `chaos-${i}-${randomUUID().slice(0, 6)}@example.com`;
    const password = 'password123';
    let signup = await settled('sign-up', `${co}/api/users`, () => json({ email, password }));
    if (signup.status === 409) signup = await settled('log-in', `${co}/api/sessions`, () => json({ email, password }));
    const session = signup.body.sessionToken;
    if (typeof session !== 'string') return;
    const auth = { authorization: `Bearer ${session}` };
    const key = randomUUID();
    const res = await settled('reserve', `${co}/api/sales/${sale}/reservations`, () => ({ method: 'POST', headers: { ...auth, 'x-admission-token': token, 'idempotency-key': key } }));
    if (res.status === 0 || res.status >= 500) return;
    stats.shoppers.final++;
    if (res.status !== 201) { const k = String(res.body.error); stats.shoppers.refused.set(k, (stats.shoppers.refused.get(k) ?? 0) + 1); return; }
    stats.shoppers.reserved++;
    const pay = await settled('pay', `${co}/api/reservations/${String(res.body.reservationId)}/payment`, () => json({ method: declines ? 'test_decline' : 'test_ok' }, auth));
    if (pay.status !== 202) return;
    for (let n = 0; n < 40 && Date.now() - T0 < DEADLINE_MS; n++) {
      const p = await http('purchase', `${co}/api/sales/${sale}/purchase`, { headers: auth });
      if (p.body.status === 'success') { stats.shoppers.paid++; return; }
      if (p.body.status === 'failed') { stats.shoppers.declined++; return; }
      if (p.body.status !== 'in_progress' && p.status === 200) return;
      await sleep(500);
    }
    stats.shoppers.pending++; // accepted, not settled: see the payment reconciliation
  };

  // ---- the drop and the faults -------------------------------------------------------------
  const did: string[] = [];
  const fault = (line: string) => { did.push(`${stamp()} ${line}`); say(line); };
  // The visitors arrive over JOIN_MS, so joins meet the first faults too.
  const visitors = (async () => {
    const all: Promise<void>[] = [];
    const start = Date.now();
    for (let i = 0; i < VISITORS; i++) {
      const due = start + (i * JOIN_MS) / VISITORS - Date.now();
      if (due > 0) await sleep(due);
      all.push(visitor(i).catch((e: unknown) => { bad.push(`visitor: ${describeError(e)}`); }));
    }
    await Promise.all(all);
  })();
  const faults = (async () => {
    await sleep(3000);
    const victim = r.gateways[0]!;
    await victim.kill();
    fault(`SIGKILL ${victim.name} (pid ${victim.pid}); ${r.gateways.length - 1} gateways keep the port`);
    await sleep(4000);
    const master = await r.redis.masterOf(roomKeys(config.redisPrefix, room).q);
    r.redis.kill(master);
    const killed = Date.now();
    fault(`SIGKILL the Redis master of the room (port ${master})`);
    await r.redis.waitOk(60_000);
    fault(`Redis Cluster ok again after ${Date.now() - killed} ms (its replica promoted)`);
    await sleep(2000);
    const pgPid = pg.pid();
    await pg.kill();
    fault(`SIGKILL Postgres (pid ${pgPid}, postmaster and backends)`);
    await sleep(3000);
    await pg.start();
    fault(`Postgres started again (pid ${pg.pid()})`);
    await sleep(2000);
    const worker = r.checkoutWorkers().at(-1)!;
    process.kill(worker, 'SIGKILL');
    fault(`SIGKILL checkout worker (pid ${worker}); the primary starts another`);
  })();
  const progress = setInterval(() => say(`progress: ${stats.joins} joins, ${tokens.filter(Boolean).length} admitted, ${stats.shoppers.final} of ${stats.shoppers.started} shoppers answered, ${stats.wsDrops} socket drops`), 5000);
  await faults;
  // The drop is over once every shopper is done and the room is sold out, or holds (no unit left
  // to promise) with nobody admitted for 5 s, or has admitted everyone.
  for (;;) {
    await sleep(1000);
    const shopped = stats.shoppers.done >= stats.shoppers.started;
    const state = await http('state', `${gw}/api/rooms/${room}`);
    const quiet = Date.now() - stats.lastAdmitted > 5000;
    if (shopped && quiet && (state.body.state === 'sold_out' || state.body.held === true || tokens.every(Boolean) || stats.shoppers.started >= SHOPPERS)) break;
    if (Date.now() - T0 > DEADLINE_MS) { bad.push(`the drop did not end within ${DEADLINE_MS} ms`); break; }
  }
  over = true;
  await visitors;
  await Promise.all(shopping);
  clearInterval(progress);

  // ---- what it saw --------------------------------------------------------------------------
  const auditRes = await settled('audit', `${co}/admin/sales/${sale}/audit`, () => ({ headers: admin }));
  const audit = auditRes.body;
  const twice = [...holders].filter(([, h]) => h.size > 1);
  // Every visitor not admitted still has its place: /me answers the ticket it was given.
  const waiting = tokens.flatMap((t, i) => (t === null ? [i] : []));
  const places = await Promise.all(waiting.map(async (i) => {
    const me = await settled('me (at the end)', `${gw}/api/rooms/${room}/me`, () => ({ headers: { 'x-visitor-id': vids[i] ?? '' } }));
    return me.status === 200 && me.body.ticket === tickets[i] && tickets[i] !== null;
  }));
  const lost = places.filter((ok) => !ok).length;
  const unanswered = stats.shoppers.started - stats.shoppers.final;
  say('what it did:');
  for (const d of did) console.log(`  ${d}`);
  say('what it saw:');
  console.log(`  visitors: ${VISITORS}, joined ${stats.joins} times (${stats.rejoins} joined again after the room lost them), ${holders.size} tickets`);
  console.log(`  WebSockets: ${stats.wsOpens} opened, ${stats.wsDrops} dropped and reconnected`);
  console.log(`  admitted with a token: ${VISITORS - waiting.length} of ${VISITORS}; the other ${waiting.length} still in line, ${lost} of them without their place`);
  console.log(`  shoppers: ${stats.shoppers.started}, ${stats.shoppers.final} answered, ${stats.shoppers.reserved} reserved, ${stats.shoppers.paid} paid, ${stats.shoppers.declined} declined, ${stats.shoppers.pending} payments still pending, refused: ${[...stats.shoppers.refused].map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`);
  console.log(`  answers: ${[...answers].sort().map(([k, n]) => `${k} x${n}`).join(', ')}`);
  console.log(`  slowest answer: ${Math.round(slowest.ms)} ms (${slowest.what})`);
  console.log(`  audit: ${JSON.stringify(audit)}`);
  const checks: [boolean, string][] = [
    [audit.ok === true, 'the audit is ok'],
    [Number(audit.sold) <= STOCK && Number(audit.sold) + Number(audit.reserved) + Number(audit.available) === STOCK, `units sold (${String(audit.sold)}) <= stock (${STOCK})`],
    [twice.length === 0, `every ticket unique${twice.length ? ` (${twice.length} tickets went to two visitors)` : ''}`],
    [lost === 0, `every visitor answered: its token, or its place in line${lost ? ` (${lost} lost their place)` : ''}`],
    [unanswered === 0, `every shopper answered${unanswered ? ` (${unanswered} were not)` : ''}`],
    [bad.length === 0, `no 5xx but 503 unavailable with Retry-After${bad.length ? `: ${bad.slice(0, 5).join('; ')}` : ''}`],
  ];
  for (const [ok, what] of checks) console.log(`  ${ok ? 'ok' : 'NOT OK'}: ${what}`);
  const failed = checks.some(([ok]) => !ok);
  say(failed ? 'FAILED' : 'PASSED');
  await stopAll(failed ? 1 : 0);
}

main().catch((err: unknown) => {
  console.error(`npm run chaos failed: ${describeError(err)}`);
  void stopAll(1);
});
