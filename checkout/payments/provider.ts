/**
 * A simulated payment provider that behaves like a real one: it accepts a charge at once,
 * answers later by POSTing signed events to the service's webhook, may decline, may never
 * answer, and (when told) delivers events twice and/or out of order. It retries a delivery
 * that does not get a 2xx, a few times, as providers do.
 *
 *   test_ok      → payment.processing, then payment.succeeded after `delayMs`
 *   test_decline → payment.processing, then payment.failed after `delayMs`
 *   test_timeout → payment.processing only: the reservation lapses
 */
import crypto from 'node:crypto';
import type { PaymentEvent } from '../orders.js';
import { signBody } from './signature.js';

export const TEST_METHODS = ['test_ok', 'test_decline', 'test_timeout'] as const;
export type TestMethod = (typeof TEST_METHODS)[number];

export interface ProviderOptions {
  /** Time before the final event (ms, default 300). */
  delayMs?: number;
  /** Deliver every event twice. */
  duplicate?: boolean;
  /** Deliver the final event before `payment.processing`. */
  outOfOrder?: boolean;
  /** Delivery attempts per event when the webhook does not answer 2xx (default 4). */
  attempts?: number;
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
  close(): void;
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

  async function deliver(ev: PaymentEvent, attempt = 1): Promise<void> {
    const body = JSON.stringify(ev);
    try {
      const res = await fetch(webhookUrl(), {
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
      if (attempt >= (opts.attempts ?? 4)) return onError(e);
      later(100 * 2 ** attempt, () => void deliver(ev, attempt + 1));
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
      if (opts.outOfOrder) later(opts.delayMs ?? 300, () => send([processing, final]));
      else {
        later(0, () => send([processing]));
        later(opts.delayMs ?? 300, () => send([final]));
      }
    },
    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}
