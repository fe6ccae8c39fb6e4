//! Aggregation tests: bucket grids, values and counter increments on the real PostgreSQL +
//! TimescaleDB, each on a fresh, migrated database.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeDelta, Utc};
use stadtpuls_gateways::{DevEui, Quantity};
use stadtpuls_store::aggregates::{Agg, AggregateBucket, BucketWidth};
use stadtpuls_store::testing::fresh_store;
use stadtpuls_store::{Batch, Store, StoreError, UplinkRecord};
use std::time::Instant;

const DEV: DevEui = DevEui(0x70b3d57ed0000001);
const OTHER_DEV: DevEui = DevEui(0x70b3d57ed0000002);
const BERLIN: &str = "Europe/Berlin";

fn t(s: &str) -> DateTime<Utc> {
    stadtpuls_store::testing::utc(s)
}

/// One uplink carrying one reading (dedup keys stay unique per device, quantity and time).
fn uplink(eui: DevEui, quantity: Quantity, at: DateTime<Utc>, value: f64) -> UplinkRecord {
    let key = format!("{eui}-{}-{}", quantity.id(), at.timestamp_micros());
    stadtpuls_store::testing::uplink_record(&key, eui, at, &[(quantity, value)])
}

async fn store_with(readings: &[(DevEui, Quantity, &str, f64)]) -> Store {
    let store = fresh_store().await.unwrap();
    let batch = Batch {
        uplinks: readings
            .iter()
            .map(|(eui, q, at, v)| uplink(*eui, *q, t(at), *v))
            .collect(),
        ..Default::default()
    };
    let out = store.write_batch(&batch).await.unwrap();
    assert_eq!(out.readings, readings.len());
    store
}

/// A bucket as `(start, end, count, avg, min, max, sum)` for compact expectations.
type Row = (
    &'static str,
    &'static str,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn check(got: &[AggregateBucket], want: &[Row]) {
    let want: Vec<AggregateBucket> = want
        .iter()
        .map(|&(start, end, count, avg, min, max, sum)| AggregateBucket {
            start: t(start),
            end: t(end),
            count,
            avg,
            min,
            max,
            sum,
        })
        .collect();
    assert_eq!(got, want.as_slice());
}

async fn hourly(store: &Store, q: Quantity, from: &str, to: &str) -> Vec<AggregateBucket> {
    store
        .aggregates(DEV, q, t(from), t(to), BucketWidth::Hour, BERLIN)
        .await
        .unwrap()
}

#[tokio::test]
async fn hourly_buckets_include_an_empty_one_and_nothing_of_other_series() {
    use Quantity::{Humidity, Temperature};
    let store = store_with(&[
        (DEV, Temperature, "2024-05-01T09:59:59Z", 100.0), // before the window
        (DEV, Temperature, "2024-05-01T10:05:00Z", 20.0),
        (DEV, Temperature, "2024-05-01T10:35:00Z", 22.0),
        (DEV, Temperature, "2024-05-01T10:55:00Z", 24.0),
        (DEV, Temperature, "2024-05-01T12:00:00Z", 18.0), // a bucket start belongs to it
        (DEV, Temperature, "2024-05-01T12:59:59Z", 19.0),
        (DEV, Temperature, "2024-05-01T13:00:00Z", 100.0), // `to` is exclusive
        (DEV, Humidity, "2024-05-01T11:30:00Z", 55.0),     // other quantity
        (OTHER_DEV, Temperature, "2024-05-01T11:30:00Z", 99.0), // other device
    ])
    .await;
    let want: [Row; 3] = [
        (
            "2024-05-01T10:00:00Z",
            "2024-05-01T11:00:00Z",
            3,
            Some(22.0),
            Some(20.0),
            Some(24.0),
            Some(66.0),
        ),
        (
            "2024-05-01T11:00:00Z",
            "2024-05-01T12:00:00Z",
            0,
            None,
            None,
            None,
            None,
        ),
        (
            "2024-05-01T12:00:00Z",
            "2024-05-01T13:00:00Z",
            2,
            Some(18.5),
            Some(18.0),
            Some(19.0),
            Some(37.0),
        ),
    ];
    check(
        &hourly(
            &store,
            Temperature,
            "2024-05-01T10:00:00Z",
            "2024-05-01T13:00:00Z",
        )
        .await,
        &want,
    );
    // An unaligned window selects the same buckets, and each still covers its whole hour.
    check(
        &hourly(
            &store,
            Temperature,
            "2024-05-01T10:30:00Z",
            "2024-05-01T12:00:00.000001Z",
        )
        .await,
        &want,
    );
    // The other device's reading is its own.
    let other = store
        .aggregates(
            OTHER_DEV,
            Temperature,
            t("2024-05-01T11:00:00Z"),
            t("2024-05-01T12:00:00Z"),
            BucketWidth::Hour,
            BERLIN,
        )
        .await
        .unwrap();
    check(
        &other,
        &[(
            "2024-05-01T11:00:00Z",
            "2024-05-01T12:00:00Z",
            1,
            Some(99.0),
            Some(99.0),
            Some(99.0),
            Some(99.0),
        )],
    );
}

