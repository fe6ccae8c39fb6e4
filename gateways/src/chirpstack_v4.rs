//! ChirpStack v4 MQTT integration events (JSON marshaler, protobuf-JSON field names).
//!
//! Topic: `application/<app uuid>/device/<deveui>/event/<up|join|status|ack|txack|log|location|integration>`.

use crate::wire::{self, ChirpstackTopic, Ctx, WireLocation};
use crate::{DecodeError, Decoded, DeviceEvent, GatewayRx, NetworkServer, TxInfo, Uplink};
use serde::Deserialize;
use serde_json::Value;

/// Decodes one ChirpStack v4 event.
pub(crate) fn decode(msg: &Value, ctx: &Ctx<'_>) -> Result<Decoded, DecodeError> {
    let topic = ChirpstackTopic::parse(ctx.topic);
    let event = topic.event.unwrap_or_else(|| infer_event(msg));
    match event {
        "up" => up(msg, &topic, ctx).map(|u| Decoded::Uplink(Box::new(u))),
        "status" => status(msg, &topic, ctx).map(Decoded::Event),
        "location" => location(msg, &topic, ctx).map(Decoded::Event),
        other => Ok(skipped(msg, &topic, skip_kind(other))),
    }
}

/// Without a topic, tell the event type from the keys only that event carries.
fn infer_event(msg: &Value) -> &'static str {
    let has = |k| wire::has(msg, k);
    if has("integrationName") {
        "integration"
    } else if has("level") && has("code") {
        "log"
    } else if has("downlinkId") {
        "txack"
    } else if has("acknowledged") || has("queueItemId") {
        "ack"
    } else if has("batteryLevel") || has("margin") || has("externalPowerSource") {
        "status"
    } else if has("rxInfo") || has("data") || has("fPort") || has("fCnt") {
        "up"
    } else if has("location") {
        "location"
    } else if has("devAddr") {
        "join"
    } else {
        "unknown"
    }
}

/// Event types that are valid but carry nothing to store.
fn skip_kind(event: &str) -> &'static str {
    match event {
        "join" => "join",
        "ack" => "ack",
        "txack" => "txack",
        "log" => "log",
        "integration" => "integration",
        "down" => "down",
        _ => "unknown",
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DeviceInfo {
    application_id: Option<String>,
    device_name: Option<String>,
    dev_eui: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct UpEvent {
    deduplication_id: Option<String>,
    time: Option<String>,
    device_info: DeviceInfo,
    dr: Option<u32>,
    f_cnt: Option<u32>,
    f_port: Option<u32>,
    data: Option<String>,
    object: Option<Value>,
    rx_info: Option<Vec<RxInfo>>,
    tx_info: WireTxInfo,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RxInfo {
    gateway_id: Option<String>,
    /// Since v4.6; before that the only reception time was `time`.
    gw_time: Option<String>,
    ns_time: Option<String>,
    time: Option<String>,
    rssi: Option<f64>,
    snr: Option<f64>,
    location: Option<WireLocation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireTxInfo {
    frequency: Option<u64>,
    modulation: Modulation,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Modulation {
    lora: Option<LoraModulation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LoraModulation {
    bandwidth: Option<u32>,
    spreading_factor: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StatusEvent {
    time: Option<String>,
    device_info: DeviceInfo,
    margin: Option<i32>,
    external_power_source: bool,
    battery_level_unavailable: bool,
    battery_level: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LocationEvent {
    time: Option<String>,
    device_info: DeviceInfo,
    location: Option<WireLocation>,
}

/// The payload's DevEUI, cross-checked against the topic.
fn dev_eui(info: &DeviceInfo, topic: &ChirpstackTopic<'_>) -> Result<crate::DevEui, DecodeError> {
    let eui = wire::dev_eui_hex(info.dev_eui.as_deref(), "deviceInfo.devEui")?;
    wire::check_topic(topic.dev_eui, eui)?;
    Ok(eui)
}

fn up(msg: &Value, topic: &ChirpstackTopic<'_>, ctx: &Ctx<'_>) -> Result<Uplink, DecodeError> {
    let ev: UpEvent = wire::read(msg, "up event")?;
    let dev_eui = dev_eui(&ev.device_info, topic)?;
    let dedup_key = ev
        .deduplication_id
        .filter(|s| !s.is_empty())
        .ok_or(DecodeError::MissingField("deduplicationId"))?;
    let rx_info = ev.rx_info.unwrap_or_default();

    let first_rx_time = match rx_info.first() {
        Some(rx) => {
            let first = rx.ns_time.as_deref().or(rx.gw_time.as_deref());
            wire::time_opt("rxInfo.nsTime", first.or(rx.time.as_deref()), ctx.now)?
        }
        None => None,
    };
    let observed_at = wire::time_opt("time", ev.time.as_deref(), ctx.now)?
        .or(first_rx_time)
        .unwrap_or(ctx.now);
    let mut latest_ns_time = None;
    for rx in &rx_info {
        let t = wire::time_opt("rxInfo.nsTime", rx.ns_time.as_deref(), ctx.now)?;
        latest_ns_time = latest_ns_time.max(t);
    }

    let payload = match ev.data.as_deref() {
        Some(data) => wire::base64("data", data)?,
        None => Vec::new(),
    };
    let gateways = rx_info
        .iter()
        .map(|rx| GatewayRx {
            gateway_id: rx.gateway_id.clone().unwrap_or_default(),
            rssi: rx.rssi,
            snr: rx.snr,
            location: rx.location.as_ref().and_then(WireLocation::to_location),
        })
        .collect();
    let lora = ev.tx_info.modulation.lora.unwrap_or_default();

    Ok(Uplink {
        dedup_key,
        dev_eui,
        network_server: NetworkServer::ChirpstackV4,
        application: ev.device_info.application_id,
        device_name: ev.device_info.device_name,
        observed_at,
        received_at: latest_ns_time.unwrap_or(observed_at),
        f_cnt: ev.f_cnt,
        f_port: wire::f_port(ev.f_port, "fPort")?,
        payload,
        decoded: wire::non_empty_object(ev.object),
        gateways,
        tx: TxInfo {
            frequency_hz: ev.tx_info.frequency,
            spreading_factor: lora.spreading_factor,
            bandwidth_hz: lora.bandwidth,
            dr: ev.dr,
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
    let battery_known = !ev.external_power_source && !ev.battery_level_unavailable;
    Ok(DeviceEvent::Status {
        dev_eui: dev_eui(&ev.device_info, topic)?,
        battery_percent: ev.battery_level.filter(|_| battery_known),
        external_power: ev.external_power_source,
        margin: ev.margin,
        at: wire::time_opt("time", ev.time.as_deref(), ctx.now)?,
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
        dev_eui: dev_eui(&ev.device_info, topic)?,
        location,
        at: wire::time_opt("time", ev.time.as_deref(), ctx.now)?,
    })
}

/// Skipped events never fail: the DevEUI is reported when it can be read.
fn skipped(msg: &Value, topic: &ChirpstackTopic<'_>, kind: &'static str) -> Decoded {
    let from_payload = wire::path(msg, "deviceInfo.devEui")
        .and_then(Value::as_str)
        .and_then(|s| crate::DevEui::parse_hex(s).ok());
    Decoded::Skipped {
        kind,
        dev_eui: from_payload.or(topic.dev_eui),
    }
}
