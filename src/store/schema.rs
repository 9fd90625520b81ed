//! Versioned schema migrations, applied in order inside one transaction each.

use std::path::Path;

use super::stored_form::restoring_view;
use super::StoreError;

/// Migration 5 for one rollup table: the same rows, named by `sid`.
macro_rules! rollup_by_sid {
    ($table:literal) => {
        concat!(
            "CREATE TABLE ",
            $table,
            "_v5 (sid UINTEGER NOT NULL, ts BIGINT NOT NULL,
                count UINTEGER NOT NULL, sum DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE,
                last DOUBLE, increase DOUBLE);
            INSERT INTO ",
            $table,
            "_v5 SELECT s.sid, r.ts, r.count, r.sum, r.min, r.max,
                r.first, r.last, r.increase
                FROM ",
            $table,
            " r JOIN series s ON s.id = r.series_id ORDER BY r.ts, s.sid;
            DROP TABLE ",
            $table,
            ";
            ALTER TABLE ",
            $table,
            "_v5 RENAME TO ",
            $table,
            ";\n"
        )
    };
}

/// Migration 7 for one rollup table: the same rows, named by the series'
/// metric-major number, in (minute, metric, last value) order, the order
/// the writer appended them in when this migration was written.
macro_rules! rollup_metric_major {
    ($table:literal) => {
        concat!(
            "CREATE TABLE ",
            $table,
            "_rows_v7 (sid UBIGINT NOT NULL, ts BIGINT NOT NULL,
                count UINTEGER NOT NULL, sum DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE,
                last DOUBLE, increase DOUBLE);
            INSERT INTO ",
            $table,
            "_rows_v7 SELECT m.new, r.ts, r.count, r.sum, r.min, r.max, r.first, r.last,
                r.increase FROM ",
            $table,
            "_rows r JOIN sid_v7 m ON m.old = r.sid ORDER BY r.ts, m.new >> 32, r.last;
            DROP VIEW ",
            $table,
            ";
            DROP TABLE ",
            $table,
            "_rows;
            ALTER TABLE ",
            $table,
            "_rows_v7 RENAME TO ",
            $table,
            "_rows;\n",
            restoring_view!($table)
        )
    };
}

