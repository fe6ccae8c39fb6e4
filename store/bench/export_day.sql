-- The export benchmark's day: 2026-01-15 in city time (Europe/Berlin, UTC+1 in January), with
-- $1 readings per quantity for every climate station; the benchmark passes 683:
-- 7 330 × 2 × 683 = 10 012 780 rows.
INSERT INTO readings (dev_eui, quantity, time, value)
SELECT p.dev_eui, q, t, bench.value(q, p.idx, i, t, p.capacity)
FROM bench.plan p
CROSS JOIN generate_series(0, $1::int - 1) AS i
CROSS JOIN LATERAL (SELECT to_timestamp(1768431600 + p.phase_s / 30 + i * (86400.0 / $1::int)) AS t) AS tt
CROSS JOIN LATERAL unnest(p.quantities) AS q
WHERE p.kind = 'outdoor_climate'
