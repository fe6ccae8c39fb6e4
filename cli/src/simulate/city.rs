//! The simulated city: places (car parks, buildings, lamp posts, roadside sites, gateways) in
//! central Dortmund, local time, and the slow deterministic signals every sensor shares
//! (weather, climate normals, parking demand).
//!
//! Everything here is a pure function of its inputs; per-device randomness lives in
//! [`super::devices`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc, Weekday};
use std::f64::consts::TAU;

/// Metres per degree of latitude (WGS84, good enough at city scale).
const M_PER_DEG_LAT: f64 = 111_320.0;

/// `(lat, lon)` moved by `east_m`/`north_m` metres.
pub(crate) fn offset(lat: f64, lon: f64, east_m: f64, north_m: f64) -> (f64, f64) {
    let dlat = north_m / M_PER_DEG_LAT;
    let dlon = east_m / (M_PER_DEG_LAT * lat.to_radians().cos());
    (lat + dlat, lon + dlon)
}

/// Ground distance in metres (equirectangular; fine below a few kilometres).
pub(crate) fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let mean_lat = ((a.0 + b.0) / 2.0).to_radians();
    let dy = (a.0 - b.0) * M_PER_DEG_LAT;
    let dx = (a.1 - b.1) * M_PER_DEG_LAT * mean_lat.cos();
    dx.hypot(dy)
}

/// Who parks where, and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Demand {
    /// Station car park: commuters, full on weekdays from early morning.
    Commuter,
    /// Shopping street: busy while shops are open (Mon–Sat), empty on Sundays.
    Shopping,
    /// Lakeside promenade: afternoons, evenings and weekends.
    Leisure,
}

/// A car park or on-street zone with single-bay sensors and one entrance counter.
#[derive(Debug)]
pub(crate) struct CarPark {
    pub site_id: &'static str,
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Spaces the entrance counter reports on (the whole car park, not just the sensed bays).
    pub capacity: u32,
    pub demand: Demand,
    /// Mean time a car stays, minutes.
    pub mean_stay_min: f64,
}

pub(crate) const CAR_PARKS: [CarPark; 3] = [
    CarPark {
        site_id: "dortmund-hbf-nord",
        name: "Parkhaus Hauptbahnhof Nord",
        lat: 51.5186,
        lon: 7.4589,
        capacity: 420,
        demand: Demand::Commuter,
        mean_stay_min: 90.0,
    },
    CarPark {
        site_id: "westenhellweg-kampstrasse",
        name: "Kampstraße / Westenhellweg",
        lat: 51.5136,
        lon: 7.4650,
        capacity: 310,
        demand: Demand::Shopping,
        mean_stay_min: 45.0,
    },
    CarPark {
        site_id: "phoenix-see-nord",
        name: "Phoenix-See Nordufer",
        lat: 51.4893,
        lon: 7.5079,
        capacity: 180,
        demand: Demand::Leisure,
        mean_stay_min: 75.0,
    },
];

/// A municipal building with climate sensors in some rooms.
#[derive(Debug)]
pub(crate) struct Building {
    pub id: &'static str,
    pub name: &'static str,
    pub lat: f64,
    pub lon: f64,
}

pub(crate) const BUILDINGS: [Building; 2] = [
    Building {
        id: "rathaus",
        name: "Rathaus",
        lat: 51.5139,
        lon: 7.4653,
    },
    Building {
        id: "stadthaus",
        name: "Stadthaus",
        lat: 51.5117,
        lon: 7.4628,
    },
];

/// Lamp posts carrying outdoor climate stations.
pub(crate) const LAMP_POSTS: [(&str, f64, f64); 12] = [
    ("Friedensplatz", 51.5128, 7.4663),
    ("Alter Markt", 51.5139, 7.4661),
    ("Reinoldikirche", 51.5141, 7.4683),
    ("Hansaplatz", 51.5128, 7.4630),
    ("Dortmunder U", 51.5156, 7.4528),
    ("Nordmarkt", 51.5262, 7.4552),
    ("Borsigplatz", 51.5243, 7.4857),
    ("Stadtgarten", 51.5104, 7.4657),
    ("Westpark", 51.5106, 7.4455),
    ("Kaiserstraße", 51.5144, 7.4816),
    ("Westfalenpark", 51.4960, 7.4760),
    ("Phoenix-See Hafen", 51.4877, 7.5050),
];

