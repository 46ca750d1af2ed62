/**
 * Payment events of one sale take turns in a process (checkout/orders.ts inSaleTurn): one at a
 * time per sale, in arrival order, other sales not held up, a failure the caller's alone. And,
 * for real against Postgres through the webhook: a burst of captures of one sale, each sent
 * twice at once, while other shoppers reserve the same sale, sells every unit exactly once,
 * answers every reservation, and leaves no turn open.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import { inSaleTurn, saleTurnsOpen } from '../../checkout/orders.js';
import { signBody } from '../../checkout/payments/signature.js';
import { audit, call, createSale, usersWithSessions, WEBHOOK_SECRET, world } from './helpers.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('inSaleTurn: one at a time per sale, in order, sales apart, failures apart', async (t) => {
  let inside = 0;
  let most = 0;
  const order: string[] = [];
  const step = (sale: string, i: number, fail = false) => inSaleTurn(sale, async () => {
    inside++;
    most = Math.max(most, inside);
    await tick(5);
    order.push(`${sale}${i}`);
    inside--;
    if (fail) throw new Error(`boom ${i}`);
    return i;
  });
  const a = [0, 1, 2, 3, 4].map((i) => step('a', i, i === 2));
  const results = await Promise.allSettled(a);
  t.equal(most, 1, 'never two of one sale at once');
  t.same(order, ['a0', 'a1', 'a2', 'a3', 'a4'], 'in the order they came');
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'], 'a failure rejects its own caller only');
  t.equal(saleTurnsOpen(), 0, 'no turn left open');

  inside = 0;
  most = 0;
  let overlap = 0;
  let running = 0;
  const both = ['a', 'b'].map((sale) => inSaleTurn(sale, async () => {
    running++;
    overlap = Math.max(overlap, running);
    await tick(20);
    running--;
  }));
  await Promise.all(both);
  t.equal(overlap, 2, 'two sales run at the same time');
  t.equal(saleTurnsOpen(), 0);
});

t.test('a burst of captures of one sale, each delivered twice at once, during reservations', async (t) => {
  const w = await world(t, 'turns');
  const N = 24;
  const MORE = 12;
  await createSale(w.url, 's', { total: N + MORE, reservationSeconds: 300 });
  const users = await usersWithSessions(w, N + MORE);
  // N shoppers reserve and start a payment the provider never answers (test_timeout): we deliver its capture.
  const payments = await Promise.all(users.slice(0, N).map(async (u) => {
    const r = await call(w.url, 'POST', `/api/sales/s/reservations`, { token: u.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } });
    if (r.status !== 201) throw new Error(`reserve: ${r.status} ${JSON.stringify(r.body)}`);
    const p = await call(w.url, 'POST', `/api/reservations/${r.body.reservationId}/payment`, { token: u.token, body: { method: 'test_timeout' } });
    if (p.status !== 202) throw new Error(`pay: ${p.status}`);
    return p.body.paymentId as string;
  }));
  const post = (paymentId: string, id: string) => {
    const body = JSON.stringify({ id, type: 'payment.succeeded', created: new Date().toISOString(), data: { paymentId } });
    return call(w.url, 'POST', '/api/payments/webhook', { raw: body, headers: { 'content-type': 'application/json', 'x-signature': signBody(WEBHOOK_SECRET, body) } });
  };
  const [hooks, reservations] = await Promise.all([
    Promise.all(payments.flatMap((pid) => {
      const id = `evt_${randomUUID()}`;
      return [post(pid, id), post(pid, id)];
    })),
    Promise.all(users.slice(N).map(async (u) => call(w.url, 'POST', `/api/sales/s/reservations`, { token: u.token, headers: { 'x-admission-token': await w.keys.sign({ sale: 's' }) } }))),
  ]);
  t.ok(hooks.every((r) => r.status === 200), 'every delivery answered 200');
  const outcomes = hooks.map((r) => String(r.body.outcome)).sort();
  t.same(outcomes.filter((o) => o === 'paid').length, N, 'each capture sold its unit once');
  t.same(outcomes.filter((o) => o === 'duplicate').length, N, 'its second delivery changed nothing');
  t.same(reservations.map((r) => r.status), Array(MORE).fill(201), 'the reservations made meanwhile were all answered');
  const a = await audit(w.url, 's');
  t.same([a.ok, a.sold, a.reserved, a.available], [true, N, MORE, 0], 'the counters add up');
  t.equal(saleTurnsOpen(), 0, 'no turn left open');
});
