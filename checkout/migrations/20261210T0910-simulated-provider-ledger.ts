/**
 * The simulated payment provider's own books (payments/provider.ts), in a schema of their
 * own: they stand in for the provider's database, outside checkout's tables and transactions.
 * A real provider keeps a charge whatever happens to the merchant's process, and decides it on
 * its own time; so must the simulation, or a checkout killed between a charge and its webhook
 * leaves a payment nobody can ever look up (issue 10). Every checkout process of a deployment
 * shares these rows, as they would share one provider account.
 * - charges: one per payment id (the charge is idempotent by it); `outcome` is the final event
 *   planned at charge time (null: never decides by itself, `test_timeout`), applied once
 *   `decide_at` has passed; `status` `canceled` once voided before that.
 * - refunds: idempotent by key; never more than the captured amount in all.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE SCHEMA provider_sim;
    CREATE TABLE provider_sim.charges (
      payment_id uuid PRIMARY KEY,
      reservation_id uuid NOT NULL,
      amount_cents integer NOT NULL,
      currency text NOT NULL,
      method text NOT NULL,
      status text NOT NULL CHECK (status IN ('processing', 'succeeded', 'failed', 'canceled')),
      outcome jsonb,
      decide_at timestamptz,
      final_event jsonb,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE provider_sim.refunds (
      id text PRIMARY KEY,
      payment_id uuid NOT NULL REFERENCES provider_sim.charges (payment_id),
      idempotency_key text NOT NULL UNIQUE,
      amount_cents integer NOT NULL CHECK (amount_cents > 0),
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX refunds_by_payment ON provider_sim.refunds (payment_id);
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP SCHEMA provider_sim CASCADE`.execute(db);
}
