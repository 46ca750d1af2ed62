/**
 * The fairness report after a real drop, gateway and checkout over real sockets: 1,500 visitors
 * in the pre-queue (a third of them rate-limited once before they got in, so flagged), 300 after
 * open, 20 units bought by the first 20 tickets. Once the room is sold out the report is public,
 * its counts equal the gateway's stats and checkout's audit, the share of units to flagged
 * visitors is what the test itself can count, the draw it quotes passes the verifier, and its JWS
 * verifies with the gateway's JWKS. Its `chance` table holds, per bucket, the figure `GET /me` showed
 * the visitors still waiting after half the units sold (they follow no WebSocket), and it adds up.
 */
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import t from 'tap';
import { loadConfig } from '../../shared/config.js';
import { CHANCE_BUCKETS, chanceBucket } from '../../shared/chance-buckets.js';
import { startCheckout } from '../../checkout/main.js';
import { fetchDraw, verifyDraw } from '../../waiting-room/draw-verify.js';
import { startGateway } from '../../waiting-room/server.js';
import { ADMIN, audit, call, productEnv, until, usersWithSessions } from '../checkout/helpers.js';
import { inWaves } from './helpers.js';

const PRE = 1500;
const POST = 300;
const UNITS = 20;
const HUGE = { capacity: 10_000_000, refillPerSec: 10_000_000 };

