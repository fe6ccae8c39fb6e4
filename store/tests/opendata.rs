//! The raw open-data export as the store delivers it (a binary COPY scan put into file order):
//! selection, spatial order (in one pass or in several; `hilbert_index`), values, fingerprint,
//! and selection strings that need quoting.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::copy_out::RawColumns;
use stadtpuls_store::opendata::Selection;
use stadtpuls_store::testing::{fetch_all, fresh_store, uplink_record, utc};
use stadtpuls_store::*;

fn device(eui: u64, vis: Visibility, at: Option<(f64, f64)>, site: Option<&str>) -> NewDevice {
    NewDevice {
        dev_eui: DevEui(eui),
        name: None,
        kind: DeviceKind::OutdoorClimate,
        codec: None,
        visibility: vis,
        location: at.map(|(lat, lon)| stadtpuls_gateways::Position::new(lat, lon).unwrap()),
        site_id: site.map(str::to_string),
        building_id: None,
        room_id: None,
    }
}

fn site(uid: &str) -> ParkingSite {
    ParkingSite {
        uid: uid.into(),
        name: uid.into(),
        site_type: "CAR_PARK".into(),
        purpose: "CAR".into(),
        capacity: 10,
        lat: 51.5,
        lon: 7.46,
        geometry: None,
        address: None,
        operator_name: None,
        opening_hours: None,
        static_data_updated_at: utc("2025-01-01T00:00:00Z"),
    }
}

/// Enough memory to sort any test partition in one pass.
const ONE_PASS: usize = 1 << 20;

async fn collect(store: &Store, sel: &Selection, from: &str, to: &str) -> RawColumns {
    collect_with(store, sel, from, to, ONE_PASS).await
}

async fn collect_with(
    store: &Store,
    sel: &Selection,
    from: &str,
    to: &str,
    sort_memory: usize,
) -> RawColumns {
    let (mut rx, fingerprint) = store
        .export_raw_with_fingerprint(sel, utc(from), utc(to), sort_memory)
        .await
        .unwrap();
    let mut all = RawColumns::default();
    while let Some(chunk) = rx.recv().await {
        let c = chunk.unwrap();
        for i in 0..c.len() {
            all.time_us.push(c.time_us[i]);
            all.ids.push_str(c.id(i));
            all.id_ends.push(all.ids.len());
        }
        all.quantity.extend(&c.quantity);
        all.value.extend(&c.value);
        all.lon.extend(&c.lon);
        all.lat.extend(&c.lat);
    }
    fingerprint.await.unwrap().unwrap();
    all
}

