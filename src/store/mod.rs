//! The embedded DuckDB store: schema migrations, the one writer, the read side.
//!
//! Owns the database file. One thread (the writer) adds series and commits
//! batches of complete 1m buckets through the Appender; another
//! (maintenance) derives 5m/1h rows from them in memory-bounded slices and
//! applies retention, each on its own connection, so commits never wait on
//! derivation. Reads clone a connection and run on `spawn_blocking` with a
//! deadline. This module must not parse exposition text or decide bucket
//! boundaries (that is `rollup`), and no request text ever becomes SQL: every
//! value reaches DuckDB as a bound parameter.

mod maintenance;
mod read;
mod schema;
mod series_numbers;
mod stored_form;
mod unstored;
mod window_aggregate;
mod writer;

pub use read::{
    labels_of_row, Resolution, RollupAgg, RollupPoint, SeriesInfo, StoreReader, STORED_LABELS,
};
pub use writer::{StoreWriter, WriteBatch};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fs4::fs_std::FileExt;

use crate::config::Retention;
use crate::telemetry::Telemetry;

pub const DB_FILE: &str = "fleetscope.duckdb";

/// The labels `series` has a column of its own for, in column order (besides
/// `workload`, derived from `pod`).
pub const LABEL_COLUMNS: [&str; 7] = [
    "cluster",
    "job",
    "instance",
    "namespace",
    "pod",
    "node",
    "container",
];
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is in use by another fleetscope process (lock file {lock}); \
         only one process may write a store"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot open DuckDB file {path}: {source}")]
    Open {
        path: PathBuf,
        source: duckdb::Error,
    },
    #[error("schema migration {version} failed: {source}")]
    Migration { version: u32, source: duckdb::Error },
    #[error(
        "database file {path} has schema version {found}, newer than this binary knows ({known})"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("DuckDB: {0}")]
    Db(#[from] duckdb::Error),
    /// The store broke one of its own invariants (a bug, or a file edited
    /// by hand); the statement is rolled back.
    #[error("store inconsistent: {0}")]
    Inconsistent(String),
    #[error("query exceeded its deadline and was interrupted")]
    Deadline,
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("read task failed: {0}")]
    Join(String),
}

/// Counts committed changes per resolution, so readers can cache answers
/// that are exact for a given generation (5m/1h data change only when a
/// window is derived or retention deletes rows).
#[derive(Debug, Default)]
pub struct Generations {
    counters: [std::sync::atomic::AtomicU64; 3],
}

impl Generations {
    fn slot(resolution: Resolution) -> usize {
        match resolution {
            Resolution::OneMinute => 0,
            Resolution::FiveMinutes => 1,
            Resolution::OneHour => 2,
        }
    }

