/** Who is asking: the shopper's session, or the operator's admin token. */
import type { FastifyRequest } from 'fastify';
import { isAdminAuthorization } from '../shared/admin-token.js';
import type { Ctx } from './context.js';
import { CheckoutError } from './errors.js';

/** The user id of the request's session (`authorization: Bearer <sessionToken>`), else 401 `unauthenticated`. */
export function sessionUser(ctx: Ctx, req: FastifyRequest): string {
  const h = req.headers.authorization;
  const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7).trim() : '';
  const userId = token ? ctx.sessions.verify(token) : null;
  if (!userId) throw new CheckoutError('unauthenticated');
  return userId;
}

/** An `onRequest` hook for the operator plugin: `authorization: Bearer <ADMIN_TOKEN>` (shared/admin-token.ts), else 401 `unauthorized`. */
export function requireAdmin(ctx: Ctx) {
  return async (req: FastifyRequest): Promise<void> => {
    if (!isAdminAuthorization(ctx.config.adminToken, req.headers.authorization)) throw new CheckoutError('unauthorized');
  };
}
