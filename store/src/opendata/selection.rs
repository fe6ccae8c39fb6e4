//! The selection SQL of open-data exports: which devices a dataset selects (CTE `sel`), its
//! groups (CTE `grp`), the aggregated rows, the fingerprint and the sensors/groups table.

use super::{chunked, long_running, AggRow, Selection, SensorRow, INDOOR_KINDS};
use crate::aggregates::BucketWidth;
use crate::{DeviceKind, Result, Store};
use chrono::{DateTime, Utc};

/// The devices of a selection, as CTE `sel`. Parameters: $1 kinds (empty = all), $2 buildings,
/// $3 raw?, $4 indoor kinds, $5 sites (empty = all); the queries' own parameters start at $6.
macro_rules! selection_cte {
    () => {
        "sel AS (
    SELECT d.dev_eui, d.kind, d.lat, d.lon, d.site_id, d.building_id, d.room_id, s.sensor_id
    FROM devices d JOIN open_sensor_ids s USING (dev_eui)
    WHERE (cardinality($1::text[]) = 0 OR d.kind::text = ANY($1::text[]))
      AND CASE WHEN d.building_id IS NULL THEN d.visibility = 'public'
               ELSE d.building_id = ANY($2::text[]) END
      AND NOT ($3 AND (d.building_id IS NOT NULL OR d.kind::text = ANY($4::text[])))
      AND (cardinality($5::text[]) = 0 OR d.site_id = ANY($5::text[]))
)"
    };
}

/// Groups of aggregated datasets (CTE `grp`, after `sel`): a parking site, a building, or the
/// sensor itself; `indoor` cells count distinct rooms (desks count singly).
macro_rules! group_cte {
    () => {
        "grp AS NOT MATERIALIZED (
    SELECT sel.dev_eui,
           CASE WHEN ps.uid IS NOT NULL THEN ps.uid
                WHEN sel.building_id IS NOT NULL THEN sel.building_id
                ELSE sel.sensor_id END AS group_id,
           CASE WHEN ps.uid IS NOT NULL THEN 'parking_site'
                WHEN sel.building_id IS NOT NULL THEN 'building'
                ELSE 'sensor' END AS group_kind,
           CASE WHEN ps.uid IS NOT NULL THEN ps.name
                WHEN sel.building_id IS NOT NULL THEN b.name END AS group_name,
           CASE WHEN ps.uid IS NOT NULL THEN ps.lon
                WHEN sel.building_id IS NOT NULL THEN b.lon
                ELSE sel.lon END AS glon,
           CASE WHEN ps.uid IS NOT NULL THEN ps.lat
                WHEN sel.building_id IS NOT NULL THEN b.lat
                ELSE sel.lat END AS glat,
           (sel.building_id IS NOT NULL OR sel.kind::text = ANY($4::text[])) AS indoor,
           CASE WHEN sel.kind = 'desk_occupancy' OR sel.room_id IS NULL THEN sel.dev_eui::text
                ELSE sel.building_id || '/' || sel.room_id END AS contributor
    FROM sel
    LEFT JOIN parking_sites ps ON ps.uid = sel.site_id
    LEFT JOIN buildings b ON b.id = sel.building_id
)"
    };
}

/// $9 width, $10 day buckets?, $11 time zone, $12 minimum rooms/desks of an indoor cell.
/// Cells in file order: groups by the Hilbert index of their position, ties by id (the file
/// order of the module documentation), then quantity and bucket. The index is computed once per
/// group (CTE `spot`, materialized) and joined to the cells after aggregation:
/// `hilbert_index` costs about 10 µs a call, too much for every reading or cell. `grp` is
/// referenced twice, so it is `NOT MATERIALIZED`: the aggregation keeps the plan it had with
/// one reference.
const AGG_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    ", ",
    group_cte!(),
    ",
spot AS MATERIALIZED (
    SELECT group_id, glon, glat, hilbert_index(glon, glat) AS h
    FROM (SELECT DISTINCT group_id, glon, glat FROM grp
          WHERE glat IS NOT NULL AND glon IS NOT NULL) p
)
SELECT c.* FROM (
    SELECT CASE WHEN $10 THEN time_bucket($9::interval, r.time, $11)
                ELSE time_bucket($9::interval, r.time) END AS bucket,
           g.group_id, r.quantity, count(*) AS count, avg(r.value) AS avg, min(r.value) AS min,
           max(r.value) AS max, g.glon AS lon, g.glat AS lat
    FROM grp g JOIN readings r ON r.dev_eui = g.dev_eui
    WHERE r.quantity = ANY($6) AND r.time >= $7 AND r.time < $8
      AND g.glat IS NOT NULL AND g.glon IS NOT NULL
    GROUP BY 1, g.group_id, r.quantity, g.glon, g.glat
    HAVING NOT bool_or(g.indoor) OR count(DISTINCT g.contributor) >= $12
) c
JOIN spot s ON s.group_id = c.group_id AND s.glon = c.lon AND s.glat = c.lat
ORDER BY s.h, c.group_id COLLATE \"C\", array_position($6::int2[], c.quantity), c.bucket"
);

