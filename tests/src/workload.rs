//! The ingest workload of the benchmark and the fault-injection suite: ChirpStack v4 `up` events
//! (JSON, about 1.1 kB, an `object` with three readings) from many devices, each with its own
//! deduplication id, and the MQTT clients that publish and count them.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The benchmark city's DevEUIs (`store/bench/city.sql`: 0x70b3d57ed0000000 + 1..=10 000).
pub fn city_dev_euis(n: u64) -> Vec<u64> {
    (1..=n).map(|i| 0x70b3_d57e_d000_0000 + i).collect()
}

/// One message: topic and payload.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Bytes,
}

/// `n` uplinks, round-robin over `devices`, one per device and minute from `base`, each with a
/// unique deduplication id derived from `run` and its index.
pub fn uplinks(n: usize, devices: &[u64], base: DateTime<Utc>, run: u32) -> Vec<Msg> {
    (0..n).map(|i| uplink(i, devices, base, run)).collect()
}

fn uplink(i: usize, devices: &[u64], base: DateTime<Utc>, run: u32) -> Msg {
    let d = i % devices.len();
    let slot = (i / devices.len()) as i64;
    let eui = format!("{:016x}", devices[d]);
    let t = base + ChronoDuration::seconds(slot * 60) + ChronoDuration::milliseconds(d as i64);
    let time = t.to_rfc3339_opts(SecondsFormat::Nanos, false);
    let ns = (t + ChronoDuration::milliseconds(23)).to_rfc3339_opts(SecondsFormat::Nanos, false);
    let id = dedup_id(run, i);
    let h = mix(i as u64 ^ ((run as u64) << 40));
    let temperature = 5.0 + (h % 2500) as f64 / 100.0;
    let humidity = 30.0 + ((h >> 12) % 600) as f64 / 10.0;
    let co2 = 400 + (h >> 24) % 1200;
    let rssi = -60 - ((h >> 36) % 60) as i64;
    let snr = ((h >> 44) % 200) as f64 / 10.0 - 10.0;
    let payload = format!(
        r#"{{"deduplicationId":"{id}","time":"{time}","deviceInfo":{{"tenantId":"52f14cd4-c6f1-4fbd-8f87-4025e1d49242","tenantName":"Stadt Dortmund","applicationId":"8c2e4a90-7d13-4f6b-b5e8-6a0c9d2f1b72","applicationName":"Stadtklima","deviceProfileId":"0a5d3c1e-9b2f-4e7a-8c61-3f0d2b9e4a17","deviceProfileName":"Elsys ERS CO2","deviceName":"Klimasensor {d:05}","devEui":"{eui}","deviceClassEnabled":"CLASS_A","tags":{{"district":"Innenstadt-West"}}}},"devAddr":"{addr:08x}","adr":true,"dr":5,"fCnt":{slot},"fPort":5,"confirmed":false,"data":"AQDnAiwEAmQ=","object":{{"temperature":{temperature:.2},"humidity":{humidity:.1},"co2":{co2}}},"rxInfo":[{{"gatewayId":"7276ff002e0507f1","uplinkId":{uplink},"gwTime":"{time}","nsTime":"{ns}","rssi":{rssi},"snr":{snr:.1},"channel":2,"rfChain":1,"location":{{"latitude":51.51394,"longitude":7.46537,"altitude":86.0}},"context":"Ejd5LQ==","metadata":{{"region_common_name":"EU868","region_config_id":"eu868"}},"crcStatus":"CRC_OK"}}],"txInfo":{{"frequency":868300000,"modulation":{{"lora":{{"bandwidth":125000,"spreadingFactor":7,"codeRate":"CR_4_5"}}}}}},"regionConfigId":"eu868"}}"#,
        addr = 0x2601_0000u64 + d as u64,
        uplink = h % 65536,
    );
    Msg {
        topic: format!("application/8c2e4a90-7d13-4f6b-b5e8-6a0c9d2f1b72/device/{eui}/event/up"),
        payload: Bytes::from(payload),
    }
}

/// The `deduplicationId` of message `i` of `run`: a v4-shaped UUID, unique per (run, message).
pub fn dedup_id(run: u32, i: usize) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        run,
        (i >> 48) & 0xffff,
        (i >> 36) & 0xfff,
        (i >> 24) & 0xfff,
        i & 0xffff_ffff_ffff
    )
}

/// Readings each uplink carries (temperature, humidity, CO₂).
pub const READINGS_PER_UPLINK: u64 = 3;

/// SplitMix64: well-spread bits from a counter.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What publishing took.
#[derive(Clone, Copy, Debug)]
pub struct Published {
    pub started: Instant,
}

/// Publishes `msgs` at QoS 1 as fast as the broker takes them (client in-flight window 1000)
/// and returns once every PUBACK arrived.
pub async fn publish(port: u16, client_id: &str, msgs: &[Msg]) -> Result<Published> {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(o, 4096);
    let acked = Arc::new(AtomicU64::new(0));
    let total = msgs.len() as u64;
    let counter = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if counter.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        return Ok(Instant::now());
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => bail!("publisher disconnected"),
                Ok(_) => {}
                Err(e) => bail!("publisher connection: {e}"),
            }
        }
    });
    let started = Instant::now();
    for m in msgs {
        client
            .publish_bytes(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone())
            .await
            .context("publishing")?;
    }
    tokio::time::timeout(Duration::from_secs(1800), poller)
        .await
        .context("publisher: PUBACKs did not arrive")???;
    let _ = client.disconnect().await;
    Ok(Published { started })
}

/// The broker-only ceiling: a QoS 1 subscriber (persistent session, acks on receipt) that only
/// counts. `ready` resolves once the subscription is acknowledged.
#[derive(Debug)]
pub struct Counter {
    pub received: Arc<AtomicU64>,
    done: tokio::sync::watch::Receiver<Option<Instant>>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    pub async fn start(port: u16, client_id: &str, filter: &str, target: u64) -> Result<Counter> {
        let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(false);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(o, 64);
        client.subscribe(filter, QoS::AtLeastOnce).await?;
        let received = Arc::new(AtomicU64::new(0));
        let (tx, done) = tokio::sync::watch::channel(None);
        let (sub_tx, sub_rx) = tokio::sync::oneshot::channel();
        let r = received.clone();
        let task = tokio::spawn(async move {
            let mut sub_tx = Some(sub_tx);
            let _client = client;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(t) = sub_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(_))) => {
                        if r.fetch_add(1, Ordering::Relaxed) + 1 == target {
                            let _ = tx.send(Some(Instant::now()));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), sub_rx)
            .await
            .context("counting subscriber: no SUBACK")??;
        Ok(Counter {
            received,
            done,
            task,
        })
    }

    /// Waits until `target` messages arrived; returns when the last one did.
    pub async fn finished(&mut self, within: Duration) -> Result<Instant> {
        let at = tokio::time::timeout(within, self.done.wait_for(|v| v.is_some()))
            .await
            .context("counting subscriber: not every message arrived")??;
        at.context("no time")
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
