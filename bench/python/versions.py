"""Versions of the Python side of the benchmark, as one JSON line."""

import json
import platform
from importlib.metadata import version

print(json.dumps({
    "python": platform.python_version(),
    "paho-mqtt": version("paho-mqtt"),
    "psycopg": version("psycopg"),
    "duckdb": version("duckdb"),
}))
