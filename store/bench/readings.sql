-- Benchmark year (2025, UTC) readings for the window [$1, $2): every planned device gets
-- `slots` readings per quantity, evenly spaced over the year from its phase. Run once per
-- week so that each statement fills about one readings chunk, in index order.
INSERT INTO readings (dev_eui, quantity, time, value)
SELECT p.dev_eui, q, t, bench.value(q, p.idx, i, t, p.capacity)
FROM bench.plan p
CROSS JOIN LATERAL (SELECT 31536000.0 / p.slots AS step) AS st
CROSS JOIN LATERAL generate_series(
    greatest(0, ceil((extract(epoch FROM $1::timestamptz) - 1735689600 - p.phase_s) / st.step)::int),
    least(p.slots - 1, ceil((extract(epoch FROM $2::timestamptz) - 1735689600 - p.phase_s) / st.step)::int - 1)
) AS i
CROSS JOIN LATERAL (SELECT to_timestamp(1735689600 + p.phase_s + i * st.step) AS t) AS tt
CROSS JOIN LATERAL unnest(p.quantities) AS q
WHERE t >= $1::timestamptz AND t < $2::timestamptz
