-- checkout_reserve_batch: decides a batch of reservation requests for one sale in ONE
-- statement (one round trip, its own transaction). This file is the function's source; the
-- latest migration that installs it holds a frozen copy (test/checkout/reserve-sql.test.ts
-- checks they are the same): change it here, then add a migration that embeds the new text.
--
-- Input: the sale, the clock, and per request (same index in every array): user id, jti,
--   room, visitor id (token sub), idempotency key (NULL for none; at most one request per
--   (user, key) in a batch: the caller folds repeats). No text may hold a NUL byte (Postgres
--   refuses the whole call): the caller answers such a request itself.
-- Output: one row per request, idx 1-based, code one of
--   reserved | stored | unknown_sale | unauthenticated | idempotency_key_reused |
--   admission_used | sale_not_started | sale_ended | already_purchased | sold_out
--   with reservation_id/expires_at for reserved; for stored, the first answer of the
--   idempotency key: stored_code (a code above, never stored) and stored_body (the
--   201 body of a reserved, else NULL); and the sale's counters after the batch with their
--   stock_version (bumped under the sale row lock by every change of stock), for the stock
--   signal. HTTP statuses are not chosen here: checkout's error table maps each code.
--
-- Checks run in CONTRACT.md section 3's order (after the session and the token's signature,
-- which the caller checked): idempotency replay, user known, jti unused, window, one live
-- order per user, stock. The constraints (unique jti, partial unique (sale, user), stock
-- CHECKs) back every decision.
--
-- Steps:
-- 0. Lock order. Take a transaction-scoped advisory lock per user and per jti of the batch,
--    all in ascending key order. Two batches (of any processes) that share a user or a jti
--    then serialise on the first shared key, and one never waits on an index entry or an
--    idempotency row of another batch that waits for it: the deadlock of two batches with
--    the same users or tokens in opposite order cannot happen. Batches that share nothing
--    (the normal case: one process never puts a user or a jti in two batches in flight) do
--    not wait on each other. A hash collision of two keys only serialises two batches.
-- 1. Decide on the statement's snapshot, without the sale lock: with no unit available every
--    candidate is sold_out there and then. Otherwise insert every candidate's row (ordered
--    by user, then jti), ON CONFLICT DO NOTHING: a row that still loses a unique index (a
--    writer outside this function) answers admission_used or already_purchased,
--    whichever row is there.
-- 2. Lock the sale row, take LEAST(inserted, available) units in one UPDATE. The rows beyond
--    that, in arrival order, are deleted again and answered sold_out: sold_out always
--    means no unit was left for the request when the stock was counted under the lock (or,
--    in step 1, none on the snapshot). Nothing is inserted into reservations while the
--    lock is held, so a batch holding it never waits on a row of a batch that waits for it.
-- 3. Store the first answer of every keyed request (its code; the body of a reserved);
--    commit.
-- The plan is generic (plan_cache_mode): it never depends on the arrays' contents.
CREATE FUNCTION checkout_reserve_batch(
  p_sale text, p_now timestamptz,
  p_users uuid[], p_jtis text[], p_rooms text[], p_subs text[], p_keys text[]
) RETURNS TABLE (
  idx int, code text, reservation_id uuid, expires_at timestamptz, stored_code text, stored_body jsonb,
  total int, available int, reserved int, sold int, stock_version bigint
) LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
  s sales%ROWTYPE;
  n int := coalesce(array_length(p_users, 1), 0);
  exp timestamptz;
  codes text[];
  ids uuid[];
  st_code text[];
  st_body jsonb[];
  inserted int;
  avail int;
  granted int;
  nth int := 0;
