//! Versioned schema migrations, applied in order inside one transaction each.

use std::path::Path;

use super::StoreError;

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
];

pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

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
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .and_then(|_| {
                tx.execute("INSERT INTO schema_version VALUES (?)", [version])
                    .map(|_| ())
            })
            .map_err(|source| StoreError::Migration { version, source })?;
        tx.commit()
            .map_err(|source| StoreError::Migration { version, source })?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
