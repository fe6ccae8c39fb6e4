#!/usr/bin/env python3
"""Open a Stadtpuls open-data export with real readers (pyarrow, DuckDB, pandas, GeoPandas)
and check it against what the Rust end-to-end test expects.

    python check_exports.py ROOT EXPECTED_JSON

ROOT is `opendata.output_dir`; its layout and columns are those documented at the top of
`opendata-export/src/lib.rs`:

    dataset=<name>/date=YYYY-MM-DD/part-0.parquet   (or month=YYYY-MM/…)
    dataset=<name>/date=YYYY-MM-DD/part-0.csv
    dataset=<name>/date=YYYY-MM-DD/part-0.excel.csv (format csv_excel only)
    meta/<name>/manifest.json, meta/<name>/sensors.parquet, meta/<name>/sensors.csv

One line is printed per check (`ok   [dataset] section: what`). The first failure prints
`FAIL [dataset] section: why` and exits 1; a malformed EXPECTED_JSON or bad usage exits 2.

EXPECTED_JSON
-------------

    {
      "time_zone": "Europe/Berlin",          optional: the city time zone; when given, every
                                             row's observed_at must fall on its partition's
                                             local day (date=) or month (month=)
      "forbidden": ["70b3d57ed0000001"],     optional: strings no file may contain (added to
                                             every dataset's own list)
      "datasets": [
        {
          "name": "parking_occupancy",       required
          "kind": "raw",                     required: "raw" | "aggregated"
          "partition_key": "date",           required: "date" | "month"
          "partitions": {"2026-11-27": 6,    required: rows per partition; a partition with
                         "2026-11-28": 4},   0 must have no files; no other partition may exist
          "formats": ["parquet", "csv"],     optional, default ["parquet", "csv"] (+ "csv_excel"
                                             when excel_csv is true)
          "excel_csv": false,                optional, default false (same as "csv_excel" in
                                             formats)
          "columns": [...],                  optional: exact Parquet column order; default
                                             RAW_COLUMNS / AGG_COLUMNS below
          "rows": [                          optional: rows that must exist, with equal values
            {"observed_at": "2026-11-28T10:15:00Z",  key columns required (raw: observed_at,
             "sensor_id": "3f9a…",                   sensor_id, quantity; aggregated:
             "quantity": "occupied",                 observed_at, group_id, quantity, agg);
             "unit": "1", "value": 1.0,              every other column given is compared
             "lon": 7.4593, "lat": 51.5178,          (floats with 1e-9 tolerance, timestamps
             "partition": "2026-11-28"}              as UTC instants); "partition" optional
          ],
          "bbox": [7.4, 51.5, 7.5, 51.6],    optional: every lon/lat and every file's geo bbox
                                             must lie inside
          "forbidden": ["70b3d57ed0000001"], optional: DevEUIs etc. (checked in every file under
                                             ROOT, lower/upper case, ':'/'-' separated and as
                                             raw bytes/integers for hex strings, and inside
                                             decompressed Parquet values and metadata)
          "suppressed_groups": ["schule"],   optional, aggregated only: group_ids that must not
                                             appear in any data row
          "spatial_order": "pass"            optional: the status geoparquet-validator's
                                             /conf/distribution/spatial-order must give every
                                             Parquet file of the dataset (it gives a verdict
                                             from five row groups on); by default it must only
                                             not fail
        }
      ]
    }

Manifest (meta/<name>/manifest.json), as the Rust side writes it:

    {"dataset": "<name>",
     "files":   [{"format": "parquet"|"csv"|"csv_excel", "partition": "2026-11-28",
                  "path": "dataset=<name>/date=2026-11-28/part-0.parquet",
                  "rows": 4, "bytes": 3037, "sha256": "<64 lower-case hex>",
                  "modified": "<RFC 3339>"}, …],
     "sensors": [{"format": "parquet"|"csv", "path": "meta/<name>/sensors.parquet",
                  "rows": 3, "bytes": …, "sha256": …, "modified": …}, …]}

`files` must list exactly the data files under dataset=<name>/, `sensors` exactly the files
in meta/<name>/ other than manifest.json; rows, bytes and sha256 must match the files.

Row order (documented in `opendata-export/src/lib.rs`): sensors (raw) or groups (aggregated)
in the order of `hilbert_index(lon, lat)` of their position (a Hilbert curve of order 24 over
the WGS84 range, below), ties by id; each one's rows are one contiguous run, sorted by
quantity, observed_at (aggregated: quantity, agg, observed_at). No Parquet sorting_columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
import numbers
import os
import re
import struct
import sys
import traceback
import zoneinfo
from pathlib import Path

RAW_COLUMNS = ["observed_at", "sensor_id", "quantity", "unit", "value", "lon", "lat", "geometry",
               "bbox"]
AGG_COLUMNS = ["observed_at", "group_id", "quantity", "unit", "agg", "value", "count", "lon",
               "lat", "geometry", "bbox"]
GEO_COLUMNS = ("geometry", "bbox")  # GeoParquet only, not in CSV
BBOX_FIELDS = ["xmin", "ymin", "xmax", "ymax"]
# The GeoParquet 1.1 bbox covering every file declares.
COVERING = {"bbox": {f: ["bbox", f] for f in BBOX_FIELDS}}
RAW_KEY = ["sensor_id", "quantity", "observed_at"]  # a row's identity; within a sensor its order
AGG_KEY = ["group_id", "quantity", "agg", "observed_at"]
HILBERT_ORDER = 24
STRING_COLUMNS = {"sensor_id", "group_id", "quantity", "unit", "agg"}
FORMAT_FILE = {"parquet": "part-0.parquet", "csv": "part-0.csv", "csv_excel": "part-0.excel.csv"}
TOL = 1e-9
BOM = b"\xef\xbb\xbf"
CSV_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class CheckFailed(Exception):
    pass


class BadExpectation(Exception):
    pass


class Checks:
    """Prints `ok` lines; `fail` raises."""

    def __init__(self) -> None:
        self.count = 0
        self.ds = "*"
        self.section = ""

    def at(self, ds: str, section: str) -> "Checks":
        self.ds, self.section = ds, section
        return self

    def ok(self, msg: str) -> None:
        self.count += 1
        print(f"ok   [{self.ds}] {self.section}: {msg}", flush=True)

    def skip(self, msg: str) -> None:
        print(f"skip [{self.ds}] {self.section}: {msg}", flush=True)

    def fail(self, msg: str) -> None:
        raise CheckFailed(f"[{self.ds}] {self.section}: {msg}")

    def check(self, cond: bool, ok_msg: str, fail_msg: str) -> None:
        if not cond:
            self.fail(fail_msg)
        self.ok(ok_msg)


# ---------------------------------------------------------------------------------------------
# helpers


def parse_instant(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
    if t.tzinfo is None:
        raise ValueError(f"timestamp {s!r} has no offset")
    return t.astimezone(dt.timezone.utc)


def to_us(x) -> int:
    """Microseconds since the epoch of a tz-aware datetime / pandas Timestamp / ISO string."""
    import pandas as pd

    if isinstance(x, str):
        x = parse_instant(x)
    if isinstance(x, pd.Timestamp):
        return int(x.value // 1000)
    if isinstance(x, dt.datetime):
        if x.tzinfo is None:
            x = x.replace(tzinfo=dt.timezone.utc)
        return (x - EPOCH) // dt.timedelta(microseconds=1)
    raise TypeError(f"not a timestamp: {x!r}")


def fmt_us(us: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def close(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=TOL, abs_tol=TOL)
    except (TypeError, ValueError):
        return False


def same_value(col: str, exp, act) -> bool:
    if col == "observed_at":
        return to_us(exp) == to_us(act)
    if isinstance(exp, bool) or isinstance(act, bool):
        return exp == act
    if col == "count":
        return isinstance(act, numbers.Integral) and int(act) == int(exp)
    if isinstance(exp, float) or col in ("value", "lon", "lat"):
        return close(exp, act)
    if isinstance(exp, int):
        return act is not None and int(act) == exp
    return str(exp) == str(act)


def row_diff(exp: dict, act: dict) -> list[str]:
    out = []
    for col, ev in exp.items():
        if col == "partition":
            continue
        if col not in act:
            out.append(f"{col}: missing (expected {ev!r})")
        elif not same_value(col, ev, act[col]):
            av = act[col]
            if col == "observed_at":
                av = fmt_us(to_us(av))
            out.append(f"{col}: expected {ev!r}, got {av!r}")
    return out


def hilbert_index(lon: float, lat: float) -> int:
    """The distance along a Hilbert curve of order 24 over the WGS84 range (lon -180..180 and
    lat -90..90 in 2^24 cells each), as the store's SQL function `hilbert_index` (migration
    0006) computes it: the key of the files' spatial order. Written here independently, from
    the textbook xy2d."""
    n = 1 << HILBERT_ORDER
    x = min(max(math.floor((lon + 180) / 360 * n), 0), n - 1)
    y = min(max(math.floor((lat + 90) / 180 * n), 0), n - 1)
    d = 0
    s = n // 2
    while s > 0:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = n - 1 - x, n - 1 - y
            x, y = y, x
        s //= 2
    return d


def check_spatial_order(c: Checks, rel: str, ds: Dataset, rows: list[dict]) -> None:
    """Rows in the documented spatial order: one contiguous run per sensor (group), the runs by
    (hilbert_index(lon, lat), id), each run in (quantity, [agg,] observed_at) order."""
    idc = ds.sort_key[0]
    runs: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, r in enumerate(rows):
        if i > 0 and rows[i - 1][idc] == r[idc]:
            prev, cur = ds.key_of(rows[i - 1]), ds.key_of(r)
            if prev > cur:
                c.fail(f"{rel}: rows {i - 1} and {i} of {idc} {r[idc]} are not in "
                       f"{'/'.join(ds.sort_key[1:])} order")
            continue
        if r[idc] in seen:
            c.fail(f"{rel}: row {i}: {idc} {r[idc]} appears in two separate runs")
        seen.add(r[idc])
        runs.append((hilbert_index(r["lon"], r["lat"]), str(r[idc])))
    for i in range(1, len(runs)):
        if runs[i - 1] > runs[i]:
            c.fail(f"{rel}: {idc} {runs[i - 1][1]} (Hilbert index {runs[i - 1][0]}) comes "
                   f"before {runs[i][1]} (Hilbert index {runs[i][0]}): not in spatial order")
    c.ok(f"{rel}: rows in spatial order: {len(runs)} {idc} runs by Hilbert index of their "
         f"position, each by {'/'.join(ds.sort_key[1:])}")


def decode_wkb_point(b: bytes) -> tuple[float, float]:
    if len(b) != 21:
        raise ValueError(f"WKB of {len(b)} bytes, a 2D point has 21")
    order = "<" if b[0] == 1 else ">" if b[0] == 0 else None
    if order is None:
        raise ValueError(f"bad WKB byte order {b[0]}")
    (gtype,) = struct.unpack(order + "I", b[1:5])
    if gtype != 1:
        raise ValueError(f"WKB geometry type {gtype}, expected 1 (Point)")
    return struct.unpack(order + "dd", b[5:21])


def local_partition(us: int, tz: zoneinfo.ZoneInfo, key: str) -> str:
    t = (EPOCH + dt.timedelta(microseconds=us)).astimezone(tz)
    return t.strftime("%Y-%m-%d") if key == "date" else t.strftime("%Y-%m")


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def csv_records(data: bytes, sep: str) -> int:
    text = data.decode("utf-8-sig")
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text, newline=""), delimiter=sep)) - 1)


# ---------------------------------------------------------------------------------------------
# expectations


class Dataset:
    def __init__(self, d: dict, top: dict) -> None:
        def need(k, typ):
            if k not in d:
                raise BadExpectation(f"dataset {d.get('name', '?')}: '{k}' missing")
            if not isinstance(d[k], typ):
                raise BadExpectation(f"dataset {d.get('name', '?')}: '{k}' has the wrong type")
            return d[k]

        self.name: str = need("name", str)
        self.kind: str = need("kind", str)
        if self.kind not in ("raw", "aggregated"):
            raise BadExpectation(f"{self.name}: kind must be raw or aggregated")
        self.key: str = need("partition_key", str)
        if self.key not in ("date", "month"):
            raise BadExpectation(f"{self.name}: partition_key must be date or month")
        parts = need("partitions", dict)
        if not all(isinstance(v, int) and v >= 0 for v in parts.values()):
            raise BadExpectation(f"{self.name}: partitions must map to row counts >= 0")
        pat = r"^\d{4}-\d{2}-\d{2}$" if self.key == "date" else r"^\d{4}-\d{2}$"
        for p in parts:
            if not re.match(pat, p):
                raise BadExpectation(f"{self.name}: partition {p!r} is not a {self.key} value")
        self.partitions: dict[str, int] = dict(parts)
        self.nonempty = {p: n for p, n in sorted(parts.items()) if n > 0}
        excel = bool(d.get("excel_csv", False))
        fmts = d.get("formats")
        if fmts is None:
            fmts = ["parquet", "csv"] + (["csv_excel"] if excel else [])
        elif ("csv_excel" in fmts) != excel and "excel_csv" in d:
            raise BadExpectation(f"{self.name}: excel_csv and formats disagree")
        if not set(fmts) <= set(FORMAT_FILE) or not fmts:
            raise BadExpectation(f"{self.name}: formats must be a non-empty subset of "
                                 f"{sorted(FORMAT_FILE)}")
        self.formats: list[str] = list(fmts)
        self.columns: list[str] = list(d.get("columns") or
                                       (RAW_COLUMNS if self.kind == "raw" else AGG_COLUMNS))
        self.csv_columns = [c for c in self.columns if c not in GEO_COLUMNS]
        self.sort_key = RAW_KEY if self.kind == "raw" else AGG_KEY
        self.rows: list[dict] = list(d.get("rows", []))
        for r in self.rows:
            missing = [k for k in self.sort_key if k not in r]
            if missing:
                raise BadExpectation(f"{self.name}: expected row {r} lacks key columns {missing}")
            parse_instant(r["observed_at"])
        bbox = d.get("bbox")
        if bbox is not None and (len(bbox) != 4 or bbox[0] > bbox[2] or bbox[1] > bbox[3]):
            raise BadExpectation(f"{self.name}: bbox must be [xmin, ymin, xmax, ymax]")
        self.bbox = bbox
        self.forbidden: list[str] = list(d.get("forbidden", [])) + list(top.get("forbidden", []))
        self.suppressed: list[str] = list(d.get("suppressed_groups", []))
        self.spatial_order = d.get("spatial_order")
        if self.spatial_order not in (None, "pass"):
            raise BadExpectation(f"{self.name}: spatial_order must be \"pass\" when given")
        if self.suppressed and self.kind != "aggregated":
            raise BadExpectation(f"{self.name}: suppressed_groups only for aggregated datasets")
        tz = top.get("time_zone")
        self.tz = zoneinfo.ZoneInfo(tz) if tz else None

    def key_of(self, row: dict) -> tuple:
        return tuple(to_us(row[k]) if k == "observed_at" else str(row[k]) for k in self.sort_key)

    def rel(self, part: str, fmt: str) -> str:
        return f"dataset={self.name}/{self.key}={part}/{FORMAT_FILE[fmt]}"


def find_rows(c: Checks, ds: Dataset, where: str, rows_by_part: dict[str, list[dict]]) -> None:
    """Every expected row must be found exactly once (in its partition, if given)."""
    if not ds.rows:
        return
    index: dict[tuple, list[tuple[str, dict]]] = {}
    for part, rows in rows_by_part.items():
        for r in rows:
            index.setdefault(ds.key_of(r), []).append((part, r))
    for exp in ds.rows:
        hits = index.get(ds.key_of(exp), [])
        key = {k: exp[k] for k in ds.sort_key}
        if len(hits) != 1:
            c.fail(f"expected row {key} found {len(hits)} times in the {where}")
        part, act = hits[0]
        if "partition" in exp and exp["partition"] != part:
            c.fail(f"expected row {key} is in partition {part}, expected {exp['partition']}")
        diff = row_diff(exp, act)
        if diff:
            c.fail(f"row {key} in the {where} differs: " + "; ".join(diff))
    c.ok(f"all {len(ds.rows)} expected rows found with equal values in the {where}")


# ---------------------------------------------------------------------------------------------
# privacy (first: the most serious failure)


def forbidden_variants(s: str) -> list[bytes]:
    out = {s, s.lower(), s.upper()}
    if re.fullmatch(r"[0-9a-fA-F]+", s) and len(s) % 2 == 0 and len(s) >= 8:
        pairs = [s[i:i + 2] for i in range(0, len(s), 2)]
        for sep in (":", "-", " "):
            out |= {sep.join(pairs).lower(), sep.join(pairs).upper()}
    vs = [v.encode("utf-8") for v in out]
    if re.fullmatch(r"[0-9a-fA-F]+", s) and len(s) % 2 == 0 and len(s) >= 8:
        raw = bytes.fromhex(s)
        vs += [raw, raw[::-1]]  # big- and little-endian (LoRaWAN sends DevEUI LSB first)
    return vs


def check_privacy_files(c: Checks, root: Path, forbidden: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    c.at("*", "privacy")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not forbidden:
        c.skip("no forbidden strings given")
        return
    variants = {s: forbidden_variants(s) for s in forbidden}
    for p in files:
        rel = p.relative_to(root).as_posix()
        data = p.read_bytes()
        for s, vs in variants.items():
            for v in vs:
                if v in data:
                    c.fail(f"{rel} contains forbidden {s!r} (as {v!r})")
        if p.suffix == ".parquet":
            # Values are compressed on disk: look at the decoded values and metadata too.
            pf = pq.ParquetFile(p)
            meta = b" ".join(k + b"=" + v for k, v in (pf.metadata.metadata or {}).items())
            names = " ".join(pf.schema_arrow.names).encode()
            table = pf.read()
            for s, vs in variants.items():
                for v in vs:
                    if v in meta or v in names:
                        c.fail(f"{rel} metadata or column names contain forbidden {s!r}")
                as_int = int(s, 16) if re.fullmatch(r"[0-9a-fA-F]{1,16}", s) else None
                for name in table.column_names:
                    col = table.column(name)
                    t = col.type
                    if pa.types.is_dictionary(t):
                        col = col.cast(t.value_type)
                        t = t.value_type
                    if pa.types.is_string(t) or pa.types.is_large_string(t):
                        hit = pc.any(pc.match_substring(col, s, ignore_case=True)).as_py()
                        if hit:
                            c.fail(f"{rel} column {name} contains forbidden {s!r}")
                    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
                        for b in col.to_pylist():
                            if b is not None and any(v in b for v in vs):
                                c.fail(f"{rel} column {name} contains forbidden {s!r}")
                    elif pa.types.is_integer(t) and as_int is not None:
                        vals = set(col.to_pylist())
                        signed = as_int - (1 << 64) if as_int >= 1 << 63 else as_int
                        if as_int in vals or signed in vals:
                            c.fail(f"{rel} column {name} holds forbidden {s!r} as an integer")
    c.ok(f"none of {len(forbidden)} forbidden strings in {len(files)} files under ROOT "
         f"(raw bytes, case/separator variants, decoded Parquet values and metadata)")


# ---------------------------------------------------------------------------------------------
# layout


def check_layout(c: Checks, root: Path, ds: Dataset) -> None:
    c.at(ds.name, "layout")
    base = root / f"dataset={ds.name}"
    if not base.is_dir():
        if ds.nonempty:
            c.fail(f"dataset={ds.name}/ missing")
        c.ok(f"no dataset={ds.name}/ folder and no rows expected")
        return
    actual = sorted(p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file())
    wanted = sorted(ds.rel(p, f) for p in ds.nonempty for f in ds.formats)
    missing = sorted(set(wanted) - set(actual))
    extra = sorted(set(actual) - set(wanted))
    if missing:
        c.fail(f"missing files: {missing}")
    if extra:
        c.fail(f"unexpected files (temporary files, empty partitions, other formats?): {extra}")
    c.ok(f"exactly the {len(wanted)} expected files under dataset={ds.name}/ "
         f"({len(ds.nonempty)} partitions x {'+'.join(ds.formats)})")
    dirs = sorted(p.name for p in base.iterdir())
    bad = [d for d in dirs if not d.startswith(f"{ds.key}=")]
    if bad:
        c.fail(f"entries under dataset={ds.name}/ that are not {ds.key}= partitions: {bad}")


# ---------------------------------------------------------------------------------------------
# pyarrow


def check_pyarrow(c: Checks, root: Path, ds: Dataset) -> dict[str, list[dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    c.at(ds.name, "pyarrow")
    rows_by_part: dict[str, list[dict]] = {}
    for part, n in ds.nonempty.items():
        rel = ds.rel(part, "parquet")
        pf = pq.ParquetFile(root / rel)
        schema = pf.schema_arrow
        if schema.names != ds.columns:
            c.fail(f"{rel}: columns {schema.names}, expected {ds.columns}")
        for f in schema:
            t, name = f.type, f.name
            if name == "observed_at":
                good = t == pa.timestamp("us", tz="UTC")
                want = "timestamp[us, tz=UTC]"
            elif name in STRING_COLUMNS:
                vt = t.value_type if pa.types.is_dictionary(t) else t
                good = pa.types.is_string(vt) or pa.types.is_large_string(vt)
                want = "string (or dictionary<string>)"
            elif name in ("value", "lon", "lat"):
                good, want = t == pa.float64(), "double"
            elif name == "count":
                good, want = t == pa.int64(), "int64"
            elif name == "geometry":
                good = pa.types.is_binary(t) or pa.types.is_large_binary(t)
                want = "binary"
            elif name == "bbox":
                good = (pa.types.is_struct(t) and [t.field(i).name for i in range(t.num_fields)]
                        == BBOX_FIELDS and all(t.field(i).type == pa.float64()
                                               for i in range(t.num_fields)))
                want = "struct<xmin, ymin, xmax, ymax: double>"
            else:
                good, want = False, "(an undocumented column)"
            if not good:
                extra = ""
                if name == "observed_at":
                    pc_ = pf.schema.column(schema.get_field_index(name))
                    extra = (f" (Parquet {pc_.physical_type} {pc_.logical_type}; write the Arrow "
                             f"column as Timestamp(Microsecond, Some(\"UTC\")))")
                c.fail(f"{rel}: column {name} is {t}, expected {want}{extra}")
        c.ok(f"{rel}: columns and types {', '.join(f'{f.name}:{f.type}' for f in schema)}")

        col = pf.schema.column(schema.get_field_index("observed_at"))
        lt = json.loads(col.logical_type.to_json())
        if (col.physical_type != "INT64" or lt.get("Type") != "Timestamp"
                or lt.get("isAdjustedToUTC") is not True or lt.get("timeUnit") != "microseconds"):
            c.fail(f"{rel}: observed_at is {col.physical_type} {col.logical_type}, expected "
                   f"INT64 TIMESTAMP(isAdjustedToUTC=true, MICROS)")
        c.ok(f"{rel}: observed_at is INT64 TIMESTAMP(isAdjustedToUTC=true, MICROS)")

        md = pf.metadata
        if md.num_row_groups == 0:
            c.fail(f"{rel}: no row groups")
        for i in range(md.num_row_groups):
            rg = md.row_group(i)
            for j in range(rg.num_columns):
                cc = rg.column(j)
                if cc.compression != "ZSTD":
                    c.fail(f"{rel}: row group {i} column {cc.path_in_schema} is {cc.compression},"
                           f" expected ZSTD")
                if cc.path_in_schema in STRING_COLUMNS and not cc.has_dictionary_page:
                    c.fail(f"{rel}: row group {i} column {cc.path_in_schema} is not "
                           f"dictionary-encoded")
            if rg.sorting_columns:
                c.fail(f"{rel}: row group {i} declares sorting_columns {rg.sorting_columns}; "
                       f"the rows are in spatial order, which no column order describes")
        c.ok(f"{rel}: ZSTD, string columns dictionary-encoded, no sorting_columns, "
             f"{md.num_row_groups} row group(s)")

        raw_geo = (md.metadata or {}).get(b"geo")
        if raw_geo is None:
            c.fail(f"{rel}: no 'geo' key-value metadata (GeoParquet)")
        geo = json.loads(raw_geo)
        gcol = geo.get("columns", {}).get("geometry", {})
        problems = []
        if geo.get("version") != "1.1.0":
            problems.append(f"version {geo.get('version')!r} != '1.1.0'")
        if geo.get("primary_column") != "geometry":
            problems.append(f"primary_column {geo.get('primary_column')!r} != 'geometry'")
        if gcol.get("encoding") != "WKB":
            problems.append(f"encoding {gcol.get('encoding')!r} != 'WKB'")
        if gcol.get("geometry_types") != ["Point"]:
            problems.append(f"geometry_types {gcol.get('geometry_types')!r} != ['Point']")
        if "crs" in gcol and not crs_is_wgs84(gcol["crs"]):
            problems.append(f"crs {gcol['crs']!r} is neither absent nor OGC:CRS84/EPSG:4326")
        if gcol.get("covering") != COVERING:
            problems.append(f"covering {gcol.get('covering')!r} != {COVERING!r}")
        bbox = gcol.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) for v in bbox)):
            problems.append(f"bbox {bbox!r} is not [xmin, ymin, xmax, ymax]")
        if problems:
            c.fail(f"{rel}: geo metadata: " + "; ".join(problems))

        table = pf.read()
        if md.num_rows != n or table.num_rows != n:
            c.fail(f"{rel}: {table.num_rows} rows (metadata {md.num_rows}), expected {n}")
        for name in table.column_names:
            if table.column(name).null_count:
                c.fail(f"{rel}: column {name} has {table.column(name).null_count} nulls")
        rows = table.to_pylist()
        c.ok(f"{rel}: {n} rows, no nulls")

        check_spatial_order(c, rel, ds, rows)

        xmin, ymin, xmax, ymax = bbox
        for i, r in enumerate(rows):
            try:
                x, y = decode_wkb_point(r["geometry"])
            except ValueError as e:
                c.fail(f"{rel}: row {i} geometry: {e}")
            if (x, y) != (r["lon"], r["lat"]):
                c.fail(f"{rel}: row {i} geometry POINT({x} {y}) != lon/lat ({r['lon']}, "
                       f"{r['lat']})")
            if not (xmin <= x <= xmax and ymin <= y <= ymax):
                c.fail(f"{rel}: row {i} point ({x}, {y}) outside the geo bbox {bbox}")
            if r["bbox"] != {"xmin": x, "ymin": y, "xmax": x, "ymax": y}:
                c.fail(f"{rel}: row {i} bbox {r['bbox']} is not the box of POINT({x} {y})")
            if ds.bbox and not (ds.bbox[0] <= x <= ds.bbox[2] and ds.bbox[1] <= y <= ds.bbox[3]):
                c.fail(f"{rel}: row {i} point ({x}, {y}) outside the expected bbox {ds.bbox}")
        if ds.bbox and not (ds.bbox[0] <= xmin and ymin >= ds.bbox[1] and xmax <= ds.bbox[2]
                            and ymax <= ds.bbox[3]):
            c.fail(f"{rel}: geo bbox {bbox} is not inside the expected bbox {ds.bbox}")
        c.ok(f"{rel}: geo metadata 1.1.0/geometry/WKB/[Point] with the bbox covering, bbox "
             f"{bbox} contains all {n} points, WKB points and bbox columns equal lon/lat")
        check_bbox_statistics(c, rel, root / rel, rows)
        check_validator(c, root / rel, ds.spatial_order)

        if ds.tz is not None:
            for r in rows:
                lp = local_partition(to_us(r["observed_at"]), ds.tz, ds.key)
                if lp != part:
                    c.fail(f"{rel}: observed_at {fmt_us(to_us(r['observed_at']))} is in "
                           f"{ds.key} {lp} ({ds.tz.key}), not {part}")
            c.ok(f"{rel}: every observed_at falls in {ds.key} {part} ({ds.tz.key})")
        rows_by_part[part] = rows
    find_rows(c, ds, "Parquet files", rows_by_part)
    return rows_by_part


def check_bbox_statistics(c: Checks, rel: str, path: Path, rows: list[dict]) -> None:
    """Every row group carries min/max statistics of the bbox leaf columns, and they are the
    extent of its rows (what lets a reader skip row groups by area). Read with DuckDB: pyarrow
    26 ignores DOUBLE statistics written under the IEEE 754 total column order (parquet-rs
    60 writes that order for floating-point columns)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    got = con.execute("SELECT row_group_id, row_group_num_rows, path_in_schema, "
                      "stats_min_value, stats_max_value FROM parquet_metadata(?) "
                      "ORDER BY row_group_id, column_id", [str(path)]).fetchall()
    groups: dict[int, tuple[int, dict[str, tuple]]] = {}
    for rg, nrows, col, lo, hi in got:
        groups.setdefault(rg, (nrows, {}))[1][col.replace(", ", ".")] = (lo, hi)
    start = 0
    for i in sorted(groups):
        nrows, leaves = groups[i]
        part = rows[start:start + nrows]
        start += nrows
        for f in BBOX_FIELDS:
            lo, hi = leaves.get(f"bbox.{f}", (None, None))
            if lo is None or hi is None:
                c.fail(f"{rel}: row group {i} column bbox.{f} has no min/max statistics")
            vals = [r["bbox"][f] for r in part]
            if (float(lo), float(hi)) != (min(vals), max(vals)):
                c.fail(f"{rel}: row group {i} bbox.{f} statistics [{lo}, {hi}], its rows span "
                       f"[{min(vals)}, {max(vals)}]")
    c.ok(f"{rel}: min/max statistics of bbox.xmin/ymin/xmax/ymax in all {len(groups)} row "
         f"group(s) equal their rows' extent")