#[tokio::test]
async fn quarter_hour_buckets() {
    use Quantity::Co2;
    let store = store_with(&[
        (DEV, Co2, "2024-05-01T10:00:00Z", 400.0),
        (DEV, Co2, "2024-05-01T10:14:59Z", 600.0),
        (DEV, Co2, "2024-05-01T10:15:00Z", 800.0),
        (DEV, Co2, "2024-05-01T10:44:00Z", 1000.0),
    ])
    .await;
    let got = store
        .aggregates(
            DEV,
            Co2,
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T11:00:00Z"),
            BucketWidth::Minutes15,
            BERLIN,
        )
        .await
        .unwrap();
    check(
        &got,
        &[
            (
                "2024-05-01T10:00:00Z",
                "2024-05-01T10:15:00Z",
                2,
                Some(500.0),
                Some(400.0),
                Some(600.0),
                Some(1000.0),
            ),
            (
                "2024-05-01T10:15:00Z",
                "2024-05-01T10:30:00Z",
                1,
                Some(800.0),
                Some(800.0),
                Some(800.0),
                Some(800.0),
            ),
            (
                "2024-05-01T10:30:00Z",
                "2024-05-01T10:45:00Z",
                1,
                Some(1000.0),
                Some(1000.0),
                Some(1000.0),
                Some(1000.0),
            ),
            (
                "2024-05-01T10:45:00Z",
                "2024-05-01T11:00:00Z",
                0,
                None,
                None,
                None,
                None,
            ),
        ],
    );
}

#[tokio::test]
async fn day_buckets_follow_berlin_midnight_across_dst_changes() {
    use Quantity::Temperature;
    let store = store_with(&[
        (DEV, Temperature, "2024-03-30T22:59:59Z", 100.0), // 23:59:59 CET on the 30th
        (DEV, Temperature, "2024-03-30T23:00:00Z", 1.0),   // 00:00 CET on the 31st
        (DEV, Temperature, "2024-03-31T21:59:59Z", 3.0),   // 23:59:59 CEST on the 31st
        (DEV, Temperature, "2024-03-31T22:00:00Z", 4.0),   // 00:00 CEST on 1 April
        (DEV, Temperature, "2024-10-27T12:00:00Z", 7.0),
    ])
    .await;
    let days = |from: &'static str, to: &'static str, tz: &'static str| {
        let store = store.clone();
        async move {
            store
                .aggregates(DEV, Temperature, t(from), t(to), BucketWidth::Day, tz)
                .await
                .unwrap()
        }
    };

    // Spring forward: the 31st is 23 h long.
    let got = days("2024-03-30T23:00:00Z", "2024-04-01T22:00:00Z", BERLIN).await;
    check(
        &got,
        &[
            (
                "2024-03-30T23:00:00Z",
                "2024-03-31T22:00:00Z",
                2,
                Some(2.0),
                Some(1.0),
                Some(3.0),
                Some(4.0),
            ),
            (
                "2024-03-31T22:00:00Z",
                "2024-04-01T22:00:00Z",
                1,
                Some(4.0),
                Some(4.0),
                Some(4.0),
                Some(4.0),
            ),
        ],
    );
    assert_eq!(got[0].end - got[0].start, TimeDelta::hours(23));

    // Any instant of a local day selects that day: noon UTC on the 30th is still the 30th.
    let got = days("2024-03-30T12:00:00Z", "2024-03-30T23:00:01Z", BERLIN).await;
    assert_eq!(
        got.iter().map(|b| (b.start, b.count)).collect::<Vec<_>>(),
        vec![
            (t("2024-03-29T23:00:00Z"), 1),
            (t("2024-03-30T23:00:00Z"), 2)
        ]
    );

    // Fall back: the 27th of October is 25 h long.
    let got = days("2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z", BERLIN).await;
    check(
        &got,
        &[(
            "2024-10-26T22:00:00Z",
            "2024-10-27T23:00:00Z",
            1,
            Some(7.0),
            Some(7.0),
            Some(7.0),
            Some(7.0),
        )],
    );

    // The zone is a parameter: in UTC the same readings fall into other days.
    let got = days("2024-03-30T00:00:00Z", "2024-04-01T00:00:00Z", "UTC").await;
    assert_eq!(
        got.iter()
            .map(|b| (b.start, b.end, b.count))
            .collect::<Vec<_>>(),
        vec![
            (t("2024-03-30T00:00:00Z"), t("2024-03-31T00:00:00Z"), 2),
            (t("2024-03-31T00:00:00Z"), t("2024-04-01T00:00:00Z"), 2),
        ]
    );
}

