/**
 * Issue 10: an admitted shopper refused sold_out stops counting against maxActive, and a unit
 * that comes back goes to those already admitted before anyone new is let in. overbook 2 on 2
 * units admits 4; two reserve, two are refused and keep trying past their claimSeconds; one
 * reservation is cancelled: the room admits nobody new, and a refused shopper who tries again gets the unit.
 */
import t from 'tap';
import { ADMIN, call, until, usersWithSessions } from '../checkout/helpers.js';
import { putSale, putShopRoom, shop, sleep } from './helpers.js';

t.test('a freed unit goes to a refused, admitted shopper before anyone new is admitted', async (t) => {
  const s = await shop(t, 'refused');
  const gw = s.gateways[0]!;
  await putSale(s, 'r10', { total: 2 });
  await putShopRoom(s, 'r10', { admitRatePerMin: 6000, maxActive: 100, overbook: 2, claimSeconds: 10 });
  const users = await usersWithSessions({ url: s.checkout.url, config: s.config }, 4, 'r10');
  const vids: Record<string, string>[] = [];
  for (let i = 0; i < 6; i++) {
    const j = await call(gw, 'POST', '/api/rooms/r10/join', { body: {} });
    vids.push({ 'x-visitor-id': j.body.visitorId });
  }
  await until(async () => (await call(gw, 'GET', '/api/rooms/r10')).body.admittedThrough === 4, 5000, '4 admitted');
  const admittedAt = Date.now();
  await sleep(500);
  const room = await call(gw, 'GET', '/api/rooms/r10');
  t.equal(room.body.admittedThrough, 4, 'ceil(2 × 2) = 4 admitted, no more');
  t.equal(room.body.held, true, 'held at the cap');
  t.equal(room.body.unitsLeft, 0, 'no unit left: all promised');
  const me = await call(gw, 'GET', '/api/rooms/r10/me', { headers: vids[4]! });
  t.match(me.body, { position: 1, admitted: false, held: true, unitsLeft: 0, etaSeconds: null, chance: null }, 'held: no ETA; nothing seen yet: no chance figure');
  const tokens = await Promise.all(vids.slice(0, 4).map(async (v) => (await call(gw, 'POST', '/api/rooms/r10/claim', { body: {}, headers: v })).body.token as string));
  const reserve = (i: number) => call(s.checkout.url, 'POST', '/api/sales/r10/reservations', { token: users[i]!.token, headers: { 'x-admission-token': tokens[i]! } });
  const r0 = await reserve(0);
  const r1 = await reserve(1);
  t.same([r0.status, r1.status], [201, 201]);
  const refused = [await reserve(2), await reserve(3)];
  t.same(refused.map((r) => r.body.error), ['sold_out', 'sold_out']);
  const active = await until(async () => {
    const st = await call(gw, 'GET', '/admin/rooms/r10/stats', { token: ADMIN });
    return st.body.active === 2 && st.body.active;
  }, 3000, 'the refused to leave the active count');
  t.equal(active, 2, 'the two refused no longer count against maxActive');

  // Past the claims of the refused (admission + 10 s): they keep trying, and keep their turn.
  await sleep(admittedAt + 8000 - Date.now());
  t.same([(await reserve(2)).body.error, (await reserve(3)).body.error], ['sold_out', 'sold_out'], 'still sold out; they keep trying');
  await sleep(admittedAt + 11_000 - Date.now());
  t.equal((await call(s.checkout.url, 'DELETE', `/api/reservations/${r0.body.reservationId}`, { token: users[0]!.token })).status, 200);
  await until(async () => (await call(s.checkout.url, 'GET', '/api/sales/r10')).body.available === 1, 3000, 'the unit back');
  await sleep(1500);
  t.equal((await call(gw, 'GET', '/api/rooms/r10')).body.admittedThrough, 4, 'nobody new admitted while the refused may still buy');
  const again = await reserve(2);
  t.equal(again.status, 201, 'the refused shopper trying again gets the unit');
  const later = await until(async () => {
    const m = await call(gw, 'GET', '/api/rooms/r10/me', { headers: vids[4]! });
    return typeof m.body.chance === 'number' && m.body;
  }, 3000, 'a chance figure once admissions have reserved');
  t.ok(later.chance >= 0 && later.chance <= 1, `chance ${later.chance} is a probability`);
});
