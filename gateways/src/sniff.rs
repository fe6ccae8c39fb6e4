//! `Dialect::Auto`: tells the network server from the JSON shape (and, failing that, the topic).

use crate::wire;
use crate::NetworkServer;
use serde_json::Value;

/// Keys (dotted paths) whose presence identifies a network server, checked in order. Keys are
/// chosen to be unique to one dialect: ChirpStack v4 is camelCase with `Id`/`Eui`, v3 spells
/// `ID`/`EUI` in capitals, TTS is snake_case. A new network server adds one row here.
const SIGNATURES: &[(NetworkServer, &[&str])] = &[
    (
        NetworkServer::ChirpstackV4,
        &["deduplicationId", "deviceInfo"],
    ),
    (
        NetworkServer::TtsV3,
        &[
            "end_device_ids",
            "result.end_device_ids",
            "data.end_device_ids",
        ],
    ),
    (NetworkServer::ChirpstackV3, &["devEUI", "applicationID"]),
];

/// The network server that most likely produced `msg`, if any signature matches.
pub(crate) fn detect(msg: &Value, topic: &str) -> Option<NetworkServer> {
    SIGNATURES
        .iter()
        .find(|(_, keys)| keys.iter().any(|k| wire::path(msg, k).is_some()))
        .map(|(server, _)| *server)
        .or_else(|| crate::tts_v3::is_tts_topic(topic).then_some(NetworkServer::TtsV3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures() {
        let cases = [
            (
                json!({"deduplicationId": "x"}),
                Some(NetworkServer::ChirpstackV4),
            ),
            (json!({"deviceInfo": {}}), Some(NetworkServer::ChirpstackV4)),
            (json!({"end_device_ids": {}}), Some(NetworkServer::TtsV3)),
            (
                json!({"result": {"end_device_ids": {}}}),
                Some(NetworkServer::TtsV3),
            ),
            (
                json!({"devEUI": "AgICAgICAgI="}),
                Some(NetworkServer::ChirpstackV3),
            ),
            (
                json!({"applicationID": "1"}),
                Some(NetworkServer::ChirpstackV3),
            ),
            (json!({"dev_eui": "0102030405060708", "port": 1}), None),
        ];
        for (msg, expected) in cases {
            assert_eq!(detect(&msg, ""), expected, "{msg}");
        }
        assert_eq!(
            detect(
                &json!({"downlinks": []}),
                "v3/app@ttn/devices/dev1/down/push"
            ),
            Some(NetworkServer::TtsV3)
        );
    }
}
