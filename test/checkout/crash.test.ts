/**
 * Checkout is SIGKILLed between reservation and payment, and while reservations are in
 * flight. After a restart (two processes sweeping at once) every answered reservation is in
 * the database exactly once, the lapsed units come back, the paid one stays sold.
 */
import t from 'tap';
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { ADMIN, audit, call, childrenEnv, kill9, startChild, until, usersWithSessions } from './helpers.js';

t.test('SIGKILL between reservation and payment', async (t) => {
  const { children, databaseUrl, keys, env } = await childrenEnv(t, 'crash');

  const T0 = Date.now(); const lap = (m: string) => t.comment(`${m} +${Date.now() - T0} ms`);
  const first = await startChild(env);
  lap('started');
  children.push(first.proc);
  const now = Date.now();
  const put = await call(first.url, 'PUT', '/admin/sales/k', {
    token: ADMIN,
    body: { name: 'Kill', priceCents: 100, currency: 'EUR', total: 40, startsAt: new Date(now - 60_000).toISOString(), endsAt: new Date(now + 3600_000).toISOString(), reservationSeconds: 60 },
  });
  t.equal(put.status, 201);
  // Three sign up through the API; the rest are created straight in the database (fast hash).
  const viaApi = await Promise.all(
    [0, 1, 2].map(async (i) => {
      const email = `k${i}-${randomUUID().slice(0, 6)}@example.com`;
      t.equal((await call(first.url, 'POST', '/api/users', { body: { email, password: 'password123' } })).status, 201);
      return (await call(first.url, 'POST', '/api/sessions', { body: { email, password: 'password123' } })).body.sessionToken as string;
    }),
  );
  const bulk = await usersWithSessions({ url: first.url, config: { databaseUrl } }, 57, 'k');
  const signups = [...viaApi, ...bulk.map((u) => u.token)];
  const reserve = async (url: string, session: string) =>
    call(url, 'POST', '/api/sales/k/reservations', { token: session, headers: { 'x-admission-token': await keys.sign({ sale: 'k' }) } }).catch(
      () => ({ status: 0, body: null }),
    );

  lap('signed up');
  // Two reservations; one is paid before the crash, one is left unpaid.
  const paidOne = await reserve(first.url, signups[0]!);
  const unpaid = await reserve(first.url, signups[1]!);
  t.same([paidOne.status, unpaid.status], [201, 201]);
  await call(first.url, 'POST', `/api/reservations/${paidOne.body.reservationId}/payment`, { token: signups[0]!, body: { method: 'test_ok' } });
  await until(async () => (await call(first.url, 'GET', '/api/sales/k/purchase', { token: signups[0]! })).body.status === 'success', 10_000, 'payment');

  // A burst in flight when the process dies: requests start 10 ms apart, and the kill comes
  // once some of them have reserved while others are sent and not yet answered.
  let started = 0;
  let settled = 0;
  const burst = signups.slice(2).map(async (s, i) => {
    await new Promise((r) => setTimeout(r, i * 10));
    started++;
    try {
      return await reserve(first.url, s);
    } finally {
      settled++;
    }
  });
  const landed = await until(async () => {
    const r = await call(first.url, 'GET', '/api/sales/k');
    return r.body.reserved > 2 && started - settled > 0 && r.body.reserved;
  }, 10_000, 'some of the burst to land while the rest is in flight');
  const inFlightAtKill = started - settled;
  const killing = kill9(first.proc);
  lap(`killed with ${inFlightAtKill} requests in flight, ${landed - 2} of the burst reserved`);
  await killing;
  const answers = await Promise.all(burst);
  t.ok(inFlightAtKill >= 1, `${inFlightAtKill} requests of the burst were in flight at the kill`);
  t.ok(answers.some((a) => a.status === 0), 'some requests never got an answer: the process died under them');
  const answered = answers.filter((a) => a.status === 201).map((a) => a.body.reservationId as string);

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  t.teardown(() => db.end());
  const rows = (await db.query<{ id: string; status: string }>("SELECT id, status FROM reservations WHERE sale_id = 'k'")).rows;
  const byId = new Map(rows.map((r) => [r.id, r.status]));
  t.ok(answered.every((id) => byId.has(id)), `every answered reservation (${answered.length}) is stored`);
  t.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'no duplicates');
  const live = rows.filter((r) => r.status === 'reserved').length;
  t.ok(live >= 2, `${live} reserved units held across the crash: the unpaid one and at least one of the burst`);

  // Restart two processes at once, their clocks past the reservations' expiry: both sweep.
  const [a, b] = await Promise.all([startChild(env, 61_000), startChild(env, 61_000)]);
  children.push(a.proc, b.proc);
  lap('restarted');
  const after = await until(async () => {
    const x = await audit(a.url, 'k');
    return x.reserved === 0 && x;
  }, 5_000, 'the sweepers to return every lapsed unit');
  t.same(
    [after.ok, after.sold, after.expired, after.available, after.duplicateJtis, after.duplicateUserOrders],
    [true, 1, live, 39, 0, 0],
    'the paid order stays, every unpaid unit is back exactly once',
  );
  t.equal((await call(b.url, 'GET', '/api/sales/k/purchase', { token: signups[1]! })).body.status, 'expired');
  t.equal((await call(b.url, 'GET', '/api/sales/k/purchase', { token: signups[0]! })).body.status, 'success');
  const again = await reserve(b.url, signups[1]!);
  t.equal(again.status, 201, 'a returned unit sells again');
});