/// Roadside air-quality nodes (busy streets and the ring).
pub(crate) const ROADSIDE: [(&str, f64, f64); 8] = [
    ("Brackeler Straße", 51.5229, 7.5002),
    ("Steinstraße", 51.5205, 7.4593),
    ("Königswall", 51.5165, 7.4570),
    ("Ruhrallee", 51.5024, 7.4775),
    ("Rheinlanddamm", 51.5027, 7.4600),
    ("Mallinckrodtstraße", 51.5267, 7.4618),
    ("Schwanenwall", 51.5165, 7.4745),
    ("Hiltropwall", 51.5108, 7.4600),
];

/// A LoRaWAN gateway of the city network.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// TTS gateway id.
    pub id: &'static str,
    /// 16 lowercase hex digits (ChirpStack `gatewayId`, TTS `eui` in upper case).
    pub eui: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Antenna height above sea level, metres.
    pub alt: i32,
}

pub(crate) const GATEWAYS: [Gateway; 6] = [
    Gateway {
        id: "dortmund-rathaus",
        eui: "7276ff000b0324e1",
        lat: 51.5137,
        lon: 7.4655,
        alt: 112,
    },
    Gateway {
        id: "dortmund-u-turm",
        eui: "7276ff000b0324e2",
        lat: 51.5154,
        lon: 7.4531,
        alt: 148,
    },
    Gateway {
        id: "dortmund-hbf",
        eui: "0016c001ff1a7f03",
        lat: 51.5196,
        lon: 7.4597,
        alt: 96,
    },
    Gateway {
        id: "dortmund-florianturm",
        eui: "0016c001ff1a7f04",
        lat: 51.4957,
        lon: 7.4777,
        alt: 291,
    },
    Gateway {
        id: "dortmund-phoenix-see",
        eui: "b827ebfffe61c805",
        lat: 51.4874,
        lon: 7.5041,
        alt: 121,
    },
    Gateway {
        id: "dortmund-borsigplatz",
        eui: "b827ebfffe61c806",
        lat: 51.5249,
        lon: 7.4851,
        alt: 104,
    },
];

/// Local (Europe/Berlin) wall-clock facts a sensor's behaviour depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LocalTime {
    pub weekday: Weekday,
    /// Hour of the day with fraction, 0 ≤ h < 24.
    pub hour: f64,
    /// Day of the year with fraction (0 = 1 January).
    pub day_of_year: f64,
}

impl LocalTime {
    /// Converts with the EU daylight-saving rule (CEST from the last Sunday of March to the last
    /// Sunday of October, both at 01:00 UTC), so no time-zone database is needed.
    pub fn of(now: DateTime<Utc>) -> LocalTime {
        let local = now + Duration::hours(berlin_offset_hours(now));
        LocalTime {
            weekday: local.weekday(),
            hour: f64::from(local.hour())
                + f64::from(local.minute()) / 60.0
                + f64::from(local.second()) / 3600.0,
            day_of_year: f64::from(local.ordinal0()) + f64::from(local.hour()) / 24.0,
        }
    }

    pub fn is_workday(self) -> bool {
        !matches!(self.weekday, Weekday::Sat | Weekday::Sun)
    }
}

fn berlin_offset_hours(now: DateTime<Utc>) -> i64 {
    let year = now.year();
    let switch = |month| {
        last_sunday(year, month)
            .and_then(|d| d.and_hms_opt(1, 0, 0))
            .map(|t| Utc.from_utc_datetime(&t))
    };
    match (switch(3), switch(10)) {
        (Some(start), Some(end)) if now >= start && now < end => 2,
        _ => 1,
    }
}

fn last_sunday(year: i32, month: u32) -> Option<NaiveDate> {
    let last = NaiveDate::from_ymd_opt(year, month + 1, 1)?.pred_opt()?;
    let back = i64::from(last.weekday().num_days_from_sunday());
    last.checked_sub_signed(Duration::days(back))
}

/// 0 before `a`, rising linearly to 1 at `b`, 1 until `c`, falling to 0 at `d`.
pub(crate) fn trapezoid(h: f64, a: f64, b: f64, c: f64, d: f64) -> f64 {
    if h <= a || h >= d {
        0.0
    } else if h < b {
        (h - a) / (b - a)
    } else if h <= c {
        1.0
    } else {
        (d - h) / (d - c)
    }
}

