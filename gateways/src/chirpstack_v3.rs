//! ChirpStack v3 (Application Server) MQTT integration events, both JSON marshalers:
//! `json` (protobuf JSON: EUIs as base64 bytes, decoded payload as the *string* `objectJSON`)
//! and the legacy `json_v3` (EUIs as hex, decoded payload as the real JSON `object`).
//! The marshaler is detected per field, so mixed or hand-written messages work too.
//!
//! Topic: `application/<numeric id>/device/<deveui>/event/<type>`, before v3.11
//! `application/<id>/device/<deveui>/rx|join|ack|error|status|location`.

use crate::wire::{self, ChirpstackTopic, Ctx, WireLocation};
use crate::{DecodeError, Decoded, DevEui, DeviceEvent, GatewayRx, NetworkServer, TxInfo, Uplink};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::Value;

/// Decodes one ChirpStack v3 event.
pub(crate) fn decode(msg: &Value, ctx: &Ctx<'_>) -> Result<Decoded, DecodeError> {
    let topic = ChirpstackTopic::parse(ctx.topic);
    let event = topic.event.unwrap_or_else(|| infer_event(msg));
    match event {
        "up" | "rx" => up(msg, &topic, ctx).map(|u| Decoded::Uplink(Box::new(u))),
        "status" => status(msg, &topic, ctx).map(Decoded::Event),
        "location" => location(msg, &topic, ctx).map(Decoded::Event),
        other => Ok(skipped(msg, &topic, skip_kind(other))),
    }
}

/// Without a topic, tell the event type from the keys only that event carries.
fn infer_event(msg: &Value) -> &'static str {
    let has = |k| wire::has(msg, k);
    if has("batteryLevel") || has("battery") || has("margin") || has("externalPowerSource") {
        "status"
    } else if has("fCnt") || has("fPort") || has("data") || has("objectJSON") || has("object") {
        "up"
    } else if has("acknowledged") {
        "ack"
    } else if has("error") {
        "error"
    } else if has("location") {
        "location"
    } else if has("devAddr") {
        "join"
    } else if has("rxInfo") {
        "up"
    } else {
        "unknown"
    }
}

