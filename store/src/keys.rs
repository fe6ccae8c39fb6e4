//! API keys: created with a random secret, stored as a SHA-256 hash, verified in constant time.
//!
//! A key looks like `sp_k3x9ab2q_<43 URL-safe characters>`:
//!
//! * `sp_` marks it as a Stadtpuls key (recognisable in logs and by secret scanners);
//! * 8 characters of lookup prefix (`[a-z0-9]`, starting with a letter) — stored in clear, not
//!   secret on their own, they find the row;
//! * `_` and 43 characters from the URL-safe base64 alphabet (`A–Z a–z 0–9 - _`), drawn from the
//!   operating system's CSPRNG: 258 bits of randomness.
//!
//! Only the prefix and SHA-256 of the *whole* key are stored. A fast hash is enough because the
//! secret is random and long — there is nothing to brute-force with a dictionary.
//!
//! Invariants: the secret never reaches the database or a log (`NewKey`'s `Debug` hides it);
//! hashes are compared with [`subtle::ConstantTimeEq`]; input that is not shaped like a key is
//! rejected before any query.

use crate::{Result, Store, StoreError};
use chrono::{DateTime, Utc};
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Marks every key; see the module documentation for the whole format.
pub const KEY_TAG: &str = "sp_";
/// Length of the lookup prefix (after [`KEY_TAG`]).
pub const PREFIX_LEN: usize = 8;
/// Length of the secret part (after the prefix and `_`): 43 × 6 bits = 258 bits.
pub const SECRET_LEN: usize = 43;
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_TAG.len() + PREFIX_LEN + 1 + SECRET_LEN;

/// The prefix starts with a letter so that it can never be mistaken for a numeric key id
/// (`revoke_key` accepts both).
const PREFIX_FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const PREFIX_REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// 64 symbols, so `byte & 63` picks one uniformly.
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Longest label accepted (characters).
const MAX_LABEL_CHARS: usize = 200;
/// Prefix collisions are astronomically unlikely (26 × 36⁷ ≈ 2 · 10¹²); a few retries suffice.
const CREATE_ATTEMPTS: usize = 3;

/// What a key may see.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything.
    Admin,
    /// One building (by `buildings.id`).
    Building(String),
}

impl Scope {
    /// The value of the `api_keys.scope` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Building(_) => "building",
        }
    }

    /// The building of a building key.
    pub fn building(&self) -> Option<&str> {
        match self {
            Scope::Admin => None,
            Scope::Building(id) => Some(id),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Building(id) => write!(f, "building {id}"),
        }
    }
}

/// A freshly created key. `secret` exists only here: it is not stored and cannot be recovered.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    pub id: i64,
    /// The whole key, to be handed to its holder once.
    pub secret: String,
    /// The lookup prefix (without `sp_`), as stored.
    pub prefix: String,
    pub scope: Scope,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .finish()
    }
}

