#![allow(clippy::unwrap_used, clippy::result_large_err)]
use super::*;
use figment::Jail;

fn load_in_jail(jail: &Jail, file: Option<&str>) -> Result<Settings, ConfigError> {
    let _ = jail;
    Settings::load(file.map(Path::new))
}

#[test]
fn template_parses_to_the_compiled_defaults() {
    let parsed: Settings = toml::from_str_for_test(template());
    assert_eq!(parsed, Settings::default());
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
