#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/ from the repository's
test fixtures and a few hand-written inputs. Idempotent: files are named by their SHA-1, as
libFuzzer names its own."""

import base64
import hashlib
import json
import pathlib

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
LORAWAN = ROOT / "gateways/tests/fixtures/lorawan"
E2E = ROOT / "tests/tests/fixtures"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def network_server_messages():
    for d in (LORAWAN, E2E):
        for p in sorted(d.glob("*.json")):
            if p.name.endswith(".expected.json") or p.name.startswith("ttn-devrepo"):
                continue
            yield p.read_bytes()


def devrepo_examples():
    city = json.loads((LORAWAN / "ttn-devrepo-uplink-examples-city.json").read_bytes())
    am307 = json.loads((LORAWAN / "ttn-devrepo-milesight-am307-examples.json").read_bytes())
    for codec in city["codecs"] + [dict(am307, codec_js="vendor/milesight-iot/am307.js")]:
        for ex in codec.get("uplink_examples", []):
            yield codec["codec_js"], ex


def dicts(v):
    """Every object nested in a JSON value."""
    if isinstance(v, dict):
        yield v
        v = list(v.values())
    if isinstance(v, list):
        for x in v:
            yield from dicts(x)


def frm_payloads(msg):
    """(fPort, bytes) of every uplink in a network-server message."""
    for d in dicts(msg):
        port = d.get("fPort", d.get("f_port"))
        data = d.get("data", d.get("frm_payload"))
        if isinstance(port, int) and isinstance(data, str):
            try:
                yield port, base64.b64decode(data)
            except ValueError:
                pass


def main():
    messages = list(network_server_messages())
    targets = ["decode_auto", "decode_chirpstack_v3", "decode_chirpstack_v4", "decode_tts_v3"]
    for target in targets:
        for m in messages:
            write(target, m)
        write(target, b"application/1/device/0102030405060708/event/status\0" + messages[0])
        write(target, b"v3/app@ttn/devices/dev1/down/push\0{\"downlinks\": []}")

    codec_seeds = {
        "cayenne_lpp": [
            (1, bytes.fromhex("03670110056700ff")),
            (1, bytes.fromhex("0174012c0282000004d2036501900473277705686106" "02ff380787102030")),
            (1, bytes.fromhex("0188067600000000000000")),
        ],
        "bosch_parking": [(2, b"\x01\x12"), (1, b"\x01"), (3, bytes.fromhex("2403000075"))],
        "milesight_am319": [(85, bytes.fromhex("01755599")), (85, bytes.fromhex("20ce0001"))],
    }
    for m in messages:
        msg = json.loads(m)
        for port, data in frm_payloads(msg):
            for seeds in codec_seeds.values():
                seeds.append((port, data))
    for js, ex in devrepo_examples():
        inp = ex.get("input", {})
        if isinstance(inp.get("bytes"), list) and isinstance(inp.get("fPort"), int):
            name = "bosch_parking" if "bosch" in js else "milesight_am319" if "milesight" in js else None
            if name:
                codec_seeds[name].append((inp["fPort"], bytes(inp["bytes"])))
    for name, seeds in codec_seeds.items():
        for port, data in seeds:
            write("codec_" + name, bytes([port % 256]) + data)
            write("codec_dispatch", name.encode() + b"\0" + bytes([port % 256]) + data)
    write("codec_dispatch", "lpp")

    for js, ex in devrepo_examples():
        data = ex.get("output", {}).get("data")
        if isinstance(data, dict):
            write("mapping", json.dumps(data))
    for p in LORAWAN.glob("*.expected.json"):
        for t in json.loads(p.read_bytes()).get("telemetry", []):
            write("mapping", json.dumps(t["values"]))
    for m in messages:
        msg = json.loads(m)
        for d in dicts(msg):
            for key in ("object", "decoded_payload"):
                if isinstance(d.get(key), dict):
                    write("mapping", json.dumps(d[key]))
    for s in [
        '{"temperatureSensor": {"3": 27.2}, "air": {"temperature": "25 \u2103"}}',
        '{"battery": 3.6, "level": {"value": 2000, "unit": "mm"}, "flags": {"co2": 1}}',
        '{"pm1_0": 3, "pm2_5": 4, "batteryVoltage": "3.1 V", "occupied": true}',
        "soil_temp_c = temperature",
        "pressure_pa = pressure * 0.01",
    ]:
        write("mapping", s)

    for q in [
        "",
        "limit=5&cursor=o10",
        "quantity=co2&bucket=1h&agg=avg,min,max,count&from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z",
        "quantity=people_in&bucket=15m&agg=sum",
        "bbox=7.4,51.5,7.5,51.6",
        "lat=51.5&lon=7.4&radius=1000",
        "lat=51.5&lon=7.4&nearest=10",
        "cursor=1714557600000000.3",
        "from=2024-05-01T12:00:00%2B02:00&to=2024-05-01T13:00:00Z",
        "quantity=temperature,co2&quantity=humidity&bucket=1d",
        "status=silent&dev_eui=A81758FFFE0312A9",
        "status=low_battery&value=1e308&sort=x",
        "name=%27%3B+DROP+TABLE+readings%3B--",
    ]:
        write("api_query", q)

    square = {"type": "Polygon", "coordinates": [[[7.4, 51.5], [7.5, 51.5], [7.5, 51.6], [7.4, 51.6], [7.4, 51.5]]]}
    for body in [
        square,
        {"type": "Feature", "properties": {}, "geometry": square},
        {"type": "MultiPolygon", "coordinates": [square["coordinates"]]},
        {"type": "Point", "coordinates": [7.4, 51.5]},
    ]:
        write("api_polygon_body", json.dumps(body))

    for v in [
        "dataset=parking/2024/05/part.parquet",
        "dataset%3Dparking/..%2Fsecret",
        ".tmp-file.csv",
        "bytes=0-99",
        "bytes=-500",
        "bytes=100-",
        "Bearer sp_abc",
        "bearer   sp_abc def",
        "Basic dXNlcjpwYXNz",
    ]:
        write("api_path_and_headers", v)


if __name__ == "__main__":
    main()
