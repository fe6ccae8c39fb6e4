-- Benchmark city (scripts/bench): the registry of a city with 10 000 located devices, 50 parking
-- sites and 3 buildings, deterministic (no random()). Loaded into a freshly migrated database.
-- Not part of the application's migrations: only the benchmark runs this.
--
--   parking bays      2 500  public, 50 per site            occupied
--   parking counters     50  public, one per site           free_spaces
--   room sensors        120  private, 40 rooms × 3 buildings temperature, humidity, co2
--   climate stations  7 330  public, spread over the city   temperature, humidity
--
-- bench.plan holds, per device, what the reading generator needs: its index, its quantities
-- and how many readings per quantity it gets over the benchmark year.

CREATE SCHEMA bench;

CREATE TABLE bench.meta (key text PRIMARY KEY, value text NOT NULL);

CREATE TABLE bench.plan (
  idx         integer PRIMARY KEY,
  dev_eui     bigint NOT NULL UNIQUE,
  kind        device_kind NOT NULL,
  quantities  smallint[] NOT NULL,
  -- readings per quantity over the year; spacing = year / slots
  slots       integer NOT NULL,
  phase_s     double precision NOT NULL,
  capacity    integer
);

-- A cheap deterministic "random" number in [0, 1) from two integers.
CREATE FUNCTION bench.u01(a bigint, b bigint) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT ((hashint8(a # (b * 1000003))::bigint & 2147483647)::double precision / 2147483648.0)
$$;

INSERT INTO parking_sites (uid, name, type, purpose, capacity, lat, lon, operator_name, opening_hours)
SELECT format('bench-site-%s', lpad(s::text, 2, '0')),
       format('Parkhaus %s', s),
       CASE WHEN s % 3 = 0 THEN 'ON_STREET' ELSE 'CAR_PARK' END,
       'CAR',
       100 + (s * 37) % 300,
       51.495 + 0.04 * bench.u01(s, 1),
       7.420 + 0.08 * bench.u01(s, 2),
       'Stadt Dortmund (Benchmark)', '24/7'
FROM generate_series(1, 50) AS s;

INSERT INTO buildings (id, name, lat, lon)
VALUES ('bench-b1', 'Verwaltungsgebäude 1', 51.5136, 7.4653),
       ('bench-b2', 'Verwaltungsgebäude 2', 51.5101, 7.4712),
       ('bench-b3', 'Schule am Park', 51.5058, 7.4521);

INSERT INTO rooms (building_id, id, name, floor, usage)
SELECT b, format('%s-r%s', b, r), format('Raum %s', r), (r / 10)::text, 'office'
FROM unnest(ARRAY['bench-b1', 'bench-b2', 'bench-b3']) AS b, generate_series(1, 40) AS r;

-- Device index ranges: 1..2500 bays, 2501..2550 counters, 2551..2670 rooms, 2671..10000 stations.
INSERT INTO bench.plan (idx, dev_eui, kind, quantities, slots, phase_s, capacity)
SELECT i,
       x'70b3d57ed0000000'::bigint + i,
       k.kind,
       k.quantities,
       10100 / cardinality(k.quantities),
       bench.u01(i, 3) * 3000,
       k.capacity
FROM generate_series(1, 10000) AS i
CROSS JOIN LATERAL (
  SELECT CASE WHEN i <= 2500 THEN 'parking_bay'
              WHEN i <= 2550 THEN 'parking_counter'
              WHEN i <= 2670 THEN 'room_climate'
              ELSE 'outdoor_climate' END::device_kind AS kind,
         CASE WHEN i <= 2500 THEN ARRAY[12]::smallint[]
              WHEN i <= 2550 THEN ARRAY[13]::smallint[]
              WHEN i <= 2670 THEN ARRAY[1, 2, 3]::smallint[]
              ELSE ARRAY[1, 2]::smallint[] END AS quantities,
         CASE WHEN i BETWEEN 2501 AND 2550 THEN 100 + ((i - 2500) * 37) % 300 END AS capacity
) AS k;

INSERT INTO devices (dev_eui, name, kind, visibility, lat, lon, location_source, site_id,
                     building_id, room_id, network_server, application)
SELECT p.dev_eui,
       format('Bench %s %s', p.kind, p.idx),
       p.kind,
       CASE WHEN p.kind = 'room_climate' THEN 'private' ELSE 'public' END::visibility,
       CASE WHEN p.idx <= 2550 THEN s.lat + (bench.u01(p.idx, 4) - 0.5) * 0.0015
            WHEN p.idx <= 2670 THEN b.lat + (bench.u01(p.idx, 4) - 0.5) * 0.0004
            ELSE 51.42 + 0.18 * bench.u01(p.idx, 4) END,
       CASE WHEN p.idx <= 2550 THEN s.lon + (bench.u01(p.idx, 5) - 0.5) * 0.0025
            WHEN p.idx <= 2670 THEN b.lon + (bench.u01(p.idx, 5) - 0.5) * 0.0006
            ELSE 7.30 + 0.33 * bench.u01(p.idx, 5) END,
       'registry',
       s.uid,
       b.id,
       CASE WHEN b.id IS NOT NULL THEN format('%s-r%s', b.id, (p.idx - 2551) / 3 + 1) END,
       'chirpstack_v4',
       'bench'
FROM bench.plan p
LEFT JOIN parking_sites s
  ON p.idx <= 2550
 AND s.uid = format('bench-site-%s', lpad((CASE WHEN p.idx <= 2500 THEN (p.idx - 1) % 50 + 1
                                               ELSE p.idx - 2500 END)::text, 2, '0'))
LEFT JOIN buildings b
  ON p.idx BETWEEN 2551 AND 2670
 AND b.id = format('bench-b%s', (p.idx - 2551) % 3 + 1);
