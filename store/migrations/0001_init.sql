-- Stadtpuls schema, version 1. Applied migrations are never edited; add a new file instead.
-- Works on the Apache edition of TimescaleDB: hypertables, time_bucket and drop_chunks only.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TYPE device_kind AS ENUM (
  'parking_bay', 'parking_counter', 'room_climate', 'desk_occupancy',
  'people_counter', 'outdoor_climate', 'air_quality', 'other'
);
CREATE TYPE visibility AS ENUM ('public', 'private');

-- Canonical quantities; ids mirror gateways/src/quantity.rs and never change.
CREATE TABLE quantities (
  id          smallint PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  unit        text NOT NULL,
  description text NOT NULL
);
INSERT INTO quantities (id, name, unit, description) VALUES
  (1, 'temperature', '°C', 'Air temperature'),
  (2, 'humidity', '%RH', 'Relative humidity'),
  (3, 'co2', 'ppm', 'Carbon dioxide concentration'),
  (4, 'pressure', 'hPa', 'Barometric pressure'),
  (5, 'pm2_5', 'µg/m³', 'Particulate matter ≤ 2.5 µm'),
  (6, 'pm10', 'µg/m³', 'Particulate matter ≤ 10 µm'),
  (7, 'tvoc', 'ppb', 'Total volatile organic compounds'),
  (8, 'illuminance', 'lx', 'Illuminance'),
  (9, 'noise', 'dB(A)', 'A-weighted sound level'),
  (10, 'battery_voltage', 'V', 'Battery voltage'),
  (11, 'battery', '%', 'Battery level'),
  (12, 'occupied', '1', 'Occupancy of a parking bay or desk (0 free, 1 occupied)'),
  (13, 'free_spaces', '1', 'Free parking spaces reported by a counter'),
  (14, 'people_in', '1', 'People counted entering (cumulative as reported)'),
  (15, 'people_out', '1', 'People counted leaving (cumulative as reported)'),
  (16, 'hcho', 'mg/m³', 'Formaldehyde concentration'),
  (17, 'distance', 'm', 'Distance (e.g. ultrasonic level sensors)'),
  (18, 'wind_speed', 'm/s', 'Wind speed'),
  (19, 'wind_direction', '°', 'Wind direction (from, clockwise from north)'),
  (20, 'rainfall', 'mm', 'Precipitation'),
  (21, 'soil_moisture', '%', 'Volumetric soil moisture'),
  (22, 'motion', '1', 'Motion / presence detected (0/1 or count)');

-- The device registry. dev_eui is the 64-bit DevEUI stored bit-for-bit as bigint.
CREATE TABLE devices (
  dev_eui          bigint PRIMARY KEY,
  name             text,
  kind             device_kind NOT NULL DEFAULT 'other',
  codec            text,
  visibility       visibility NOT NULL DEFAULT 'private',
  lat              double precision CHECK (lat BETWEEN -90 AND 90),
  lon              double precision CHECK (lon BETWEEN -180 AND 180),
  -- 'registry' (imported or set by an operator: never moved by network events) or 'network'
  location_source  text,
  site_id          text,
  room_id          text,
  network_server   text,
  application      text,
  auto_registered  boolean NOT NULL DEFAULT false,
  first_seen       timestamptz,
  last_seen        timestamptz,
  battery_percent  double precision,
  battery_voltage  double precision,
  battery_at       timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CHECK ((lat IS NULL) = (lon IS NULL))
);
CREATE INDEX devices_updated_at ON devices (updated_at);

-- Narrow readings: one row per device, quantity and observation time.
CREATE TABLE readings (
  dev_eui   bigint NOT NULL,
  quantity  smallint NOT NULL,
  time      timestamptz NOT NULL,
  value     double precision NOT NULL
);
SELECT create_hypertable('readings', 'time', chunk_time_interval => interval '7 days',
                         create_default_indexes => false);
-- Also the idempotency guard of reprocessing: one value per (device, quantity, time).
CREATE UNIQUE INDEX readings_device_quantity_time ON readings (dev_eui, quantity, time DESC);

-- Newest value per device and quantity, kept by the writer in the same transaction.
CREATE TABLE latest_readings (
  dev_eui   bigint NOT NULL,
  quantity  smallint NOT NULL,
  time      timestamptz NOT NULL,
  value     double precision NOT NULL,
  PRIMARY KEY (dev_eui, quantity)
);

-- Raw uplinks, keyed by the network server's dedup key. The key includes observed_at
-- because a hypertable's unique indexes must contain its time column; both come from the
-- message itself, so a redelivery of the same message hits the same key.
CREATE TABLE uplinks (
  dedup_key       text NOT NULL,
  observed_at     timestamptz NOT NULL,
  received_at     timestamptz NOT NULL,
  ingested_at     timestamptz NOT NULL,
  dev_eui         bigint NOT NULL,
  network_server  text NOT NULL,
  application     text,
  topic           text NOT NULL,
  f_cnt           bigint,
  f_port          smallint,
  payload         bytea NOT NULL,
  decoded         jsonb,
  radio           jsonb NOT NULL,
  device_location jsonb,
  unmapped        text[] NOT NULL DEFAULT '{}',
  simulated       boolean NOT NULL DEFAULT false,
  PRIMARY KEY (dedup_key, observed_at)
);
SELECT create_hypertable('uplinks', 'observed_at', chunk_time_interval => interval '1 day',
                         create_default_indexes => false);
CREATE INDEX uplinks_device_time ON uplinks (dev_eui, observed_at DESC);

-- Messages that could not be used, kept for inspection and replay.
CREATE TABLE dead_letters (
  id            bigint GENERATED ALWAYS AS IDENTITY,
  received_at   timestamptz NOT NULL,
  topic         text NOT NULL,
  reason        text NOT NULL,
  detail        text NOT NULL,
  payload       bytea NOT NULL,
  payload_size  integer NOT NULL,
  replayed_at   timestamptz
);
SELECT create_hypertable('dead_letters', 'received_at', chunk_time_interval => interval '7 days');
CREATE INDEX dead_letters_reason ON dead_letters (reason, received_at DESC);
