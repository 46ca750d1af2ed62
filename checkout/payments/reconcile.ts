/**
 * Reconciliation, as real integrations do it: a webhook may never arrive (the provider gave
 * up, the service was down, overloaded or killed), so every payment still pending after
 * `afterMs` is looked up at the provider ("retrieve payment"), whatever its reservation's state,
 * and a decided one is applied through the webhook's own idempotent path (`applyPaymentEvent`,
 * same event id): whichever comes first decides, the other changes nothing.
 *
 * The policy, for a payment whose reservation has ended (lapsed, cancelled) and so whose unit is
 * already back in stock:
 * - The provider says captured: the shopper must not pay for nothing. A lapsed reservation is
 *   sold after all when that breaks no invariant of docs/api.md section 3 — the sale has not
 *   ended, a unit is available, the shopper has no other live or paid order for the sale — the
 *   unit taken under the sale row lock as a reservation takes it (the payment `succeeded`, the
 *   order `paid`, outcome `paid_after_lapse`, the stock signal written like every other change).
 *   Otherwise, and always for a reservation the shopper cancelled (they said they did not want
 *   it), the payment turns `refunded` and the capture is refunded in full at the provider.
 * - The provider says declined or failed: the payment is `failed`.
 * - The provider has not decided (or never received the charge): once the reservation has
 *   ended, the charge is voided at the provider (`cancel`), which answers its final event: a
 *   failure (the payment is `failed`) or, if the capture beat the void, the capture above.
 *   While the reservation is live it is left alone: the shopper is still paying.
 * A capture rarely meets an ended reservation at all: before the sweeper lapses a reservation
 * whose payment is pending, it asks the provider (every pass, not only after `afterMs`) and
 * sells the unit the reservation still holds if it was captured, or voids the charge so that no
 * capture can follow. What is left are a cancel during the payment, a provider that did not
 * answer at the lapse, and another process lapsing it in between: for those, the policy above.
 * Selling such a late capture takes an available unit, which the room may have counted on for a
 * visitor it admitted (docs/api.md section 7): that visitor can then meet `sold_out`. The
 * shopper who paid is served first; asking the provider before the lapse keeps this rare.
 * A refund is decided in the transaction that records the capture and asked of the provider
 * after the commit with the idempotency key `refund_<paymentId>`; until the provider confirms
 * (payments.refund_id), each pass asks again with the same key, so a crash between the two
 * neither loses the refund nor makes a second one. A webhook that lands after any of this is a
 * duplicate (the same event) or `ignored_final`: it never sells or refunds twice.
 */
import { sql } from 'kysely';
import { isDatabaseUnavailable, type Db } from '../db.js';
import { applyPaymentEvent, type Ended, type EventOutcome, type PaymentEvent } from '../orders.js';
import type { TestMethod } from '../schemas.js';
import { CANCELED, ProviderError, type Provider } from './provider.js';

export interface Reconciled {
  outcomes: EventOutcome[];
  ended: Ended[];
  /** Refunds the provider confirmed in this pass. */
  refunds: number;
}

/**
 * Applies a provider event (from the webhook or from reconciliation); when it decided a refund,
 * asks the provider for it. A refund the provider could not make now stays owed for the next pass.
 */
export async function settlePaymentEvent(db: Db, provider: Provider, ev: PaymentEvent, now: number, onError: (e: unknown) => void = () => {}) {
  const r = await applyPaymentEvent(db, ev, now);
  let refunded = false;
  if (r.outcome === 'refunded') refunded = await refundOwed(db, provider, ev.data.paymentId, now).catch((e) => (onError(e), false));
  return { ...r, refunded };
}

/** Asks the provider for the refund of a `refunded` payment (idempotent) and records its id. True once confirmed. */
async function refundOwed(db: Db, provider: Provider, paymentId: string, now: number): Promise<boolean> {
  let refundId: string;
  try {
    ({ refundId } = await provider.refund(paymentId, `refund_${paymentId}`));
  } catch (e) {
    if (!(e instanceof ProviderError)) throw e;
    // Refunded already under another key, or never captured: nothing is owed at the provider.
    refundId = `none:${e.code}`;
  }
  const done = await db
    .updateTable('payments')
    .set({ refund_id: refundId, updated_at: new Date(now) })
    .where('id', '=', paymentId)
    .where('status', '=', 'refunded')
    .where('refund_id', 'is', null)
    .executeTakeFirst();
  return done.numUpdatedRows > 0n;
}

