-- The spatial order of the open-data files: sensors (raw) and groups (aggregated) are written in
-- the order of `hilbert_index` of their position, ties by id, so that each Parquet row group
-- covers a compact area and readers can skip row groups by bounding box (GeoParquet's
-- distribution best practice).
--
-- `hilbert_index(lon, lat)`: the distance along a Hilbert curve of order 24 laid over the whole
-- WGS84 range (lon -180..180 and lat -90..90 each cut into 2^24 cells, about 1.5 m × 1.2 m at
-- 50° N), from 0 at (-180, -90) to 4^24 - 1 at (180, -90). Points near each other on the curve
-- are near each other on the map. The grid does not depend on the data, so a sensor keeps its
-- index from file to file. Values outside the range are clamped to its edge; NULL in, NULL out.
-- About 10 µs a call: call it once per sensor or group, never once per reading.
CREATE FUNCTION hilbert_index(lon float8, lat float8) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  n constant bigint := 16777216; -- 2^24 cells per axis
  x bigint := least(greatest(floor((lon + 180) / 360 * n), 0), n - 1);
  y bigint := least(greatest(floor((lat + 90) / 180 * n), 0), n - 1);
  s bigint := n / 2;
  rx bigint;
  ry bigint;
  t bigint;
  d bigint := 0;
BEGIN
  -- xy2d of the Hilbert curve: per level, the quadrant's offset, then rotate the sub-square.
  WHILE s > 0 LOOP
    rx := CASE WHEN x & s > 0 THEN 1 ELSE 0 END;
    ry := CASE WHEN y & s > 0 THEN 1 ELSE 0 END;
    d := d + s * s * ((3 * rx) # ry);
    IF ry = 0 THEN
      IF rx = 1 THEN
        x := n - 1 - x;
        y := n - 1 - y;
      END IF;
      t := x;
      x := y;
      y := t;
    END IF;
    s := s / 2;
  END LOOP;
  RETURN d;
END
$$;
