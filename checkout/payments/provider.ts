/**
 * A simulated payment provider that behaves like a real one: it accepts a charge at once,
 * answers later by POSTing signed events to the service's webhook, may decline, may never
 * answer, and (when told) delivers events twice and/or out of order. A delivery that does not
 * get a 2xx is retried with exponential backoff and jitter (0.5 s doubling to a 30 s cap) for
 * 15 minutes (the default reservation of 10 minutes plus a margin), as real providers do. Like a
 * real provider's "retrieve" call, `retrieve(paymentId)` answers a decided payment's final event
 * (the very event the webhook carries), so the service can reconcile without the webhook.
 * `cancel` voids a charge not yet decided, `refund` gives a capture back (idempotent by key).
 * Its books are rows of its own (provider_sim.*, see migration 20261210T0910), not memory:
 * a charge is decided at its time even if the process that took it was killed, and any
 * checkout process can look it up, as with a real provider.
 *
 *   test_ok      → payment.processing, then payment.succeeded after `delayMs`
 *   test_decline → payment.processing, then payment.failed after `delayMs`
 *   test_timeout → payment.processing only: the reservation lapses
 */
import crypto from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import type { PaymentEvent } from '../orders.js';
import { signBody } from './signature.js';

import type { TestMethod } from '../schemas.js';

export interface ProviderOptions {
  /** Time before the final event (ms, default 300). */
  delayMs?: number;
  /** Deliver every event twice. */
  duplicate?: boolean;
  /** Deliver the final event before `payment.processing`. */
  outOfOrder?: boolean;
  /** Retries of a delivery that does not get a 2xx: first delay, cap, and how long to keep trying (ms). */
  retry?: { baseMs?: number; capMs?: number; forMs?: number };
  /** Where webhooks go (default the service's own `/api/payments/webhook`). */
  webhookUrl?: string;
}

export interface Charge {
  paymentId: string;
  reservationId: string;
  amountCents: number;
  currency: string;
  method: TestMethod;
}

export interface Provider {
  /** Takes the charge (idempotent by payment id); its events follow by webhook. */
  charge(c: Charge): Promise<void>;
  /** The payment's final event once decided, null while processing or unknown to the provider. */
  retrieve(paymentId: string): Promise<PaymentEvent | null>;
  /**
   * Voids a charge not yet decided (or never received: it can no longer be taken) and answers
   * the payment's final event: `payment.failed` with reason `canceled`, or the capture that was
   * decided first (the caller must then treat it as any capture). Idempotent.
   */
  cancel(c: Charge): Promise<PaymentEvent>;
  /**
   * Refunds a captured payment in full. Idempotent by `idempotencyKey`: the same key answers the
   * same refund. Throws ProviderError `not_captured` or `already_refunded` (another key).
   */
  refund(paymentId: string, idempotencyKey: string): Promise<{ refundId: string; amountCents: number }>;
  close(): void;
}

/** The `reason` of the failure a voided charge ends with. */
export const CANCELED = 'canceled';

export class ProviderError extends Error {
  constructor(readonly code: 'not_captured' | 'already_refunded') {
    super(`provider: ${code}`);
  }
}

/** The delay before retry number `n` (1-based): base doubling to cap, with "equal jitter" (half fixed, half random). */
export function backoffMs(n: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const d = Math.min(capMs, baseMs * 2 ** (n - 1));
  return d / 2 + random() * (d / 2);
}

const event = (type: PaymentEvent['type'], c: Charge, reason?: string): PaymentEvent => ({
  id: `evt_${crypto.randomUUID()}`,
  type,
  created: new Date().toISOString(),
  data: { paymentId: c.paymentId, reservationId: c.reservationId, amountCents: c.amountCents, currency: c.currency, ...(reason ? { reason } : {}) },
});

/**
 * `ledger` holds the provider's books (provider_sim.charges / refunds, shared by every process
 * of a deployment and surviving any of them): a charge is decided at its time whether or not
 * the process that took it still runs, as a real provider's is.
 */
