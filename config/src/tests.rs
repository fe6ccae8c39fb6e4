#![allow(clippy::unwrap_used, clippy::result_large_err)]
use super::*;
use figment::Jail;
use std::collections::BTreeSet;

fn load_in_jail(jail: &Jail, file: Option<&str>) -> Result<Settings, ConfigError> {
    let _ = jail;
    Settings::load(file.map(Path::new))
}

#[test]
fn template_parses_to_the_compiled_defaults() {
    let parsed: Settings = toml::from_str_for_test(template());
    assert_eq!(parsed, Settings::default());
}

/// Every key path of a value tree: `section`, `section.key`, `section.list[0]`,
/// `section.list[0].key`, … (tables and the elements of arrays are walked).
fn key_paths(v: &figment::value::Value, prefix: &str, out: &mut BTreeSet<String>) {
    use figment::value::Value;
    match v {
        Value::Dict(_, d) => {
            for (k, v) in d {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        Value::Array(_, a) => {
            for (i, v) in a.iter().enumerate() {
                let path = format!("{prefix}[{i}]");
                out.insert(path.clone());
                key_paths(v, &path, out);
            }
        }
        _ => {}
    }
}

/// Where `template` and the compiled defaults disagree on which keys exist: every key of the
/// serialized `Settings::default()` must be set in the template and every key of the
/// template must be a setting. (Parsing alone cannot show a missing key: every section is
/// `#[serde(default)]`, so the parsed template equals the defaults without it.) A setting
/// whose default is an empty list of tables cannot be written as TOML; it counts as present
/// when the template shows it as a commented `# [[key]]` example.
fn template_drift(template: &str) -> Vec<String> {
    use figment::providers::{Format, Serialized, Toml};
    use figment::value::{Dict, Value};
    let defaults: Dict = figment::Figment::from(Serialized::defaults(Settings::default()))
        .extract()
        .unwrap();
    let written: Dict = match figment::Figment::from(Toml::string(template)).extract() {
        Ok(d) => d,
        Err(e) => return vec![format!("the template does not parse: {e}")],
    };
    let (mut want, mut have) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&Value::from(defaults.clone()), "", &mut want);
    key_paths(&Value::from(written), "", &mut have);
    let empty_list = |path: &str| {
        let found = path
            .split('.')
            .try_fold(Value::from(defaults.clone()), |v, k| {
                v.into_dict().and_then(|mut d| d.remove(k))
            });
        matches!(found, Some(Value::Array(_, a)) if a.is_empty())
    };
    let commented = |path: &str| {
        template.lines().any(|l| {
            l.trim_start().strip_prefix('#').map(str::trim) == Some(&format!("[[{path}]]"))
        })
    };
    let mut drift: Vec<String> = want
        .difference(&have)
        .filter(|k| !(empty_list(k) && commented(k)))
        .map(|k| format!("setting `{k}` is missing from the template"))
        .collect();
    drift.extend(
        have.difference(&want)
            .map(|k| format!("template key `{k}` is not a setting")),
    );
    drift
}

#[test]
fn template_sets_every_key_of_the_compiled_defaults_and_nothing_else() {
    assert_eq!(template_drift(template()), Vec::<String>::new());
}

#[test]
fn template_drift_reports_a_missing_and_an_unknown_key() {
    // The defaults of the removed lines are the compiled ones, so the template still parses to
    // the defaults: only the key walk can see the gap.
    let without = template().replace("writers = 2\n", "");
    assert_ne!(without, template(), "the template sets ingest.writers");
    let parsed: Settings = toml::from_str_for_test(&without);
    assert_eq!(parsed, Settings::default());
    assert_eq!(
        template_drift(&without),
        vec!["setting `ingest.writers` is missing from the template"]
    );

    let without_table = template().replace(
        "[[mqtt.subscriptions]]\nfilter = \"v3/+/devices/+/join\"\ndialect = \"tts_v3\"\n",
        "",
    );
    assert_ne!(without_table, template());
    let drift = template_drift(&without_table);
    assert!(
        drift.contains(&"setting `mqtt.subscriptions[3]` is missing from the template".to_string()),
        "{drift:?}"
    );

    let without_example = template().replace("# [[opendata.datasets]]", "#");
    assert_eq!(
        template_drift(&without_example),
        vec!["setting `opendata.datasets` is missing from the template"]
    );

    let extra = template().replace("writers = 2\n", "writers = 2\nwritters = 2\n");
    assert_eq!(
        template_drift(&extra),
        vec!["template key `ingest.writters` is not a setting"]
    );
}

mod toml {
    pub fn from_str_for_test(s: &str) -> super::Settings {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(s)).extract().unwrap()
    }
}

