//! Key → quantity mapping on the decoded `output.data` of every device-repository example
//! (ttn-devrepo-uplink-examples-city.json and ttn-devrepo-milesight-am307-examples.json).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use serde_json::Value;
use stadtpuls_gateways::{KeyTable, Quantity, Quantity::*};
use std::collections::HashSet;
use std::path::Path;

/// Readings (quantity, value) and unmapped key paths.
type Expected = (&'static [(Quantity, f64)], &'static [&'static str]);

/// Expected mapping of one example: readings (sorted by quantity name) and unmapped key paths
/// (sorted); `None` for examples whose codec output is an error.
struct Case {
    codec_js: &'static str,
    description: &'static str,
    expected: Option<Expected>,
}

impl Case {
    const fn new(
        codec_js: &'static str,
        description: &'static str,
        readings: &'static [(Quantity, f64)],
        unmapped: &'static [&'static str],
    ) -> Self {
        Case {
            codec_js,
            description,
            expected: Some((readings, unmapped)),
        }
    }

    const fn errors(codec_js: &'static str, description: &'static str) -> Self {
        Case {
            codec_js,
            description,
            expected: None,
        }
    }
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    Case::new("vendor/bosch/tpl110-0292.js", "Parking Status", &[(Occupied, 1.0)], &["type"]),
    Case::new("vendor/bosch/tpl110-0292.js", "Heartbeat", &[(Occupied, 1.0), (Temperature, -1.0)], &["type"]),
    Case::new("vendor/bosch/tpl110-0292.js", "Startup with codes 804 and 885", &[(Occupied, 1.0)], &["debugCodes", "firmwareVersion", "resetCause", "type"]),
    Case::new("vendor/nwave/nps405.js", "Parking Status", &[(Occupied, 1.0)], &["previous_state_duration", "previous_state_duration_error", "previous_state_duration_overflow", "type"]),
    Case::new("vendor/nwave/nps405.js", "User Registration", &[(Occupied, 1.0)], &["previous_state_duration", "previous_state_duration_error", "previous_state_duration_overflow", "tag_id", "type"]),
    Case::new("vendor/nwave/nps405.js", "Heartbeat", &[(BatteryVoltage, 3.344), (Occupied, 0.0), (Temperature, -10.0)], &["battery_health", "hw_health_status", "type"]),
    Case::new("vendor/nwave/nps405.js", "Startup", &[(Occupied, 0.0)], &["firmware_version", "reset_cause", "type"]),
    Case::new("vendor/nwave/nps310sm.js", "Parking Status", &[(Occupied, 1.0)], &["type"]),
    Case::new("vendor/nwave/nps310sm.js", "Heartbeat", &[(Occupied, 0.0)], &["type"]),
    Case::new("vendor/nwave/nps310sm.js", "Startup", &[(Occupied, 0.0)], &["firmware_version", "reset_cause", "type"]),
    // Vehicle counts have no canonical quantity (people_in/out are people).
    Case::new("vendor/nwave/ncc405.js", "Counter Update", &[], &["counter_value", "type"]),
    Case::new("vendor/nwave/ncc405.js", "Heartbeat", &[(BatteryVoltage, 2.908)], &["battery_voltage_mean_24h", "hw_health_status", "type"]),
    Case::new("vendor/nwave/ncc405.js", "Startup", &[], &["firmware_version", "reset_cause", "type"]),
    Case::new("vendor/tekzitel/tekzipark.js", "Occupied state with radar detection non-keepalive and non-reset with beacon IDs", &[(Occupied, 1.0), (Temperature, 45.0)], &["Beacon_RSSI", "Beacons", "Good_Battery", "No_Beacon", "Obstruction", "Parking_ID", "Radar", "keepAlive", "reset"]),
    Case::new("vendor/tekzitel/tekzipark.js", "Occupied state with radar detection non-keepalive and non-reset", &[(Occupied, 1.0), (Temperature, 45.0)], &["Good_Battery", "No_Beacon", "Obstruction", "Parking_ID", "Radar", "keepAlive", "reset"]),
    Case::new("vendor/tekzitel/tekzipark.js", "Vacant state with radar detection keepalive and non-reset", &[(Occupied, 0.0), (Temperature, 46.0)], &["Good_Battery", "No_Beacon", "Obstruction", "Parking_ID", "Radar", "keepAlive", "reset"]),
    Case::errors("vendor/tekzitel/tekzipark.js", "Unknown FPort"),
    Case::new("vendor/elsys/elsys.js", "ERS CO2 temperature, humidity, light, motion and co2", &[(Co2, 776.0), (Humidity, 41.0), (Illuminance, 39.0), (Motion, 6.0), (Temperature, 22.6)], &[]),
    // TempC_DS is the external probe (could be soil/water): unmapped; the SHT sensor is the air.
    Case::new("vendor/dragino/lht65.js", "Temperature", &[(BatteryVoltage, 3.062), (Humidity, 88.6), (Temperature, 28.29)], &["Bat_status", "Ext_sensor", "TempC_DS"]),
    Case::errors("vendor/dragino/lht65.js", "Unknown FPort"),
    // Nested {displayName, unit, value}; pressure in Pa → hPa.
    Case::new("vendor/decentlab/dl-iam.js", "Example 1", &[(BatteryVoltage, 2.962), (Co2, 455.0), (Humidity, 36.438544289311054), (Illuminance, 678.76512), (Motion, 11.0), (Pressure, 964.12), (Temperature, 27.67833981841764), (Tvoc, 273.0)], &["ambient_light_infrared", "ambient_light_visible_infrared", "co2_sensor_status", "device_id", "protocol_version", "raw_ir_reading"]),
    Case::new("vendor/decentlab/dl-iam.js", "Example 2", &[(BatteryVoltage, 2.962), (Humidity, 36.438544289311054), (Illuminance, 678.76512), (Motion, 11.0), (Pressure, 964.12), (Temperature, 27.67833981841764), (Tvoc, 273.0)], &["ambient_light_infrared", "ambient_light_visible_infrared", "device_id", "protocol_version"]),
    Case::new("vendor/decentlab/dl-iam.js", "Example 3", &[(BatteryVoltage, 2.962)], &["device_id", "protocol_version"]),
    Case::new("vendor/milesight-iot/am107.js", "Ambience Monitoring Sensors (example 1) - Milesight IoT", &[(Battery, 92.0), (Humidity, 50.5), (Motion, 73.0), (Temperature, 30.8)], &[]),
    Case::new("vendor/milesight-iot/am107.js", "Ambience Monitoring Sensors (example 2) - Milesgiht IoT", &[(Illuminance, 28.0)], &["infrared", "infrared_and_visible"]),
    Case::new("vendor/milesight-iot/am107.js", "Ambience Monitoring Sensors (example 3) - Milesgiht IoT", &[(Co2, 1255.0), (Pressure, 1004.7), (Tvoc, 7.0)], &[]),
    Case::new("vendor/decentlab/dl-pm.js", "Example 1", &[(BatteryVoltage, 3.109), (Humidity, 41.63221740722656), (Pm10, 3.9), (Pm2_5, 3.9), (Pressure, 968.0), (Temperature, 24.35660461425781)], &["device_id", "pm0_5_number_concentration", "pm10_number_concentration", "pm1_0_mass_concentration", "pm1_0_number_concentration", "pm2_5_number_concentration", "pm4_mass_concentration", "pm4_number_concentration", "protocol_version", "typical_particle_size"]),
    Case::new("vendor/decentlab/dl-pm.js", "Example 2", &[(BatteryVoltage, 3.109), (Humidity, 41.63221740722656), (Pressure, 968.0), (Temperature, 24.35660461425781)], &["device_id", "protocol_version"]),
    Case::new("vendor/decentlab/dl-pm.js", "Example 3", &[(BatteryVoltage, 3.109)], &["device_id", "protocol_version"]),
    Case::new("vendor/netvox/payload/ra0716.js", "Startup version report", &[], &["Datecode", "Device", "HWver", "SWver"]),
    Case::new("vendor/netvox/payload/ra0716.js", "Status report", &[(BatteryVoltage, 3.6), (Humidity, 68.0), (Pm2_5, 300.0), (Temperature, 25.38)], &["Device"]),
    Case::new("vendor/netvox/payload/ra0716.js", "Configure report response", &[], &["Cmd", "Device", "Status"]),
    Case::new("vendor/netvox/payload/ra0716.js", "Read configure report response", &[], &["Cmd", "Device", "MaxTime", "MinTime"]),
    // `battery: 3.6` is volts; `temperatureBoard` is the PCB, not the air.
    Case::new("vendor/browan/tbsl100.js", "Sound level keep alive", &[(BatteryVoltage, 3.6), (Noise, 40.0)], &["status", "temperatureBoard"]),
    Case::errors("vendor/browan/tbsl100.js", "Unknown FPort"),
    // A crowd count (pax) is neither people_in nor people_out.
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Paxcount data", &[], &["ble", "bytes", "pax", "port", "wifi"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Device status query result", &[], &["bytes", "cputemp", "memory", "port", "reset0", "restarts", "uptime", "voltage"]),
    // `payloadmask.battery: 0` is a flag, not 0 % battery.
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Device config data", &[], &["blescantime", "bytes", "flags.adr", "flags.antenna", "flags.blescan", "flags.countermode", "flags.reserved", "flags.screen", "flags.screensaver", "loradr", "payloadmask.battery", "payloadmask.bme", "payloadmask.counter", "payloadmask.gps", "payloadmask.reserved", "payloadmask.sensor1", "payloadmask.sensor2", "payloadmask.sensor3", "port", "rgblum", "rssilimit", "sendcycle", "txpower", "version", "wifichancycle"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "GPS data", &[], &["altitude", "bytes", "hdop", "latitude", "longitude", "port", "sats"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Button data", &[], &["button", "bytes", "port"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Environmental sensor data", &[(Humidity, 80.0), (Pressure, 1000.0), (Temperature, 21.0)], &["air", "bytes", "port"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Battery voltage data", &[], &["bytes", "port", "voltage"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "Time/Date", &[], &["bytes", "port", "time", "timestatus"]),
    Case::new("vendor/opensource/esp32-paxcounter-packed.js", "User sensor data", &[], &["bytes", "ens", "port"]),
    Case::new("vendor/decentlab/dl-mbx.js", "Example 1", &[(BatteryVoltage, 2.993), (Distance, 1.234)], &["device_id", "number_of_valid_samples", "protocol_version"]),
    Case::new("vendor/decentlab/dl-mbx.js", "Example 2", &[(BatteryVoltage, 2.993)], &["device_id", "protocol_version"]),
    // Hydrostatic pressure in bar (water level) is not barometric pressure: unmapped.
    Case::new("vendor/decentlab/dl-pr26-0-1.js", "Example 1", &[(BatteryVoltage, 3.199), (Temperature, 25.671875)], &["device_id", "pressure", "protocol_version"]),
    Case::new("vendor/decentlab/dl-pr26-0-1.js", "Example 2", &[(BatteryVoltage, 3.199)], &["device_id", "protocol_version"]),
    Case::new("vendor/dragino/ldds75.js", "Distance Detection", &[], &["distance"]),
    Case::errors("vendor/dragino/ldds75.js", "Unknown FPort"),
    // "2000 mm" level → 2 m; `battery: false` is a low-battery flag, not 0 %.
    Case::new("vendor/dingtek/df702.js", "heartbeat upload without gps", &[(Distance, 2.0), (Temperature, 25.0)], &["angle", "battery", "fire", "full", "tilt"]),
    Case::new("vendor/dingtek/df702.js", "heartbeat upload with gps", &[(Distance, 2.0), (Temperature, 25.0)], &["angle", "battery", "fire", "full", "latitude", "longitude", "tilt"]),
    Case::new("vendor/dingtek/df702.js", "Command confirmation", &[], &["detection_interval", "fire_alarm_threshold", "full_alarm_threshold", "periodic_interval", "tilt_alarm_threshold", "tilt_enable", "ultrasonic_range"]),
    Case::new("vendor/decentlab/dl-tbrg-01.js", "Example 1", &[(BatteryVoltage, 3.156), (Rainfall, 0.4)], &["cumulative_precipitation", "device_id", "precipitation_interval", "protocol_version"]),
    Case::new("vendor/decentlab/dl-tbrg-01.js", "Example 2", &[(BatteryVoltage, 3.156)], &["device_id", "protocol_version"]),
    // ttn-devrepo-milesight-am307-examples.json
    Case::new("vendor/milesight-iot/am307.js", "Ambience Monitoring Sensors (example 1) - Milesight IoT", &[(Battery, 92.0), (Humidity, 50.5), (Temperature, 30.8)], &[]),
    Case::new("vendor/milesight-iot/am307.js", "Ambience Monitoring Sensors (example 3) - Milesgiht IoT", &[(Co2, 1255.0), (Pressure, 1004.7), (Tvoc, 7.0)], &[]),
];

fn examples() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lorawan");
    let mut out = Vec::new();
    for name in [
        "ttn-devrepo-uplink-examples-city.json",
        "ttn-devrepo-milesight-am307-examples.json",
    ] {
        let file: Value = serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
        let codecs = match file.get("codecs") {
            Some(list) => list.as_array().unwrap().clone(),
            None => vec![file.clone()],
        };
        for codec in codecs {
            let js = codec["codec_js"].as_str().unwrap().to_string();
            for example in codec["uplink_examples"].as_array().unwrap() {
                out.push((js.clone(), example.clone()));
            }
        }
    }
    out
}

