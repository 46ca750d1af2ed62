/**
 * What the routes need, built once by main.ts and passed in: no module builds a client at import.
 */
import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { Type } from '@fastify/type-provider-typebox';
import type { Config } from '../shared/config.js';
import type { Metrics } from './metrics.js';
import type { SessionSigner } from './accounts.js';
import type { AdmissionVerifier } from './admission.js';
import type { Db } from './db.js';
import { CheckoutError } from './errors.js';
import type { Provider } from './payments/provider.js';
import type { Reserver } from './reserve.js';
import type { StockSignal } from './stock-signal.js';

export interface Ctx {
  config: Config;
  db: Db;
  redis: Redis;
  clock: () => number;
  sessions: SessionSigner;
  admission: AdmissionVerifier;
  reserver: Reserver;
  signal: StockSignal;
  provider: Provider;
  metrics: Metrics;
}

/** The user id of the request's session (`authorization: Bearer <sessionToken>`), else 401. */
export function userOf(ctx: Ctx, req: FastifyRequest): string {
  const h = req.headers.authorization;
  const token = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7).trim() : '';
  const userId = token ? ctx.sessions.verify(token) : null;
  if (!userId) throw new CheckoutError('unauthenticated');
  return userId;
}

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

/** Operator routes: `authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. */
export function requireAdmin(ctx: Ctx, req: FastifyRequest): void {
  const h = req.headers.authorization;
  const given = typeof h === 'string' && h.startsWith('Bearer ') ? h.slice(7) : '';
  // Comparing digests keeps the time independent of where (or whether) the strings differ, and of their lengths.
  if (!crypto.timingSafeEqual(digest(given), digest(ctx.config.adminToken)) || !given) throw new CheckoutError('unauthorized');
}

/** Every error body: `{error, message, ...fields}`. */
export const ErrorSchema = Type.Object({ error: Type.String(), message: Type.String() }, { additionalProperties: true });

export function errors<const S extends readonly number[]>(...statuses: S): { [K in S[number]]: typeof ErrorSchema } {
  return Object.fromEntries(statuses.map((s) => [s, ErrorSchema])) as { [K in S[number]]: typeof ErrorSchema };
}

/** Sends an answer whose status is decided at run time (each is declared in the route's schema). */
export function sendAnswer(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).send(body);
}

export const SaleParam = Type.Object({ sale: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,64}$' }) }, { additionalProperties: false });
export const IdParam = Type.Object(
  { id: Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' }) },
  { additionalProperties: false },
);