def check_validator(c: Checks, path: Path, spatial_order: str | None = None) -> None:
    """geoparquet-validator: no test of any class (core, covering, distribution) may fail;
    with `spatial_order`, /conf/distribution/spatial-order must have that status."""
    import geoparquet_validator as gpv

    report = gpv.check(str(path))
    failed = [o for o in report["outcomes"] if o["status"] == "fail"]
    if failed:
        c.fail(f"{path.name}: geoparquet-validator {gpv.__version__}: "
               + "; ".join(f"{o['id']}: {o['message']}" for o in failed))
    passed = sum(o["status"] == "pass" for o in report["outcomes"])
    order = next((o for o in report["outcomes"] if o["id"].endswith("/spatial-order")), None)
    if spatial_order is not None and (order is None or order["status"] != spatial_order):
        got = f"{order['status']}: {order['message']}" if order else "no such test"
        c.fail(f"{path.name}: geoparquet-validator {gpv.__version__}: spatial-order {got}, "
               f"expected {spatial_order}")
    note = f"; spatial-order {order['status']}: {order['message']}" if order else ""
    c.ok(f"{path.name}: geoparquet-validator {gpv.__version__}: {passed} tests pass, none "
         f"fails (core, covering, distribution){note}")


def crs_is_wgs84(crs) -> bool:
    if not isinstance(crs, dict):
        return False
    ident = crs.get("id") or {}
    return (ident.get("authority"), str(ident.get("code"))) in (("OGC", "CRS84"),
                                                                 ("EPSG", "4326"))


