/**
 * Sales: the public view with its live state, the operator's create/update, and the
 * stock counters every other module moves under the sale row's lock.
 */
import { sql, type Selectable } from 'kysely';
import type { Database, Db, Tx } from './db.js';
import { isSoldOut } from '../shared/stock.js';
import { CheckoutError } from './errors.js';
import type { SaleInput, SaleState, SaleView } from './schemas.js';

export type { SaleState } from './schemas.js';

export type SaleRow = Omit<Selectable<Database['sales']>, 'created_at' | 'updated_at'>;

export function saleState(s: Pick<SaleRow, 'starts_at' | 'ends_at' | 'available' | 'reserved'>, now: number): SaleState {
  if (now < s.starts_at.getTime()) return 'upcoming';
  if (now >= s.ends_at.getTime()) return 'ended';
  if (isSoldOut(s)) return 'sold_out';
  return 'active';
}

export function saleView(s: SaleRow, now: number): SaleView {
  return {
    sale: s.id,
    name: s.name,
    priceCents: s.price_cents,
    currency: s.currency,
    state: saleState(s, now),
    startsAt: s.starts_at.toISOString(),
    endsAt: s.ends_at.toISOString(),
    total: s.total,
    available: s.available,
    reserved: s.reserved,
    sold: s.sold,
    reservationSeconds: s.reservation_seconds,
  };
}

export const SALE_COLUMNS = ['id', 'name', 'price_cents', 'currency', 'total', 'available', 'reserved', 'sold', 'starts_at', 'ends_at', 'reservation_seconds', 'stock_version'] as const;

export async function getSale(db: Db | Tx, sale: string): Promise<SaleRow | undefined> {
  return db.selectFrom('sales').select(SALE_COLUMNS).where('id', '=', sale).executeTakeFirst();
}

/** Locks the sale row: every change of stock holds this lock, so stock moves are serial (see orders.ts on deadlocks). */
export async function lockSale(trx: Tx, sale: string): Promise<SaleRow | undefined> {
  return trx.selectFrom('sales').select(SALE_COLUMNS).where('id', '=', sale).forUpdate().executeTakeFirst();
}

/** Moves `n` units between the counters; the CHECK constraints refuse any result that breaks an invariant. */
export async function moveStock(trx: Tx, sale: string, d: { available?: number; reserved?: number; sold?: number }): Promise<SaleRow> {
  const row = await trx
    .updateTable('sales')
    .set({
      available: sql`available + ${d.available ?? 0}`,
      reserved: sql`reserved + ${d.reserved ?? 0}`,
      sold: sql`sold + ${d.sold ?? 0}`,
      stock_version: sql`stock_version + 1`,
      updated_at: sql`now()`,
    })
    .where('id', '=', sale)
    .returning(SALE_COLUMNS)
    .executeTakeFirstOrThrow();
  return row;
}

const REQUIRED_ON_CREATE = ['name', 'priceCents', 'currency', 'total', 'startsAt', 'endsAt'] as const;