/// Long-run share of occupied bays at this local time.
pub(crate) fn parking_demand(demand: Demand, t: LocalTime) -> f64 {
    let h = t.hour;
    let (night, peak, shape) = match (demand, t.weekday) {
        (Demand::Commuter, Weekday::Sat | Weekday::Sun) => {
            (0.15, 0.45, trapezoid(h, 8.0, 11.0, 17.0, 21.0))
        }
        (Demand::Commuter, _) => (0.2, 0.92, trapezoid(h, 5.5, 8.0, 16.0, 19.5)),
        (Demand::Shopping, Weekday::Sun) => (0.05, 0.2, trapezoid(h, 11.0, 13.0, 17.0, 19.0)),
        (Demand::Shopping, Weekday::Sat) => (0.08, 0.96, trapezoid(h, 8.0, 11.0, 18.0, 21.0)),
        (Demand::Shopping, _) => (0.08, 0.85, trapezoid(h, 7.5, 10.5, 18.5, 21.0)),
        (Demand::Leisure, Weekday::Sat | Weekday::Sun) => {
            (0.1, 0.9, trapezoid(h, 9.0, 12.0, 19.0, 23.0))
        }
        (Demand::Leisure, _) => (0.1, 0.6, trapezoid(h, 8.0, 15.0, 20.0, 23.0)),
    };
    night + (peak - night) * shape
}

/// Dortmund monthly mean air temperature, °C (DWD normals, rounded), January first.
const MONTHLY_MEAN_C: [f64; 12] = [
    2.6, 3.2, 6.1, 9.6, 13.6, 16.4, 18.5, 18.0, 14.6, 10.6, 6.2, 3.4,
];
/// Half the typical daily temperature range, °C.
const MONTHLY_HALF_RANGE_C: [f64; 12] =
    [2.0, 2.5, 3.5, 4.5, 5.0, 5.0, 5.0, 5.0, 4.5, 3.5, 2.5, 2.0];

/// Interpolates a monthly table at a day of the year (values sit mid-month).
fn monthly(table: &[f64; 12], day_of_year: f64) -> f64 {
    let pos = (day_of_year / 30.44 - 0.5).rem_euclid(12.0);
    let i = pos.floor() as usize % 12;
    let frac = pos - pos.floor();
    table[i] * (1.0 - frac) + table[(i + 1) % 12] * frac
}

/// Days since the Unix epoch, with fraction: the time axis of the weather signals.
fn epoch_days(now: DateTime<Utc>) -> f64 {
    now.timestamp_millis() as f64 / 86_400_000.0
}

/// Synoptic weather: slow, smooth, the same for every sensor in town at the same moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Weather {
    /// Sea-level pressure, hPa.
    pub pressure_hpa: f64,
    /// Deviation of the air temperature from the climate normal, °C.
    pub anomaly_c: f64,
    /// 0 clear … 1 overcast.
    pub cloud: f64,
}

pub(crate) fn weather(now: DateTime<Utc>) -> Weather {
    let d = epoch_days(now);
    let wave = |period_days: f64, phase: f64| (TAU * d / period_days + phase).sin();
    let pressure_hpa = 1014.0 + 9.0 * wave(5.3, 0.0) + 4.0 * wave(2.1, 1.3);
    let anomaly_c = 3.0 * wave(6.7, 2.0) + 1.5 * wave(2.9, 0.4);
    // Low pressure brings clouds.
    let cloud = (0.55 - (pressure_hpa - 1014.0) / 20.0 + 0.15 * wave(1.3, 0.7)).clamp(0.0, 1.0);
    Weather {
        pressure_hpa,
        anomaly_c,
        cloud,
    }
}

/// Outdoor air temperature and relative humidity in the city centre, before per-sensor offsets.
pub(crate) fn outdoor_climate(now: DateTime<Utc>) -> (f64, f64) {
    let t = LocalTime::of(now);
    let w = weather(now);
    let mean = monthly(&MONTHLY_MEAN_C, t.day_of_year) + w.anomaly_c;
    // Cloud cover damps the daily cycle; the maximum is around 15:00 local time.
    let half_range = monthly(&MONTHLY_HALF_RANGE_C, t.day_of_year) * (1.0 - 0.5 * w.cloud);
    let diurnal = (TAU * (t.hour - 15.0) / 24.0).cos();
    let temp = mean + half_range * diurnal;
    let humidity =
        (76.0 + 10.0 * w.cloud - 14.0 * diurnal * (1.0 - 0.5 * w.cloud)).clamp(25.0, 99.0);
    (temp, humidity)
}