#[tokio::test]
async fn raw_export_selects_public_located_devices_in_file_order() {
    let store = fresh_store().await.unwrap();
    store
        .import_places(&[site("o'brien; drop table readings --")], &[], &[])
        .await
        .unwrap();
    store
        .import_devices(&[
            device(0xA1, Visibility::Public, Some((51.51, 7.45)), None),
            device(
                0xA2,
                Visibility::Public,
                Some((51.52, 7.47)),
                Some("o'brien; drop table readings --"),
            ),
            device(0xA3, Visibility::Private, Some((51.53, 7.48)), None),
            device(0xA4, Visibility::Public, None, None),
        ])
        .await
        .unwrap();
    let t0 = utc("2026-01-15T00:00:00Z");
    let mut uplinks = Vec::new();
    for eui in [0xA1u64, 0xA2, 0xA3, 0xA4] {
        // Not in time order: the newest first, as late data leave it in the table.
        for k in [2, 0, 1] {
            let at: DateTime<Utc> = t0 + Duration::minutes(10 * k);
            uplinks.push(uplink_record(
                &format!("{eui:x}-{k}"),
                DevEui(eui),
                at,
                &[
                    (Quantity::Temperature, 20.0 + k as f64),
                    (Quantity::Humidity, 60.0 + k as f64),
                    (Quantity::Battery, 90.0),
                ],
            ));
        }
    }
    // One reading outside the window on each side.
    uplinks.push(uplink_record(
        "before",
        DevEui(0xA1),
        utc("2026-01-14T23:59:59Z"),
        &[(Quantity::Temperature, -1.0)],
    ));
    uplinks.push(uplink_record(
        "end",
        DevEui(0xA1),
        utc("2026-01-16T00:00:00Z"),
        &[(Quantity::Temperature, -2.0)],
    ));
    store
        .write_batch(&Batch {
            uplinks,
            ..Default::default()
        })
        .await
        .unwrap();
    store.assign_sensor_ids().await.unwrap();
    let ids: Vec<(i64, String)> = fetch_all(
        &store,
        "SELECT dev_eui, sensor_id FROM open_sensor_ids ORDER BY sensor_id COLLATE \"C\"",
    )
    .await;
    let sensor = |eui: i64| ids.iter().find(|(e, _)| *e == eui).unwrap().1.clone();

    let sel = Selection {
        quantities: vec![Quantity::Temperature, Quantity::Humidity],
        kinds: vec![DeviceKind::OutdoorClimate],
        buildings: vec![],
        raw: true,
        sites: vec![],
    };
    let got = collect(&store, &sel, "2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z").await;
    // Public, located devices only (A1, A2); battery not selected; sensors in spatial order
    // (A2 at (7.47, 51.52) has the lower Hilbert index: 158847401199631 against A1's
    // 158847401894106), per sensor humidity before temperature (by name), each in time order.
    let public: Vec<(String, i64)> = [0xA2i64, 0xA1].iter().map(|&e| (sensor(e), e)).collect();
    let mut want = Vec::new();
    for (sid, eui) in &public {
        let (lat, lon) = if *eui == 0xA1 {
            (51.51, 7.45)
        } else {
            (51.52, 7.47)
        };
        for (q, base) in [(Quantity::Humidity, 60.0), (Quantity::Temperature, 20.0)] {
            for k in 0..3i64 {
                let at = t0 + Duration::minutes(10 * k);
                want.push((
                    at.timestamp_micros(),
                    sid.clone(),
                    q.id(),
                    base + k as f64,
                    lon,
                    lat,
                ));
            }
        }
    }
    let rows: Vec<_> = (0..got.len())
        .map(|i| {
            (
                got.time_us[i],
                got.id(i).to_string(),
                got.quantity[i],
                got.value[i],
                got.lon[i],
                got.lat[i],
            )
        })
        .collect();
    assert_eq!(rows, want);

    // With memory for only a few readings, every sensor is read in a pass of its own: the
    // same rows in the same order.
    let passes = collect_with(
        &store,
        &sel,
        "2026-01-15T00:00:00Z",
        "2026-01-16T00:00:00Z",
        1,
    )
    .await;
    assert_eq!(passes, got);

    // A site id with a quote and SQL in it is a value, not SQL.
    let by_site = Selection {
        sites: vec!["o'brien; drop table readings --".into()],
        ..sel.clone()
    };
    let got = collect(
        &store,
        &by_site,
        "2026-01-15T00:00:00Z",
        "2026-01-16T00:00:00Z",
    )
    .await;
    assert_eq!(got.len(), 6);
    assert!((0..6).all(|i| got.id(i) == sensor(0xA2)));

    // Rows and fingerprint from one snapshot: the same rows, and the fingerprint a separate
    // query computes (it covers the unlocated public A4 too: 3 devices × 2 quantities × 3).
    let (mut rx, fp) = store
        .export_raw_with_fingerprint(&sel, t0, t0 + Duration::days(1), ONE_PASS)
        .await
        .unwrap();
    let mut n = 0;
    while let Some(c) = rx.recv().await {
        n += c.unwrap().len();
    }
    let fp = fp.await.unwrap().unwrap();
    assert_eq!(n, 12);
    assert_eq!(
        fp,
        store
            .export_fingerprint(&sel, t0, t0 + Duration::days(1))
            .await
            .unwrap()
    );
    assert_eq!(fp.0, 18);

    // An empty window is an empty stream, not an error.
    let none = collect(&store, &sel, "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z").await;
    assert!(none.is_empty());

    // A NUL in a selection string is refused before it reaches the database.
    let bad = Selection {
        sites: vec!["a\0b".into()],
        ..sel
    };
    let (mut rx, _) = store
        .export_raw_with_fingerprint(&bad, t0, t0 + Duration::days(1), ONE_PASS)
        .await
        .unwrap();
    let err = rx.recv().await.unwrap().unwrap_err();
    assert!(err.to_string().contains("NUL"), "{err}");
}

