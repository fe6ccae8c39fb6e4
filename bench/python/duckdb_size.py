"""Rewrites a Parquet file with DuckDB (zstd, DuckDB's defaults otherwise) and prints one JSON
line: rows and byte sizes of both files. Same rows, same order, same columns."""

import json
import os
import sys

import duckdb

src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
rows = con.execute(f"SELECT count(*) FROM read_parquet('{src}')").fetchone()[0]
con.execute(f"COPY (SELECT * FROM read_parquet('{src}')) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
print(json.dumps({
    "rows": rows,
    "ours_bytes": os.path.getsize(src),
    "duckdb_bytes": os.path.getsize(dst),
    "duckdb_version": duckdb.__version__,
}))
