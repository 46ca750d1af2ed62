/**
 * Every pending payment is reconciled, whatever its reservation's state (issue 10). A capture
 * whose webhook never lands on a reservation that lapsed meanwhile is sold if a unit is left,
 * else refunded at the provider; a cancelled one is refunded; one the provider never decides is
 * voided there and fails. The late webhook changes nothing; two checkouts reconciling at once
 * never sell or refund twice; a checkout killed after the capture and before its webhook is
 * reconciled by another. The provider's books (provider_sim.*) are read to count its refunds.
 */
import t, { type Test } from 'tap';
import pg from 'pg';
import { createDb } from '../../checkout/db.js';
import { startCheckout } from '../../checkout/main.js';
import { expireLapsed } from '../../checkout/orders.js';
import {
  ADMIN,
  audit,
  call,
  childrenEnv,
  createSale,
  flakyRelay,
  kill9,
  reserveAndPay,
  startChild,
  testConfig,
  until,
  usersWithSessions,
  world,
} from './helpers.js';

/** What the provider did for a payment: its charge's status and its refunds. */
async function ledger(t: Test, databaseUrl: string) {
  const c = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  c.on('error', () => {}); // an idle client when the database is dropped at teardown
  t.teardown(() => c.end());
  return async (paymentId: string) => {
    const charge = (await c.query<{ status: string }>('SELECT status FROM provider_sim.charges WHERE payment_id = $1', [paymentId])).rows[0];
    const refunds = (await c.query<{ amount_cents: number }>('SELECT amount_cents FROM provider_sim.refunds WHERE payment_id = $1', [paymentId])).rows;
    return { charge: charge?.status ?? null, refunds: refunds.map((r) => r.amount_cents) };
  };
}

/** A checkout whose webhooks are all refused (the relay is down), with a clock the test moves. */
async function setup(t: Test, tag: string) {
  let target = '';
  const clock = { offsetMs: 0 };
  const relay = await flakyRelay(t, () => target, 0);
  relay.state.down = true;
  const opts = {
    clock: () => Date.now() + clock.offsetMs,
    sweeper: false,
    provider: { delayMs: 30, webhookUrl: relay.url, retry: { baseMs: 20, capMs: 100 } },
    reconcileAfterMs: 15_000,
  };
  const w = await world(t, tag, opts);
  target = w.url;
  const books = await ledger(t, w.config.databaseUrl);
  const purchase = async (token: string) => (await call(w.url, 'GET', '/api/sales/s/purchase', { token })).body;
  /** The provider has decided (captured or declined) these payments: their final events are being refused. */
  const decided = (n: number) =>
    until(async () => new Set(relay.state.seen.filter((e) => e.type !== 'payment.processing').map((e) => e.id)).size >= n, 10_000, `${n} final events attempted`);
  return { w, relay, clock, opts, books, purchase, decided };
}

/**
 * Another process's sweep lapsing the reservations without asking the provider first (what
 * happens when it races this one, or when the provider did not answer at the lapse).
 */
async function lapsedElsewhere(databaseUrl: string, atMs: number) {
  const db = createDb(databaseUrl, 1);
  try {
    return await expireLapsed(db, atMs);
  } finally {
    await db.destroy();
  }
}

t.test('a capture whose webhook never lands, on a reservation about to lapse: sold with the unit it holds', async (t) => {
  const { w, relay, clock, books, purchase, decided } = await setup(t, 'rec0');
  await createSale(w.url, 's', { total: 1, reservationSeconds: 10 });
  const [a] = await usersWithSessions(w, 1);
  const pa = await reserveAndPay(w, 's', a!, 'test_ok');
  await decided(1);
  clock.offsetMs = 11_000; // it lapses before its payment is 15 s overdue
  await w.sweep();
  const x = await audit(w.url, 's');
  t.same([x.ok, x.sold, x.expired, x.available, x.refunds], [true, 1, 0, 0, 0], 'sold, not lapsed');
  const pA = await purchase(a!.token);
  t.same([pA.status, pA.paymentStatus], ['success', 'succeeded']);
  t.same(await books(pa), { charge: 'succeeded', refunds: [] });
  t.match(await (await fetch(`${w.url}/metrics`)).text(), /checkout_payments_reconciled_total\{outcome="paid"\} 1\b/);
  relay.state.down = false;
  await until(async () => relay.state.outcomes.some((o) => o.type === 'payment.succeeded'), 30_000, 'the late webhook');
  t.same(relay.state.outcomes.filter((o) => o.type === 'payment.succeeded').map((o) => o.outcome), ['duplicate'], 'the late capture is a duplicate');
  t.same(await audit(w.url, 's'), x, 'and changes nothing');
});

