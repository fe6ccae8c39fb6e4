//! The per-message steps, as a flat chain: size check → decode → (codec) → map → record.
//! Pure apart from reading the device directory; the writer does the IO.

use crate::directory::Directory;
use crate::mqtt::InboundMessage;
use chrono::{DateTime, Utc};
use stadtpuls_gateways::{self as gw, codecs, Decoded, DeviceEvent, KeyTable};
use stadtpuls_store::{Batch, DeadLetter, UplinkRecord};

/// What one message becomes.
#[derive(Debug)]
pub enum Outcome {
    Uplink(Box<UplinkRecord>),
    Event(DeviceEvent),
    /// Valid but nothing to store (join, ack, log, downlink events, simulated uplinks…).
    Skipped(&'static str),
    DeadLetter(DeadLetter),
}

/// Inputs of the steps that are not the message itself.
#[derive(Debug, Clone, Copy)]
pub struct Steps<'a> {
    pub keys: &'a KeyTable,
    pub directory: &'a Directory,
    pub max_payload_bytes: usize,
    pub store_simulated: bool,
    pub now: DateTime<Utc>,
}

/// Largest slice of a rejected payload kept in the dead-letter table.
const DEAD_LETTER_KEEP_BYTES: usize = 64 * 1024;

/// Runs every step for one message.
pub fn process(msg: &InboundMessage, steps: Steps<'_>) -> Outcome {
    let payload: &[u8] = &msg.publish.payload;
    if payload.len() > steps.max_payload_bytes {
        return dead_letter(
            msg,
            "payload_too_large",
            format!(
                "payload of {} bytes exceeds ingest.max_payload_bytes = {}",
                payload.len(),
                steps.max_payload_bytes
            ),
        );
    }
    let decoded = match gw::decode(msg.dialect, &msg.topic, payload, steps.now) {
        Ok(d) => d,
        Err(e) => return dead_letter(msg, e.reason(), e.to_string()),
    };
    if let Some(dev_eui) = dev_eui_of(&decoded) {
        // The caller's per-message span declares the field; elsewhere this is a no-op.
        tracing::Span::current().record("dev_eui", tracing::field::display(dev_eui));
    }
    match decoded {
        Decoded::Skipped { kind, .. } => Outcome::Skipped(kind),
        Decoded::Event(e) => Outcome::Event(e),
        Decoded::Uplink(u) if u.simulated && !steps.store_simulated => {
            Outcome::Skipped("simulated")
        }
        Decoded::Uplink(u) => {
            // The network server's object wins; only without one are the raw bytes decoded
            // here. The codec's output is not stored: `reprocess` recomputes it after a fix.
            let codec = steps.directory.codec(u.dev_eui);
            let mapped = readings_of(&u, codec, steps.keys);
            Outcome::Uplink(Box::new(UplinkRecord {
                uplink: *u,
                topic: msg.topic.clone(),
                ingested_at: msg.received_at,
                readings: mapped.readings,
                unmapped: mapped.unmapped,
            }))
        }
    }
}

/// The device a decoded message is about, when it names one.
fn dev_eui_of(decoded: &Decoded) -> Option<gw::DevEui> {
    match decoded {
        Decoded::Uplink(u) => Some(u.dev_eui),
        Decoded::Event(DeviceEvent::Status { dev_eui, .. })
        | Decoded::Event(DeviceEvent::Location { dev_eui, .. }) => Some(*dev_eui),
        Decoded::Skipped { dev_eui, .. } => *dev_eui,
    }
}

/// Readings of an uplink: from the network server's decoded object, else from the raw bytes
/// decoded with the device's codec (if it has one).
pub fn readings_of(u: &gw::Uplink, codec: Option<codecs::Codec>, keys: &KeyTable) -> gw::Mapped {
    let raw = RawParts {
        dev_eui: u.dev_eui,
        f_port: u.f_port,
        payload: &u.payload,
        observed_at: u.observed_at,
    };
    map_parts(u.decoded.as_ref(), raw, codec, keys)
}

/// The parts of a stored uplink that readings are computed from.
#[derive(Debug, Clone, Copy)]
pub struct RawParts<'a> {
    pub dev_eui: gw::DevEui,
    pub f_port: Option<u8>,
    pub payload: &'a [u8],
    pub observed_at: DateTime<Utc>,
}