t.test(`a drop of ${PRE + POST} visitors and ${UNITS} units: the signed fairness report`, async (t) => {
  const { env, stop } = await productEnv(t, 'report');
  // One clock for both services, moved forward to open the room.
  let offset = 0;
  const clock = () => Date.now() + offset;
  const gw = await startGateway(loadConfig(env), { port: 0, clock, admitIntervalMs: 50 });
  stop(() => gw.close());
  const co = await startCheckout(loadConfig({ ...env, JWKS_URL: `${gw.url}/.well-known/jwks.json` }), { port: 0, clock, provider: { delayMs: 20 } });
  stop(() => co.close());

  const t0 = Date.now();
  const opensAt = t0 + 120_000;
  t.equal((await call(co.url, 'PUT', '/admin/sales/rep', {
    token: ADMIN,
    body: { name: 'Report', priceCents: 100, currency: 'EUR', total: UNITS, startsAt: new Date(t0 - 60_000).toISOString(), endsAt: new Date(t0 + 3600_000).toISOString() },
  })).status, 201);
  t.equal((await call(gw.url, 'PUT', '/admin/rooms/rep', {
    token: ADMIN,
    body: {
      sale: 'rep', opensAt: new Date(opensAt).toISOString(), prequeueSeconds: 300, admitRatePerMin: 60_000, maxActive: 100_000,
      checkoutUrl: `${co.url}/sales/rep`, captcha: { mode: 'off', threshold: 50 }, trustedProxies: ['127.0.0.1/32'],
      limits: { ip: { capacity: 2, refillPerSec: 0.001 }, subnet: HUGE, room: HUGE },
    },
  })).status, 201);
  const users = await usersWithSessions({ url: co.url, config: { databaseUrl: env.DATABASE_URL } }, UNITS);

  // Joins from their own addresses: per 3 visitors one address, whose third visitor is limited
  // (the address's bucket holds 2) and gets in from a fresh address: flagged by the defences.
  let addr = 0;
  const nextIp = () => { addr++; return `10.${(addr >> 16) & 255}.${(addr >> 8) & 255}.${addr & 255}`; };
  const joinFrom = (ip: string, vid?: string) => call(gw.url, 'POST', '/api/rooms/rep/join', { body: {}, headers: { 'x-forwarded-for': ip, ...(vid ? { 'x-visitor-id': vid } : {}) } });
  const flagged = new Set<string>();
  const vids: string[] = [];
  const odd: unknown[] = [];
  const crowd = async (n: number) => {
    for (let i = 0; i < n; i += 3) {
      const ip = nextIp();
      const a = await Promise.all([joinFrom(ip), joinFrom(ip)]);
      const c = await joinFrom(ip);
      const cookie = (c.headers.getSetCookie().find((h) => h.startsWith('wr_vid=')) ?? '').slice(7).split(';')[0]!;
      if (c.status !== 429 || !cookie) { odd.push(c.body); continue; }
      flagged.add(cookie);
      const again = await joinFrom(nextIp(), cookie);
      for (const r of [...a, again]) (r.status === 200 ? vids.push(r.body.visitorId) : odd.push(r.body));
    }
  };
  await inWaves(Array.from({ length: 50 }, () => PRE / 50), 50, crowd);
  t.same(odd, [], 'every join answered as planned (the third from each address limited, then in)');
  t.equal(vids.length, PRE);

  const early = await call(gw.url, 'GET', '/api/rooms/rep/report');
  t.same([early.status, early.body.error, early.body.state], [409, 'not_yet', 'prequeue'], 'no report before the drop is over');

  offset = opensAt - Date.now() + 1; // open
  await until(async () => (await call(gw.url, 'GET', '/api/rooms/rep')).body.draw?.seed, 5_000, 'the room to open');
  await inWaves(Array.from({ length: 10 }, () => POST / 10), 10, crowd);
  t.equal(vids.length, PRE + POST);

  // The first 20 tickets buy the 20 units: 10, then (once /me shows the others a figure) 10 more.
  const ticketOf = new Map<number, string>();
  for (const [i, m] of (await inWaves(vids, 100, (v) => call(gw.url, 'GET', '/api/rooms/rep/me', { headers: { 'x-visitor-id': v } }))).entries()) ticketOf.set(m.body.ticket, vids[i]!);
  const buyers = Array.from({ length: UNITS }, (_, i) => ticketOf.get(i + 1)!);
  const buy = (from: number, to: number) => Promise.all(buyers.slice(from, to).map(async (vid, j) => {
    const i = from + j;
    const claim = await until(async () => {
      const c = await call(gw.url, 'POST', '/api/rooms/rep/claim', { body: {}, headers: { 'x-visitor-id': vid } });
      return c.status === 200 && c.body;
    }, 20_000, `ticket ${i + 1} to be admitted`);
    const r = await call(co.url, 'POST', '/api/sales/rep/reservations', { token: users[i]!.token, headers: { 'x-admission-token': claim.token } });
    if (r.status !== 201) throw new Error(`reservation ${i + 1}: ${r.status} ${JSON.stringify(r.body)}`);
    const p = await call(co.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: users[i]!.token, body: { method: 'test_ok' } });
    if (p.status !== 202) throw new Error(`payment ${i + 1}: ${p.status}`);
  }));
  await buy(0, UNITS / 2);
  const me = (v: string) => call(gw.url, 'GET', '/api/rooms/rep/me', { headers: { 'x-visitor-id': v } });
  await until(async () => typeof (await me(ticketOf.get(PRE + POST)!)).body.chance === 'number', 10_000, 'the room to have seen an outcome');
  /** The chance GET /me showed each visitor still waiting (the only figure these visitors saw). */
  const meShown = new Map<string, number>();
  for (const [i, m] of (await inWaves(vids, 100, me)).entries()) {
    if (m.body.position > 0 && typeof m.body.chance === 'number') meShown.set(vids[i]!, m.body.chance);
  }
  await buy(UNITS / 2, UNITS);
  const sale = await until(async () => { const a = await audit(co.url, 'rep'); return a.sold === UNITS && a; }, 20_000, 'every unit paid');
  await until(async () => (await call(gw.url, 'GET', '/api/rooms/rep')).body.state === 'sold_out', 10_000, 'the room to turn sold_out');

  const res = await call(gw.url, 'GET', '/api/rooms/rep/report');
  t.equal(res.status, 200, 'the report is public once sold out');
  const { report, jws, kid } = res.body;
  const stats = (await call(gw.url, 'GET', '/admin/rooms/rep/stats', { token: ADMIN })).body;
  const pub = (await call(gw.url, 'GET', '/api/rooms/rep')).body.draw;

  t.same(report.entrants, { prequeue: PRE, afterOpen: POST, total: PRE + POST }, 'entrants in the pre-queue and after open');
  t.same(report.draw, { commitment: pub.commitment, seed: pub.seed }, "the draw's commitment and seed");
  const drawn = await fetchDraw(gw.url, 'rep');
  t.equal(verifyDraw(drawn.pub, drawn.list).ok, true, 'and that draw holds');
  t.same([report.units.total, report.units.sold], [UNITS, sale.sold], "units sold = checkout's audit");
  t.equal(sale.ok, true, "checkout's audit is ok");
  t.same(
    [report.admitted, report.defences.challenged, report.defences.rateLimited, report.defences.blocked],
    [stats.admitted, stats.challenged, stats.rateLimited, stats.blocked],
    'admitted / challenged / limited / blocked = the room stats',
  );
  t.equal(report.defences.rateLimited, flagged.size, 'every limited join counted');
  t.equal(report.defences.flaggedVisitors, flagged.size, 'flagged visitors = the ones limited');
  const toFlagged = buyers.filter((v) => flagged.has(v)).length;
  t.same([report.units.soldToFlagged, report.units.flaggedShare], [toFlagged, toFlagged / UNITS], `units to flagged visitors: ${toFlagged} of ${UNITS}`);
  t.same(report.orderAfterOpen, { kendallTau: stats.fairness.kendallTau, overtakes: stats.fairness.overtakes, sample: stats.fairness.sample }, 'order after open = the stats');
  t.equal(report.endState, 'sold_out');
  t.ok(report.openToSoldOutSeconds > 0 && report.openToSoldOutSeconds < 120, `open to sold out: ${report.openToSoldOutSeconds} s`);
  // Visitors here only poll /me (no WebSocket): those shown a figure are counted from it, once the
  // gateway has added the ones still waiting (within a moment of the end).
  const c = meShown.size === report.chance.visitors ? report.chance
    : (await until(async () => { const r = await call(gw.url, 'GET', '/api/rooms/rep/report'); return r.body.report.chance.visitors === meShown.size && r.body.report.chance; }, 10_000, 'the chance table to count every visitor /me showed a figure'));
  t.same(c.buckets.map((b: any) => [b.visitors, b.gotUnit]), CHANCE_BUCKETS.map((_, k) => {
    const inB = [...meShown].filter(([, x]) => chanceBucket(x) === k);
    return [inB.length, inB.filter(([v]) => buyers.includes(v)).length];
  }), 'chance: per bucket, the figure /me showed and who of them bought');
  t.ok(meShown.size > PRE, `chance: ${meShown.size} visitors shown a figure by /me`);
  t.equal(c.buckets.reduce((n: number, b: any) => n + b.visitors, 0), c.visitors, 'chance: the buckets add up');
  t.equal(c.buckets.reduce((n: number, b: any) => n + b.gotUnit, 0) + c.soldUnshown, sale.sold, "chance: units got, shown a figure or not = checkout's audit");

  const jwks = (await call(gw.url, 'GET', '/.well-known/jwks.json')).body as JSONWebKeySet;
  const verified = await compactVerify(jws, createLocalJWKSet(jwks));
  t.equal(verified.protectedHeader.kid, kid);
  t.equal(verified.protectedHeader.alg, 'EdDSA');
  t.same(JSON.parse(new TextDecoder().decode(verified.payload)), report, 'the JWS payload is the report, signed with the admission key');
  const forged = jws.replace(/\.([^.]+)\./, (_m: string, p: string) => `.${Buffer.from(JSON.stringify({ ...report, units: { ...report.units, sold: 0 } })).toString('base64url')}.`);
  t.not(forged, jws);
  await t.rejects(compactVerify(forged, createLocalJWKSet(jwks)), 'an edited report does not verify');
});
