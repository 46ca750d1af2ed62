/** Sign up and log in (CONTRACT.md section 3). */
import type { FastifyInstance } from 'fastify';
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { dummyHash, EMAIL_PATTERN, hashPassword, normaliseEmail, verifyPassword } from '../accounts.js';
import { errors, type Ctx } from '../context.js';
import { CheckoutError } from '../errors.js';

const Credentials = (minPassword: number) =>
  Type.Object(
    {
      email: Type.String({ pattern: EMAIL_PATTERN, maxLength: 254 }),
      password: Type.String({ minLength: minPassword, maxLength: 200 }),
    },
    { additionalProperties: false },
  );

/** A session as sign-up and log-in answer it. */
const Session = { sessionToken: Type.String(), expiresAt: Type.String() };

export function accountRoutes(app: FastifyInstance, ctx: Ctx) {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const session = async (userId: string) => {
    const { sessionToken, expiresAt } = await ctx.sessions.sign(userId);
    return { sessionToken, expiresAt: expiresAt.toISOString() };
  };

  r.post(
    '/api/users',
    // The new account is logged in at once (an extension of the contract's `{userId}`): a
    // shopper signing up at the moment of admission pays for one scrypt, not two.
    { schema: { body: Credentials(8), response: { 201: Type.Object({ userId: Type.String(), ...Session }), ...errors(400, 409, 413) } } },
    async (req, reply) => {
      const hash = await hashPassword(req.body.password);
      const row = await ctx.db
        .insertInto('users')
        .values({ email: normaliseEmail(req.body.email), password_hash: hash })
        .onConflict((oc) => oc.column('email').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!row) throw new CheckoutError('email_taken');
      return reply.code(201).send({ userId: row.id, ...(await session(row.id)) });
    },
  );

  r.post(
    '/api/sessions',
    {
      schema: {
        body: Credentials(1),
        response: { 200: Type.Object(Session), ...errors(400, 401, 413) },
      },
    },
    async (req) => {
      const user = await ctx.db
        .selectFrom('users')
        .select(['id', 'password_hash'])
        .where('email', '=', normaliseEmail(req.body.email))
        .executeTakeFirst();
      // Unknown email: still pay for one scrypt, so the answer's timing does not tell.
      const ok = await verifyPassword(req.body.password, user?.password_hash ?? (await dummyHash()));
      if (!user || !ok) throw new CheckoutError('bad_credentials');
      return session(user.id);
    },
  );
}
