//! `stadtpuls keys create | revoke | list`: manage API keys. Each function returns the text to
//! print; the secret of a key appears exactly once, in the output of `create`.

use anyhow::{bail, Context};
use stadtpuls_store::keys::{key_prefix, KeyInfo, Scope, KEY_TAG};
use stadtpuls_store::Store;
use std::fmt::Write;

/// Creates a key for exactly one of `admin` / `building`; returns the secret with a warning that
/// it is not shown again.
pub async fn create(
    store: &Store,
    admin: bool,
    building: Option<String>,
    label: Option<String>,
) -> anyhow::Result<String> {
    let scope = match (admin, building) {
        (true, None) => Scope::Admin,
        (false, Some(id)) => Scope::Building(id),
        (true, Some(_)) => bail!("give either --admin or --building ID, not both"),
        (false, None) => {
            bail!("say what the key may see: --admin (everything) or --building ID (one building)")
        }
    };
    let key = store
        .create_key(scope, label.as_deref())
        .await
        .context("creating the API key")?;
    let what = match &key.scope {
        Scope::Admin => "an admin key (sees everything)".to_string(),
        Scope::Building(id) => format!("a key for building '{id}'"),
    };
    Ok(format!(
        "Created {what}: id {id}, prefix {KEY_TAG}{prefix}.\n\
         \n\
         {secret}\n\
         \n\
         Copy it now: this is the only time the key is shown. Only its hash is stored, so it\n\
         cannot be recovered; if it is lost, revoke it (stadtpuls keys revoke {id}) and create\n\
         a new one. Send it as the header: Authorization: Bearer <key>\n",
        id = key.id,
        prefix = key.prefix,
        secret = key.secret,
    ))
}

/// Revokes the key given by id, prefix (`sp_abcd1234` or `abcd1234`) or the whole key. Fails
/// when nothing matched, so scripts notice a typo.
pub async fn revoke(store: &Store, key: &str) -> anyhow::Result<String> {
    // Never print a whole secret back: name the key by its prefix when one was pasted.
    let shown = match key_prefix(key.trim()) {
        Some(prefix) => format!("{KEY_TAG}{prefix}"),
        None => key.trim().to_string(),
    };
    let revoked = store
        .revoke_key(key)
        .await
        .context("revoking the API key")?;
    if !revoked {
        bail!(
            "no active API key matches '{shown}' (unknown or already revoked; see `stadtpuls keys list`)"
        );
    }
    Ok(format!(
        "Revoked API key {shown}; requests with it now get 401.\n"
    ))
}

/// A table of all keys (revoked ones included). Shows prefixes only, never secrets.
pub async fn list(store: &Store) -> anyhow::Result<String> {
    let keys = store.list_keys().await.context("listing API keys")?;
    Ok(table(&keys))
}

fn table(keys: &[KeyInfo]) -> String {
    if keys.is_empty() {
        return "No API keys. Create one with `stadtpuls keys create --admin` or `--building ID`.\n"
            .to_string();
    }
    let header = ["ID", "PREFIX", "SCOPE", "CREATED", "REVOKED", "LABEL"];
    let rows: Vec<[String; 6]> = keys
        .iter()
        .map(|k| {
            [
                k.id.to_string(),
                format!("{KEY_TAG}{}", k.prefix),
                k.scope.to_string(),
                k.created_at.format("%Y-%m-%d %H:%M").to_string(),
                k.revoked_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "-".into()),
                k.label.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(header.map(String::from)).chain(rows) {
        let mut line = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            // Writing to a String cannot fail.
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let active = keys.iter().filter(|k| k.revoked_at.is_none()).count();
    let _ = writeln!(out, "{} keys, {active} active (times in UTC)", keys.len());
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn table_lines_up_and_has_no_secrets() {
        let at = Utc.with_ymd_and_hms(2025, 3, 1, 8, 30, 0).unwrap();
        let keys = [
            KeyInfo {
                id: 1,
                prefix: "abcd1234".into(),
                scope: Scope::Admin,
                label: Some("ops".into()),
                created_at: at,
                revoked_at: Some(at),
            },
            KeyInfo {
                id: 12,
                prefix: "qrst5678".into(),
                scope: Scope::Building("rathaus".into()),
                label: None,
                created_at: at,
                revoked_at: None,
            },
        ];
        assert_eq!(
            table(&keys),
            "ID  PREFIX       SCOPE             CREATED           REVOKED           LABEL\n\
             1   sp_abcd1234  admin             2025-03-01 08:30  2025-03-01 08:30  ops\n\
             12  sp_qrst5678  building rathaus  2025-03-01 08:30  -\n\
             2 keys, 1 active (times in UTC)\n"
        );
        assert!(table(&[]).starts_with("No API keys."));
    }
}
