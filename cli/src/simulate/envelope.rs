//! Network-server side of the simulation: which gateways hear an uplink and how well (radio
//! link), and the JSON a ChirpStack v4 or The Things Stack v3 MQTT integration publishes for it.

use super::city::{self, Gateway, GATEWAYS};
use super::devices::{gauss, Frame};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Map, Value};
use stadtpuls_gateways::DevEui;

/// EU868 uplink channels (the 3 default ones first), Hz.
const EU868_CHANNELS: [u64; 8] = [
    868_100_000,
    868_300_000,
    868_500_000,
    867_100_000,
    867_300_000,
    867_500_000,
    867_700_000,
    867_900_000,
];
const BANDWIDTH_HZ: u32 = 125_000;
/// Most gateways a network server reports for one uplink here.
const MAX_RECEPTIONS: usize = 3;
/// Link margin ChirpStack's ADR keeps (its `installation_margin` default), dB.
const ADR_MARGIN_DB: f64 = 10.0;

/// One gateway's reception of an uplink.
#[derive(Debug, Clone)]
pub(crate) struct Reception {
    pub gateway: &'static Gateway,
    pub rssi: i32,
    pub snr: f64,
}

/// How an uplink went over the air.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub spreading_factor: u32,
    pub channel: usize,
    /// Strongest first; never empty.
    pub receptions: Vec<Reception>,
}

impl Link {
    pub fn frequency(&self) -> u64 {
        EU868_CHANNELS[self.channel % EU868_CHANNELS.len()]
    }

    /// EU868 data-rate index (DR0 = SF12 … DR5 = SF7).
    pub fn data_rate(&self) -> u32 {
        12 - self.spreading_factor
    }
}

/// Lowest SNR at which a LoRa receiver still demodulates this spreading factor, dB.
fn demodulation_floor(sf: u32) -> f64 {
    -7.5 - 2.5 * f64::from(sf - 7)
}

/// Simulates one transmission from `pos`: log-distance path loss (urban, 868 MHz) with
/// log-normal shadowing and an extra `wall_loss_db` for indoor or ground-level sensors; the
/// spreading factor is what ADR would have settled on for the best gateway.
pub(crate) fn link<R: Rng + ?Sized>(pos: (f64, f64), wall_loss_db: f64, rng: &mut R) -> Link {
    let mut heard: Vec<Reception> = GATEWAYS
        .iter()
        .map(|gw| {
            let d_km = (city::distance_m(pos, (gw.lat, gw.lon)) / 1000.0).max(0.03);
            // 14 dBm ERP, 3 dBi gateway antenna.
            let path_loss = 120.9 + 37.6 * d_km.log10();
            let rssi = 17.0 - path_loss - wall_loss_db + 5.0 * gauss(rng);
            // Noise floor of a 125 kHz channel with a 6 dB noise figure ≈ −117 dBm.
            let snr = (rssi + 117.0 + 1.5 * gauss(rng)).min(13.5);
            Reception {
                gateway: gw,
                rssi: rssi.round().max(-139.0) as i32,
                snr: quarter_db(snr),
            }
        })
        .collect();
    heard.sort_by(|a, b| b.snr.total_cmp(&a.snr));
    let best = heard.first().map_or(0.0, |r| r.snr);
    let spreading_factor = (7..=12)
        .find(|sf| best - demodulation_floor(*sf) >= ADR_MARGIN_DB)
        .unwrap_or(12);
    let floor = demodulation_floor(spreading_factor);
    let mut receptions: Vec<Reception> = heard
        .iter()
        .enumerate()
        .filter(|(i, r)| *i == 0 || r.snr >= floor)
        .map(|(_, r)| r.clone())
        .take(MAX_RECEPTIONS)
        .collect();
    receptions.sort_by_key(|r| std::cmp::Reverse(r.rssi));
    Link {
        spreading_factor,
        channel: rng.gen_range(0..EU868_CHANNELS.len()),
        receptions,
    }
}

