-- Brings the benchmark city back to its loaded state: drops what ingest runs added (their
-- readings are newer than the export day), rebuilds the latest values and makes the parking
-- sensors' latest values fresh (minutes old), as in a live city.
SELECT drop_chunks('readings', newer_than => '2026-02-01'::timestamptz);
TRUNCATE uplinks;
TRUNCATE dead_letters;
DELETE FROM latest_readings;
INSERT INTO latest_readings (dev_eui, quantity, time, value)
SELECT p.dev_eui, q, r.time, r.value
FROM bench.plan p
CROSS JOIN LATERAL unnest(p.quantities) AS q
CROSS JOIN LATERAL (
  SELECT time, value FROM readings
  WHERE dev_eui = p.dev_eui AND quantity = q
  ORDER BY time DESC LIMIT 1
) AS r;
UPDATE latest_readings
SET time = now() - make_interval(secs => 600 * bench.u01(dev_eui, 9))
WHERE quantity IN (12, 13);
UPDATE devices d
SET first_seen = '2025-01-01', last_seen = l.t
FROM (SELECT dev_eui, max(time) AS t FROM latest_readings GROUP BY dev_eui) AS l
WHERE l.dev_eui = d.dev_eui;
ANALYZE;
