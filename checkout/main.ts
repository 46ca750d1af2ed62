/**
 * Starts checkout: migrations, the server (on 127.0.0.1 unless `opts.host` says otherwise), the sweeper. `npm start` calls
 * `ensurePostgres` first and passes its URL in `config.databaseUrl`.
 */
import type { Logger } from 'pino';
import { createLogger } from '../shared/log.js';
import type { Config } from '../shared/config.js';
import { createRedisClient } from '../shared/redis.js';
import { createSessions, dummyHash, setHashConcurrency } from './accounts.js';
import { createAdmissionVerifier, type JwksOptions } from './admission.js';
import type { Ctx } from './context.js';
import { createDb, migrateDatabase } from './db.js';
import { createMetrics } from './metrics.js';
import { createProvider, type ProviderOptions } from './payments/provider.js';
import { reconcilePayments, unsettledPayments } from './payments/reconcile.js';
import { createReserver } from './reserve.js';
import { buildServer, type ServerTimeouts } from './server.js';
import { createRoomNotice, noticingRooms } from './room-notice.js';
import { createStockSignal } from './stock-signal.js';
import { startSweeper, type Sweeper } from './sweeper.js';

export interface CheckoutOptions {
  /** Port to listen on (default config.checkoutPort; 0 = a free one). */
  port?: number;
  /** Address to listen on (default 127.0.0.1; `0.0.0.0` in a container). */
  host?: string;
  /** Milliseconds since the epoch (default Date.now). */
  clock?: () => number;
  /** Run the sweeper (default true). */
  sweeper?: boolean | { tickMs?: number; reconcileEveryMs?: number };
  /** Payments pending longer than this are looked up at the provider (ms, default 30 s). */
  reconcileAfterMs?: number;
  /** The simulated payment provider's behaviour. */
  provider?: ProviderOptions;
  /** Where and how admission keys are fetched. */
  jwks?: JwksOptions;
  /** Pool size of this process (default 10). */
  poolSize?: number;
  /** Reservation batches of one sale in flight at once (default RESERVE_IN_FLIGHT). */
  reserveInFlight?: number;
  /** How long a client may take to send a request's headers and the whole request. */
  timeouts?: ServerTimeouts;
  /** The logger (default shared/log.ts's, at config.logLevel and config.logFormat, on stdout). */
  logger?: Logger;
}

export interface Checkout {
  port: number;
  url: string;
  /** One sweeper pass now (tests use it with an injected clock). */
  sweep(): Promise<number>;
  close(): Promise<void>;
}

export async function startCheckout(config: Config, opts: CheckoutOptions = {}): Promise<Checkout> {
  const clock = opts.clock ?? Date.now;
  const reconcileAfterMs = opts.reconcileAfterMs ?? 30_000;
  setHashConcurrency(config.passwordHashConcurrency);
  const db = createDb(config.databaseUrl, opts.poolSize ?? 10);
  const redis = createRedisClient(config);
  redis.on('error', () => {}); // ioredis reconnects; /healthz tells
  let sweeper: Sweeper | null = null;
  let provider: ReturnType<typeof createProvider> | null = null;
  try {
    await migrateDatabase(config.databaseUrl);
    void dummyHash(); // computed now, so the first login with an unknown email is not slower than later ones
    const metrics = createMetrics();
    const log = (e: unknown) => app?.log.warn({ err: e }, 'stock signal not written');
    const signal = createStockSignal(redis, config.redisPrefix, clock, (e) => log(e));
    let selfUrl = '';
    provider = createProvider(db, () => `${selfUrl}/api/payments/webhook`, config.paymentWebhookSecret, opts.provider, (e) =>
      app?.log.error({ err: e }, 'payment webhook not delivered'),
    );
    const notice = createRoomNotice(redis, config.redisPrefix, (e) => app?.log.warn({ err: e }, 'room not told of an admission'));
    const reserver = noticingRooms(createReserver(db, clock, (sale, counters, size, taken) => {
      metrics.batchSize.observe(size);
      if (taken) signal.committed(sale, counters);
    }, opts.reserveInFlight), notice, clock);
    const ctx: Ctx = {
      config,
      db,
      redis,
      clock,
      sessions: createSessions(config.sessionSecret, clock),
      admission: createAdmissionVerifier(config.jwksUrl, clock, opts.jwks),
      reserver,
      signal,
      provider,
      metrics,
      reconcileAfterMs,
    };
    var app = buildServer(ctx, opts.timeouts, config.logLevel === 'silent' ? false : (opts.logger ?? createLogger(config, 'checkout')));
    const host = opts.host ?? '127.0.0.1';
    await app.listen({ host, port: opts.port ?? config.checkoutPort });
    const port = (app.server.address() as { port: number }).port;
    selfUrl = `http://${reachableHost(host)}:${port}`;
    const sweeperOpts = typeof opts.sweeper === 'object' ? opts.sweeper : {};
    const prov0 = provider;
    sweeper = startSweeper(db, signal, clock, {
      ...sweeperOpts,
      run: opts.sweeper !== false,
      reconcile: async (now, full) => {
        const r = await reconcilePayments(db, prov0, now, reconcileAfterMs, { full, onError: (e) => app.log.warn({ err: e }, 'payment not reconciled') });
        for (const outcome of r.outcomes) {
          metrics.payments.inc({ outcome });
          metrics.reconciled.inc({ outcome });
        }
        metrics.refunds.inc(r.refunds);
        if (!full) return r.ended;
        const open = await unsettledPayments(db);
        metrics.pendingPayments.set(open.pending);
        metrics.refundsOwed.set(open.refundsOwed);
        return r.ended;
      },
      onExpired: (n) => metrics.expired.inc(n),
      onError: (e) => app.log.error({ err: e }, 'sweep failed'),
    });
    const sw = sweeper;
    const prov = provider;
    let closing: Promise<void> | null = null;
    return {
      port,
      url: selfUrl,
      sweep: () => sw.sweep(),
      close() {
        closing ??= (async () => {
          prov.close();
          await sw.stop();
          await closeServer(app);
          await reserver.drain();
          await signal.flush();
          await db.destroy();
          redis.disconnect();
        })();
        return closing;
      },
    };
  } catch (e) {
    provider?.close();
    await sweeper?.stop();
    await db.destroy().catch(() => {});
    redis.disconnect();
    throw e;
  }
}

/**
 * Close the server: in-flight requests finish, then every connection goes. Fastify closes the
 * connections idle when close starts; one still serving a request then (a webhook delivery, a
 * shopper's call) stays open after its answer, idle, until the client's keep-alive lapses: undici
 * keeps it for the server's advertised 72 s, and close waited that long. So idle connections are
 * closed again until the server has none.
 */
async function closeServer(app: { close(): Promise<unknown>; server: { closeIdleConnections(): void } }): Promise<void> {
  const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
  try {
    await app.close();
  } finally {
    clearInterval(sweep);
  }
}

/** How this process reaches itself (the provider's webhooks): a wildcard address through loopback. */
function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
