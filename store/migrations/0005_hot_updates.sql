-- Room for HOT updates in the two tables every ingest batch updates in place: each batch moves
-- `latest_readings` forward and the `last_seen` of its devices. With full pages every such
-- update wrote a new tuple on another page plus an entry in every index; with free space on
-- the page (and no indexed column changed) PostgreSQL updates in place and skips the indexes.
-- Measured by scripts/bench: see bench/RESULTS.md. Applies to pages written from now on.
ALTER TABLE latest_readings SET (fillfactor = 50);
ALTER TABLE devices SET (fillfactor = 70);
