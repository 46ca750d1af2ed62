/**
 * `checkout_reserve_batch` with batches of several processes deciding at the same time: it
 * decides and inserts without the sale row's lock and takes the units under it, so the races
 * between two batches are real. Driven straight through Postgres connections (one per
 * "process"), holding a batch's transaction open where a test needs a precise interleaving.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createDb, migrate } from '../../checkout/db.js';
import { createReserver } from '../../checkout/reserve.js';
import type { AdmissionClaims } from '../../shared/admission.js';
import { testDatabase } from './helpers.js';

const url = await testDatabase(t, 'batch');
{
  const db = createDb(url, 2);
  await migrate(db);
  await db.destroy();
}
const pool = new pg.Pool({ connectionString: url, max: 40 });
// The database is dropped WITH (FORCE) at teardown, which may end idle clients first.
pool.on('error', () => {});
t.teardown(() => pool.end());

interface Req {
  user: string;
  jti: string;
  key?: string;
}
interface Row {
  idx: number;
  code: string;
  reservation_id: string | null;
  available: number;
  reserved: number;
}

async function users(n: number): Promise<string[]> {
  const { rows } = await pool.query(
    `INSERT INTO users (email, password_hash) SELECT $2 || g || '@example.com', 'x' FROM generate_series(1, $1::int) g RETURNING id`,
    [n, randomUUID()],
  );
  return rows.map((r) => r.id);
}

async function sale(total: number): Promise<string> {
  const id = `s-${randomUUID().slice(0, 8)}`;
  await pool.query(
    `INSERT INTO sales (id, name, price_cents, currency, total, available, starts_at, ends_at, reservation_seconds)
     VALUES ($1, $1, 100, 'EUR', $2, $2, now() - interval '1 minute', now() + interval '1 hour', 600)`,
    [id, total],
  );
  return id;
}

const CALL = `SELECT * FROM checkout_reserve_batch($1, now(), $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[])`;
const args = (s: string, batch: Req[]) => [s, batch.map((r) => r.user), batch.map((r) => r.jti), batch.map(() => s), batch.map((r) => `v-${r.jti}`), batch.map((r) => r.key ?? null)];

async function reserve(c: pg.PoolClient | pg.Pool, s: string, batch: Req[]): Promise<Row[]> {
  return (await c.query<Row>(CALL, args(s, batch))).rows;
}

/**
 * Starts `batch` on its own connection; resolves once it waits on a lock held by another
 * transaction, with `done`, its answer.
 */
async function blockedCall(s: string, batch: Req[]): Promise<{ done: Promise<Row[]> }> {
  const c = await pool.connect();
  const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
  const done = reserve(c, s, batch).finally(() => c.release());
  done.catch(() => {}); // awaited by the caller
  for (let i = 0; ; i++) {
    const { rows } = await pool.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid]);
    if (rows[0]?.wait_event_type === 'Lock') break;
    if (i > 500) throw new Error('the second batch never waited on a lock');
    await new Promise((r) => setTimeout(r, 10));
  }
  return { done };
}

async function counters(s: string) {
  const { rows } = await pool.query(
    `SELECT s.total, s.available, s.reserved, s.sold,
            (SELECT count(*)::int FROM reservations r WHERE r.sale_id = s.id AND r.status = 'reserved') AS rows
     FROM sales s WHERE s.id = $1`,
    [s],
  );
  return rows[0] as { total: number; available: number; reserved: number; sold: number; rows: number };
}

t.test('a jti redeemed by a batch still uncommitted: the other batch waits, then answers admission_used', async (t) => {
  const s = await sale(10);
  const [a, b] = await users(2);
  const jti = randomUUID();
  const first = await pool.connect();
  await first.query('BEGIN');
  const mine = await reserve(first, s, [{ user: a!, jti }]);
  t.equal(mine[0]!.code, 'reserved');
  const other = await blockedCall(s, [{ user: b!, jti }]);
  await first.query('COMMIT');
  first.release();
  const [row] = await other.done;
  t.equal(row!.code, 'admission_used', 'the same token from another process');
  t.same(await counters(s), { total: 10, available: 9, reserved: 1, sold: 0, rows: 1 });
});

