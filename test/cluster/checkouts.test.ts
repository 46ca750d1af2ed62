/**
 * Two `npm run checkout` processes reserving for one sale at once (docs/api.md section 6), on a
 * Redis Cluster of three masters with a replica each and one Postgres database, both started at
 * the same moment (so they also migrate the database at once). Every shopper sends its reservation
 * to both processes at the same instant, twice: its first admission token with one idempotency
 * key, and a second token without one; a 503 is retried after its Retry-After. Never a 5xx but a
 * 503 `unavailable` with Retry-After (a deadlock or serialization failure is retried or cannot
 * happen), every answer one the contract lists, one reservation per user, the audit ok.
 */
import t from 'tap';
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { spawnService, type Service } from '../../scripts/procs.js';
import { audit, createSale, jwksServer, testDatabase, usersWithSessions, WEBHOOK_SECRET } from '../checkout/helpers.js';
import { redisCluster } from './harness.js';
import { serviceEnv, sleep, timedCall, type Answer } from './faults.js';

const SHOPPERS = 80;
const STOCK = 50;
/** What a reservation may answer here (docs/api.md section 3), besides 503 unavailable. */
const ALLOWED = new Set(['201', '403 admission_used', '409 already_purchased', '409 sold_out']);

t.test('two checkout processes, one sale, the same shoppers retrying on both at once: never a 5xx, one reservation per user, audit ok', async (t) => {
  const later: (() => unknown)[] = [];
  const services: Service[] = [];
  t.teardown(async () => {
    await Promise.all(services.map((s) => s.stop(5000)));
    for (const fn of later.reverse()) await fn();
  });
  const deferred = { teardown: (fn: () => unknown) => later.push(fn) };
  const cluster = await redisCluster(deferred, { replicas: 1 });
  const databaseUrl = await testDatabase(deferred, 'two');
  const keys = await jwksServer(deferred);
  const env = serviceEnv(cluster.seeds, {
    DATABASE_URL: databaseUrl, JWKS_URL: keys.url, CHECKOUT_PORT: '0',
    PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET, SESSION_SECRET: 'test-session-secret',
  });
  const started = await Promise.allSettled(['checkout-a', 'checkout-b'].map((name) => spawnService(name, 'scripts/checkout.ts', { env })));
  for (const r of started) if (r.status === 'fulfilled') services.push(r.value);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  const urls = services.map((s) => `http://127.0.0.1:${s.port}`);
  t.not(urls[0], urls[1], `two processes on two ports: ${urls.join(', ')}`);

  await createSale(urls[0]!, 'drop', { total: STOCK });
  const shoppers = await usersWithSessions({ url: urls[1]!, config: { databaseUrl } }, SHOPPERS, 'two');

  /** One reservation request, retried after Retry-After while it answers 503 unavailable. */
  const answers: (Answer & { user: string; via: number })[] = [];
  const reserve = async (user: string, session: string, via: number, token: string, key?: string) => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const a = await timedCall(`${urls[via]}/api/sales/drop/reservations`, {
        method: 'POST',
        headers: { authorization: `Bearer ${session}`, 'x-admission-token': token, ...(key ? { 'idempotency-key': key } : {}) },
      });
      answers.push({ ...a, user, via });
      if (a.status !== 503) return;
      await sleep(Number(a.retryAfter ?? 1) * 1000);
    }
  };
  await Promise.all(shoppers.map(async (s) => {
    const [first, second] = await Promise.all([keys.sign({ sale: 'drop', sub: `v-${s.userId}` }), keys.sign({ sale: 'drop', sub: `v-${s.userId}` })]);
    const key = randomUUID();
    await Promise.all([reserve(s.userId, s.token, 0, first, key), reserve(s.userId, s.token, 1, first, key), reserve(s.userId, s.token, 1, second), reserve(s.userId, s.token, 0, second)]);
  }));

  const label = (a: Answer) => (a.status === 201 ? '201' : `${a.status} ${String(a.error)}`);
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(label(a), (counts.get(label(a)) ?? 0) + 1);
  t.comment(`${answers.length} answers: ${[...counts].map(([k, n]) => `${k} x${n}`).join(', ')}`);
  const fiveHundreds = answers.filter((a) => a.status >= 500 && !(a.status === 503 && a.error === 'unavailable' && /^\d+$/.test(a.retryAfter ?? '')));
  t.same(fiveHundreds.map((a) => ({ via: a.via, status: a.status, body: a.body })), [], 'no 5xx but 503 unavailable with Retry-After');
  const others = answers.filter((a) => a.status !== 503 && !ALLOWED.has(label(a)));
  t.same(others.map((a) => ({ via: a.via, status: a.status, body: a.body })), [], 'every other answer is one the contract lists for this request');
  t.ok(answers.filter((a) => a.status === 201).some((a) => a.via === 0) && answers.filter((a) => a.status === 201).some((a) => a.via === 1), 'both processes reserved units');

  // One reservation per user: every 201 a user got names the same reservation, the one stored.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  t.teardown(() => db.end());
  const rows = (await db.query<{ id: string; user_id: string }>("SELECT id, user_id FROM reservations WHERE sale_id = 'drop'")).rows;
  const stored = new Map<string, string[]>();
  for (const r of rows) stored.set(r.user_id, [...(stored.get(r.user_id) ?? []), r.id]);
  t.same([...stored.values()].filter((ids) => ids.length > 1), [], 'no user holds two reservations');
  const answered = new Map<string, Set<string>>();
  for (const a of answers) if (a.status === 201) answered.set(a.user, (answered.get(a.user) ?? new Set()).add(String(a.body.reservationId)));
  t.same([...answered].filter(([, ids]) => ids.size > 1).map(([u]) => u), [], 'no user was answered two different reservations');
  t.same(
    [...answered].map(([u, ids]) => [u, [...ids][0]]).sort(),
    [...stored].map(([u, ids]) => [u, ids[0]]).sort(),
    `every user answered 201 holds exactly the reservation it was told, and no one else holds one (${stored.size} of ${SHOPPERS})`,
  );
  t.equal(stored.size, Math.min(STOCK, SHOPPERS), 'the stock went to as many shoppers as it had units');

  const a = await audit(urls[1]!, 'drop');
  t.match(a, { ok: true, sold: 0, reserved: STOCK, available: 0, duplicateJtis: 0, duplicateUserOrders: 0 }, 'the audit holds');
});
