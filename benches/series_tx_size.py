"""What a transaction's size costs DuckDB when it stores `series` rows.

Copies the `series` rows of a fleetscope store (first seen first) into fresh
database files, one transaction per N rows for each N given, on one
thread, and prints the CPU seconds and the file's bytes per row for each.
A transaction of at least a row group (122,880 rows) is written compressed
straight into the file; a smaller one goes through the WAL and is
compressed again at a checkpoint (benches/README.md, session 15).

    python benches/series_tx_size.py STORE.duckdb 46080,122880,150000 [ROWS]

Needs the duckdb package of the store's version (scripts/env.sh names it).
"""
import duckdb, os, time, tempfile, sys
src = sys.argv[1]
sizes = [int(x) for x in sys.argv[2].split(',')]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
for size in sizes:
    with tempfile.TemporaryDirectory(dir='/tmp') as d:
        p = os.path.join(d, 'x.duckdb')
        c = duckdb.connect(p)
        c.execute("SET threads=1")
        c.execute(f"ATTACH '{src}' AS s (READ_ONLY)")
        c.execute(f"CREATE TEMP TABLE t AS SELECT row_number() OVER (ORDER BY first_seen, id) AS rn, * FROM s.series ORDER BY rn LIMIT {limit}")
        n = c.execute("SELECT count(*) FROM t").fetchone()[0]
        c.execute("CREATE TABLE series AS SELECT * EXCLUDE (rn) FROM t LIMIT 0")
        c.execute("CHECKPOINT")
        b = os.path.getsize(p)
        t0 = time.process_time(); w0 = time.time()
        for off in range(0, n, size):
            c.execute("BEGIN")
            c.execute(f"INSERT INTO series SELECT * EXCLUDE (rn) FROM t WHERE rn > {off} AND rn <= {off+size}")
            c.execute("COMMIT")
        t1 = time.process_time(); w1 = time.time()
        c.execute("CHECKPOINT")
        t2 = time.process_time()
        print(f"tx={size:7} rows={n} bytes/row={(os.path.getsize(p)-b)/n:.1f} cpu={t1-t0:.2f}s (+final ckpt {t2-t1:.2f}s) wall={w1-w0:.2f}s", flush=True)
        c.close()
