"""Does Mosquitto lose a QoS 1 message it acknowledged when it is SIGKILLed, even with
`autosave_on_changes true` / `autosave_interval 1`? No Stadtpuls involved.

A persistent-session subscriber subscribes and goes away, so every message is queued for it in
the broker. A publisher sends numbered QoS 1 messages as fast as the broker acknowledges them;
after `--kill-after` acknowledgements the broker is SIGKILLed and restarted on the same
persistence file. Unacknowledged messages are resent (as a real publisher does). At the end the
subscriber comes back and receives its queue. Every number the broker acknowledged must arrive.

    python bench/python/mosquitto_sigkill_window.py --rounds 10
    python bench/python/mosquitto_sigkill_window.py --rounds 10 --signal TERM    (the control)

Prints one line per round and exits 1 if any acknowledged message never arrived.
"""

import argparse
import getpass
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(conf):
    p = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("broker did not start")


def connected_client(cid, port, clean):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    ok = threading.Event()
    c.on_connect = lambda *a: ok.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    if not ok.wait(10):
        raise RuntimeError(f"{cid} did not connect")
    return c


def one_round(k, n, kill_after, workdir, sig):
    port = free_port()
    d = os.path.join(workdir, f"r{k}")
    os.makedirs(d)
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\npersistence_location {d}/\n"
            "autosave_on_changes true\nautosave_interval 1\n"
            "max_queued_messages 0\nmax_inflight_messages 100\n"
        )
    broker = start_broker(conf)
    wait_port(port)

    # The subscriber's session (clean_session false) exists before anything is published.
    sub = connected_client(f"sub{k}", port, False)
    sub.subscribe("w/#", qos=1)[1]
    time.sleep(0.3)
    sub.disconnect()
    sub.loop_stop()

    acked = set()
    lock = threading.Lock()
    mid_to_i = {}

    def on_publish(_c, _u, mid, _rc, _props):
        with lock:
            i = mid_to_i.pop(mid, None)
            if i is not None:
                acked.add(i)

    def publish_all(todo, kill_at):
        pub = connected_client(f"pub{k}", port, True)
        pub.on_publish = on_publish
        killed = False
        for i in todo:
            if i in acked:
                continue
            while True:
                with lock:
                    if len(mid_to_i) < 100:
                        break
                time.sleep(0.0005)
                if not pub.is_connected():
                    break
            if not pub.is_connected():
                break
            info = pub.publish(f"w/{i}", str(i).encode(), qos=1)
            with lock:
                mid_to_i[info.mid] = i
            if not killed and kill_at is not None and len(acked) >= kill_at:
                broker.send_signal(sig)
                killed = True
                break
        # Wait for outstanding acks (or the connection loss).
        end = time.time() + 20
        while time.time() < end and pub.is_connected():
            with lock:
                if not mid_to_i:
                    break
            time.sleep(0.01)
        pub.disconnect()
        pub.loop_stop()
        with lock:
            mid_to_i.clear()

    publish_all(range(n), kill_after)
    broker.wait()
    acked_at_kill = len(acked)
    broker = start_broker(conf)
    wait_port(port)
    publish_all(range(n), None)  # resend what was not acknowledged

    got = set()
    done = threading.Event()

    def on_message(_c, _u, m):
        got.add(int(m.payload))
        if len(got) >= n:
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub{k}", clean_session=False)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    done.wait(60)
    time.sleep(1)
    sub.disconnect()
    sub.loop_stop()
    broker.send_signal(signal.SIGTERM)
    broker.wait()
    lost = sorted(acked - got)
    print(
        f"round {k}: acked before kill {acked_at_kill}, acked {len(acked)} of {n}, received {len(got)}, "
        f"lost {len(lost)} {lost[:10]}",
        flush=True,
    )
    return len(lost)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--kill-after", type=int, default=1000)
    ap.add_argument(
        "--signal",
        choices=["KILL", "TERM"],
        default="KILL",
        help="TERM is the control: Mosquitto saves on a clean shutdown, so nothing may be lost",
    )
    a = ap.parse_args()
    sig = getattr(signal, "SIG" + a.signal)
    lost = 0
    with tempfile.TemporaryDirectory() as w:
        for k in range(a.rounds):
            lost += one_round(k, a.messages, a.kill_after, w, sig)
    print(f"SIG{a.signal}: total lost {lost} in {a.rounds} rounds")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
