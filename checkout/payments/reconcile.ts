/**
 * Reconciliation, as real integrations do it: a webhook may never arrive (the provider gave
 * up, the service was down or overloaded), so payments still pending after `afterMs` are looked
 * up at the provider ("retrieve payment") and a decided one is applied through the webhook's own
 * idempotent path (`applyPaymentEvent`, same event id): whichever comes first decides, the
 * other changes nothing.
 */
import { sql } from 'kysely';
import type { Db } from '../db.js';
import { applyPaymentEvent, type Ended, type EventOutcome } from '../orders.js';
import type { Provider } from './provider.js';

export interface Reconciled {
  outcomes: EventOutcome[];
  ended: Ended[];
}

/** Asks the provider about the oldest `limit` payments pending since before `now - afterMs` whose unit is still held. */
export async function reconcilePayments(db: Db, provider: Provider, now: number, afterMs: number, limit = 500): Promise<Reconciled> {
  const { rows } = await sql<{ id: string }>`
    SELECT p.id FROM payments p JOIN reservations r ON r.id = p.reservation_id
    WHERE p.status = 'pending' AND r.status = 'payment_pending' AND p.created_at <= ${new Date(now - afterMs)}
    ORDER BY p.created_at LIMIT ${limit}`.execute(db);
  const out: Reconciled = { outcomes: [], ended: [] };
  for (const { id } of rows) {
    const ev = await provider.retrieve(id);
    if (!ev) continue; // still processing (or charged through another process's provider)
    const { outcome, ended } = await applyPaymentEvent(db, ev, now);
    out.outcomes.push(outcome);
    if (ended) out.ended.push(ended);
  }
  return out;
}