/// Migration N (1-based) is `MIGRATIONS[N-1]`. Never edit a released entry;
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: series identity and the three rollup resolutions.
    "CREATE TABLE series (
        id UBIGINT PRIMARY KEY,
        metric VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        cluster VARCHAR,
        job VARCHAR,
        instance VARCHAR,
        namespace VARCHAR,
        pod VARCHAR,
        node VARCHAR,
        container VARCHAR,
        labels VARCHAR NOT NULL,
        first_seen BIGINT NOT NULL
    );
    CREATE TABLE rollup_1m (series_id UBIGINT NOT NULL, ts BIGINT NOT NULL, count UINTEGER NOT NULL,
        sum DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE, last DOUBLE, increase DOUBLE);
    CREATE TABLE rollup_5m (series_id UBIGINT NOT NULL, ts BIGINT NOT NULL, count UINTEGER NOT NULL,
        sum DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE, last DOUBLE, increase DOUBLE);
    CREATE TABLE rollup_1h (series_id UBIGINT NOT NULL, ts BIGINT NOT NULL, count UINTEGER NOT NULL,
        sum DOUBLE, min DOUBLE, max DOUBLE, first DOUBLE, last DOUBLE, increase DOUBLE);
    CREATE TABLE watermarks (name VARCHAR PRIMARY KEY, ts BIGINT NOT NULL);",
    // 2: the workload (Deployment/StatefulSet/DaemonSet/Job name) a pod belongs to,
    // for fleet views filtered by workload.
    "ALTER TABLE series ADD COLUMN workload VARCHAR;",
    // 3: the dependency graph (per-minute edge traffic, node metadata) and
    // the Kubernetes events / alerts attached to services.
    "CREATE TABLE graph_nodes (id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, name VARCHAR NOT NULL,
        namespace VARCHAR, cluster VARCHAR, system VARCHAR, first_seen BIGINT NOT NULL);
    CREATE TABLE graph_edges_1m (ts BIGINT NOT NULL, source VARCHAR NOT NULL, target VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, requests UBIGINT NOT NULL, errors UBIGINT NOT NULL, paired UBIGINT NOT NULL,
        network_sum_ms DOUBLE, client_sum_ms DOUBLE, server_sum_ms DOUBLE,
        client_hist UBIGINT[], server_hist UBIGINT[]);
    CREATE TABLE events (time_ms BIGINT NOT NULL, end_ms BIGINT, cluster VARCHAR, namespace VARCHAR,
        service VARCHAR, source VARCHAR, reason VARCHAR, message VARCHAR, severity VARCHAR);",
    // 4: no primary key on series. The writer is the only one to add series
    // and knows every id already stored; DuckDB's index of 64-bit keys was
    // rewritten in full at every checkpoint and held in memory (a third of
    // the writer's CPU and ~70 bytes per series at fleet scale). Rows are
    // grouped by metric so a metric's series are a few row groups.
    "CREATE TABLE series_v4 (id UBIGINT NOT NULL, metric VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        cluster VARCHAR, job VARCHAR, instance VARCHAR, namespace VARCHAR, pod VARCHAR, node VARCHAR,
        container VARCHAR, labels VARCHAR NOT NULL, first_seen BIGINT NOT NULL, workload VARCHAR);
    INSERT INTO series_v4 SELECT id, metric, kind, cluster, job, instance, namespace, pod, node,
        container, labels, first_seen, workload FROM series ORDER BY metric, id;
    DROP TABLE series;
    ALTER TABLE series_v4 RENAME TO series;",
    // 5: rollup rows name their series by a dense 32-bit number (`sid`), not
    // the 64-bit hash. A hash is random bits that no compression can shrink
    // (9 of a row's 55 bytes); a dense number bit-packs to a few bits. Old
    // rows are copied in (minute, metric, sid) order, so neighbouring values
    // have similar magnitudes and the doubles pack tighter too (the writer
    // orders new rows by value, see `Writer::commit`). The hash stays the
    // series' identity.
    concat!(
        "CREATE TABLE series_v5 (id UBIGINT NOT NULL, metric VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        cluster VARCHAR, job VARCHAR, instance VARCHAR, namespace VARCHAR, pod VARCHAR, node VARCHAR,
        container VARCHAR, labels VARCHAR NOT NULL, first_seen BIGINT NOT NULL, workload VARCHAR,
        sid UINTEGER NOT NULL);
    INSERT INTO series_v5 SELECT id, metric, kind, cluster, job, instance, namespace, pod, node,
        container, labels, first_seen, workload, (row_number() OVER (ORDER BY metric, id))::UINTEGER
        FROM series ORDER BY metric, id;
    DROP TABLE series;
    ALTER TABLE series_v5 RENAME TO series;",
        rollup_by_sid!("rollup_1m"),
        rollup_by_sid!("rollup_5m"),
        rollup_by_sid!("rollup_1h")
    ),
    // 6: rollup rows leave out the aggregates that follow from the rest of
    // the row (see `stored_form`); `rollup_*` become views that restore them
    // over the stored `rollup_*_rows`. Rows already stored are complete,
    // which the views read unchanged.
    concat!(
        "ALTER TABLE rollup_1m RENAME TO rollup_1m_rows;
        ALTER TABLE rollup_5m RENAME TO rollup_5m_rows;
        ALTER TABLE rollup_1h RENAME TO rollup_1h_rows;\n",
        restoring_view!("rollup_1m"),
        restoring_view!("rollup_5m"),
        restoring_view!("rollup_1h")
    ),
    // 7: series numbered metric-major: a metric's number in the high 32
    // bits of `sid`, its series counted in the low 32 (see
    // `series_numbers`), so a query of one metric skips the row groups of
    // every other. A window derived partly under the old numbers is
    // derived again from its start.
    concat!(
        "CREATE TEMP TABLE sid_v7 AS SELECT sid AS old,
            ((dense_rank() OVER (ORDER BY metric))::UBIGINT << 32)
                | (row_number() OVER (PARTITION BY metric ORDER BY sid))::UBIGINT AS new
        FROM series;
        CREATE TABLE series_v7 (id UBIGINT NOT NULL, metric VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            cluster VARCHAR, job VARCHAR, instance VARCHAR, namespace VARCHAR, pod VARCHAR,
            node VARCHAR, container VARCHAR, labels VARCHAR NOT NULL, first_seen BIGINT NOT NULL,
            workload VARCHAR, sid UBIGINT NOT NULL);
        INSERT INTO series_v7 SELECT id, metric, kind, cluster, job, instance, namespace, pod,
            node, container, labels, first_seen, workload, m.new
            FROM series s JOIN sid_v7 m ON m.old = s.sid;
        DROP TABLE series;
        ALTER TABLE series_v7 RENAME TO series;\n",
        rollup_metric_major!("rollup_1m"),
        rollup_metric_major!("rollup_5m"),
        rollup_metric_major!("rollup_1h"),
        // A watermark past the year 3000 was set by the start-up race fixed
        // with migration 7 (`maintenance::derivation_horizon`): back to the
        // last window derived, which is then derived again whole.
        "DELETE FROM watermarks WHERE name = 'rollup_5m' AND ts > 32503680000
            AND NOT EXISTS (SELECT 1 FROM rollup_5m_rows);
        UPDATE watermarks SET ts = (SELECT max(ts) FROM rollup_5m_rows)
            WHERE name = 'rollup_5m' AND ts > 32503680000;
        DELETE FROM watermarks WHERE name = 'rollup_1h' AND ts > 32503680000
            AND NOT EXISTS (SELECT 1 FROM rollup_1h_rows);
        UPDATE watermarks SET ts = (SELECT max(ts) FROM rollup_1h_rows)
            WHERE name = 'rollup_1h' AND ts > 32503680000;
        DELETE FROM rollup_5m_rows WHERE ts >= (SELECT ts FROM watermarks WHERE name = 'rollup_5m');
        DELETE FROM rollup_1h_rows WHERE ts >= (SELECT ts FROM watermarks WHERE name = 'rollup_1h');
        UPDATE watermarks SET ts = 0 WHERE name IN ('rollup_5m/sid', 'rollup_1h/sid');
        DROP TABLE sid_v7;"
    ),
    // 8: `labels` becomes `other_labels`, the labels without a column of
    // their own; the writer no longer repeats the label columns in it (a
    // series row was ~160 bytes stored, ~100 without them). Rows stored
    // before hold every label there, which reads the same: readers lay the
    // columns over it (`store::read::labels_of_row`). They are not
    // rewritten, which would cost a large store minutes at start-up.
    "ALTER TABLE series RENAME COLUMN labels TO other_labels;",
    // 9: an alert's notifications (firing, repeated, resolved) are rows of
    // one alert, found by Alertmanager's fingerprint (see `graph::query`).
    "ALTER TABLE events ADD COLUMN fingerprint VARCHAR;",
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Whether the store is at this binary's schema version (no migration to run).
pub fn is_current(conn: &duckdb::Connection) -> Result<bool, StoreError> {
    let versioned: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = 'schema_version'",
        [],
        |r| r.get(0),
    )?;
    if !versioned {
        return Ok(false);
    }
    let current: u32 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    Ok(current == SCHEMA_VERSION)
}

