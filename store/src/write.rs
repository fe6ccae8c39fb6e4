//! The ingest write path: one transaction per batch, idempotent on the uplink dedup key.

use crate::StoreError;
use crate::{Result, Store};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::Row;
use stadtpuls_gateways::{
    DevEui, DeviceEvent, GatewayRx, Location, Quantity, Reading, TxInfo, Uplink,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A decoded uplink ready to be stored, with the readings mapped from it.
#[derive(Clone, Debug)]
pub struct UplinkRecord {
    pub uplink: Uplink,
    pub topic: String,
    pub ingested_at: DateTime<Utc>,
    pub readings: Vec<Reading>,
    /// Decoded keys that mapped to no quantity (kept in the raw uplink, counted).
    pub unmapped: Vec<String>,
}

/// A message that could not be used.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub received_at: DateTime<Utc>,
    pub topic: String,
    /// Stable machine-readable reason (e.g. `invalid_json`).
    pub reason: String,
    /// Human-readable detail.
    pub detail: String,
    /// The payload, possibly truncated to a bounded size.
    pub payload: Vec<u8>,
    /// The original payload size in bytes.
    pub payload_size: usize,
}

/// Everything one transaction writes.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub uplinks: Vec<UplinkRecord>,
    pub events: Vec<DeviceEvent>,
    pub dead_letters: Vec<DeadLetter>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.uplinks.is_empty() && self.events.is_empty() && self.dead_letters.is_empty()
    }
}

/// What a committed batch did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchOutcome {
    pub new_uplinks: usize,
    pub duplicate_uplinks: usize,
    pub readings: usize,
    pub registered_devices: usize,
    pub dead_letters: usize,
    /// Newly stored readings (of new uplinks), for the in-memory "latest" view and streams.
    pub stored: Vec<(DevEui, Reading)>,
}

/// PostgreSQL keeps microseconds; keys read back with RETURNING must compare equal to ours.
fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Per-device facts gathered from one batch, for the registry upsert.
#[derive(Default)]
struct DeviceSeen {
    name: Option<String>,
    network_server: Option<&'static str>,
    application: Option<String>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    battery_percent: Option<(DateTime<Utc>, f64)>,
    battery_voltage: Option<(DateTime<Utc>, f64)>,
    location: Option<(DateTime<Utc>, f64, f64)>,
}

fn newer<T>(slot: &mut Option<(DateTime<Utc>, T)>, at: DateTime<Utc>, v: T) {
    if slot.as_ref().is_none_or(|(t, _)| *t <= at) {
        *slot = Some((at, v));
    }
}

impl DeviceSeen {
    fn saw(&mut self, at: DateTime<Utc>) {
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
    }
}

fn collect_devices(batch: &Batch) -> BTreeMap<DevEui, DeviceSeen> {
    let mut seen: BTreeMap<DevEui, DeviceSeen> = BTreeMap::new();
    for r in &batch.uplinks {
        let u = &r.uplink;
        let d = seen.entry(u.dev_eui).or_default();
        d.saw(u.observed_at);
        d.name = d.name.take().or_else(|| u.device_name.clone());
        d.network_server = Some(u.network_server.as_str());
        if u.application.is_some() {
            d.application = u.application.clone();
        }
        for reading in &r.readings {
            match reading.quantity {
                Quantity::Battery => {
                    newer(&mut d.battery_percent, reading.observed_at, reading.value)
                }
                Quantity::BatteryVoltage => {
                    newer(&mut d.battery_voltage, reading.observed_at, reading.value)
                }
                _ => {}
            }
        }
        if let Some(loc) = &u.device_location {
            let (at, lat, lon) = (u.observed_at, loc.lat(), loc.lon());
            if d.location.is_none_or(|(t, _, _)| t <= at) {
                d.location = Some((at, lat, lon));
            }
        }
    }
    for e in &batch.events {
        match e {
            DeviceEvent::Status {
                dev_eui,
                battery_percent,
                at,
                ..
            } => {
                let d = seen.entry(*dev_eui).or_default();
                if let Some(at) = at {
                    d.saw(*at);
                }
                if let (Some(p), Some(at)) = (battery_percent, at) {
                    newer(&mut d.battery_percent, *at, *p);
                }
            }
            DeviceEvent::Location {
                dev_eui,
                location,
                at,
            } => {
                let d = seen.entry(*dev_eui).or_default();
                let at = at.unwrap_or(DateTime::<Utc>::MIN_UTC);
                if d.location.is_none_or(|(t, _, _)| t <= at) {
                    d.location = Some((at, location.lat(), location.lon()));
                }
            }
        }
    }
    seen
}

