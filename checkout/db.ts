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

export function createDb(databaseUrl: string, poolSize = 10): Db {
  pg.types.setTypeParser(20, Number); // count(*) and other int8 as numbers: our counts are small
  const pool = new pg.Pool({ connectionString: databaseUrl, max: poolSize, idleTimeoutMillis: 10_000 });
  pool.on('error', () => {}); // an idle client lost (e.g. Postgres restarted): the pool replaces it
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  pools.set(db, pool);
  return db;
}

const pools = new WeakMap<Db, pg.Pool>();

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

/** Brings the schema up to date; several processes starting at once serialise on Kysely's lock. */
export async function migrate(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
