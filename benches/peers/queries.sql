-- segkit's eighth benchmark case, in the format of ../../../shared/bench/queries.sql (see segbench8.py).
-- Same tables, same fixed "now" (2026-06-30T00:00:00Z); returns the ascending member user_ids.
--
-- The text below is the plain SQL reading of the condition (a self-join with a time-range condition and a
-- NOT EXISTS for the excluded event) and runs unchanged on DuckDB 2.0 and DataFusion 55. It was the fastest of
-- the formulations tried on both (sf1, 2 threads, medians of 3):
--   DuckDB:     self-join 249 ms · ASOF JOIN 476 ms · window functions 352 ms
--   DataFusion: self-join 1268 ms · window functions 2521 ms
-- Polars uses join_asof (segbench8.py), its fastest form.

-- name: S8
-- sequence: a cart_add, then a purchase strictly later and at most 1 hour after it, with no cart_remove strictly
-- between the two, all in the last 30 days before now
WITH ev AS (
  SELECT user_id, ts, event_type
  FROM events
  WHERE event_type IN ('cart_add', 'purchase', 'cart_remove')
    AND ts >= TIMESTAMPTZ '2026-05-31 00:00:00+00:00'
    AND ts <  TIMESTAMPTZ '2026-06-30 00:00:00+00:00'
)
SELECT DISTINCT a.user_id
FROM ev a
JOIN ev b
  ON a.user_id = b.user_id AND b.ts > a.ts AND b.ts <= a.ts + INTERVAL '1 hour'
WHERE a.event_type = 'cart_add'
  AND b.event_type = 'purchase'
  AND NOT EXISTS (
    SELECT 1 FROM ev c
    WHERE c.user_id = a.user_id AND c.event_type = 'cart_remove' AND c.ts > a.ts AND c.ts < b.ts
  )
ORDER BY a.user_id;
