/**
 * The checkout database: table types, the Kysely instance over a pg pool, and migrations.
 * Migrations live in ./migrations (found from import.meta.url) and run on start.
 */
import path from 'node:path';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { FileMigrationProvider, Kysely, Migrator, PostgresDialect, type Generated, type Transaction } from 'kysely';

export type ReservationStatus = 'reserved' | 'payment_pending' | 'paid' | 'failed' | 'expired' | 'cancelled';
export type PaymentStatus = 'pending' | 'succeeded' | 'failed' | 'refunded';
export const LIVE_STATUSES: readonly ReservationStatus[] = ['reserved', 'payment_pending'];

export interface Database {
  users: { id: Generated<string>; email: string; password_hash: string; created_at: Generated<Date> };
  sales: {
    id: string;
    name: string;
    price_cents: number;
    currency: string;
    total: number;
    available: number;
    reserved: Generated<number>;
    sold: Generated<number>;
    starts_at: Date;
    ends_at: Date;
    reservation_seconds: number;
    /** Bumped by every change of stock, under the row's lock: orders the stock signals. */
    stock_version: Generated<number>;
    created_at: Generated<Date>;
    updated_at: Generated<Date>;
  };
  reservations: {
    id: Generated<string>;
    sale_id: string;
    user_id: string;
    jti: string;
    room: string;
    visitor_id: string;
    status: ReservationStatus;
    expires_at: Date;
    created_at: Generated<Date>;
    ended_at: Date | null;
  };
  payments: {
    id: Generated<string>;
    reservation_id: string;
    method: string;
    amount_cents: number;
    currency: string;
    status: PaymentStatus;
    note: string | null;
    /** The provider's refund of a `refunded` payment once it confirmed; null while owed. */
    refund_id: Generated<string | null>;
    created_at: Generated<Date>;
    updated_at: Generated<Date>;
  };
  webhook_events: { id: string; type: string; payment_id: string | null; outcome: string; received_at: Generated<Date> };
  idempotency_keys: {
    user_id: string;
    key: string;
    sale_id: string;
    /** The first answer's code (`reserved` or an error code of checkout's table). */
    code: string;
    /** The body of a `reserved` answer; null for an error (its body comes from the table). */
    body: unknown;
    created_at: Generated<Date>;
  };
}

export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;

/**
 * How long a request may wait on Postgres (docs/api.md section 6: 503 within 2 s, never a
 * hang): for a connection (a new one, or a free one of the pool), for a statement on the
 * server (statement_timeout, lock waits included), and for an answer on the client (a server
 * that vanished without closing the socket).
 */
export const DB_TIMEOUTS = { connectMs: 1500, statementMs: 1500, answerMs: 1900 };

export function createDb(databaseUrl: string, poolSize = 10, timeouts = DB_TIMEOUTS): Db {
  pg.types.setTypeParser(20, Number); // count(*) and other int8 as numbers: our counts are small
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolSize,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: timeouts.connectMs,
    statement_timeout: timeouts.statementMs,
    query_timeout: timeouts.answerMs,
  });
  pool.on('error', () => {}); // an idle client lost (e.g. Postgres restarted): the pool replaces it
  // A client checked out of the pool has no error listener of the pool's: a backend killed
  // between two statements of a transaction would emit 'error' with nobody listening, an
  // uncaught exception. The next statement on it rejects instead, and the pool drops it.
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return db;
}

const pools = new WeakMap<Db, pg.Pool>();

/**
 * Is this error Postgres being away (down, restarting, unreachable, too slow) rather than a
 * fault of the request or of our code? Such a request is answered 503 `unavailable`; the pool
 * drops broken connections and makes new ones, so service comes back by itself.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  const code = typeof err?.code === 'string' ? err.code : '';
  // 08: connection exception; 57P01-57P03: shutdown, crash recovery, cannot connect now;
  // 57014: statement_timeout; 53300: too many connections.
  if (/^08|^57P0[1-3]$|^57014$|^53300$/.test(code)) return true;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
  const msg = typeof err?.message === 'string' ? err.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Connection ended unexpectedly/i.test(msg);
}

/**
 * The pg pool under a Db made by createDb, for the one hot query that wants what Kysely does
 * not offer: a named prepared statement, parsed once per connection instead of per call.
 */
export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error('poolOf: this Db was not made by createDb');
  return pool;
}

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

/**
 * Brings the schema at `databaseUrl` up to date, on a connection of its own without the request
 * timeouts (DB_TIMEOUTS): a migration may build an index for minutes, and a process that starts
 * beside another waits on Kysely's migration lock for as long as that one migrates.
 */
export async function migrateDatabase(databaseUrl: string): Promise<string[]> {
  const db = createDb(databaseUrl, 1, { connectMs: 10_000, statementMs: 0, answerMs: 0 });
  try {
    return await migrate(db);
  } finally {
    await db.destroy();
  }
}

/** Brings the schema up to date; several processes starting at once serialise on Kysely's lock. */
export async function migrate(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
