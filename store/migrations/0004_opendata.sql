-- Open-data exports: opaque sensor ids, export runs and the files they published.

-- The `sensor_id` of a device in open data: random (from gen_random_uuid), assigned once, so it
-- is stable across exports and cannot be turned back into the DevEUI.
CREATE TABLE open_sensor_ids (
  dev_eui    bigint PRIMARY KEY,
  sensor_id  text NOT NULL UNIQUE DEFAULT replace(gen_random_uuid()::text, '-', ''),
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One export of one dataset over a window (scheduled, caught up, late data, or by hand).
CREATE TABLE export_runs (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset      text NOT NULL,
  trigger      text NOT NULL CHECK (trigger IN ('schedule', 'catch_up', 'late_data', 'manual')),
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz,
  status       text NOT NULL CHECK (status IN ('running', 'ok', 'empty', 'failed')),
  partitions   integer NOT NULL DEFAULT 0,
  rows         bigint NOT NULL DEFAULT 0,
  bytes        bigint NOT NULL DEFAULT 0,
  error        text
);
CREATE INDEX export_runs_dataset ON export_runs (dataset, started_at DESC);

-- What is published now: one row per dataset, partition and format (a re-export replaces it).
-- `fingerprint` summarises the source rows, so late data that changes a partition is noticed.
CREATE TABLE export_files (
  dataset      text NOT NULL,
  partition    text NOT NULL,
  format       text NOT NULL,
  path         text NOT NULL,
  rows         bigint NOT NULL,
  bytes        bigint NOT NULL,
  sha256       text NOT NULL,
  modified     timestamptz NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  PRIMARY KEY (dataset, partition, format)
);
-- File downloads look their ETag (the SHA-256) up by path.
CREATE INDEX export_files_path ON export_files (path);

-- Per dataset and partition: the source fingerprint at the last export (also for partitions
-- that were empty, which have no files).
CREATE TABLE export_partitions (
  dataset      text NOT NULL,
  partition    text NOT NULL,
  window_start timestamptz NOT NULL,
  window_end   timestamptz NOT NULL,
  fingerprint  text NOT NULL,
  rows         bigint NOT NULL,
  exported_at  timestamptz NOT NULL,
  PRIMARY KEY (dataset, partition)
);
