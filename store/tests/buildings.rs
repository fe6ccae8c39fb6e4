//! Building queries on a fresh database: room climate, room buckets, device health.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::aggregates::BucketWidth;
use stadtpuls_store::buildings::{ClimateValue, DeviceStatus, SilenceWindows};
use stadtpuls_store::testing::fresh_store;
use stadtpuls_store::*;

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

fn uplink(key: &str, eui: u64, at: DateTime<Utc>, readings: &[(Quantity, f64)]) -> UplinkRecord {
    stadtpuls_store::testing::uplink_record(key, DevEui(eui), at, readings)
}

fn building(id: &str) -> Building {
    Building {
        id: id.into(),
        name: format!("Building {id}"),
        lat: None,
        lon: None,
        address: None,
    }
}

fn room(building_id: &str, id: &str) -> Room {
    Room {
        building_id: building_id.into(),
        id: id.into(),
        name: format!("Room {id}"),
        floor: Some("1".into()),
        usage: Some("office".into()),
    }
}

fn device(eui: u64, building: Option<&str>, room: Option<&str>) -> NewDevice {
    NewDevice {
        dev_eui: DevEui(eui),
        name: Some(format!("sensor {eui:x}")),
        kind: DeviceKind::RoomClimate,
        codec: None,
        visibility: Visibility::Private,
        location: None,
        site_id: None,
        building_id: building.map(String::from),
        room_id: room.map(String::from),
    }
}

