//! What each simulated device measures and how it encodes it: per-device state that evolves
//! with wall-clock time, and the FRMPayload (plus, where the network server would have decoded
//! it, the decoded object) of its next uplink.
//!
//! Every frame also lists the canonical readings the platform must derive from it
//! ([`Frame::expected`]); the tests hold the decoders to that.

use super::city::{self, CarPark, Demand, LocalTime};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};
use stadtpuls_gateways::Quantity;

/// One uplink's application payload.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Frame {
    pub f_port: u8,
    pub bytes: Vec<u8>,
    /// The object a network-server codec would have produced; `None` = raw bytes only.
    pub object: Option<Value>,
    /// Readings the platform should store for this frame (after codec and key mapping).
    pub expected: Vec<(Quantity, f64)>,
}

/// A standard normal sample (Box–Muller), so `rand` alone suffices.
pub(crate) fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Relaxation of a value towards a target over `dt_s` with time constant `tau_s`: the share of
/// the old deviation that is left.
fn decay(dt_s: f64, tau_s: f64) -> f64 {
    (-dt_s.max(0.0) / tau_s).exp()
}

/// Per-kind behaviour and state.
#[derive(Clone, Debug)]
pub(crate) enum Behaviour {
    Bay(Bay),
    Counter(Counter),
    Room(Room),
    Outdoor(Outdoor),
    AirQuality(AirQuality),
}