t.test('a user with an order still uncommitted: the other batch answers already_purchased', async (t) => {
  const s = await sale(10);
  const [a] = await users(1);
  const first = await pool.connect();
  await first.query('BEGIN');
  t.equal((await reserve(first, s, [{ user: a!, jti: randomUUID() }]))[0]!.code, 'reserved');
  const other = await blockedCall(s, [{ user: a!, jti: randomUUID(), key: 'k1' }]);
  await first.query('COMMIT');
  first.release();
  const [row] = await other.done;
  t.equal(row!.code, 'already_purchased');
  const stored = await pool.query(`SELECT code, body FROM idempotency_keys WHERE user_id = $1 AND key = 'k1'`, [a]);
  t.same(stored.rows, [{ code: 'already_purchased', body: null }], 'the stored answer is the one given');
  t.same(await counters(s), { total: 10, available: 9, reserved: 1, sold: 0, rows: 1 });
});

t.test('two batches see the same last units: the one that locks second gives its rows back and answers sold_out', async (t) => {
  const s = await sale(2);
  const us = await users(4);
  const first = await pool.connect();
  await first.query('BEGIN');
  const mine = await reserve(first, s, [{ user: us[0]!, jti: randomUUID() }, { user: us[1]!, jti: randomUUID() }]);
  t.same(mine.map((r) => r.code), ['reserved', 'reserved']);
  // Its snapshot still says 2 available: it inserts two rows, then waits for the sale row.
  const other = await blockedCall(s, [{ user: us[2]!, jti: randomUUID(), key: 'k' }, { user: us[3]!, jti: randomUUID() }]);
  await first.query('COMMIT');
  first.release();
  const rows = await other.done;
  t.same(rows.map((r) => [r.code, r.reservation_id]), [['sold_out', null], ['sold_out', null]]);
  t.same(await counters(s), { total: 2, available: 0, reserved: 2, sold: 0, rows: 2 }, 'no row of the losing batch is left');
  const left = await pool.query(`SELECT count(*)::int AS n FROM reservations WHERE sale_id = $1 AND user_id = ANY($2::uuid[])`, [s, [us[2], us[3]]]);
  t.equal(left.rows[0].n, 0);
  const stored = await pool.query(`SELECT code, body FROM idempotency_keys WHERE user_id = $1`, [us[2]]);
  t.same(stored.rows, [{ code: 'sold_out', body: null }]);
});

t.test('a partial grant: units go to the batch\'s earliest requests', async (t) => {
  const s = await sale(3);
  const us = await users(5);
  const first = await pool.connect();
  await first.query('BEGIN');
  t.same((await reserve(first, s, [{ user: us[0]!, jti: randomUUID() }])).map((r) => r.code), ['reserved']);
  const other = await blockedCall(s, us.slice(1, 4).map((user) => ({ user, jti: randomUUID() })));
  await first.query('COMMIT');
  first.release();
  t.same((await other.done).map((r) => r.code), ['reserved', 'reserved', 'sold_out'], 'arrival order within the batch');
  t.same(await counters(s), { total: 3, available: 0, reserved: 3, sold: 0, rows: 3 });
});

t.test('30 batches at once from 30 connections, tokens and users shared across them: never oversold, every answer true', async (t) => {
  const UNITS = 60;
  const s = await sale(UNITS);
  const us = await users(200);
  const jtis = Array.from({ length: 150 }, () => randomUUID());
  // Batch b holds 10 requests with distinct users and jtis inside it (the caller's promise),
  // but the batches overlap: users and tokens repeat across them.
  const batches: Req[][] = Array.from({ length: 30 }, (_, b) =>
    Array.from({ length: 10 }, (_, i) => ({ user: us[(b * 7 + i * 13) % us.length]!, jti: jtis[(b * 11 + i * 3) % jtis.length]! })),
  );
  for (const batch of batches) {
    t.equal(new Set(batch.map((r) => r.user)).size, batch.length);
    t.equal(new Set(batch.map((r) => r.jti)).size, batch.length);
  }
  const answers = await Promise.all(batches.map((batch) => reserve(pool, s, batch)));
  const flat = batches.flatMap((batch, b) => batch.map((r, i) => ({ ...r, ...answers[b]![i]! })));
  const won = flat.filter((a) => a.code === 'reserved');
  const c = await counters(s);
  t.equal(c.available + c.reserved + c.sold, UNITS, 'the counters add up');
  t.equal(c.rows, c.reserved, 'one row per reserved unit');
  t.equal(won.length, c.rows, 'every reserved answer is a row, every row was answered');
  t.ok(won.length <= UNITS, 'never more than the stock');
  t.equal(new Set(won.map((a) => a.jti)).size, won.length, 'a token redeemed at most once');
  t.equal(new Set(won.map((a) => a.user)).size, won.length, 'one order per user');
  const rows = await pool.query(`SELECT id, user_id, jti FROM reservations WHERE sale_id = $1`, [s]);
  t.same(new Set(rows.rows.map((r) => r.id)), new Set(won.map((a) => a.reservation_id)));
  const wonJtis = new Set(won.map((a) => a.jti));
  const wonUsers = new Set(won.map((a) => a.user));
  const codes = new Set(flat.map((a) => a.code));
  t.ok([...codes].every((k) => ['reserved', 'admission_used', 'already_purchased', 'sold_out'].includes(k)), [...codes].join(','));
  for (const a of flat) {
    if (a.code === 'admission_used') t.ok(wonJtis.has(a.jti), 'admission_used names a token some request redeemed');
    if (a.code === 'already_purchased') t.ok(wonUsers.has(a.user), 'already_purchased names a user who holds an order');
  }
  if (codes.has('sold_out')) t.equal(c.available, 0, 'sold_out answered only once every unit was gone');
  t.ok(codes.has('admission_used') && codes.has('already_purchased'), 'the overlaps were exercised');
});

