-- A plausible value for quantity q of device idx at its i-th reading (time t, UTC).
CREATE FUNCTION bench.value(q smallint, idx integer, i integer, t timestamptz, capacity integer)
RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE q
    WHEN 1 THEN round(100 * (10 + 8 * sin(2 * pi() * (extract(doy FROM t AT TIME ZONE 'UTC') - 110) / 365)
                          + 4 * sin(2 * pi() * (extract(hour FROM t AT TIME ZONE 'UTC') - 9) / 24)
                          + 2 * bench.u01(idx, i))) / 100
    WHEN 2 THEN round(10 * (55 + 25 * bench.u01(idx, i + 7))) / 10
    WHEN 3 THEN round(420 + 800 * bench.u01(idx, i + 11))
    WHEN 12 THEN CASE WHEN bench.u01(idx, i) < 0.6 THEN 1 ELSE 0 END
    WHEN 13 THEN floor(coalesce(capacity, 100) * bench.u01(idx, i))
  END
$$;
