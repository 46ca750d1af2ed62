/**
 * Reservations, group-committed. One hot sale row takes ~1,500 transactions/s at most, so
 * the requests for a sale that arrive together are decided in ONE transaction: lock the
 * sale row, look up used jtis and users' live orders for the whole batch, decide each
 * request in arrival order (CONTRACT.md section 3's order: jti, window, one per user, stock),
 * insert the winners with ON CONFLICT DO NOTHING, and take k units with one guarded UPDATE.
 * Each request gets its own answer; one request's error never fails the others.
 *
 * One batch per sale is in flight per process; requests arriving meanwhile form the next.
 * Several processes serialise on the sale row lock; the constraints catch anything else.
 */
import { sql } from 'kysely';
import type { AdmissionClaims } from '../shared/admission.js';
import type { Db, Tx } from './db.js';
import { bodyOf, ERRORS, type ErrorCode } from './errors.js';
import { lockSale, moveStock, type SaleRow } from './sales.js';

export interface ReserveRequest {
  userId: string;
  claims: AdmissionClaims;
  idempotencyKey?: string;
}

export interface ReserveAnswer {
  status: number;
  body: Record<string, unknown>;
}

interface Pending extends ReserveRequest {
  resolve(a: ReserveAnswer): void;
  reject(e: unknown): void;
}

const MAX_BATCH = 256;

function err(code: ErrorCode, fields: Record<string, unknown> = {}): ReserveAnswer {
  return { status: ERRORS[code].status, body: bodyOf(code, fields) };
}

export interface Reserver {
  reserve(sale: string, req: ReserveRequest): Promise<ReserveAnswer>;
  /** Resolves once every queued request has been answered. */
  drain(): Promise<void>;
}

export function createReserver(
  db: Db,
  clock: () => number,
  committed: (row: SaleRow, batchSize: number, taken: number) => void,
): Reserver {
  const queues = new Map<string, { waiting: Pending[]; running: Promise<void> | null }>();

  function kick(sale: string) {
    const q = queues.get(sale)!;
    if (q.running || q.waiting.length === 0) return;
    q.running = (async () => {
      await new Promise<void>((r) => setImmediate(r)); // gather what arrives in this turn
      while (q.waiting.length) {
        const batch = q.waiting.splice(0, MAX_BATCH);
        try {
          const answers = await decideBatch(db, sale, batch, clock());
          batch.forEach((p, i) => p.resolve(answers[i]!));
        } catch (e) {
          batch.forEach((p) => p.reject(e));
        }
      }
    })().finally(() => {
      q.running = null;
      if (q.waiting.length) kick(sale);
      else queues.delete(sale);
    });
  }

  async function decideBatch(db: Db, sale: string, batch: Pending[], now: number): Promise<ReserveAnswer[]> {
    const { answers, row, taken } = await db.transaction().execute((trx) => decide(trx, sale, batch, now));
    if (row) committed(row, batch.length, taken);
    return answers;
  }

  return {
    reserve(sale, req) {
      return new Promise<ReserveAnswer>((resolve, reject) => {
        let q = queues.get(sale);
        if (!q) queues.set(sale, (q = { waiting: [], running: null }));
        q.waiting.push({ ...req, resolve, reject });
        kick(sale);
      });
    },
    async drain() {
      while (queues.size) await Promise.all([...queues.values()].map((q) => q.running));
    },
  };
}