#[test]
fn every_device_repository_example_maps_as_expected() {
    let table = KeyTable::builtin();
    let at: DateTime<Utc> = "2024-01-01T00:00:00Z".parse().unwrap();
    let examples = examples();
    assert_eq!(examples.len(), 55 + 2, "fixture files changed");
    let mut used = HashSet::new();
    for (codec_js, example) in &examples {
        let description = example["description"].as_str().unwrap();
        let (index, case) = CASES
            .iter()
            .enumerate()
            .find(|(_, c)| c.codec_js == codec_js && c.description == description)
            .unwrap_or_else(|| panic!("no case for {codec_js} / {description}"));
        assert!(
            used.insert(index),
            "case used twice: {codec_js} / {description}"
        );
        let what = format!("{codec_js} / {description}");
        let Some((readings, unmapped)) = case.expected else {
            assert!(example["output"].get("data").is_none(), "{what}");
            assert!(
                !example["output"]["errors"].as_array().unwrap().is_empty(),
                "{what}"
            );
            continue;
        };
        let mapped = table.map_object(&example["output"]["data"], at);
        let mut got: Vec<(Quantity, f64)> = mapped
            .readings
            .iter()
            .map(|r| (r.quantity, r.value))
            .collect();
        got.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        assert_eq!(got.len(), readings.len(), "{what}: {got:?}");
        for ((q, v), (eq, ev)) in got.iter().zip(readings.iter()) {
            assert_eq!(q, eq, "{what}");
            assert!((v - ev).abs() < 1e-9, "{what}: {q} = {v}, expected {ev}");
        }
        assert!(
            mapped.readings.iter().all(|r| r.observed_at == at),
            "{what}"
        );
        let mut unmapped_got = mapped.unmapped.clone();
        unmapped_got.sort();
        assert_eq!(unmapped_got, unmapped, "{what}");
    }
    assert_eq!(used.len(), CASES.len(), "stale cases in the table");
}
