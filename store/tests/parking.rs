//! Realtime parking: the pure rules over tables of cases, then the SQL signals on a fresh,
//! migrated database each (real PostgreSQL + TimescaleDB).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use stadtpuls_gateways::{DevEui, Position, Quantity};
use stadtpuls_store::parking::{
    site_realtime, spot_status, Bay, Observed, OpeningStatus, ParkingWindows, RealtimeSource,
    SiteSignals, SpotStatus,
};
use stadtpuls_store::testing::fresh_store;
use stadtpuls_store::*;

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

/// The fixed "now" of every test.
fn now() -> DateTime<Utc> {
    t("2026-03-02T22:00:00Z")
}

fn ago(minutes: i64) -> DateTime<Utc> {
    now() - Duration::minutes(minutes)
}

/// The defaults: stale after 30 min, bays fresh for 20, counters for 10.
fn windows() -> ParkingWindows {
    ParkingWindows::from_minutes(30, 20, 10)
}

// ---- pure rules -------------------------------------------------------------------------------

fn signals(
    counter: Option<(f64, i64)>,
    bays: (i64, i64, Option<i64>),
    last_seen: Option<i64>,
) -> SiteSignals {
    SiteSignals {
        site_uid: "s".into(),
        counter: counter.map(|(value, m)| Observed {
            value,
            time: ago(m),
        }),
        fresh_bays: bays.0,
        free_bays: bays.1,
        bays_updated_at: bays.2.map(ago),
        last_seen: last_seen.map(ago),
    }
}