# ---------------------------------------------------------------------------------------------
# DuckDB


def check_duckdb(c: Checks, root: Path, ds: Dataset) -> None:
    import duckdb

    c.at(ds.name, "duckdb")
    # No network here: never let DuckDB try to fetch an extension.
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    glob = (root / f"dataset={ds.name}" / "*" / "*.parquet").as_posix()
    src = f"read_parquet('{glob.replace(chr(39), chr(39) * 2)}', hive_partitioning=true)"

    files = sorted(r[0] for r in con.execute("SELECT file FROM glob(?)", [glob]).fetchall())
    wanted = sorted((root / ds.rel(p, "parquet")).as_posix() for p in ds.nonempty)
    if [Path(f).as_posix() for f in files] != wanted:
        c.fail(f"glob {glob} sees {files}, expected {wanted}")
    if any("/meta/" in f or f.endswith("sensors.parquet") for f in files):
        c.fail(f"glob {glob} picks up metadata files: {files}")
    sensors = root / "meta" / ds.name / "sensors.parquet"
    c.ok(f"glob dataset={ds.name}/*/*.parquet sees exactly the {len(files)} partition files "
         f"(not meta/{ds.name}/sensors.parquet{'' if sensors.exists() else ', which is absent'})")

    desc = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    if ds.key not in desc:
        c.fail(f"partition column {ds.key} missing; columns {list(desc)}")
    for col in ds.columns:
        if col not in desc:
            c.fail(f"column {col} missing; columns {list(desc)}")
    want_types = {"observed_at": ["TIMESTAMP WITH TIME ZONE"], "value": ["DOUBLE"],
                  "lon": ["DOUBLE"], "lat": ["DOUBLE"], "count": ["BIGINT"]}
    for col, types in want_types.items():
        if col in ds.columns and desc[col] not in types:
            c.fail(f"column {col} is {desc[col]}, expected {types[0]}")
    gtype = desc.get("geometry", "")
    if not (gtype.startswith("GEOMETRY") or gtype == "BLOB"):
        c.fail(f"geometry is {gtype}, expected GEOMETRY or BLOB")
    c.ok(f"columns {', '.join(f'{k}:{v}' for k, v in desc.items())}")

    total = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    want_total = sum(ds.nonempty.values())
    if total != want_total:
        c.fail(f"{total} rows in all, expected {want_total}")
    per = dict(con.execute(f"SELECT CAST({ds.key} AS VARCHAR), count(*) FROM {src} "
                           f"GROUP BY 1 ORDER BY 1").fetchall())
    if per != ds.nonempty:
        c.fail(f"rows per {ds.key} {per}, expected {ds.nonempty}")
    c.ok(f"{total} rows in all; per {ds.key}: {per}")

    # The bbox covering as a filter: the lower left quarter of the extent by bbox struct fields
    # selects the same rows as by lon/lat.
    x0, y0, x1, y1 = con.execute(f"SELECT min(lon), min(lat), max(lon), max(lat) "
                                 f"FROM {src}").fetchone()
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    by_bbox = con.execute(f"SELECT count(*) FROM {src} WHERE bbox.xmin <= ? AND bbox.ymin <= ? "
                          f"AND bbox.xmax >= ? AND bbox.ymax >= ?", [xm, ym, x0, y0]).fetchone()[0]
    by_pos = con.execute(f"SELECT count(*) FROM {src} WHERE lon <= ? AND lat <= ? "
                         f"AND lon >= ? AND lat >= ?", [xm, ym, x0, y0]).fetchone()[0]
    if by_bbox != by_pos or by_bbox == 0:
        c.fail(f"a window filter by bbox.* selects {by_bbox} rows, by lon/lat {by_pos}")
    c.ok(f"filter on bbox.xmin/ymin/xmax/ymax selects the same {by_bbox} rows as lon/lat")

    cols = [c_ for c_ in ds.columns if c_ not in ("geometry", "bbox", "observed_at")]
    sel = ", ".join(["epoch_us(observed_at) AS observed_at"] + [f'"{x}"' for x in cols]
                    + [f"CAST({ds.key} AS VARCHAR) AS __part"])
    cur = con.execute(f"SELECT {sel} FROM {src}")
    names = [d[0] for d in cur.description]
    by_part: dict[str, list[dict]] = {}
    for tup in cur.fetchall():
        r = dict(zip(names, tup))
        r["observed_at"] = EPOCH + dt.timedelta(microseconds=r["observed_at"])
        by_part.setdefault(r.pop("__part"), []).append(r)
    find_rows(c, ds, "DuckDB hive read", by_part)

    if gtype == "BLOB":
        pts = con.execute(f"SELECT geometry, lon, lat FROM {src}").fetchall()
        for g, lon, lat in pts:
            if decode_wkb_point(bytes(g)) != (lon, lat):
                c.fail(f"geometry {bytes(g).hex()} != POINT({lon} {lat})")
        c.ok("geometry read as BLOB; WKB points equal lon/lat")
        return
    try:
        pts = con.execute(f"SELECT ST_AsText(geometry), lon, lat FROM {src}").fetchall()
    except duckdb.Error as e:
        c.skip(f"geometry is {gtype} but ST_AsText is unavailable offline "
               f"({str(e).splitlines()[0]})")
        return
    for wkt, lon, lat in pts:
        m = re.fullmatch(r"POINT \((\S+) (\S+)\)", wkt or "")
        if not m or not (close(m.group(1), lon) and close(m.group(2), lat)):
            c.fail(f"ST_AsText(geometry) = {wkt!r}, expected POINT ({lon} {lat})")
    c.ok(f"geometry is {gtype}; ST_AsText gives POINT (lon lat) for all {len(pts)} rows")