impl Behaviour {
    /// The next frame at `now`; `dt_s` is the time since this device's previous uplink (`None`
    /// for its first, which starts from the long-run state for `now`).
    pub fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        match self {
            Behaviour::Bay(b) => b.next(now, dt_s, rng),
            Behaviour::Counter(c) => c.next(now, dt_s, rng),
            Behaviour::Room(r) => r.next(now, dt_s, rng),
            Behaviour::Outdoor(o) => o.next(now, dt_s, rng),
            Behaviour::AirQuality(a) => a.next(now, dt_s, rng),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parking bay: Bosch Parking Lot Sensor (TPS110), raw bytes for the platform's codec.

/// A single-bay sensor. Occupancy is a two-state Markov process whose long-run share follows the
/// car park's demand curve and whose mean stay is the car park's; a bay therefore keeps its
/// state for a while instead of flickering.
#[derive(Clone, Debug)]
pub(crate) struct Bay {
    demand: Demand,
    mean_stay_s: f64,
    /// Asphalt runs warmer or cooler than the air depending on shade.
    surface_bias_c: f64,
    pub(crate) occupied: bool,
    started: bool,
}

/// Bosch TPS110 firmware reported in the startup frame.
const BOSCH_FIRMWARE: [u8; 3] = [0, 39, 0];

impl Bay {
    pub fn new<R: Rng + ?Sized>(park: &CarPark, rng: &mut R) -> Self {
        Bay {
            demand: park.demand,
            mean_stay_s: park.mean_stay_min * 60.0,
            surface_bias_c: rng.gen_range(-1.0..2.5),
            occupied: false,
            started: false,
        }
    }

    fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        let target = city::parking_demand(self.demand, LocalTime::of(now)).clamp(0.03, 0.97);
        let p_occupied = match dt_s {
            None => target,
            Some(dt) => {
                // Leave rate 1/stay; arrive rate such that the long-run share is `target`.
                let total_rate = 1.0 / self.mean_stay_s / (1.0 - target);
                let now_state = if self.occupied { 1.0 } else { 0.0 };
                target + (now_state - target) * decay(dt, 1.0 / total_rate)
            }
        };
        let was = self.occupied;
        self.occupied = rng.gen_bool(p_occupied.clamp(0.0, 1.0));
        let flags = u8::from(self.occupied);
        let expected_occupied = (Quantity::Occupied, f64::from(flags));

        if !self.started {
            // After power-on the sensor reports a startup frame: 3 debug codes (u32 LE, 0 =
            // none), firmware version, reset cause (2 = power on), status flags.
            self.started = true;
            let mut bytes = vec![0u8; 12];
            bytes.extend_from_slice(&BOSCH_FIRMWARE);
            bytes.extend_from_slice(&[2, flags]);
            return Frame {
                f_port: 3,
                bytes,
                object: None,
                expected: vec![expected_occupied],
            };
        }
        if self.occupied != was {
            return Frame {
                f_port: 1,
                bytes: vec![flags],
                object: None,
                expected: vec![expected_occupied],
            };
        }
        // Heartbeat with the sensor's temperature (whole °C): air temperature, plus sun on the
        // asphalt, minus the shade of a parked car.
        let (air_c, _) = city::outdoor_climate(now);
        let sun = 6.0 * city::daylight(now);
        let shade = if self.occupied { 0.6 } else { 1.0 };
        let surface = air_c + sun * shade + self.surface_bias_c + 0.3 * gauss(rng);
        let temp = surface.round().clamp(-40.0, 85.0) as i8;
        Frame {
            f_port: 2,
            bytes: vec![flags, temp as u8],
            object: None,
            expected: vec![expected_occupied, (Quantity::Temperature, f64::from(temp))],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Car-park entrance counter: decoded by the network server's JS codec (ChirpStack `object`).

/// Counts cars in and out at the entrance and reports the free spaces of the whole car park.
#[derive(Clone, Debug)]
pub(crate) struct Counter {
    demand: Demand,
    pub(crate) capacity: u32,
    mean_stay_s: f64,
    /// Cars inside (continuous; reported rounded).
    occupied: Option<f64>,
    pub(crate) free: u32,
}

impl Counter {
    pub fn new(park: &CarPark) -> Self {
        Counter {
            demand: park.demand,
            capacity: park.capacity,
            mean_stay_s: park.mean_stay_min * 60.0,
            occupied: None,
            free: park.capacity,
        }
    }

    fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        let cap = f64::from(self.capacity);
        let target = city::parking_demand(self.demand, LocalTime::of(now)) * cap;
        let inside = match (self.occupied, dt_s) {
            (Some(prev), Some(dt)) => {
                let keep = decay(dt, self.mean_stay_s);
                // Arrivals and departures are random; their spread grows with the interval.
                let spread = (cap.sqrt() * 0.8) * (1.0 - keep * keep).sqrt();
                target + (prev - target) * keep + spread * gauss(rng)
            }
            _ => target + 0.03 * cap * gauss(rng),
        }
        .clamp(0.0, cap);
        self.occupied = Some(inside);
        self.free = self.capacity - (inside.round() as u32).min(self.capacity);
        // Frame: free spaces and capacity, u16 big endian; the device profile's JS codec turns
        // it into the object (ChirpStack renders every number as a float).
        let mut bytes = Vec::with_capacity(4);
        bytes.extend_from_slice(&(self.free.min(u32::from(u16::MAX)) as u16).to_be_bytes());
        bytes.extend_from_slice(&(self.capacity.min(u32::from(u16::MAX)) as u16).to_be_bytes());
        Frame {
            f_port: 10,
            bytes,
            object: Some(json!({"free_spaces": f64::from(self.free), "capacity": cap})),
            expected: vec![(Quantity::FreeSpaces, f64::from(self.free))],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Room climate: Milesight AM319 (raw bytes for the platform's codec, via TTS).

/// What a room is used for decides how many people are in it and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoomUse {
    Office,
    Meeting,
    CouncilChamber,
}

impl RoomUse {
    pub fn label(self) -> &'static str {
        match self {
            RoomUse::Office => "Büro",
            RoomUse::Meeting => "Besprechungsraum",
            RoomUse::CouncilChamber => "Sitzungssaal",
        }
    }

    fn seats(self) -> u32 {
        match self {
            RoomUse::Office => 3,
            RoomUse::Meeting => 12,
            RoomUse::CouncilChamber => 60,
        }
    }

    /// Steady-state CO₂ rise per person, ppm (room volume and ventilation).
    fn co2_per_person(self) -> f64 {
        match self {
            RoomUse::Office => 230.0,
            RoomUse::Meeting => 95.0,
            RoomUse::CouncilChamber => 22.0,
        }
    }

    /// Probability that a seat is taken at this time.
    fn presence(self, t: LocalTime) -> f64 {
        if !t.is_workday() {
            return 0.0;
        }
        let h = t.hour;
        match self {
            RoomUse::Office => {
                let lunch = if (12.0..13.0).contains(&h) { 0.5 } else { 1.0 };
                0.8 * city::trapezoid(h, 7.0, 8.5, 16.0, 18.0) * lunch
            }
            RoomUse::Meeting => 0.55 * city::trapezoid(h, 8.5, 9.5, 15.5, 17.0),
            RoomUse::CouncilChamber => {
                // Council and committee sessions on Thursday afternoons.
                if t.weekday == chrono::Weekday::Thu {
                    0.8 * city::trapezoid(h, 14.5, 15.0, 19.0, 19.5)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Indoor climate sensor on a wall; the room has a heating/cooling set point, people and windows.
#[derive(Clone, Debug)]
pub(crate) struct Room {
    pub(crate) usage: RoomUse,
    temp_bias_c: f64,
    temp_c: Option<f64>,
    co2_ppm: Option<f64>,
}

/// Saturation vapour pressure over water, hPa (Magnus formula).
fn saturation_hpa(t_c: f64) -> f64 {
    6.112 * (17.62 * t_c / (243.12 + t_c)).exp()
}

/// Pressure at street level in central Dortmund (~86 m above sea level), hPa.
fn station_pressure(now: DateTime<Utc>) -> f64 {
    city::weather(now).pressure_hpa - 10.3
}

impl Room {
    pub fn new<R: Rng + ?Sized>(usage: RoomUse, rng: &mut R) -> Self {
        Room {
            usage,
            temp_bias_c: rng.gen_range(-0.8..0.8),
            temp_c: None,
            co2_ppm: None,
        }
    }

    fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        let t = LocalTime::of(now);
        let seats = self.usage.seats();
        let presence = self.usage.presence(t);
        let people = (0..seats).filter(|_| rng.gen_bool(presence)).count() as f64;

        // CO₂ relaxes towards outdoor air plus what the people breathe out (τ ≈ 40 min).
        let co2_target = 420.0 + people * self.usage.co2_per_person();
        let co2 = match (self.co2_ppm, dt_s) {
            (Some(prev), Some(dt)) => co2_target + (prev - co2_target) * decay(dt, 2400.0),
            _ => co2_target,
        } + 6.0 * gauss(rng);
        let co2 = co2.clamp(380.0, 5000.0);
        self.co2_ppm = Some(co2);

        // Heating set point in working hours, night set-back; in summer the building follows
        // the outdoor air. People warm the room a little (τ ≈ 90 min).
        let (outdoor_c, outdoor_rh) = city::outdoor_climate(now);
        let working = t.is_workday() && (6.0..18.0).contains(&t.hour);
        let set_point: f64 = if working { 21.5 } else { 18.5 };
        let temp_target = set_point.max(0.45 * outdoor_c + 12.5)
            + self.temp_bias_c
            + (people / f64::from(seats)) * 1.5;
        let temp = match (self.temp_c, dt_s) {
            (Some(prev), Some(dt)) => temp_target + (prev - temp_target) * decay(dt, 5400.0),
            _ => temp_target,
        } + 0.05 * gauss(rng);
        self.temp_c = Some(temp);

        // Same water vapour as outside, warmed up (winter air indoors is dry), plus people.
        let rh = (outdoor_rh * saturation_hpa(outdoor_c) / saturation_hpa(temp)
            + people * 12.0 / f64::from(seats)
            + 0.5 * gauss(rng))
        .clamp(15.0, 85.0);

        let pir = people > 0.0 && rng.gen_bool(0.9);
        let light_level: u8 = if people > 0.0 {
            4 + u8::from(city::daylight(now) > 0.5)
        } else {
            (city::daylight(now) * 2.5).round() as u8
        };
        let tvoc = (60.0 + 140.0 * people / f64::from(seats) + 10.0 * gauss(rng)).max(0.0);
        let pressure = station_pressure(now) + 0.1 * gauss(rng);
        let hcho = (0.02 + 0.02 * people / f64::from(seats) + 0.003 * gauss(rng)).max(0.0);
        let pm2_5 = (0.5 * city::pm2_5_background(now) + 1.0 + gauss(rng)).max(0.0);
        let pm10 = pm2_5 * 1.4 + 0.5 * gauss(rng).abs();

        // Quantise exactly as the device does, then encode (Milesight: channel id, channel type,
        // little-endian value).
        let temp_raw = (temp * 10.0).round() as i16;
        let rh_raw = (rh * 2.0).round() as u8;
        let co2_raw = co2.round() as u16;
        let tvoc_raw = tvoc.round() as u16;
        let pressure_raw = (pressure * 10.0).round() as u16;
        let hcho_raw = (hcho * 100.0).round() as u16;
        let pm2_5_raw = pm2_5.round() as u16;
        let pm10_raw = pm10.round() as u16;

        let mut b = Vec::with_capacity(34);
        b.extend_from_slice(&[0x03, 0x67]);
        b.extend_from_slice(&temp_raw.to_le_bytes());
        b.extend_from_slice(&[0x04, 0x68, rh_raw]);
        b.extend_from_slice(&[0x05, 0x00, u8::from(pir)]);
        b.extend_from_slice(&[0x06, 0xCB, light_level]);
        for (channel, raw) in [(0x07u8, co2_raw), (0x08, tvoc_raw)] {
            b.extend_from_slice(&[channel, 0x7D]);
            b.extend_from_slice(&raw.to_le_bytes());
        }
        b.extend_from_slice(&[0x09, 0x73]);
        b.extend_from_slice(&pressure_raw.to_le_bytes());
        for (channel, raw) in [(0x0Au8, hcho_raw), (0x0B, pm2_5_raw), (0x0C, pm10_raw)] {
            b.extend_from_slice(&[channel, 0x7D]);
            b.extend_from_slice(&raw.to_le_bytes());
        }

        Frame {
            f_port: 85,
            bytes: b,
            object: None,
            expected: vec![
                (Quantity::Temperature, f64::from(temp_raw) / 10.0),
                (Quantity::Humidity, f64::from(rh_raw) / 2.0),
                (Quantity::Co2, f64::from(co2_raw)),
                (Quantity::Tvoc, f64::from(tvoc_raw)),
                (Quantity::Pressure, f64::from(pressure_raw) / 10.0),
                (Quantity::Hcho, f64::from(hcho_raw) / 100.0),
                (Quantity::Pm2_5, f64::from(pm2_5_raw)),
                (Quantity::Pm10, f64::from(pm10_raw)),
            ],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outdoor climate: Dragino LHT65 on a lamp post, decoded by TTS's device-repository formatter.

/// Temperature/humidity station with an external probe (in the ground at the lamp post's foot).
#[derive(Clone, Debug)]
pub(crate) struct Outdoor {
    bias_c: f64,
    battery_mv: f64,
    /// Slowly wandering local deviation (wind, shade), °C.
    local_c: f64,
}

impl Outdoor {
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Outdoor {
            bias_c: rng.gen_range(-0.6..0.9),
            battery_mv: rng.gen_range(2950.0..3110.0),
            local_c: 0.0,
        }
    }

    fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        let (air_c, air_rh) = city::outdoor_climate(now);
        let keep = dt_s.map_or(0.0, |dt| decay(dt, 1800.0));
        self.local_c = self.local_c * keep + 0.4 * (1.0 - keep * keep).sqrt() * gauss(rng);
        // The battery loses about 1 mV a day; per uplink that is below the resolution.
        self.battery_mv = (self.battery_mv - dt_s.unwrap_or(0.0) / 86_400.0).max(2500.0);

        let temp = air_c + self.bias_c + self.local_c;
        let rh = (air_rh - 2.5 * self.local_c + 0.8 * gauss(rng)).clamp(5.0, 100.0);
        let probe = city::monthly_ground_temp(now) + 0.05 * gauss(rng);

        let bat_raw = self.battery_mv.round() as u16 & 0x3FFF;
        let temp_raw = (temp * 100.0).round() as i16;
        let rh_raw = (rh * 10.0).round() as u16;
        let probe_raw = (probe * 100.0).round() as i16;
        // LHT65 fPort 2: battery (2 status bits + mV), SHT20 temperature (0.01 °C) and humidity
        // (0.1 %), external sensor type 1 (DS18B20) and its temperature, 0x7FFF padding.
        let mut b = Vec::with_capacity(11);
        b.extend_from_slice(&(0xC000 | bat_raw).to_be_bytes());
        b.extend_from_slice(&temp_raw.to_be_bytes());
        b.extend_from_slice(&rh_raw.to_be_bytes());
        b.push(0x01);
        b.extend_from_slice(&probe_raw.to_be_bytes());
        b.extend_from_slice(&[0x7F, 0xFF]);

        let bat_v = f64::from(bat_raw) / 1000.0;
        let temp_c = f64::from(temp_raw) / 100.0;
        let rh_pct = f64::from(rh_raw) / 10.0;
        let object = json!({
            "BatV": bat_v,
            "Bat_status": 3,
            "Ext_sensor": "Temperature Sensor",
            "Hum_SHT": rh_pct,
            "TempC_DS": f64::from(probe_raw) / 100.0,
            "TempC_SHT": temp_c,
        });
        Frame {
            f_port: 2,
            bytes: b,
            object: Some(object),
            expected: vec![
                (Quantity::Temperature, temp_c),
                (Quantity::Humidity, rh_pct),
                (Quantity::BatteryVoltage, bat_v),
            ],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Air quality: roadside node sending Cayenne LPP (raw bytes for the platform's codec).

/// Roadside node: street-level temperature (traffic and asphalt make it warmer), humidity and
/// barometric pressure in Cayenne LPP.
#[derive(Clone, Debug)]
pub(crate) struct AirQuality {
    street_heat_c: f64,
}

impl AirQuality {
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        AirQuality {
            street_heat_c: rng.gen_range(0.3..1.5),
        }
    }

    fn next<R: Rng + ?Sized>(
        &mut self,
        now: DateTime<Utc>,
        _dt_s: Option<f64>,
        rng: &mut R,
    ) -> Frame {
        let (air_c, air_rh) = city::outdoor_climate(now);
        let t = LocalTime::of(now);
        let rush = if t.is_workday() {
            city::trapezoid(t.hour, 6.5, 7.5, 8.5, 9.5)
                .max(city::trapezoid(t.hour, 15.5, 16.5, 18.0, 19.0))
        } else {
            0.0
        };
        let temp = air_c + self.street_heat_c * (1.0 + rush) + 0.15 * gauss(rng);
        let rh = (air_rh - 3.0 * self.street_heat_c + gauss(rng)).clamp(5.0, 100.0);
        let pressure = station_pressure(now) + 0.1 * gauss(rng);

        let temp_raw = (temp * 10.0).round() as i16;
        let rh_raw = (rh * 2.0).round() as u8;
        let pressure_raw = (pressure * 10.0).round() as u16;
        // LPP records: [channel][type][value, big endian].
        let mut b = Vec::with_capacity(11);
        b.extend_from_slice(&[0x01, 0x67]);
        b.extend_from_slice(&temp_raw.to_be_bytes());
        b.extend_from_slice(&[0x02, 0x68, rh_raw]);
        b.extend_from_slice(&[0x03, 0x73]);
        b.extend_from_slice(&pressure_raw.to_be_bytes());
        Frame {
            f_port: 1,
            bytes: b,
            object: None,
            expected: vec![
                (Quantity::Temperature, f64::from(temp_raw) / 10.0),
                (Quantity::Humidity, f64::from(rh_raw) / 2.0),
                (Quantity::Pressure, f64::from(pressure_raw) / 10.0),
            ],
        }
    }
}