#[tokio::test]
async fn hilbert_index_runs_along_the_curve_over_the_wgs84_range() {
    let store = fresh_store().await.unwrap();
    // Order 24: from (-180, -90) up the west edge, across and down to (180, -90); the centre
    // starts the third quarter. The city value is the one tests/python/check_exports.py's
    // independent implementation gives.
    let got: Vec<(Option<i64>,)> = fetch_all(
        &store,
        "SELECT hilbert_index(lon, lat) FROM (VALUES (1, -180::float8, -90::float8),
             (2, -180, 90), (3, 180, 90), (4, 180, -90), (5, 0, 0), (6, 7.4593, 51.5178),
             (7, 500, -500), (8, NULL, 1)) p(i, lon, lat) ORDER BY i",
    )
    .await;
    let want = [
        Some(0),
        Some(93_824_992_236_885),
        Some(187_649_984_473_770),
        Some((1i64 << 48) - 1),
        Some(1i64 << 47),
        Some(158_847_400_563_876),
        // Clamped to the range: the corner (180, -90).
        Some((1i64 << 48) - 1),
        None,
    ];
    assert_eq!(got.into_iter().map(|r| r.0).collect::<Vec<_>>(), want);
}

#[tokio::test]
async fn raw_export_orders_sensors_by_position_in_every_pass() {
    let store = fresh_store().await.unwrap();
    // Nine sensors on a 3 × 3 grid over the city, and two more sharing one position.
    let mut devices = Vec::new();
    for i in 0..9u64 {
        let at = (51.45 + 0.05 * (i / 3) as f64, 7.40 + 0.07 * (i % 3) as f64);
        devices.push(device(0x100 + i, Visibility::Public, Some(at), None));
    }
    for eui in [0x200u64, 0x201] {
        devices.push(device(eui, Visibility::Public, Some((51.5, 7.47)), None));
    }
    store.import_devices(&devices).await.unwrap();
    let t0 = utc("2026-01-15T00:00:00Z");
    let mut uplinks = Vec::new();
    for d in &devices {
        for k in [1i64, 0] {
            uplinks.push(uplink_record(
                &format!("{}-{k}", d.dev_eui.0),
                d.dev_eui,
                t0 + Duration::minutes(10 * k),
                &[(Quantity::Temperature, k as f64)],
            ));
        }
    }
    store
        .write_batch(&Batch {
            uplinks,
            ..Default::default()
        })
        .await
        .unwrap();
    store.assign_sensor_ids().await.unwrap();
    // The expected order: Hilbert index of the position, ties by sensor id byte-wise.
    let order: Vec<(String, f64, f64)> = fetch_all(
        &store,
        "SELECT s.sensor_id, d.lon, d.lat FROM devices d JOIN open_sensor_ids s USING (dev_eui)
         ORDER BY hilbert_index(d.lon, d.lat), s.sensor_id COLLATE \"C\"",
    )
    .await;
    let mut want = Vec::new();
    for (sid, lon, lat) in &order {
        for k in 0..2i64 {
            let at = t0 + Duration::minutes(10 * k);
            want.push((at.timestamp_micros(), sid.clone(), k as f64, *lon, *lat));
        }
    }
    // Not simply the ids' order (that is the order before the spatial one).
    let mut by_id: Vec<&String> = order.iter().map(|o| &o.0).collect();
    by_id.sort();
    assert_ne!(by_id, order.iter().map(|o| &o.0).collect::<Vec<_>>());
    let tied: Vec<&String> = (order.iter())
        .filter(|o| (o.1, o.2) == (7.47, 51.5))
        .map(|o| &o.0)
        .collect();
    assert!(tied.len() == 2 && tied[0] < tied[1], "{tied:?}");

    let sel = Selection {
        quantities: vec![Quantity::Temperature],
        kinds: vec![DeviceKind::OutdoorClimate],
        buildings: vec![],
        raw: true,
        sites: vec![],
    };
    let (from, to) = ("2026-01-15T00:00:00Z", "2026-01-16T00:00:00Z");
    // One pass, a pass per sensor, and passes of a few sensors each: the same order.
    for memory in [ONE_PASS, 1, 24 * 5] {
        let got = collect_with(&store, &sel, from, to, memory).await;
        let rows: Vec<_> = (0..got.len())
            .map(|i| {
                (
                    got.time_us[i],
                    got.id(i).to_string(),
                    got.value[i],
                    got.lon[i],
                    got.lat[i],
                )
            })
            .collect();
        assert_eq!(rows, want, "sort memory {memory}");
    }
}