/** Creates or updates a sale. Stock may be raised or lowered, never below reserved + sold. */
export async function upsertSale(db: Db, sale: string, input: SaleInput): Promise<{ created: boolean; row: SaleRow }> {
  const startsAt = input.startsAt === undefined ? undefined : new Date(input.startsAt);
  const endsAt = input.endsAt === undefined ? undefined : new Date(input.endsAt);
  for (const [name, d] of [['startsAt', startsAt], ['endsAt', endsAt]] as const) {
    if (d && Number.isNaN(d.getTime())) throw new CheckoutError('bad_request', { field: name }, `${name} must be an ISO-8601 time.`);
  }
  return db.transaction().execute(async (trx) => {
    const cur = await lockSale(trx, sale);
    if (!cur) {
      const missing = REQUIRED_ON_CREATE.filter((k) => input[k] === undefined);
      if (missing.length) throw new CheckoutError('bad_request', { missing }, `A new sale needs ${missing.join(', ')}.`);
      if (endsAt!.getTime() <= startsAt!.getTime()) throw new CheckoutError('bad_request', { field: 'endsAt' }, 'endsAt must be after startsAt.');
      const row = await trx
        .insertInto('sales')
        .values({
          id: sale,
          name: input.name!,
          price_cents: input.priceCents!,
          currency: input.currency!.toUpperCase(),
          total: input.total!,
          available: input.total!,
          starts_at: startsAt!,
          ends_at: endsAt!,
          reservation_seconds: input.reservationSeconds ?? 600,
        })
        .onConflict((oc) => oc.doNothing())
        .returning(SALE_COLUMNS)
        .executeTakeFirst();
      if (!row) throw new CheckoutError('bad_request', {}, 'The sale was created concurrently; retry.');
      return { created: true, row };
    }
    const total = input.total ?? cur.total;
    const committed = cur.reserved + cur.sold;
    if (total < committed) {
      throw new CheckoutError('stock_below_committed', { reserved: cur.reserved, sold: cur.sold, requestedTotal: total }, `Stock cannot go below ${committed}: ${cur.reserved} reserved and ${cur.sold} sold.`);
    }
    const s = startsAt ?? cur.starts_at;
    const e = endsAt ?? cur.ends_at;
    if (e.getTime() <= s.getTime()) throw new CheckoutError('bad_request', { field: 'endsAt' }, 'endsAt must be after startsAt.');
    const row = await trx
      .updateTable('sales')
      .set({
        name: input.name ?? cur.name,
        price_cents: input.priceCents ?? cur.price_cents,
        currency: (input.currency ?? cur.currency).toUpperCase(),
        total,
        available: total - committed,
        starts_at: s,
        ends_at: e,
        reservation_seconds: input.reservationSeconds ?? cur.reservation_seconds,
        stock_version: sql`stock_version + 1`,
        updated_at: sql`now()`,
      })
      .where('id', '=', sale)
      .returning(SALE_COLUMNS)
      .executeTakeFirstOrThrow();
    return { created: false, row };
  });
}

/**
 * How long after its deadline a payment may still be unsettled before the audit fails (ms):
 * a few reconciliation passes (every 2 s) and a provider that answered slowly once.
 */
export const SETTLE_GRACE_MS = 30_000;

export interface AuditOptions {
  /** The time of the audit (ms since the epoch; the service's clock). */
  now: number;
  /** Payments pending longer than this are reconciled (the service's reconcileAfterMs). */
  reconcileAfterMs: number;
}

/**
 * Recounts the invariants of docs/api.md section 3 from the tables, and that payments settle:
 * none still pending past its deadline (reconciliation's, payments/reconcile.ts: `afterMs` after
 * it began and once its reservation ended, plus SETTLE_GRACE_MS), no refund still unconfirmed
 * SETTLE_GRACE_MS after it was decided, and no refunded payment on a paid order.
 */
export async function auditSale(db: Db, sale: string, opts: AuditOptions = { now: Date.now(), reconcileAfterMs: 30_000 }) {
  // One snapshot for every count, so a commit between two reads cannot fake a mismatch.
  return db.transaction().setIsolationLevel('repeatable read').execute((trx) => recount(trx, sale, opts));
}

