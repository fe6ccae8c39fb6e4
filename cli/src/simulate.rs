//! `stadtpuls simulate`: realistic LoRaWAN uplink traffic for a Dortmund-like city centre,
//! published through the real MQTT broker exactly as ChirpStack v4 and The Things Stack v3
//! integrations publish it, plus the matching device registry (GeoJSON).
//!
//! The fleet (scaled by [`SimOptions::parking_bays`]):
//!
//! | kind | device | network server | payload | visibility |
//! |---|---|---|---|---|
//! | `parking_bay` | Bosch Parking Lot Sensor | ChirpStack v4 | raw `data` (codec `bosch_parking`) | public |
//! | `parking_counter` | entrance counter, 1 per car park | ChirpStack v4 | `object` `{free_spaces, capacity}` | public |
//! | `room_climate` | Milesight AM319, ≈ bays/5 rooms | TTS v3 | raw `frm_payload` (codec `milesight_am319`) | private |
//! | `outdoor_climate` | Dragino LHT65 on lamp posts, ≈ bays/10 | TTS v3 | `decoded_payload` (LHT65 keys) | public |
//! | `air_quality` | roadside Cayenne LPP node, ≈ bays/10 | ChirpStack v4 | raw `data` (codec `cayenne_lpp`) | public |
//!
//! Values follow the local (Europe/Berlin) clock: bays fill during the day with a demand curve
//! per car park and keep their state for a while; CO₂ rises in occupied offices; outdoor
//! temperature has a daily and seasonal cycle; all sensors share one slowly changing weather.
//!
//! Layout: [`city`] (places, gateways, time, weather), [`devices`] (per-device state and
//! payload encoding), [`envelope`] (radio link and network-server JSON); this file holds the
//! public API, the fleet, the publishing loop and the tests.
//!
//! Invariant: [`fleet`] and [`uplink`] are pure (no IO, no clock): time and randomness come in
//! as arguments, so a seed and a time give the same bytes.

mod city;
mod devices;
mod envelope;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use devices::{AirQuality, Bay, Behaviour, Counter, Outdoor, Room, RoomUse};
use envelope::{ChirpstackApp, Session, TtsModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS};
use serde_json::{json, Map, Value};
use stadtpuls_config::MqttSettings;
use stadtpuls_gateways::{DevEui, Quantity};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// What to simulate and how fast.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// Uplinks per second across the whole fleet.
    pub rate: f64,
    /// Single-bay parking sensors; the other groups scale with this.
    pub parking_bays: u32,
    /// Seeds the fleet layout and the value stream.
    pub seed: u64,
    /// Stop after this many acknowledged uplinks (0 = until shutdown).
    pub max_messages: u64,
}

/// Which network-server integration a device's uplinks look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimFormat {
    /// ChirpStack v4 MQTT integration, JSON marshaler, `up` events.
    ChirpstackV4,
    /// The Things Stack v3 MQTT integration, `uplink_message`.
    TtsV3,
}

/// One simulated device: its registry entry (public fields) and its evolving state.
#[derive(Clone, Debug)]
pub struct SimDevice {
    pub dev_eui: DevEui,
    pub name: String,
    /// Store `DeviceKind` name: `parking_bay`, `parking_counter`, `room_climate`,
    /// `outdoor_climate`, `air_quality`.
    pub kind: &'static str,
    /// Codec the platform must apply (`None`: the network server decodes).
    pub codec: Option<&'static str>,
    /// `public` or `private`.
    pub visibility: &'static str,
    pub lat: f64,
    pub lon: f64,
    pub site_id: Option<String>,
    /// Building of a room sensor (rooms are unique within their building).
    pub building_id: Option<String>,
    pub room_id: Option<String>,
    pub format: SimFormat,
    spec: &'static KindSpec,
    behaviour: Behaviour,
    dev_addr: u32,
    session_key_id: [u8; 16],
    /// Uplink frame counter: the next uplink carries this value.
    f_cnt: u32,
    last_uplink_at: Option<DateTime<Utc>>,
    /// Readings the platform should derive from the last uplink.
    last_expected: Vec<(Quantity, f64)>,
}

/// Everything that is the same for all devices of one kind.
#[derive(Debug)]
struct KindSpec {
    kind: &'static str,
    codec: Option<&'static str>,
    visibility: &'static str,
    format: SimFormat,
    /// First three bytes of the DevEUI (the vendor's IEEE OUI).
    oui: u64,
    /// Nominal reporting interval of the real device; sets its share of the traffic.
    interval_s: u64,
    /// Extra path loss: mounted in the asphalt, inside a building, …
    wall_loss_db: f64,
    /// Used when the device publishes via ChirpStack.
    chirpstack: ChirpstackApp,
    /// Used when the device publishes via TTS.
    tts: TtsModel,
}

const PARKING_APP_ID: &str = "3f9a7c21-5b8e-4d10-a6c4-1e2f8b9d0a51";
const PARKING_APP_NAME: &str = "Parken Innenstadt";
const CLIMATE_APP_ID: &str = "8c2e4a90-7d13-4f6b-b5e8-6a0c9d2f1b72";
const CLIMATE_APP_NAME: &str = "Stadtklima und Gebäude";
const AIR_APP_ID: &str = "c51d8e3b-2a9f-4c07-9e64-7b3a0f5d2c83";
const AIR_APP_NAME: &str = "Luftqualität";

static PARKING_BAY: KindSpec = KindSpec {
    kind: "parking_bay",
    codec: Some("bosch_parking"),
    visibility: "public",
    format: SimFormat::ChirpstackV4,
    oui: 0xFC_D6_BD,
    interval_s: 600,
    wall_loss_db: 8.0,
    chirpstack: ChirpstackApp {
        application_id: PARKING_APP_ID,
        application_name: PARKING_APP_NAME,
        device_profile_id: "0b6d4e2f-91a3-4c58-8e17-d2f5a6b3c904",
        device_profile_name: "Bosch Parking Lot Sensor (TPS110) EU868",
    },
    tts: TtsModel {
        join_eui: 0xFCD6_BD00_0000_0001,
        brand_id: "bosch",
        model_id: "parking-lot-sensor",
        hardware_version: "1.0",
        firmware_version: "0.39.0",
    },
};

