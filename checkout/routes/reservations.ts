/** Reserve (redeem an admission token for one unit), pay, cancel (docs/api.md section 3). */
import type { FastifyReply } from 'fastify';
import { sessionUser } from '../auth.js';
import type { RoutePlugin } from '../context.js';
import { CheckoutError, errorResponses } from '../errors.js';
import { cancelReservation, startPayment } from '../orders.js';
import type { AdmissionFailure, AdmissionResult } from '../admission.js';
import { storedAnswerOf, unstorableField, type ReserveAnswer } from '../reserve.js';
import { CancelledSchema, IdParam, PayBodySchema, PaymentPendingSchema, ReservedSchema, SaleParam, type TestMethod } from '../schemas.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

const reservations: RoutePlugin = async (app, { ctx }) => {
  app.post(
    '/api/sales/:sale/reservations',
    {
      schema: {
        params: SaleParam,
        response: {
          201: ReservedSchema,
          ...errorResponses(
            'bad_request',
            'unauthenticated',
            'admission_invalid',
            'admission_expired',
            'admission_used',
            'admission_wrong_sale',
            'unknown_sale',
            'sold_out',
            'already_purchased',
            'idempotency_key_reused',
            'sale_ended',
            'sale_not_started',
          ),
        },
      },
    },
    async (req, reply) => {
      // The reservation's answer (fresh or stored), sent as it is: its status comes from the error
      // table (every status is declared above), so a sold_out, the commonest answer of a drop,
      // costs no exception and no second body.
      const answer = (a: ReserveAnswer) => (reply as FastifyReply).code(a.status).send(a.body);
      const sale = req.params.sale;
      const userId = sessionUser(ctx, req);
      const key = req.headers['idempotency-key'];
      if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
        throw new CheckoutError('bad_request', {}, 'idempotency-key must be 1-200 visible ASCII characters.');
      }
      // A retry answers what the first request answered, even if its token is now used up,
      // expired or missing. With a token that verifies, the batch finds the stored answer
      // itself (its first check); only a request the batch will not see looks it up here.
      const stored = () => storedAnswerOf(ctx.db, userId, sale, key);
      const refuse = async (code: AdmissionFailure['code'], reason: string) => {
        const first = await stored();
        if (first) return answer(first);
        ctx.metrics.reservations.inc({ result: code });
        throw new CheckoutError(code, { reason });
      };
      const token = req.headers['x-admission-token'];
      if (typeof token !== 'string' || token === '') return refuse('admission_invalid', 'missing');
      let v: AdmissionResult;
      try {
        v = await ctx.admission.verify(token, sale);
      } catch (e) {
        const first = await stored(); // the keys are unreachable, the stored answer is not
        if (first) return answer(first);
        throw e;
      }
      if (!v.ok) return refuse(v.code, v.reason);
      const request = { userId, claims: v.claims, idempotencyKey: key };
      const field = unstorableField(request); // the reserver refuses it too, alone in its batch
      if (field) throw new CheckoutError('bad_request', { field }, `${field} must not contain a NUL character.`);
      const a = await ctx.reserver.reserve(sale, request);
      if (!a.stored) ctx.metrics.reservations.inc({ result: a.status === 201 ? 'reserved' : String(a.body.error) });
      return answer(a);
    },
  );

  app.post(
    '/api/reservations/:id/payment',
    {
      schema: {
        params: IdParam,
        body: PayBodySchema,
        response: { 202: PaymentPendingSchema, ...errorResponses('unauthenticated', 'forbidden', 'unknown_reservation', 'reservation_not_payable') },
      },
    },
    async (req, reply) => {
      const userId = sessionUser(ctx, req);
      const p = await startPayment(ctx.db, req.params.id, userId, req.body.method, ctx.clock());
      // Asked again when the payment was pending already: the charge is idempotent by payment id,
      // so this takes one whose first attempt did not reach the provider and changes nothing else.
      await ctx.provider.charge({ ...p, method: (p.isNew ? req.body.method : p.method) as TestMethod });
      return reply.code(202).send({ status: 'payment_pending' as const, paymentId: p.paymentId });
    },
  );

  app.delete(
    '/api/reservations/:id',
    {
      schema: {
        params: IdParam,
        response: { 200: CancelledSchema, ...errorResponses('unauthenticated', 'forbidden', 'unknown_reservation', 'reservation_not_cancellable') },
      },
    },
    async (req) => {
      const userId = sessionUser(ctx, req);
      await ctx.signal.ended(await cancelReservation(ctx.db, req.params.id, userId, ctx.clock()));
      return { reservationId: req.params.id, status: 'cancelled' as const };
    },
  );
};

export default reservations;