async function recount(db: Tx, sale: string, opts: AuditOptions) {
  const graceBefore = new Date(opts.now - SETTLE_GRACE_MS);
  const afterSecs = opts.reconcileAfterMs / 1000;
  const s = await getSale(db, sale);
  if (!s) return undefined;
  const { rows } = await sql<{
    reserved_counted: number;
    paid_counted: number;
    expired: number;
    cancelled: number;
    failed: number;
    duplicate_user_orders: number;
    duplicate_jtis: number;
    paid_without_one_payment: number;
    successes_on_unpaid: number;
    refunds: number;
    pending_overdue: number;
    refunds_unconfirmed: number;
    refunds_on_paid: number;
  }>`
    SELECT
      (SELECT count(*) FROM reservations WHERE sale_id = ${sale} AND status IN ('reserved', 'payment_pending')) AS reserved_counted,
      (SELECT count(*) FROM reservations WHERE sale_id = ${sale} AND status = 'paid') AS paid_counted,
      (SELECT count(*) FROM reservations WHERE sale_id = ${sale} AND status = 'expired') AS expired,
      (SELECT count(*) FROM reservations WHERE sale_id = ${sale} AND status = 'cancelled') AS cancelled,
      (SELECT count(*) FROM reservations WHERE sale_id = ${sale} AND status = 'failed') AS failed,
      (SELECT count(*) FROM (SELECT user_id FROM reservations WHERE sale_id = ${sale}
          AND status IN ('reserved', 'payment_pending', 'paid') GROUP BY user_id HAVING count(*) > 1) d) AS duplicate_user_orders,
      (SELECT count(*) FROM (SELECT jti FROM reservations WHERE sale_id = ${sale} GROUP BY jti HAVING count(*) > 1) d) AS duplicate_jtis,
      (SELECT count(*) FROM reservations r WHERE r.sale_id = ${sale} AND r.status = 'paid'
          AND (SELECT count(*) FROM payments p WHERE p.reservation_id = r.id AND p.status = 'succeeded') <> 1) AS paid_without_one_payment,
      (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
          WHERE r.sale_id = ${sale} AND p.status = 'succeeded' AND r.status <> 'paid') AS successes_on_unpaid,
      (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
          WHERE r.sale_id = ${sale} AND p.status = 'refunded') AS refunds,
      (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
          WHERE r.sale_id = ${sale} AND p.status = 'pending'
          AND GREATEST(p.created_at + make_interval(secs => ${afterSecs}), COALESCE(r.ended_at, r.expires_at)) <= ${graceBefore}) AS pending_overdue,
      (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
          WHERE r.sale_id = ${sale} AND p.status = 'refunded' AND p.refund_id IS NULL AND p.updated_at <= ${graceBefore}) AS refunds_unconfirmed,
      (SELECT count(*) FROM payments p JOIN reservations r ON r.id = p.reservation_id
          WHERE r.sale_id = ${sale} AND p.status = 'refunded' AND r.status = 'paid') AS refunds_on_paid
  `.execute(db);
  const c = rows[0]!;
  const checks = {
    availableNonNegative: s.available >= 0,
    countsAddUp: s.available + s.reserved + s.sold === s.total,
    reservedMatches: s.reserved === c.reserved_counted,
    soldMatches: s.sold === c.paid_counted,
    oneOrderPerUser: c.duplicate_user_orders === 0,
    oneReservationPerJti: c.duplicate_jtis === 0,
    onePaymentPerPaidOrder: c.paid_without_one_payment === 0 && c.successes_on_unpaid === 0,
    paymentsSettle: c.pending_overdue === 0 && c.refunds_unconfirmed === 0,
    noRefundOnPaidOrder: c.refunds_on_paid === 0,
  };
  return {
    ok: Object.values(checks).every(Boolean),
    sale,
    total: s.total,
    available: s.available,
    reserved: s.reserved,
    sold: s.sold,
    reservedCounted: c.reserved_counted,
    paidCounted: c.paid_counted,
    expired: c.expired,
    cancelled: c.cancelled,
    failed: c.failed,
    duplicateUserOrders: c.duplicate_user_orders,
    duplicateJtis: c.duplicate_jtis,
    paidWithoutOnePayment: c.paid_without_one_payment,
    successesOnUnpaid: c.successes_on_unpaid,
    refunds: c.refunds,
    pendingOverdue: c.pending_overdue,
    refundsUnconfirmed: c.refunds_unconfirmed,
    refundsOnPaid: c.refunds_on_paid,
    checks,
  };
}