/// The start of the uplinks insert; [`FROM_UPLINK_COLUMNS`] supplies the rows.
const INSERT_UPLINKS: &str =
    "INSERT INTO uplinks (dedup_key, observed_at, received_at, ingested_at, dev_eui, network_server,
                          application, topic, f_cnt, f_port, payload, decoded, radio,
                          device_location, unmapped, simulated)";

/// The rows of the uplinks insert, from the sixteen arrays that [`UplinkColumns::bind`] binds.
const FROM_UPLINK_COLUMNS: &str = "SELECT k, o, r, i, e, ns, a, t, fc, fp, p, d, ra, l,
            ARRAY(SELECT jsonb_array_elements_text(u)), s
     FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::bigint[],
                 $6::text[], $7::text[], $8::text[], $9::bigint[], $10::smallint[], $11::bytea[],
                 $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::bool[])
          AS x(k, o, r, i, e, ns, a, t, fc, fp, p, d, ra, l, u, s)";

/// The `radio` column of an uplink: its gateways and transmission settings.
#[derive(serde::Serialize)]
struct Radio<'a> {
    gateways: &'a [GatewayRx],
    tx: &'a TxInfo,
}

/// One array per column of `uplinks`, borrowed from the batch: payloads and decoded objects
/// are serialized straight into the bind buffer, never copied per uplink.
struct UplinkColumns<'a> {
    key: Vec<&'a str>,
    observed: Vec<DateTime<Utc>>,
    received: Vec<DateTime<Utc>>,
    ingested: Vec<DateTime<Utc>>,
    eui: Vec<i64>,
    network_server: Vec<&'static str>,
    application: Vec<Option<&'a str>>,
    topic: Vec<&'a str>,
    f_cnt: Vec<Option<i64>>,
    f_port: Vec<Option<i16>>,
    payload: Vec<&'a [u8]>,
    decoded: Vec<Option<&'a serde_json::Value>>,
    radio: Vec<Json<Radio<'a>>>,
    location: Vec<Option<Json<&'a Location>>>,
    // Postgres text[] columns cannot be bound as a 2-D array of unequal rows, so the unmapped
    // keys travel as one JSON array per row.
    unmapped: Vec<Json<&'a [String]>>,
    simulated: Vec<bool>,
}

