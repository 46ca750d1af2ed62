/**
 * The payment provider's callback. The HMAC covers the exact bytes sent, so this route
 * keeps the raw body (its own content-type parser, in its own encapsulated context).
 */
import type { FastifyInstance } from 'fastify';
import type { Ctx } from '../context.js';
import { CheckoutError } from '../errors.js';
import { applyPaymentEvent, type PaymentEvent } from '../orders.js';
import { signatureMatches } from '../payments/signature.js';

const TYPES = new Set(['payment.processing', 'payment.succeeded', 'payment.failed']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseEvent(raw: Buffer): PaymentEvent | null {
  try {
    const ev = JSON.parse(raw.toString('utf8'));
    if (typeof ev?.id !== 'string' || ev.id.length === 0 || ev.id.length > 200) return null;
    if (!TYPES.has(ev.type) || typeof ev.data?.paymentId !== 'string' || !UUID.test(ev.data.paymentId)) return null;
    return ev as PaymentEvent;
  } catch {
    return null;
  }
}

export function webhookRoutes(app: FastifyInstance, ctx: Ctx) {
  app.register(async (sub) => {
    sub.removeAllContentTypeParsers();
    sub.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));
    sub.post('/api/payments/webhook', async (req, reply) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const sig = req.headers['x-signature'];
      if (!signatureMatches(ctx.config.paymentWebhookSecret, raw, typeof sig === 'string' ? sig : undefined)) {
        throw new CheckoutError('bad_signature');
      }
      const ev = parseEvent(raw);
      if (!ev) throw new CheckoutError('bad_request', {}, 'The event is not in the documented shape.');
      const { outcome, ended } = await applyPaymentEvent(ctx.db, ev, ctx.clock());
      ctx.metrics.payments.inc({ outcome });
      // Who bought is noted before the stock signal can say sold out (the report reads it then).
      if (ended && outcome === 'paid') await ctx.signal.sold(ended.visitors);
      if (ended) await ctx.signal.ended(ended);
      return reply.code(200).send({ received: true, outcome });
    });
  });
}