# ---------------------------------------------------------------------------------------------
# pandas


def check_csv_bytes(c: Checks, rel: str, data: bytes, sep: str, excel: bool,
                    header: list[str]) -> None:
    if excel:
        if not data.startswith(BOM):
            c.fail(f"{rel}: does not start with a UTF-8 BOM")
        body = data[len(BOM):]
    else:
        if data.startswith(BOM):
            c.fail(f"{rel}: starts with a BOM (the primary CSV must not have one)")
        body = data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        c.fail(f"{rel}: not UTF-8: {e}")
    if text.startswith("\ufeff"):
        c.fail(f"{rel}: has a second BOM")
    n_lf, n_crlf = text.count("\n"), text.count("\r\n")
    if n_lf != n_crlf or text.count("\r") != n_crlf:
        c.fail(f"{rel}: line ends are not all CRLF ({n_crlf} CRLF, {n_lf - n_crlf} bare LF, "
               f"{text.count(chr(13)) - n_crlf} bare CR)")
    first = text.split("\r\n", 1)[0]
    if first != sep.join(header):
        c.fail(f"{rel}: header {first!r}, expected {sep.join(header)!r}")
    c.ok(f"{rel}: UTF-8{' with BOM' if excel else ' without BOM'}, '{sep}' separated, "
         f"CRLF line ends, header {first!r}")


