/** Reserve (redeem an admission token for one unit), pay, cancel (CONTRACT.md section 3). */
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { errors, IdParam, SaleParam, sendAnswer, userOf, type Ctx } from '../context.js';
import { bodyOf, CheckoutError } from '../errors.js';
import { cancelReservation, startPayment } from '../orders.js';
import type { AdmissionFailure, AdmissionResult } from '../admission.js';
import { storedAnswerOf, unstorableField } from '../reserve.js';
import { TEST_METHODS } from '../payments/provider.js';

const ReservedSchema = Type.Object({ reservationId: Type.String(), status: Type.Literal('reserved'), expiresAt: Type.String() });
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function reservationRoutes(app: FastifyInstance, ctx: Ctx) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.post(
    '/api/sales/:sale/reservations',
    { schema: { params: SaleParam, response: { 201: ReservedSchema, ...errors(400, 401, 403, 404, 409, 410, 425, 503) } } },
    async (req, reply) => {
      const sale = req.params.sale;
      const userId = userOf(ctx, req);
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
        if (first) return sendAnswer(reply, first.status, first.body);
        ctx.metrics.reservations.inc({ result: code });
        return sendAnswer(reply, 403, bodyOf(code, { reason }));
      };
      const token = req.headers['x-admission-token'];
      if (typeof token !== 'string' || token === '') return refuse('admission_invalid', 'missing');
      let v: AdmissionResult;
      try {
        v = await ctx.admission.verify(token, sale);
      } catch (e) {
        const first = await stored(); // the keys are unreachable, the stored answer is not
        if (first) return sendAnswer(reply, first.status, first.body);
        throw e;
      }
      if (!v.ok) return refuse(v.code, v.reason);
      const request = { userId, claims: v.claims, idempotencyKey: key };
      const field = unstorableField(request); // the reserver refuses it too, alone in its batch
      if (field) throw new CheckoutError('bad_request', { field }, `${field} must not contain a NUL character.`);
      const answer = await ctx.reserver.reserve(sale, request);
      if (!answer.stored) ctx.metrics.reservations.inc({ result: answer.status === 201 ? 'reserved' : String(answer.body.error) });
      return sendAnswer(reply, answer.status, answer.body);
    },
  );

  r.post(
    '/api/reservations/:id/payment',
    {
      schema: {
        params: IdParam,
        body: Type.Object({ method: Type.Union(TEST_METHODS.map((m) => Type.Literal(m))) }, { additionalProperties: false }),
        response: { 202: Type.Object({ status: Type.Literal('payment_pending'), paymentId: Type.String() }), ...errors(400, 401, 403, 404, 409, 413) },
      },
    },
    async (req, reply) => {
      const userId = userOf(ctx, req);
      const p = await startPayment(ctx.db, req.params.id, userId, req.body.method, ctx.clock());
      if (p.isNew) ctx.provider.charge({ ...p, method: req.body.method });
      return reply.code(202).send({ status: 'payment_pending' as const, paymentId: p.paymentId });
    },
  );

  r.delete(
    '/api/reservations/:id',
    {
      schema: {
        params: IdParam,
        response: { 200: Type.Object({ reservationId: Type.String(), status: Type.Literal('cancelled') }), ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (req) => {
      const userId = userOf(ctx, req);
      await ctx.signal.ended(await cancelReservation(ctx.db, req.params.id, userId, ctx.clock()));
      return { reservationId: req.params.id, status: 'cancelled' as const };
    },
  );
}
