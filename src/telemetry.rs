//! fleetscope's own metrics, rendered at `/metrics` in the Prometheus text format.
//!
//! Owns the counters every stage bumps (lock-free atomics, stable names and
//! labels so operators can alert on fleetscope itself). It must not know how
//! any stage works; stages call the typed methods here.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Why a scrape failed; the label value of `fleetscope_scrape_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScrapeErrorReason {
    Timeout,
    Connect,
    HttpStatus,
    BodyTooLarge,
    ReadError,
    ParseError,
    SampleLimit,
    LabelLimit,
}

impl ScrapeErrorReason {
    pub const ALL: [ScrapeErrorReason; 8] = [
        Self::Timeout,
        Self::Connect,
        Self::HttpStatus,
        Self::BodyTooLarge,
        Self::ReadError,
        Self::ParseError,
        Self::SampleLimit,
        Self::LabelLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::HttpStatus => "http_status",
            Self::BodyTooLarge => "body_too_large",
            Self::ReadError => "read_error",
            Self::ParseError => "parse_error",
            Self::SampleLimit => "sample_limit",
            Self::LabelLimit => "label_limit",
        }
    }
}

/// Why the store dropped rows; the label value of
/// `fleetscope_store_dropped_rows_total`. Each is an error logged too; the
/// counter is what an operator alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Commits kept failing and the rows held for a retry passed their bound.
    NotCommitted,
    /// Rollup rows of a series the store could not name.
    UnknownSeries,
    /// New series past what the writer holds unstored, or past the numbers
    /// left for their metric: counted as the `series` rows not stored (the
    /// rollup rows that follow count as `UnknownSeries`).
    SeriesNotStored,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        Self::NotCommitted,
        Self::UnknownSeries,
        Self::SeriesNotStored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotCommitted => "not_committed",
            Self::UnknownSeries => "unknown_series",
            Self::SeriesNotStored => "series_not_stored",
        }
    }
}

const FLUSH_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in FLUSH_BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }
}

