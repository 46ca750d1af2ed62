/**
 * `POST /api/payments/webhook`: the payment provider's callback. The HMAC covers the exact bytes
 * sent, so this plugin keeps the raw body (its own content-type parser, which only this
 * plugin sees), checks the signature before anything else, and only then parses the JSON and
 * lets the schema check the event: an unsigned request learns nothing about the shape.
 */
import type { FastifyRequest } from 'fastify';
import type { RoutePlugin } from '../context.js';
import { CheckoutError, errorResponses } from '../errors.js';
import { settlePaymentEvent } from '../payments/reconcile.js';
import { signatureMatches } from '../payments/signature.js';
import { PaymentEventSchema, WebhookAnswerSchema } from '../schemas.js';

/** The largest event accepted (bytes); a larger one is answered 413 with this limit. */
export const WEBHOOK_BODY_LIMIT = 64 * 1024;

const webhook: RoutePlugin = async (app, { ctx }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  /** Signature first, then JSON: the schema then checks the parsed event. */
  async function signedJson(req: FastifyRequest) {
    const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const sig = req.headers['x-signature'];
    if (!signatureMatches(ctx.config.paymentWebhookSecret, raw, typeof sig === 'string' ? sig : undefined)) throw new CheckoutError('bad_signature');
    try {
      req.body = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new CheckoutError('bad_request', {}, 'The event is not JSON.');
    }
  }

  app.post(
    '/api/payments/webhook',
    {
      bodyLimit: WEBHOOK_BODY_LIMIT,
      preValidation: signedJson,
      schema: {
        headers: { type: 'object', properties: { 'x-signature': { type: 'string', description: 'hex HMAC-SHA256 of the raw body' } } },
        body: PaymentEventSchema,
        response: { 200: WebhookAnswerSchema, ...errorResponses('bad_signature') },
      },
    },
    async (req) => {
      const { outcome, ended, refunded } = await settlePaymentEvent(ctx.db, ctx.provider, req.body, ctx.clock(), (e) =>
        req.log.warn({ err: e }, 'refund not confirmed by the provider: reconciliation asks again'),
      );
      ctx.metrics.payments.inc({ outcome });
      if (refunded) ctx.metrics.refunds.inc();
      if (ended) await ctx.signal.ended(ended);
      return { received: true, outcome };
    },
  );
};

export default webhook;
