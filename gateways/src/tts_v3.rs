//! The Things Stack v3 (TTS / TTN v3) application messages: the MQTT/webhook `ApplicationUp`
//! envelope, plus the Storage Integration wrapper `{"result": ...}` and the Events API wrapper
//! `{"data": {"@type": ...ApplicationUp, ...}}` that users paste.
//!
//! Topic: `v3/<app>@<tenant>/devices/<device id>/<up|join|down/...|location/solved|...>`.
//! TTS omits zero values (`f_cnt: 0`, `f_port: 0`, `false`) and renders uint64 as strings.

use crate::wire::{self, Ctx, WireLocation};
use crate::{DecodeError, Decoded, DevEui, DeviceEvent, GatewayRx, Location, NetworkServer};
use crate::{TxInfo, Uplink};
use chrono::SecondsFormat;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What an `ApplicationUp` carries, by envelope key and by topic suffix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Uplink,
    Location,
    Skip(&'static str),
}

/// Envelope key, topic suffix after `devices/<id>/`, kind. Order only matters for the (invalid)
/// case of several keys in one message: the first listed wins.
const KINDS: &[(&str, &str, Kind)] = &[
    ("uplink_message", "up", Kind::Uplink),
    (
        "uplink_normalized",
        "up/normalized",
        Kind::Skip("up_normalized"),
    ),
    ("location_solved", "location/solved", Kind::Location),
    ("join_accept", "join", Kind::Skip("join")),
    ("downlink_ack", "down/ack", Kind::Skip("down_ack")),
    ("downlink_nack", "down/nack", Kind::Skip("down_nack")),
    ("downlink_sent", "down/sent", Kind::Skip("down_sent")),
    ("downlink_failed", "down/failed", Kind::Skip("down_failed")),
    ("downlink_queued", "down/queued", Kind::Skip("down_queued")),
    (
        "downlink_queue_invalidated",
        "down/invalidated",
        Kind::Skip("down_invalidated"),
    ),
    ("service_data", "service/data", Kind::Skip("service_data")),
    // Topics we publish to ourselves; seen when subscribing to `#`.
    ("", "down/push", Kind::Skip("down_push")),
    ("", "down/replace", Kind::Skip("down_replace")),
];

/// Decodes one TTS v3 message.
pub(crate) fn decode(msg: &Value, ctx: &Ctx<'_>) -> Result<Decoded, DecodeError> {
    let msg = unwrap_envelope(msg);
    let kind = kind_of(msg, ctx.topic).ok_or_else(|| DecodeError::InvalidField {
        field: "envelope",
        problem: "no known ApplicationUp key (uplink_message, join_accept, downlink_*, ...)"
            .to_string(),
    })?;
    let env: Envelope = wire::read(msg, "envelope")?;
    match kind {
        Kind::Uplink => uplink(env, ctx).map(|u| Decoded::Uplink(Box::new(u))),
        Kind::Location => location_solved(env, ctx).map(Decoded::Event),
        Kind::Skip(kind) => Ok(Decoded::Skipped {
            kind,
            dev_eui: dev_eui(&env.end_device_ids).ok(),
        }),
    }
}

/// The `ApplicationUp` inside the Storage Integration (`result`) or Events API (`data`) wrappers.
pub(crate) fn unwrap_envelope(msg: &Value) -> &Value {
    if wire::has(msg, "end_device_ids") {
        return msg;
    }
    ["result", "data"]
        .iter()
        .filter_map(|k| msg.get(*k))
        .find(|inner| wire::has(inner, "end_device_ids"))
        .unwrap_or(msg)
}

/// True for `v3/<app>/devices/<device id>/...` topics.
pub(crate) fn is_tts_topic(topic: &str) -> bool {
    topic.starts_with("v3/") && topic_suffix(topic).is_some()
}

/// The part of the topic after `devices/<device id>/`.
fn topic_suffix(topic: &str) -> Option<&str> {
    let mut rest = topic;
    while let Some((head, tail)) = rest.split_once('/') {
        if head == "devices" {
            return tail.split_once('/').map(|(_, suffix)| suffix);
        }
        rest = tail;
    }
    None
}