impl<'a> UplinkColumns<'a> {
    fn of(records: &[&'a UplinkRecord]) -> Self {
        let u = || records.iter().map(|r| &r.uplink);
        UplinkColumns {
            key: u().map(|u| u.dedup_key.as_str()).collect(),
            observed: u().map(|u| us(u.observed_at)).collect(),
            received: u().map(|u| u.received_at).collect(),
            ingested: records.iter().map(|r| r.ingested_at).collect(),
            eui: u().map(|u| u.dev_eui.as_i64()).collect(),
            network_server: u().map(|u| u.network_server.as_str()).collect(),
            application: u().map(|u| u.application.as_deref()).collect(),
            topic: records.iter().map(|r| r.topic.as_str()).collect(),
            f_cnt: u().map(|u| u.f_cnt.map(i64::from)).collect(),
            f_port: u().map(|u| u.f_port.map(i16::from)).collect(),
            payload: u().map(|u| u.payload.as_slice()).collect(),
            decoded: u().map(|u| u.decoded.as_ref()).collect(),
            radio: u()
                .map(|u| {
                    Json(Radio {
                        gateways: &u.gateways,
                        tx: &u.tx,
                    })
                })
                .collect(),
            location: u().map(|u| u.device_location.as_ref().map(Json)).collect(),
            unmapped: records
                .iter()
                .map(|r| Json(r.unmapped.as_slice()))
                .collect(),
            simulated: u().map(|u| u.simulated).collect(),
        }
    }

    fn bind<'q>(&'q self, q: PgQuery<'q>) -> PgQuery<'q> {
        q.bind(&self.key)
            .bind(&self.observed)
            .bind(&self.received)
            .bind(&self.ingested)
            .bind(&self.eui)
            .bind(&self.network_server)
            .bind(&self.application)
            .bind(&self.topic)
            .bind(&self.f_cnt)
            .bind(&self.f_port)
            .bind(&self.payload)
            .bind(&self.decoded)
            .bind(&self.radio)
            .bind(&self.location)
            .bind(&self.unmapped)
            .bind(&self.simulated)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The readings of `records`, in order, each with its device.
fn readings_of<'a>(records: impl Iterator<Item = &'a UplinkRecord>) -> Vec<(DevEui, Reading)> {
    records
        .flat_map(|r| {
            r.readings
                .iter()
                .map(move |reading| (r.uplink.dev_eui, *reading))
        })
        .collect()
}

/// What an insert does with a row whose key the table already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflicts {
    /// Fails with a unique violation (cheaper: no probe of the index before each insert).
    Fail,
    /// Skips the row (`ON CONFLICT DO NOTHING`).
    Skip,
}

impl Store {
    /// Writes one batch in one transaction: auto-registers unknown devices, inserts raw uplinks
    /// (duplicates by dedup key are skipped), the readings of the new uplinks, keeps
    /// `latest_readings`, applies status/location events and stores dead letters.
    /// Writing the same batch twice stores everything once.
    pub async fn write_batch(&self, batch: &Batch) -> Result<BatchOutcome> {
        let mut out = BatchOutcome::default();
        if batch.is_empty() {
            return Ok(out);
        }
        let mut tx = self.pool.begin().await?;

        // 1. Registry: auto-register unknown devices (private, no location), update last seen.
        let devices = collect_devices(batch);
        if !devices.is_empty() {
            let n = devices.len();
            let (mut eui, mut name, mut ns, mut app) =
                (Vec::with_capacity(n), vec![], vec![], vec![]);
            let (mut first, mut last) = (vec![], vec![]);
            let (mut bp, mut bv, mut bat) = (vec![], vec![], vec![]);
            let (mut lat, mut lon) = (vec![], vec![]);
            for (e, d) in &devices {
                eui.push(e.as_i64());
                name.push(d.name.clone());
                ns.push(d.network_server);
                app.push(d.application.clone());
                first.push(d.first);
                last.push(d.last);
                bp.push(d.battery_percent.map(|b| b.1));
                bv.push(d.battery_voltage.map(|b| b.1));
                bat.push(
                    d.battery_percent
                        .map(|b| b.0)
                        .max(d.battery_voltage.map(|b| b.0)),
                );
                lat.push(d.location.map(|l| l.1));
                lon.push(d.location.map(|l| l.2));
            }
            let inserted: Vec<bool> = sqlx::query_scalar(
                "INSERT INTO devices AS d (dev_eui, name, network_server, application, auto_registered,
                                           first_seen, last_seen, battery_percent, battery_voltage, battery_at,
                                           lat, lon, location_source)
                 SELECT e, n, ns, app, true, fs, ls, bp, bv, ba, la, lo,
                        CASE WHEN la IS NULL THEN NULL ELSE 'network' END
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                             $6::timestamptz[], $7::float8[], $8::float8[], $9::timestamptz[],
                             $10::float8[], $11::float8[])
                      AS t(e, n, ns, app, fs, ls, bp, bv, ba, la, lo)
                 ON CONFLICT (dev_eui) DO UPDATE SET
                   network_server = COALESCE(EXCLUDED.network_server, d.network_server),
                   application = COALESCE(EXCLUDED.application, d.application),
                   first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
                   last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen),
                   battery_percent = CASE WHEN EXCLUDED.battery_percent IS NOT NULL
                        AND (d.battery_at IS NULL OR EXCLUDED.battery_at >= d.battery_at)
                        THEN EXCLUDED.battery_percent ELSE d.battery_percent END,
                   battery_voltage = CASE WHEN EXCLUDED.battery_voltage IS NOT NULL
                        AND (d.battery_at IS NULL OR EXCLUDED.battery_at >= d.battery_at)
                        THEN EXCLUDED.battery_voltage ELSE d.battery_voltage END,
                   battery_at = GREATEST(d.battery_at, EXCLUDED.battery_at),
                   lat = CASE WHEN EXCLUDED.lat IS NOT NULL AND d.location_source IS DISTINCT FROM 'registry'
                         THEN EXCLUDED.lat ELSE d.lat END,
                   lon = CASE WHEN EXCLUDED.lat IS NOT NULL AND d.location_source IS DISTINCT FROM 'registry'
                         THEN EXCLUDED.lon ELSE d.lon END,
                   location_source = CASE WHEN EXCLUDED.lat IS NOT NULL AND d.location_source IS DISTINCT FROM 'registry'
                         THEN 'network' ELSE d.location_source END,
                   -- A moved device is a registry change (geo indexes rebuild on updated_at).
                   updated_at = CASE WHEN EXCLUDED.lat IS NOT NULL AND d.location_source IS DISTINCT FROM 'registry'
                         AND (d.lat IS DISTINCT FROM EXCLUDED.lat OR d.lon IS DISTINCT FROM EXCLUDED.lon)
                         THEN now() ELSE d.updated_at END
                 RETURNING (xmax = 0)",
            )
            .bind(&eui)
            .bind(&name)
            .bind(&ns)
            .bind(&app)
            .bind(&first)
            .bind(&last)
            .bind(&bp)
            .bind(&bv)
            .bind(&bat)
            .bind(&lat)
            .bind(&lon)
            .fetch_all(&mut *tx)
            .await?;
            out.registered_devices = inserted.iter().filter(|i| **i).count();
        }

        // 2. Raw uplinks; the dedup key decides which ones are new.
        if !batch.uplinks.is_empty() {
            let n = batch.uplinks.len();
            // A batch may itself contain the same uplink twice (redelivery inside one batch):
            // the first one counts.
            let mut in_batch = HashSet::with_capacity(n);
            let unique: Vec<&UplinkRecord> = (batch.uplinks.iter())
                .filter(|r| {
                    in_batch.insert((r.uplink.dedup_key.as_str(), us(r.uplink.observed_at)))
                })
                .collect();
            let cols = UplinkColumns::of(&unique);

            // 2a. The usual batch holds no uplink and no reading the table already has. Its rows
            // go in without ON CONFLICT, which probes each unique index once more per row
            // before inserting (+50 % on the readings insert, measured). If anything is there
            // already (a redelivery after a crash, two network servers reporting one
            // observation), the unique violation rolls the attempt back to the savepoint and
            // 2b does the conflict-aware insert.
            sqlx::query("SAVEPOINT fast_insert")
                .execute(&mut *tx)
                .await?;
            let fast = async {
                cols.bind(sqlx::query(&format!(
                    "{INSERT_UPLINKS} {FROM_UPLINK_COLUMNS}"
                )))
                .execute(&mut *tx)
                .await?;
                let stored = readings_of(unique.iter().copied());
                let n = insert_readings(&mut tx, &stored, Conflicts::Fail).await?;
                Ok::<_, StoreError>((stored, n))
            }
            .await;
            let fresh_uplinks = match fast {
                Ok((stored, n)) => {
                    sqlx::query("RELEASE SAVEPOINT fast_insert")
                        .execute(&mut *tx)
                        .await?;
                    out.stored = stored;
                    out.readings = n;
                    unique.len()
                }
                Err(StoreError::Database(sqlx::Error::Database(db)))
                    if db.is_unique_violation() =>
                {
                    sqlx::query("ROLLBACK TO SAVEPOINT fast_insert")
                        .execute(&mut *tx)
                        .await?;
                    // 2b. Only the uplinks the table did not have yet, and their readings.
                    let new_keys: Vec<(String, DateTime<Utc>)> = cols
                        .bind(sqlx::query(&format!(
                            "{INSERT_UPLINKS} {FROM_UPLINK_COLUMNS}
                             ON CONFLICT (dedup_key, observed_at) DO NOTHING
                             RETURNING dedup_key, observed_at"
                        )))
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                        .collect::<Result<_, sqlx::Error>>()?;
                    let fresh: HashSet<(&str, DateTime<Utc>)> =
                        new_keys.iter().map(|(k, t)| (k.as_str(), *t)).collect();
                    out.stored = readings_of(unique.iter().copied().filter(|r| {
                        fresh.contains(&(r.uplink.dedup_key.as_str(), us(r.uplink.observed_at)))
                    }));
                    out.readings = insert_readings(&mut tx, &out.stored, Conflicts::Skip).await?;
                    new_keys.len()
                }
                Err(e) => return Err(e),
            };
            out.new_uplinks = fresh_uplinks;
            out.duplicate_uplinks = n - fresh_uplinks;

            // 3. The latest values and the live feed, from the readings of new uplinks only.
            if !out.stored.is_empty() {
                upsert_latest(&mut tx, &out.stored).await?;
                crate::live::notify(&mut tx, &out.stored).await?;
            }
        }

        // 4. Status and location events of devices (registry already upserted above).
        let mains_powered: Vec<i64> = batch
            .events
            .iter()
            .filter_map(|e| match e {
                DeviceEvent::Status {
                    dev_eui,
                    battery_percent: None,
                    external_power: true,
                    ..
                } => Some(dev_eui.as_i64()),
                _ => None,
            })
            .collect();
        if !mains_powered.is_empty() {
            // Mains-powered devices report no battery level: clear a stale one.
            sqlx::query("UPDATE devices SET battery_percent = NULL WHERE dev_eui = ANY($1)")
                .bind(&mains_powered)
                .execute(&mut *tx)
                .await?;
        }

        // 5. Dead letters.
        if !batch.dead_letters.is_empty() {
            let d = &batch.dead_letters;
            let at: Vec<_> = d.iter().map(|x| x.received_at).collect();
            let topic: Vec<_> = d.iter().map(|x| x.topic.clone()).collect();
            let reason: Vec<_> = d.iter().map(|x| x.reason.clone()).collect();
            let detail: Vec<_> = d.iter().map(|x| x.detail.clone()).collect();
            let payload: Vec<_> = d.iter().map(|x| x.payload.clone()).collect();
            let size: Vec<i32> = d
                .iter()
                .map(|x| i32::try_from(x.payload_size).unwrap_or(i32::MAX))
                .collect();
            sqlx::query(
                "INSERT INTO dead_letters (received_at, topic, reason, detail, payload, payload_size)
                 SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int4[])",
            )
            .bind(&at)
            .bind(&topic)
            .bind(&reason)
            .bind(&detail)
            .bind(&payload)
            .bind(&size)
            .execute(&mut *tx)
            .await?;
            out.dead_letters = d.len();
        }

        tx.commit().await?;
        Ok(out)
    }
}

