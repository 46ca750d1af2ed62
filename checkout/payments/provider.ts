/**
 * A simulated payment provider that behaves like a real one: it accepts a charge at once,
 * answers later by POSTing signed events to the service's webhook, may decline, may never
 * answer, and (when told) delivers events twice and/or out of order. A delivery that does not
 * get a 2xx is retried with exponential backoff and jitter (0.5 s doubling to a 30 s cap) for
 * 15 minutes (the default reservation of 10 minutes plus a margin), as real providers do. Like a
 * real provider's "retrieve" call, `retrieve(paymentId)` answers a decided payment's final event
 * (the very event the webhook carries), so the service can reconcile without the webhook.
 *
 *   test_ok      → payment.processing, then payment.succeeded after `delayMs`
 *   test_decline → payment.processing, then payment.failed after `delayMs`
 *   test_timeout → payment.processing only: the reservation lapses
 */
import crypto from 'node:crypto';
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
  charge(c: Charge): void;
  /** The payment's final event once decided, null while processing (or unknown to this provider). */
  retrieve(paymentId: string): Promise<PaymentEvent | null>;
  close(): void;
}

/** The delay before retry number `n` (1-based): base doubling to cap, with "equal jitter" (half fixed, half random). */
export function backoffMs(n: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const d = Math.min(capMs, baseMs * 2 ** (n - 1));
  return d / 2 + random() * (d / 2);
}

export function createProvider(webhookUrl: () => string, secret: string, opts: ProviderOptions = {}, onError: (e: unknown) => void = () => {}): Provider {
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
  // Final events of decided payments, for `retrieve`; dropped once delivered.
  const decided = new Map<string, PaymentEvent>();

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
      if (res.ok) {
        if (ev.type !== 'payment.processing') decided.delete(ev.data.paymentId);
        return;
      }
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

  const event = (type: PaymentEvent['type'], c: Charge, reason?: string): PaymentEvent => ({
    id: `evt_${crypto.randomUUID()}`,
    type,
    created: new Date().toISOString(),
    data: { paymentId: c.paymentId, reservationId: c.reservationId, amountCents: c.amountCents, currency: c.currency, ...(reason ? { reason } : {}) },
  });

  return {
    charge(c) {
      const processing = event('payment.processing', c);
      if (c.method === 'test_timeout') {
        later(0, () => send([processing]));
        return;
      }
      const final = c.method === 'test_ok' ? event('payment.succeeded', c) : event('payment.failed', c, 'card_declined');
      const decide = () => decided.set(c.paymentId, final);
      if (opts.outOfOrder)
        later(opts.delayMs ?? 300, () => {
          decide();
          send([processing, final]);
        });
      else {
        later(0, () => send([processing]));
        later(opts.delayMs ?? 300, () => {
          decide();
          send([final]);
        });
      }
    },
    async retrieve(paymentId) {
      return decided.get(paymentId) ?? null;
    },
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      decided.clear();
    },
  };
}
