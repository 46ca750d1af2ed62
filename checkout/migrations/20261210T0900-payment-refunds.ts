/**
 * A capture that cannot be sold is refunded at the provider (payments/reconcile.ts): the
 * payment turns `refunded` in the transaction that decides it, and `refund_id` records the
 * provider's refund once it confirmed. A refunded payment without one is a refund still owed:
 * reconciliation asks for it again (same idempotency key) until the provider confirms.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE payments ADD COLUMN refund_id text;
    CREATE INDEX payments_refunds_owed ON payments (updated_at) WHERE status = 'refunded' AND refund_id IS NULL;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX payments_refunds_owed; ALTER TABLE payments DROP COLUMN refund_id`.execute(db);
}