t.test('a capture on a reservation another process lapsed first: sold while a unit is left, else refunded', async (t) => {
  const { w, relay, clock, books, purchase, decided } = await setup(t, 'rec1');
  await createSale(w.url, 's', { total: 2, reservationSeconds: 10 });
  const [a, b, c] = await usersWithSessions(w, 3);
  const pa = await reserveAndPay(w, 's', a!, 'test_ok');
  const pb = await reserveAndPay(w, 's', b!, 'test_ok');
  await decided(2);
  await lapsedElsewhere(w.config.databaseUrl, Date.now() + 11_000);
  clock.offsetMs = 11_000;
  const lapsed = await audit(w.url, 's');
  t.same([lapsed.expired, lapsed.available, lapsed.reserved], [2, 2, 0], 'both lapsed, their units back');
  // Someone else takes one of the two units meanwhile.
  const rc = await call(w.url, 'POST', '/api/sales/s/reservations', { token: c!.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } });
  t.equal(rc.status, 201);

  clock.offsetMs = 16_000;
  await w.sweep();
  const after = await audit(w.url, 's');
  t.same(
    [after.ok, after.sold, after.reserved, after.available, after.refunds, after.refundsUnconfirmed, after.pendingOverdue],
    [true, 1, 1, 0, 1, 0, 0],
    'the first capture took the one unit left and is sold, the second is refunded',
  );
  const pA = await purchase(a!.token);
  t.same([pA.status, pA.reservationStatus, pA.paymentStatus], ['success', 'paid', 'succeeded'], 'the shopper bought it after all');
  const pB = await purchase(b!.token);
  t.same([pB.status, pB.paymentStatus], ['expired', 'refunded'], 'the shopper sees the capture was given back');
  t.same(await books(pa), { charge: 'succeeded', refunds: [] }, 'no refund of the sold one');
  t.same(await books(pb), { charge: 'succeeded', refunds: [4999] }, 'the refunded one is refunded in full at the provider, once');
  const metrics = await (await fetch(`${w.url}/metrics`)).text();
  t.match(metrics, /checkout_payments_reconciled_total\{outcome="paid_after_lapse"\} 1\b/);
  t.match(metrics, /checkout_payments_reconciled_total\{outcome="refunded"\} 1\b/);
  t.match(metrics, /checkout_payment_refunds_total 1\b/);
  t.match(metrics, /checkout_payments_pending 0\b/);

  await w.sweep();
  t.same(await audit(w.url, 's'), after, 'reconciling again changes nothing');
  relay.state.down = false; // the provider's retries now land
  const late = await until(async () => relay.state.outcomes.filter((o) => o.type !== 'payment.processing').length >= 2 && relay.state.outcomes, 30_000, 'late webhooks');
  t.same(late.filter((o) => o.type !== 'payment.processing').map((o) => o.outcome), ['duplicate', 'duplicate'], 'the late captures are duplicates');
  t.same(await audit(w.url, 's'), after, 'and change nothing');
  t.same([(await books(pa)).refunds, (await books(pb)).refunds], [[], [4999]], 'no second refund');
});

