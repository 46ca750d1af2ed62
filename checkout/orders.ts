/**
 * How an order moves after its reservation: pay, cancel, payment outcome, lapse.
 * Every change of stock takes the sale row lock first, then the reservation row: serial, and
 * free of deadlocks. (The reservation batch takes the sale row lock last, but by then holds
 * only rows it inserted itself, which nobody else can be waiting for.)
 */
import { sql } from 'kysely';
import type { Db, ReservationStatus, Tx } from './db.js';
import { CheckoutError } from './errors.js';
import { lockSale, moveStock, type SaleRow } from './sales.js';
import type { EventOutcome, PaymentEvent, Purchase } from './schemas.js';

export type { EventOutcome, PaymentEvent } from './schemas.js';

export interface Ended {
  row: SaleRow;
  visitors: { room: string; visitor_id: string }[];
  /** The orders were paid (the visitors bought), not released. */
  paid?: boolean;
}

async function ownReservation(db: Db | Tx, id: string, userId: string) {
  const r = await db
    .selectFrom('reservations')
    .select(['id', 'sale_id', 'user_id', 'status', 'expires_at'])
    .where('id', '=', id)
    .executeTakeFirst();
  if (!r) throw new CheckoutError('unknown_reservation');
  if (r.user_id !== userId) throw new CheckoutError('forbidden');
  return r;
}

/** Ends live reservations of one sale (cancel, payment failed, lapse) and returns their units. */
async function endLive(trx: Tx, sale: string, where: { id: string } | { lapsedBefore: Date }, to: ReservationStatus, now: Date) {
  const ended =
    'id' in where
      ? await sql<{ room: string; visitor_id: string }>`
          UPDATE reservations SET status = ${to}, ended_at = ${now}
          WHERE id = ${where.id} AND status IN ('reserved', 'payment_pending')
          RETURNING room, visitor_id`.execute(trx)
      : await sql<{ room: string; visitor_id: string }>`
          UPDATE reservations SET status = ${to}, ended_at = ${now}
          WHERE id IN (SELECT id FROM reservations
                       WHERE sale_id = ${sale} AND status IN ('reserved', 'payment_pending') AND expires_at <= ${where.lapsedBefore}
                       ORDER BY expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED)
          RETURNING room, visitor_id`.execute(trx);
  const n = ended.rows.length;
  const row = n ? await moveStock(trx, sale, { available: n, reserved: -n }) : null;
  return { n, row, visitors: ended.rows };
}

export async function cancelReservation(db: Db, id: string, userId: string, now: number): Promise<Ended> {
  const r = await ownReservation(db, id, userId);
  return db.transaction().execute(async (trx) => {
    await lockSale(trx, r.sale_id);
    const { n, row, visitors } = await endLive(trx, r.sale_id, { id }, 'cancelled', new Date(now));
    if (!n || !row) {
      const cur = await trx.selectFrom('reservations').select('status').where('id', '=', id).executeTakeFirstOrThrow();
      throw new CheckoutError('reservation_not_cancellable', { status: cur.status }, `This reservation is ${cur.status}: it can no longer be cancelled.`);
    }
    return { row, visitors };
  });
}

/** Every lapsed reservation of every sale goes back to stock. Safe with several processes. */
export async function expireLapsed(db: Db, now: number): Promise<Ended[]> {
  const at = new Date(now);
  const { rows: sales } = await sql<{ sale_id: string }>`
    SELECT DISTINCT sale_id FROM reservations WHERE status IN ('reserved', 'payment_pending') AND expires_at <= ${at}
  `.execute(db);
  const out: Ended[] = [];
  for (const { sale_id } of sales) {
    const res = await db.transaction().execute(async (trx) => {
      await lockSale(trx, sale_id);
      return endLive(trx, sale_id, { lapsedBefore: at }, 'expired', at);
    });
    if (res.row) out.push({ row: res.row, visitors: res.visitors });
  }
  return out;
}