/// SX1301 concentrators report SNR in steps of 0.25 dB.
fn quarter_db(v: f64) -> f64 {
    (v * 4.0).round() / 4.0
}

/// LoRa time on air (Semtech AN1200.13) for a frame with `frm_payload_len` application bytes
/// (+13 bytes of LoRaWAN header and MIC), explicit header, CRC on, coding rate 4/5, 8-symbol
/// preamble, 125 kHz.
pub(crate) fn airtime_s(sf: u32, frm_payload_len: usize) -> f64 {
    let sf_f = f64::from(sf);
    let t_sym = 2f64.powi(sf as i32) / f64::from(BANDWIDTH_HZ);
    let low_rate_opt = if sf >= 11 { 1.0 } else { 0.0 };
    let pl = (13 + frm_payload_len) as f64;
    let num = 8.0 * pl - 4.0 * sf_f + 28.0 + 16.0;
    let den = 4.0 * (sf_f - 2.0 * low_rate_opt);
    let payload_symbols = 8.0 + ((num / den).ceil() * 5.0).max(0.0);
    (8.0 + 4.25 + payload_symbols) * t_sym
}

/// A random (version 4) UUID, as ChirpStack's `deduplicationId`.
pub(crate) fn uuid_v4<R: Rng + ?Sized>(rng: &mut R) -> String {
    let mut b: [u8; 16] = rng.gen();
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A ULID (48-bit millisecond time + 80 random bits, Crockford base32), as in TTS correlation ids.
pub(crate) fn ulid<R: Rng + ?Sized>(at: DateTime<Utc>, rng: &mut R) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = u128::from(at.timestamp_millis().max(0) as u64) & ((1 << 48) - 1);
    let random = rng.gen::<u128>() & ((1 << 80) - 1);
    let value = (millis << 80) | random;
    (0..26)
        .map(|i| char::from(ALPHABET[((value >> (5 * (25 - i))) & 0x1F) as usize]))
        .collect()
}

fn chirpstack_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn tts_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn millis<R: Rng + ?Sized>(rng: &mut R, range: std::ops::Range<i64>) -> Duration {
    Duration::microseconds(rng.gen_range(range.start * 1000..range.end * 1000))
}

/// Identity and session of one device, as the network server knows it.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    pub dev_eui: DevEui,
    pub name: &'a str,
    pub dev_addr: u32,
    pub f_cnt: u32,
    /// ChirpStack device tags (`site_id`, `room_id`).
    pub tags: Map<String, Value>,
}

/// A ChirpStack application with one device profile.
#[derive(Debug)]
pub(crate) struct ChirpstackApp {
    pub application_id: &'static str,
    pub application_name: &'static str,
    pub device_profile_id: &'static str,
    pub device_profile_name: &'static str,
}

/// The municipal ChirpStack tenant.
const CHIRPSTACK_TENANT_ID: &str = "5e0d1f3a-8c47-4b2e-9a61-d37f0c2b8e95";
const CHIRPSTACK_TENANT_NAME: &str = "Stadt Dortmund";