#[test]
fn defaults_validate() {
    Settings::default().validate().unwrap();
}

#[test]
fn env_overrides_file_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "s.toml",
            "[mqtt]\nhost = \"broker.example\"\nport = 1884\n[http]\nlisten = \"0.0.0.0:9000\"\n",
        )?;
        jail.set_env("STADTPULS__MQTT__PORT", "8883");
        jail.set_env("STADTPULS__MQTT__TLS", "true");
        jail.set_env("STADTPULS__MQTT__USERNAME", "app@ttn");
        jail.set_env("STADTPULS__MQTT__PASSWORD", "NNSXS.secret");
        jail.set_env("STADTPULS__DATABASE__URL", "postgres://u:pw@db:5432/x");
        let s = load_in_jail(jail, Some("s.toml")).unwrap();
        assert_eq!(s.mqtt.host, "broker.example");
        assert_eq!(s.mqtt.port, 8883);
        assert!(s.mqtt.tls);
        assert_eq!(s.mqtt.username, "app@ttn");
        assert_eq!(s.mqtt.password.expose(), "NNSXS.secret");
        assert_eq!(s.http.listen, "0.0.0.0:9000");
        assert_eq!(s.database.url, "postgres://u:pw@db:5432/x");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("NNSXS.secret"), "{dbg}");
        assert!(!dbg.contains(":pw@"), "{dbg}");
        assert!(dbg.contains("postgres://u:***@db:5432/x"));
        Ok(())
    });
}

#[test]
fn invalid_values_name_the_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("STADTPULS__MQTT__PORT", "not-a-number", "mqtt.port"),
        ("STADTPULS__HTTP__LISTEN", "localhost", "http.listen"),
        ("STADTPULS__DATABASE__URL", "mysql://x", "database.url"),
        ("STADTPULS__MQTT__NOPE", "1", "nope"),
        ("STADTPULS__LOG__FORMAT", "xml", "log.format"),
        (
            "STADTPULS__HTTP__MAX_BODY_BYTES",
            "0",
            "http.max_body_bytes",
        ),
        (
            "STADTPULS__HTTP__MAX_WINDOW_DAYS",
            "0",
            "http.max_window_days",
        ),
        (
            "STADTPULS__HTTP__MAX_WINDOW_DAYS",
            "36601",
            "http.max_window_days",
        ),
    ];
    for (var, value, key) in cases {
        Jail::expect_with(|jail| {
            jail.set_env(var, value);
            let err = load_in_jail(jail, None).unwrap_err().to_string();
            assert!(
                err.contains(key),
                "{var}={value}: '{err}' does not name {key}"
            );
            Ok(())
        });
    }
}

#[test]
fn unknown_key_in_file_is_rejected_with_its_name() {
    Jail::expect_with(|jail| {
        jail.create_file("s.toml", "[mqtt]\nhots = \"x\"\n")?;
        let err = load_in_jail(jail, Some("s.toml")).unwrap_err().to_string();
        assert!(err.contains("hots"), "{err}");
        Ok(())
    });
}

#[test]
fn missing_file_is_an_error() {
    let err = Settings::load(Some(Path::new("/nonexistent/stadtpuls.toml"))).unwrap_err();
    assert!(matches!(err, ConfigError::MissingFile(_)));
}

#[test]
fn mapping_keys_must_name_known_quantities() {
    Jail::expect_with(|jail| {
        jail.create_file("s.toml", "[mapping.keys]\nfoo = \"temperature\"\nbar = { quantity = \"pressure\", factor = 0.01 }\n")?;
        let s = load_in_jail(jail, Some("s.toml")).unwrap();
        assert_eq!(s.mapping.keys["bar"].factor(), 0.01);
        assert_eq!(s.mapping.keys["foo"].quantity_name(), "temperature");
        jail.create_file("t.toml", "[mapping.keys]\nfoo = \"warmth\"\n")?;
        let err = load_in_jail(jail, Some("t.toml")).unwrap_err().to_string();
        assert!(
            err.contains("mapping.keys.foo") && err.contains("warmth"),
            "{err}"
        );
        Ok(())
    });
}