export interface PaymentStart {
  paymentId: string;
  reservationId: string;
  amountCents: number;
  currency: string;
  method: string;
  /** False when a payment was already pending (the provider's charge is idempotent by its id). */
  isNew: boolean;
}

export async function startPayment(db: Db, id: string, userId: string, method: string, now: number): Promise<PaymentStart> {
  return db.transaction().execute(async (trx) => {
    // Ownership is checked on the locked row itself: one round trip instead of a read before the transaction.
    const cur = await trx
      .selectFrom('reservations')
      .innerJoin('sales', 'sales.id', 'reservations.sale_id')
      .select(['reservations.user_id', 'reservations.status', 'reservations.expires_at', 'sales.price_cents', 'sales.currency'])
      .where('reservations.id', '=', id)
      .forUpdate('reservations')
      .executeTakeFirst();
    if (!cur) throw new CheckoutError('unknown_reservation');
    if (cur.user_id !== userId) throw new CheckoutError('forbidden');
    if (cur.status === 'payment_pending') {
      const p = await trx
        .selectFrom('payments')
        .select(['id', 'method', 'amount_cents', 'currency'])
        .where('reservation_id', '=', id)
        .where('status', '=', 'pending')
        .executeTakeFirst();
      if (p) return { paymentId: p.id, reservationId: id, amountCents: p.amount_cents, currency: p.currency, method: p.method, isNew: false };
    }
    if (cur.status !== 'reserved' || cur.expires_at.getTime() <= now) {
      const status = cur.status === 'reserved' ? 'expired' : cur.status;
      throw new CheckoutError('reservation_not_payable', { status }, `This reservation is ${status}: it can no longer be paid.`);
    }
    await trx.updateTable('reservations').set({ status: 'payment_pending' }).where('id', '=', id).execute();
    const p = await trx
      .insertInto('payments')
      .values({ reservation_id: id, method, amount_cents: cur.price_cents, currency: cur.currency, status: 'pending' })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { paymentId: p.id, reservationId: id, amountCents: cur.price_cents, currency: cur.currency, method, isNew: true };
  });
}

/**
 * Applies one provider event, exactly once (the event id is stored in the same transaction).
 * A payment's first final event (succeeded/failed) decides it; anything later changes nothing.
 * A failure fails the payment and returns the unit of a reservation still live.
 * A capture of a live reservation sells its unit. A capture of a reservation that already
 * ended (its unit back in stock) follows payments/reconcile.ts's policy, `lateCapture` below:
 * the unit is sold if that breaks nothing, else the payment turns `refunded` (the refund itself
 * is asked of the provider after the commit: `settlePaymentEvent`).
 */
export async function applyPaymentEvent(db: Db, ev: PaymentEvent, now: number): Promise<{ outcome: EventOutcome; ended?: Ended | undefined }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await applyOnce(db, ev, now);
    } catch (e) {
      // A late sale may meet a reservation batch inserting a live order for the same user
      // (it waits on that row, the batch on our sale lock: a deadlock, or a unique violation
      // once the batch commits): nothing was committed, and the next attempt sees that order.
      const code = (e as { code?: unknown })?.code;
      if ((code !== '40P01' && code !== '23505') || attempt >= 3) throw e;
    }
  }
}

/** The tail of each sale's turn (inSaleTurn), while one is running or waiting. */
const saleTurns = new Map<string, Promise<void>>();

/**
 * Runs `fn` when the previous call for the same sale in this process has ended (resolved or
 * rejected): payment events of one sale are applied one at a time per process. Each of them
 * holds the sale row lock for five statements; run at once, a burst of them (every admitted
 * shopper pays within seconds at a drop's opening) held every pool connection waiting on that
 * lock, and the reservation batches of the same sale, which need the lock too, waited behind
 * them past the 1.5 s statement_timeout: 503 `unavailable` (load-tests/README.md). One at a
 * time, a payment waits in the process instead, holding no connection, and the batches get
 * the lock between two payments. Other processes still meet at the row lock, which is what
 * keeps the counters right; this only orders one process's own callers. A failure of one call
 * is its caller's alone: the next still runs.
 */