/// Count and two hash sums of the selected readings (value, and time, each keyed by device):
/// changes when late data arrive. Sums of integers do not depend on the order PostgreSQL adds
/// rows in (a parallel float sum differs in its last digits from run to run, which would look
/// like late data); hashing float8 values is far cheaper than the numeric sums used before
/// (`h1:` marks the scheme: partitions fingerprinted the old way are re-exported once).
const FINGERPRINT_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT count(*)::bigint,
       'h1:' || count(*)::text || ':'
         || coalesce(sum(hashfloat8extended(r.value, r.dev_eui)), 0)::text || ':'
         || coalesce(sum(hashfloat8extended(date_part('epoch', r.time), r.dev_eui # r.quantity)), 0)::text
FROM sel JOIN readings r ON r.dev_eui = sel.dev_eui
WHERE r.quantity = ANY($6) AND r.time >= $7 AND r.time < $8"
);

/// The raw dataset's sensors table, in file order (module documentation).
const RAW_SENSORS_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    "
SELECT sel.sensor_id AS id, sel.kind::text AS kind, NULL::text AS name, sel.lon, sel.lat
FROM sel
WHERE EXISTS (SELECT 1 FROM latest_readings l WHERE l.dev_eui = sel.dev_eui AND l.quantity = ANY($6))
ORDER BY hilbert_index(sel.lon, sel.lat), sel.sensor_id COLLATE \"C\""
);

/// The aggregated dataset's groups table, in file order (module documentation).
const GROUPS_SQL: &str = concat!(
    "WITH ",
    selection_cte!(),
    ", ",
    group_cte!(),
    "
SELECT * FROM (
    SELECT DISTINCT ON (g.group_id) g.group_id AS id, g.group_kind AS kind, g.group_name AS name,
           g.glon AS lon, g.glat AS lat
    FROM grp g
    WHERE EXISTS (SELECT 1 FROM latest_readings l WHERE l.dev_eui = g.dev_eui AND l.quantity = ANY($6))
    ORDER BY g.group_id
) t
ORDER BY hilbert_index(t.lon, t.lat), t.id COLLATE \"C\""
);

/// A selection's bind values: kinds, buildings, raw?, indoor kinds, sites, quantities.
pub(super) type Binds = (
    Vec<&'static str>,
    Vec<String>,
    bool,
    Vec<&'static str>,
    Vec<String>,
    Vec<i16>,
);

/// Binds a selection as `$1`–`$6`.
pub(super) fn bind_selection<O>(
    q: sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    binds: Binds,
) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    let (kinds, buildings, raw, indoor, sites, quantities) = binds;
    q.bind(kinds)
        .bind(buildings)
        .bind(raw)
        .bind(indoor)
        .bind(sites)
        .bind(quantities)
}

fn kind_names(kinds: &[DeviceKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_str()).collect()
}

impl Selection {
    /// The selection's bind values, in parameter order ($1–$5, then the quantities as $6).
    pub(super) fn binds(&self) -> Binds {
        (
            kind_names(&self.kinds),
            self.buildings.clone(),
            self.raw,
            kind_names(&INDOOR_KINDS),
            self.sites.clone(),
            // By name: within a sensor or group the files are sorted by the quantity's name,
            // so the queries order by the position in this array.
            {
                let mut qs = self.quantities.clone();
                qs.sort_by_key(|q| q.name());
                qs.iter().map(|q| q.id()).collect()
            },
        )
    }
}

impl Store {
    /// Gives every device without one its random `sensor_id`; returns how many were added.
    pub async fn assign_sensor_ids(&self) -> Result<u64> {
        Ok(sqlx::query(
            "INSERT INTO open_sensor_ids (dev_eui) SELECT dev_eui FROM devices
             ON CONFLICT (dev_eui) DO NOTHING",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// The cells of an aggregated dataset in `[from, to)`, in file order (groups by position,
    /// then quantity and bucket; see the module documentation); indoor cells resting on fewer than `min_group` rooms/desks are left out.
    #[allow(clippy::too_many_arguments)]
    pub fn export_aggregated(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        width: BucketWidth,
        tz: &str,
        min_group: u32,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<AggRow>>> {
        let binds = sel.binds();
        let tz = tz.to_string();
        let min_group = i64::from(min_group);
        chunked(self.pool.clone(), move |conn| {
            bind_selection(sqlx::query_as::<_, AggRow>(AGG_SQL), binds)
                .bind(from)
                .bind(to)
                .bind(width.as_interval())
                .bind(width == BucketWidth::Day)
                .bind(tz)
                .bind(min_group)
                .fetch(conn)
        })
    }

    /// `(rows, fingerprint)` of the selected readings in `[from, to)`.
    pub async fn export_fingerprint(
        &self,
        sel: &Selection,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(i64, String)> {
        let mut tx = long_running(&self.pool).await?;
        fingerprint_on(&mut tx, sel.binds(), from, to).await
    }

    /// The sensors (raw) or groups (aggregated) of a dataset that have data.
    pub async fn export_sensors(&self, sel: &Selection) -> Result<Vec<SensorRow>> {
        let sql = if sel.raw { RAW_SENSORS_SQL } else { GROUPS_SQL };
        Ok(bind_selection(sqlx::query_as(sql), sel.binds())
            .fetch_all(&self.pool)
            .await?)
    }
}

/// The fingerprint query on `conn` (inside a transaction that allows long statements; its
/// settings are changed with `SET LOCAL`).
pub(super) async fn fingerprint_on(
    conn: &mut sqlx::PgConnection,
    binds: Binds,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(i64, String)> {
    // Serial: it runs beside the export's COPY, and parallel workers on a small machine only
    // take the cores the COPY and the file encoder need (14 s parallel vs 10 s serial for 10 M
    // rows in the benchmark city, with more CPU time in total).
    sqlx::Executor::execute(&mut *conn, "SET LOCAL max_parallel_workers_per_gather = 0").await?;
    Ok(bind_selection(sqlx::query_as(FINGERPRINT_SQL), binds)
        .bind(from)
        .bind(to)
        .fetch_one(conn)
        .await?)
}