def read_csv_checked(c: Checks, ds: Dataset, root: Path, rel: str, sep: str, excel: bool,
                     n: int):
    import pandas as pd

    path = root / rel
    check_csv_bytes(c, rel, path.read_bytes(), sep, excel, ds.csv_columns)
    strings = {k: str for k in ds.csv_columns if k in STRING_COLUMNS}
    df = pd.read_csv(path, sep=sep, encoding="utf-8-sig" if excel else "utf-8",
                     parse_dates=["observed_at"], dtype=strings, keep_default_na=False,
                     na_values=[""])
    raw = pd.read_csv(path, sep=sep, encoding="utf-8-sig" if excel else "utf-8",
                      dtype=str, keep_default_na=False, usecols=["observed_at"])
    if list(df.columns) != ds.csv_columns:
        c.fail(f"{rel}: columns {list(df.columns)}, expected {ds.csv_columns}")
    t = df["observed_at"].dtype
    if not (isinstance(t, pd.DatetimeTZDtype) and str(t.tz) == "UTC"):
        bad = [s for s in raw["observed_at"] if not CSV_TS.match(s)][:3]
        c.fail(f"{rel}: observed_at read as {t}, expected datetime64[…, UTC]"
               + (f"; e.g. {bad} (timestamps must be RFC 3339 UTC with 'Z')" if bad else ""))
    bad = [s for s in raw["observed_at"] if not CSV_TS.match(s)]
    if bad:
        c.fail(f"{rel}: observed_at values not like 2026-11-28T10:15:00Z: {bad[:3]}")
    if len(df) != n:
        c.fail(f"{rel}: {len(df)} rows, expected {n}")
    if df.isna().any().any():
        c.fail(f"{rel}: empty cells in columns {list(df.columns[df.isna().any()])}")
    # value/lon/lat may come back as int64 when every value in a file is integral (Rust's
    # Display prints 1.0 as "1"); they must be numeric, never text (decimal comma etc.).
    for col in ("value", "lon", "lat", "count"):
        t_ = df[col].dtype if col in df.columns else None
        if t_ is not None and (not pd.api.types.is_numeric_dtype(t_)
                               or pd.api.types.is_bool_dtype(t_)
                               or (col == "count" and str(t_) != "int64")):
            c.fail(f"{rel}: column {col} read as {t_}, expected "
                   f"{'int64' if col == 'count' else 'a number'} ('.' decimals, no thousands "
                   f"separators)")
    c.ok(f"{rel}: pandas reads {n} rows, observed_at {t}, columns = Parquet columns minus "
         f"geometry")
    return df