async function decide(trx: Tx, sale: string, batch: ReserveRequest[], now: number) {
  const answers: (ReserveAnswer | undefined)[] = new Array(batch.length);
  const s = await lockSale(trx, sale);
  if (!s) return { answers: batch.map(() => err('unknown_sale')), row: null, taken: 0 };

  // Idempotency: a key already answered gets that answer again; a key repeated inside
  // this batch gets the answer of its first request.
  const firstOfKey = new Map<string, number>();
  const repeats: { i: number; first: number }[] = [];
  const keyed: { r: ReserveRequest; i: number }[] = [];
  batch.forEach((r, i) => {
    if (r.idempotencyKey === undefined) return;
    const k = `${r.userId} ${r.idempotencyKey}`;
    const first = firstOfKey.get(k);
    if (first === undefined) {
      firstOfKey.set(k, i);
      keyed.push({ r, i });
    } else {
      repeats.push({ i, first });
      answers[i] = err('internal'); // placeholder, replaced below
    }
  });
  if (keyed.length) {
    const { rows } = await sql<{ user_id: string; key: string; sale_id: string; status_code: number; body: Record<string, unknown> }>`
      SELECT user_id, key, sale_id, status_code, body FROM idempotency_keys
      WHERE (user_id, key) IN (SELECT * FROM unnest(${keyed.map((x) => x.r.userId)}::uuid[], ${keyed.map((x) => x.r.idempotencyKey!)}::text[]))
    `.execute(trx);
    const stored = new Map(rows.map((r) => [`${r.user_id} ${r.key}`, r]));
    for (const { r, i } of keyed) {
      const hit = stored.get(`${r.userId} ${r.idempotencyKey}`);
      if (!hit) continue;
      answers[i] = hit.sale_id === sale ? { status: hit.status_code, body: hit.body } : err('idempotency_key_reused');
    }
  }

  const open = () => batch.map((r, i) => ({ r, i })).filter((x) => answers[x.i] === undefined);
  const jtis = open().map((x) => x.r.claims.jti);
  const used = new Set(
    jtis.length ? (await sql<{ jti: string }>`SELECT jti FROM reservations WHERE jti = ANY(${jtis}::text[])`.execute(trx)).rows.map((r) => r.jti) : [],
  );
  const userIds = [...new Set(open().map((x) => x.r.userId))];
  const { rows: users } = await sql<{ id: string; has_order: boolean }>`
    SELECT u.id, EXISTS (SELECT 1 FROM reservations r WHERE r.sale_id = ${sale} AND r.user_id = u.id
                         AND r.status IN ('reserved', 'payment_pending', 'paid')) AS has_order
    FROM users u WHERE u.id = ANY(${userIds}::uuid[])
  `.execute(trx);
  const userHasOrder = new Map(users.map((u) => [u.id, u.has_order]));

  const notStarted = now < s.starts_at.getTime();
  const ended = now >= s.ends_at.getTime();
  const winners: { r: ReserveRequest; i: number }[] = [];
  const winningJtis = new Set<string>();
  const winningUsers = new Set<string>();
  for (const { r, i } of open()) {
    const hasOrder = userHasOrder.get(r.userId);
    if (hasOrder === undefined) answers[i] = err('unauthenticated');
    else if (used.has(r.claims.jti) || winningJtis.has(r.claims.jti)) answers[i] = err('admission_used');
    else if (notStarted) answers[i] = err('sale_not_started', { startsAt: s.starts_at.toISOString() });
    else if (ended) answers[i] = err('sale_ended');
    else if (hasOrder || winningUsers.has(r.userId)) answers[i] = err('already_purchased');
    else if (winners.length >= s.available) answers[i] = err('sold_out');
    else {
      winners.push({ r, i });
      winningJtis.add(r.claims.jti);
      winningUsers.add(r.userId);
    }
  }

  let row: SaleRow | null = null;
  let taken = 0;
  if (winners.length) {
    const expiresAt = new Date(now + s.reservation_seconds * 1000);
    const { rows: inserted } = await sql<{ id: string; jti: string }>`
      INSERT INTO reservations (sale_id, user_id, jti, room, visitor_id, status, expires_at)
      SELECT ${sale}, u, j, r, v, 'reserved', ${expiresAt}
      FROM unnest(${winners.map((w) => w.r.userId)}::uuid[], ${winners.map((w) => w.r.claims.jti)}::text[],
                  ${winners.map((w) => w.r.claims.room)}::text[], ${winners.map((w) => w.r.claims.sub)}::text[]) AS t(u, j, r, v)
      ON CONFLICT DO NOTHING
      RETURNING id, jti
    `.execute(trx);
    const byJti = new Map(inserted.map((x) => [x.jti, x.id]));
    for (const { r, i } of winners) {
      const id = byJti.get(r.claims.jti);
      // A conflict here means another writer got past the sale lock: the constraint held the line.
      answers[i] = id
        ? { status: 201, body: { reservationId: id, status: 'reserved', expiresAt: expiresAt.toISOString() } }
        : err('already_purchased');
    }
    taken = inserted.length;
    row = await moveStock(trx, sale, { available: -taken, reserved: taken });
  }

  for (const { i, first } of repeats) answers[i] = answers[first];
  const notStored = new Set(['idempotency_key_reused', 'unauthenticated']);
  const toStore = keyed.filter((x) => !notStored.has(String((answers[x.i]!.body as { error?: string }).error)));
  if (toStore.length) {
    await sql`
      INSERT INTO idempotency_keys (user_id, key, sale_id, status_code, body)
      SELECT * FROM unnest(${toStore.map((x) => x.r.userId)}::uuid[], ${toStore.map((x) => x.r.idempotencyKey!)}::text[],
                           ${toStore.map(() => sale)}::text[], ${toStore.map((x) => answers[x.i]!.status)}::int[],
                           ${toStore.map((x) => JSON.stringify(answers[x.i]!.body))}::jsonb[])
      ON CONFLICT DO NOTHING
    `.execute(trx);
  }
  return { answers: answers as ReserveAnswer[], row, taken };
}
