//! Store tests: each on a fresh, migrated database on the real PostgreSQL + TimescaleDB.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use stadtpuls_gateways::{DevEui, DeviceEvent, Location, Position, Quantity, Reading};
use stadtpuls_store::testing::fresh_store;
use stadtpuls_store::*;

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

fn uplink(key: &str, eui: u64, at: DateTime<Utc>, readings: &[(Quantity, f64)]) -> UplinkRecord {
    let mut r = stadtpuls_store::testing::uplink_record(key, DevEui(eui), at, readings);
    r.uplink.decoded = Some(serde_json::json!({"temperature": 21.5}));
    r.unmapped = vec!["foo".into()];
    r
}

#[tokio::test]
async fn quantities_table_mirrors_the_code() {
    let store = fresh_store().await.unwrap();
    let rows = store.quantities().await.unwrap();
    assert_eq!(rows.len(), Quantity::ALL.len());
    for (id, name, unit, _) in rows {
        let q = Quantity::from_id(id).unwrap();
        assert_eq!((q.name(), q.unit()), (name.as_str(), unit.as_str()));
    }
    // Migrating again is a no-op.
    store.migrate().await.unwrap();
}

#[tokio::test]
async fn the_same_batch_twice_stores_once_and_auto_registers_privately() {
    let store = fresh_store().await.unwrap();
    let at = t("2024-05-01T10:00:00Z");
    let batch = Batch {
        uplinks: vec![
            uplink(
                "a",
                0x0102030405060708,
                at,
                &[(Quantity::Temperature, 21.5), (Quantity::Battery, 87.0)],
            ),
            uplink(
                "b",
                0x0102030405060708,
                at + Duration::minutes(5),
                &[(Quantity::Temperature, 22.0)],
            ),
            // A redelivery inside the same batch.
            uplink(
                "b",
                0x0102030405060708,
                at + Duration::minutes(5),
                &[(Quantity::Temperature, 22.0)],
            ),
        ],
        ..Default::default()
    };
    let first = store.write_batch(&batch).await.unwrap();
    assert_eq!(
        (
            first.new_uplinks,
            first.duplicate_uplinks,
            first.readings,
            first.registered_devices
        ),
        (2, 1, 3, 1)
    );
    let again = store.write_batch(&batch).await.unwrap();
    assert_eq!(
        (
            again.new_uplinks,
            again.duplicate_uplinks,
            again.readings,
            again.registered_devices
        ),
        (0, 3, 0, 0)
    );
    assert!(again.stored.is_empty());
    let c = store.counts().await.unwrap();
    assert_eq!((c.uplinks, c.readings, c.devices), (2, 3, 1));

    let d = store
        .device(DevEui(0x0102030405060708))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.visibility, Visibility::Private);
    assert!(d.auto_registered);
    assert_eq!((d.lat, d.lon), (None, None));
    assert_eq!(d.kind, DeviceKind::Other);
    assert_eq!(d.battery_percent, Some(87.0));
    assert_eq!(d.first_seen, Some(at));
    assert_eq!(d.last_seen, Some(at + Duration::minutes(5)));
    assert_eq!(d.network_server.as_deref(), Some("chirpstack_v4"));

    let latest = store
        .latest_of_device(DevEui(0x0102030405060708))
        .await
        .unwrap();
    let temp = latest
        .iter()
        .find(|r| r.quantity == Quantity::Temperature)
        .unwrap();
    assert_eq!((temp.value, temp.time), (22.0, at + Duration::minutes(5)));

    // An older uplink arriving late does not overwrite the latest value.
    // Nanosecond times (PostgreSQL keeps microseconds) still count as new and get their readings.
    let nanos = t("2024-05-01T11:00:00.123456789Z");
    let o = store
        .write_batch(&Batch {
            uplinks: vec![uplink(
                "n",
                0x0102030405060708,
                nanos,
                &[(Quantity::Co2, 640.0)],
            )],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((o.new_uplinks, o.readings), (1, 1));

    let late = Batch {
        uplinks: vec![uplink(
            "c",
            0x0102030405060708,
            at - Duration::hours(1),
            &[(Quantity::Temperature, 5.0)],
        )],
        ..Default::default()
    };
    store.write_batch(&late).await.unwrap();
    let latest = store
        .latest_of_device(DevEui(0x0102030405060708))
        .await
        .unwrap();
    assert_eq!(
        latest
            .iter()
            .find(|r| r.quantity == Quantity::Temperature)
            .unwrap()
            .value,
        22.0
    );
}

/// A batch that is partly known takes the conflict-aware path: only its new uplinks and their
/// readings are stored, and a reading the table already has (sent again under another dedup
/// key) keeps its first value.
#[tokio::test]
async fn a_partly_known_batch_stores_only_what_is_new() {
    let store = fresh_store().await.unwrap();
    let at = t("2024-05-01T10:00:00Z");
    let eui = 0x0a0b0c0d0e0f1011;
    let first = Batch {
        uplinks: vec![uplink("a", eui, at, &[(Quantity::Temperature, 21.5)])],
        ..Default::default()
    };
    store.write_batch(&first).await.unwrap();

    let mixed = Batch {
        uplinks: vec![
            // Known: a redelivery.
            uplink("a", eui, at, &[(Quantity::Temperature, 21.5)]),
            // New uplink, but its temperature at `at` is already stored (other dedup key).
            uplink(
                "a-via-other-ns",
                eui,
                at,
                &[(Quantity::Temperature, 99.0), (Quantity::Humidity, 40.0)],
            ),
            // Entirely new.
            uplink(
                "b",
                eui,
                at + Duration::minutes(5),
                &[(Quantity::Temperature, 22.0)],
            ),
        ],
        ..Default::default()
    };
    let o = store.write_batch(&mixed).await.unwrap();
    assert_eq!(
        (
            o.new_uplinks,
            o.duplicate_uplinks,
            o.readings,
            o.stored.len()
        ),
        (2, 1, 2, 3)
    );
    let c = store.counts().await.unwrap();
    assert_eq!((c.uplinks, c.readings), (3, 3));
    let temps: Vec<(DateTime<Utc>, f64)> = store
        .readings(
            DevEui(eui),
            Some(Quantity::Temperature),
            at,
            at + Duration::hours(1),
            None,
            10,
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.time, r.value))
        .collect();
    assert_eq!(temps, vec![(at + Duration::minutes(5), 22.0), (at, 21.5)]);
}