export function createProvider(
  ledger: Kysely<any>,
  webhookUrl: () => string,
  secret: string,
  opts: ProviderOptions = {},
  onError: (e: unknown) => void = () => {},
): Provider {
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
  };

  const baseMs = opts.retry?.baseMs ?? 500;
  const capMs = opts.retry?.capMs ?? 30_000;
  const forMs = opts.retry?.forMs ?? 15 * 60_000;

  async function deliver(ev: PaymentEvent, attempt = 1, firstAt = Date.now()): Promise<void> {
    const body = JSON.stringify(ev);
    try {
      const res = await fetch(opts.webhookUrl ?? webhookUrl(), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature': signBody(secret, body) },
        body,
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer();
      if (res.ok) return;
      throw new Error(`webhook answered ${res.status}`);
    } catch (e) {
      if (closed) return;
      const wait = backoffMs(attempt, baseMs, capMs);
      if (Date.now() + wait - firstAt > forMs) return onError(e);
      // The queue of this charge moves on; this event comes back later on its own.
      later(wait, () => void deliver(ev, attempt + 1, firstAt));
    }
  }

  const send = (events: PaymentEvent[]) => {
    const ordered = opts.outOfOrder ? [...events].reverse() : events;
    const all = opts.duplicate ? ordered.flatMap((e) => [e, e]) : ordered;
    // One after the other, like a provider's queue; a duplicate is a real second delivery.
    (async () => {
      for (const ev of all) if (!closed) await deliver(ev);
    })();
  };

  /** Applies the planned outcome of a charge still processing once due (`force`: now), and answers where it stands. */
  async function decide(paymentId: string, force: boolean) {
    await sql`
      UPDATE provider_sim.charges
      SET status = CASE WHEN outcome->>'type' = 'payment.succeeded' THEN 'succeeded' ELSE 'failed' END, final_event = outcome
      WHERE payment_id = ${paymentId} AND status = 'processing' AND outcome IS NOT NULL
        AND (${force} OR decide_at <= ${new Date()})`.execute(ledger);
    const { rows } = await sql<{ status: string; final_event: PaymentEvent | null }>`
      SELECT status, final_event FROM provider_sim.charges WHERE payment_id = ${paymentId}`.execute(ledger);
    return rows[0] ?? null;
  }

  return {
    async charge(c) {
      const delayMs = opts.delayMs ?? 300;
      const outcome = c.method === 'test_timeout' ? null : c.method === 'test_ok' ? event('payment.succeeded', c) : event('payment.failed', c, 'card_declined');
      const { rows } = await sql`
        INSERT INTO provider_sim.charges (payment_id, reservation_id, amount_cents, currency, method, status, outcome, decide_at)
        VALUES (${c.paymentId}, ${c.reservationId}, ${c.amountCents}, ${c.currency}, ${c.method}, 'processing',
                ${outcome ? JSON.stringify(outcome) : null}::jsonb, ${outcome ? new Date(Date.now() + delayMs) : null})
        ON CONFLICT (payment_id) DO NOTHING RETURNING payment_id`.execute(ledger);
      if (!rows.length) return; // taken before (or voided): nothing new happens
      const processing = event('payment.processing', c);
      if (!outcome) {
        later(0, () => send([processing]));
        return;
      }
      const decided = (then: (final: PaymentEvent) => void) => () =>
        void decide(c.paymentId, true).then(
          (r) => r?.final_event && r.status !== 'canceled' && then(r.final_event),
          (e) => onError(e),
        );
      if (opts.outOfOrder) later(delayMs, decided((final) => send([processing, final])));
      else {
        later(0, () => send([processing]));
        later(delayMs, decided((final) => send([final])));
      }
    },
    async retrieve(paymentId) {
      const r = await decide(paymentId, false);
      return r && r.status !== 'processing' ? r.final_event : null;
    },
    async cancel(c) {
      const canceled = event('payment.failed', c, CANCELED);
      await decide(c.paymentId, false); // a charge due is decided: the capture came first
      // Never received: a tombstone, so a charge arriving later is not taken.
      await sql`
        INSERT INTO provider_sim.charges (payment_id, reservation_id, amount_cents, currency, method, status, final_event)
        VALUES (${c.paymentId}, ${c.reservationId}, ${c.amountCents}, ${c.currency}, ${c.method}, 'canceled', ${JSON.stringify(canceled)}::jsonb)
        ON CONFLICT (payment_id) DO UPDATE SET status = 'canceled', final_event = EXCLUDED.final_event
        WHERE provider_sim.charges.status = 'processing' AND (provider_sim.charges.decide_at IS NULL OR provider_sim.charges.decide_at > ${new Date()})`.execute(ledger);
      const r = await decide(c.paymentId, false);
      if (!r?.final_event || r.status === 'processing') throw new Error('provider: charge neither decided nor canceled');
      return r.final_event;
    },
    async refund(paymentId, idempotencyKey) {
      return ledger.transaction().execute(async (trx) => {
        const { rows: charged } = await sql<{ status: string; amount_cents: number }>`
          SELECT status, amount_cents FROM provider_sim.charges WHERE payment_id = ${paymentId} FOR UPDATE`.execute(trx);
        const { rows: refunds } = await sql<{ id: string; idempotency_key: string; amount_cents: number }>`
          SELECT id, idempotency_key, amount_cents FROM provider_sim.refunds WHERE payment_id = ${paymentId}`.execute(trx);
        const same = refunds.find((r) => r.idempotency_key === idempotencyKey);
        if (same) return { refundId: same.id, amountCents: same.amount_cents };
        const c = charged[0];
        if (!c || c.status !== 'succeeded') throw new ProviderError('not_captured');
        const left = c.amount_cents - refunds.reduce((n, r) => n + r.amount_cents, 0);
        if (left <= 0) throw new ProviderError('already_refunded');
        const refundId = `re_${crypto.randomUUID()}`;
        await sql`INSERT INTO provider_sim.refunds (id, payment_id, idempotency_key, amount_cents) VALUES (${refundId}, ${paymentId}, ${idempotencyKey}, ${left})`.execute(trx);
        return { refundId, amountCents: left };
      });
    },
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
