/** Sign up and log in (docs/api.md section 3): `POST /api/users`, `POST /api/sessions`. */
import { dummyHash, hashPassword, normaliseEmail, verifyPassword } from '../accounts.js';
import type { RoutePlugin } from '../context.js';
import { CheckoutError, errorResponses } from '../errors.js';
import { Credentials, SessionSchema, SignedUpSchema } from '../schemas.js';

const accounts: RoutePlugin = async (app, { ctx }) => {
  const session = async (userId: string) => {
    const { sessionToken, expiresAt } = await ctx.sessions.sign(userId);
    return { sessionToken, expiresAt: expiresAt.toISOString() };
  };

  app.post(
    '/api/users',
    // The new account is logged in at once (an extension of the contract's `{userId}`): a
    // shopper signing up at the moment of admission pays for one scrypt, not two.
    { schema: { body: Credentials(8), response: { 201: SignedUpSchema, ...errorResponses('email_taken') } } },
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

  app.post(
    '/api/sessions',
    { schema: { body: Credentials(1), response: { 200: SessionSchema, ...errorResponses('bad_credentials') } } },
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
};

export default accounts;
