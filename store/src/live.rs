//! Committed readings for live consumers, across processes: the writer sends them with
//! `pg_notify` inside its transaction (PostgreSQL delivers notifications only on COMMIT), and
//! API processes `LISTEN`. Works the same whether ingest and API share a process or not.

use crate::{Result, Store};
use chrono::{DateTime, Utc};
use stadtpuls_gateways::{DevEui, Quantity, Reading};

/// The notification channel of committed readings.
pub const CHANNEL: &str = "stadtpuls_readings";

/// The channel on which triggers announce registry changes (payload: the table name; see
/// `migrations/0003_registry_notify.sql`).
pub const REGISTRY_CHANNEL: &str = "stadtpuls_registry";

/// PostgreSQL caps a notification payload below 8000 bytes; stay well under it.
const MAX_PAYLOAD: usize = 7000;

/// One committed reading as delivered to listeners.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveReading {
    pub dev_eui: DevEui,
    pub quantity: Quantity,
    pub time: DateTime<Utc>,
    pub value: f64,
}

/// Encodes readings as compact JSON arrays `[[dev_eui_hex, quantity_id, unix_micros, value], …]`,
/// each under the payload limit.
pub fn encode(rows: &[(DevEui, Reading)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::from("[");
    for (eui, r) in rows {
        if !r.value.is_finite() {
            continue;
        }
        let item = format!(
            "[\"{eui}\",{},{},{}]",
            r.quantity.id(),
            r.observed_at.timestamp_micros(),
            r.value
        );
        if cur.len() + item.len() + 2 > MAX_PAYLOAD && cur.len() > 1 {
            cur.push(']');
            out.push(std::mem::replace(&mut cur, String::from("[")));
        }
        if cur.len() > 1 {
            cur.push(',');
        }
        cur.push_str(&item);
    }
    if cur.len() > 1 {
        cur.push(']');
        out.push(cur);
    }
    out
}

/// Decodes one notification payload; malformed items are skipped.
pub fn decode(payload: &str) -> Vec<LiveReading> {
    let Ok(items) = serde_json::from_str::<Vec<(String, i16, i64, f64)>>(payload) else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|(eui, q, micros, value)| {
            Some(LiveReading {
                dev_eui: DevEui::parse_hex(&eui).ok()?,
                quantity: Quantity::from_id(q)?,
                time: DateTime::<Utc>::from_timestamp_micros(micros)?,
                value,
            })
        })
        .collect()
}

/// Sends the readings on [`CHANNEL`] as part of the caller's transaction.
pub(crate) async fn notify(tx: &mut sqlx::PgConnection, rows: &[(DevEui, Reading)]) -> Result<()> {
    let payloads = encode(rows);
    if !payloads.is_empty() {
        sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS t(p)")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

impl Store {
    /// A listener subscribed to [`CHANNEL`] and [`REGISTRY_CHANNEL`] on its own connection.
    pub async fn listen(&self) -> Result<sqlx::postgres::PgListener> {
        let mut l = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        l.listen_all([CHANNEL, REGISTRY_CHANNEL]).await?;
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encode_splits_under_the_limit_and_round_trips() {
        let t = DateTime::<Utc>::from_timestamp_micros(1_714_557_600_123_456).unwrap();
        let rows: Vec<(DevEui, Reading)> = (0..1000u64)
            .map(|i| {
                (
                    DevEui(0x0102_0304_0000_0000 + i),
                    Reading {
                        quantity: Quantity::Co2,
                        value: 400.5 + i as f64,
                        observed_at: t,
                    },
                )
            })
            .collect();
        let payloads = encode(&rows);
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let back: Vec<LiveReading> = payloads.iter().flat_map(|p| decode(p)).collect();
        assert_eq!(back.len(), 1000);
        assert_eq!(
            back[7],
            LiveReading {
                dev_eui: DevEui(0x0102_0304_0000_0007),
                quantity: Quantity::Co2,
                time: t,
                value: 407.5
            }
        );
        assert!(decode("not json").is_empty());
        assert!(encode(&[]).is_empty());
    }
}
