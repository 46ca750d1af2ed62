/**
 * `checkout_reserve_batch`: decides a batch of reservation requests for one sale in ONE
 * statement (one round trip, its own transaction), so the hot sale row is locked only for
 * the time Postgres needs, not for a chain of client round trips.
 *
 * Input: the sale, the clock, and per request (same index in every array): user id, jti,
 * room, visitor id (token `sub`), idempotency key (NULL for none; at most one request per
 * (user, key) in a batch — the caller folds repeats).
 * Output: one row per request, `idx` 1-based, `code` one of
 *   reserved | stored | unknown_sale | unauthenticated | idempotency_key_reused |
 *   admission_used | sale_not_started | sale_ended | already_purchased | sold_out
 * with `reservation_id`/`expires_at` for `reserved`, the stored answer for `stored`, and the
 * sale's counters after the batch (for the stock signal).
 *
 * Checks run in CONTRACT.md section 3's order (after the session and the token's signature,
 * which the caller checked): idempotency replay, jti unused, window, one order per user, stock.
 * The constraints (unique jti, partial unique (sale, user), stock CHECKs) back every decision.
 * Frozen in time: written against Kysely<any>, never imports app code.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION checkout_reserve_batch(
      p_sale text, p_now timestamptz,
      p_users uuid[], p_jtis text[], p_rooms text[], p_subs text[], p_keys text[]
    ) RETURNS TABLE (
      idx int, code text, reservation_id uuid, expires_at timestamptz, stored_status int, stored_body jsonb,
      total int, available int, reserved int, sold int
    ) LANGUAGE plpgsql AS $fn$
    #variable_conflict use_column
    DECLARE
      s sales%ROWTYPE;
      n int := coalesce(array_length(p_users, 1), 0);
      codes text[] := array_fill(NULL::text, ARRAY[n]);
      st_status int[] := array_fill(NULL::int, ARRAY[n]);
      st_body jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
      ids uuid[] := array_fill(NULL::uuid, ARRAY[n]);
      used_jtis text[];
      known_users uuid[];
      ordered_users uuid[];
      win_jtis text[] := '{}';
      win_users uuid[] := '{}';
      win_idx int[] := '{}';
      exp timestamptz;
      taken int := 0;
      r record;
    BEGIN
      SELECT * INTO s FROM sales WHERE id = p_sale FOR UPDATE;
      IF NOT FOUND THEN
        RETURN QUERY SELECT i, 'unknown_sale'::text, NULL::uuid, NULL::timestamptz, NULL::int, NULL::jsonb,
                            NULL::int, NULL::int, NULL::int, NULL::int
                     FROM generate_series(1, n) AS i;
        RETURN;
      END IF;
      exp := p_now + make_interval(secs => s.reservation_seconds);

      FOR r IN SELECT k.user_id, k.key, k.sale_id, k.status_code, k.body
               FROM idempotency_keys k
               JOIN unnest(p_users, p_keys) AS q(u, k) ON k.user_id = q.u AND k.key = q.k LOOP
        FOR i IN 1..n LOOP
          IF p_users[i] = r.user_id AND p_keys[i] = r.key THEN
            IF r.sale_id = p_sale THEN
              codes[i] := 'stored'; st_status[i] := r.status_code; st_body[i] := r.body;
            ELSE
              codes[i] := 'idempotency_key_reused';
            END IF;
          END IF;
        END LOOP;
      END LOOP;

      used_jtis := ARRAY(SELECT x.jti FROM reservations x WHERE x.jti = ANY (p_jtis));
      known_users := ARRAY(SELECT u.id FROM users u WHERE u.id = ANY (p_users));
      ordered_users := ARRAY(SELECT x.user_id FROM reservations x
                             WHERE x.sale_id = p_sale AND x.user_id = ANY (p_users)
                               AND x.status IN ('reserved', 'payment_pending', 'paid'));

      FOR i IN 1..n LOOP
        CONTINUE WHEN codes[i] IS NOT NULL;
        IF NOT (p_users[i] = ANY (known_users)) THEN codes[i] := 'unauthenticated';
        ELSIF p_jtis[i] = ANY (used_jtis) OR p_jtis[i] = ANY (win_jtis) THEN codes[i] := 'admission_used';
        ELSIF p_now < s.starts_at THEN codes[i] := 'sale_not_started';
        ELSIF p_now >= s.ends_at THEN codes[i] := 'sale_ended';
        ELSIF p_users[i] = ANY (ordered_users) OR p_users[i] = ANY (win_users) THEN codes[i] := 'already_purchased';
        ELSIF coalesce(array_length(win_idx, 1), 0) >= s.available THEN codes[i] := 'sold_out';
        ELSE
          win_idx := win_idx || i; win_jtis := win_jtis || p_jtis[i]; win_users := win_users || p_users[i];
          codes[i] := 'already_purchased'; -- until its row is inserted below
        END IF;
      END LOOP;

      IF coalesce(array_length(win_idx, 1), 0) > 0 THEN
        FOR r IN
          INSERT INTO reservations (sale_id, user_id, jti, room, visitor_id, status, expires_at)
          SELECT p_sale, p_users[w], p_jtis[w], p_rooms[w], p_subs[w], 'reserved', exp FROM unnest(win_idx) AS w
          ON CONFLICT DO NOTHING
          RETURNING reservations.id, reservations.jti
        LOOP
          FOR j IN 1..array_length(win_idx, 1) LOOP
            IF p_jtis[win_idx[j]] = r.jti THEN
              codes[win_idx[j]] := 'reserved'; ids[win_idx[j]] := r.id; taken := taken + 1;
            END IF;
          END LOOP;
        END LOOP;
        IF taken > 0 THEN
          UPDATE sales SET available = sales.available - taken, reserved = sales.reserved + taken, updated_at = now()
          WHERE id = p_sale AND sales.available >= taken
          RETURNING * INTO s;
          IF NOT FOUND THEN RAISE EXCEPTION 'stock moved under the sale lock'; END IF;
        END IF;
      END IF;

      INSERT INTO idempotency_keys (user_id, key, sale_id, status_code, body)
      SELECT p_users[i], p_keys[i], p_sale,
             CASE codes[i] WHEN 'reserved' THEN 201 WHEN 'admission_used' THEN 403 WHEN 'sale_not_started' THEN 425
                           WHEN 'sale_ended' THEN 410 ELSE 409 END,
             CASE codes[i] WHEN 'reserved'
               THEN jsonb_build_object('reservationId', ids[i], 'status', 'reserved',
                                       'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
               ELSE jsonb_build_object('error', codes[i]) END
      FROM generate_series(1, n) AS i
      WHERE p_keys[i] IS NOT NULL AND codes[i] NOT IN ('stored', 'idempotency_key_reused', 'unauthenticated')
      ON CONFLICT DO NOTHING;

      RETURN QUERY SELECT i, codes[i], ids[i], CASE WHEN codes[i] = 'reserved' THEN exp END, st_status[i], st_body[i],
                          s.total, s.available, s.reserved, s.sold
                   FROM generate_series(1, n) AS i;
    END
    $fn$;
  `.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION checkout_reserve_batch(text, timestamptz, uuid[], text[], text[], text[], text[])`.execute(db);
}