static PARKING_COUNTER: KindSpec = KindSpec {
    kind: "parking_counter",
    codec: None,
    visibility: "public",
    format: SimFormat::ChirpstackV4,
    oui: 0x70_B3_D5,
    interval_s: 120,
    wall_loss_db: 3.0,
    chirpstack: ChirpstackApp {
        application_id: PARKING_APP_ID,
        application_name: PARKING_APP_NAME,
        device_profile_id: "5a1c7e93-0d4b-4f2a-b8c6-93e1f07d5a15",
        device_profile_name: "Parkhaus-Einfahrtszähler (JS-Codec) EU868",
    },
    tts: TtsModel {
        join_eui: 0x70B3_D500_0000_0001,
        brand_id: "stadtpuls",
        model_id: "parking-counter",
        hardware_version: "1.0",
        firmware_version: "1.0",
    },
};

static ROOM_CLIMATE: KindSpec = KindSpec {
    kind: "room_climate",
    codec: Some("milesight_am319"),
    visibility: "private",
    format: SimFormat::TtsV3,
    oui: 0x24_E1_24,
    interval_s: 600,
    wall_loss_db: 15.0,
    chirpstack: ChirpstackApp {
        application_id: CLIMATE_APP_ID,
        application_name: CLIMATE_APP_NAME,
        device_profile_id: "e7b3f1c4-6a28-4d95-a0e1-4c8d2b7f6e36",
        device_profile_name: "Milesight AM319 EU868",
    },
    tts: TtsModel {
        join_eui: 0x24E1_24C0_002A_0001,
        brand_id: "milesight-iot",
        model_id: "am319",
        hardware_version: "1.1",
        firmware_version: "1.2",
    },
};

static OUTDOOR_CLIMATE: KindSpec = KindSpec {
    kind: "outdoor_climate",
    codec: None,
    visibility: "public",
    format: SimFormat::TtsV3,
    oui: 0xA8_40_41,
    interval_s: 1200,
    wall_loss_db: 0.0,
    chirpstack: ChirpstackApp {
        application_id: CLIMATE_APP_ID,
        application_name: CLIMATE_APP_NAME,
        device_profile_id: "2d9f6b18-c3e7-4a51-9b24-f1a6e8c0d347",
        device_profile_name: "Dragino LHT65 (Device-Repository-Codec) EU868",
    },
    tts: TtsModel {
        join_eui: 0xA840_4100_0000_0101,
        brand_id: "dragino",
        model_id: "lht65",
        hardware_version: "_unknown_hw_version_",
        firmware_version: "1.8",
    },
};

static AIR_QUALITY: KindSpec = KindSpec {
    kind: "air_quality",
    codec: Some("cayenne_lpp"),
    visibility: "public",
    format: SimFormat::ChirpstackV4,
    oui: 0x00_04_A3,
    interval_s: 600,
    wall_loss_db: 0.0,
    chirpstack: ChirpstackApp {
        application_id: AIR_APP_ID,
        application_name: AIR_APP_NAME,
        device_profile_id: "9e4a2c7d-b1f8-4e36-8d05-a7c3e9b1f458",
        device_profile_name: "Cayenne LPP Straßensensor EU868",
    },
    tts: TtsModel {
        join_eui: 0x0004_A300_0000_0001,
        brand_id: "generic",
        model_id: "cayenne-lpp-node",
        hardware_version: "1.0",
        firmware_version: "1.0",
    },
};

impl SimDevice {
    fn new(
        spec: &'static KindSpec,
        index: u32,
        name: String,
        (lat, lon): (f64, f64),
        behaviour: Behaviour,
        rng: &mut StdRng,
    ) -> SimDevice {
        // ChirpStack private network (NetID 000000): 7-bit NwkID 0. TTN (NetID 000013): 0x260B….
        let dev_addr = match spec.format {
            SimFormat::ChirpstackV4 => rng.gen::<u32>() & 0x01FF_FFFF,
            SimFormat::TtsV3 => 0x260B_0000 | (rng.gen::<u32>() & 0xFFFF),
        };
        SimDevice {
            dev_eui: DevEui((spec.oui << 40) | u64::from(index)),
            name,
            kind: spec.kind,
            codec: spec.codec,
            visibility: spec.visibility,
            lat: round7(lat),
            lon: round7(lon),
            site_id: None,
            building_id: None,
            room_id: None,
            format: spec.format,
            spec,
            behaviour,
            dev_addr,
            session_key_id: rng.gen(),
            f_cnt: 0,
            last_uplink_at: None,
            last_expected: Vec::new(),
        }
    }

    fn with_site(mut self, site_id: &str) -> Self {
        self.site_id = Some(site_id.to_string());
        self
    }

    fn with_room(mut self, building_id: &str, room_id: String) -> Self {
        self.building_id = Some(building_id.to_string());
        self.room_id = Some(room_id);
        self
    }
}

/// Coordinates to 7 decimals (≈ 1 cm) keep the registry file tidy.
fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