export interface ReconcileOptions {
  /** Also the payments pending longer than `afterMs` and the refunds owed (every few seconds); else only those whose reservation lapses now (every sweep). */
  full?: boolean;
  limit?: number;
  onError?: (e: unknown) => void;
}

/**
 * First the payments whose reservation lapses now (asked before the sweep returns their units):
 * a capture sells the unit the reservation still holds, a decline releases it, an undecided
 * charge is voided so that no capture can follow the lapse (the sweep then lapses it; the
 * failure is recorded by a later full pass). With `full`, then the oldest payments pending
 * since before `now - afterMs`, whatever their reservation's state, and the refunds still owed.
 */
export async function reconcilePayments(db: Db, provider: Provider, now: number, afterMs: number, opts: ReconcileOptions = {}): Promise<Reconciled> {
  const limit = opts.limit ?? 500;
  type Row = { id: string; reservation_id: string; amount_cents: number; currency: string; method: string; live: boolean };
  const { rows: lapsing } = await sql<Row>`
    SELECT p.id, p.reservation_id, p.amount_cents, p.currency, p.method, true AS live
    FROM reservations r JOIN payments p ON p.reservation_id = r.id
    WHERE r.status IN ('reserved', 'payment_pending') AND r.expires_at <= ${new Date(now)} AND p.status = 'pending'
    ORDER BY r.expires_at LIMIT ${limit}`.execute(db);
  const { rows: overdue } = opts.full
    ? await sql<Row>`
        SELECT p.id, p.reservation_id, p.amount_cents, p.currency, p.method, r.status IN ('reserved', 'payment_pending') AS live
        FROM payments p JOIN reservations r ON r.id = p.reservation_id
        WHERE p.status = 'pending' AND p.created_at <= ${new Date(now - afterMs)}
        ORDER BY p.created_at LIMIT ${limit}`.execute(db)
    : { rows: [] as Row[] };
  const out: Reconciled = { outcomes: [], ended: [], refunds: 0 };
  // One payment the provider cannot answer for now is tried again next pass; it never holds up
  // the others, nor the sweep of lapsed reservations that follows. Postgres away ends the pass.
  const each = async (f: () => Promise<void>) =>
    f().catch((e) => {
      if (isDatabaseUnavailable(e)) throw e;
      opts.onError?.(e);
    });
  const settle = async (ev: PaymentEvent, live: boolean) => {
    // Voided while its reservation is live (it lapses now): the sweep lapses it as any other
    // (`expired`, not `failed`); the failure is recorded by a pass after that.
    if (live && ev.type === 'payment.failed' && ev.data.reason === CANCELED) return;
    const { outcome, ended, refunded } = await settlePaymentEvent(db, provider, ev, now, opts.onError);
    out.outcomes.push(outcome);
    if (ended) out.ended.push(ended);
    if (refunded) out.refunds++;
  };
  for (const p of lapsing) {
    await each(async () => {
      await settle((await provider.retrieve(p.id)) ?? (await provider.cancel(chargeOf(p))), true);
    });
  }
  for (const p of overdue) {
    await each(async () => {
      let ev = await provider.retrieve(p.id);
      if (!ev) {
        if (p.live) return; // still processing while the shopper holds the unit
        ev = await provider.cancel(chargeOf(p));
      }
      await settle(ev, p.live);
    });
  }
  if (!opts.full) return out;
  const { rows: owed } = await sql<{ id: string }>`
    SELECT id FROM payments WHERE status = 'refunded' AND refund_id IS NULL ORDER BY updated_at LIMIT ${limit}`.execute(db);
  for (const { id } of owed) await each(async () => void ((await refundOwed(db, provider, id, now)) && out.refunds++));
  return out;
}

const chargeOf = (p: { id: string; reservation_id: string; amount_cents: number; currency: string; method: string }) => ({
  paymentId: p.id,
  reservationId: p.reservation_id,
  amountCents: p.amount_cents,
  currency: p.currency,
  method: p.method as TestMethod,
});

/** How many payments are pending, and how many refunds owed, in all (for /metrics). */
export async function unsettledPayments(db: Db): Promise<{ pending: number; refundsOwed: number }> {
  const { rows } = await sql<{ pending: number; owed: number }>`
    SELECT (SELECT count(*) FROM payments WHERE status = 'pending') AS pending,
           (SELECT count(*) FROM payments WHERE status = 'refunded' AND refund_id IS NULL) AS owed`.execute(db);
  return { pending: rows[0]!.pending, refundsOwed: rows[0]!.owed };
}
