"""The naive baseline of the ingest benchmark: what a city's first MQTT-to-database script
usually looks like. paho-mqtt subscribes at QoS 1 (persistent session; paho acknowledges each
message when its callback returns, i.e. on receipt, not after the database commit), every
ChirpStack v4 `up` event's `object` becomes rows, and every 1000 messages the rows are written
with one COPY and committed. A partial batch is flushed after 0.5 s without messages.

It does less than Stadtpuls: no deduplication, no raw uplink, no device registry, no
validation beyond json.loads, no latest values, and a table without indexes.

Prints `ready` once subscribed, then `committed <messages> <unix time>` after every commit.
"""

import argparse
import json
import sys
import time

import paho.mqtt.client as mqtt
import psycopg

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--dsn", required=True)
p.add_argument("--client-id", default="naive-ingest")
p.add_argument("--topic", default="application/+/device/+/event/up")
p.add_argument("--batch", type=int, default=1000)
args = p.parse_args()

db = psycopg.connect(args.dsn)
db.execute(
    "CREATE TABLE IF NOT EXISTS naive_readings "
    "(time timestamptz NOT NULL, dev_eui text NOT NULL, key text NOT NULL, value double precision)"
)
db.commit()

rows = []
pending = 0
committed = 0
last_message = time.monotonic()


def flush():
    global rows, pending, committed
    if pending == 0:
        return
    with db.cursor() as cur:
        with cur.copy("COPY naive_readings (time, dev_eui, key, value) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    db.commit()
    committed += pending
    rows, pending = [], 0
    print(f"committed {committed} {time.time():.6f}", flush=True)


def on_connect(client, userdata, flags, reason_code, properties):
    client.subscribe(args.topic, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    print("ready", flush=True)


def on_message(client, userdata, msg):
    global pending, last_message
    last_message = time.monotonic()
    try:
        event = json.loads(msg.payload)
        dev = event["deviceInfo"]["devEui"]
        t = event["time"]
        for key, value in (event.get("object") or {}).items():
            if isinstance(value, (int, float)):
                rows.append((t, dev, key, value))
    except (ValueError, KeyError, TypeError) as e:
        print(f"skipped: {e}", file=sys.stderr)
    pending += 1
    if pending >= args.batch:
        flush()


client = mqtt.Client(
    mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id, clean_session=False
)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(args.host, args.port, keepalive=30)
while True:
    rc = client.loop(timeout=0.05)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        # loop() returns at once while disconnected: without this the script spun at 100 % CPU
        # and never stored the rest (bench run of 2026-12-06). The session is persistent, so
        # the broker redelivers what was not acknowledged.
        print(f"loop: {mqtt.error_string(rc)}; reconnecting", file=sys.stderr, flush=True)
        time.sleep(0.2)
        try:
            client.reconnect()
        except OSError as e:
            print(f"reconnect: {e}", file=sys.stderr, flush=True)
        continue
    if pending and time.monotonic() - last_message > 0.5:
        flush()
