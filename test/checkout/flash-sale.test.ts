/**
 * The flash sale under real concurrency: 2,000 shoppers with valid admission tokens reserve
 * at once against 100 units through HTTP. Then 40 payments decline, 30 reservations lapse
 * (payment never answers), 30 payments succeed: the 70 units return and sell again.
 */
import t from 'tap';
import { audit, call, createSale, until, usersWithSessions, world } from './helpers.js';

t.test('2,000 shoppers, 100 units', async (t) => {
  let offsetMs = 0;
  const w = await world(t, 'flash', { clock: () => Date.now() + offsetMs, provider: { delayMs: 50 }, poolSize: 8 });
  await createSale(w.url, 'flash', { total: 100, reservationSeconds: 60 });
  const users = await usersWithSessions(w, 2000);
  const tokens = await Promise.all(users.map((u) => w.keys.sign({ sale: 'flash', room: 'flash-room', sub: `v-${u.userId}` })));

  const res = await Promise.all(
    users.map((u, i) =>
      call(w.url, 'POST', '/api/sales/flash/reservations', { token: u.token, headers: { 'x-admission-token': tokens[i]! } }),
    ),
  );
  const won = res.map((r, i) => ({ r, i })).filter((x) => x.r.status === 201);
  t.equal(won.length, 100, 'exactly 100 reserved');
  t.equal(res.filter((r) => r.status === 409 && r.body.error === 'sold_out').length, 1900, '1,900 sold_out');
  t.equal(new Set(won.map((x) => x.r.body.reservationId)).size, 100, '100 distinct reservations');
  let a = await audit(w.url, 'flash');
  t.same([a.ok, a.available, a.reserved, a.sold], [true, 0, 100, 0], 'audit ok after the rush');

  const pay = (x: (typeof won)[number], method: string) =>
    call(w.url, 'POST', `/api/reservations/${x.r.body.reservationId}/payment`, { token: users[x.i]!.token, body: { method } });
  const declines = won.slice(0, 40);
  const lapses = won.slice(40, 70);
  const successes = won.slice(70);
  const paid = await Promise.all([
    ...declines.map((x) => pay(x, 'test_decline')),
    ...lapses.map((x) => pay(x, 'test_timeout')),
    ...successes.map((x) => pay(x, 'test_ok')),
  ]);
  t.ok(paid.every((p) => p.status === 202 && p.body.status === 'payment_pending'), '100 payments pending');

  a = await until(async () => {
    const x = await audit(w.url, 'flash');
    return x.failed === 40 && x.sold === 30 && x;
  }, 15_000, '40 declines and 30 successes');
  t.same([a.ok, a.available, a.reserved, a.sold], [true, 40, 30, 30], 'declined units are back at once');

  offsetMs = 61_000; // the 30 unanswered payments' reservations lapse
  a = await until(async () => {
    const x = await audit(w.url, 'flash');
    return x.expired === 30 && x;
  }, 5_000, 'the sweeper to return 30 lapsed units');
  t.same([a.ok, a.available, a.reserved, a.sold, a.failed, a.expired], [true, 70, 0, 30, 40, 30], '70 units back');

  const outcome = await call(w.url, 'GET', '/api/sales/flash/purchase', { token: users[successes[0]!.i]!.token });
  t.same([outcome.body.status, outcome.body.orderId], ['success', successes[0]!.r.body.reservationId]);
  const lapsed = await call(w.url, 'GET', '/api/sales/flash/purchase', { token: users[lapses[0]!.i]!.token });
  t.equal(lapsed.body.status, 'expired');
  const declined = await call(w.url, 'GET', '/api/sales/flash/purchase', { token: users[declines[0]!.i]!.token });
  t.equal(declined.body.status, 'failed');

  // The 70 units are sellable: 100 of the shoppers refused with sold_out try again with the
  // same tokens (sold_out did not use them up).
  const losers = res.map((r, i) => ({ r, i })).filter((x) => x.r.status === 409).slice(0, 100);
  const again = await Promise.all(
    losers.map((x) => call(w.url, 'POST', '/api/sales/flash/reservations', { token: users[x.i]!.token, headers: { 'x-admission-token': tokens[x.i]! } })),
  );
  t.equal(again.filter((r) => r.status === 201).length, 70, '70 more reserved');
  t.equal(again.filter((r) => r.body.error === 'sold_out').length, 30);
  a = await audit(w.url, 'flash');
  t.same([a.ok, a.available, a.reserved, a.sold], [true, 0, 70, 30], 'audit ok at the end');
});