fn skip_kind(event: &str) -> &'static str {
    match event {
        "join" => "join",
        "ack" => "ack",
        "txack" => "txack",
        "error" => "error",
        "integration" => "integration",
        "down" => "down",
        _ => "unknown",
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UpEvent {
    /// uint64: a string in the `json` marshaler, sometimes a number elsewhere.
    #[serde(rename = "applicationID", deserialize_with = "wire::lenient_string")]
    application_id: Option<String>,
    device_name: Option<String>,
    #[serde(rename = "devEUI")]
    dev_eui: Option<String>,
    rx_info: Option<Vec<RxInfo>>,
    tx_info: WireTxInfo,
    dr: Option<u32>,
    f_cnt: Option<u32>,
    f_port: Option<u32>,
    data: Option<String>,
    /// `json` marshaler: the decoded payload serialised as a JSON string (`""` = none).
    #[serde(rename = "objectJSON")]
    object_json: Option<String>,
    /// `json_v3` marshaler: the decoded payload as JSON.
    object: Option<Value>,
    published_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RxInfo {
    #[serde(rename = "gatewayID")]
    gateway_id: Option<String>,
    time: Option<String>,
    rssi: Option<f64>,
    #[serde(rename = "loRaSNR")]
    lora_snr: Option<f64>,
    location: Option<WireLocation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireTxInfo {
    frequency: Option<u64>,
    /// `json_v3` puts the data rate here.
    dr: Option<u32>,
    #[serde(rename = "loRaModulationInfo")]
    lora: Option<LoraModulationInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LoraModulationInfo {
    /// kHz in v3 (v4 uses Hz).
    bandwidth: Option<u32>,
    spreading_factor: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StatusEvent {
    #[serde(rename = "devEUI")]
    dev_eui: Option<String>,
    margin: Option<i32>,
    external_power_source: bool,
    battery_level_unavailable: bool,
    /// Percent (`json` marshaler).
    battery_level: Option<f64>,
    /// Legacy raw DevStatusAns value: 0 external power, 1..=254 level, 255 unknown.
    battery: Option<u32>,
    published_at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LocationEvent {
    #[serde(rename = "devEUI")]
    dev_eui: Option<String>,
    location: Option<WireLocation>,
    published_at: Option<String>,
}

/// A v3 EUI: 16 hex digits (`json_v3`) or base64 of 8 bytes (`json`, e.g. `"AgICAgICAgI="`).
fn eui(raw: &str) -> Result<DevEui, DecodeError> {
    let raw = raw.trim();
    if raw.len() == 16 && raw.chars().all(|c| c.is_ascii_hexdigit()) {
        return DevEui::parse_hex(raw);
    }
    let bytes = wire::base64("devEUI", raw)
        .map_err(|_| DecodeError::InvalidDevEui(crate::model::truncate_for_error(raw)))?;
    DevEui::from_bytes(&bytes)
}

fn dev_eui(raw: Option<&str>, topic: &ChirpstackTopic<'_>) -> Result<DevEui, DecodeError> {
    let eui = eui(raw
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::MissingField("devEUI"))?)?;
    wire::check_topic(topic.dev_eui, eui)?;
    Ok(eui)
}

/// Gateway IDs in the same lowercase-hex form ChirpStack v4 uses; anything else is kept as sent.
fn gateway_id(raw: &str) -> String {
    eui(raw).map_or_else(|_| raw.to_string(), |e| e.to_string())
}

fn up(msg: &Value, topic: &ChirpstackTopic<'_>, ctx: &Ctx<'_>) -> Result<Uplink, DecodeError> {
    let ev: UpEvent = wire::read(msg, "up event")?;
    let dev_eui = dev_eui(ev.dev_eui.as_deref(), topic)?;
    let rx_info = ev.rx_info.unwrap_or_default();

    let rx_time = match rx_info.first() {
        Some(rx) => wire::time_opt("rxInfo.time", rx.time.as_deref(), ctx.now)?,
        None => None,
    };
    let published_at = wire::time_opt("publishedAt", ev.published_at.as_deref(), ctx.now)?;
    let observed_at = rx_time.or(published_at).unwrap_or(ctx.now);

    // v3 has no deduplication id. (DevEUI, fCnt, first gateway time) is stable across MQTT
    // redeliveries of the same event, but weak: without gateway time or publishedAt it falls
    // back to `now`, so a redelivery gets a new key; and two gateways reporting the same uplink
    // in separate events (no NS deduplication) get different keys.
    let key_time = rx_time.or(published_at).unwrap_or(ctx.now);
    let dedup_key = format!(
        "{dev_eui}:{}:{}",
        ev.f_cnt.unwrap_or_default(),
        key_time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    );

    let decoded = match ev.object_json.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            let parsed = wire::parse_json(text).map_err(|e| match e {
                DecodeError::InvalidJson(problem) => DecodeError::InvalidField {
                    field: "objectJSON",
                    problem,
                },
                other => other,
            })?;
            wire::non_empty_object(Some(parsed))
        }
        _ => wire::non_empty_object(ev.object),
    };
    let payload = match ev.data.as_deref() {
        Some(data) => wire::base64("data", data)?,
        None => Vec::new(),
    };
    let gateways = rx_info
        .iter()
        .map(|rx| GatewayRx {
            gateway_id: rx.gateway_id.as_deref().map(gateway_id).unwrap_or_default(),
            rssi: rx.rssi,
            snr: rx.lora_snr,
            // The `json` marshaler emits defaults, so "no location" arrives as 0/0.
            location: rx
                .location
                .as_ref()
                .and_then(WireLocation::to_location)
                .filter(|l| l.lat() != 0.0 || l.lon() != 0.0),
        })
        .collect();
    let lora = ev.tx_info.lora.unwrap_or_default();

    Ok(Uplink {
        dedup_key,
        dev_eui,
        network_server: NetworkServer::ChirpstackV3,
        application: ev.application_id.filter(|s| !s.is_empty()),
        device_name: ev.device_name,
        observed_at,
        received_at: published_at.unwrap_or(observed_at),
        f_cnt: ev.f_cnt,
        f_port: wire::f_port(ev.f_port, "fPort")?,
        payload,
        decoded,
        gateways,
        tx: TxInfo {
            frequency_hz: ev.tx_info.frequency,
            spreading_factor: lora.spreading_factor,
            bandwidth_hz: lora.bandwidth.map(|khz| khz.saturating_mul(1000)),
            dr: ev.dr.or(ev.tx_info.dr),
        },
        device_location: None,
        simulated: false,
    })
}

fn status(
    msg: &Value,
    topic: &ChirpstackTopic<'_>,
    ctx: &Ctx<'_>,
) -> Result<DeviceEvent, DecodeError> {
    let ev: StatusEvent = wire::read(msg, "status event")?;
    let (battery_percent, external_power) = match (ev.battery_level, ev.battery) {
        _ if ev.external_power_source => (None, true),
        _ if ev.battery_level_unavailable => (None, false),
        (Some(percent), _) => (Some(percent), false),
        (None, Some(0)) => (None, true),
        (None, Some(raw @ 1..=254)) => (Some(f64::from(raw) / 254.0 * 100.0), false),
        (None, _) => (None, false),
    };
    Ok(DeviceEvent::Status {
        dev_eui: dev_eui(ev.dev_eui.as_deref(), topic)?,
        battery_percent,
        external_power,
        margin: ev.margin,
        at: wire::time_opt("publishedAt", ev.published_at.as_deref(), ctx.now)?,
    })
}

fn location(
    msg: &Value,
    topic: &ChirpstackTopic<'_>,
    ctx: &Ctx<'_>,
) -> Result<DeviceEvent, DecodeError> {
    let ev: LocationEvent = wire::read(msg, "location event")?;
    let location = ev
        .location
        .as_ref()
        .map(|l| l.checked("location"))
        .transpose()?
        .flatten()
        .ok_or(DecodeError::MissingField("location.latitude"))?;
    Ok(DeviceEvent::Location {
        dev_eui: dev_eui(ev.dev_eui.as_deref(), topic)?,
        location,
        at: wire::time_opt("publishedAt", ev.published_at.as_deref(), ctx.now)?,
    })
}

/// Skipped events never fail: the DevEUI is reported when it can be read.
fn skipped(msg: &Value, topic: &ChirpstackTopic<'_>, kind: &'static str) -> Decoded {
    let from_payload = msg
        .get("devEUI")
        .and_then(Value::as_str)
        .and_then(|s| eui(s).ok());
    Decoded::Skipped {
        kind,
        dev_eui: from_payload.or(topic.dev_eui),
    }
}
