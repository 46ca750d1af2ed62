/**
 * What the routes need, built once by main.ts and handed to each route plugin as its
 * options: no module builds a client at import. Only the services live here; the checks on
 * a request are in auth.ts, the request and answer shapes in schemas.ts, the error codes in
 * errors.ts.
 */
import type { Redis } from 'ioredis';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Config } from '../shared/config.js';
import type { Metrics } from './metrics.js';
import type { SessionSigner } from './accounts.js';
import type { AdmissionVerifier } from './admission.js';
import type { Db } from './db.js';
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
  /** Payments pending longer than this are looked up at the provider (ms): the audit's deadlines follow from it. */
  reconcileAfterMs: number;
}

/** A route plugin: registered by server.ts with `{ctx}` (and a prefix where it has one). */
export type RoutePlugin = FastifyPluginAsyncTypebox<{ ctx: Ctx }>;