BEGIN
  -- 0. Every user and jti of the batch, locked in one global order.
  PERFORM pg_advisory_xact_lock(k)
  FROM (
    SELECT DISTINCT hashtextextended(x.key, 0) AS k
    FROM (SELECT 'checkout_reserve_batch u ' || u::text AS key FROM unnest(p_users) AS u
          UNION ALL
          SELECT 'checkout_reserve_batch j ' || j FROM unnest(p_jtis) AS j) AS x
    ORDER BY 1
  ) AS ordered;

  SELECT * INTO s FROM sales WHERE id = p_sale;
  IF NOT FOUND THEN
    RETURN QUERY SELECT g, 'unknown_sale'::text, NULL::uuid, NULL::timestamptz, NULL::text, NULL::jsonb,
                        NULL::int, NULL::int, NULL::int, NULL::int, NULL::bigint
                 FROM generate_series(1, n) AS g;
    RETURN;
  END IF;
  exp := p_now + make_interval(secs => s.reservation_seconds);

  -- 1. Decide on this statement's snapshot and insert the candidates' rows.
  WITH req AS (
    SELECT q.u, q.j, q.r, q.v, q.k, q.i
    FROM unnest(p_users, p_jtis, p_rooms, p_subs, p_keys) WITH ORDINALITY AS q(u, j, r, v, k, i)
  ), pre AS (
    SELECT req.*, ik.code AS k_code, ik.body AS k_body,
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
      SELECT x.user_id, x.sale_id, x.code, x.body FROM idempotency_keys x
      WHERE x.user_id = req.u AND x.key = req.k LIMIT 1
    ) ik ON true
  ), ins AS (
    INSERT INTO reservations (sale_id, user_id, jti, room, visitor_id, status, expires_at)
    SELECT p_sale, pre.u, pre.j, pre.r, pre.v, 'reserved', exp
    FROM pre
    WHERE pre.c = 'candidate' AND s.available > 0
    ORDER BY pre.u, pre.j
    ON CONFLICT DO NOTHING
    RETURNING reservations.id, reservations.jti
  )
  SELECT array_agg(CASE WHEN pre.c <> 'candidate' THEN pre.c
                        WHEN ins.id IS NOT NULL THEN 'reserved'
                        WHEN s.available = 0 THEN 'sold_out'
                        ELSE 'conflict' END ORDER BY pre.i),
         array_agg(ins.id ORDER BY pre.i), array_agg(pre.k_code ORDER BY pre.i), array_agg(pre.k_body ORDER BY pre.i)
  INTO codes, ids, st_code, st_body
  FROM pre LEFT JOIN ins ON pre.c = 'candidate' AND ins.jti = pre.j;

  -- 2. Take the units: the only step under the sale row's lock, with the commit.
  inserted := cardinality(array_positions(codes, 'reserved'));
  IF inserted > 0 THEN
    SELECT s2.available INTO avail FROM sales s2 WHERE s2.id = p_sale FOR UPDATE;
    granted := LEAST(inserted, avail);
    UPDATE sales SET available = sales.available - granted, reserved = sales.reserved + granted,
                     stock_version = sales.stock_version + 1, updated_at = clock_timestamp()
    WHERE sales.id = p_sale
    RETURNING * INTO s;
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

  -- A row outside this function's batches won a unique index: say which.
  IF 'conflict' = ANY (codes) THEN
    FOR g IN 1..n LOOP
      CONTINUE WHEN codes[g] IS DISTINCT FROM 'conflict';
      codes[g] := CASE WHEN EXISTS (SELECT 1 FROM reservations x WHERE x.jti = p_jtis[g])
                       THEN 'admission_used' ELSE 'already_purchased' END;
    END LOOP;
  END IF;

  -- 3. The first answer of every keyed request, kept for its retries: the code, and the
  --    body only where it is not the error table's (a reservation).
  IF array_remove(p_keys, NULL) <> '{}' THEN
    INSERT INTO idempotency_keys (user_id, key, sale_id, code, body)
    SELECT p_users[g], p_keys[g], p_sale, codes[g],
           CASE codes[g] WHEN 'reserved'
             THEN jsonb_build_object('reservationId', ids[g], 'status', 'reserved',
                                     'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
           END
    FROM generate_series(1, n) AS g
    WHERE p_keys[g] IS NOT NULL AND codes[g] NOT IN ('stored', 'idempotency_key_reused', 'unauthenticated')
    ON CONFLICT DO NOTHING;
  END IF;

  RETURN QUERY SELECT g, codes[g], ids[g], CASE WHEN codes[g] = 'reserved' THEN exp END, st_code[g], st_body[g],
                      s.total, s.available, s.reserved, s.sold, s.stock_version
               FROM generate_series(1, n) AS g;
END
$fn$;