    pub fn get(&self, resolution: Resolution) -> u64 {
        self.counters[Self::slot(resolution)].load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump(&self, resolution: Resolution) {
        self.counters[Self::slot(resolution)].fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// A connection of its own to the database `template` is open on.
fn connection_from(
    template: &std::sync::Mutex<duckdb::Connection>,
) -> Result<duckdb::Connection, StoreError> {
    let template = template
        .lock()
        .map_err(|_| StoreError::Join("template connection poisoned".into()))?;
    Ok(template.try_clone()?)
}

/// Commits failing this many times in a row make the store not ready: one
/// failure is retried with the next commit, a few seconds later.
const NOT_READY_AFTER_FAILED_COMMITS: u64 = 3;

/// Whether the store takes writes, as the writer last found it: for
/// `/readyz` (not ready) and `/healthz` (restart me).
#[derive(Debug, Default)]
pub struct StoreHealth {
    /// Commits that failed in a row; 0 after one succeeds.
    failed_commits: std::sync::atomic::AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    /// DuckDB refuses every statement after a fatal error (a checkpoint
    /// that could not be written, on a full disk) until the process
    /// restarts; the restart replays the WAL.
    invalidated: std::sync::atomic::AtomicBool,
    writer_stopped: std::sync::atomic::AtomicBool,
}

impl StoreHealth {
    fn commit_succeeded(&self) {
        self.failed_commits
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    fn commit_failed(&self, error: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        self.failed_commits.fetch_add(1, Relaxed);
        if error.contains("invalidated") {
            self.invalidated.store(true, Relaxed);
        }
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error.to_string());
        }
    }

    fn writer_stopped(&self) {
        self.writer_stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Why the process should be restarted, if it should: the writer is
    /// gone, or DuckDB will take nothing until a restart.
    pub fn fatal(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.writer_stopped.load(Relaxed) {
            return Some("the store writer has stopped".into());
        }
        self.invalidated
            .load(Relaxed)
            .then(|| format!("the database needs a restart: {}", self.last_error()))
    }

    /// Why the store is not taking writes, if it is not.
    pub fn problem(&self) -> Option<String> {
        let failed = self
            .failed_commits
            .load(std::sync::atomic::Ordering::Relaxed);
        self.fatal().or_else(|| {
            (failed >= NOT_READY_AFTER_FAILED_COMMITS)
                .then(|| format!("{failed} commits failed in a row: {}", self.last_error()))
        })
    }

    fn last_error(&self) -> String {
        self.last_error
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .unwrap_or_default()
    }
}

/// Everything needed to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub retention: Retention,
    /// DuckDB's own memory limit, e.g. "1GB".
    pub memory_limit: String,
    /// Threads DuckDB's query engine may use, the calling thread included.
    pub threads: usize,
    /// How long after a window ends before 5m/1h rows are derived from it;
    /// must cover the longest scrape interval plus the minute roll.
    pub derive_lateness_secs: i64,
    /// How often the writer forgets the numbers of series that got no row
    /// since the last time (see `series_numbers::SeriesNumbers`): it holds
    /// the series of the last one to two of these, not every series ever.
    pub forget_series_after: Duration,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>, retention: Retention) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            retention,
            memory_limit: "1GB".into(),
            threads: default_duckdb_threads(),
            derive_lateness_secs: 180,
            forget_series_after: Duration::from_secs(3600),
        }
    }
}

/// Half the cores, at least one. DuckDB's pool threads run at the same
/// priority as scraping and the writer, and a query or a derivation given
/// every core starved them: on a 2-core box, with two DuckDB threads, scrapes
/// started late in the minute of each 5 m derivation of a 10.4 M-series
/// fleet (2026-12-01). The price is query time: a 24 h range query over
/// 1 M series took 1.5-2.2x as long on one thread as on two. Setting
/// `threads` to 1 only for maintenance passes (e7cc6a8, reverted) let late
/// scrapes come back in the minute of a derivation.
fn default_duckdb_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Holds the process-wide lock on the data directory for as long as it lives.
pub struct DirLock {
    _file: File,
}

fn lock_data_dir(dir: &Path) -> Result<DirLock, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    match file.try_lock_exclusive() {
        Ok(true) => Ok(DirLock { _file: file }),
        Ok(false) | Err(_) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
            lock,
        }),
    }
}

fn open_connection(
    path: &Path,
    memory_limit: &str,
    threads: usize,
) -> Result<duckdb::Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    // External access off: the store never reads or writes files other than
    // its own, so no query can be turned into a file or network read.
    let config = duckdb::Config::default()
        .enable_external_access(false)
        .and_then(|c| c.enable_autoload_extension(false))
        .and_then(|c| c.max_memory(memory_limit))
        .and_then(|c| c.threads(i64::try_from(threads).unwrap_or(1)))
        .map_err(open_err)?;
    duckdb::Connection::open_with_flags(path, config).map_err(open_err)
}

/// DuckDB memory (MB) for migrating a store of this many series: a
/// migration rewrites tables once, before anything else uses the store, and
/// a large store needs more than the steady state's limit for it.
/// Migration 7 renumbering a 10.4 M-series store (2026-12-01) ran out of
/// 128 MB and went through in 1 GB; this allows twice that per series.
const MIGRATION_MB_PER_MILLION_SERIES: u64 = 200;

/// The memory limit migrations run with, in MB.
fn migration_memory_mb(conn: &duckdb::Connection) -> Result<u64, StoreError> {
    let stored: bool = conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = 'series'",
        [],
        |r| r.get(0),
    )?;
    let series: u64 = if stored {
        conn.query_row("SELECT count(*) FROM series", [], |r| r.get(0))?
    } else {
        0
    };
    Ok(series.div_ceil(1_000_000) * MIGRATION_MB_PER_MILLION_SERIES)
}