#[tokio::test]
async fn counter_sums_are_increments_across_resets_and_from_the_reading_before() {
    use Quantity::{PeopleIn, PeopleOut};
    let store = store_with(&[
        (DEV, PeopleIn, "2024-05-01T09:50:00Z", 10.0), // before the window
        (DEV, PeopleIn, "2024-05-01T10:10:00Z", 15.0), // +5
        (DEV, PeopleIn, "2024-05-01T10:40:00Z", 22.0), // +7
        (DEV, PeopleIn, "2024-05-01T11:20:00Z", 3.0),  // reset: +3
        (DEV, PeopleIn, "2024-05-01T12:30:00Z", 8.0),  // +5
        (DEV, PeopleIn, "2024-05-01T13:30:00Z", 50.0), // after the window
        // Readings of other series in between must not become predecessors.
        (DEV, PeopleOut, "2024-05-01T10:20:00Z", 1000.0),
        (OTHER_DEV, PeopleIn, "2024-05-01T10:30:00Z", 0.0),
    ])
    .await;
    check(
        &hourly(
            &store,
            PeopleIn,
            "2024-05-01T10:00:00Z",
            "2024-05-01T13:00:00Z",
        )
        .await,
        &[
            (
                "2024-05-01T10:00:00Z",
                "2024-05-01T11:00:00Z",
                2,
                Some(18.5),
                Some(15.0),
                Some(22.0),
                Some(12.0),
            ),
            (
                "2024-05-01T11:00:00Z",
                "2024-05-01T12:00:00Z",
                1,
                Some(3.0),
                Some(3.0),
                Some(3.0),
                Some(3.0),
            ),
            (
                "2024-05-01T12:00:00Z",
                "2024-05-01T13:00:00Z",
                1,
                Some(8.0),
                Some(8.0),
                Some(8.0),
                Some(5.0),
            ),
        ],
    );

    // From the device's very first reading on: nothing is known about its own increment.
    let got = hourly(
        &store,
        PeopleIn,
        "2024-05-01T09:00:00Z",
        "2024-05-01T11:00:00Z",
    )
    .await;
    assert_eq!(
        got.iter().map(|b| (b.count, b.sum)).collect::<Vec<_>>(),
        vec![(1, None), (2, Some(12.0))]
    );

    // A day: all increments of the day, the first one from the 09:50 reading.
    let got = store
        .aggregates(
            DEV,
            PeopleIn,
            t("2024-05-01T10:00:00Z"),
            t("2024-05-01T11:00:00Z"),
            BucketWidth::Day,
            BERLIN,
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|b| (b.start, b.count, b.sum))
            .collect::<Vec<_>>(),
        vec![(
            t("2024-04-30T22:00:00Z"),
            6,
            Some(5.0 + 7.0 + 3.0 + 5.0 + 42.0)
        )]
    );

    // Buckets are whole: the 11:20 reading's predecessor is 10:40 (before the span), and the
    // 12:30 reading is in although the window ends at 12:30.
    let got = hourly(
        &store,
        PeopleIn,
        "2024-05-01T11:20:00Z",
        "2024-05-01T12:30:00Z",
    )
    .await;
    assert_eq!(
        got.iter().map(|b| (b.count, b.sum)).collect::<Vec<_>>(),
        vec![(1, Some(3.0)), (1, Some(5.0))]
    );
    // A bucket without readings of a counter is empty, though other series have readings.
    let got = hourly(
        &store,
        PeopleOut,
        "2024-05-01T11:00:00Z",
        "2024-05-01T12:00:00Z",
    )
    .await;
    assert_eq!(
        got.iter().map(|b| (b.count, b.sum)).collect::<Vec<_>>(),
        vec![(0, None)]
    );
}