fn kind_of(msg: &Value, topic: &str) -> Option<Kind> {
    let by_key = KINDS
        .iter()
        .find(|(key, _, _)| !key.is_empty() && wire::has(msg, key));
    let by_topic = || {
        let suffix = topic_suffix(topic)?;
        KINDS.iter().find(|(_, t, _)| *t == suffix)
    };
    by_key.or_else(by_topic).map(|(_, _, kind)| *kind)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Envelope {
    end_device_ids: EndDeviceIds,
    correlation_ids: Vec<String>,
    received_at: Option<String>,
    uplink_message: Option<UplinkMessage>,
    location_solved: Option<LocationSolved>,
    simulated: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndDeviceIds {
    device_id: Option<String>,
    application_ids: ApplicationIds,
    dev_eui: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApplicationIds {
    application_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UplinkMessage {
    f_port: Option<u32>,
    f_cnt: Option<u32>,
    frm_payload: Option<String>,
    decoded_payload: Option<Value>,
    rx_metadata: Vec<RxMetadata>,
    settings: Settings,
    received_at: Option<String>,
    /// Service name (`user`, `frm-payload`, ...) → device position.
    locations: BTreeMap<String, WireLocation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RxMetadata {
    gateway_ids: GatewayIds,
    time: Option<String>,
    rssi: Option<f64>,
    channel_rssi: Option<f64>,
    snr: Option<f64>,
    location: Option<WireLocation>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GatewayIds {
    gateway_id: Option<String>,
    eui: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Settings {
    data_rate: DataRate,
    /// Removed in TTS 3.16; older messages still carry it.
    data_rate_index: Option<u32>,
    #[serde(deserialize_with = "wire::u64_number_or_string")]
    frequency: Option<u64>,
    time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DataRate {
    lora: Option<Lora>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Lora {
    bandwidth: Option<u32>,
    spreading_factor: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LocationSolved {
    service: Option<String>,
    location: Option<WireLocation>,
}

/// `end_device_ids.dev_eui`; devices registered without one (ABP) still have a DevEUI in the
/// console's default device id `eui-<16 hex digits>`, which is used as a fallback.
fn dev_eui(ids: &EndDeviceIds) -> Result<DevEui, DecodeError> {
    if let Some(raw) = ids.dev_eui.as_deref().filter(|s| !s.is_empty()) {
        return DevEui::parse_hex(raw);
    }
    ids.device_id
        .as_deref()
        .and_then(|id| id.strip_prefix("eui-"))
        .and_then(|hex| DevEui::parse_hex(hex).ok())
        .ok_or(DecodeError::MissingField("end_device_ids.dev_eui"))
}

/// Device position from `uplink_message.locations`: the registered (`user`) one first, then
/// the one the payload formatter found (`frm-payload`), then any other service's.
fn device_location(locations: &BTreeMap<String, WireLocation>) -> Option<Location> {
    let preferred = ["user", "frm-payload"]
        .iter()
        .filter_map(|k| locations.get_key_value(*k));
    preferred.chain(locations.iter()).find_map(|(service, wl)| {
        let mut loc = wl.to_location()?;
        loc.source.get_or_insert_with(|| service.clone());
        Some(loc)
    })
}

fn uplink(env: Envelope, ctx: &Ctx<'_>) -> Result<Uplink, DecodeError> {
    let dev_eui = dev_eui(&env.end_device_ids)?;
    let up = env
        .uplink_message
        .ok_or(DecodeError::MissingField("uplink_message"))?;
    let now = ctx.now;

    let settings_time = wire::time_opt(
        "uplink_message.settings.time",
        up.settings.time.as_deref(),
        now,
    )?;
    let ns_received = wire::time_opt("uplink_message.received_at", up.received_at.as_deref(), now)?;
    let as_received = wire::time_opt("received_at", env.received_at.as_deref(), now)?;
    let gateway_time = match up.rx_metadata.first() {
        Some(rx) => wire::time_opt("uplink_message.rx_metadata.time", rx.time.as_deref(), now)?,
        None => None,
    };
    let observed_at = settings_time
        .or(ns_received)
        .or(as_received)
        .or(gateway_time)
        .unwrap_or(now);
    let received_at = as_received.or(ns_received).unwrap_or(observed_at);

    // TTS omits zero values, so an absent counter or port *is* 0.
    let f_cnt = up.f_cnt.unwrap_or(0);
    let dedup_key = match env.correlation_ids.iter().find(|c| c.starts_with("as:up:")) {
        Some(id) => id.clone(),
        None => format!(
            "{dev_eui}:{f_cnt}:{}",
            ns_received
                .unwrap_or(observed_at)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true)
        ),
    };
    let payload = match up.frm_payload.as_deref() {
        Some(b64) => wire::base64("uplink_message.frm_payload", b64)?,
        None => Vec::new(),
    };
    let gateways = up
        .rx_metadata
        .iter()
        .map(|rx| GatewayRx {
            gateway_id: rx
                .gateway_ids
                .gateway_id
                .clone()
                .or_else(|| rx.gateway_ids.eui.as_deref().map(str::to_ascii_lowercase))
                .unwrap_or_default(),
            rssi: rx.rssi.or(rx.channel_rssi),
            snr: rx.snr,
            location: rx.location.as_ref().and_then(WireLocation::to_location),
        })
        .collect();
    let lora = up.settings.data_rate.lora.unwrap_or_default();

    Ok(Uplink {
        dedup_key,
        dev_eui,
        network_server: NetworkServer::TtsV3,
        application: env.end_device_ids.application_ids.application_id,
        device_name: env.end_device_ids.device_id,
        observed_at,
        received_at,
        f_cnt: Some(f_cnt),
        f_port: wire::f_port(Some(up.f_port.unwrap_or(0)), "uplink_message.f_port")?,
        payload,
        decoded: wire::non_empty_object(up.decoded_payload),
        gateways,
        tx: TxInfo {
            frequency_hz: up.settings.frequency,
            spreading_factor: lora.spreading_factor,
            bandwidth_hz: lora.bandwidth,
            dr: up.settings.data_rate_index,
        },
        device_location: device_location(&up.locations),
        simulated: env.simulated,
    })
}

fn location_solved(env: Envelope, ctx: &Ctx<'_>) -> Result<DeviceEvent, DecodeError> {
    let dev_eui = dev_eui(&env.end_device_ids)?;
    let solved = env
        .location_solved
        .ok_or(DecodeError::MissingField("location_solved"))?;
    let mut location = solved
        .location
        .as_ref()
        .map(|l| l.checked("location_solved.location"))
        .transpose()?
        .flatten()
        .ok_or(DecodeError::MissingField(
            "location_solved.location.latitude",
        ))?;
    if location.source.is_none() {
        location.source = solved.service;
    }
    Ok(DeviceEvent::Location {
        dev_eui,
        location,
        at: wire::time_opt("received_at", env.received_at.as_deref(), ctx.now)?,
    })
}