/// See [`readings_of`]; also used by `reprocess` on stored raw uplinks.
pub fn map_parts(
    decoded: Option<&serde_json::Value>,
    raw: RawParts<'_>,
    codec: Option<codecs::Codec>,
    keys: &KeyTable,
) -> gw::Mapped {
    let from_codec;
    let object = match (decoded, codec) {
        (Some(obj), _) => obj,
        (None, Some(codec)) => match apply_codec(raw, codec) {
            Some(v) => {
                from_codec = v;
                &from_codec
            }
            None => return gw::Mapped::default(),
        },
        (None, None) => return gw::Mapped::default(),
    };
    keys.map_object(object, raw.observed_at)
}

/// Decodes raw bytes with a payload codec; failures are counted and yield no readings.
fn apply_codec(u: RawParts<'_>, codec: codecs::Codec) -> Option<serde_json::Value> {
    if u.payload.is_empty() {
        return None;
    }
    match codecs::decode_payload(codec, u.f_port.unwrap_or(0), u.payload) {
        Ok(v) => Some(v),
        Err(e) => {
            metrics::counter!("stadtpuls_ingest_codec_errors_total", "codec" => codec.name(), "reason" => e.reason()).increment(1);
            tracing::debug!(dev_eui = %u.dev_eui, codec = codec.name(), error = %e, "payload codec failed; raw uplink kept");
            None
        }
    }
}

fn dead_letter(msg: &InboundMessage, reason: &'static str, detail: String) -> Outcome {
    let payload: &[u8] = &msg.publish.payload;
    Outcome::DeadLetter(DeadLetter {
        received_at: msg.received_at,
        topic: msg.topic.clone(),
        reason: reason.to_string(),
        detail,
        payload: payload[..payload.len().min(DEAD_LETTER_KEEP_BYTES)].to_vec(),
        payload_size: payload.len(),
    })
}