#[test]
fn redact_url_hides_only_the_password() {
    assert_eq!(redact_url("postgres://a:b@h/db"), "postgres://a:***@h/db");
    assert_eq!(redact_url("postgres://a@h/db"), "postgres://a@h/db");
}

/// A valid parking dataset as TOML; cases change single lines.
const PARKING_DATASET: &str = r#"
[[opendata.datasets]]
name = "parking_occupancy"
title_de = "Belegung von Parkplätzen"
description_de = "Belegung einzelner Stellplätze."
quantities = ["occupied", "free_spaces"]
kinds = ["parking_bay", "parking_counter"]
"#;

#[test]
fn datasets_load_with_defaults_and_privacy_rules_reject_unsafe_ones() {
    Jail::expect_with(|jail| {
        jail.create_file("ok.toml", PARKING_DATASET)?;
        let s = load_in_jail(jail, Some("ok.toml")).unwrap();
        let d = &s.opendata.datasets[0];
        assert_eq!(d.aggregation, Aggregation::Raw);
        assert_eq!(d.partitioning, Partitioning::Day);
        assert_eq!(d.formats, [ExportFormat::Parquet, ExportFormat::Csv]);
        assert_eq!(d.licence, Licence::DlZeroDe20);
        assert_eq!(d.schedule, "0 30 2 * * *");
        assert_eq!(d.min_group_size, 3);
        Ok(())
    });
    // (replace this line, with this, the key to blame, a word of the problem)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = [\"room_climate\"]",
            "opendata.datasets[0].aggregation",
            "aggregated",
        ),
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = []",
            "opendata.datasets[0].aggregation",
            "every device kind",
        ),
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = [\"room_climate\"]\naggregation = \"1h\"\nmin_group_size = 2",
            "opendata.datasets[0].min_group_size",
            "3 rooms",
        ),
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = [\"parking_bay\"]\nbuildings = [\"rathaus\"]",
            "opendata.datasets[0].aggregation",
            "buildings",
        ),
        (
            "name = \"parking_occupancy\"",
            "name = \"Parking\"",
            "opendata.datasets[0].name",
            "[a-z0-9_]",
        ),
        (
            "quantities = [\"occupied\", \"free_spaces\"]",
            "quantities = [\"occupancy\"]",
            "opendata.datasets[0].quantities",
            "occupancy",
        ),
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = [\"parking_bay\"]\nschedule = \"every day\"",
            "opendata.datasets[0].schedule",
            "cron",
        ),
        (
            "kinds = [\"parking_bay\", \"parking_counter\"]",
            "kinds = [\"parking_bay\"]\ntheme = \"CARS\"",
            "opendata.datasets[0].theme",
            "EU data theme",
        ),
    ];
    for (from, to, key, word) in cases {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", &PARKING_DATASET.replace(from, to))?;
            let err = load_in_jail(jail, Some("bad.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{to}: '{err}' does not name {key}");
            assert!(err.contains(word), "{to}: '{err}' does not say '{word}'");
            Ok(())
        });
    }
    // An aggregated indoor dataset over named buildings is fine.
    Jail::expect_with(|jail| {
        let indoor = PARKING_DATASET
            .replace(
                "kinds = [\"parking_bay\", \"parking_counter\"]",
                "kinds = [\"room_climate\"]\naggregation = \"1h\"\nbuildings = [\"rathaus\"]",
            )
            .replace("[\"occupied\", \"free_spaces\"]", "[\"co2\"]");
        jail.create_file("indoor.toml", &indoor)?;
        let s = load_in_jail(jail, Some("indoor.toml")).unwrap();
        assert!(s.opendata.datasets[0].may_contain_indoor());
        Ok(())
    });
    // Two datasets with one name are rejected.
    Jail::expect_with(|jail| {
        jail.create_file("twice.toml", &format!("{PARKING_DATASET}{PARKING_DATASET}"))?;
        let err = load_in_jail(jail, Some("twice.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("opendata.datasets[1].name"), "{err}");
        Ok(())
    });
}
