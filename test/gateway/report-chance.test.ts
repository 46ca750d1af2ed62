/**
 * The fairness report's `chance` table after a real drop (gateway and checkout over real sockets,
 * real Redis and Postgres): 40 visitors each follow the room over a WebSocket and note, as a
 * shopper would, the last `chance` a position message showed before their wait ended (admitted,
 * or told sold out); the first 3 admitted walk away (their claims lapse, so later figures vary);
 * the others reserve and pay, 8 units. Once sold out, the report's table is the one the visitors
 * themselves saw: visitors per bucket, how many were admitted and got a unit; the buckets add up,
 * and the units sold (to visitors shown a chance, and to those never shown one) are checkout's.
 */
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import t from 'tap';
import WebSocket from 'ws';
import { loadConfig } from '../../shared/config.js';
import { CHANCE_BUCKETS, chanceBucket } from '../../shared/chance-buckets.js';
import { startCheckout } from '../../checkout/main.js';
import { startGateway } from '../../waiting-room/server.js';
import { ADMIN, audit, call, createSale, productEnv, until, usersWithSessions } from '../checkout/helpers.js';

const VISITORS = 40;
const UNITS = 8;
const GHOSTS = 3;
const HUGE = { capacity: 10_000_000, refillPerSec: 10_000_000 };

interface Seen { vid: string; chance: number | null; end: string; token: string | null; bought: boolean }

/** Follow one visitor over its WebSocket, as the replay does (load-tests/replay/shard.ts). */
function follow(gw: string, vid: string): Promise<Seen> {
  return new Promise((resolve) => {
    const seen: Seen = { vid, chance: null, end: 'waiting', token: null, bought: false };
    const ws = new WebSocket(`${gw.replace('http', 'ws')}/api/rooms/rc/ws?vid=${encodeURIComponent(vid)}`);
    const done = (end: string, token: string | null) => { seen.end = end; seen.token = token; ws.close(); resolve(seen); };
    const timer = setTimeout(() => done('timeout', null), 90_000);
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'admitted') { clearTimeout(timer); done('admitted', m.token); }
      else if ((m.type === 'state' || m.type === 'position') && (m.state === 'sold_out' || m.state === 'closed')) { clearTimeout(timer); done(m.state, null); }
      else if (m.type === 'position' && typeof m.chance === 'number') seen.chance = m.chance;
    });
    ws.on('error', () => {});
  });
}