/// Soil temperature ~10 cm deep: the monthly mean, three weeks late, slightly warmer.
pub(crate) fn monthly_ground_temp(now: DateTime<Utc>) -> f64 {
    let t = LocalTime::of(now);
    monthly(&MONTHLY_MEAN_C, t.day_of_year - 21.0) + 1.0
}

/// Urban background PM2.5, µg/m³: higher in winter (heating) and under stagnant high pressure.
pub(crate) fn pm2_5_background(now: DateTime<Utc>) -> f64 {
    let t = LocalTime::of(now);
    let winter = (TAU * t.day_of_year / 365.25).cos(); // +1 in January, −1 in July
    let w = weather(now);
    let stagnant = ((w.pressure_hpa - 1014.0) / 10.0).max(0.0);
    (9.0 + 3.5 * winter + 6.0 * stagnant + 2.0 * (TAU * epoch_days(now) / 3.7).sin()).max(2.0)
}

/// Daylight factor 0…1 (0 at night), for light levels and sun-heated surfaces.
pub(crate) fn daylight(now: DateTime<Utc>) -> f64 {
    let t = LocalTime::of(now);
    // Day length in Dortmund: ~8 h in December, ~16.5 h in June.
    let season = (TAU * (t.day_of_year - 172.0) / 365.25).cos();
    let half_day = 6.2 + 2.1 * season;
    let solar_noon = 13.2;
    let x = (t.hour - solar_noon) / half_day;
    if x.abs() >= 1.0 {
        0.0
    } else {
        (1.0 - x * x) * (1.0 - 0.6 * weather(now).cloud)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn local_time_follows_daylight_saving() {
        // Winter: UTC+1; summer: UTC+2; the switch is at 01:00 UTC on the last Sunday.
        assert_eq!(LocalTime::of(at("2024-01-15T11:30:00Z")).hour, 12.5);
        assert_eq!(LocalTime::of(at("2024-07-15T11:30:00Z")).hour, 13.5);
        assert_eq!(
            LocalTime::of(at("2024-03-31T00:59:00Z")).hour,
            1.0 + 59.0 / 60.0
        );
        assert_eq!(LocalTime::of(at("2024-03-31T01:00:00Z")).hour, 3.0);
        assert_eq!(LocalTime::of(at("2024-10-27T00:30:00Z")).hour, 2.5);
        assert_eq!(LocalTime::of(at("2024-10-27T01:30:00Z")).hour, 2.5);
        assert_eq!(
            LocalTime::of(at("2024-01-15T11:30:00Z")).weekday,
            Weekday::Mon
        );
    }

    #[test]
    fn demand_is_higher_by_day() {
        let monday_noon = LocalTime::of(at("2024-01-15T11:00:00Z"));
        let monday_3am = LocalTime::of(at("2024-01-15T02:00:00Z"));
        let sunday_noon = LocalTime::of(at("2024-01-14T11:00:00Z"));
        for park in &CAR_PARKS {
            assert!(
                parking_demand(park.demand, monday_noon) > parking_demand(park.demand, monday_3am)
            );
        }
        assert!(parking_demand(Demand::Shopping, sunday_noon) < 0.3);
        assert!(parking_demand(Demand::Commuter, monday_noon) > 0.9);
    }

    #[test]
    fn climate_is_plausible_for_dortmund() {
        let (jan_night, _) = outdoor_climate(at("2024-01-15T03:00:00Z"));
        let (jul_day, jul_rh) = outdoor_climate(at("2024-07-15T13:00:00Z"));
        assert!((-12.0..12.0).contains(&jan_night), "{jan_night}");
        assert!((12.0..35.0).contains(&jul_day), "{jul_day}");
        assert!((25.0..=99.0).contains(&jul_rh));
        let w = weather(at("2024-07-15T13:00:00Z"));
        assert!((995.0..1030.0).contains(&w.pressure_hpa));
        assert_eq!(daylight(at("2024-01-15T01:00:00Z")), 0.0);
        assert!(daylight(at("2024-06-21T11:00:00Z")) > 0.3);
    }

    #[test]
    fn geometry() {
        let (lat, lon) = offset(51.5, 7.45, 100.0, -50.0);
        assert!((distance_m((51.5, 7.45), (lat, lon)) - 111.8).abs() < 0.5);
        assert!(lat < 51.5 && lon > 7.45);
    }
}