#[tokio::test]
async fn readings_page_newest_first_with_a_cursor() {
    let store = fresh_store().await.unwrap();
    let base = t("2024-05-01T00:00:00Z");
    let uplinks: Vec<_> = (0..25)
        .map(|i| {
            uplink(
                &format!("k{i}"),
                42,
                base + Duration::minutes(i),
                &[
                    (Quantity::Temperature, i as f64),
                    (Quantity::Humidity, 50.0 + i as f64),
                ],
            )
        })
        .collect();
    store
        .write_batch(&Batch {
            uplinks,
            ..Default::default()
        })
        .await
        .unwrap();
    let (from, to) = (base, base + Duration::days(1));
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .readings(DevEui(42), None, from, to, cursor, 7)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        let last = page.last().unwrap();
        cursor = Some(ReadingCursor {
            time: last.time,
            quantity: last.quantity,
        });
        all.extend(page);
    }
    assert_eq!(all.len(), 50);
    assert_eq!(all[0].time, base + Duration::minutes(24));
    assert_eq!((all[0].quantity, all[0].value), (Quantity::Humidity, 74.0));
    assert_eq!(
        (all[1].quantity, all[1].value),
        (Quantity::Temperature, 24.0)
    );
    assert!(all
        .windows(2)
        .all(|w| (w[0].time, w[0].quantity) > (w[1].time, w[1].quantity)));
    let temps = store
        .readings(
            DevEui(42),
            Some(Quantity::Temperature),
            from,
            base + Duration::minutes(10),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        temps.iter().map(|r| r.value).collect::<Vec<_>>(),
        (0..10).rev().map(|i| i as f64).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn import_updates_and_pins_locations_against_network_events() {
    let store = fresh_store().await.unwrap();
    let mut dev = NewDevice {
        dev_eui: DevEui(7),
        name: Some("Bay 7".into()),
        kind: DeviceKind::ParkingBay,
        codec: Some("bosch_parking".into()),
        visibility: Visibility::Public,
        location: Some(Position::new(51.5136, 7.4653).unwrap()),
        site_id: Some("hbf".into()),
        building_id: None,
        room_id: None,
    };
    let free = NewDevice {
        dev_eui: DevEui(8),
        location: None,
        name: None,
        ..dev.clone()
    };
    assert_eq!(
        store.import_devices(&[dev.clone(), free]).await.unwrap(),
        ImportOutcome {
            inserted: 2,
            updated: 0
        }
    );
    dev.name = Some("Bay 7 (renamed)".into());
    assert_eq!(
        store.import_devices(&[dev]).await.unwrap(),
        ImportOutcome {
            inserted: 0,
            updated: 1
        }
    );
    let loc = |lat, lon| Location {
        position: Position::new(lat, lon).unwrap(),
        alt: None,
        source: Some("GPS".into()),
    };
    let at = Some(t("2024-05-01T10:00:00Z"));
    let events = vec![
        DeviceEvent::Location {
            dev_eui: DevEui(7),
            location: loc(1.0, 2.0),
            at,
        },
        DeviceEvent::Location {
            dev_eui: DevEui(8),
            location: loc(51.5, 7.4),
            at,
        },
        DeviceEvent::Status {
            dev_eui: DevEui(8),
            battery_percent: Some(55.0),
            external_power: false,
            margin: Some(7),
            at,
        },
    ];
    store
        .write_batch(&Batch {
            events,
            ..Default::default()
        })
        .await
        .unwrap();
    let d7 = store.device(DevEui(7)).await.unwrap().unwrap();
    assert_eq!(d7.name.as_deref(), Some("Bay 7 (renamed)"));
    assert_eq!(
        (d7.lat, d7.lon, d7.location_source.as_deref()),
        (Some(51.5136), Some(7.4653), Some("registry"))
    );
    let d8 = store.device(DevEui(8)).await.unwrap().unwrap();
    assert_eq!(
        (d8.lat, d8.lon, d8.location_source.as_deref()),
        (Some(51.5), Some(7.4), Some("network"))
    );
    assert_eq!(d8.battery_percent, Some(55.0));
    let public = store
        .devices(DeviceFilter {
            bbox: Some(BBox {
                min_lon: 7.4,
                min_lat: 51.5,
                max_lon: 7.5,
                max_lat: 51.6,
            }),
            public_only: true,
        })
        .await
        .unwrap();
    assert_eq!(
        public.iter().map(|d| d.dev_eui.0).collect::<Vec<_>>(),
        vec![7, 8]
    );
    let dir = store.directory_since(None).await.unwrap();
    assert_eq!(dir.len(), 2);
    assert_eq!(dir[0].codec.as_deref(), Some("bosch_parking"));
    assert!(store
        .directory_since(Some(dir.iter().map(|d| d.updated_at).max().unwrap()))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn retention_drops_old_chunks_but_keeps_readings_by_default() {
    let store = fresh_store().await.unwrap();
    let now = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
    let old = now - Duration::days(120);
    let dl = DeadLetter {
        received_at: old,
        topic: "t".into(),
        reason: "invalid_json".into(),
        detail: "x".into(),
        payload: b"{".to_vec(),
        payload_size: 1,
    };
    store
        .write_batch(&Batch {
            uplinks: vec![
                uplink("old", 1, old, &[(Quantity::Co2, 900.0)]),
                uplink("new", 1, now - Duration::days(1), &[(Quantity::Co2, 700.0)]),
            ],
            dead_letters: vec![dl],
            ..Default::default()
        })
        .await
        .unwrap();
    let policy = RetentionPolicy {
        uplinks_days: 90,
        dead_letters_days: 30,
        readings_days: 0,
    };
    let o = store.apply_retention(policy, now).await.unwrap();
    assert_eq!(
        (o.uplinks_chunks, o.dead_letters_chunks, o.readings_chunks),
        (1, 1, 0)
    );
    let c = store.counts().await.unwrap();
    assert_eq!((c.uplinks, c.dead_letters, c.readings), (1, 0, 2));
}

#[tokio::test]
async fn replace_readings_rebuilds_from_raw_uplinks() {
    let store = fresh_store().await.unwrap();
    let at = t("2024-05-01T10:00:00Z");
    store
        .write_batch(&Batch {
            uplinks: vec![uplink("a", 9, at, &[(Quantity::Temperature, 99.0)])],
            ..Default::default()
        })
        .await
        .unwrap();
    let raw = store
        .raw_uplinks(at - Duration::hours(1), at + Duration::hours(1), None, 10)
        .await
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert_eq!(
        raw[0].decoded,
        Some(serde_json::json!({"temperature": 21.5}))
    );
    assert_eq!(raw[0].payload, vec![1, 2, 3]);
    let n = store
        .replace_readings(
            &[(raw[0].clone(), vec![])],
            &[(
                DevEui(9),
                Reading {
                    quantity: Quantity::Temperature,
                    value: 21.5,
                    observed_at: at,
                },
            )],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let r = store
        .readings(
            DevEui(9),
            None,
            at - Duration::hours(1),
            at + Duration::hours(1),
            None,
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        r.iter().map(|r| (r.quantity, r.value)).collect::<Vec<_>>(),
        vec![(Quantity::Temperature, 21.5)]
    );
    assert_eq!(
        store.latest_of_device(DevEui(9)).await.unwrap()[0].value,
        21.5
    );
}

#[tokio::test]
async fn dead_letters_are_kept_and_replay_marks_them() {
    let store = fresh_store().await.unwrap();
    let at = t("2024-05-01T10:00:00Z");
    let dl = DeadLetter {
        received_at: at,
        topic: "application/a/device/b/event/up".into(),
        reason: "invalid_json".into(),
        detail: "EOF".into(),
        payload: b"{\"a\":".to_vec(),
        payload_size: 5,
    };
    let o = store
        .write_batch(&Batch {
            dead_letters: vec![dl],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(o.dead_letters, 1);
    let rows = store
        .dead_letters(at - Duration::hours(1), at + Duration::hours(1), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].reason.as_str(),
            rows[0].payload.as_slice(),
            rows[0].payload_size
        ),
        ("invalid_json", b"{\"a\":".as_slice(), 5)
    );
    store.mark_replayed(&[rows[0].id], at).await.unwrap();
    assert!(store
        .dead_letters(at - Duration::hours(1), at + Duration::hours(1), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn places_import_and_reimport_update() {
    let store = fresh_store().await.unwrap();
    let at = t("2024-05-01T10:00:00Z");
    let mut site = ParkingSite {
        uid: "hbf".into(),
        name: "Parkhaus Hbf".into(),
        site_type: "CAR_PARK".into(),
        purpose: "CAR".into(),
        capacity: 420,
        lat: 51.5186,
        lon: 7.4589,
        geometry: None,
        address: Some("Königswall 15, 44137 Dortmund".into()),
        operator_name: None,
        opening_hours: Some("24/7".into()),
        static_data_updated_at: at,
    };
    let building = Building {
        id: "rathaus".into(),
        name: "Rathaus".into(),
        lat: Some(51.5139),
        lon: Some(7.4653),
        address: None,
    };
    let room = Room {
        building_id: "rathaus".into(),
        id: "r101".into(),
        name: "Raum 101".into(),
        floor: Some("1".into()),
        usage: Some("office".into()),
    };
    let o = store
        .import_places(
            &[site.clone()],
            std::slice::from_ref(&building),
            std::slice::from_ref(&room),
        )
        .await
        .unwrap();
    assert_eq!(
        o,
        PlacesOutcome {
            sites: 1,
            buildings: 1,
            rooms: 1
        }
    );
    site.capacity = 400;
    store
        .import_places(&[site.clone()], &[], &[])
        .await
        .unwrap();
    assert_eq!(store.parking_sites().await.unwrap(), vec![site.clone()]);
    assert_eq!(store.buildings().await.unwrap(), vec![building]);
    assert_eq!(store.rooms("rathaus").await.unwrap(), vec![room]);

    let orphan = Room {
        building_id: "nowhere".into(),
        id: "x".into(),
        name: "X".into(),
        floor: None,
        usage: None,
    };
    let err = store
        .import_places(&[], &[], &[orphan])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("building 'nowhere' does not exist"), "{err}");
    site.site_type = "GARAGE".into();
    let err = store
        .import_places(&[site], &[], &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("GARAGE"), "{err}");
}

/// A statement cancelled by `statement_timeout` (e.g. a batch stuck behind a lock) is worth
/// retrying; the writer would otherwise dead-letter good uplinks as `store_rejected`.
#[tokio::test]
async fn a_statement_timeout_is_transient_and_a_constraint_violation_is_not() {
    let store = fresh_store().await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    sqlx::query("SET statement_timeout = '50ms'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let timeout = sqlx::query("SELECT pg_sleep(2)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    let timeout = StoreError::Database(timeout);
    assert!(
        timeout.to_string().contains("statement timeout"),
        "{timeout}"
    );
    assert!(timeout.is_transient());
    let violation = sqlx::query("INSERT INTO quantities (id, name) VALUES (NULL, NULL)")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(!StoreError::Database(violation).is_transient());
}
