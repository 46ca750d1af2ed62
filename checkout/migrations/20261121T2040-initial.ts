/**
 * The checkout schema. The invariants of CONTRACT.md section 3 are constraints here,
 * so a bug in the code fails loudly instead of overselling:
 * - sales: available >= 0 and available + reserved + sold = total (CHECK);
 * - reservations: one live or paid order per (sale, user) (partial unique index),
 *   one reservation per admission jti (unique);
 * - payments: at most one successful payment per reservation (partial unique index).
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE TABLE users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      email text NOT NULL UNIQUE,
      password_hash text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE sales (
      id text PRIMARY KEY,
      name text NOT NULL,
      price_cents integer NOT NULL CHECK (price_cents >= 0),
      currency text NOT NULL,
      total integer NOT NULL CHECK (total >= 0),
      available integer NOT NULL,
      reserved integer NOT NULL DEFAULT 0,
      sold integer NOT NULL DEFAULT 0,
      starts_at timestamptz NOT NULL,
      ends_at timestamptz NOT NULL,
      reservation_seconds integer NOT NULL CHECK (reservation_seconds > 0),
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT stock_non_negative CHECK (available >= 0 AND reserved >= 0 AND sold >= 0),
      CONSTRAINT stock_adds_up CHECK (available + reserved + sold = total),
      CONSTRAINT window_ordered CHECK (ends_at > starts_at)
    );

    CREATE TABLE reservations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      sale_id text NOT NULL REFERENCES sales(id),
      user_id uuid NOT NULL REFERENCES users(id),
      jti text NOT NULL,
      room text NOT NULL,
      visitor_id text NOT NULL,
      status text NOT NULL CHECK (status IN ('reserved', 'payment_pending', 'paid', 'failed', 'expired', 'cancelled')),
      expires_at timestamptz NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      ended_at timestamptz,
      CONSTRAINT one_reservation_per_jti UNIQUE (jti)
    );
    CREATE UNIQUE INDEX one_live_order_per_user ON reservations (sale_id, user_id)
      WHERE status IN ('reserved', 'payment_pending', 'paid');
    CREATE INDEX reservations_lapsing ON reservations (sale_id, expires_at)
      WHERE status IN ('reserved', 'payment_pending');
    CREATE INDEX reservations_by_user ON reservations (user_id, sale_id, created_at DESC);

    CREATE TABLE payments (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      reservation_id uuid NOT NULL REFERENCES reservations(id),
      method text NOT NULL,
      amount_cents integer NOT NULL,
      currency text NOT NULL,
      status text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'refunded')),
      note text,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX one_success_per_reservation ON payments (reservation_id) WHERE status = 'succeeded';
    CREATE INDEX payments_by_reservation ON payments (reservation_id);

    CREATE TABLE webhook_events (
      id text PRIMARY KEY,
      type text NOT NULL,
      payment_id uuid,
      outcome text NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE idempotency_keys (
      user_id uuid NOT NULL REFERENCES users(id),
      key text NOT NULL,
      sale_id text NOT NULL,
      status_code integer NOT NULL,
      body jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, key)
    );
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE idempotency_keys, webhook_events, payments, reservations, sales, users`.execute(db);
}