t.test('a late webhook follows the same policy: a capture on a lapsed reservation whose unit is gone is refunded at the provider', async (t) => {
  const { w, relay, clock, books, purchase, decided } = await setup(t, 'rec2');
  await createSale(w.url, 's', { total: 1, reservationSeconds: 10 });
  const [a, b] = await usersWithSessions(w, 2);
  const pa = await reserveAndPay(w, 's', a!, 'test_ok');
  await decided(1);
  await lapsedElsewhere(w.config.databaseUrl, Date.now() + 11_000);
  clock.offsetMs = 11_000;
  t.equal((await call(w.url, 'POST', '/api/sales/s/reservations', { token: b!.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } })).status, 201, 'the unit is taken by another');
  relay.state.down = false; // the webhook lands now, before any reconciliation
  await until(async () => relay.state.outcomes.some((o) => o.type === 'payment.succeeded'), 30_000, 'the late webhook');
  t.same(relay.state.outcomes.filter((o) => o.type === 'payment.succeeded').map((o) => o.outcome), ['refunded']);
  const a1 = await audit(w.url, 's');
  t.same([a1.ok, a1.sold, a1.reserved, a1.available, a1.refunds, a1.refundsUnconfirmed], [true, 0, 1, 0, 1, 0]);
  t.same(await books(pa), { charge: 'succeeded', refunds: [4999] }, 'refunded at the provider by the webhook itself');
  t.equal((await purchase(a!.token)).paymentStatus, 'refunded');
  clock.offsetMs = 16_000;
  await w.sweep();
  t.same(await audit(w.url, 's'), a1, 'reconciliation afterwards changes nothing');
  t.same((await books(pa)).refunds, [4999], 'and refunds nothing twice');
});

t.test('cancelled while the capture was on its way: refunded; never decided by the provider: voided at the lapse, failed', async (t) => {
  const { w, clock, books, purchase, decided } = await setup(t, 'rec3');
  await createSale(w.url, 's', { total: 3, reservationSeconds: 10 });
  const [a, b] = await usersWithSessions(w, 2);
  const pa = await reserveAndPay(w, 's', a!, 'test_ok');
  const ra = (await purchase(a!.token)).reservationId;
  await decided(1);
  t.equal((await call(w.url, 'DELETE', `/api/reservations/${ra}`, { token: a!.token })).status, 200, 'the shopper cancels');
  const pb = await reserveAndPay(w, 's', b!, 'test_timeout');
  clock.offsetMs = 11_000;
  await w.sweep();
  t.same(await books(pb), { charge: 'canceled', refunds: [] }, 'voided at the provider as it lapsed: it can no longer be captured');
  t.equal((await purchase(b!.token)).status, 'expired');
  clock.offsetMs = 16_000;
  await w.sweep();
  const x = await audit(w.url, 's');
  t.same([x.ok, x.sold, x.available, x.reserved, x.cancelled, x.expired, x.refunds, x.pendingOverdue], [true, 0, 3, 0, 1, 1, 1, 0]);
  t.same([(await purchase(a!.token)).status, (await purchase(a!.token)).paymentStatus], ['cancelled', 'refunded'], 'a cancelled order is never sold');
  t.same(await books(pa), { charge: 'succeeded', refunds: [4999] });
  t.same([(await purchase(b!.token)).status, (await purchase(b!.token)).paymentStatus], ['expired', 'failed'], 'the undecided payment fails');
  clock.offsetMs = 200_000;
  t.ok((await audit(w.url, 's')).checks.paymentsSettle, 'nothing left pending past its deadline');
});