/// The simulated fleet; the same options always give the same fleet. Order: parking bays,
/// counters, room sensors, outdoor stations, air-quality nodes.
pub fn fleet(opts: &SimOptions) -> Vec<SimDevice> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let bays = opts.parking_bays;
    let rooms = (bays / 5).max(1);
    let stations = (bays / 10).max(1);
    let mut out = Vec::with_capacity((bays + 3 + rooms + 2 * stations) as usize);

    // Bays are dealt round-robin to the car parks and laid out in rows of ten (2.6 m wide,
    // 6 m between rows) starting west of the car park's reference point.
    for i in 0..bays {
        let park = &city::CAR_PARKS[i as usize % city::CAR_PARKS.len()];
        let j = i / city::CAR_PARKS.len() as u32;
        let east = -12.0 + f64::from(j % 10) * 2.6 + rng.gen_range(-0.15..0.15);
        let north = -f64::from(j / 10) * 6.0 + rng.gen_range(-0.15..0.15);
        let pos = city::offset(park.lat, park.lon, east, north);
        let name = format!("{} Stellplatz {:03}", park.name, j + 1);
        let behaviour = Behaviour::Bay(Bay::new(park, &mut rng));
        out.push(
            SimDevice::new(&PARKING_BAY, i + 1, name, pos, behaviour, &mut rng)
                .with_site(park.site_id),
        );
    }
    for (k, park) in city::CAR_PARKS.iter().enumerate() {
        let pos = city::offset(park.lat, park.lon, -25.0, 12.0);
        let name = format!("{} Einfahrt (Zähler)", park.name);
        let behaviour = Behaviour::Counter(Counter::new(park));
        out.push(
            SimDevice::new(
                &PARKING_COUNTER,
                k as u32 + 1,
                name,
                pos,
                behaviour,
                &mut rng,
            )
            .with_site(park.site_id),
        );
    }
    // Rooms alternate between the buildings; six per floor, one meeting room per floor and the
    // council chamber in the town hall.
    for k in 0..rooms {
        let building = &city::BUILDINGS[k as usize % city::BUILDINGS.len()];
        let r = k / city::BUILDINGS.len() as u32;
        let number = 100 * (1 + r / 6) + r % 6 + 1;
        let usage = match r % 6 {
            3 => RoomUse::Meeting,
            5 if building.id == "rathaus" => RoomUse::CouncilChamber,
            _ => RoomUse::Office,
        };
        let pos = city::offset(
            building.lat,
            building.lon,
            f64::from(r % 6) * 6.0 - 15.0,
            f64::from(r / 6 % 2) * 8.0 - 4.0,
        );
        let name = format!("{} Raum {number} ({})", building.name, usage.label());
        let behaviour = Behaviour::Room(Room::new(usage, &mut rng));
        out.push(
            SimDevice::new(&ROOM_CLIMATE, k + 1, name, pos, behaviour, &mut rng)
                .with_room(building.id, format!("{}-r{number}", building.id)),
        );
    }
    for k in 0..stations {
        let (place, lat, lon) = city::LAMP_POSTS[k as usize % city::LAMP_POSTS.len()];
        let round = k / city::LAMP_POSTS.len() as u32;
        let pos = city::offset(lat, lon, f64::from(round) * 40.0, 0.0);
        let name = match round {
            0 => format!("Klimastation {place}"),
            n => format!("Klimastation {place} {}", n + 1),
        };
        let behaviour = Behaviour::Outdoor(Outdoor::new(&mut rng));
        out.push(SimDevice::new(
            &OUTDOOR_CLIMATE,
            k + 1,
            name,
            pos,
            behaviour,
            &mut rng,
        ));
    }
    for k in 0..stations {
        let (street, lat, lon) = city::ROADSIDE[k as usize % city::ROADSIDE.len()];
        let round = k / city::ROADSIDE.len() as u32;
        let pos = city::offset(lat, lon, 0.0, f64::from(round) * 40.0);
        let name = match round {
            0 => format!("Luftmessung {street}"),
            n => format!("Luftmessung {street} {}", n + 1),
        };
        let behaviour = Behaviour::AirQuality(AirQuality::new(&mut rng));
        out.push(SimDevice::new(
            &AIR_QUALITY,
            k + 1,
            name,
            pos,
            behaviour,
            &mut rng,
        ));
    }
    out
}

/// The registry for `stadtpuls devices import`: a GeoJSON FeatureCollection of Points with
/// properties `dev_eui`, `name`, `kind`, `codec`, `visibility`, `site_id`, `room_id` (absent
/// ones are left out).
pub fn registry_geojson(fleet: &[SimDevice]) -> Value {
    let features: Vec<Value> = fleet
        .iter()
        .map(|d| {
            let mut props = Map::new();
            props.insert("dev_eui".into(), json!(d.dev_eui.to_string()));
            props.insert("name".into(), json!(d.name));
            props.insert("kind".into(), json!(d.kind));
            if let Some(codec) = d.codec {
                props.insert("codec".into(), json!(codec));
            }
            props.insert("visibility".into(), json!(d.visibility));
            if let Some(site) = &d.site_id {
                props.insert("site_id".into(), json!(site));
            }
            if let Some(building) = &d.building_id {
                props.insert("building_id".into(), json!(building));
            }
            if let Some(room) = &d.room_id {
                props.insert("room_id".into(), json!(room));
            }
            json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [d.lon, d.lat]},
                "properties": props,
            })
        })
        .collect();
    let mut all = places_features(fleet);
    all.extend(features);
    json!({"type": "FeatureCollection", "features": all})
}

/// The places the fleet belongs to, as registry features with a `place_type`: the car parks
/// (ParkAPI static data), the buildings and the rooms that have a sensor.
fn places_features(fleet: &[SimDevice]) -> Vec<Value> {
    let mut out = Vec::new();
    for (park, site_type) in
        city::CAR_PARKS
            .iter()
            .zip(["CAR_PARK", "ON_STREET", "OFF_STREET_PARKING_GROUND"])
    {
        out.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [park.lon, park.lat]},
            "properties": {
                "place_type": "parking_site", "uid": park.site_id, "name": park.name,
                "type": site_type, "purpose": "CAR", "capacity": park.capacity,
                "operator_name": "Stadt Dortmund (simuliert)", "opening_hours": "24/7",
            },
        }));
    }
    for b in &city::BUILDINGS {
        out.push(json!({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [b.lon, b.lat]},
            "properties": {"place_type": "building", "id": b.id, "name": b.name},
        }));
    }
    for d in fleet {
        if let (Some(building), Some(room)) = (&d.building_id, &d.room_id) {
            let number = room
                .rsplit('-')
                .next()
                .unwrap_or(room)
                .trim_start_matches('r');
            out.push(json!({
                "type": "Feature",
                "geometry": null,
                "properties": {
                    "place_type": "room", "building_id": building, "id": room,
                    "name": format!("Raum {number}"), "floor": number.chars().next().map(String::from),
                },
            }));
        }
    }
    out
}

