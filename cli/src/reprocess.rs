//! `stadtpuls reprocess --from --to`: rebuilds readings from stored raw uplinks (after a mapping
//! or codec fix) and replays dead letters through today's decoders.

use anyhow::Context;
use chrono::{DateTime, Utc};
use rumqttc::{Publish, QoS};
use stadtpuls_config::Settings;
use stadtpuls_gateways::codecs::Codec;
use stadtpuls_gateways::{DevEui, Reading};
use stadtpuls_ingest::directory::Directory;
use stadtpuls_ingest::mqtt::{dialect_for, InboundMessage};
use stadtpuls_ingest::pipeline::{self, RawParts, Steps};
use stadtpuls_store::{Batch, RawUplink, Store};

/// What a reprocessing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub uplinks: u64,
    pub readings: u64,
    pub unmapped_keys: u64,
    pub dead_letters_seen: u64,
    pub dead_letters_recovered: u64,
}

const PAGE: u32 = 1000;

/// Recomputes the readings of every raw uplink observed in `[from, to)`.
pub async fn readings(
    store: &Store,
    settings: &Settings,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut progress: impl FnMut(&Report),
) -> anyhow::Result<Report> {
    let keys = stadtpuls_ingest::key_table(settings)?;
    let mut report = Report::default();
    let mut after: Option<(DateTime<Utc>, String)> = None;
    loop {
        let page = store
            .raw_uplinks(from, to, after.clone(), PAGE)
            .await
            .context("reading raw uplinks")?;
        let Some(last) = page.last() else { break };
        after = Some((last.observed_at, last.dedup_key.clone()));
        let mut rows: Vec<(RawUplink, Vec<String>)> = Vec::with_capacity(page.len());
        let mut readings: Vec<(DevEui, Reading)> = Vec::new();
        for u in page {
            let codec = u.codec.as_deref().and_then(|c| c.parse::<Codec>().ok());
            let raw = RawParts {
                dev_eui: u.dev_eui,
                f_port: u.f_port.and_then(|p| u8::try_from(p).ok()),
                payload: &u.payload,
                observed_at: u.observed_at,
            };
            let mapped = pipeline::map_parts(u.decoded.as_ref(), raw, codec, &keys);
            report.unmapped_keys += mapped.unmapped.len() as u64;
            readings.extend(mapped.readings.into_iter().map(|r| (u.dev_eui, r)));
            rows.push((u, mapped.unmapped));
        }
        report.uplinks += rows.len() as u64;
        report.readings += store
            .replace_readings(&rows, &readings)
            .await
            .context("writing readings")? as u64;
        progress(&report);
    }
    Ok(report)
}

/// Runs dead letters received in `[from, to)` through the pipeline again; those that now
/// decode are stored and marked replayed, the rest stay.
pub async fn dead_letters(
    store: &Store,
    settings: &Settings,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let keys = stadtpuls_ingest::key_table(settings)?;
    let directory = Directory::default();
    directory.refresh(store).await?;
    let filters: Vec<_> = settings
        .mqtt
        .subscriptions
        .iter()
        .map(|s| (s.filter.clone(), s.dialect))
        .collect();
    let mut cursor = from;
    loop {
        let page = store.dead_letters(cursor, to, PAGE).await?;
        let Some(last) = page.last() else { break };
        let next_cursor = last.received_at;
        let mut batch = Batch::default();
        let mut recovered = Vec::new();
        for d in &page {
            report.dead_letters_seen += 1;
            if d.payload.len() as i64 != i64::from(d.payload_size) {
                continue; // truncated when stored: cannot be replayed
            }
            let msg = InboundMessage {
                topic: d.topic.clone(),
                dialect: dialect_for(&filters, &d.topic),
                received_at: d.received_at,
                publish: Publish::new(d.topic.clone(), QoS::AtLeastOnce, d.payload.clone()),
                generation: 0,
            };
            let steps = Steps {
                keys: &keys,
                directory: &directory,
                max_payload_bytes: settings.ingest.max_payload_bytes,
                store_simulated: settings.ingest.store_simulated,
                now: Utc::now(),
            };
            match pipeline::process(&msg, steps) {
                pipeline::Outcome::DeadLetter(_) => {}
                ok => {
                    pipeline::collect(&mut batch, ok);
                    recovered.push(d.id);
                }
            }
        }
        store.write_batch(&batch).await?;
        store.mark_replayed(&recovered, Utc::now()).await?;
        report.dead_letters_recovered += recovered.len() as u64;
        if page.len() < PAGE as usize || next_cursor == cursor {
            break;
        }
        cursor = next_cursor;
    }
    Ok(())
}
