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
    call(url, 'POST', '/api/sales/k/reservations', { token: session, headers: { 'x-admission-token': await keys.sign({ sale: 'k' }) } });

  lap('signed up');
  // Two reservations; one is paid before the crash, one is left unpaid.
  const paidOne = await reserve(first.url, signups[0]!);
  const unpaid = await reserve(first.url, signups[1]!);
  t.same([paidOne.status, unpaid.status], [201, 201]);
  await call(first.url, 'POST', `/api/reservations/${paidOne.body.reservationId}/payment`, { token: signups[0]!, body: { method: 'test_ok' } });
  await until(async () => (await call(first.url, 'GET', '/api/sales/k/purchase', { token: signups[0]! })).body.status === 'success', 10_000, 'payment');

  // A burst in flight when the process dies: requests start 2 ms apart, and the kill comes the
  // moment the first of them is answered, while the later ones are sent and not yet answered.
  // A request the kill cut off fails on its open connection (reset, closed); one sent after the
  // kill is refused. Nothing else may fail: no timeout or other error is taken for a crash.
  let killing: Promise<void> | undefined;
  const burst = signups.slice(2).map(async (s, i) => {
    await new Promise((r) => setTimeout(r, i * 2));
    const afterKill = killing !== undefined;
    try {
      const r = await reserve(first.url, s);
      if (r.status === 201) killing ??= kill9(first.proc);
      return { ...r, afterKill, failure: null };
    } catch (err) {
      const code = String((err as { cause?: { code?: string } }).cause?.code);
      if (!killing || !['ECONNRESET', 'UND_ERR_SOCKET', 'ECONNREFUSED', 'EPIPE'].includes(code)) throw err;
      return { status: 0, body: null, afterKill, failure: code === 'ECONNREFUSED' ? 'refused' : 'cut off' };
    }
  });
  const answers = await Promise.all(burst);
  await killing;
  lap('killed');
  const answered = answers.filter((a) => a.status === 201).map((a) => a.body.reservationId as string);
  const cutOff = answers.filter((a) => a.failure === 'cut off' && !a.afterKill);
  t.ok(answered.length >= 1, `${answered.length} of the burst were reserved and answered before the kill`);
  t.ok(cutOff.length >= 1, `${cutOff.length} of the burst were sent before the kill and cut off by it: the process died under them`);
  t.same(answers.filter((a) => a.status !== 201 && a.failure === null), [], 'every other request of the burst was cut off or refused');

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  t.teardown(() => db.end());
  const rows = (await db.query<{ id: string; status: string }>("SELECT id, status FROM reservations WHERE sale_id = 'k'")).rows;
  const byId = new Map(rows.map((r) => [r.id, r.status]));
  t.same(answered.map((id) => byId.get(id)), answered.map(() => 'reserved'), `every answered reservation of the burst (${answered.length}) is stored, reserved`);
  t.equal(byId.get(unpaid.body.reservationId as string), 'reserved', 'and so is the unpaid one');
  t.equal(new Set(rows.map((r) => r.id)).size, rows.length, 'no duplicates');
  const live = rows.filter((r) => r.status === 'reserved').length;
  t.ok(live >= 1 + answered.length, `${live} reserved units held across the crash: the unpaid one, the ${answered.length} answered, any cut off after committing`);

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