/// Inserts readings; one that already exists is skipped or an error, as `conflicts` says.
/// Returns how many were inserted.
pub(crate) async fn insert_readings(
    tx: &mut sqlx::PgConnection,
    rows: &[(DevEui, Reading)],
    conflicts: Conflicts,
) -> Result<usize> {
    // One value per (device, quantity, time) inside a statement, or ON CONFLICT would refuse;
    // the first one wins. Sorted in index order: neighbouring rows land on the same index
    // pages, and concurrent writers take locks in the same order.
    let mut sorted: Vec<(i64, i16, DateTime<Utc>, f64)> = rows
        .iter()
        .map(|(e, r)| (e.as_i64(), r.quantity.id(), r.observed_at, r.value))
        .collect();
    sorted.sort_by_key(|&(e, q, t, _)| (e, q, t));
    sorted.dedup_by_key(|&mut (e, q, t, _)| (e, q, t));
    let mut eui = Vec::with_capacity(sorted.len());
    let (mut q, mut t, mut v) = (vec![], vec![], vec![]);
    for (ee, qq, tt, vv) in sorted {
        eui.push(ee);
        q.push(qq);
        t.push(tt);
        v.push(vv);
    }
    let insert = "INSERT INTO readings (dev_eui, quantity, time, value)
         SELECT * FROM UNNEST($1::bigint[], $2::smallint[], $3::timestamptz[], $4::float8[])";
    let sql = match conflicts {
        Conflicts::Fail => insert.to_string(),
        Conflicts::Skip => format!("{insert} ON CONFLICT DO NOTHING"),
    };
    let res = sqlx::query(&sql)
        .bind(&eui)
        .bind(&q)
        .bind(&t)
        .bind(&v)
        .execute(&mut *tx)
        .await?;
    Ok(res.rows_affected() as usize)
}