#[test]
fn site_realtime_rules() {
    use RealtimeSource::{Bays, Counter};
    // (case, capacity 50 signals, expected (source, free, capacity, updated minutes ago))
    type Expected = Option<(RealtimeSource, i64, i64, i64)>;
    let cases: &[(&str, SiteSignals, Expected)] = &[
        ("no devices", signals(None, (0, 0, None), None), None),
        (
            "fresh counter",
            signals(Some((12.0, 2)), (0, 0, None), Some(2)),
            Some((Counter, 12, 50, 2)),
        ),
        (
            "counter wins over fresh bays",
            signals(Some((12.0, 2)), (4, 3, Some(1)), Some(1)),
            Some((Counter, 12, 50, 2)),
        ),
        (
            "counter exactly at the 10 min edge is fresh",
            signals(Some((7.0, 10)), (0, 0, None), Some(10)),
            Some((Counter, 7, 50, 10)),
        ),
        (
            "counter 11 min old: bays take over",
            signals(Some((12.0, 11)), (4, 3, Some(5)), Some(5)),
            Some((Bays, 3, 4, 5)),
        ),
        (
            "counter 11 min old and no bays: nothing, not 'full'",
            signals(Some((12.0, 11)), (0, 0, None), Some(11)),
            None,
        ),
        (
            "counter above capacity is clamped",
            signals(Some((61.0, 1)), (0, 0, None), Some(1)),
            Some((Counter, 50, 50, 1)),
        ),
        (
            "negative counter is clamped to 0",
            signals(Some((-3.0, 1)), (0, 0, None), Some(1)),
            Some((Counter, 0, 50, 1)),
        ),
        (
            "fractional counter is rounded",
            signals(Some((9.6, 1)), (0, 0, None), Some(1)),
            Some((Counter, 10, 50, 1)),
        ),
        (
            "bays only",
            signals(None, (3, 1, Some(4)), Some(4)),
            Some((Bays, 1, 3, 4)),
        ),
        (
            "all fresh bays taken: 0 free",
            signals(None, (3, 0, Some(4)), Some(4)),
            Some((Bays, 0, 3, 4)),
        ),
        (
            "quiet but heard from: old reading, recent heartbeat",
            signals(None, (1, 1, Some(300)), Some(3)),
            Some((Bays, 1, 1, 300)),
        ),
        (
            "seen 30 min ago exactly: not yet stale",
            signals(None, (1, 1, Some(30)), Some(30)),
            Some((Bays, 1, 1, 30)),
        ),
        (
            "stale after 31 min silence, even with counts",
            signals(Some((12.0, 31)), (2, 2, Some(31)), Some(31)),
            None,
        ),
        (
            "heard within 30 min, but no fresh bay and no counter",
            signals(None, (0, 0, None), Some(25)),
            None,
        ),
    ];
    for (case, s, expected) in cases {
        let got = site_realtime(50, Some("24/7"), s, now(), &windows())
            .map(|r| (r.source, r.free_capacity, r.capacity, r.updated_at));
        let expected = expected.map(|(src, free, cap, m)| (src, free, cap, ago(m)));
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn opening_status_is_open_only_for_24_7() {
    for (hours, expected) in [
        (Some("24/7"), OpeningStatus::Open),
        (Some(" 24/7 "), OpeningStatus::Open),
        (Some("Mo-Fr 08:00-20:00"), OpeningStatus::Unknown),
        (Some(""), OpeningStatus::Unknown),
        (None, OpeningStatus::Unknown),
    ] {
        assert_eq!(
            OpeningStatus::from_opening_hours(hours),
            expected,
            "{hours:?}"
        );
        let s = signals(Some((1.0, 1)), (0, 0, None), Some(1));
        let r = site_realtime(5, hours, &s, now(), &windows()).unwrap();
        assert_eq!(r.opening_status, expected);
    }
    assert_eq!(OpeningStatus::Open.as_str(), "OPEN");
    assert_eq!(OpeningStatus::Unknown.as_str(), "UNKNOWN");
}

#[test]
fn spot_status_rules() {
    let bay = |occupied: Option<(f64, i64)>, seen: Option<i64>| Bay {
        dev_eui: DevEui(1),
        name: None,
        site_uid: None,
        lat: 51.5,
        lon: 7.4,
        last_seen: seen.map(ago),
        occupied: occupied.map(|(value, m)| Observed {
            value,
            time: ago(m),
        }),
    };
    let cases = [
        (
            "free and fresh",
            bay(Some((0.0, 5)), Some(5)),
            SpotStatus::Available,
        ),
        (
            "taken and fresh",
            bay(Some((1.0, 5)), Some(5)),
            SpotStatus::Taken,
        ),
        (
            "free since hours, heartbeat 2 min ago",
            bay(Some((0.0, 240)), Some(2)),
            SpotStatus::Available,
        ),
        (
            "seen 20 min ago: fresh",
            bay(Some((1.0, 20)), Some(20)),
            SpotStatus::Taken,
        ),
        (
            "seen 21 min ago: unknown",
            bay(Some((0.0, 21)), Some(21)),
            SpotStatus::Unknown,
        ),
        (
            "heartbeat but never a state",
            bay(None, Some(1)),
            SpotStatus::Unknown,
        ),
        ("never seen", bay(None, None), SpotStatus::Unknown),
    ];
    for (case, b, expected) in cases {
        assert_eq!(
            spot_status(&b, now(), windows().bay_fresh),
            expected,
            "{case}"
        );
    }
    assert_eq!(SpotStatus::Available.as_str(), "AVAILABLE");
    assert_eq!(SpotStatus::Taken.as_str(), "TAKEN");
}

// ---- SQL signals ------------------------------------------------------------------------------

fn site(uid: &str, capacity: i32) -> ParkingSite {
    ParkingSite {
        uid: uid.into(),
        name: format!("Site {uid}"),
        site_type: "CAR_PARK".into(),
        purpose: "CAR".into(),
        capacity,
        lat: 51.5136,
        lon: 7.4653,
        geometry: None,
        address: None,
        operator_name: None,
        opening_hours: Some("24/7".into()),
        static_data_updated_at: t("2026-01-01T00:00:00Z"),
    }
}

fn dev(eui: u64, kind: DeviceKind, site: &str, visibility: Visibility) -> NewDevice {
    NewDevice {
        dev_eui: DevEui(eui),
        name: Some(format!("dev {eui}")),
        kind,
        codec: None,
        visibility,
        location: Some(Position::new(51.5136, 7.4653 + eui as f64 * 1e-4).unwrap()),
        site_id: Some(site.into()),
        building_id: None,
        room_id: None,
    }
}

/// One uplink of `eui` observed `minutes` ago carrying `readings` (none: a heartbeat).
fn uplink(eui: u64, minutes: i64, readings: &[(Quantity, f64)]) -> UplinkRecord {
    stadtpuls_store::testing::uplink_record(
        &format!("{eui}-{minutes}"),
        DevEui(eui),
        ago(minutes),
        readings,
    )
}

const OCC: Quantity = Quantity::Occupied;
const FREE: Quantity = Quantity::FreeSpaces;

/// Sites:
/// - `a`: counter (free 42, 2 min ago) and two fresh free bays → the counter wins.
/// - `b`: bays only: free+fresh, taken+fresh, free but silent for 25 min, free since 3 h with
///   a heartbeat 5 min ago, plus a fresh free *private* bay → 3 fresh, 2 free.
/// - `c`: one bay last heard 40 min ago → stale.
/// - `d`: only private devices, fresh → no signals at all.
/// - `e`: a counter 15 min old and one fresh taken bay → the bays take over.
/// - `f`: no devices.
async fn city() -> Store {
    let store = fresh_store().await.unwrap();
    let sites: Vec<ParkingSite> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|uid| site(uid, 100))
        .collect();
    store.import_places(&sites, &[], &[]).await.unwrap();
    use DeviceKind::{ParkingBay as Bay, ParkingCounter as Counter};
    use Visibility::{Private, Public};
    store
        .import_devices(&[
            dev(0xa0, Counter, "a", Public),
            dev(0xa1, Bay, "a", Public),
            dev(0xa2, Bay, "a", Public),
            dev(0xb1, Bay, "b", Public),
            dev(0xb2, Bay, "b", Public),
            dev(0xb3, Bay, "b", Public),
            dev(0xb4, Bay, "b", Public),
            dev(0xb5, Bay, "b", Private),
            dev(0xc1, Bay, "c", Public),
            dev(0xd0, Counter, "d", Private),
            dev(0xd1, Bay, "d", Private),
            dev(0xe0, Counter, "e", Public),
            dev(0xe1, Bay, "e", Public),
        ])
        .await
        .unwrap();
    let batch = Batch {
        uplinks: vec![
            uplink(0xa0, 2, &[(FREE, 42.0)]),
            uplink(0xa1, 1, &[(OCC, 0.0)]),
            uplink(0xa2, 1, &[(OCC, 0.0)]),
            uplink(0xb1, 6, &[(OCC, 0.0)]),
            uplink(0xb2, 4, &[(OCC, 1.0)]),
            uplink(0xb3, 25, &[(OCC, 0.0)]),
            uplink(0xb4, 180, &[(OCC, 0.0)]),
            uplink(0xb4, 5, &[(Quantity::Battery, 87.0)]),
            uplink(0xb5, 1, &[(OCC, 0.0)]),
            uplink(0xc1, 40, &[(OCC, 0.0)]),
            uplink(0xd0, 1, &[(FREE, 9.0)]),
            uplink(0xd1, 1, &[(OCC, 0.0)]),
            uplink(0xe0, 15, &[(FREE, 70.0)]),
            uplink(0xe1, 3, &[(OCC, 1.0)]),
        ],
        ..Batch::default()
    };
    store.write_batch(&batch).await.unwrap();
    store
}

#[tokio::test]
async fn signals_and_realtime_per_site() {
    let store = city().await;
    let all = store
        .parking_signals(None, now(), &windows())
        .await
        .unwrap();
    let uids: Vec<&str> = all.iter().map(|s| s.site_uid.as_str()).collect();
    assert_eq!(uids, ["a", "b", "c", "d", "e", "f"]);
    let get = |uid: &str| all.iter().find(|s| s.site_uid == uid).unwrap().clone();

    let a = get("a");
    assert_eq!(
        a.counter,
        Some(Observed {
            value: 42.0,
            time: ago(2)
        })
    );
    assert_eq!((a.fresh_bays, a.free_bays), (2, 2));
    let b = get("b");
    assert_eq!(b.counter, None);
    assert_eq!((b.fresh_bays, b.free_bays), (3, 2), "{b:?}");
    assert_eq!(b.bays_updated_at, Some(ago(4)));
    assert_eq!(
        b.last_seen,
        Some(ago(4)),
        "the private bay's uplink does not count"
    );
    assert_eq!(get("c").last_seen, Some(ago(40)));
    assert_eq!(
        get("d"),
        SiteSignals::none("d"),
        "private devices are invisible"
    );
    assert_eq!(get("f"), SiteSignals::none("f"));

    let realtime = |s: &SiteSignals| {
        site_realtime(100, Some("24/7"), s, now(), &windows())
            .map(|r| (r.source, r.free_capacity, r.capacity, r.updated_at))
    };
    use RealtimeSource::{Bays, Counter};
    assert_eq!(realtime(&a), Some((Counter, 42, 100, ago(2))));
    assert_eq!(realtime(&b), Some((Bays, 2, 3, ago(4))));
    assert_eq!(realtime(&get("c")), None, "stale after 30 min");
    assert_eq!(realtime(&get("d")), None);
    assert_eq!(realtime(&get("e")), Some((Bays, 0, 1, ago(3))));
    assert_eq!(realtime(&get("f")), None);

    // One site only; an unknown uid gives no row.
    let only = store
        .parking_signals(Some("b"), now(), &windows())
        .await
        .unwrap();
    assert_eq!(only, vec![b]);
    let none = store
        .parking_signals(Some("nope"), now(), &windows())
        .await
        .unwrap();
    assert!(none.is_empty());

    // The bay window follows `now`: an hour later every bay has gone quiet.
    let later = store
        .parking_signals(Some("b"), now() + Duration::hours(1), &windows())
        .await
        .unwrap();
    assert_eq!((later[0].fresh_bays, later[0].free_bays), (0, 0));
}

#[tokio::test]
async fn bays_with_status_hide_private_and_unlocated_ones() {
    let store = city().await;
    // A public bay of b without a location is not a spot.
    let mut unlocated = dev(0xb6, DeviceKind::ParkingBay, "b", Visibility::Public);
    unlocated.location = None;
    store.import_devices(&[unlocated]).await.unwrap();

    let bays = store.parking_bays(Some("b")).await.unwrap();
    let got: Vec<(u64, SpotStatus, Option<DateTime<Utc>>)> = bays
        .iter()
        .map(|b| {
            (
                b.dev_eui.0,
                spot_status(b, now(), windows().bay_fresh),
                b.occupied.map(|o| o.time),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0xb1, SpotStatus::Available, Some(ago(6))),
            (0xb2, SpotStatus::Taken, Some(ago(4))),
            (0xb3, SpotStatus::Unknown, Some(ago(25))),
            (0xb4, SpotStatus::Available, Some(ago(180))),
        ]
    );
    assert_eq!(bays[0].site_uid.as_deref(), Some("b"));
    assert_eq!(bays[0].name.as_deref(), Some("dev 177"));
    assert!((bays[0].lon - (7.4653 + 177.0 * 1e-4)).abs() < 1e-9);

    let all = store.parking_bays(None).await.unwrap();
    let euis: Vec<u64> = all.iter().map(|b| b.dev_eui.0).collect();
    assert_eq!(euis, [0xa1, 0xa2, 0xb1, 0xb2, 0xb3, 0xb4, 0xc1, 0xe1]);
    assert!(store.parking_bays(Some("nope")).await.unwrap().is_empty());
}

// ---- history ----------------------------------------------------------------------------------

#[tokio::test]
async fn history_is_time_weighted_per_bucket_from_counters_or_bays() {
    use stadtpuls_store::aggregates::BucketWidth;
    use stadtpuls_store::parking_history::HistorySource;
    let store = city().await;
    let grid = store
        .bucket_grid(ago(240), now(), BucketWidth::Hour, "Europe/Berlin")
        .await
        .unwrap();
    let starts: Vec<DateTime<Utc>> = grid.iter().map(|g| g.0).collect();
    assert_eq!(starts, [ago(240), ago(180), ago(120), ago(60)]);
    let history = |uid: &'static str| {
        let (store, grid) = (store.clone(), grid.clone());
        async move {
            let (source, buckets) = store
                .parking_history(uid, 100, grid, Duration::minutes(10), Duration::minutes(20))
                .await
                .unwrap();
            let rows: Vec<(Option<f64>, Option<f64>, f64)> = buckets
                .iter()
                .map(|b| (b.free, b.occupied, b.coverage))
                .collect();
            (source, rows)
        }
    };
    let empty = (None, None, 0.0);
    // b: bays only. 19:00–20:00: b4 free for 20 min (its 19:00 reading holds 20 min) = 1/3 of a
    // free bay, 1/12 coverage of four bays. 21:00–22:00: b1 free 6 min, b2 taken 4 min, b3 free
    // 20 min; the private b5 and b4's battery-only uplink do not count.
    assert_eq!(
        history("b").await,
        (
            HistorySource::Bays,
            vec![
                empty,
                (Some(0.333), Some(0.0), 0.083),
                empty,
                (Some(0.433), Some(0.067), 0.125)
            ]
        )
    );
    // a: the counter wins; 42 free from 21:58 until the grid ends at 22:00.
    assert_eq!(
        history("a").await,
        (
            HistorySource::Counter,
            vec![empty, empty, empty, (Some(42.0), Some(58.0), 0.033)]
        )
    );
    // d has only private devices, f none at all.
    for uid in ["d", "f"] {
        assert_eq!(history(uid).await, (HistorySource::None, vec![empty; 4]));
    }
}

#[tokio::test]
async fn day_buckets_of_the_grid_follow_local_midnight_across_dst() {
    use stadtpuls_store::aggregates::BucketWidth;
    let store = fresh_store().await.unwrap();
    // Berlin switches to summer time on 2026-03-29: that local day has 23 hours.
    let grid = store
        .bucket_grid(
            t("2026-03-28T00:00:00Z"),
            t("2026-03-30T21:00:00Z"),
            BucketWidth::Day,
            "Europe/Berlin",
        )
        .await
        .unwrap();
    assert_eq!(
        grid,
        vec![
            (t("2026-03-27T23:00:00Z"), t("2026-03-28T23:00:00Z")),
            (t("2026-03-28T23:00:00Z"), t("2026-03-29T22:00:00Z")),
            (t("2026-03-29T22:00:00Z"), t("2026-03-30T22:00:00Z")),
        ]
    );
    let err = store
        .bucket_grid(now(), now(), BucketWidth::Hour, "Europe/Berlin")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid { field: "from", .. }),
        "{err}"
    );
    let err = store
        .bucket_grid(ago(60), now(), BucketWidth::Hour, "Mars/Olympus")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "timezone",
                ..
            }
        ),
        "{err}"
    );
}