t.test(`${VISITORS} visitors on WebSockets, ${UNITS} units: the report's chance table is what they were shown`, async (t) => {
  const { env, stop } = await productEnv(t, 'rchance');
  const gw = await startGateway(loadConfig(env), { port: 0, admitIntervalMs: 50, positionIntervalMs: 200 });
  stop(() => gw.close());
  const co = await startCheckout(loadConfig({ ...env, JWKS_URL: `${gw.url}/.well-known/jwks.json` }), { port: 0, provider: { delayMs: 20 } });
  stop(() => co.close());
  const t0 = Date.now();
  await createSale(co.url, 'rc', { name: 'Chance', priceCents: 100, total: UNITS }); // throws unless 201
  t.equal((await call(gw.url, 'PUT', '/admin/rooms/rc', {
    token: ADMIN,
    body: {
      sale: 'rc', opensAt: new Date(t0 + 1000).toISOString(), prequeueSeconds: 60, admitRatePerMin: 120, maxActive: 100, claimSeconds: 10,
      checkoutUrl: `${co.url}/sales/rc`, captcha: { mode: 'off', threshold: 50 }, limits: { ip: HUGE, subnet: HUGE, room: HUGE },
    },
  })).status, 201);
  const users = await usersWithSessions({ url: co.url, config: { databaseUrl: env.DATABASE_URL } }, VISITORS);

  const vids: string[] = [];
  for (let i = 0; i < VISITORS; i++) {
    const j = await call(gw.url, 'POST', '/api/rooms/rc/join', { body: {} });
    t.equal(j.status, 200);
    vids.push(j.body.visitorId);
  }
  let admittedSoFar = 0;
  let user = 0;
  const seen = await Promise.all(vids.map(async (vid) => {
    const s = await follow(gw.url, vid);
    if (s.end !== 'admitted') return s;
    if (admittedSoFar++ < GHOSTS) return s; // walks away: its claim lapses
    const u = users[user++]!;
    const r = await call(co.url, 'POST', '/api/sales/rc/reservations', { token: u.token, headers: { 'x-admission-token': s.token! } });
    if (r.status !== 201) return s; // told sold_out at the till
    const p = await call(co.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: u.token, body: { method: 'test_ok' } });
    s.bought = p.status === 202;
    return s;
  }));
  const sale = await until(async () => { const a = await audit(co.url, 'rc'); return a.sold === UNITS && a; }, 60_000, 'every unit paid');
  t.equal(sale.ok, true, "checkout's audit is ok");
  await until(async () => (await call(gw.url, 'GET', '/api/rooms/rc')).body.state === 'sold_out', 10_000, 'the room to turn sold_out');
  t.same(seen.filter((s) => s.end === 'timeout'), [], 'every visitor heard how its wait ended');

  // What the visitors saw, bucket by bucket.
  const shown = seen.filter((s) => s.chance !== null);
  const mine = CHANCE_BUCKETS.map((_, k) => {
    const inB = shown.filter((s) => chanceBucket(s.chance!) === k);
    return { visitors: inB.length, admitted: inB.filter((s) => s.end === 'admitted').length, gotUnit: inB.filter((s) => s.bought).length };
  });
  t.ok(shown.length >= VISITORS - UNITS, `${shown.length} of ${VISITORS} visitors were shown a chance`);
  t.ok(mine.filter((b) => b.visitors > 0).length >= 2, 'in more than one bucket');

  // The processes add their waiting visitors when they see the end: within a moment of it.
  const res = await until(async () => {
    const r = await call(gw.url, 'GET', '/api/rooms/rc/report');
    return r.status === 200 && r.body.report.chance?.visitors === shown.length && r;
  }, 10_000, 'the report to count every visitor shown a chance');
  const { chance } = res.body.report;
  t.same(chance.buckets.map((b: any) => [b.from, b.to]), CHANCE_BUCKETS, 'the five buckets');
  t.same(chance.buckets.map((b: any) => ({ visitors: b.visitors, admitted: b.admitted, gotUnit: b.gotUnit })), mine, 'per bucket: what the visitors themselves saw');
  t.equal(chance.buckets.reduce((n: number, b: any) => n + b.visitors, 0), chance.visitors, 'the buckets add up to the visitors shown a chance');
  for (const b of chance.buckets) {
    t.ok(b.gotUnit <= b.admitted && b.admitted <= b.visitors, `bucket ${b.from}-${b.to}: got ${b.gotUnit} <= admitted ${b.admitted} <= ${b.visitors}`);
    const mean = b.visitors ? shown.filter((s) => chanceBucket(s.chance!) === CHANCE_BUCKETS.findIndex(([f]) => f === b.from)).reduce((x, s) => x + s.chance!, 0) / b.visitors : null;
    t.equal(b.shownMean === null ? null : Math.abs(b.shownMean - mean!) < 0.001, b.visitors ? true : null, `bucket ${b.from}-${b.to}: mean shown`);
  }
  const boughtShown = chance.buckets.reduce((n: number, b: any) => n + b.gotUnit, 0);
  t.equal(chance.soldUnshown, seen.filter((s) => s.bought && s.chance === null).length, 'units to visitors never shown a chance');
  t.equal(boughtShown + chance.soldUnshown, sale.sold, "units got, shown a chance or not = checkout's audit sold");
  t.equal(res.body.report.units.sold, sale.sold);

  const jwks = (await call(gw.url, 'GET', '/.well-known/jwks.json')).body as JSONWebKeySet;
  const verified = await compactVerify(res.body.jws, createLocalJWKSet(jwks));
  t.same(JSON.parse(new TextDecoder().decode(verified.payload)).chance, chance, 'the table is in the signed report');
});
