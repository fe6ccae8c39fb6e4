//! The MQTT session: connection options, (re)subscription, forwarding PUBLISH packets to the
//! writer, and sending the writer's acknowledgements — only on the connection their packets
//! came from.

use crate::{IngestContext, IngestError};
use chrono::{DateTime, Utc};
use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, PubAck, PubRec, Publish, QoS, Request,
    SubscribeFilter, Transport,
};
use stadtpuls_config::{ConfigError, MqttSettings};
use stadtpuls_gateways::Dialect;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One received PUBLISH on its way to the writer.
#[derive(Debug)]
pub struct InboundMessage {
    /// Topic with the configured `topic_prefix` removed.
    pub topic: String,
    pub dialect: Dialect,
    pub received_at: DateTime<Utc>,
    pub publish: Publish,
    /// The connection this packet arrived on; its ack is only valid on that connection.
    pub generation: u64,
}

/// The acknowledgement a committed packet is owed.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    generation: u64,
    pkid: u16,
    qos: QoS,
}

/// Hands the acknowledgements of committed packets back to the session, which sends them on
/// its own event loop. Never waits: the channel holds at most one ack per packet received and
/// not yet acknowledged. The session drops acks whose connection is gone: after a reconnect
/// the broker redelivers unacknowledged packets, possibly under packet ids that by then belong
/// to other messages, and a stale ack would acknowledge the wrong message.
#[derive(Clone, Debug)]
pub struct Acker {
    tx: mpsc::UnboundedSender<Vec<Ack>>,
}

impl Acker {
    /// Queues the acks of `msgs` (QoS 0 packets need none), in order.
    pub fn ack_all(&self, msgs: &[InboundMessage]) {
        let acks: Vec<Ack> = msgs
            .iter()
            .filter(|m| m.publish.qos != QoS::AtMostOnce)
            .map(|m| Ack {
                generation: m.generation,
                pkid: m.publish.pkid,
                qos: m.publish.qos,
            })
            .collect();
        if !acks.is_empty() {
            // Fails only once the session has ended; the broker then redelivers.
            let _ = self.tx.send(acks);
        }
    }
}

/// The MQTT side of ingest.
#[derive(Debug)]
pub struct Session {
    client: AsyncClient,
    eventloop: EventLoopHolder,
    acks_tx: mpsc::UnboundedSender<Vec<Ack>>,
    acks_rx: mpsc::UnboundedReceiver<Vec<Ack>>,
}

/// `EventLoop` has no Debug impl; this wrapper gives the session one.
struct EventLoopHolder(EventLoop);

impl std::fmt::Debug for EventLoopHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventLoop")
    }
}

/// Builds the rumqttc options from settings (persistent session, manual acks, packet limit).
pub fn mqtt_options(ctx: &IngestContext) -> Result<MqttOptions, IngestError> {
    let m = &ctx.settings.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_secs));
    o.set_clean_session(m.clean_session);
    o.set_manual_acks(true);
    o.set_max_packet_size(m.max_packet_bytes, m.max_packet_bytes);
    // Requests through the client are subscriptions and the final DISCONNECT; acks bypass it.
    o.set_request_channel_capacity(64);
    apply_credentials_and_tls(&mut o, m)?;
    Ok(o)
}

/// Credentials and TLS from the `[mqtt]` settings; shared by every client Stadtpuls opens
/// (the ingest session and the simulator). Without `ca_file` the system CA bundle is trusted.
pub fn apply_credentials_and_tls(o: &mut MqttOptions, m: &MqttSettings) -> Result<(), IngestError> {
    if !m.username.is_empty() {
        o.set_credentials(m.username.clone(), m.password.expose().to_string());
    }
    if m.tls {
        let ca_path = if m.ca_file.is_empty() {
            "/etc/ssl/certs/ca-certificates.crt"
        } else {
            m.ca_file.as_str()
        };
        let ca = std::fs::read(ca_path).map_err(|e| {
            IngestError::MqttConfig(format!("mqtt.ca_file: cannot read {ca_path}: {e}"))
        })?;
        o.set_transport(Transport::tls(ca, None, None));
    }
    Ok(())
}

impl Session {
    pub fn new(ctx: &IngestContext) -> Result<Session, IngestError> {
        let opts = mqtt_options(ctx)?;
        let cap = opts.request_channel_capacity();
        let (client, eventloop) = AsyncClient::new(opts, cap);
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        Ok(Session {
            client,
            eventloop: EventLoopHolder(eventloop),
            acks_tx,
            acks_rx,
        })
    }