/// A stored key, without anything secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: i64,
    /// The lookup prefix (without `sp_`).
    pub prefix: String,
    pub scope: Scope,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The lookup prefix of a string shaped like a key, or `None` when it is not one (wrong length,
/// tag or separator, non-ASCII, characters outside the alphabets). Pure; used to reject garbage
/// before touching the database and to give callers a precise error.
pub fn key_prefix(secret: &str) -> Option<&str> {
    // ASCII first: the byte offsets below are then also character boundaries.
    if secret.len() != KEY_LEN || !secret.is_ascii() {
        return None;
    }
    let rest = secret.strip_prefix(KEY_TAG)?;
    let (prefix, rest) = rest.split_at_checked(PREFIX_LEN)?;
    let random = rest.strip_prefix('_')?;
    (is_prefix(prefix) && random.bytes().all(|b| SECRET_ALPHABET.contains(&b))).then_some(prefix)
}

/// Whether `s` is a lookup prefix as [`Store::create_key`] generates them.
fn is_prefix(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == PREFIX_LEN
        && PREFIX_FIRST.contains(&b[0])
        && b[1..].iter().all(|c| PREFIX_REST.contains(c))
}

/// A new random key and its prefix.
fn generate() -> (String, String) {
    let mut rng = OsRng;
    let mut prefix = String::with_capacity(PREFIX_LEN);
    prefix.push(char::from(
        PREFIX_FIRST[rng.gen_range(0..PREFIX_FIRST.len())],
    ));
    for _ in 1..PREFIX_LEN {
        prefix.push(char::from(PREFIX_REST[rng.gen_range(0..PREFIX_REST.len())]));
    }
    let mut bytes = [0u8; SECRET_LEN];
    rng.fill_bytes(&mut bytes);
    let random: String = bytes
        .iter()
        .map(|b| char::from(SECRET_ALPHABET[usize::from(b & 63)]))
        .collect();
    (format!("{KEY_TAG}{prefix}_{random}"), prefix)
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Labels end up in terminal tables: bounded, no control characters; blank means none.
fn check_label(label: Option<&str>) -> Result<Option<&str>> {
    let Some(label) = label.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(StoreError::Invalid {
            field: "label",
            problem: format!("longer than {MAX_LABEL_CHARS} characters"),
        });
    }
    if label.chars().any(char::is_control) {
        return Err(StoreError::Invalid {
            field: "label",
            problem: "contains control characters".into(),
        });
    }
    Ok(Some(label))
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: i64,
    prefix: String,
    scope: String,
    building_id: Option<String>,
    label: Option<String>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct HashedKeyRow {
    #[sqlx(flatten)]
    key: KeyRow,
    hash: Vec<u8>,
}

impl TryFrom<KeyRow> for KeyInfo {
    type Error = StoreError;
    fn try_from(row: KeyRow) -> Result<KeyInfo> {
        let scope = match (row.scope.as_str(), row.building_id) {
            ("admin", None) => Scope::Admin,
            ("building", Some(id)) => Scope::Building(id),
            (other, building) => {
                return Err(StoreError::Corrupt {
                    column: "api_keys.scope",
                    problem: format!("scope '{other}' with building {building:?}"),
                })
            }
        };
        Ok(KeyInfo {
            id: row.id,
            prefix: row.prefix,
            scope,
            label: row.label,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

impl Store {
    /// Creates a key and returns its secret (the only time it is available). A building key
    /// requires the building to exist (`StoreError::Invalid { field: "building" }` otherwise).
    pub async fn create_key(&self, scope: Scope, label: Option<&str>) -> Result<NewKey> {
        let label = check_label(label)?;
        if let Some(id) = scope.building() {
            if id.is_empty() || id.chars().count() > 128 {
                return Err(StoreError::Invalid {
                    field: "building",
                    problem: "a building id has 1 to 128 characters".into(),
                });
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (secret, prefix) = generate();
            let inserted = sqlx::query_scalar::<_, i64>(
                "INSERT INTO api_keys (prefix, hash, scope, building_id, label) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(&prefix)
            .bind(digest(&secret).as_slice())
            .bind(scope.kind())
            .bind(scope.building())
            .bind(label)
            .fetch_one(&self.pool)
            .await;
            match inserted {
                Ok(id) => {
                    tracing::info!(key_id = id, key_prefix = %prefix, scope = %scope, "API key created");
                    return Ok(NewKey {
                        id,
                        secret,
                        prefix,
                        scope,
                    });
                }
                // The only foreign key of api_keys is building_id.
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(StoreError::Invalid {
                        field: "building",
                        problem: format!(
                            "no building with id '{}' (create the building first)",
                            scope.building().unwrap_or_default()
                        ),
                    });
                }
                Err(sqlx::Error::Database(e))
                    if e.is_unique_violation() && attempt < CREATE_ATTEMPTS =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The key's stored data if `secret` is a valid, unrevoked key; `None` for anything else
    /// (malformed — without a query —, unknown prefix, wrong secret, revoked).
    pub async fn verify_key(&self, secret: &str) -> Result<Option<KeyInfo>> {
        let Some(prefix) = key_prefix(secret) else {
            return Ok(None);
        };
        let presented = digest(secret);
        let row: Option<HashedKeyRow> = sqlx::query_as(
            "SELECT id, prefix, scope, building_id, label, created_at, revoked_at, hash \
             FROM api_keys WHERE prefix = $1",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // `ct_eq` on slices is also false (in constant time) when the lengths differ.
        if !bool::from(row.hash.as_slice().ct_eq(&presented)) {
            return Ok(None);
        }
        let info = KeyInfo::try_from(row.key)?;
        Ok(info.revoked_at.is_none().then_some(info))
    }

    /// Revokes a key given by id, prefix (with or without `sp_`) or the whole key (only its
    /// prefix is used). `true` if an active key was revoked, `false` if none matched or it was
    /// already revoked; input shaped like none of these is `StoreError::Invalid { field: "key" }`.
    pub async fn revoke_key(&self, prefix_or_id: &str) -> Result<bool> {
        let wanted = prefix_or_id.trim();
        // RETURNING gives the log the stored id and prefix: `wanted` may be a whole secret and
        // must not be logged.
        let revoked: Option<(i64, String)> = if let Ok(id) = wanted.parse::<i64>() {
            sqlx::query_as(
                "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL \
                 RETURNING id, prefix",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        } else {
            let bare = wanted.strip_prefix(KEY_TAG).unwrap_or(wanted);
            let prefix = key_prefix(wanted)
                .or_else(|| is_prefix(bare).then_some(bare))
                .ok_or_else(|| StoreError::Invalid {
                    field: "key",
                    // The input is not echoed: it might be a mistyped secret.
                    problem: "expected a key id, a prefix like sp_abcd1234, or the whole key"
                        .into(),
                })?;
            sqlx::query_as(
                "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL \
                 RETURNING id, prefix",
            )
            .bind(prefix)
            .fetch_optional(&self.pool)
            .await?
        };
        if let Some((id, prefix)) = &revoked {
            tracing::info!(key_id = id, key_prefix = %prefix, "API key revoked");
        }
        Ok(revoked.is_some())
    }

    /// All keys, revoked ones included, oldest first. Never contains secrets or hashes.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, prefix, scope, building_id, label, created_at, revoked_at \
             FROM api_keys ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(KeyInfo::try_from).collect()
    }
}