#[tokio::test]
async fn a_leap_year_of_hourly_buckets() {
    use Quantity::Temperature;
    // One reading at noon UTC of every day of 2024.
    let start = t("2024-01-01T12:00:00Z");
    let store = fresh_store().await.unwrap();
    let batch = Batch {
        uplinks: (0..366)
            .map(|d| uplink(DEV, Temperature, start + TimeDelta::days(d), d as f64))
            .collect(),
        ..Default::default()
    };
    store.write_batch(&batch).await.unwrap();

    let began = Instant::now();
    let got = hourly(
        &store,
        Temperature,
        "2024-01-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
    )
    .await;
    let took = began.elapsed();
    assert_eq!(got.len(), 8784);
    assert_eq!(got[0].start, t("2024-01-01T00:00:00Z"));
    assert_eq!(got[8783].end, t("2025-01-01T00:00:00Z"));
    assert!(got.windows(2).all(|w| w[0].end == w[1].start));
    assert!(got.iter().all(|b| b.end - b.start == TimeDelta::hours(1)));
    assert_eq!(got.iter().map(|b| b.count).sum::<i64>(), 366);
    assert_eq!(got[12].sum, Some(0.0));
    assert_eq!(got[8783 - 11].avg, Some(365.0));
    assert!(took.as_secs() < 10, "took {took:?}");

    // And in days of Berlin: 366 of them, two of them not 24 h long.
    let days = store
        .aggregates(
            DEV,
            Temperature,
            t("2023-12-31T23:00:00Z"),
            t("2024-12-31T23:00:00Z"),
            BucketWidth::Day,
            BERLIN,
        )
        .await
        .unwrap();
    assert_eq!(days.len(), 366);
    assert!(days.iter().all(|b| b.count == 1));
    let odd: Vec<_> = days
        .iter()
        .filter(|b| b.end - b.start != TimeDelta::hours(24))
        .map(|b| (b.start, (b.end - b.start).num_hours()))
        .collect();
    assert_eq!(
        odd,
        vec![
            (t("2024-03-30T23:00:00Z"), 23),
            (t("2024-10-26T22:00:00Z"), 25)
        ]
    );
}

#[tokio::test]
async fn bad_input_is_invalid_not_a_database_error() {
    use Quantity::Temperature;
    let store = store_with(&[(DEV, Temperature, "2024-05-01T10:00:00Z", 1.0)]).await;
    let field = |r: Result<Vec<AggregateBucket>, StoreError>| match r {
        Err(StoreError::Invalid { field, .. }) => field,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let (from, to) = (t("2024-05-01T00:00:00Z"), t("2024-05-02T00:00:00Z"));
    for width in BucketWidth::ALL {
        let r = store
            .aggregates(DEV, Temperature, from, to, width, "Mars/Olympus_Mons")
            .await;
        assert_eq!(field(r), "timezone", "{width}");
    }
    let r = store
        .aggregates(DEV, Temperature, to, from, BucketWidth::Hour, BERLIN)
        .await;
    assert_eq!(field(r), "from");
    let r = store
        .aggregates(DEV, Temperature, from, from, BucketWidth::Hour, BERLIN)
        .await;
    assert_eq!(field(r), "from");
    let year = t("2025-01-01T00:00:00Z");
    let r = store
        .aggregates(
            DEV,
            Temperature,
            t("2024-01-01T00:00:00Z"),
            year,
            BucketWidth::Minutes15,
            BERLIN,
        )
        .await;
    assert_eq!(field(r), "bucket");

    store.check_time_zone(BERLIN).await.unwrap();
    store.check_time_zone("UTC").await.unwrap();
    match store.check_time_zone("Mars/Olympus_Mons").await {
        Err(StoreError::Invalid { field, problem }) => {
            assert_eq!(field, "timezone");
            assert!(problem.contains("Mars/Olympus_Mons"), "{problem}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn names_round_trip() {
    for w in BucketWidth::ALL {
        assert_eq!(w.as_str().parse::<BucketWidth>(), Ok(w));
    }
    for a in Agg::ALL {
        assert_eq!(a.as_str().parse::<Agg>(), Ok(a));
    }
    assert!("1w".parse::<BucketWidth>().is_err());
    assert!("1H".parse::<BucketWidth>().is_err());
    assert!("median".parse::<Agg>().is_err());
}

#[test]
fn bucket_counts() {
    use BucketWidth::{Day, Hour, Minutes15};
    let cases = [
        // An aligned window.
        ("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", Hour, 1),
        ("2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", Minutes15, 4),
        // Unaligned ends take in the buckets holding them.
        ("2024-05-01T10:30:00Z", "2024-05-01T12:30:00Z", Hour, 3),
        ("2024-05-01T10:05:00Z", "2024-05-01T10:06:00Z", Minutes15, 1),
        // The leap year 2024.
        ("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", Hour, 8784),
        (
            "2024-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            Minutes15,
            35136,
        ),
        // Days: an upper bound without knowing the zone (2 Berlin days here).
        ("2024-03-30T23:00:00Z", "2024-04-01T22:00:00Z", Day, 4),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", Hour, 0),
    ];
    for (from, to, w, n) in cases {
        assert_eq!(w.bucket_count(t(from), t(to)), n, "{from}..{to} {w}");
    }
}
