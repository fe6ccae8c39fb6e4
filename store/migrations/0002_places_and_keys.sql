-- Places (parking sites, buildings, rooms) and API keys, for the city API.

-- A parking site in the ParkAPI v3 sense (static data; realtime values are computed from devices).
CREATE TABLE parking_sites (
  uid                     text PRIMARY KEY CHECK (length(uid) BETWEEN 1 AND 256),
  name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
  -- ParkAPI v3 ParkingSiteType: CAR_PARK, ON_STREET, UNDERGROUND, OFF_STREET_PARKING_GROUND, …
  type                    text NOT NULL,
  -- ParkAPI v3 purpose: CAR, BIKE, MOTORCYCLE, ITEM
  purpose                 text NOT NULL DEFAULT 'CAR',
  capacity                integer NOT NULL CHECK (capacity >= 0),
  lat                     double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
  lon                     double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
  -- Optional outline as a GeoJSON geometry (Polygon or MultiPolygon).
  geometry                jsonb,
  address                 text,
  operator_name           text,
  -- OSM opening_hours syntax.
  opening_hours           text,
  static_data_updated_at  timestamptz NOT NULL DEFAULT now(),
  created_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buildings (
  id          text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
  name        text NOT NULL,
  lat         double precision CHECK (lat BETWEEN -90 AND 90),
  lon         double precision CHECK (lon BETWEEN -180 AND 180),
  address     text,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((lat IS NULL) = (lon IS NULL))
);

CREATE TABLE rooms (
  building_id  text NOT NULL REFERENCES buildings (id) ON DELETE CASCADE,
  id           text NOT NULL CHECK (length(id) BETWEEN 1 AND 128),
  name         text NOT NULL,
  floor        text,
  -- e.g. office, meeting, classroom, hall
  usage        text,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (building_id, id)
);

-- Devices point at their site or room by id; a room id is unique within its building.
ALTER TABLE devices ADD COLUMN building_id text;
CREATE INDEX devices_site ON devices (site_id) WHERE site_id IS NOT NULL;
CREATE INDEX devices_building ON devices (building_id) WHERE building_id IS NOT NULL;

-- API keys: only a SHA-256 of the secret is stored. `prefix` (the first characters of the
-- key, not secret on their own) finds the row; the hash is then compared in constant time.
CREATE TABLE api_keys (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  prefix       text NOT NULL UNIQUE,
  hash         bytea NOT NULL,
  scope        text NOT NULL CHECK (scope IN ('admin', 'building')),
  building_id  text REFERENCES buildings (id) ON DELETE CASCADE,
  label        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz,
  CHECK ((scope = 'building') = (building_id IS NOT NULL))
);