pub fn migrate(conn: &mut duckdb::Connection, path: &Path) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let current: u32 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as u32 + 1;
        let began = std::time::Instant::now();
        if current > 0 {
            tracing::info!(
                version,
                "applying schema migration (a large store takes minutes)"
            );
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|_| {
                tx.execute("INSERT INTO schema_version VALUES (?)", [version])
                    .map(|_| ())
            })
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()
            .map_err(|source| StoreError::Migration { version, source })?;
        tracing::info!(
            version,
            secs = began.elapsed().as_secs_f64(),
            "applied schema migration"
        );
    }
    Ok(())
}

/// Brings a store to `version` only, as an older binary left it.
#[cfg(test)]
pub(super) fn migrate_to_for_test(conn: &duckdb::Connection, version: usize) {
    conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        .unwrap();
    for (i, sql) in MIGRATIONS[..version].iter().enumerate() {
        conn.execute_batch(sql).unwrap();
        conn.execute("INSERT INTO schema_version VALUES (?)", [i as u32 + 1])
            .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written by version 4 (64-bit ids in the rollup tables) keeps
    /// every row through migration 5, each named by its series' new number.
    #[test]
    fn migration_5_renumbers_series_and_keeps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.duckdb");
        let mut conn = duckdb::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            .unwrap();
        for (i, sql) in MIGRATIONS[..4].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.execute("INSERT INTO schema_version VALUES (?)", [i as u32 + 1])
                .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO series (id, metric, kind, labels, first_seen) VALUES
                 (18000000000000000000, 'b_total', 'counter', '{}', 0),
                 (7, 'a', 'gauge', '{}', 0);
             INSERT INTO rollup_1m VALUES (18000000000000000000, 60, 4, 10, 1, 4, 1, 4, 3),
                 (7, 60, 4, 2, 0.5, 0.5, 0.5, 0.5, 0);
             INSERT INTO rollup_5m VALUES (7, 0, 4, 2, 0.5, 0.5, 0.5, 0.5, 0);
             INSERT INTO rollup_1h VALUES (18000000000000000000, 0, 4, 10, 1, 4, 1, 4, 3);",
        )
        .unwrap();
        migrate(&mut conn, &path).unwrap();
        use super::super::series_numbers::sid;
        let rows: Vec<(u64, String, u64, i64, f64)> = conn
            .prepare(
                "SELECT s.id, s.metric, s.sid, r.ts, r.increase FROM rollup_1m r
                 JOIN series s ON s.sid = r.sid ORDER BY s.sid",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // Numbered in metric order (and metric-major since migration 7).
        assert_eq!(
            rows,
            vec![
                (7, "a".into(), sid(1, 1), 60, 0.0),
                (18000000000000000000, "b_total".into(), sid(2, 1), 60, 3.0),
            ]
        );
        for (table, sid) in [("rollup_5m", sid(1, 1)), ("rollup_1h", sid(2, 1))] {
            let got: u64 = conn
                .query_row(&format!("SELECT sid FROM {table}"), [], |r| r.get(0))
                .unwrap();
            assert_eq!(got, sid, "{table}");
        }
        let version: u32 = conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    fn store_at(version: usize) -> duckdb::Connection {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        migrate_to_for_test(&conn, version);
        conn
    }

    /// A store numbered in order of first sight (version 6) keeps every row
    /// through migration 7, each named by its series' metric-major number;
    /// a 5 m window derived only in part is dropped, to be derived whole.
    #[test]
    fn migration_7_numbers_series_by_metric_and_keeps_rows() {
        use super::super::series_numbers::sid;
        let mut conn = store_at(6);
        conn.execute_batch(
            "INSERT INTO series (id, metric, kind, labels, first_seen, sid) VALUES
                 (100, 'b', 'gauge', '{}', 0, 1), (200, 'a', 'gauge', '{}', 0, 2),
                 (300, 'b', 'gauge', '{}', 0, 3);
             INSERT INTO rollup_1m_rows VALUES (1, 60, 1, NULL, NULL, NULL, NULL, 1.5, 0),
                 (2, 60, 1, NULL, NULL, NULL, NULL, 2.5, 0), (3, 120, 2, NULL, NULL, NULL, NULL, 3.5, 1);
             -- window 0 derived, window 300 derived for sid 1 only
             INSERT INTO rollup_5m_rows VALUES (2, 0, 1, NULL, NULL, NULL, NULL, 2.5, 0),
                 (1, 300, 1, NULL, NULL, NULL, NULL, 9.5, 0);
             INSERT INTO watermarks VALUES ('rollup_5m', 300), ('rollup_5m/sid', 2),
                 ('rollup_1h', 9223372036854774000);",
        )
        .unwrap();
        migrate(&mut conn, Path::new(":memory:")).unwrap();
        let numbered: Vec<(u64, u64)> = conn
            .prepare("SELECT id, sid FROM series ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // 'a' is metric 1, 'b' metric 2; within a metric, the old order.
        assert_eq!(
            numbered,
            vec![(100, sid(2, 1)), (200, sid(1, 1)), (300, sid(2, 2))]
        );
        let rows: Vec<(u64, i64, f64)> = conn
            .prepare(
                "SELECT s.id, r.ts, r.last FROM rollup_1m r JOIN series s ON s.sid = r.sid
                 ORDER BY s.id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(100, 60, 1.5), (200, 60, 2.5), (300, 120, 3.5)]);
        let derived: Vec<(u64, i64)> = conn
            .prepare("SELECT sid, ts FROM rollup_5m")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(derived, vec![(sid(1, 1), 0)], "the partial window is gone");
        let cursor: i64 = conn
            .query_row(
                "SELECT ts FROM watermarks WHERE name = 'rollup_5m/sid'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(cursor, 0);
        let hour: Option<i64> = conn
            .query_row(
                "SELECT max(ts) FROM watermarks WHERE name = 'rollup_1h'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(hour, None, "a watermark at the end of time is dropped");
    }
}
