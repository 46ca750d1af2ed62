/**
 * The sweeper asks "which sales have lapsed reservations?" every 250 ms without a sale id;
 * the (sale_id, expires_at) index made that a scan of every live reservation. An index on
 * expires_at alone (live rows only) makes it a short range scan.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX reservations_lapsing_any_sale ON reservations (expires_at) WHERE status IN ('reserved', 'payment_pending')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX reservations_lapsing_any_sale`.execute(db);
}
