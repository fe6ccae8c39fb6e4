//! The ingest write path: one transaction per batch, idempotent on the uplink dedup key.

use crate::{Result, Store};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use stadtpuls_gateways::{DevEui, DeviceEvent, GatewayRx, Quantity, Reading, TxInfo, Uplink};
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

/// The `radio` column of an uplink: its gateways and transmission settings.
#[derive(serde::Serialize)]
struct Radio<'a> {
    gateways: &'a [GatewayRx],
    tx: &'a TxInfo,
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
            let (at, lat, lon) = (u.observed_at, loc.lat, loc.lon);
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
                    d.location = Some((at, location.lat, location.lon));
                }
            }
        }
    }
    seen
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
            let mut key = Vec::with_capacity(n);
            let (mut obs, mut rec, mut ing, mut eui) = (vec![], vec![], vec![], vec![]);
            let (mut ns, mut app, mut topic, mut fcnt, mut fport) =
                (vec![], vec![], vec![], vec![], vec![]);
            let (mut payload, mut decoded, mut radio, mut loc) = (vec![], vec![], vec![], vec![]);
            let (mut unmapped, mut sim) = (vec![], vec![]);
            // A batch may itself contain the same uplink twice (redelivery inside one batch).
            let mut in_batch = HashSet::with_capacity(n);
            for r in &batch.uplinks {
                let u = &r.uplink;
                if !in_batch.insert((u.dedup_key.as_str(), us(u.observed_at))) {
                    continue;
                }
                key.push(u.dedup_key.as_str());
                obs.push(us(u.observed_at));
                rec.push(u.received_at);
                ing.push(r.ingested_at);
                eui.push(u.dev_eui.as_i64());
                ns.push(u.network_server.as_str());
                app.push(u.application.as_deref());
                topic.push(r.topic.as_str());
                fcnt.push(u.f_cnt.map(i64::from));
                fport.push(u.f_port.map(i16::from));
                // Borrowed, and serialized straight into the bind buffer: no copy of the
                // payload or of the decoded object's tree per uplink.
                payload.push(u.payload.as_slice());
                decoded.push(u.decoded.as_ref());
                radio.push(Json(Radio {
                    gateways: &u.gateways,
                    tx: &u.tx,
                }));
                loc.push(u.device_location.as_ref().map(Json));
                // Postgres text[] columns cannot be bound as a 2-D array of unequal rows, so
                // the unmapped keys travel as one JSON array per row.
                unmapped.push(Json(r.unmapped.as_slice()));
                sim.push(u.simulated);
            }
            let new_keys: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
                "INSERT INTO uplinks (dedup_key, observed_at, received_at, ingested_at, dev_eui, network_server,
                                      application, topic, f_cnt, f_port, payload, decoded, radio,
                                      device_location, unmapped, simulated)
                 SELECT k, o, r, i, e, ns, a, t, fc, fp, p, d, ra, l,
                        ARRAY(SELECT jsonb_array_elements_text(u)), s
                 FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::bigint[],
                             $6::text[], $7::text[], $8::text[], $9::bigint[], $10::smallint[], $11::bytea[],
                             $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::bool[])
                      AS x(k, o, r, i, e, ns, a, t, fc, fp, p, d, ra, l, u, s)
                 ON CONFLICT (dedup_key, observed_at) DO NOTHING
                 RETURNING dedup_key, observed_at",
            )
            .bind(&key)
            .bind(&obs)
            .bind(&rec)
            .bind(&ing)
            .bind(&eui)
            .bind(&ns)
            .bind(&app)
            .bind(&topic)
            .bind(&fcnt)
            .bind(&fport)
            .bind(&payload)
            .bind(&decoded)
            .bind(&radio)
            .bind(&loc)
            .bind(&unmapped)
            .bind(&sim)
            .fetch_all(&mut *tx)
            .await?;
            out.new_uplinks = new_keys.len();
            out.duplicate_uplinks = n - new_keys.len();

            // 3. Readings of the new uplinks only.
            let fresh: HashSet<(String, DateTime<Utc>)> = new_keys.into_iter().collect();
            let mut seen_fresh = HashSet::new();
            for r in &batch.uplinks {
                let k = (r.uplink.dedup_key.clone(), us(r.uplink.observed_at));
                if fresh.contains(&k) && seen_fresh.insert(k) {
                    for reading in &r.readings {
                        out.stored.push((r.uplink.dev_eui, *reading));
                    }
                }
            }
            if !out.stored.is_empty() {
                out.readings = insert_readings(&mut tx, &out.stored).await?;
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

/// Inserts readings, skipping any that already exist; returns how many were new.
pub(crate) async fn insert_readings(
    tx: &mut sqlx::PgConnection,
    rows: &[(DevEui, Reading)],
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
    let res = sqlx::query(
        "INSERT INTO readings (dev_eui, quantity, time, value)
         SELECT * FROM UNNEST($1::bigint[], $2::smallint[], $3::timestamptz[], $4::float8[])
         ON CONFLICT DO NOTHING",
    )
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
