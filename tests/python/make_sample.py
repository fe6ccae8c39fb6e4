#!/usr/bin/env python3
"""Write a small open-data export in the layout of `opendata-export/src/lib.rs`, plus the
EXPECTED_JSON that `check_exports.py` reads.

Only for self-testing the checker (and as a reference of what the Rust exporter must write):

    python make_sample.py OUT_DIR EXPECTED_JSON [--corrupt KIND]

OUT_DIR gets `dataset=<name>/…` and `meta/<name>/…` for two datasets:

* `parking_occupancy`: raw, day partitions, formats parquet + csv;
* `room_climate_hourly`: aggregated (1h, avg/min/max), month partitions, parquet + csv +
  csv_excel; the group `schule` is suppressed (it has too few rooms), so it is absent.

`--corrupt` writes a broken export (EXPECTED_JSON stays that of the good one), to show that
the checker notices:

* `rows`      one row of parking_occupancy 2026-11-27 is missing (files and manifest agree);
* `deveui`    a DevEUI (upper case) appears as the sensor_id prefix in one CSV file;
* `naive-ts`  observed_at written without time zone (Parquet `timestamp[us]`, i.e.
              isAdjustedToUTC=false, and CSV without `Z`);
* `naive-csv` only the CSV timestamps lack the `Z`;
* `order`     parking_occupancy's rows by sensor_id instead of by position (the order before
              the spatial one).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import os
import struct
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from check_exports import hilbert_index

UTC = dt.timezone.utc

# Three parking sensors: DevEUI (must never be published), random sensor id, position.
PARKING_SENSORS = [
    ("70b3d57ed0000001", "3f9a1c0e5b7d4e2a9c8b1f6d0e3a5c71", 7.4593, 51.5178),
    ("70b3d57ed0000002", "a41e7c92d05b48f3b6e1c9a7d2f08e54", 7.4611, 51.5136),
    ("70b3d57ed0000003", "0c5d8e1f2a3b4c6d7e8f9a0b1c2d3e4f", 7.4652, 51.5149),
]
ROOM_DEVEUIS = ["70b3d57ed00000a1", "70b3d57ed00000a2", "70b3d57ed00000a3"]
GROUPS = {"rathaus": (7.4660, 51.5140)}  # "schule" is suppressed: fewer than 3 rooms.


def ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def wkb_point(lon: float, lat: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, lon, lat)


def parking_rows() -> dict[str, list[dict]]:
    """Rows per day partition (Europe/Berlin days)."""
    p27 = []
    for i, (_, sid, lon, lat) in enumerate(PARKING_SENSORS):
        for t, v in (("2026-11-27T07:00:00Z", 1.0), ("2026-11-27T18:30:00Z", 0.0)):
            p27.append(dict(observed_at=ts(t), sensor_id=sid, quantity="occupied", unit="1",
                            value=v if i != 1 else 1.0 - v, lon=lon, lat=lat))
    p28 = []
    # 23:30Z on the 27th is 00:30 on the 28th in Dortmund: it belongs to date=2026-11-28.
    for t, (_, sid, lon, lat), v in (
        ("2026-11-27T23:30:00Z", PARKING_SENSORS[0], 0.0),
        ("2026-11-28T10:15:00Z", PARKING_SENSORS[0], 1.0),
        ("2026-11-28T10:15:00Z", PARKING_SENSORS[2], 1.0),
        ("2026-11-28T16:45:30Z", PARKING_SENSORS[1], 0.0),
    ):
        p28.append(dict(observed_at=ts(t), sensor_id=sid, quantity="occupied", unit="1",
                        value=v, lon=lon, lat=lat))
    return {"2026-11-27": p27, "2026-11-28": p28}


def climate_rows() -> dict[str, list[dict]]:
    """Rows per month partition."""
    lon, lat = GROUPS["rathaus"]
    out: dict[str, list[dict]] = {"2026-10": [], "2026-11": []}
    # 2026-10-31T23:00Z is 2026-11-01 00:00 in Dortmund (CET): month=2026-11.
    for month, starts in (("2026-10", ["2026-10-31T09:00:00Z", "2026-10-31T10:00:00Z"]),
                          ("2026-11", ["2026-10-31T23:00:00Z", "2026-11-28T10:00:00Z"])):
        for start in starts:
            for quantity, unit, base in (("co2", "ppm", 612.5), ("temperature", "°C", 21.25)):
                for agg, delta, count in (("avg", 0.0, 12), ("min", -10.125, 12),
                                          ("max", 33.0625, 12)):
                    out[month].append(dict(observed_at=ts(start), group_id="rathaus",
                                           quantity=quantity, unit=unit, agg=agg,
                                           value=base + (delta if quantity == "co2" else delta / 10),
                                           count=count, lon=lon, lat=lat))
    return out


RAW_COLUMNS = ["observed_at", "sensor_id", "quantity", "unit", "value", "lon", "lat", "geometry",
               "bbox"]
AGG_COLUMNS = ["observed_at", "group_id", "quantity", "unit", "agg", "value", "count", "lon",
               "lat", "geometry", "bbox"]
BBOX_TYPE = pa.struct([pa.field(f, pa.float64(), nullable=False)
                       for f in ("xmin", "ymin", "xmax", "ymax")])
COVERING = {"bbox": {f: ["bbox", f] for f in ("xmin", "ymin", "xmax", "ymax")}}


def point_box(lon: float, lat: float) -> dict:
    return {"xmin": lon, "ymin": lat, "xmax": lon, "ymax": lat}


def sort_key(kind: str, by_id: bool = False):
    """The files' order: by the Hilbert index of the position (the checker's reference
    implementation), then id, quantity, [agg,] time; `by_id` leaves the position out."""
    def spot(r):
        return 0 if by_id else hilbert_index(r["lon"], r["lat"])
    if kind == "raw":
        return lambda r: (spot(r), r["sensor_id"], r["quantity"], r["observed_at"])
    return lambda r: (spot(r), r["group_id"], r["quantity"], r["agg"], r["observed_at"])


def arrow_table(kind: str, rows: list[dict], naive_ts: bool) -> pa.Table:
    cols = RAW_COLUMNS if kind == "raw" else AGG_COLUMNS
    ts_type = pa.timestamp("us") if naive_ts else pa.timestamp("us", tz="UTC")
    types = {"observed_at": ts_type, "sensor_id": pa.string(), "group_id": pa.string(),
             "quantity": pa.string(), "unit": pa.string(), "agg": pa.string(),
             "value": pa.float64(), "count": pa.int64(), "lon": pa.float64(),
             "lat": pa.float64(), "geometry": pa.binary(), "bbox": BBOX_TYPE}
    data = {}
    for c in cols:
        if c == "geometry":
            data[c] = [wkb_point(r["lon"], r["lat"]) for r in rows]
        elif c == "bbox":
            data[c] = [point_box(r["lon"], r["lat"]) for r in rows]
        elif c == "observed_at" and naive_ts:
            data[c] = [r[c].replace(tzinfo=None) for r in rows]
        else:
            data[c] = [r[c] for r in rows]
    lons = [r["lon"] for r in rows]
    lats = [r["lat"] for r in rows]
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"],
                                    "bbox": [min(lons), min(lats), max(lons), max(lats)],
                                    "covering": COVERING}}}
    schema = pa.schema([pa.field(c, types[c], nullable=False) for c in cols],
                       metadata={b"geo": json.dumps(geo).encode()})
    return pa.Table.from_pydict(data, schema=schema)


def write_parquet(table: pa.Table, path: Path) -> None:
    names = table.schema.names
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(
        table, tmp, compression="zstd", compression_level=9,
        use_dictionary=[c for c in ("sensor_id", "group_id", "quantity", "unit", "agg")
                        if c in names],
    )
    os.replace(tmp, path)


def csv_text(cols: list[str], rows: list[dict], sep: str, naive_ts: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
    cols = [c for c in cols if c not in ("geometry", "bbox")]
    w.writerow(cols)
    for r in rows:
        out = []
        for c in cols:
            v = r[c]
            if c == "observed_at":
                v = v.strftime("%Y-%m-%dT%H:%M:%S") + ("" if naive_ts else "Z")
            elif isinstance(v, float):
                v = repr(v)
            out.append(v)
        w.writerow(out)
    return buf.getvalue()


def file_entry(root: Path, rel: str, fmt: str, rows: int, partition: str | None) -> dict:
    data = (root / rel).read_bytes()
    e = {"format": fmt}
    if partition is not None:
        e["partition"] = partition
    e.update(path=rel, rows=rows, bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
             modified="2026-11-29T02:30:05Z")
    return e


def write_dataset(root: Path, name: str, kind: str, key: str, parts: dict[str, list[dict]],
                  formats: list[str], corrupt: str | None) -> None:
    cols = RAW_COLUMNS if kind == "raw" else AGG_COLUMNS
    naive_pq = corrupt == "naive-ts"
    naive_csv = corrupt in ("naive-ts", "naive-csv")
    files = []
    for part, rows in sorted(parts.items()):
        rows = sorted(rows, key=sort_key(kind, by_id=corrupt == "order" and kind == "raw"))
        d = root / f"dataset={name}" / f"{key}={part}"
        d.mkdir(parents=True, exist_ok=True)
        base = f"dataset={name}/{key}={part}"
        if "parquet" in formats:
            write_parquet(arrow_table(kind, rows, naive_pq), d / "part-0.parquet")
            files.append(file_entry(root, f"{base}/part-0.parquet", "parquet", len(rows), part))
        if "csv" in formats:
            text = csv_text(cols, rows, ",", naive_csv)
            if corrupt == "deveui" and kind == "raw" and part == "2026-11-28":
                sid = PARKING_SENSORS[0][1]
                text = text.replace(sid, PARKING_SENSORS[0][0].upper() + sid[16:])
            (d / "part-0.csv").write_bytes(text.encode("utf-8"))
            files.append(file_entry(root, f"{base}/part-0.csv", "csv", len(rows), part))
        if "csv_excel" in formats:
            text = "\ufeff" + csv_text(cols, rows, ";", naive_csv)
            (d / "part-0.excel.csv").write_bytes(text.encode("utf-8"))
            files.append(file_entry(root, f"{base}/part-0.excel.csv", "csv_excel", len(rows),
                                    part))

    # meta/<name>/sensors.parquet and sensors.csv: one row per sensor or group.
    meta = root / "meta" / name
    meta.mkdir(parents=True, exist_ok=True)
    if kind == "raw":
        ids = [(sid, lon, lat) for _, sid, lon, lat in PARKING_SENSORS]
        id_col = "sensor_id"
    else:
        ids = [(g, lon, lat) for g, (lon, lat) in GROUPS.items()]
        id_col = "group_id"
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"],
                                    "bbox": [min(i[1] for i in ids), min(i[2] for i in ids),
                                             max(i[1] for i in ids), max(i[2] for i in ids)],
                                    "covering": COVERING}}}
    st = pa.table({id_col: [i[0] for i in ids], "lon": [i[1] for i in ids],
                   "lat": [i[2] for i in ids], "geometry": [wkb_point(i[1], i[2]) for i in ids],
                   "bbox": pa.array([point_box(i[1], i[2]) for i in ids], type=BBOX_TYPE)})
    st = st.replace_schema_metadata({b"geo": json.dumps(geo).encode()})
    pq.write_table(st, meta / "sensors.parquet", compression="zstd")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([id_col, "lon", "lat"])
    for i in ids:
        w.writerow([i[0], repr(i[1]), repr(i[2])])
    (meta / "sensors.csv").write_bytes(buf.getvalue().encode())
    sensors = [file_entry(root, f"meta/{name}/sensors.parquet", "parquet", len(ids), None),
               file_entry(root, f"meta/{name}/sensors.csv", "csv", len(ids), None)]
    manifest = {"dataset": name, "files": files, "sensors": sensors}
    (meta / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        out[k] = v.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(v, dt.datetime) else v
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("expected_json", type=Path)
    ap.add_argument("--corrupt", choices=["rows", "deveui", "naive-ts", "naive-csv", "order"])
    a = ap.parse_args()
    root: Path = a.out_dir
    root.mkdir(parents=True, exist_ok=True)

    parking = parking_rows()
    climate = climate_rows()
    expected_parking = {k: len(v) for k, v in parking.items()}
    if a.corrupt == "rows":
        parking["2026-11-27"] = parking["2026-11-27"][:-1]

    write_dataset(root, "parking_occupancy", "raw", "date", parking, ["parquet", "csv"],
                  a.corrupt)
    write_dataset(root, "room_climate_hourly", "aggregated", "month", climate,
                  ["parquet", "csv", "csv_excel"], a.corrupt)

    good_parking = parking_rows()
    expected = {
        "time_zone": "Europe/Berlin",
        "datasets": [
            {"name": "parking_occupancy", "kind": "raw", "partition_key": "date",
             "formats": ["parquet", "csv"], "excel_csv": False,
             "partitions": expected_parking,
             "rows": [jsonable(r) | {"partition": p}
                      for p, rows in good_parking.items() for r in rows],
             "bbox": [7.4, 51.5, 7.5, 51.6],
             "forbidden": [s[0] for s in PARKING_SENSORS]},
            {"name": "room_climate_hourly", "kind": "aggregated", "partition_key": "month",
             "formats": ["parquet", "csv", "csv_excel"], "excel_csv": True,
             "partitions": {k: len(v) for k, v in climate.items()},
             "rows": [jsonable(r) | {"partition": p}
                      for p, rows in climate.items() for r in rows[:4]],
             "bbox": [7.4, 51.5, 7.5, 51.6],
             "suppressed_groups": ["schule"],
             "forbidden": ROOM_DEVEUIS + [s[0] for s in PARKING_SENSORS]},
        ],
    }
    a.expected_json.write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    print(f"sample export written to {root}, expectations to {a.expected_json}"
          + (f" (corrupted: {a.corrupt})" if a.corrupt else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