/// ChirpStack v4 `up` event: `(topic, event JSON)`.
pub(crate) fn chirpstack_up<R: Rng + ?Sized>(
    s: &Session<'_>,
    app: &ChirpstackApp,
    frame: &Frame,
    link: &Link,
    now: DateTime<Utc>,
    rng: &mut R,
) -> (String, Value) {
    let dev_eui = s.dev_eui.to_string();
    let ns_time = now + millis(rng, 8..40);
    let rx_info: Vec<Value> = link
        .receptions
        .iter()
        .map(|r| {
            let context: [u8; 4] = rng.gen();
            json!({
                "gatewayId": r.gateway.eui,
                "uplinkId": rng.gen::<u16>(),
                "gwTime": chirpstack_time(now),
                "nsTime": chirpstack_time(ns_time),
                "rssi": r.rssi,
                "snr": r.snr,
                "channel": link.channel,
                "rfChain": u8::from(link.channel < 3),
                "location": {
                    "latitude": r.gateway.lat,
                    "longitude": r.gateway.lon,
                    "altitude": f64::from(r.gateway.alt),
                },
                "context": B64.encode(context),
                "metadata": {"region_common_name": "EU868", "region_config_id": "eu868"},
                "crcStatus": "CRC_OK",
            })
        })
        .collect();
    let mut event = json!({
        "deduplicationId": uuid_v4(rng),
        "time": chirpstack_time(now),
        "deviceInfo": {
            "tenantId": CHIRPSTACK_TENANT_ID,
            "tenantName": CHIRPSTACK_TENANT_NAME,
            "applicationId": app.application_id,
            "applicationName": app.application_name,
            "deviceProfileId": app.device_profile_id,
            "deviceProfileName": app.device_profile_name,
            "deviceName": s.name,
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
            "tags": s.tags,
        },
        "devAddr": format!("{:08x}", s.dev_addr),
        "adr": true,
        "dr": link.data_rate(),
        "fCnt": s.f_cnt,
        "fPort": frame.f_port,
        "confirmed": false,
        "data": B64.encode(&frame.bytes),
        "rxInfo": rx_info,
        "txInfo": {
            "frequency": link.frequency(),
            "modulation": {"lora": {
                "bandwidth": BANDWIDTH_HZ,
                "spreadingFactor": link.spreading_factor,
                "codeRate": "CR_4_5",
            }},
        },
        "regionConfigId": "eu868",
    });
    if let (Some(object), Some(map)) = (&frame.object, event.as_object_mut()) {
        map.insert("object".into(), object.clone());
    }
    let topic = format!(
        "application/{}/device/{dev_eui}/event/up",
        app.application_id
    );
    (topic, event)
}

/// TTS application (on The Things Network's `ttn` tenant) all simulated TTS devices belong to.
pub(crate) const TTS_APPLICATION: &str = "stadtpuls-sim";
pub(crate) const TTS_TENANT: &str = "ttn";

/// Device-repository identity of a TTS end device.
#[derive(Debug)]
pub(crate) struct TtsModel {
    pub join_eui: u64,
    pub brand_id: &'static str,
    pub model_id: &'static str,
    pub hardware_version: &'static str,
    pub firmware_version: &'static str,
}