    pub fn acker(&self) -> Acker {
        Acker {
            tx: self.acks_tx.clone(),
        }
    }

    /// Polls the event loop until `stop` is cancelled, then sends the last acks and
    /// disconnects. Never blocks on the writer: when the channel is full, packets wait in a
    /// local queue. The broker's in-flight window does not bound that queue (Mosquitto 2.0
    /// sends a burst of queued messages per acknowledgement, beyond `max_inflight_messages`),
    /// so once it holds `ingest.channel_capacity` messages the session stops reading from the
    /// socket until the writer catches up — except to send acks that are due, and never past
    /// twice that. TCP flow control then holds the rest at the broker, and memory stays
    /// bounded while a backlog drains or the database is down.
    ///
    /// Acks are put straight into the event loop's queue of outgoing packets, not through the
    /// client's bounded request channel: a writer waiting for room there while the session
    /// waits for the writer to take more messages would be a deadlock.
    pub async fn run(
        self,
        ctx: IngestContext,
        tx: mpsc::Sender<InboundMessage>,
        stop: CancellationToken,
    ) {
        let Session {
            client,
            eventloop,
            acks_tx,
            mut acks_rx,
        } = self;
        // Only the writers' clones keep the ack channel open.
        drop(acks_tx);
        let mut eventloop = eventloop.0;
        let settings = ctx.settings.clone();
        let prefix = settings.mqtt.topic_prefix.clone();
        let filters: Vec<(String, Dialect)> = settings
            .mqtt
            .subscriptions
            .iter()
            .map(|s| (format!("{prefix}{}", s.filter), s.dialect))
            .collect();
        let overflow_limit = settings.ingest.channel_capacity;
        let overflow_hard_limit = 2 * overflow_limit;
        let mut overflow: VecDeque<InboundMessage> = VecDeque::new();
        let mut current_gen = 0u64;
        let mut backoff = Duration::from_millis(200);
        loop {
            let event = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(acks) = acks_rx.recv() => {
                    queue_acks(&mut eventloop, acks, current_gen);
                    continue;
                }
                permit = tx.reserve(), if !overflow.is_empty() => {
                    match permit {
                        Ok(p) => { if let Some(m) = overflow.pop_front() { p.send(m); } }
                        Err(_) => break, // writer gone
                    }
                    continue;
                }
                ev = eventloop.poll(), if overflow.len() < overflow_limit
                    || (!eventloop.pending.is_empty() && overflow.len() < overflow_hard_limit) => ev,
            };
            match event {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    backoff = Duration::from_millis(200);
                    ctx.health.set_connected(true);
                    tracing::info!(session_present = ack.session_present, host = %settings.mqtt.host, port = settings.mqtt.port, "connected to MQTT broker");
                    let subs = filters
                        .iter()
                        .map(|(f, _)| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(subs) {
                        tracing::error!(error = %e, "could not queue subscriptions");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(s))) => {
                    let refused = s
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 {
                        tracing::error!(refused, "broker refused subscriptions (check ACLs)");
                        ctx.health.record_error("broker refused a subscription");
                    } else {
                        ctx.health.set_subscribed();
                        tracing::info!(filters = ?filters.iter().map(|f| &f.0).collect::<Vec<_>>(), "subscribed");
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    let msg = inbound(&ctx, &filters, &prefix, publish, current_gen);
                    if overflow.is_empty() {
                        match tx.try_send(msg) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(m)) => overflow.push_back(m),
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        }
                    } else {
                        overflow.push_back(msg);
                    }
                    metrics::gauge!("stadtpuls_ingest_overflow_messages")
                        .set(overflow.len() as f64);
                }
                Ok(_) => {}
                Err(e) => {
                    ctx.health.set_connected(false);
                    ctx.health.record_error(format!("MQTT: {e}"));
                    // PUBLISHes rumqttc parsed before the error are still in its event queue;
                    // they would come out after the reconnect looking new, and their acks would
                    // hit whatever the new connection's packet ids mean. Take them now, as the
                    // old connection's: stored, never acked (the broker redelivers them).
                    for ev in std::mem::take(&mut eventloop.state.events) {
                        if let Event::Incoming(Incoming::Publish(p)) = ev {
                            overflow.push_back(inbound(&ctx, &filters, &prefix, p, current_gen));
                        }
                    }
                    // New connection generation: acks of packets from the old one are void.
                    current_gen += 1;
                    // `poll` already moved unsent requests into `pending`; drop every ack and
                    // subscription there (we resubscribe on ConnAck).
                    let before = eventloop.pending.len();
                    eventloop.pending.retain(|r| {
                        !matches!(
                            r,
                            Request::PubAck(_) | Request::PubRec(_) | Request::Subscribe(_)
                        )
                    });
                    if before > eventloop.pending.len() {
                        metrics::counter!("stadtpuls_mqtt_acks_skipped_total")
                            .increment((before - eventloop.pending.len()) as u64);
                    }
                    // Packets still waiting for the writer belong to the old connection: they
                    // are stored but not acked. The broker redelivers them (stored once, by
                    // their dedup key) — unless it restarted from an older save and lost them,
                    // which is why they are kept rather than dropped.
                    metrics::counter!("stadtpuls_mqtt_disconnects_total").increment(1);
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting");
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
        // The writers have finished; queue their last acks ahead of the DISCONNECT. Keep polling until the broker closes the connection after
        // the DISCONNECT: stopping at the first `Outgoing::Disconnect` event can drop the
        // socket before its buffered bytes reach the broker, and the broker then redelivers
        // messages that are already stored.
        while let Ok(acks) = acks_rx.try_recv() {
            queue_acks(&mut eventloop, acks, current_gen);
        }
        let _ = client.try_disconnect();
        let flushed = tokio::time::timeout(Duration::from_millis(1500), async {
            while eventloop.poll().await.is_ok() {}
        })
        .await;
        if flushed.is_err() {
            tracing::warn!("broker did not close the connection within 1.5 s of DISCONNECT");
        }
        ctx.health.set_connected(false);
    }
}

/// A received PUBLISH for the writer: topic without the configured prefix, the dialect of its
/// subscription, the receive time and its connection's generation.
fn inbound(
    ctx: &IngestContext,
    filters: &[(String, Dialect)],
    prefix: &str,
    publish: Publish,
    generation: u64,
) -> InboundMessage {
    metrics::counter!("stadtpuls_mqtt_messages_received_total").increment(1);
    let topic = publish
        .topic
        .strip_prefix(prefix)
        .unwrap_or(&publish.topic)
        .to_string();
    InboundMessage {
        dialect: dialect_for(filters, &publish.topic),
        topic,
        received_at: ctx.clock.now(),
        publish,
        generation,
    }
}

/// Sends the acks of the current connection; acks of an earlier connection are dropped
/// (counted), as the broker redelivers their packets.
///
/// rumqttc sends one queued request per poll, while one poll reads up to ten PUBLISH packets,
/// so acks queued one by one fall behind the stream (the broker then holds thousands of
/// committed but unacknowledged messages, all redelivered after a crash). Instead every ack but
/// the last is encoded straight into the event loop's write buffer, and the last is queued as
/// a request: the poll that sends it flushes the buffer, so a whole batch leaves in one write.
/// (A disconnect clears the write buffer, so nothing buffered reaches a later connection.)
fn queue_acks(eventloop: &mut EventLoop, acks: Vec<Ack>, current_gen: u64) {
    let (current, stale): (Vec<Ack>, Vec<Ack>) =
        acks.into_iter().partition(|a| a.generation == current_gen);
    if !stale.is_empty() {
        metrics::counter!("stadtpuls_mqtt_acks_skipped_total").increment(stale.len() as u64);
        tracing::debug!(
            stale = stale.len(),
            "acks skipped: their connection is gone, the broker redelivers them"
        );
    }
    let request = |a: &Ack| match a.qos {
        QoS::ExactlyOnce => Request::PubRec(PubRec::new(a.pkid)),
        _ => Request::PubAck(PubAck::new(a.pkid)),
    };
    let Some((last, rest)) = current.split_last() else {
        return;
    };
    // The encoder also queues an `Outgoing` event per packet; nobody reads those.
    let events = eventloop.state.events.len();
    for a in rest {
        if eventloop.state.handle_outgoing_packet(request(a)).is_err() {
            eventloop.pending.push_back(request(a));
        }
    }
    eventloop.state.events.truncate(events);
    eventloop.pending.push_back(request(last));
}

/// Checks the topic syntax of the MQTT settings as the broker will (MQTT 3.1.1 §4.7, by
/// `rumqttc`): `topic_prefix` holds no wildcard, and every filter is valid alone and behind the
/// prefix (the ingest subscribes to the combination): `+` and `#` fill a whole level, `#` only
/// the last one. The binary runs it right after loading the settings, [`crate::run`] again.
pub fn check_topics(mqtt: &MqttSettings) -> Result<(), ConfigError> {
    let bad = |key: String, problem: String| ConfigError::Invalid { key, problem };
    if !rumqttc::valid_topic(&mqtt.topic_prefix) {
        return Err(bad(
            "mqtt.topic_prefix".into(),
            "must not contain wildcards".into(),
        ));
    }
    for (i, s) in mqtt.subscriptions.iter().enumerate() {
        let subscribed = format!("{}{}", mqtt.topic_prefix, s.filter);
        let problem = if !rumqttc::valid_filter(&s.filter) {
            format!("'{}' is not a valid MQTT topic filter", s.filter)
        } else if !rumqttc::valid_filter(&subscribed) {
            format!("'{subscribed}' (behind mqtt.topic_prefix) is not a valid MQTT topic filter")
        } else {
            continue;
        };
        return Err(bad(format!("mqtt.subscriptions[{i}].filter"), problem));
    }
    Ok(())
}

/// The dialect of the first configured filter that matches `topic` (MQTT matching, `+` one
/// level, `#` the rest: `rumqttc::matches`).
pub fn dialect_for(filters: &[(String, Dialect)], topic: &str) -> Dialect {
    filters
        .iter()
        .find(|(f, _)| rumqttc::matches(topic, f))
        .map(|(_, d)| *d)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_syntax_is_checked_like_mqtt_does() {
        let cases: &[(&str, &str, bool)] = &[
            // (topic_prefix, filter, valid)
            ("", "application/+/device/+/event/+", true),
            ("", "v3/+/devices/+/up", true),
            ("", "#", true),
            ("", "+", true),
            ("", "a/#", true),
            ("", "+/+/#", true),
            ("", "a//b", true),
            ("city/", "+/x/#", true),
            ("", "", false),
            ("", "a/b#", false),
            ("", "a/#/b", false),
            ("", "#/a", false),
            ("", "a+", false),
            ("", "a/+b/c", false),
            ("", "a/++", false),
            ("", "a/b/##", false),
            // Valid alone, not behind a prefix without its trailing slash.
            ("city", "+/x", false),
            ("city", "#", false),
        ];
        for &(prefix, filter, valid) in cases {
            let mut s = stadtpuls_config::Settings::default();
            s.mqtt.topic_prefix = prefix.into();
            s.mqtt.subscriptions = vec![stadtpuls_config::Subscription {
                filter: filter.into(),
                dialect: Default::default(),
            }];
            match check_topics(&s.mqtt) {
                Ok(()) => assert!(valid, "{prefix:?} + {filter:?} was accepted"),
                Err(e) => {
                    assert!(!valid, "{prefix:?} + {filter:?} was rejected: {e}");
                    let e = e.to_string();
                    assert!(
                        e.contains("mqtt.subscriptions[0].filter") && e.contains(filter),
                        "{e}"
                    );
                }
            }
        }
        let mut s = stadtpuls_config::Settings::default();
        s.mqtt.topic_prefix = "city/+/".into();
        let e = check_topics(&s.mqtt)
            .expect_err("a prefix with a wildcard")
            .to_string();
        assert!(e.contains("mqtt.topic_prefix"), "{e}");
    }

    #[test]
    fn topic_filters_match_like_mqtt() {
        let cases = [
            (
                "application/+/device/+/event/+",
                "application/1/device/0102/event/up",
                true,
            ),
            (
                "application/+/device/+/event/+",
                "application/1/device/0102/event",
                false,
            ),
            (
                "application/+/device/+/event/+",
                "application/1/device/0102/event/up/x",
                false,
            ),
            ("v3/+/devices/+/up", "v3/app@ttn/devices/eui-1/up", true),
            ("v3/+/devices/+/up", "v3/app@ttn/devices/eui-1/join", false),
            ("t/#", "t/a/b/c", true),
            // `#` includes the parent level.
            ("t/#", "t", true),
            ("t/#", "u/a", false),
        ];
        for (f, t, want) in cases {
            let filters = [(f.to_string(), Dialect::TtsV3)];
            let got = dialect_for(&filters, t) == Dialect::TtsV3;
            assert_eq!(got, want, "{f} vs {t}");
        }
    }

    #[test]
    fn dialect_comes_from_the_first_matching_filter() {
        let filters = vec![
            (
                "p/application/+/device/+/event/+".to_string(),
                Dialect::Auto,
            ),
            ("p/v3/+/devices/+/up".to_string(), Dialect::TtsV3),
        ];
        assert_eq!(
            dialect_for(&filters, "p/v3/a@t/devices/d/up"),
            Dialect::TtsV3
        );
        assert_eq!(
            dialect_for(&filters, "p/application/a/device/d/event/up"),
            Dialect::Auto
        );
    }
}