/// Bytes in a size as DuckDB prints one (`122.0 MiB`, `1.5 GiB`).
fn duckdb_size_bytes(text: &str) -> Option<u64> {
    let (number, unit) = text.trim().split_once(' ')?;
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit {
        "bytes" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((number * scale) as u64)
}

/// Opens (creating or migrating) the store and starts its writer thread.
pub fn open(
    options: StoreOptions,
    telemetry: Arc<Telemetry>,
) -> Result<(StoreWriter, StoreReader), StoreError> {
    let lock = lock_data_dir(&options.data_dir)?;
    let path = options.data_dir.join(DB_FILE);
    let mut conn = open_connection(&path, &options.memory_limit, options.threads)?;
    let steady_limit: String =
        conn.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))?;
    // Counting series costs a scan: only when a migration will run.
    let migration_limit = if schema::is_current(&conn)? {
        0
    } else {
        migration_memory_mb(&conn)?
    };
    let raise = migration_limit > 0
        && duckdb_size_bytes(&steady_limit).is_none_or(|steady| steady < migration_limit << 20);
    if raise {
        conn.execute_batch(&format!("SET memory_limit = '{migration_limit}MB'"))?;
    }
    let migrated = schema::migrate(&mut conn, &path);
    if raise {
        // Known valid: DuckDB accepted it when the connection opened.
        conn.execute_batch(&format!(
            "SET memory_limit = '{}'",
            options.memory_limit.replace('\'', "''")
        ))?;
    }
    migrated?;
    let generations = Arc::new(Generations::default());
    let health = Arc::new(StoreHealth::default());
    let reader = StoreReader::new(
        conn.try_clone()?,
        options.data_dir.clone(),
        generations.clone(),
        health.clone(),
    );
    let writer = StoreWriter::start(conn, lock, options, telemetry, generations, health)?;
    Ok((writer, reader))
}