/// One uplink: (topic without prefix, JSON payload bytes). `now` is the observation time; `rng`
/// drives values. Advances the device's state and frame counter.
pub fn uplink(dev: &mut SimDevice, now: DateTime<Utc>, rng: &mut impl Rng) -> (String, Vec<u8>) {
    // Cap the gap so a simulator restarted after days does not "catch up" in one step.
    let dt_s = dev
        .last_uplink_at
        .map(|t| ((now - t).num_milliseconds() as f64 / 1000.0).clamp(0.0, 6.0 * 3600.0));
    let frame = dev.behaviour.next(now, dt_s, rng);
    let link = envelope::link((dev.lat, dev.lon), dev.spec.wall_loss_db, rng);
    let mut tags = Map::new();
    if let Some(site) = &dev.site_id {
        tags.insert("site_id".into(), json!(site));
    }
    if let Some(building) = &dev.building_id {
        tags.insert("building_id".into(), json!(building));
    }
    if let Some(room) = &dev.room_id {
        tags.insert("room_id".into(), json!(room));
    }
    let session = Session {
        dev_eui: dev.dev_eui,
        name: &dev.name,
        dev_addr: dev.dev_addr,
        f_cnt: dev.f_cnt,
        tags,
    };
    let (topic, message) = match dev.format {
        SimFormat::ChirpstackV4 => {
            envelope::chirpstack_up(&session, &dev.spec.chirpstack, &frame, &link, now, rng)
        }
        SimFormat::TtsV3 => envelope::tts_up(
            &session,
            &dev.spec.tts,
            &dev.session_key_id,
            &frame,
            &link,
            now,
            rng,
        ),
    };
    dev.f_cnt = dev.f_cnt.wrapping_add(1);
    dev.last_uplink_at = Some(now);
    dev.last_expected = frame.expected;
    (topic, message.to_string().into_bytes())
}

/// Which device sends next: each device is due once per nominal reporting interval (in virtual
/// time, staggered by a random phase), so kinds get traffic in proportion to
/// `count / interval` — the mix a real city network sees — whatever the total rate.
#[derive(Debug)]
struct Schedule {
    due: BinaryHeap<Reverse<(u64, usize)>>,
    interval_ms: Vec<u64>,
}

impl Schedule {
    fn new(fleet: &[SimDevice], rng: &mut impl Rng) -> Schedule {
        let interval_ms: Vec<u64> = fleet
            .iter()
            .map(|d| d.spec.interval_s.max(1) * 1000)
            .collect();
        let due = interval_ms
            .iter()
            .enumerate()
            .map(|(i, every)| Reverse((rng.gen_range(0..*every), i)))
            .collect();
        Schedule { due, interval_ms }
    }

    /// Index of the next device to send; `None` only for an empty fleet.
    fn next(&mut self) -> Option<usize> {
        let Reverse((at, i)) = self.due.pop()?;
        self.due.push(Reverse((at + self.interval_ms[i], i)));
        Some(i)
    }
}

/// Token bucket: `rate` tokens per second, at most half a second's worth banked, so a stall
/// (broker slow, reconnect) is not followed by a burst.
#[derive(Debug)]
struct Pacer {
    rate: f64,
    tokens: f64,
    burst: f64,
    last: Instant,
}

