//! API key tests: each on a fresh, migrated database on the real PostgreSQL + TimescaleDB.
#![allow(clippy::unwrap_used)]

use sha2::{Digest, Sha256};
use stadtpuls_store::keys::{key_prefix, Scope, KEY_LEN};
use stadtpuls_store::testing::{fetch_all, fetch_one, fresh_store};
use stadtpuls_store::{Store, StoreError};

/// Buildings belong to the places registry; tests insert them directly.
async fn add_building(store: &Store, id: &str) {
    sqlx::query("INSERT INTO buildings (id, name) VALUES ($1, $2)")
        .bind(id)
        .bind(format!("Building {id}"))
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn created_keys_verify_to_their_scope() {
    let store = fresh_store().await.unwrap();
    add_building(&store, "rathaus").await;

    let admin = store.create_key(Scope::Admin, Some("ops")).await.unwrap();
    let rathaus = store
        .create_key(Scope::Building("rathaus".into()), None)
        .await
        .unwrap();
    assert_eq!(admin.scope, Scope::Admin);
    assert_eq!(rathaus.scope, Scope::Building("rathaus".into()));
    assert_ne!(admin.id, rathaus.id);

    for key in [&admin, &rathaus] {
        // The documented shape: sp_ + 8-char prefix + _ + 43 URL-safe characters.
        assert_eq!(key.secret.len(), KEY_LEN);
        assert_eq!(KEY_LEN, 3 + 8 + 1 + 43);
        assert!(
            key.secret.starts_with(&format!("sp_{}_", key.prefix)),
            "{}",
            key.prefix
        );
        assert_eq!(key_prefix(&key.secret), Some(key.prefix.as_str()));
        assert!(key.secret[12..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // Debug output never shows the secret.
        assert!(!format!("{key:?}").contains(&key.secret[12..]));
    }

    let info = store.verify_key(&admin.secret).await.unwrap().unwrap();
    assert_eq!(
        (
            info.id,
            info.prefix.as_str(),
            &info.scope,
            info.label.as_deref(),
            info.revoked_at
        ),
        (
            admin.id,
            admin.prefix.as_str(),
            &Scope::Admin,
            Some("ops"),
            None
        )
    );
    let info = store.verify_key(&rathaus.secret).await.unwrap().unwrap();
    assert_eq!(info.scope, Scope::Building("rathaus".into()));
    assert_eq!(info.label, None);
}

#[tokio::test]
async fn every_key_is_different() {
    let store = fresh_store().await.unwrap();
    let mut prefixes = std::collections::HashSet::new();
    let mut secrets = std::collections::HashSet::new();
    for _ in 0..30 {
        let key = store.create_key(Scope::Admin, None).await.unwrap();
        // Prefixes start with a letter so that `revoke_key` never confuses them with ids.
        assert!(
            key.prefix.as_bytes()[0].is_ascii_lowercase(),
            "{}",
            key.prefix
        );
        assert!(key.prefix.parse::<i64>().is_err());
        assert!(prefixes.insert(key.prefix.clone()));
        assert!(secrets.insert(key.secret[12..].to_string()));
    }
}

#[tokio::test]
async fn only_prefix_and_sha256_are_stored() {
    let store = fresh_store().await.unwrap();
    let key = store.create_key(Scope::Admin, None).await.unwrap();

    let (prefix, hash): (String, Vec<u8>) =
        fetch_one(&store, "SELECT prefix, hash FROM api_keys").await;
    assert_eq!(prefix, key.prefix);
    assert_eq!(hash, Sha256::digest(key.secret.as_bytes()).to_vec());

    // No column of the row contains the secret part, in any encoding we would plausibly use.
    let (row,): (String,) = fetch_one(&store, "SELECT row_to_json(k)::text FROM api_keys k").await;
    let random = &key.secret[12..];
    assert!(!row.contains(random), "{row}");
    let hex: String = random.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!row.contains(&hex), "{row}");
}

#[tokio::test]
async fn wrong_secret_with_a_valid_prefix_is_rejected() {
    let store = fresh_store().await.unwrap();
    let key = store.create_key(Scope::Admin, None).await.unwrap();

    // Same prefix, one character of the secret changed.
    let mut forged = key.secret.clone();
    let last = if forged.ends_with('A') { "B" } else { "A" };
    forged.replace_range(KEY_LEN - 1.., last);
    assert_eq!(key_prefix(&forged), Some(key.prefix.as_str()));
    assert_eq!(store.verify_key(&forged).await.unwrap(), None);

    // Well-formed, unknown prefix.
    let unknown = format!("sp_zzzzzzzz_{}", &key.secret[12..]);
    assert_eq!(store.verify_key(&unknown).await.unwrap(), None);

    // The real key still works.
    assert!(store.verify_key(&key.secret).await.unwrap().is_some());
}

#[tokio::test]
async fn malformed_keys_are_rejected() {
    let store = fresh_store().await.unwrap();
    let key = store.create_key(Scope::Admin, None).await.unwrap();
    let random = &key.secret[12..];
    let cases = [
        String::new(),
        "Bearer".into(),
        "sp_".into(),
        key.prefix.clone(),
        format!("sp_{}", key.prefix),
        // No tag.
        key.secret[3..].to_string(),
        format!("xx_{}", &key.secret[3..]),
        // Wrong separator.
        format!("sp_{}-{random}", key.prefix),
        // Too short, too long.
        key.secret[..KEY_LEN - 1].to_string(),
        format!("{}A", key.secret),
        format!("{}{}", key.secret, "A".repeat(10_000)),
        // Padding and characters outside the alphabet.
        format!("{}=", &key.secret[..KEY_LEN - 1]),
        format!("{}+", &key.secret[..KEY_LEN - 1]),
        format!(" {}", &key.secret[1..]),
        // Upper-case prefix (prefixes are lower case).
        format!("sp_{}_{random}", key.prefix.to_uppercase()),
        // Non-ASCII, also at the same byte length as a real key.
        format!("{}é", &key.secret[..KEY_LEN - 2]),
        format!("sp_{}_{random}", "äöü"),
        "sp_🔑🔑_".into(),
        // SQL-ish garbage never reaches a query, but must not matter either.
        format!("sp_' OR 1=1 --_{random}"),
    ];
    for case in &cases {
        assert_eq!(key_prefix(case), None, "{case:?}");
        assert_eq!(store.verify_key(case).await.unwrap(), None, "{case:?}");
    }
    assert!(store.verify_key(&key.secret).await.unwrap().is_some());
}

#[tokio::test]
async fn revoked_keys_are_rejected() {
    let store = fresh_store().await.unwrap();
    add_building(&store, "schule-nord").await;
    let by_id = store.create_key(Scope::Admin, None).await.unwrap();
    let by_prefix = store.create_key(Scope::Admin, None).await.unwrap();
    let by_tagged_prefix = store
        .create_key(Scope::Building("schule-nord".into()), None)
        .await
        .unwrap();
    let by_secret = store.create_key(Scope::Admin, None).await.unwrap();
    let kept = store.create_key(Scope::Admin, None).await.unwrap();

    assert!(store.revoke_key(&by_id.id.to_string()).await.unwrap());
    assert!(store.revoke_key(&by_prefix.prefix).await.unwrap());
    assert!(store
        .revoke_key(&format!("  sp_{}\n", by_tagged_prefix.prefix))
        .await
        .unwrap());
    assert!(store.revoke_key(&by_secret.secret).await.unwrap());

    for key in [&by_id, &by_prefix, &by_tagged_prefix, &by_secret] {
        assert_eq!(
            store.verify_key(&key.secret).await.unwrap(),
            None,
            "{key:?}"
        );
    }
    assert!(store.verify_key(&kept.secret).await.unwrap().is_some());

    // Revoking again, or something unknown, revokes nothing.
    assert!(!store.revoke_key(&by_id.id.to_string()).await.unwrap());
    assert!(!store.revoke_key(&by_prefix.prefix).await.unwrap());
    assert!(!store.revoke_key("999999").await.unwrap());
    assert!(!store.revoke_key("zzzzzzzz").await.unwrap());

    // Input that is neither an id nor a prefix is an error, not a silent "nothing revoked".
    for bad in ["", "sp_", "ABCDEFGH", "abc", "rathaus; DROP TABLE api_keys"] {
        match store.revoke_key(bad).await {
            Err(e @ StoreError::Invalid { field: "key", .. }) => {
                // The input is not echoed back: it could be a mistyped secret.
                assert!(!e.to_string().contains("DROP"), "{e}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let (active,): (i64,) = fetch_one(
        &store,
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    )
    .await;
    assert_eq!(active, 1);
}

#[tokio::test]
async fn building_key_for_an_unknown_building_is_invalid() {
    let store = fresh_store().await.unwrap();
    match store
        .create_key(Scope::Building("gibt-es-nicht".into()), None)
        .await
    {
        Err(
            e @ StoreError::Invalid {
                field: "building", ..
            },
        ) => {
            let message = e.to_string();
            assert!(message.contains("'gibt-es-nicht'"), "{message}");
            assert!(message.contains("no building"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    for bad in [String::new(), "x".repeat(129)] {
        match store.create_key(Scope::Building(bad.clone()), None).await {
            Err(StoreError::Invalid {
                field: "building", ..
            }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let (count,): (i64,) = fetch_one(&store, "SELECT count(*) FROM api_keys").await;
    assert_eq!(count, 0);
}

#[tokio::test]
async fn labels_are_trimmed_and_bounded() {
    let store = fresh_store().await.unwrap();
    let blank = store.create_key(Scope::Admin, Some("   ")).await.unwrap();
    let named = store
        .create_key(Scope::Admin, Some("  Hausmeister Süd "))
        .await
        .unwrap();
    for bad in ["evil\u{1b}[2J", "two\nlines"] {
        match store.create_key(Scope::Admin, Some(bad)).await {
            Err(StoreError::Invalid { field: "label", .. }) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match store.create_key(Scope::Admin, Some(&"ü".repeat(201))).await {
        Err(StoreError::Invalid { field: "label", .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(store
        .create_key(Scope::Admin, Some(&"ü".repeat(200)))
        .await
        .is_ok());

    let labels: Vec<(i64, Option<String>)> =
        fetch_all(&store, "SELECT id, label FROM api_keys ORDER BY id LIMIT 2").await;
    assert_eq!(
        labels,
        vec![(blank.id, None), (named.id, Some("Hausmeister Süd".into()))]
    );
}

#[tokio::test]
async fn list_shows_all_keys_without_secrets() {
    let store = fresh_store().await.unwrap();
    assert_eq!(store.list_keys().await.unwrap(), vec![]);
    add_building(&store, "rathaus").await;
    let admin = store.create_key(Scope::Admin, Some("ops")).await.unwrap();
    let rathaus = store
        .create_key(Scope::Building("rathaus".into()), Some("Hausmeister"))
        .await
        .unwrap();
    assert!(store.revoke_key(&admin.prefix).await.unwrap());

    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let summary: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                k.id,
                k.prefix.clone(),
                k.scope.clone(),
                k.label.clone(),
                k.revoked_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                admin.id,
                admin.prefix.clone(),
                Scope::Admin,
                Some("ops".into()),
                true
            ),
            (
                rathaus.id,
                rathaus.prefix.clone(),
                Scope::Building("rathaus".into()),
                Some("Hausmeister".into()),
                false
            ),
        ]
    );
    assert!(keys[0].created_at <= keys[0].revoked_at.unwrap());
    assert!(!format!("{keys:?}").contains(&rathaus.secret[12..]));
    assert_eq!(
        Scope::Building("rathaus".into()).to_string(),
        "building rathaus"
    );
}

#[tokio::test]
async fn deleting_a_building_removes_its_keys() {
    let store = fresh_store().await.unwrap();
    add_building(&store, "turnhalle").await;
    let key = store
        .create_key(Scope::Building("turnhalle".into()), None)
        .await
        .unwrap();
    let (_,): (String,) = fetch_one(
        &store,
        "DELETE FROM buildings WHERE id = 'turnhalle' RETURNING id",
    )
    .await;
    assert_eq!(store.verify_key(&key.secret).await.unwrap(), None);
}