t.test('two batches holding the same users and tokens in opposite order, at once: no deadlock, each request decided once', async (t) => {
  // Issue 10: rows went in under the unique indexes in arrival order, so batch A held user 1's
  // index entry and waited for user 200's while batch B held 200's and waited for 1's.
  for (let round = 0; round < 5; round++) {
    const UNITS = 150;
    const s = await sale(UNITS);
    const us = await users(200);
    const batch = us.map((user) => ({ user, jti: randomUUID() }));
    const reversed = [...batch].reverse();
    // Each batch on its own connection; both start before either commits.
    const [a, b] = await Promise.allSettled([reserve(pool, s, batch), reserve(pool, s, reversed)]);
    const failures = [a, b].filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    t.same(failures, [], `round ${round}: neither batch failed`);
    if (failures.length) return;
    const rowsA = (a as PromiseFulfilledResult<Row[]>).value;
    const rowsB = (b as PromiseFulfilledResult<Row[]>).value;
    // Request i of A and request 199-i of B are the same user with the same token: exactly one wins.
    let won = 0;
    let twice = 0;
    for (let i = 0; i < batch.length; i++) {
      const x = rowsA[i]!.code;
      const y = rowsB[batch.length - 1 - i]!.code;
      if (x === 'reserved' || y === 'reserved') won++;
      if (x === 'reserved' && y === 'reserved') twice++;
      if (x !== 'reserved' && y !== 'reserved' && (x !== 'sold_out' || y !== 'sold_out')) t.fail(`request ${i}: neither won, yet ${x} / ${y}`);
    }
    t.equal(twice, 0, 'no request reserved twice');
    const c = await counters(s);
    t.equal(won, UNITS, `round ${round}: every unit taken once`);
    t.same(c, { total: UNITS, available: 0, reserved: UNITS, sold: 0, rows: UNITS });
  }
});

t.test('a request Postgres cannot take fails alone: the rest of its batch is decided', async (t) => {
  const s = await sale(10);
  const us = await users(4);
  const db = createDb(url, 2);
  t.teardown(() => db.destroy());
  const reserver = createReserver(db, Date.now, () => {});
  const claims = (over: Record<string, string> = {}) =>
    ({ iss: 'waiting-room', aud: 'checkout', sub: `v-${randomUUID()}`, room: s, sale: s, ticket: 1, jti: randomUUID(), iat: 0, exp: 0, ...over }) as AdmissionClaims;
  // Sent in one event-loop turn: one batch. A NUL byte is refused before the call; a user id
  // that is no uuid makes Postgres refuse the whole call (22P02), so the batch is split.
  const answers = await Promise.all([
    reserver.reserve(s, { userId: us[0]!, claims: claims() }),
    reserver.reserve(s, { userId: us[1]!, claims: claims({ sub: 'v\u0000' }) }),
    reserver.reserve(s, { userId: us[2]!, claims: claims() }),
    reserver.reserve(s, { userId: 'not-a-uuid', claims: claims() }),
    reserver.reserve(s, { userId: us[3]!, claims: claims() }),
  ]);
  t.same(answers.map((a) => a.status), [201, 400, 201, 400, 201]);
  t.same([answers[1]!.body.error, answers[1]!.body.field], ['bad_request', 'claims.sub']);
  t.equal(answers[3]!.body.error, 'bad_request');
  t.same(await counters(s), { total: 10, available: 7, reserved: 3, sold: 0, rows: 3 });
});