def same_rows(c: Checks, rel: str, ds: Dataset, got: list[dict], want: list[dict],
              what: str) -> None:
    if len(got) != len(want):
        c.fail(f"{rel}: {len(got)} rows, {what} has {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        diff = row_diff({k: w[k] for k in ds.csv_columns}, g)
        if diff:
            c.fail(f"{rel}: row {i} differs from {what}: " + "; ".join(diff))
    c.ok(f"{rel}: same rows in the same order as {what}")


def check_pandas(c: Checks, root: Path, ds: Dataset,
                 parquet_rows: dict[str, list[dict]]) -> None:
    c.at(ds.name, "pandas")
    if "csv" not in ds.formats and "csv_excel" not in ds.formats:
        c.skip("no CSV formats")
        return
    by_part: dict[str, list[dict]] = {}
    for part, n in ds.nonempty.items():
        main = None
        if "csv" in ds.formats:
            rel = ds.rel(part, "csv")
            main = read_csv_checked(c, ds, root, rel, ",", False, n).to_dict("records")
            if part in parquet_rows:
                same_rows(c, rel, ds, main, parquet_rows[part], "the Parquet file")
            by_part[part] = main
        if "csv_excel" in ds.formats:
            rel = ds.rel(part, "csv_excel")
            ex = read_csv_checked(c, ds, root, rel, ";", True, n).to_dict("records")
            if main is not None:
                same_rows(c, rel, ds, ex, main, "part-0.csv")
            elif part in parquet_rows:
                same_rows(c, rel, ds, ex, parquet_rows[part], "the Parquet file")
            by_part.setdefault(part, ex)
    find_rows(c, ds, "CSV files", by_part)


# ---------------------------------------------------------------------------------------------
# GeoPandas


def check_geopandas(c: Checks, root: Path, ds: Dataset) -> None:
    import geopandas as gpd
    import pyproj

    c.at(ds.name, "geopandas")
    wgs84 = pyproj.CRS("EPSG:4326")
    for part in ds.nonempty:
        rel = ds.rel(part, "parquet")
        gdf = gpd.read_parquet(root / rel)
        if not isinstance(gdf, gpd.GeoDataFrame):
            c.fail(f"{rel}: read_parquet gave {type(gdf).__name__}")
        if gdf.geometry.name != "geometry":
            c.fail(f"{rel}: active geometry column {gdf.geometry.name!r}")
        types = sorted(set(gdf.geom_type))
        if types != ["Point"]:
            c.fail(f"{rel}: geometry types {types}, expected ['Point']")
        if gdf.crs is None or not gdf.crs.equals(wgs84, ignore_axis_order=True):
            c.fail(f"{rel}: CRS {gdf.crs}, expected OGC:CRS84 / EPSG:4326")
        if not ((gdf.geometry.x == gdf["lon"]).all() and (gdf.geometry.y == gdf["lat"]).all()):
            i = int((~((gdf.geometry.x == gdf["lon"]) & (gdf.geometry.y == gdf["lat"]))).argmax())
            c.fail(f"{rel}: row {i} POINT({gdf.geometry.x.iloc[i]} {gdf.geometry.y.iloc[i]}) "
                   f"!= lon/lat ({gdf['lon'].iloc[i]}, {gdf['lat'].iloc[i]})")
        c.ok(f"{rel}: GeoDataFrame of {len(gdf)} Points, x=lon y=lat, CRS {gdf.crs.to_string()}")
        # read_parquet(bbox=…) filters by the covering column.
        x0, y0, x1, y1 = gdf.total_bounds
        window = (x0, y0, (x0 + x1) / 2, (y0 + y1) / 2)
        part_gdf = gpd.read_parquet(root / rel, bbox=window)
        inside = gdf[(gdf["lon"] <= window[2]) & (gdf["lat"] <= window[3])]
        if len(part_gdf) != len(inside) or len(inside) == 0:
            c.fail(f"{rel}: read_parquet(bbox={window}) gave {len(part_gdf)} rows, "
                   f"{len(inside)} lie in the window")
        c.ok(f"{rel}: read_parquet(bbox=lower left quarter) gives the {len(inside)} rows in it")


# ---------------------------------------------------------------------------------------------
# suppressed groups


def check_suppressed(c: Checks, root: Path, ds: Dataset) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    c.at(ds.name, "privacy")
    if not ds.suppressed:
        return
    bad = set(ds.suppressed)
    for part in ds.nonempty:
        for fmt in ds.formats:
            rel = ds.rel(part, fmt)
            if fmt == "parquet":
                groups = set(pq.read_table(root / rel, columns=["group_id"])
                             .column("group_id").to_pylist())
            else:
                groups = set(pd.read_csv(root / rel, sep=";" if fmt == "csv_excel" else ",",
                                         encoding="utf-8-sig", dtype=str,
                                         usecols=["group_id"])["group_id"])
            hit = sorted(bad & {str(g) for g in groups})
            if hit:
                c.fail(f"{rel}: rows of suppressed groups {hit}")
    c.ok(f"no data row of the suppressed groups {sorted(bad)}")


# ---------------------------------------------------------------------------------------------
# manifest


def check_manifest(c: Checks, root: Path, ds: Dataset) -> None:
    import pyarrow.parquet as pq

    c.at(ds.name, "manifest")
    mpath = root / "meta" / ds.name / "manifest.json"
    if not mpath.is_file():
        c.fail(f"meta/{ds.name}/manifest.json missing")
    try:
        m = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        c.fail(f"manifest.json is not UTF-8 JSON: {e}")
    if not isinstance(m, dict) or m.get("dataset") != ds.name:
        c.fail(f"manifest 'dataset' is {m.get('dataset') if isinstance(m, dict) else m!r}, "
               f"expected {ds.name!r}")
    for k in ("files", "sensors"):
        if not isinstance(m.get(k), list):
            c.fail(f"manifest '{k}' missing or not a list")

    def verify(entry: dict, where: str, data_file: bool) -> str:
        need = ["format", "path", "rows", "bytes", "sha256", "modified"]
        if data_file:
            need.insert(1, "partition")
        missing = [k for k in need if k not in entry]
        if missing:
            c.fail(f"{where} entry {entry} lacks {missing}")
        rel = entry["path"]
        if (not isinstance(rel, str) or rel.startswith("/") or "\\" in rel
                or ".." in rel.split("/")):
            c.fail(f"{where} path {rel!r} is not a relative '/' path inside ROOT")
        p = root / rel
        if not p.is_file():
            c.fail(f"{where} lists {rel}, which does not exist")
        fmt = entry["format"]
        suffix_fmt = ("csv_excel" if rel.endswith(".excel.csv") else "csv"
                      if rel.endswith(".csv") else "parquet" if rel.endswith(".parquet") else None)
        if fmt != suffix_fmt:
            c.fail(f"{where} {rel}: format {fmt!r}, the file name says {suffix_fmt!r}")
        if data_file:
            want_part = rel.split("/")[1].split("=", 1)[1]
            if entry["partition"] != want_part:
                c.fail(f"{where} {rel}: partition {entry['partition']!r}, expected {want_part!r}")
        data = p.read_bytes()
        if fmt == "parquet":
            rows = pq.ParquetFile(p).metadata.num_rows
        else:
            rows = csv_records(data, ";" if fmt == "csv_excel" else ",")
        if entry["rows"] != rows:
            c.fail(f"{where} {rel}: rows {entry['rows']}, the file has {rows}")
        if entry["bytes"] != len(data) or entry["bytes"] != os.path.getsize(p):
            c.fail(f"{where} {rel}: bytes {entry['bytes']}, the file has {len(data)}")
        sha = hashlib.sha256(data).hexdigest()
        if entry["sha256"] != sha:
            c.fail(f"{where} {rel}: sha256 {entry['sha256']}, the file's is {sha}"
                   + (" (must be lower-case hex)" if str(entry["sha256"]).lower() == sha else ""))
        if not (isinstance(entry["modified"], str) and RFC3339.match(entry["modified"])):
            c.fail(f"{where} {rel}: modified {entry['modified']!r} is not RFC 3339")
        return rel

    listed = [verify(e, "files", True) for e in m["files"]]
    wanted = sorted(ds.rel(p, f) for p in ds.nonempty for f in ds.formats)
    if sorted(listed) != wanted:
        c.fail(f"manifest files {sorted(listed)}, the data files are {wanted}")
    c.ok(f"'files' lists all {len(listed)} data files; format, partition, rows, bytes, sha256 "
         f"match, modified is RFC 3339")

    meta_dir = root / "meta" / ds.name
    meta_files = sorted(p.relative_to(root).as_posix() for p in meta_dir.rglob("*")
                        if p.is_file() and p.name != "manifest.json")
    slisted = [verify(e, "sensors", False) for e in m["sensors"]]
    if sorted(slisted) != meta_files:
        c.fail(f"manifest sensors {sorted(slisted)}, meta/{ds.name}/ holds {meta_files}")
    for rel in slisted:
        if rel.endswith(".parquet"):
            md = pq.ParquetFile(root / rel).metadata
            if b"geo" not in (md.metadata or {}):
                c.fail(f"{rel}: no 'geo' metadata (the sensor table carries geometry)")
            check_validator(c, root / rel)
    c.ok(f"'sensors' lists {slisted}; rows, bytes, sha256 match")


# ---------------------------------------------------------------------------------------------


def run(root: Path, expected_path: Path) -> int:
    try:
        top = json.loads(expected_path.read_text(encoding="utf-8"))
        if not isinstance(top.get("datasets"), list) or not top["datasets"]:
            raise BadExpectation("'datasets' must be a non-empty list")
        datasets = [Dataset(d, top) for d in top["datasets"]]
    except (OSError, ValueError, BadExpectation, zoneinfo.ZoneInfoNotFoundError) as e:
        print(f"check_exports: bad EXPECTED_JSON {expected_path}: {e}", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"check_exports: ROOT {root} is not a directory", file=sys.stderr)
        return 2

    c = Checks()
    try:
        forbidden = sorted({s for ds in datasets for s in ds.forbidden})
        check_privacy_files(c, root, forbidden)
        for ds in datasets:
            check_layout(c, root, ds)
            if ds.nonempty:
                parquet_rows = {}
                if "parquet" in ds.formats:
                    parquet_rows = check_pyarrow(c, root, ds)
                    check_duckdb(c, root, ds)
                check_pandas(c, root, ds, parquet_rows)
                if "parquet" in ds.formats:
                    check_geopandas(c, root, ds)
                check_suppressed(c, root, ds)
            elif ds.rows:
                c.at(ds.name, "layout").fail(f"{len(ds.rows)} expected rows but no partition "
                                             f"with rows")
            check_manifest(c, root, ds)
    except CheckFailed as e:
        print(f"FAIL {e}", flush=True)
        print(f"check_exports: FAILED after {c.count} passing checks: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a reader blew up: that is a failure of the export too
        print(f"FAIL [{c.ds}] {c.section}: {type(e).__name__}: {e}", flush=True)
        traceback.print_exc()
        return 1
    print(f"check_exports: all {c.count} checks of {len(datasets)} datasets passed")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__ if len(argv) > 1 else "usage: check_exports.py ROOT EXPECTED_JSON",
              file=sys.stderr)
        return 2
    return run(Path(argv[1]), Path(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
