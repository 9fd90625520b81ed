#!/usr/bin/env python3
"""Bytes per stored row of fleetscope's tables, and of each column.

    python3 benches/stored_bytes.py [--no-columns] DATA_DIR/fleetscope.duckdb [TABLE...]

Needs the duckdb Python package of the same version as the store
(`pip install duckdb==1.5.6`). Run it on a store no process has open.

A DuckDB file does not shrink when a table is dropped, and its size includes
free blocks, so a table's size is measured by copying it, in its stored row
order, into a fresh file and reading how much the file grew at a checkpoint;
each column is copied alone the same way. Copies are compressed afresh with
the row groups the copy makes, which packs slightly differently from the
store's own (the writer's transactions make their own row groups).
"""

import os
import sys
import tempfile

import duckdb

DEFAULT_TABLES = ["rollup_1m_rows", "rollup_5m_rows", "rollup_1h_rows", "series"]


def sizes(src, table, columns):
    """File growth for the whole table, then for each column alone."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as d:
        path = os.path.join(d, "copy.duckdb")
        con = duckdb.connect(path)
        con.execute("SET threads = 1")
        con.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
        con.execute("CHECKPOINT")
        before = os.path.getsize(path)
        out = {}
        con.execute(f"CREATE TABLE t AS SELECT * FROM s.{table} ORDER BY rowid")
        con.execute("CHECKPOINT")
        out["(all)"] = os.path.getsize(path) - before
        for col in columns:
            before = os.path.getsize(path)
            con.execute(f'CREATE TABLE "c_{col}" AS SELECT "{col}" FROM s.{table} ORDER BY rowid')
            con.execute("CHECKPOINT")
            out[col] = os.path.getsize(path) - before
        con.close()
        return out


def main():
    args = sys.argv[1:]
    per_column = "--no-columns" not in args
    args = [a for a in args if a != "--no-columns"]
    if not args:
        sys.exit(__doc__)
    src = args[0]
    tables = args[1:] or DEFAULT_TABLES
    con = duckdb.connect(src, read_only=True)
    known = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    plan = []
    for table in tables:
        if table not in known:
            continue
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
                [table],
            ).fetchall()
        ]
        plan.append((table, rows, cols if per_column else []))
    con.close()
    for table, rows, cols in plan:
        if rows == 0:
            print(f"{table}: empty")
            continue
        measured = sizes(src, table, cols)
        total = measured.pop("(all)")
        per_col = " ".join(f"{c}={b / rows:.2f}" for c, b in measured.items())
        print(f"{table}: {rows} rows, {total / rows:.2f} B/row" + (f" ({per_col})" if per_col else ""))


if __name__ == "__main__":
    main()