impl Pacer {
    fn new(rate: f64, now: Instant) -> Pacer {
        Pacer {
            rate,
            tokens: 1.0,
            burst: (rate / 2.0).max(1.0),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        self.last = now;
    }

    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Unacknowledged QoS 1 publishes allowed at once (also rumqttc's in-flight window).
const IN_FLIGHT: u16 = 100;
/// How long to keep retrying before the first successful connection.
const FIRST_CONNECT_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for outstanding PubAcks once publishing stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Broker connection options: the ingest's broker settings under the client id
/// `<client_id>-sim` (so the ingest's persistent session is never taken over), clean session.
fn mqtt_options(mqtt: &MqttSettings) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(
        format!("{}-sim", mqtt.client_id),
        mqtt.host.clone(),
        mqtt.port,
    );
    o.set_keep_alive(Duration::from_secs(mqtt.keep_alive_secs.max(5)));
    o.set_clean_session(true);
    o.set_inflight(IN_FLIGHT);
    o.set_max_packet_size(mqtt.max_packet_bytes, mqtt.max_packet_bytes);
    o.set_request_channel_capacity(usize::from(IN_FLIGHT) + 16);
    stadtpuls_ingest::mqtt::apply_credentials_and_tls(&mut o, mqtt)?;
    Ok(o)
}

/// Publishes simulated uplinks (QoS 1, topics prefixed with `mqtt.topic_prefix`) at
/// `opts.rate` per second in total, devices chosen by [`Schedule`] (weighted by each kind's real
/// reporting interval), until `shutdown` is cancelled or `opts.max_messages` (> 0) were
/// published. Returns how many the broker acknowledged; outstanding PubAcks are awaited (up to
/// 10 s) before returning. Logs progress every 10 s.
pub async fn run(
    mqtt: &MqttSettings,
    opts: &SimOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<u64> {
    anyhow::ensure!(
        opts.rate.is_finite() && opts.rate > 0.0,
        "simulator rate must be a positive number of uplinks per second, got {}",
        opts.rate
    );
    let mut fleet = fleet(opts);
    // A second stream from the same seed: values and ids are reproducible too.
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5EED_0F57_170A_1100);
    let mut schedule = Schedule::new(&fleet, &mut rng);
    let options = mqtt_options(mqtt)?;
    let client_id = options.client_id();
    let (client, mut eventloop) = AsyncClient::new(options, usize::from(IN_FLIGHT) + 16);
    info!(
        broker = %format!("{}:{}", mqtt.host, mqtt.port),
        client_id = %client_id,
        devices = fleet.len(),
        rate = opts.rate,
        max_messages = opts.max_messages,
        "simulator starting"
    );

    let started = Instant::now();
    let tick_every = Duration::from_secs_f64((1.0 / opts.rate).clamp(0.001, 0.1));
    let mut ticker = tokio::time::interval(tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut progress = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut pacer = Pacer::new(opts.rate, started);

    let mut published: u64 = 0;
    let mut acked: u64 = 0;
    let mut acked_at_last_report: u64 = 0;
    let mut connected = false;
    let mut ever_connected = false;
    let mut backoff = Duration::from_millis(200);
    // Set once publishing has stopped (shutdown or max_messages); then only PubAcks are awaited.
    let mut drain_deadline: Option<Instant> = None;

    loop {
        if drain_deadline.is_some() && acked >= published {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled(), if drain_deadline.is_none() => {
                info!(published, acked, "simulator stopping");
                drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
            }
            _ = sleep_until_opt(drain_deadline) => {
                warn!(published, acked, "simulator: broker did not acknowledge every uplink in time");
                break;
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if !ever_connected {
                        info!("simulator connected to the broker");
                    } else {
                        info!("simulator reconnected to the broker");
                    }
                    connected = true;
                    ever_connected = true;
                    backoff = Duration::from_millis(200);
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    if !ever_connected
                        && (matches!(e, ConnectionError::ConnectionRefused(_))
                            || started.elapsed() > FIRST_CONNECT_GRACE)
                    {
                        // The rumqttc error already names its cause; its source would repeat it.
                        return Err(anyhow!("{e}")).with_context(|| {
                            format!("simulator: cannot connect to the MQTT broker at {}:{}", mqtt.host, mqtt.port)
                        });
                    }
                    warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "simulator: broker connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled(), if drain_deadline.is_none() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
            _ = ticker.tick(), if connected && drain_deadline.is_none() => {
                pacer.refill(Instant::now());
                while published - acked < u64::from(IN_FLIGHT)
                    && (opts.max_messages == 0 || published < opts.max_messages)
                    && pacer.take()
                {
                    let Some(i) = schedule.next() else { break };
                    let (topic, payload) = uplink(&mut fleet[i], Utc::now(), &mut rng);
                    let topic = format!("{}{topic}", mqtt.topic_prefix);
                    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
                        // Only when the request channel is full, which the in-flight gate prevents.
                        warn!(error = %e, "simulator: publish not queued");
                        break;
                    }
                    published += 1;
                }
                if opts.max_messages > 0 && published >= opts.max_messages {
                    info!(published, "simulator reached max_messages; waiting for acknowledgements");
                    drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                }
            }
            _ = progress.tick() => {
                let per_s = (acked - acked_at_last_report) as f64 / PROGRESS_EVERY.as_secs_f64();
                acked_at_last_report = acked;
                info!(published, acked, in_flight = published - acked, acked_per_s = per_s, connected, "simulator progress");
            }
        }
    }

    disconnect(&client, &mut eventloop).await;
    info!(
        published,
        acked,
        elapsed_s = started.elapsed().as_secs_f64(),
        "simulator finished"
    );
    Ok(acked)
}

/// Sleeps until `deadline`, or forever without one (a disabled `select!` branch).
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Sends DISCONNECT and polls until it is out (or a second passed), so the broker does not log
/// an unexpected disconnect.
async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let flush = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use stadtpuls_gateways::codecs::decode_payload;
    use stadtpuls_gateways::{decode, Codec, Decoded, Dialect, KeyTable, NetworkServer, Uplink};
    use std::collections::{BTreeSet, HashMap, HashSet};

    fn opts(bays: u32, seed: u64) -> SimOptions {
        SimOptions {
            rate: 20.0,
            parking_bays: bays,
            seed,
            max_messages: 0,
        }
    }

    /// Wednesday 12 June 2024, 12:00 local time (CEST).
    fn noon() -> DateTime<Utc> {
        "2024-06-12T10:00:00Z".parse().unwrap()
    }

    fn count_kinds(fleet: &[SimDevice]) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::new();
        for d in fleet {
            *counts.entry(d.kind).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn fleet_is_deterministic_scales_and_has_unique_dev_euis() {
        let a = fleet(&opts(60, 42));
        let b = fleet(&opts(60, 42));
        assert_eq!(registry_geojson(&a), registry_geojson(&b));
        assert_eq!(
            a.iter().map(|d| d.dev_addr).collect::<Vec<_>>(),
            b.iter().map(|d| d.dev_addr).collect::<Vec<_>>()
        );
        let other_seed = fleet(&opts(60, 43));
        assert_ne!(
            registry_geojson(&a),
            registry_geojson(&other_seed),
            "positions jitter with the seed"
        );

        let cases: [(u32, [usize; 5]); 4] = [
            (60, [60, 3, 12, 6, 6]),
            (10, [10, 3, 2, 1, 1]),
            (0, [0, 3, 1, 1, 1]),
            (500, [500, 3, 100, 50, 50]),
        ];
        for (bays, [bay, counter, room, outdoor, air]) in cases {
            let f = fleet(&opts(bays, 1));
            let counts = count_kinds(&f);
            let get = |k| counts.get(k).copied().unwrap_or(0);
            assert_eq!(
                [
                    get("parking_bay"),
                    get("parking_counter"),
                    get("room_climate"),
                    get("outdoor_climate"),
                    get("air_quality")
                ],
                [bay, counter, room, outdoor, air],
                "{bays} bays"
            );
            let euis: HashSet<DevEui> = f.iter().map(|d| d.dev_eui).collect();
            assert_eq!(euis.len(), f.len(), "DevEUIs unique with {bays} bays");
            let rooms: HashSet<&str> = f.iter().filter_map(|d| d.room_id.as_deref()).collect();
            assert_eq!(rooms.len(), room, "room ids unique");
        }
    }

    #[test]
    fn registry_lists_every_device_with_its_properties() {
        let f = fleet(&opts(60, 42));
        let gj = registry_geojson(&f);
        assert_eq!(gj["type"], "FeatureCollection");
        let all = gj["features"].as_array().unwrap();
        let (places, features): (Vec<&Value>, Vec<&Value>) = all
            .iter()
            .partition(|f| f["properties"].get("place_type").is_some());
        assert_eq!(features.len(), f.len());
        let rooms = f.iter().filter(|d| d.room_id.is_some()).count();
        assert_eq!(
            places.len(),
            3 + 2 + rooms,
            "3 car parks, 2 buildings, every sensed room"
        );

        let mut by_kind_visibility: HashMap<(String, String), usize> = HashMap::new();
        for (feature, dev) in features.iter().copied().zip(&f) {
            let p = &feature["properties"];
            let eui = p["dev_eui"].as_str().unwrap();
            assert_eq!(eui.len(), 16);
            assert!(
                eui.chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
                "{eui}"
            );
            assert_eq!(feature["geometry"]["type"], "Point");
            let lon = feature["geometry"]["coordinates"][0].as_f64().unwrap();
            let lat = feature["geometry"]["coordinates"][1].as_f64().unwrap();
            assert!(
                (51.45..51.56).contains(&lat) && (7.40..7.55).contains(&lon),
                "{lat},{lon} is in Dortmund"
            );
            assert_eq!(p["name"], dev.name.as_str());
            assert_eq!(p.get("codec").and_then(Value::as_str), dev.codec);
            match dev.kind {
                "parking_bay" | "parking_counter" => {
                    assert!(p["site_id"].as_str().unwrap().starts_with(['d', 'w', 'p']));
                    assert!(p.get("room_id").is_none());
                }
                "room_climate" => {
                    let room = p["room_id"].as_str().unwrap();
                    let building = p["building_id"].as_str().unwrap();
                    assert!(
                        room.starts_with(&format!("{building}-r")),
                        "{room} in {building}"
                    );
                    assert!(p.get("site_id").is_none());
                }
                _ => assert!(p.get("site_id").is_none() && p.get("room_id").is_none()),
            }
            let key = (
                p["kind"].as_str().unwrap().to_string(),
                p["visibility"].as_str().unwrap().to_string(),
            );
            *by_kind_visibility.entry(key).or_insert(0) += 1;
        }
        let expect = [
            ("parking_bay", "public", 60),
            ("parking_counter", "public", 3),
            ("room_climate", "private", 12),
            ("outdoor_climate", "public", 6),
            ("air_quality", "public", 6),
        ];
        assert_eq!(by_kind_visibility.len(), expect.len());
        for (kind, vis, n) in expect {
            assert_eq!(
                by_kind_visibility.get(&(kind.to_string(), vis.to_string())),
                Some(&n),
                "{kind}/{vis}"
            );
        }
        // What the registry importer reads back.
        let codecs: BTreeSet<&str> = features
            .iter()
            .filter_map(|f| f["properties"]["codec"].as_str())
            .collect();
        for c in &codecs {
            assert!(c.parse::<Codec>().is_ok(), "{c} is a built-in codec");
        }
        assert_eq!(codecs.len(), 3);
    }

    /// Decodes one simulated message like the ingest does: network-server JSON → uplink →
    /// (codec) → object → readings.
    fn platform_readings(
        dev: &SimDevice,
        topic: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> (Uplink, Vec<(Quantity, f64)>) {
        let decoded = decode(Dialect::Auto, topic, payload, now)
            .unwrap_or_else(|e| panic!("{}: {e}", dev.name));
        let Decoded::Uplink(up) = decoded else {
            panic!("{}: not an uplink: {decoded:?}", dev.name)
        };
        let object = match dev.codec {
            Some(codec) => {
                assert_eq!(up.decoded, None, "{}: raw payload only", dev.name);
                decode_payload(codec.parse().unwrap(), up.f_port.unwrap(), &up.payload)
                    .unwrap_or_else(|e| panic!("{}: codec {codec}: {e}", dev.name))
            }
            None => up
                .decoded
                .clone()
                .unwrap_or_else(|| panic!("{}: no decoded object", dev.name)),
        };
        let mapped = KeyTable::builtin().map_object(&object, up.observed_at);
        let readings = mapped
            .readings
            .iter()
            .map(|r| (r.quantity, r.value))
            .collect();
        (*up, readings)
    }

    fn assert_readings_match(dev: &SimDevice, got: &[(Quantity, f64)]) {
        let got_q: BTreeSet<Quantity> = got.iter().map(|(q, _)| *q).collect();
        let want_q: BTreeSet<Quantity> = dev.last_expected.iter().map(|(q, _)| *q).collect();
        assert_eq!(got_q, want_q, "{}: quantities", dev.name);
        for (q, want) in &dev.last_expected {
            let (_, v) = got.iter().find(|(g, _)| g == q).unwrap();
            assert!(
                (v - want).abs() < 1e-9,
                "{}: {q} is {v}, generated {want}",
                dev.name
            );
        }
    }

    #[test]
    fn every_kind_decodes_to_what_was_generated() {
        let mut f = fleet(&opts(60, 42));
        let mut rng = StdRng::seed_from_u64(9);
        let kinds = [
            "parking_bay",
            "parking_counter",
            "room_climate",
            "outdoor_climate",
            "air_quality",
        ];
        let mut dedup_keys = HashSet::new();
        for kind in kinds {
            let dev = f.iter_mut().find(|d| d.kind == kind).unwrap();
            // A day and a half in uneven steps: night and day, heartbeats and changes.
            for k in 0..40u32 {
                let now = noon() + chrono::Duration::seconds(i64::from(k) * 3907);
                let (topic, payload) = uplink(dev, now, &mut rng);
                let (up, readings) = platform_readings(dev, &topic, &payload, now);

                assert_eq!(up.dev_eui, dev.dev_eui);
                assert_eq!(up.f_cnt, Some(k), "{kind}: frame counter");
                assert_eq!(up.observed_at, now, "{kind}: observation time");
                assert!(!up.gateways.is_empty() && up.gateways.len() <= 3);
                assert!(up
                    .gateways
                    .iter()
                    .all(|g| g.location.is_some() && g.rssi.is_some()));
                assert!(
                    dedup_keys.insert(up.dedup_key.clone()),
                    "{kind}: dedup key reused"
                );
                match dev.format {
                    SimFormat::ChirpstackV4 => {
                        assert_eq!(up.network_server, NetworkServer::ChirpstackV4);
                        assert!(
                            topic.starts_with("application/")
                                && topic.ends_with(&format!("/device/{}/event/up", dev.dev_eui)),
                            "{topic}"
                        );
                    }
                    SimFormat::TtsV3 => {
                        assert_eq!(up.network_server, NetworkServer::TtsV3);
                        assert_eq!(
                            topic,
                            format!("v3/stadtpuls-sim@ttn/devices/eui-{}/up", dev.dev_eui)
                        );
                        assert!(up.dedup_key.starts_with("as:up:") && up.dedup_key.len() == 6 + 26);
                    }
                }
                assert_readings_match(dev, &readings);

                let value = |q: Quantity| readings.iter().find(|(g, _)| *g == q).map(|(_, v)| *v);
                if let Some(t) = value(Quantity::Temperature) {
                    assert!((-15.0..50.0).contains(&t), "{kind}: temperature {t}");
                }
                if let Some(h) = value(Quantity::Humidity) {
                    assert!((5.0..=100.0).contains(&h), "{kind}: humidity {h}");
                }
                match &dev.behaviour {
                    Behaviour::Bay(b) => {
                        assert_eq!(
                            value(Quantity::Occupied),
                            Some(f64::from(u8::from(b.occupied)))
                        );
                        let port = up.f_port.unwrap();
                        // Startup frame after power-on, then status changes (1) and heartbeats (2).
                        assert_eq!(port == 3, k == 0, "fPort {port} at uplink {k}");
                        assert!((1..=3).contains(&port));
                    }
                    Behaviour::Counter(c) => {
                        assert_eq!(value(Quantity::FreeSpaces), Some(f64::from(c.free)));
                        assert!(c.free <= c.capacity);
                    }
                    Behaviour::Room(_) => {
                        let co2 = value(Quantity::Co2).unwrap();
                        assert!((380.0..5000.0).contains(&co2), "co2 {co2}");
                        assert!((900.0..1050.0).contains(&value(Quantity::Pressure).unwrap()));
                    }
                    Behaviour::Outdoor(_) => {
                        let v = value(Quantity::BatteryVoltage).unwrap();
                        assert!((2.5..3.7).contains(&v), "battery {v}");
                    }
                    Behaviour::AirQuality(_) => {
                        assert!((900.0..1050.0).contains(&value(Quantity::Pressure).unwrap()));
                    }
                }
            }
        }
    }

    #[test]
    fn messages_carry_the_fields_real_network_servers_send() {
        let mut f = fleet(&opts(10, 42));
        let mut rng = StdRng::seed_from_u64(1);
        let bay = f.iter_mut().find(|d| d.kind == "parking_bay").unwrap();
        let (_, cs) = uplink(bay, noon(), &mut rng);
        let cs: Value = serde_json::from_slice(&cs).unwrap();
        for key in [
            "deduplicationId",
            "time",
            "devAddr",
            "adr",
            "dr",
            "fCnt",
            "fPort",
            "confirmed",
            "data",
            "rxInfo",
            "txInfo",
        ] {
            assert!(cs.get(key).is_some(), "ChirpStack {key}");
        }
        for key in [
            "tenantId",
            "tenantName",
            "applicationId",
            "applicationName",
            "deviceProfileId",
            "deviceProfileName",
            "deviceName",
            "devEui",
        ] {
            assert!(
                cs["deviceInfo"].get(key).is_some(),
                "ChirpStack deviceInfo.{key}"
            );
        }
        assert!(cs.get("object").is_none(), "bays send raw bytes only");
        assert_eq!(cs["time"], "2024-06-12T10:00:00+00:00");
        assert_eq!(cs["txInfo"]["modulation"]["lora"]["codeRate"], "CR_4_5");
        assert_eq!(cs["rxInfo"][0]["crcStatus"], "CRC_OK");

        let room = f.iter_mut().find(|d| d.kind == "room_climate").unwrap();
        let (_, tts) = uplink(room, noon(), &mut rng);
        let tts: Value = serde_json::from_slice(&tts).unwrap();
        let ids = &tts["end_device_ids"];
        assert_eq!(ids["device_id"], format!("eui-{}", room.dev_eui));
        assert_eq!(ids["dev_eui"], room.dev_eui.to_string().to_uppercase());
        assert_eq!(ids["application_ids"]["application_id"], "stadtpuls-sim");
        assert_eq!(ids["join_eui"], "24E124C0002A0001");
        let up = &tts["uplink_message"];
        assert!(
            up.get("f_cnt").is_none(),
            "TTS leaves out a zero frame counter"
        );
        assert!(
            up.get("decoded_payload").is_none(),
            "rooms send raw bytes only"
        );
        assert_eq!(up["f_port"], 85);
        assert!(up["settings"]["frequency"].is_string());
        assert_eq!(
            up["rx_metadata"][0]["location"]["source"],
            "SOURCE_REGISTRY"
        );
        assert!(up["consumed_airtime"].as_str().unwrap().ends_with('s'));
        let (_, second) = uplink(room, noon() + chrono::Duration::minutes(10), &mut rng);
        let second: Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(second["uplink_message"]["f_cnt"], 1);
    }

    #[test]
    fn same_seed_and_time_give_the_same_bytes() {
        let run = || {
            let mut f = fleet(&opts(20, 5));
            let mut rng = StdRng::seed_from_u64(5);
            (0..f.len())
                .map(|i| uplink(&mut f[i], noon(), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn bays_fill_by_day_and_keep_their_state() {
        let mut f: Vec<SimDevice> = fleet(&opts(300, 42))
            .into_iter()
            .filter(|d| d.kind == "parking_bay")
            .collect();
        let mut rng = StdRng::seed_from_u64(2);
        // Wednesday: 03:00 and 12:00 local time, then one uplink a minute for ten minutes.
        let share_at = |f: &mut Vec<SimDevice>, at: DateTime<Utc>, rng: &mut StdRng| {
            let mut changes = 0;
            let mut occupied = 0;
            for step in 0..10 {
                let now = at + chrono::Duration::minutes(step);
                for d in f.iter_mut() {
                    let (_, payload) = uplink(d, now, rng);
                    let v: Value = serde_json::from_slice(&payload).unwrap();
                    changes += usize::from(step > 0 && v["fPort"] == 1);
                    occupied +=
                        usize::from(matches!(&d.behaviour, Behaviour::Bay(b) if b.occupied));
                }
            }
            (
                occupied as f64 / (10 * f.len()) as f64,
                changes as f64 / (9 * f.len()) as f64,
            )
        };
        let (night, _) = share_at(&mut f, "2024-06-12T01:00:00Z".parse().unwrap(), &mut rng);
        let (day, change_rate) = share_at(&mut f, noon(), &mut rng);
        assert!(night < 0.3, "night occupancy {night}");
        assert!(day > 0.6, "midday occupancy {day}");
        assert!(
            change_rate < 0.1,
            "bays change state on {change_rate} of one-minute uplinks"
        );
    }

    #[test]
    fn office_co2_rises_during_the_morning() {
        let mut f = fleet(&opts(60, 42));
        let room = f
            .iter_mut()
            .find(|d| matches!(&d.behaviour, Behaviour::Room(r) if r.usage == RoomUse::Office))
            .unwrap();
        let mut rng = StdRng::seed_from_u64(4);
        let mut co2_at = Vec::new();
        // Wednesday 05:00 → 12:00 local time, every ten minutes.
        let start: DateTime<Utc> = "2024-06-12T03:00:00Z".parse().unwrap();
        for step in 0..=42 {
            let now = start + chrono::Duration::minutes(10 * step);
            uplink(room, now, &mut rng);
            let co2 = room
                .last_expected
                .iter()
                .find(|(q, _)| *q == Quantity::Co2)
                .unwrap()
                .1;
            co2_at.push(co2);
        }
        let early = co2_at[..6].iter().sum::<f64>() / 6.0;
        let late = co2_at[co2_at.len() - 6..].iter().sum::<f64>() / 6.0;
        assert!(early < 480.0, "empty office at dawn: {early} ppm");
        assert!(
            late > early + 200.0,
            "occupied office before noon: {late} ppm"
        );
    }

    #[test]
    fn outdoor_temperature_has_a_daily_cycle() {
        let mut f = fleet(&opts(60, 42));
        let station = f.iter_mut().find(|d| d.kind == "outdoor_climate").unwrap();
        let mut rng = StdRng::seed_from_u64(6);
        let temp = |station: &mut SimDevice, at: &str, rng: &mut StdRng| {
            uplink(station, at.parse().unwrap(), rng);
            station
                .last_expected
                .iter()
                .find(|(q, _)| *q == Quantity::Temperature)
                .unwrap()
                .1
        };
        let dawn = temp(station, "2024-07-10T03:00:00Z", &mut rng);
        let afternoon = temp(station, "2024-07-10T13:00:00Z", &mut rng);
        assert!(
            afternoon > dawn + 3.0,
            "dawn {dawn} °C, afternoon {afternoon} °C"
        );
    }

    #[test]
    fn schedule_follows_reporting_intervals() {
        let f = fleet(&opts(60, 42));
        let mut rng = StdRng::seed_from_u64(8);
        let mut s = Schedule::new(&f, &mut rng);
        let mut sent: HashMap<&str, f64> = HashMap::new();
        let n = 20_000;
        for _ in 0..n {
            *sent.entry(f[s.next().unwrap()].kind).or_insert(0.0) += 1.0;
        }
        let weight = |d: &SimDevice| 1.0 / d.spec.interval_s as f64;
        let total: f64 = f.iter().map(weight).sum();
        for kind in [
            "parking_bay",
            "parking_counter",
            "room_climate",
            "outdoor_climate",
            "air_quality",
        ] {
            let want: f64 = f.iter().filter(|d| d.kind == kind).map(weight).sum::<f64>() / total;
            let got = sent.get(kind).copied().unwrap_or(0.0) / f64::from(n);
            assert!(
                (got - want).abs() < 0.01,
                "{kind}: {got:.3} of traffic, expected {want:.3}"
            );
        }
        assert_eq!(Schedule::new(&[], &mut rng).next(), None);
    }

    #[test]
    fn pacer_limits_rate_and_burst() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10.0, t0);
        assert!(p.take(), "first uplink right away");
        assert!(!p.take());
        p.refill(t0 + Duration::from_secs(60));
        let burst = std::iter::from_fn(|| p.take().then_some(())).count();
        assert_eq!(burst, 5, "half a second's worth after a stall");
    }
}