#[derive(Default)]
pub struct Telemetry {
    scrapes: AtomicU64,
    scrape_errors: [AtomicU64; ScrapeErrorReason::ALL.len()],
    samples_ingested: AtomicU64,
    duplicate_series: AtomicU64,
    active_series: AtomicU64,
    /// The store writer's queue bound (a semaphore of weighted rows) and
    /// its capacity: queued rows are read off it, never counted twice.
    store_queue: std::sync::Mutex<Option<(Arc<Semaphore>, usize)>>,
    rows_written_1m: AtomicU64,
    rows_written_5m: AtomicU64,
    rows_written_1h: AtomicU64,
    series_written: AtomicU64,
    store_write_errors: AtomicU64,
    store_dropped: [AtomicU64; DropReason::ALL.len()],
    rows_deleted_by_retention: AtomicU64,
    flush: Histogram,
    spans_received: AtomicU64,
    spans_rejected: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Telemetry {
    pub fn scrape_ok(&self, samples: u64) {
        self.scrapes.fetch_add(1, Relaxed);
        self.samples_ingested.fetch_add(samples, Relaxed);
    }
    pub fn scrape_failed(&self, reason: ScrapeErrorReason) {
        self.scrapes.fetch_add(1, Relaxed);
        let i = ScrapeErrorReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.scrape_errors[i].fetch_add(1, Relaxed);
    }
    pub fn scrape_errors(&self, reason: ScrapeErrorReason) -> u64 {
        let i = ScrapeErrorReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.scrape_errors[i].load(Relaxed)
    }
    pub fn samples_ingested(&self) -> u64 {
        self.samples_ingested.load(Relaxed)
    }
    pub fn duplicate_series(&self, n: u64) {
        self.duplicate_series.fetch_add(n, Relaxed);
    }
    /// `delta` may be negative when series are evicted.
    pub fn active_series_delta(&self, delta: i64) {
        if delta >= 0 {
            self.active_series.fetch_add(delta as u64, Relaxed);
        } else {
            self.active_series.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }
    /// The store writer's queue, to report as `fleetscope_store_queued_rows`.
    pub fn watch_store_queue(&self, queue: Arc<Semaphore>, capacity: usize) {
        if let Ok(mut watched) = self.store_queue.lock() {
            *watched = Some((queue, capacity));
        }
    }
    /// Weighted rows waiting for the store writer or in its hands.
    pub fn store_queued_rows(&self) -> u64 {
        let watched = self.store_queue.lock().ok();
        match watched.as_deref() {
            Some(Some((queue, capacity))) => {
                capacity.saturating_sub(queue.available_permits()) as u64
            }
            _ => 0,
        }
    }
    pub fn rows_written(&self, resolution_secs: i64, n: u64) {
        match resolution_secs {
            60 => &self.rows_written_1m,
            300 => &self.rows_written_5m,
            _ => &self.rows_written_1h,
        }
        .fetch_add(n, Relaxed);
    }
    pub fn series_written(&self, n: u64) {
        self.series_written.fetch_add(n, Relaxed);
    }
    pub fn store_write_error(&self) {
        self.store_write_errors.fetch_add(1, Relaxed);
    }
    pub fn rows_dropped(&self, reason: DropReason, n: u64) {
        self.store_dropped[reason as usize].fetch_add(n, Relaxed);
    }
    pub fn rows_dropped_for(&self, reason: DropReason) -> u64 {
        self.store_dropped[reason as usize].load(Relaxed)
    }
    pub fn retention_deleted(&self, n: u64) {
        self.rows_deleted_by_retention.fetch_add(n, Relaxed);
    }
    pub fn spans_received(&self, n: u64) {
        self.spans_received.fetch_add(n, Relaxed);
    }
    pub fn spans_rejected(&self, reason: &'static str, n: u64) {
        if let Ok(mut m) = self.spans_rejected.lock() {
            *m.entry(reason).or_default() += n;
        }
    }
    pub fn flush_latency(&self, d: Duration) {
        self.flush.observe(d);
    }

    /// Renders everything in the Prometheus text format 0.0.4.
    /// `store_bytes` is read by the caller (file sizes), so this stays IO-free.
    pub fn render(
        &self,
        store_bytes: u64,
        duckdb_memory: &[(String, u64)],
        targets_up: u64,
        targets_down: u64,
    ) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            "fleetscope_scrapes_total",
            "Scrapes attempted.",
            self.scrapes.load(Relaxed),
        );
        counter(
            "fleetscope_samples_ingested_total",
            "Samples accepted from successful scrapes.",
            self.samples_ingested.load(Relaxed),
        );
        counter(
            "fleetscope_duplicate_series_total",
            "Samples dropped because the same series appeared twice in one scrape.",
            self.duplicate_series.load(Relaxed),
        );
        counter(
            "fleetscope_store_series_written_total",
            "New series rows written to DuckDB.",
            self.series_written.load(Relaxed),
        );
        counter(
            "fleetscope_store_write_errors_total",
            "DuckDB write transactions that failed.",
            self.store_write_errors.load(Relaxed),
        );
        counter(
            "fleetscope_store_retention_deleted_rows_total",
            "Rows deleted by retention: rollups, service graph edges, events.",
            self.rows_deleted_by_retention.load(Relaxed),
        );
        counter(
            "fleetscope_spans_received_total",
            "Spans decoded from OTLP and Zipkin requests.",
            self.spans_received.load(Relaxed),
        );
        out.push_str(
            "# HELP fleetscope_spans_rejected_total Spans dropped while decoding, by reason.\n",
        );
        out.push_str("# TYPE fleetscope_spans_rejected_total counter\n");
        if let Ok(m) = self.spans_rejected.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "fleetscope_spans_rejected_total{{reason=\"{}\"}} {n}",
                    reason.replace(['"', '\\', '\n'], "_")
                );
            }
        }
        out.push_str("# HELP fleetscope_scrape_errors_total Failed scrapes by reason.\n");
        out.push_str("# TYPE fleetscope_scrape_errors_total counter\n");
        for (i, r) in ScrapeErrorReason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "fleetscope_scrape_errors_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.scrape_errors[i].load(Relaxed)
            );
        }
        out.push_str(
            "# HELP fleetscope_store_dropped_rows_total Rows the store gave up on, by reason (each also logged as an error).\n",
        );
        out.push_str("# TYPE fleetscope_store_dropped_rows_total counter\n");
        for r in DropReason::ALL {
            let _ = writeln!(
                out,
                "fleetscope_store_dropped_rows_total{{reason=\"{}\"}} {}",
                r.as_str(),
                self.rows_dropped_for(r)
            );
        }
        out.push_str(
            "# HELP fleetscope_store_rows_written_total Rollup rows committed to DuckDB.\n",
        );
        out.push_str("# TYPE fleetscope_store_rows_written_total counter\n");
        for (res, c) in [
            ("1m", &self.rows_written_1m),
            ("5m", &self.rows_written_5m),
            ("1h", &self.rows_written_1h),
        ] {
            let _ = writeln!(
                out,
                "fleetscope_store_rows_written_total{{resolution=\"{res}\"}} {}",
                c.load(Relaxed)
            );
        }
        out.push_str("# HELP fleetscope_active_series Series held in the in-memory rollup.\n");
        out.push_str("# TYPE fleetscope_active_series gauge\n");
        let _ = writeln!(
            out,
            "fleetscope_active_series {}",
            self.active_series.load(Relaxed)
        );
        out.push_str(
            "# HELP fleetscope_store_queued_rows Rows waiting for the store writer or being committed (a new series counts as several); scrapes wait when it reaches the bound.\n",
        );
        out.push_str("# TYPE fleetscope_store_queued_rows gauge\n");
        let _ = writeln!(
            out,
            "fleetscope_store_queued_rows {}",
            self.store_queued_rows()
        );
        out.push_str("# HELP fleetscope_store_bytes Size of the DuckDB file and its WAL.\n");
        out.push_str("# TYPE fleetscope_store_bytes gauge\n");
        let _ = writeln!(out, "fleetscope_store_bytes {store_bytes}");
        out.push_str(
            "# HELP fleetscope_duckdb_memory_bytes Memory held by DuckDB's buffer manager, by use.\n",
        );
        out.push_str("# TYPE fleetscope_duckdb_memory_bytes gauge\n");
        for (tag, bytes) in duckdb_memory {
            let _ = writeln!(
                out,
                "fleetscope_duckdb_memory_bytes{{use=\"{}\"}} {bytes}",
                tag.to_ascii_lowercase().replace(['"', '\\', '\n'], "_")
            );
        }
        out.push_str("# HELP fleetscope_targets Scrape targets by health.\n");
        out.push_str("# TYPE fleetscope_targets gauge\n");
        let _ = writeln!(out, "fleetscope_targets{{health=\"up\"}} {targets_up}");
        let _ = writeln!(out, "fleetscope_targets{{health=\"down\"}} {targets_down}");
        out.push_str("# HELP fleetscope_store_flush_seconds Time to commit one batch to DuckDB.\n");
        out.push_str("# TYPE fleetscope_store_flush_seconds histogram\n");
        for (i, le) in FLUSH_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "fleetscope_store_flush_seconds_bucket{{le=\"{le}\"}} {}",
                self.flush.buckets[i].load(Relaxed)
            );
        }
        // Read after the buckets, and never below the last: a commit
        // observed in between must not show a bucket above +Inf.
        let count = self
            .flush
            .count
            .load(Relaxed)
            .max(self.flush.buckets[FLUSH_BUCKETS.len() - 1].load(Relaxed));
        let _ = writeln!(
            out,
            "fleetscope_store_flush_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "fleetscope_store_flush_seconds_sum {}",
            self.flush.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "fleetscope_store_flush_seconds_count {count}");
        out
    }
}
