/** Prometheus metrics of one checkout instance (own registry: tests run several in a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'checkout_' });
  return {
    registry,
    reservations: new Counter({ name: 'checkout_reservations_total', help: 'Reservation answers by result code', labelNames: ['result'], registers: [registry] }),
    batchSize: new Histogram({
      name: 'checkout_reserve_batch_size',
      help: 'Reservation requests decided per transaction',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [registry],
    }),
    payments: new Counter({ name: 'checkout_payment_events_total', help: 'Provider events by outcome', labelNames: ['outcome'], registers: [registry] }),
    reconciled: new Counter({ name: 'checkout_payments_reconciled_total', help: 'Payments settled by reconciliation (not by their webhook), by outcome', labelNames: ['outcome'], registers: [registry] }),
    refunds: new Counter({ name: 'checkout_payment_refunds_total', help: 'Refunds of captures that could not be sold, confirmed by the provider', registers: [registry] }),
    pendingPayments: new Gauge({ name: 'checkout_payments_pending', help: 'Payments pending (all processes), as of the last reconciliation pass', registers: [registry] }),
    refundsOwed: new Gauge({ name: 'checkout_payment_refunds_owed', help: 'Refunded payments the provider has not confirmed yet, as of the last reconciliation pass', registers: [registry] }),
    expired: new Counter({ name: 'checkout_reservations_expired_total', help: 'Reservations returned to stock by the sweeper', registers: [registry] }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