/// Two buildings that both have a room "101"; devices A and B in rathaus/101, C in rathaus/102,
/// D in schule/101, E in no room.
async fn setup() -> Store {
    let store = fresh_store().await.unwrap();
    store
        .import_places(
            &[],
            &[building("rathaus"), building("schule")],
            &[
                room("rathaus", "101"),
                room("rathaus", "102"),
                room("rathaus", "103"),
                room("schule", "101"),
            ],
        )
        .await
        .unwrap();
    store
        .import_devices(&[
            device(0xA, Some("rathaus"), Some("101")),
            device(0xB, Some("rathaus"), Some("101")),
            device(0xC, Some("rathaus"), Some("102")),
            device(0xD, Some("schule"), Some("101")),
            device(0xE, None, None),
        ])
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn rooms_show_the_newest_value_among_their_own_devices() {
    let store = setup().await;
    use Quantity::*;
    let batch = Batch {
        uplinks: vec![
            uplink(
                "a1",
                0xA,
                t("2024-05-01T10:00:00Z"),
                &[(Temperature, 21.0), (Co2, 900.0)],
            ),
            // B is newer for temperature; A keeps the only humidity-free CO₂.
            uplink(
                "b1",
                0xB,
                t("2024-05-01T10:05:00Z"),
                &[(Temperature, 22.5), (Humidity, 40.0)],
            ),
            // C reports only its battery.
            uplink("c1", 0xC, t("2024-05-01T09:00:00Z"), &[(Battery, 80.0)]),
            // Schule's room 101 must not leak into Rathaus' room 101.
            uplink(
                "d1",
                0xD,
                t("2024-05-01T11:00:00Z"),
                &[(Temperature, 30.0), (Co2, 2000.0)],
            ),
        ],
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();

    let rooms = store.room_climate("rathaus").await.unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r.room.id.as_str()).collect();
    assert_eq!(ids, vec!["101", "102", "103"]);
    let v = |value, at: &str| Some(ClimateValue { value, time: t(at) });
    let r101 = &rooms[0];
    assert_eq!(r101.room, room("rathaus", "101"));
    assert_eq!(r101.devices, 2);
    assert_eq!(r101.last_reading, Some(t("2024-05-01T10:05:00Z")));
    assert_eq!(r101.temperature, v(22.5, "2024-05-01T10:05:00Z"));
    assert_eq!(r101.humidity, v(40.0, "2024-05-01T10:05:00Z"));
    assert_eq!(r101.co2, v(900.0, "2024-05-01T10:00:00Z"));

    let r102 = &rooms[1];
    assert_eq!(r102.devices, 1);
    assert_eq!(r102.last_reading, Some(t("2024-05-01T09:00:00Z")));
    assert_eq!(
        (r102.temperature, r102.humidity, r102.co2),
        (None, None, None)
    );

    let r103 = &rooms[2];
    assert_eq!((r103.devices, r103.last_reading), (0, None));

    let schule = store.room_climate("schule").await.unwrap();
    assert_eq!(schule.len(), 1);
    assert_eq!(schule[0].co2, v(2000.0, "2024-05-01T11:00:00Z"));
    assert_eq!(schule[0].devices, 1);

    assert!(store.room_climate("nowhere").await.unwrap().is_empty());
    assert_eq!(
        store.building("rathaus").await.unwrap(),
        Some(building("rathaus"))
    );
    assert_eq!(store.building("nowhere").await.unwrap(), None);
}

#[tokio::test]
async fn room_lookup_lists_the_devices_of_exactly_that_room() {
    let store = setup().await;
    let (r, devices) = store
        .room_with_devices("rathaus", "101")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r, room("rathaus", "101"));
    assert_eq!(devices, vec![DevEui(0xA), DevEui(0xB)]);
    let (_, none) = store
        .room_with_devices("rathaus", "103")
        .await
        .unwrap()
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(
        store.room_with_devices("rathaus", "999").await.unwrap(),
        None
    );
    assert_eq!(
        store.room_with_devices("nowhere", "101").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn room_buckets_average_over_all_devices_and_keep_empty_buckets() {
    let store = setup().await;
    use Quantity::Temperature;
    let batch = Batch {
        uplinks: vec![
            uplink("a1", 0xA, t("2024-05-01T10:10:00Z"), &[(Temperature, 20.0)]),
            uplink("a2", 0xA, t("2024-05-01T10:40:00Z"), &[(Temperature, 21.0)]),
            uplink("b1", 0xB, t("2024-05-01T10:20:00Z"), &[(Temperature, 24.0)]),
            uplink("b2", 0xB, t("2024-05-01T12:20:00Z"), &[(Temperature, 19.0)]),
            // Another room's device in the same window.
            uplink("c1", 0xC, t("2024-05-01T10:30:00Z"), &[(Temperature, 99.0)]),
        ],
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();
    let (_, devices) = store
        .room_with_devices("rathaus", "101")
        .await
        .unwrap()
        .unwrap();
    let buckets = store
        .room_buckets(
            &devices,
            Temperature,
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T13:00:00Z"),
            BucketWidth::Hour,
            "Europe/Berlin",
        )
        .await
        .unwrap();
    let got: Vec<_> = buckets
        .iter()
        .map(|b| (b.start, b.end, b.count, b.avg, b.min, b.max, b.sum))
        .collect();
    let h = |s: &str| t(s);
    assert_eq!(
        got,
        vec![
            (
                h("2024-05-01T10:00:00Z"),
                h("2024-05-01T11:00:00Z"),
                3,
                Some(65.0 / 3.0),
                Some(20.0),
                Some(24.0),
                None
            ),
            (
                h("2024-05-01T11:00:00Z"),
                h("2024-05-01T12:00:00Z"),
                0,
                None,
                None,
                None,
                None
            ),
            (
                h("2024-05-01T12:00:00Z"),
                h("2024-05-01T13:00:00Z"),
                1,
                Some(19.0),
                Some(19.0),
                Some(19.0),
                None
            ),
        ]
    );

    // Day buckets run from local midnight (Berlin is UTC+2 in May).
    let days = store
        .room_buckets(
            &devices,
            Temperature,
            t("2024-05-01T00:00:00+02:00"),
            t("2024-05-02T00:00:00+02:00"),
            BucketWidth::Day,
            "Europe/Berlin",
        )
        .await
        .unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].start, t("2024-04-30T22:00:00Z"));
    assert_eq!(
        (days[0].count, days[0].min, days[0].max),
        (4, Some(19.0), Some(24.0))
    );

    // A room without devices: every bucket present and empty.
    let empty = store
        .room_buckets(
            &[],
            Temperature,
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T11:00:00Z"),
            BucketWidth::Minutes15,
            "Europe/Berlin",
        )
        .await
        .unwrap();
    assert_eq!(empty.len(), 4);
    assert!(empty.iter().all(|b| b.count == 0 && b.avg.is_none()));

    // An empty window is rejected before any query.
    let err = store
        .room_buckets(
            &devices,
            Temperature,
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T10:00:00Z"),
            BucketWidth::Hour,
            "Europe/Berlin",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { field: "from", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn device_health_lists_silent_and_low_battery_devices() {
    let store = setup().await;
    use Quantity::{Battery, Temperature};
    let now = t("2024-05-01T12:00:00Z");
    let batch = Batch {
        uplinks: vec![
            // A: fresh and healthy.
            uplink("a", 0xA, now - Duration::minutes(5), &[(Battery, 90.0)]),
            // B: silent for two hours, battery 15 %.
            uplink(
                "b",
                0xB,
                now - Duration::hours(2),
                &[(Temperature, 20.0), (Battery, 15.0)],
            ),
            // C: exactly at the cutoff (not silent), battery exactly at the threshold (not low).
            uplink("c", 0xC, now - Duration::minutes(60), &[(Battery, 20.0)]),
            // D: fresh, battery 5 %.
            uplink("d", 0xD, now - Duration::minutes(1), &[(Battery, 5.0)]),
        ],
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();
    // E is registered but was never seen.

    let windows = |by_kind: Vec<(DeviceKind, u32)>| {
        DeviceStatus::Silent(SilenceWindows {
            now,
            default_minutes: 60,
            by_kind,
        })
    };
    // A longer window for the room sensors' kind: B (two hours quiet) is not silent under
    // three hours; E was never seen, which is silent under any window.
    let lenient = store
        .devices_with_status(windows(vec![(DeviceKind::RoomClimate, 180)]))
        .await
        .unwrap();
    let euis: Vec<_> = lenient.iter().map(|d| d.dev_eui).collect();
    assert_eq!(euis, vec![DevEui(0xE)]);
    // A shorter one for a kind nobody has changes nothing.
    let silent = store
        .devices_with_status(windows(vec![(DeviceKind::ParkingBay, 1)]))
        .await
        .unwrap();
    let euis: Vec<_> = silent.iter().map(|d| (d.dev_eui, d.last_seen)).collect();
    assert_eq!(
        euis,
        vec![
            (DevEui(0xE), None),
            (DevEui(0xB), Some(t("2024-05-01T10:00:00Z")))
        ]
    );
    assert_eq!(silent[0].kind, DeviceKind::RoomClimate);
    assert_eq!(silent[0].visibility, Visibility::Private);
    assert_eq!(silent[0].name.as_deref(), Some("sensor e"));
    assert_eq!(silent[1].building_id.as_deref(), Some("rathaus"));
    assert_eq!(silent[1].room_id.as_deref(), Some("101"));

    let low = store
        .devices_with_status(DeviceStatus::BatteryBelow(20.0))
        .await
        .unwrap();
    let got: Vec<_> = low.iter().map(|d| (d.dev_eui, d.battery_percent)).collect();
    assert_eq!(
        got,
        vec![(DevEui(0xD), Some(5.0)), (DevEui(0xB), Some(15.0))]
    );
}
