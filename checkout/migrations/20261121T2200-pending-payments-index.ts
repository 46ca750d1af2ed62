/**
 * Reconciliation asks every few seconds for the oldest pending payments: an index on
 * created_at over pending rows only keeps that a short range scan however many are settled.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX payments_pending_by_age ON payments (created_at) WHERE status = 'pending'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX payments_pending_by_age`.execute(db);
}