/// Total bytes of the DuckDB file and its WAL.
pub fn store_bytes(data_dir: &Path) -> u64 {
    let db = data_dir.join(DB_FILE);
    let wal = data_dir.join(format!("{DB_FILE}.wal"));
    [db, wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{Aggregate, LabelSet, RollupRow, SeriesRow};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn agg(values: &[f64], increase: f64) -> Aggregate {
        let mut a = Aggregate::EMPTY;
        values.iter().for_each(|v| a.add(*v));
        a.increase = increase;
        a
    }

    /// Commits that keep failing make the store not ready (and say why);
    /// the rows wait for a retry, and one commit that succeeds stores them
    /// and makes it ready again. The failure here is a table gone missing
    /// under the writer, a real DuckDB error on the commit path.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failing_commits_make_the_store_not_ready_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let options = StoreOptions::new(dir.path(), Retention::default());
        let (writer, reader) = open(options, telemetry).unwrap();
        let rename = |from: &'static str, to: &'static str| {
            reader.run(Duration::from_secs(5), move |conn| {
                conn.execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}"))?;
                Ok(())
            })
        };
        let base = (writer::unix_now() - 600) / 60 * 60;
        let batch = |minute: i64| WriteBatch {
            series: vec![SeriesRow {
                id: 7,
                metric: "up".into(),
                kind: "gauge",
                labels: LabelSet::from_pairs([("job", "node")]),
            }],
            rollups: vec![RollupRow {
                series_id: 7,
                bucket_start: base + minute * 60,
                agg: agg(&[1.0], 0.0),
            }],
            ..Default::default()
        };
        assert_eq!(reader.health().problem(), None);
        rename("rollup_1m_rows", "moved_away").await.unwrap();
        for minute in 0..NOT_READY_AFTER_FAILED_COMMITS as i64 {
            writer.write(batch(minute)).await.unwrap();
            assert!(writer.sync().await.is_err());
        }
        let problem = reader.health().problem().expect("not ready");
        assert!(problem.contains("3 commits failed in a row"), "{problem}");
        assert_eq!(reader.health().fatal(), None);

        rename("moved_away", "rollup_1m_rows").await.unwrap();
        writer.write(batch(3)).await.unwrap();
        writer.sync().await.unwrap();
        assert_eq!(reader.health().problem(), None);
        let points = counts_1m(&reader, 7, base).await;
        assert_eq!(points.len(), 4, "{points:?}");
        writer.shutdown().await;
        assert!(reader.health().fatal().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_read_back_derive_and_lock() {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let mut options = StoreOptions::new(dir.path(), Retention::default());
        options.derive_lateness_secs = 0;
        let (writer, reader) = open(options.clone(), telemetry.clone()).unwrap();
        let second = open(options.clone(), telemetry.clone());
        assert!(matches!(second, Err(StoreError::Locked { .. })));

        let series = SeriesRow {
            id: 42,
            metric: "parcels_total".into(),
            kind: "counter",
            labels: LabelSet::from_pairs([("cluster", "sh"), ("pod", "p-1")]),
        };
        // Five 1m buckets in one complete 5m window an hour ago (recent
        // enough that retention keeps it).
        let base = (writer::unix_now() - 3600) / 300 * 300;
        let rollups = (0..5)
            .map(|i| RollupRow {
                series_id: 42,
                bucket_start: base + i * 60,
                agg: agg(&[i as f64, i as f64 + 1.0], 1.0),
            })
            .collect();
        writer
            .write(WriteBatch {
                series: vec![series.clone(), series],
                rollups,
                ..Default::default()
            })
            .await
            .unwrap();
        // The writer gathers for seconds before it commits a batch this
        // small: until then its rows (each new series weighing
        // `SERIES_ROW_WEIGHT` rows) are queued.
        assert_eq!(
            telemetry.store_queued_rows(),
            2 * writer::SERIES_ROW_WEIGHT as u64 + 5
        );
        writer.sync().await.unwrap();
        assert_eq!(
            telemetry.store_queued_rows(),
            0,
            "committed rows leave the queue"
        );
        writer.maintain().await.unwrap();
        writer.sync().await.unwrap();

        let found = reader
            .series(Some("parcels_total".into()), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "a series written twice is stored once");
        assert_eq!(found[0].labels.get("pod").map(String::as_str), Some("p-1"));
        let pts = reader
            .rollups(
                Resolution::FiveMinutes,
                vec![42],
                base,
                base + 300,
                300,
                RollupAgg::Increase,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(pts.len(), 1);
        assert_eq!((pts[0].ts, pts[0].value), (base, 5.0));
        for (a, want) in [
            (RollupAgg::Max, 5.0),
            (RollupAgg::Min, 0.0),
            (RollupAgg::First, 0.0),
            (RollupAgg::Last, 5.0),
            (RollupAgg::Avg, 2.5),
        ] {
            let p = reader
                .rollups(
                    Resolution::OneMinute,
                    vec![42],
                    base,
                    base + 300,
                    300,
                    a,
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
            assert_eq!(p[0].value, want, "{a:?}");
        }
        // A step that is not whole minutes is rounded up to them, and a
        // rate is per second of the minutes measured: 1 a minute is 1/60
        // per second in every bucket, whole or cut by the range.
        let rates = reader
            .rollups(
                Resolution::OneMinute,
                vec![42],
                base + 30,
                base + 300,
                90,
                RollupAgg::Rate,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert!(rates.len() >= 2, "{rates:?}");
        for p in &rates {
            assert_eq!(p.ts % 120, 0, "buckets of two whole minutes: {rates:?}");
            assert!((p.value - 1.0 / 60.0).abs() < 1e-12, "{rates:?}");
        }
        writer.shutdown().await;
        drop(reader);

        // Reopen: everything is still there and the lock is free again.
        let (writer, reader) = open(options, telemetry).unwrap();
        let pts = counts_1m(&reader, 42, base).await;
        assert_eq!(pts.len(), 5);
        writer.shutdown().await;
    }

    /// The 1 m row counts of series `id` over the five minutes from `base`.
    async fn counts_1m(reader: &StoreReader, id: u64, base: i64) -> Vec<RollupPoint> {
        reader
            .rollups(
                Resolution::OneMinute,
                vec![id],
                base,
                base + 300,
                60,
                RollupAgg::Count,
                Duration::from_secs(5),
            )
            .await
            .unwrap()
    }

    /// Writes series 1 and 2, lets 2 be forgotten (silent for a sweep;
    /// the writer sweeps after every commit here), then writes a row of 2
    /// at minute 3, its series row sent again when `sent_again`. Returns
    /// the minutes of 2's rows and how many `series` rows it has.
    async fn forget_and_bring_back(sent_again: bool) -> (Vec<i64>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let mut options = StoreOptions::new(dir.path(), Retention::default());
        options.forget_series_after = Duration::ZERO;
        let (writer, reader) = open(options, telemetry).unwrap();
        let series = |id: u64| SeriesRow {
            id,
            metric: "up".into(),
            kind: "gauge",
            labels: LabelSet::from_pairs([("pod", if id == 1 { "a" } else { "b" })]),
        };
        let base = (writer::unix_now() - 3600) / 60 * 60;
        let row = |id: u64, minute: i64| RollupRow {
            series_id: id,
            bucket_start: base + minute * 60,
            agg: agg(&[1.0], 0.0),
        };
        for batch in [
            WriteBatch {
                series: vec![series(1), series(2)],
                rollups: vec![row(1, 0), row(2, 0)],
                ..Default::default()
            },
            WriteBatch {
                rollups: vec![row(1, 1)],
                ..Default::default()
            },
            WriteBatch {
                rollups: vec![row(1, 2)],
                ..Default::default()
            },
            WriteBatch {
                series: if sent_again { vec![series(2)] } else { vec![] },
                rollups: vec![row(1, 3), row(2, 3)],
                ..Default::default()
            },
        ] {
            writer.write(batch).await.unwrap();
            writer.sync().await.unwrap();
        }
        let found = reader.series(None, Duration::from_secs(5)).await.unwrap();
        let stored = found.iter().filter(|s| s.id == 2).count();
        let points = counts_1m(&reader, 2, base).await;
        writer.shutdown().await;
        (points.iter().map(|p| (p.ts - base) / 60).collect(), stored)
    }

    /// A series forgotten that comes back, as a series new to its producer,
    /// keeps its number and its one row in `series`, and its rows before
    /// and after read back as one series.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forgotten_series_comes_back_as_itself() {
        assert_eq!(forget_and_bring_back(true).await, (vec![0, 3], 1));
    }

    /// A series whose samples are all NaN for a while (a summary's
    /// quantiles while nothing is observed) writes no row, so the store
    /// forgets it; its producer still holds it live and sends no series row
    /// when values come back. Its rows are stored under its number.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_of_a_forgotten_series_its_producer_still_holds_are_kept() {
        assert_eq!(forget_and_bring_back(false).await, (vec![0, 3], 1));
    }

    /// More new series at once than the writer stores in one transaction
    /// (so it is behind and holds them unstored), and a row of the last
    /// one: the row reads back through its series, the first row group of
    /// `series` is whole, a sync stores the rest, each series once under a
    /// number of its own, and a series sent again after a restart is not
    /// stored twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_new_series_is_stored_in_whole_row_groups() {
        let n = writer::ROW_GROUP_ROWS as u64 + 1_000;
        let dir = tempfile::tempdir().unwrap();
        let telemetry = Arc::new(Telemetry::default());
        let options = StoreOptions::new(dir.path(), Retention::default());
        let (writer, reader) = open(options.clone(), telemetry.clone()).unwrap();
        let series = |id: u64| SeriesRow {
            id,
            metric: if id.is_multiple_of(2) { "a" } else { "b" }.into(),
            kind: "gauge",
            labels: LabelSet::from_pairs([("pod", format!("p-{id}").as_str())]),
        };
        let burst = WriteBatch {
            series: (1..=n).map(series).collect(),
            ..Default::default()
        };
        writer.write(burst).await.unwrap();
        let base = (writer::unix_now() - 3600) / 60 * 60;
        let row = RollupRow {
            series_id: n,
            bucket_start: base,
            agg: agg(&[7.0], 0.0),
        };
        let rows = WriteBatch {
            rollups: vec![row],
            ..Default::default()
        };
        writer.write(rows).await.unwrap();
        writer.sync().await.unwrap();
        let points = reader
            .rollups(
                Resolution::OneMinute,
                vec![n],
                base,
                base + 60,
                60,
                RollupAgg::Last,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].value, 7.0);
        // A listing of every series stops at its limit, and says so.
        let (some, more) = reader
            .series_where(None, |s| s.id % 2 == 1, 10, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((some.len(), more), (10, true));
        assert!(some.iter().all(|s| s.id % 2 == 1));
        let (all_b, more) = reader
            .series_where(
                Some("b".into()),
                |_| true,
                n as usize,
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!((all_b.len() as u64, more), (n.div_ceil(2), false));
        writer.shutdown().await;
        drop(reader);

        let (writer, reader) = open(options.clone(), telemetry).unwrap();
        let again = WriteBatch {
            series: vec![series(1), series(n)],
            ..Default::default()
        };
        writer.write(again).await.unwrap();
        writer.sync().await.unwrap();
        writer.shutdown().await;
        drop(reader);

        let conn = open_connection(&options.data_dir.join(DB_FILE), "256MB", 1).unwrap();
        let (rows, ids, sids): (u64, u64, u64) = conn
            .query_row(
                "SELECT count(*), count(DISTINCT id), count(DISTINCT sid) FROM series",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((rows, ids, sids), (n, n, n));
        let first_group: u64 = conn
            .query_row(
                "SELECT max(count) FROM pragma_storage_info('series')
                 WHERE row_group_id = 0 AND column_id = 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(first_group, writer::ROW_GROUP_ROWS as u64);
    }

    /// The layout queries rely on: every row group of 1m rows holds the
    /// `sid`s of at most two neighbouring metrics, so a query of one metric
    /// skips the others' row groups. Four metrics of 130,000 series each
    /// (more than a row group) over two minutes, as the writer commits them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_row_group_holds_neighbouring_metrics_only() {
        const METRICS: u64 = 4;
        const SERIES: u64 = 130_000;
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new(dir.path(), Retention::default());
        let (writer, reader) = open(options, Arc::new(Telemetry::default())).unwrap();
        let ids = || (0..METRICS * SERIES).map(|i| i + 1);
        let series = ids()
            .map(|id| SeriesRow {
                // Ids interleave the metrics, as scrape order does.
                id,
                metric: format!("m{}", id % METRICS).into(),
                kind: "gauge",
                labels: LabelSet::from_pairs([("pod", "p")]),
            })
            .collect();
        writer
            .write(WriteBatch {
                series,
                ..Default::default()
            })
            .await
            .unwrap();
        let base = (writer::unix_now() - 600) / 60 * 60;
        for minute in 0..2 {
            let rollups = ids()
                .map(|id| RollupRow {
                    series_id: id,
                    bucket_start: base + minute * 60,
                    agg: agg(&[(id * 7919 % 1000) as f64], 0.0),
                })
                .collect();
            writer
                .write(WriteBatch {
                    rollups,
                    ..Default::default()
                })
                .await
                .unwrap();
            writer.sync().await.unwrap();
        }
        // Per row group: the lowest and highest metric number of its `sid`s.
        let ranges: BTreeMap<u64, (u64, u64)> = reader
            .run(Duration::from_secs(60), |conn| {
                let mut stmt = conn.prepare(
                    "SELECT row_group_id, stats FROM pragma_storage_info('rollup_1m_rows')
                     WHERE column_name = 'sid' AND segment_type <> 'VALIDITY'",
                )?;
                let rows =
                    stmt.query_map([], |r| Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?)))?;
                let mut ranges = BTreeMap::new();
                for row in rows {
                    let (group, stats) = row?;
                    let number = |key: &str| -> u64 {
                        let rest = &stats[stats.find(key).unwrap() + key.len()..];
                        let end = rest.find([',', ']']).unwrap();
                        rest[..end].trim().parse().unwrap()
                    };
                    let (low, high) = (number("Min:") >> 32, number("Max:") >> 32);
                    let range = ranges.entry(group).or_insert((low, high));
                    *range = (range.0.min(low), range.1.max(high));
                }
                Ok(ranges)
            })
            .await
            .unwrap();
        assert!(ranges.len() >= 8, "{ranges:?}");
        for (lowest, highest) in ranges.values() {
            assert!(
                highest - lowest <= 1,
                "a row group spans metrics {lowest}..={highest}: {ranges:?}"
            );
        }
        writer.shutdown().await;
    }

    /// DuckDB runs with the threads and (after migrating) the memory limit
    /// it is given, and the maintenance thread at a lower priority than the
    /// rest of the process, as the kernel reports it in /proc.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn duckdb_keeps_its_limits_and_maintenance_leaves_cores_to_ingest() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_connection(&dir.path().join("t.duckdb"), "64MB", 3).unwrap();
        let threads: i64 = conn
            .query_row("SELECT current_setting('threads')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(threads, 3);
        let memory_limit = |conn: &duckdb::Connection| -> String {
            conn.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
                .unwrap()
        };
        let configured = memory_limit(&conn);
        drop(conn);

        // A store an older binary left, with one series: migrating it runs
        // with more memory than configured, and the configured limit is
        // back once the store is open. Its labels' JSON holds the label
        // columns too (as before schema 8), and reads back the same.
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let old = open_connection(&store.join(DB_FILE), "64MB", 1).unwrap();
        schema::migrate_to_for_test(&old, 6);
        old.execute_batch(
            "INSERT INTO series (id, metric, kind, cluster, labels, first_seen, sid)
             VALUES (42, 'up', 'gauge', 'east', '{\"cluster\":\"east\",\"mode\":\"idle\"}', 0, 1)",
        )
        .unwrap();
        drop(old);
        let mut options = StoreOptions::new(&store, Retention::default());
        options.memory_limit = "64MB".into();
        let (writer, reader) = open(options, Arc::new(Telemetry::default())).unwrap();
        let (limit, sid) = reader
            .run(Duration::from_secs(5), move |conn| {
                let sid: u64 = conn.query_row("SELECT sid FROM series", [], |r| r.get(0))?;
                Ok((memory_limit(conn), sid))
            })
            .await
            .unwrap();
        assert_eq!(limit, configured);
        assert_eq!(sid, series_numbers::sid(1, 1), "migrated");
        let series = reader.series(None, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            series[0].labels,
            BTreeMap::from([
                ("cluster".into(), "east".into()),
                ("mode".into(), "idle".into())
            ])
        );
        #[cfg(target_os = "linux")]
        {
            // Fields after the command's closing parenthesis start at
            // field 3 (state); nice is field 19.
            let nice_in = |stat: std::path::PathBuf| -> Option<i64> {
                let stat = std::fs::read_to_string(stat).ok()?;
                stat.rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(16)?
                    .parse()
                    .ok()
            };
            // comm keeps the first 15 bytes of a thread's name.
            let maintenance_nice = || {
                std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
                    let task = task.ok()?.path();
                    let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                    (comm.trim_end() == "store-maintenan")
                        .then(|| nice_in(task.join("stat")))
                        .flatten()
                })
            };
            let process = nice_in("/proc/self/stat".into()).unwrap();
            let want = (process + i64::from(maintenance::MAINTENANCE_NICER_BY)).min(19);
            // The thread lowers its own priority as it starts.
            let mut seen = None;
            for _ in 0..100 {
                seen = maintenance_nice();
                if seen == Some(want) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(seen, Some(want));
        }
        writer.shutdown().await;
    }

    #[test]
    fn duckdb_sizes_parse() {
        assert_eq!(duckdb_size_bytes("122.0 MiB"), Some(122 << 20));
        assert_eq!(duckdb_size_bytes("1.5 GiB"), Some(3 << 29));
        assert_eq!(duckdb_size_bytes("0 bytes"), Some(0));
        assert_eq!(duckdb_size_bytes("lots"), None);
    }

    #[test]
    fn resolution_follows_step_and_age() {
        let r = Retention::default();
        let now = 100 * 86_400;
        assert_eq!(
            Resolution::for_query(60, now - 3600, now, &r),
            Resolution::OneMinute
        );
        assert_eq!(
            Resolution::for_query(600, now - 3600, now, &r),
            Resolution::FiveMinutes
        );
        assert_eq!(
            Resolution::for_query(60, now - 10 * 86_400, now, &r),
            Resolution::FiveMinutes
        );
        assert_eq!(
            Resolution::for_query(60, now - 60 * 86_400, now, &r),
            Resolution::OneHour
        );
    }
}