export function inSaleTurn<T>(sale: string, fn: () => Promise<T>): Promise<T> {
  const before = saleTurns.get(sale) ?? Promise.resolve();
  const run = before.then(fn);
  const tail = run.then(() => {}, () => {});
  saleTurns.set(sale, tail);
  void tail.then(() => {
    if (saleTurns.get(sale) === tail) saleTurns.delete(sale);
  });
  return run;
}

/** Sales with a payment event applying or waiting in this process (tests: the map empties). */
export function saleTurnsOpen(): number {
  return saleTurns.size;
}

async function applyOnce(db: Db, ev: PaymentEvent, now: number): Promise<{ outcome: EventOutcome; ended?: Ended | undefined }> {
  const p = await db
    .selectFrom('payments')
    .innerJoin('reservations', 'reservations.id', 'payments.reservation_id')
    .select(['payments.id', 'payments.reservation_id', 'reservations.sale_id'])
    .where('payments.id', '=', ev.data.paymentId)
    .executeTakeFirst();
  // An event that locks the sale row waits for its sale's turn (see inSaleTurn).
  if (!p || ev.type === 'payment.processing') return applyLocked(db, ev, now, p);
  return inSaleTurn(p.sale_id, () => applyLocked(db, ev, now, p));
}

async function applyLocked(db: Db, ev: PaymentEvent, now: number, p: { id: string; reservation_id: string; sale_id: string } | undefined): Promise<{ outcome: EventOutcome; ended?: Ended | undefined }> {
  const at = new Date(now);
  return db.transaction().execute(async (trx) => {
    const record = (outcome: EventOutcome) =>
      trx
        .insertInto('webhook_events')
        .values({ id: ev.id, type: ev.type, payment_id: p ? p.id : null, outcome })
        .onConflict((oc) => oc.column('id').doNothing())
        .returning('id')
        .executeTakeFirst();
    if (!p || ev.type === 'payment.processing') {
      const fresh = await record(p ? 'noted' : 'unknown_payment');
      const outcome: EventOutcome = fresh ? (p ? 'noted' : 'unknown_payment') : 'duplicate';
      return { outcome };
    }
    const sale = (await lockSale(trx, p.sale_id))!;
    const pay = await trx.selectFrom('payments').select(['status', 'amount_cents', 'currency']).where('id', '=', p.id).forUpdate().executeTakeFirstOrThrow();
    let outcome: EventOutcome;
    let ended: Ended | undefined;
    // A capture of another amount or currency than this payment's sells nothing: the payment stays
    // pending (reconciliation asks the provider what it really charged) and the event is recorded.
    const mismatch = (ev.data.amountCents !== undefined && ev.data.amountCents !== pay.amount_cents)
      || (ev.data.currency !== undefined && ev.data.currency !== pay.currency);
    if (pay.status !== 'pending') outcome = 'ignored_final';
    else if (ev.type === 'payment.succeeded' && mismatch) outcome = 'amount_mismatch';
    else if (ev.type === 'payment.succeeded') {
      const { rows } = await sql<{ room: string; visitor_id: string }>`
        UPDATE reservations SET status = 'paid', ended_at = ${at}
        WHERE id = ${p.reservation_id} AND status IN ('reserved', 'payment_pending')
        RETURNING room, visitor_id`.execute(trx);
      if (rows.length) {
        await trx.updateTable('payments').set({ status: 'succeeded', updated_at: at }).where('id', '=', p.id).execute();
        ended = { row: await moveStock(trx, p.sale_id, { reserved: -1, sold: 1 }), visitors: rows, paid: true };
        outcome = 'paid';
      } else ({ outcome, ended } = await lateCapture(trx, sale, p, at));
    } else {
      await trx.updateTable('payments').set({ status: 'failed', updated_at: at, note: ev.data.reason ?? null }).where('id', '=', p.id).execute();
      const r = await endLive(trx, p.sale_id, { id: p.reservation_id }, 'failed', at);
      if (r.row) ended = { row: r.row, visitors: r.visitors };
      outcome = r.n ? 'failed_released' : 'failed';
    }
    // Recorded last but in the same transaction: a concurrent duplicate waits on this row
    // and then finds it, so the event applies once; a rollback forgets both.
    if (!(await record(outcome))) throw new DuplicateEvent();
    return { outcome, ended } as { outcome: EventOutcome; ended?: Ended };
  }).catch((e): { outcome: EventOutcome } => {
    if (e instanceof DuplicateEvent) return { outcome: 'duplicate' };
    throw e;
  });
}