/// Adds one outcome to a batch, counting it. Used by the writer and by dead-letter replay.
pub fn collect(batch: &mut Batch, outcome: Outcome) {
    match outcome {
        Outcome::Uplink(r) => {
            if !r.unmapped.is_empty() {
                metrics::counter!("stadtpuls_ingest_unmapped_keys_total")
                    .increment(r.unmapped.len() as u64);
                tracing::debug!(dev_eui = %r.uplink.dev_eui, keys = ?r.unmapped, "decoded keys without a quantity (kept in the raw uplink)");
            }
            batch.uplinks.push(*r);
        }
        Outcome::Event(e) => {
            metrics::counter!("stadtpuls_ingest_events_total").increment(1);
            batch.events.push(e);
        }
        Outcome::Skipped(kind) => {
            metrics::counter!("stadtpuls_ingest_skipped_total", "kind" => kind).increment(1);
        }
        Outcome::DeadLetter(d) => {
            metrics::counter!("stadtpuls_ingest_dead_letters_total", "reason" => d.reason.clone())
                .increment(1);
            tracing::warn!(topic = %d.topic, reason = %d.reason, detail = %d.detail, "message dead-lettered");
            batch.dead_letters.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use rumqttc::{Publish, QoS};
    use stadtpuls_gateways::{Dialect, Quantity};

    fn msg(topic: &str, payload: &[u8]) -> InboundMessage {
        InboundMessage {
            topic: topic.into(),
            dialect: Dialect::Auto,
            received_at: Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap(),
            publish: Publish::new(topic, QoS::AtLeastOnce, payload.to_vec()),
            generation: 0,
        }
    }

    fn run(m: &InboundMessage, max: usize, store_simulated: bool) -> Outcome {
        let keys = KeyTable::builtin();
        let dir = Directory::default();
        let steps = Steps {
            keys: &keys,
            directory: &dir,
            max_payload_bytes: max,
            store_simulated,
            now: m.received_at,
        };
        process(m, steps)
    }

    const UP: &str = r#"{"deduplicationId":"d-1","time":"2024-05-01T09:59:58Z",
        "deviceInfo":{"devEui":"0102030405060708","applicationId":"a"},
        "fCnt":3,"fPort":2,"data":"AQ==","object":{"TempC_SHT":21.25,"Hum_SHT":"48.5 %","mystery":1}}"#;

    #[test]
    fn an_uplink_with_an_object_becomes_readings_and_unmapped_keys() {
        let Outcome::Uplink(r) = run(
            &msg(
                "application/a/device/0102030405060708/event/up",
                UP.as_bytes(),
            ),
            1024,
            false,
        ) else {
            panic!("expected an uplink")
        };
        let got: Vec<(Quantity, f64)> = r.readings.iter().map(|x| (x.quantity, x.value)).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&(Quantity::Temperature, 21.25)));
        assert!(got.contains(&(Quantity::Humidity, 48.5)));
        assert_eq!(r.unmapped, vec!["mystery".to_string()]);
        assert_eq!(
            r.ingested_at,
            Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap()
        );
        assert_eq!(r.topic, "application/a/device/0102030405060708/event/up");
    }

    #[test]
    fn bad_messages_become_dead_letters_with_their_reason() {
        let cases: &[(&str, &[u8], usize, &str)] = &[
            (
                "application/a/device/0102030405060708/event/up",
                b"{\"time\":",
                1024,
                "invalid_json",
            ),
            (
                "application/a/device/0102030405060708/event/up",
                b"[1,2]",
                1024,
                "not_an_object",
            ),
            (
                "application/a/device/0102030405060708/event/up",
                &[0xff, 0xfe, 0x00],
                1024,
                "invalid_json",
            ),
            (
                "application/a/device/0102030405060708/event/up",
                UP.as_bytes(),
                16,
                "payload_too_large",
            ),
            (
                "application/a/device/ffffffffffffffff/event/up",
                UP.as_bytes(),
                1024,
                "topic_mismatch",
            ),
            ("somewhere/else", b"{\"hello\":1}", 1024, "unknown_dialect"),
            (
                "application/a/device/0102030405060708/event/up",
                b"{\"deduplicationId\":\"a\",\"deduplicationId\":\"b\"}",
                1024,
                "duplicate_key",
            ),
            (
                "application/a/device/0102030405060708/event/up",
                b"{\"deviceInfo\":{\"deviceName\":\"a\\u0000\"}}",
                1024,
                "nul_character",
            ),
        ];
        for (topic, payload, max, reason) in cases {
            match run(&msg(topic, payload), *max, false) {
                Outcome::DeadLetter(d) => {
                    assert_eq!(d.reason, *reason, "{topic} {payload:?}");
                    assert_eq!(d.payload_size, payload.len());
                    assert_eq!(d.topic, *topic);
                }
                other => panic!("{topic}: expected a dead letter, got {other:?}"),
            }
        }
    }

    #[test]
    fn joins_and_simulated_uplinks_are_skipped() {
        let join = r#"{"deduplicationId":"j","time":"2024-05-01T09:59:58Z","deviceInfo":{"devEui":"0102030405060708"},"devAddr":"00"}"#;
        assert!(matches!(
            run(
                &msg(
                    "application/a/device/0102030405060708/event/join",
                    join.as_bytes()
                ),
                1024,
                false
            ),
            Outcome::Skipped("join")
        ));
        let sim = r#"{"end_device_ids":{"device_id":"d","application_ids":{"application_id":"a"},"dev_eui":"0102030405060708"},
            "received_at":"2024-05-01T09:59:58Z","simulated":true,
            "uplink_message":{"f_port":1,"frm_payload":"AQ==","decoded_payload":{"temperature":3},"received_at":"2024-05-01T09:59:58Z"}}"#;
        assert!(matches!(
            run(&msg("v3/a@ttn/devices/d/up", sim.as_bytes()), 4096, false),
            Outcome::Skipped("simulated")
        ));
        assert!(matches!(
            run(&msg("v3/a@ttn/devices/d/up", sim.as_bytes()), 4096, true),
            Outcome::Uplink(_)
        ));
    }

    /// Collects what a `fmt` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_message_span_gets_the_dev_eui_once_decoded() {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Declared like the writer declares it.
            let span =
                tracing::debug_span!("message", topic = "t", dev_eui = tracing::field::Empty);
            let _g = span.enter();
            let topic = "application/a/device/0102030405060708/event/up";
            run(&msg(topic, UP.as_bytes()), 1024, false);
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("message{topic=\"t\" dev_eui=0102030405060708}"),
            "{text}"
        );
    }
}
