/**
 * An admission nobody received is withdrawn (docs/api.md section 7), seen from outside, over real
 * sockets: gateway and checkout, 2 units, overbook 1, claimSeconds 10 (so an admission undelivered
 * for 1 s is withdrawn while the stock cap holds someone back). Five visitors join; the first two
 * are admitted. A takes its token at once; B never asks. Within a few seconds B's place goes to C
 * (the next ticket), while B's GET /me says it is next in line (position 1, not admitted) and
 * its POST /claim 409 `not_yet` — never a token for an admission the room took back. A reserves;
 * C reserves too: sold out of available units. A cancels: the unit that comes back goes to B
 * (it came back: first in line) before D, with a token of its own ticket, and B's reservation
 * with it succeeds.
 */
import t from 'tap';
import { loadConfig } from '../../shared/config.js';
import { startCheckout } from '../../checkout/main.js';
import { startGateway } from '../../waiting-room/server.js';
import { ADMIN, call, productEnv, until, usersWithSessions } from '../checkout/helpers.js';
import { OPEN_LIMITS } from './helpers.js';

t.test('an undelivered admission is withdrawn: its place moves on, the visitor is next in line, then first for a returned unit', async (t) => {
  const { env, stop } = await productEnv(t, 'withdrawn');
  const gw = await startGateway(loadConfig(env), { port: 0, admitIntervalMs: 50 });
  stop(() => gw.close());
  const co = await startCheckout(loadConfig({ ...env, JWKS_URL: `${gw.url}/.well-known/jwks.json` }), { port: 0, provider: { delayMs: 20 } });
  stop(() => co.close());
  const t0 = Date.now();
  t.equal((await call(co.url, 'PUT', '/admin/sales/wd', {
    token: ADMIN,
    body: { name: 'Withdrawn', priceCents: 100, currency: 'EUR', total: 2, startsAt: new Date(t0 - 60_000).toISOString(), endsAt: new Date(t0 + 3600_000).toISOString() },
  })).status, 201);
  const put = await call(gw.url, 'PUT', '/admin/rooms/wd', {
    token: ADMIN,
    body: {
      sale: 'wd', opensAt: new Date(t0 - 1000).toISOString(), admitRatePerMin: 60_000, maxActive: 1000, overbook: 1, claimSeconds: 10,
      checkoutUrl: `${co.url}/sales/wd`, ...OPEN_LIMITS,
    },
  });
  t.equal(put.status, 201, JSON.stringify(put.body));
  const [ua, ub, uc] = await usersWithSessions({ url: co.url, config: { databaseUrl: env.DATABASE_URL } }, 3);
  const room = (path = '') => `/api/rooms/wd${path}`;
  const as = (vid: string) => ({ headers: { 'x-visitor-id': vid } });
  // Stock known to the room first (the cap needs the signal), then the five joins in order.
  await until(async () => (await call(gw.url, 'GET', room())).body.unitsLeft === 2, 5000, 'the stock signal');
  const vids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const j = await call(gw.url, 'POST', room('/join'), { body: {}, headers: { 'x-forwarded-for': `10.7.${i}.1` } });
    t.equal(j.status, 200, `visitor ${i + 1} joined`);
    vids.push(j.body.visitorId);
  }
  const [A, B, C, D] = vids as [string, string, string, string];
  const state = async () => (await call(gw.url, 'GET', room())).body;
  await until(async () => (await state()).admittedThrough >= 2, 5000, 'A and B admitted');
  t.equal((await state()).admittedThrough, 2, 'two admitted for two units (overbook 1)');
  const claimA = await call(gw.url, 'POST', room('/claim'), { body: {}, ...as(A) });
  t.equal(claimA.status, 200, 'A takes its token at once');

  // B never asks: its admission is withdrawn and the place goes to C.
  await until(async () => (await state()).admittedThrough >= 3, 8000, "B's place to go to C");
  const meB = await call(gw.url, 'GET', room('/me'), as(B));
  t.same([meB.status, meB.body.ticket, meB.body.position, meB.body.admitted], [200, 2, 1, false], 'B, back, is told it is next in line, not admitted');
  const claimB = await call(gw.url, 'POST', room('/claim'), { body: {}, ...as(B) });
  t.same([claimB.status, claimB.body.error], [409, 'not_yet'], 'and gets no token for the admission the room took back');
  const meC = await call(gw.url, 'GET', room('/me'), as(C));
  t.same([meC.body.position, meC.body.admitted], [0, true], 'C is admitted');
  const claimC = await call(gw.url, 'POST', room('/claim'), { body: {}, ...as(C) });
  t.equal(claimC.status, 200, 'C takes its token');

  const reserve = (user: { token: string }, token: string) =>
    call(co.url, 'POST', '/api/sales/wd/reservations', { token: user.token, headers: { 'x-admission-token': token } });
  const rA = await reserve(ua!, claimA.body.token);
  t.equal(rA.status, 201, 'A reserves');
  t.equal((await reserve(uc!, claimC.body.token)).status, 201, 'C reserves: every unit reserved');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal((await state()).admittedThrough, 3, 'nobody more admitted while no unit is left');

  t.equal((await call(co.url, 'DELETE', `/api/reservations/${rA.body.reservationId}`, { token: ua!.token })).status, 200, 'A cancels: a unit comes back');
  const back = await until(async () => {
    const r = await call(gw.url, 'POST', room('/claim'), { body: {}, ...as(B) });
    return r.status === 200 ? r : null;
  }, 8000, 'B to be admitted again');
  t.equal(JSON.parse(Buffer.from(String(back.body.token).split('.')[1]!, 'base64url').toString()).ticket, 2, "B's new token carries its own ticket");
  const meD = await call(gw.url, 'GET', room('/me'), as(D));
  t.equal(meD.body.admitted, false, 'D, behind B, still waits');
  t.equal((await reserve(ub!, back.body.token)).status, 201, "B's reservation succeeds: no sold_out for the visitor the room admitted again");
});