/**
 * A capture for a reservation that already ended, under the sale row lock (payments/reconcile.ts
 * has the policy). A lapsed reservation is sold after all if that breaks no invariant: the
 * sale has not ended, a unit is available (taken from stock as a reservation would take it, then
 * sold), and the shopper has no other live or paid order for the sale. A cancelled one (the
 * shopper said no), or one that cannot be sold, is refunded: the payment turns `refunded`.
 */
async function lateCapture(trx: Tx, sale: SaleRow, p: { id: string; reservation_id: string; sale_id: string }, at: Date): Promise<{ outcome: EventOutcome; ended?: Ended }> {
  const r = await trx.selectFrom('reservations').select(['status', 'user_id']).where('id', '=', p.reservation_id).forUpdate().executeTakeFirstOrThrow();
  const other = await trx
    .selectFrom('reservations')
    .select('id')
    .where('sale_id', '=', p.sale_id)
    .where('user_id', '=', r.user_id)
    .where('status', 'in', ['reserved', 'payment_pending', 'paid'])
    .where('id', '<>', p.reservation_id)
    .executeTakeFirst();
  const why =
    r.status !== 'expired' ? `the reservation was ${r.status}`
    : at.getTime() >= sale.ends_at.getTime() ? 'the sale had ended'
    : sale.available < 1 ? 'no unit was left'
    : other ? 'the shopper already had another order for this sale'
    : null;
  if (why) {
    const note = `captured after the reservation ended and ${why}: refunded, the unit was not sold`;
    await trx.updateTable('payments').set({ status: 'refunded', updated_at: at, note }).where('id', '=', p.id).execute();
    return { outcome: 'refunded' };
  }
  const { rows } = await sql<{ room: string; visitor_id: string }>`
    UPDATE reservations SET status = 'paid', ended_at = ${at}
    WHERE id = ${p.reservation_id} AND status = 'expired'
    RETURNING room, visitor_id`.execute(trx);
  await trx
    .updateTable('payments')
    .set({ status: 'succeeded', updated_at: at, note: 'captured after the reservation lapsed: sold from stock' })
    .where('id', '=', p.id)
    .execute();
  return { outcome: 'paid_after_lapse', ended: { row: await moveStock(trx, p.sale_id, { available: -1, sold: 1 }), visitors: rows, paid: true } };
}

class DuplicateEvent extends Error {}

/** The shopper's result for a sale (GET /api/sales/:sale/purchase). */
export async function purchaseOf(db: Db, sale: string, userId: string): Promise<Purchase> {
  const r = await db
    .selectFrom('reservations')
    .select(['id', 'status', 'expires_at', 'created_at'])
    .where('sale_id', '=', sale)
    .where('user_id', '=', userId)
    .orderBy(sql`status IN ('reserved', 'payment_pending', 'paid')`, 'desc')
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!r) return { status: 'none' };
  const status = ({ paid: 'success', reserved: 'in_progress', payment_pending: 'in_progress', failed: 'failed', expired: 'expired', cancelled: 'cancelled' } as const)[r.status];
  const pay = await db
    .selectFrom('payments')
    .select('status')
    .where('reservation_id', '=', r.id)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return {
    status,
    reservationId: r.id,
    reservationStatus: r.status,
    expiresAt: r.expires_at.toISOString(),
    ...(status === 'success' ? { orderId: r.id } : {}),
    ...(pay ? { paymentStatus: pay.status } : {}),
  };
}
