//! The embedded DuckDB store: schema migrations, the one writer, the read side.
//!
//! Owns the database file. Exactly one thread (the writer) holds the
//! connection that writes; it commits batches of complete rollup buckets
//! through the Appender, derives 5m/1h rows from 1m rows, and applies
//! retention. Reads clone a connection and run on `spawn_blocking` with a
//! deadline. This module must not parse exposition text or decide bucket
//! boundaries (that is `rollup`), and no request text ever becomes SQL: every
//! value reaches DuckDB as a bound parameter.

mod read;
mod schema;
mod writer;

pub use read::{Resolution, RollupAgg, RollupPoint, SeriesInfo, StoreReader};
pub use writer::{StoreWriter, WriteBatch};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs4::fs_std::FileExt;

use crate::config::Retention;
use crate::telemetry::Telemetry;

pub const DB_FILE: &str = "fleetscope.duckdb";
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
    #[error("database file {path} has schema version {found}, newer than this binary knows ({known})")]
    SchemaTooNew { path: PathBuf, found: u32, known: u32 },
    #[error("DuckDB: {0}")]
    Db(#[from] duckdb::Error),
    #[error("query exceeded its deadline and was interrupted")]
    Deadline,
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("read task failed: {0}")]
    Join(String),
}

/// Everything needed to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub data_dir: PathBuf,
    pub retention: Retention,
    /// DuckDB's own memory limit, e.g. "1GB".
    pub memory_limit: String,
    /// How long after a window ends before 5m/1h rows are derived from it;
    /// must cover the longest scrape interval plus the minute roll.
    pub derive_lateness_secs: i64,
}

impl StoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>, retention: Retention) -> Self {
        StoreOptions {
            data_dir: data_dir.into(),
            retention,
            memory_limit: "1GB".into(),
            derive_lateness_secs: 180,
        }
    }
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

fn open_connection(path: &Path, memory_limit: &str) -> Result<duckdb::Connection, StoreError> {
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
        .map_err(open_err)?;
    duckdb::Connection::open_with_flags(path, config).map_err(open_err)
}

/// Opens (creating or migrating) the store and starts its writer thread.
pub fn open(
    options: StoreOptions,
    telemetry: Arc<Telemetry>,
) -> Result<(StoreWriter, StoreReader), StoreError> {
    let lock = lock_data_dir(&options.data_dir)?;
    let path = options.data_dir.join(DB_FILE);
    let mut conn = open_connection(&path, &options.memory_limit)?;
    schema::migrate(&mut conn, &path)?;
    let reader = StoreReader::new(conn.try_clone()?, options.data_dir.clone());
    let writer = StoreWriter::start(conn, lock, options, telemetry)?;
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
