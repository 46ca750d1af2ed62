/**
 * `checkout_reserve_batch`, holding the hot sale row's lock only for the stock update.
 *
 * Batches of one sale serialise on that row lock, so its hold time bounds a sale's batches per
 * second. The previous version took the lock first and kept it while it decided, inserted the
 * reservations (six index entries each) and committed: measured from one client, 1.9 ms per
 * call for a batch of one, about 1 ms of it planning the big statement anew on every call.
 * Now:
 * 1. Decide on the statement's snapshot, without the lock: idempotency replay, user known,
 *    jti unused, window, one live order per user; with no unit available, every candidate is
 *    `sold_out` there and then. Otherwise insert every candidate's row, ON CONFLICT DO
 *    NOTHING: the unique indexes (one reservation per jti, one live order per user) make a
 *    request whose twin, in a concurrent batch of another process, got there first wait for
 *    it, then lose: its code is `admission_used` or `already_purchased`, whichever row is
 *    there.
 * 2. Lock the sale row, take LEAST(inserted, available) units in one UPDATE. The rows beyond
 *    that, in arrival order, are deleted again and answered `sold_out`: so `sold_out` always
 *    means no unit was left for the request when the stock was counted under the lock (or,
 *    in step 1, none on the snapshot). Capping the inserts at the snapshot's count instead
 *    would refuse requests that a unit lost to a conflict could have served. The cost: a
 *    batch larger than the last few units inserts and deletes the difference, once.
 *    Nothing is inserted while the lock is held, so a batch holding the lock never waits on
 *    a row of a batch that waits for the lock.
 * 3. Store idempotent answers; commit.
 * The stock CHECKs still hold the invariant: units are only ever taken by the guarded UPDATE
 * under the lock. Several batches of one sale now do step 1 at the same time.
 * The plan is generic (`plan_cache_mode`): it never depends on the arrays' contents.
 * The output gains `stock_version`, the moment the counters were written (under the lock, so
 * it orders the batches that took units), for the stock signal to keep the newest counters.
 * Same inputs, codes and order of checks as 20261121T2100-reserve-batch.ts, whose header
 * documents them.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

const SIGNATURE = sql.raw('checkout_reserve_batch(text, timestamptz, uuid[], text[], text[], text[], text[])');

export async function up(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION ${SIGNATURE}`.execute(db);
  await sql`
    CREATE FUNCTION checkout_reserve_batch(
      p_sale text, p_now timestamptz,
      p_users uuid[], p_jtis text[], p_rooms text[], p_subs text[], p_keys text[]
    ) RETURNS TABLE (
      idx int, code text, reservation_id uuid, expires_at timestamptz, stored_status int, stored_body jsonb,
      total int, available int, reserved int, sold int, stock_version timestamptz
    ) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
    #variable_conflict use_column
    DECLARE
      s sales%ROWTYPE;
      n int := coalesce(array_length(p_users, 1), 0);
      exp timestamptz;
      codes text[];
      ids uuid[];
      st_status int[];
      st_body jsonb[];
      inserted int;
      avail int;
      granted int;
      nth int := 0;
      version timestamptz;
    BEGIN
      SELECT * INTO s FROM sales WHERE id = p_sale;
      IF NOT FOUND THEN
        RETURN QUERY SELECT g, 'unknown_sale'::text, NULL::uuid, NULL::timestamptz, NULL::int, NULL::jsonb,
                            NULL::int, NULL::int, NULL::int, NULL::int, NULL::timestamptz
                     FROM generate_series(1, n) AS g;
        RETURN;
      END IF;
      exp := p_now + make_interval(secs => s.reservation_seconds);
      version := s.updated_at;

      -- 1. Decide on this statement's snapshot and insert the candidates' rows.
      WITH req AS (
        SELECT q.u, q.j, q.r, q.v, q.k, q.i
        FROM unnest(p_users, p_jtis, p_rooms, p_subs, p_keys) WITH ORDINALITY AS q(u, j, r, v, k, i)
      ), pre AS (
        SELECT req.*, ik.status_code AS k_status, ik.body AS k_body,
          CASE
            WHEN ik.user_id IS NOT NULL THEN CASE WHEN ik.sale_id = p_sale THEN 'stored' ELSE 'idempotency_key_reused' END
            WHEN (SELECT true FROM users x WHERE x.id = req.u) IS NULL THEN 'unauthenticated'
            WHEN (SELECT true FROM reservations x WHERE x.jti = req.j) THEN 'admission_used'
            WHEN p_now < s.starts_at THEN 'sale_not_started'
            WHEN p_now >= s.ends_at THEN 'sale_ended'
            WHEN (SELECT true FROM reservations x WHERE x.sale_id = p_sale AND x.user_id = req.u
                    AND x.status IN ('reserved', 'payment_pending', 'paid') LIMIT 1) THEN 'already_purchased'
            ELSE 'candidate'
          END AS c
        -- An index probe per request however many keys are stored (a plain join let the
        -- cached generic plan hash a sequential scan of the whole table).
        FROM req LEFT JOIN LATERAL (
          SELECT x.user_id, x.sale_id, x.status_code, x.body FROM idempotency_keys x
          WHERE x.user_id = req.u AND x.key = req.k LIMIT 1
        ) ik ON true
      ), ins AS (
        INSERT INTO reservations (sale_id, user_id, jti, room, visitor_id, status, expires_at)
        SELECT p_sale, pre.u, pre.j, pre.r, pre.v, 'reserved', exp
        FROM pre
        WHERE pre.c = 'candidate' AND s.available > 0
        ORDER BY pre.i
        ON CONFLICT DO NOTHING
        RETURNING reservations.id, reservations.jti
      )
      SELECT array_agg(CASE WHEN pre.c <> 'candidate' THEN pre.c
                            WHEN ins.id IS NOT NULL THEN 'reserved'
                            WHEN s.available = 0 THEN 'sold_out'
                            ELSE 'conflict' END ORDER BY pre.i),
             array_agg(ins.id ORDER BY pre.i), array_agg(pre.k_status ORDER BY pre.i), array_agg(pre.k_body ORDER BY pre.i)
      INTO codes, ids, st_status, st_body
      FROM pre LEFT JOIN ins ON pre.c = 'candidate' AND ins.jti = pre.j;

      -- 2. Take the units: the only step under the sale row's lock, with the commit.
      inserted := cardinality(array_positions(codes, 'reserved'));
      IF inserted > 0 THEN
        SELECT s2.available INTO avail FROM sales s2 WHERE s2.id = p_sale FOR UPDATE;
        granted := LEAST(inserted, avail);
        UPDATE sales SET available = sales.available - granted, reserved = sales.reserved + granted,
                         updated_at = clock_timestamp()
        WHERE sales.id = p_sale
        RETURNING * INTO s;
        version := s.updated_at;
        IF granted < inserted THEN
          FOR g IN 1..n LOOP
            CONTINUE WHEN codes[g] IS DISTINCT FROM 'reserved';
            nth := nth + 1;
            IF nth > granted THEN
              DELETE FROM reservations x WHERE x.id = ids[g];
              codes[g] := 'sold_out';
              ids[g] := NULL;
            END IF;
          END LOOP;
        END IF;
      END IF;

      -- A concurrent batch's row won a unique index: say which.
      IF 'conflict' = ANY (codes) THEN
        FOR g IN 1..n LOOP
          CONTINUE WHEN codes[g] IS DISTINCT FROM 'conflict';
          codes[g] := CASE WHEN EXISTS (SELECT 1 FROM reservations x WHERE x.jti = p_jtis[g])
                           THEN 'admission_used' ELSE 'already_purchased' END;
        END LOOP;
      END IF;

      -- 3. The first answer of every keyed request, kept for its retries.
      IF array_remove(p_keys, NULL) <> '{}' THEN
      INSERT INTO idempotency_keys (user_id, key, sale_id, status_code, body)
      SELECT p_users[g], p_keys[g], p_sale,
             CASE codes[g] WHEN 'reserved' THEN 201 WHEN 'admission_used' THEN 403 WHEN 'sale_not_started' THEN 425
                           WHEN 'sale_ended' THEN 410 ELSE 409 END,
             CASE codes[g] WHEN 'reserved'
               THEN jsonb_build_object('reservationId', ids[g], 'status', 'reserved',
                                       'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
               ELSE jsonb_build_object('error', codes[g]) END
      FROM generate_series(1, n) AS g
      WHERE p_keys[g] IS NOT NULL AND codes[g] NOT IN ('stored', 'idempotency_key_reused', 'unauthenticated')
      ON CONFLICT DO NOTHING;
      END IF;

      RETURN QUERY SELECT g, codes[g], ids[g], CASE WHEN codes[g] = 'reserved' THEN exp END, st_status[g], st_body[g],
                          s.total, s.available, s.reserved, s.sold, version
                   FROM generate_series(1, n) AS g;
    END
    $fn$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  // The previous definition comes back by running 20261121T2120's up again.
  await sql`DROP FUNCTION ${SIGNATURE}`.execute(db);
  const previous = await import('./20261121T2120-reserve-batch-faster.js');
  await sql`
    ALTER TABLE reservations ADD CONSTRAINT reservations_sale_id_fkey FOREIGN KEY (sale_id) REFERENCES sales(id) NOT VALID,
                             ADD CONSTRAINT reservations_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;
  `.execute(db);
  await previous.up(db);
}