/// Keeps `latest_readings` at the newest value per device and quantity.
pub(crate) async fn upsert_latest(
    tx: &mut sqlx::PgConnection,
    rows: &[(DevEui, Reading)],
) -> Result<()> {
    let mut newest: HashMap<(i64, i16), (DateTime<Utc>, f64)> = HashMap::new();
    for (e, r) in rows {
        let slot = newest
            .entry((e.as_i64(), r.quantity.id()))
            .or_insert((r.observed_at, r.value));
        if r.observed_at > slot.0 {
            *slot = (r.observed_at, r.value);
        }
    }
    let mut keys: Vec<_> = newest.into_iter().collect();
    keys.sort_by_key(|(k, _)| *k); // stable lock order
    let eui: Vec<i64> = keys.iter().map(|((e, _), _)| *e).collect();
    let q: Vec<i16> = keys.iter().map(|((_, q), _)| *q).collect();
    let t: Vec<DateTime<Utc>> = keys.iter().map(|(_, (t, _))| *t).collect();
    let v: Vec<f64> = keys.iter().map(|(_, (_, v))| *v).collect();
    sqlx::query(
        "INSERT INTO latest_readings AS l (dev_eui, quantity, time, value)
         SELECT * FROM UNNEST($1::bigint[], $2::smallint[], $3::timestamptz[], $4::float8[])
         ON CONFLICT (dev_eui, quantity) DO UPDATE SET time = EXCLUDED.time, value = EXCLUDED.value
         WHERE l.time <= EXCLUDED.time",
    )
    .bind(&eui)
    .bind(&q)
    .bind(&t)
    .bind(&v)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