t.test('two checkouts reconcile at once: every capture is sold or refunded exactly once', async (t) => {
  const { w, relay, clock, opts, books, decided } = await setup(t, 'rec4');
  const other = await startCheckout(w.config, { ...opts, port: 0, poolSize: 5 });
  t.teardown(() => other.close());
  await createSale(w.url, 's', { total: 12, reservationSeconds: 10 });
  await createSale(w.url, 'n', { total: 3, reservationSeconds: 10 });
  const users = await usersWithSessions(w, 18);
  const payments = await Promise.all(users.slice(0, 12).map((u) => reserveAndPay(w, 's', u, 'test_ok')));
  await decided(12);
  await lapsedElsewhere(w.config.databaseUrl, Date.now() + 11_000);
  clock.offsetMs = 11_000;
  t.equal((await audit(w.url, 's')).expired, 12, 'all twelve lapsed');
  // Six others take six of the twelve units back in stock, and hold them for long.
  t.equal((await call(w.url, 'PUT', '/admin/sales/s', { token: ADMIN, body: { reservationSeconds: 600 } })).status, 200);
  for (const u of users.slice(12)) {
    t.equal((await call(other.url, 'POST', '/api/sales/s/reservations', { token: u.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } })).status, 201);
  }
  clock.offsetMs = 16_000;
  await Promise.all([w.sweep(), other.sweep()]);
  await Promise.all([w.sweep(), other.sweep()]);
  const a = await audit(w.url, 's');
  t.same(
    [a.ok, a.sold, a.reserved, a.available, a.refunds, a.refundsUnconfirmed, a.refundsOnPaid, a.pendingOverdue],
    [true, 6, 6, 0, 6, 0, 0, 0],
    'six sold from the six units left, six refunded',
  );
  const byProvider = await Promise.all(payments.map(books));
  t.same(byProvider.map((b) => b.refunds.length).sort(), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1], 'six refunds at the provider, one each');
  t.ok(byProvider.every((b) => b.refunds.every((n) => n === 4999)), 'each in full');

  // Three captures whose reservations lapse now: both processes ask the provider before the sweep.
  await Promise.all(users.slice(0, 3).map((u) => reserveAndPay(w, 'n', u, 'test_ok')));
  await decided(15);
  clock.offsetMs = 27_000; // they were made at +16 s
  await Promise.all([w.sweep(), other.sweep()]);
  const n = await audit(w.url, 'n');
  t.same([n.ok, n.sold, n.expired, n.refunds], [true, 3, 0, 0], 'each sold once');

  relay.state.down = false;
  await until(async () => relay.state.outcomes.filter((o) => o.type === 'payment.succeeded').length >= 15, 30_000, 'late webhooks');
  t.ok(relay.state.outcomes.filter((o) => o.type === 'payment.succeeded').every((o) => o.outcome === 'duplicate'), 'every late capture is a duplicate');
  const s2 = await audit(w.url, 's');
  t.same([s2.sold, s2.refunds, s2.refundsOnPaid], [6, 6, 0], 'and changes nothing');
  t.same(await audit(w.url, 'n'), n);
  t.same((await Promise.all(payments.map(books))).map((b) => b.refunds.length).sort(), byProvider.map((b) => b.refunds.length).sort());
});

t.test('SIGKILL after the capture, before its webhook: another checkout reconciles it', async (t) => {
  const { children, databaseUrl, keys, env } = await childrenEnv(t, 'reckill');
  // The provider decides 1.5 s after the charge: the process is dead by then.
  const first = await startChild(env, 0, { provider: { delayMs: 1500 }, sweeper: false });
  children.push(first.proc);
  const w = { url: first.url, keys };
  await createSale(w.url, 's', { total: 2, reservationSeconds: 10 });
  const [a, b] = await usersWithSessions({ url: first.url, config: { databaseUrl } }, 2);
  const pa = await reserveAndPay(w, 's', a!, 'test_ok');
  const pb = await reserveAndPay(w, 's', b!, 'test_timeout');
  await kill9(first.proc);
  const books = await ledger(t, databaseUrl);
  t.same(await books(pa), { charge: 'processing', refunds: [] }, 'killed before the provider decided');
  await new Promise((r) => setTimeout(r, 1600)); // the provider captures on its own time

  // A new checkout, its clock moved on: the reservations lapse, then it reconciles.
  let offsetMs = 11_000;
  const second = await startCheckout({ ...testConfig(databaseUrl, keys.url), redisPrefix: env.REDIS_PREFIX }, {
    port: 0,
    poolSize: 4,
    sweeper: false,
    clock: () => Date.now() + offsetMs,
  });
  t.teardown(() => second.close());
  await second.sweep();
  const lapse = await audit(second.url, 's');
  t.same([lapse.sold, lapse.expired], [1, 1], 'asked before the lapse: the capture sold, the undecided one voided and lapsed');
  offsetMs = 31_000;
  await second.sweep();
  const x = await audit(second.url, 's');
  t.same([x.ok, x.sold, x.available, x.reserved, x.refunds, x.pendingOverdue], [true, 1, 1, 0, 0, 0], 'the voided one is failed; nothing left pending');
  const purchase = async (token: string) => (await call(second.url, 'GET', '/api/sales/s/purchase', { token })).body;
  t.same([(await purchase(a!.token)).status, (await purchase(a!.token)).paymentStatus], ['success', 'succeeded']);
  t.same([(await purchase(b!.token)).status, (await purchase(b!.token)).paymentStatus], ['expired', 'failed']);
  t.same([(await books(pa)).charge, (await books(pb)).charge], ['succeeded', 'canceled']);
});