/// TTS v3 `uplink_message`: `(topic, ApplicationUp JSON)`. Like TTS, leaves out zero values.
pub(crate) fn tts_up<R: Rng + ?Sized>(
    s: &Session<'_>,
    model: &TtsModel,
    session_key_id: &[u8; 16],
    frame: &Frame,
    link: &Link,
    now: DateTime<Utc>,
    rng: &mut R,
) -> (String, Value) {
    let device_id = format!("eui-{}", s.dev_eui);
    let gs_time = now + millis(rng, 5..30);
    let ns_time = gs_time + millis(rng, 20..60);
    let as_time = ns_time + millis(rng, 40..150);
    let first_timestamp: u32 = rng.gen();
    let rx_metadata: Vec<Value> = link
        .receptions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let token: [u8; 24] = rng.gen();
            let timestamp = if i == 0 { first_timestamp } else { rng.gen() };
            json!({
                "gateway_ids": {"gateway_id": r.gateway.id, "eui": r.gateway.eui.to_ascii_uppercase()},
                "time": tts_time(now),
                "timestamp": timestamp,
                "rssi": r.rssi,
                "channel_rssi": r.rssi,
                "snr": r.snr,
                "location": {
                    "latitude": r.gateway.lat,
                    "longitude": r.gateway.lon,
                    "altitude": r.gateway.alt,
                    "source": "SOURCE_REGISTRY",
                },
                "uplink_token": B64.encode(token),
                "channel_index": link.channel,
                "received_at": tts_time(gs_time),
            })
        })
        .collect();

    let mut uplink = Map::new();
    uplink.insert("session_key_id".into(), json!(B64.encode(session_key_id)));
    uplink.insert("f_port".into(), json!(frame.f_port));
    if s.f_cnt != 0 {
        uplink.insert("f_cnt".into(), json!(s.f_cnt));
    }
    uplink.insert("frm_payload".into(), json!(B64.encode(&frame.bytes)));
    if let Some(object) = &frame.object {
        uplink.insert("decoded_payload".into(), object.clone());
    }
    uplink.insert("rx_metadata".into(), Value::Array(rx_metadata));
    uplink.insert(
        "settings".into(),
        json!({
            "data_rate": {"lora": {
                "bandwidth": BANDWIDTH_HZ,
                "spreading_factor": link.spreading_factor,
                "coding_rate": "4/5",
            }},
            "frequency": link.frequency().to_string(),
            "timestamp": first_timestamp,
            "time": tts_time(now),
        }),
    );
    uplink.insert("received_at".into(), json!(tts_time(ns_time)));
    uplink.insert(
        "consumed_airtime".into(),
        json!(format!(
            "{:.6}s",
            airtime_s(link.spreading_factor, frame.bytes.len())
        )),
    );
    uplink.insert(
        "version_ids".into(),
        json!({
            "brand_id": model.brand_id,
            "model_id": model.model_id,
            "hardware_version": model.hardware_version,
            "firmware_version": model.firmware_version,
            "band_id": "EU_863_870",
        }),
    );
    uplink.insert(
        "network_ids".into(),
        json!({
            "net_id": "000013",
            "ns_id": "EC656E0000000181",
            "tenant_id": TTS_TENANT,
            "cluster_id": "eu1",
            "cluster_address": "eu1.cloud.thethings.network",
        }),
    );

    let message = json!({
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": TTS_APPLICATION},
            "dev_eui": format!("{:016X}", s.dev_eui.0),
            "join_eui": format!("{:016X}", model.join_eui),
            "dev_addr": format!("{:08X}", s.dev_addr),
        },
        "correlation_ids": [
            format!("as:up:{}", ulid(as_time, rng)),
            format!("gs:conn:{}", ulid(now - Duration::hours(3), rng)),
            format!("gs:up:host:{}", ulid(now - Duration::hours(3), rng)),
            format!("gs:uplink:{}", ulid(gs_time, rng)),
            format!("ns:uplink:{}", ulid(gs_time, rng)),
            format!("rpc:/ttn.lorawan.v3.GsNs/HandleUplink:{}", ulid(gs_time, rng)),
            format!("rpc:/ttn.lorawan.v3.NsAs/HandleUplink:{}", ulid(ns_time, rng)),
        ],
        "received_at": tts_time(as_time),
        "uplink_message": Value::Object(uplink),
    });
    let topic = format!("v3/{TTS_APPLICATION}@{TTS_TENANT}/devices/{device_id}/up");
    (topic, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn ids_have_the_right_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        let u = uuid_v4(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        // ulid-javascript's seed-time example: 1469918176385 ms → time part `01ARYZ6S41`.
        let at = DateTime::<Utc>::from_timestamp_millis(1_469_918_176_385).unwrap();
        let id = ulid(at, &mut rng);
        assert_eq!(id.len(), 26);
        assert_eq!(&id[..10], "01ARYZ6S41");
    }

    #[test]
    fn airtime_matches_the_lora_calculator() {
        // 13 + 2 bytes at SF7/125 kHz: 46.336 ms; at SF12: 1155.072 ms.
        assert!((airtime_s(7, 2) - 0.046336).abs() < 1e-9);
        assert!((airtime_s(12, 2) - 1.155072).abs() < 1e-9);
    }

    #[test]
    fn near_gateways_use_fast_data_rates() {
        let mut rng = StdRng::seed_from_u64(3);
        // Next to the town-hall gateway.
        let l = link((51.5138, 7.4656), 0.0, &mut rng);
        assert_eq!(l.spreading_factor, 7);
        assert!(!l.receptions.is_empty() && l.receptions.len() <= MAX_RECEPTIONS);
        assert_eq!(l.data_rate(), 5);
        assert!(EU868_CHANNELS.contains(&l.frequency()));
    }
}
