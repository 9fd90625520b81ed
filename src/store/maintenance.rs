//! Derivation of 5m/1h rows and retention, on a thread and DuckDB connection
//! of their own.
//!
//! Owns the `watermarks` table, the stored rows of the coarser resolutions,
//! and deleting rows past retention. It must not write 1m rows or series:
//! those are the writer's, which publishes how far it got through
//! [`Published`].
//!
//! Two things shape it, both found on a 10.4 M-series fleet (100 clusters x
//! 20 nodes, 2026-12-01): one statement deriving a whole 5m window ran out of
//! DuckDB's 128 MB and failed every pass, and on the writer's thread each
//! failed try held up commits for ~13 s, so scrapes waited on the writer's
//! queue and ingest fell from 696 k to 38 k samples/s. Here, a step
//! aggregates at most a budget of (series, window) groups, in memory (see
//! `window_aggregate`), slicing the series by `sid`; each slice commits
//! with its progress, so a crash or a
//! shutdown resumes where it stopped and derives every row once; and the
//! writer never waits for any of it (DuckDB runs transactions on different
//! rows concurrently).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use duckdb::{params, Connection};
use tokio::sync::{oneshot, Semaphore};

use duckdb::arrow::array::{Array, Float64Array, Int64Array, UInt32Array, UInt64Array};
use duckdb::arrow::record_batch::RecordBatch;

use super::series_numbers::{metric_sizes, next_slice, series_in};
use super::stored_form::{arrow_error, restored, stored_batch, StoredAggregates};
use super::window_aggregate::WindowAggregator;
use super::writer::unix_now;
use super::writer::ROW_GROUP_ROWS;
use super::{Generations, Resolution, StoreError, StoreOptions};
use crate::telemetry::Telemetry;

const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// (series, window) groups one derivation step may aggregate: 64 bytes each
/// in [`WindowAggregator`], so 32 MB, allocated for the step and freed
/// after. A step DuckDB still runs out of memory in (its scan and the
/// appended rows are DuckDB's) halves the budget for the next ones.
const GROUP_BUDGET: u64 = 1 << 19;
const MIN_GROUP_BUDGET: u64 = 1 << 14;
/// A periodic pass idles this many times as long as each step kept its
/// thread busy before the next: a 10.4 M-series window was ~44 CPU s of
/// DuckDB on both cores, which all at once starved the scrapes sharing the
/// box. "Busy" is CPU time, not wall time (see [`StatementClock`]).
const IDLE_PER_BUSY: u32 = 2;
/// Statements quicker than this (every one on a small fleet) are not paced.
const PACE_FROM: Duration = Duration::from_millis(100);
/// A periodic pass waits for the writer's queue to drain before each
/// statement, but no longer than this, so derivation never stalls for good.
const MAX_YIELD: Duration = Duration::from_secs(30);

/// How much nicer than the rest of the process the maintenance thread runs.
/// Derivation can wait and scrapes cannot. With DuckDB on half the cores
/// (`default_duckdb_threads`), this took the scrapes that started late in the
/// minute of a 5 m derivation of a 10.4 M-series fleet from 940 to 0
/// (2026-12-01; the two changes were measured together).
#[cfg(target_os = "linux")]
pub(super) const MAINTENANCE_NICER_BY: libc::c_int = 10;

/// Lets the kernel run every other thread of the process first whenever
/// they compete with this one for a core.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls with no pointers. On Linux the nice value
        // belongs to a thread, and `who == 0` names the calling thread; a
        // new thread starts with its creator's value.
        let rc = unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (now + MAINTENANCE_NICER_BY).min(19))
        };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not lower the maintenance thread's priority"
            );
        }
    }
}

/// What the writer has committed, for deciding what is complete, and how
/// busy it is.
#[derive(Debug)]
pub(super) struct Published {
    /// Start of the newest committed 1m bucket.
    pub newest_minute: AtomicI64,
    /// The writer's queue budget (weighted rows): producers hold permits
    /// while their rows wait.
    pub queue: Arc<Semaphore>,
    /// Free permits below which the writer is busy: it then holds more
    /// rows, gathered or queued, than one transaction and a row group.
    pub busy_below_free: usize,
}

impl Published {
    /// More rows wait for the writer than it gathers for one commit:
    /// scrapes may soon wait on it, as at each minute's turn on a large
    /// fleet, when every target hands over its closed minute. Derivation
    /// should not compete then.
    pub(super) fn writer_busy(&self) -> bool {
        self.queue.available_permits() < self.busy_below_free
    }
}

/// One coarser resolution and where it is derived from. Names are constants,
/// never request text.
struct Derivation {
    source: Resolution,
    target: Resolution,
    /// `watermarks` entry: within the first window not fully derived, the
    /// first `sid` not derived yet (absent: none derived).
    cursor_name: &'static str,
}

const FIVE_MINUTES: Derivation = Derivation {
    source: Resolution::OneMinute,
    target: Resolution::FiveMinutes,
    cursor_name: "rollup_5m/sid",
};
const ONE_HOUR: Derivation = Derivation {
    source: Resolution::FiveMinutes,
    target: Resolution::OneHour,
    cursor_name: "rollup_1h/sid",
};

impl Derivation {
    fn width(&self) -> i64 {
        self.target.secs()
    }

    /// Start of the window `t` (Unix seconds) falls in.
    fn window_of(&self, t: i64) -> i64 {
        t.div_euclid(self.width()) * self.width()
    }

    /// `watermarks` entry: start of the first window not fully derived.
    fn watermark_name(&self) -> &'static str {
        self.target.table()
    }
}

enum Request {
    /// Run a pass now; reply when it is done.
    Pass(oneshot::Sender<()>),
    Stop,
}

/// Handle to the maintenance thread.
pub(super) struct MaintenanceThread {
    tx: mpsc::Sender<Request>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl MaintenanceThread {
    pub fn start(
        conn: Connection,
        options: StoreOptions,
        telemetry: Arc<Telemetry>,
        generations: Arc<Generations>,
        published: Arc<Published>,
    ) -> Result<MaintenanceThread, StoreError> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = Maintenance {
            conn,
            options,
            telemetry,
            generations,
            published,
            stop: stop.clone(),
            group_budget: GROUP_BUDGET,
            last_retention: None,
            up_to_date: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("store-maintenance".into())
            .spawn(move || {
                lower_this_threads_priority();
                state.run(rx)
            })
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(MaintenanceThread {
            tx,
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Derives everything complete and applies retention if due; returns
    /// when done.
    pub async fn pass(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Request::Pass(reply))
            .map_err(|_| StoreError::WriterGone)?;
        done.await.map_err(|_| StoreError::WriterGone)
    }

    /// Stops between two statements; what is committed stays, the rest is
    /// derived after the next start.
    pub async fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Request::Stop);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Hands the memory a derivation freed back to the system. glibc keeps
/// freed memory in the arena of the thread that freed it, so without this
/// what a window passed through on this thread (Arrow chunks, rows on their
/// way to the appender, smaller than `serve`'s mmap threshold) stays
/// resident until the next window, beside every later peak of the scrapers'
/// own arenas. DuckDB's own memory is not glibc's and is not touched.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages; it takes the arenas' locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

struct Maintenance {
    conn: Connection,
    options: StoreOptions,
    telemetry: Arc<Telemetry>,
    generations: Arc<Generations>,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
    group_budget: u64,
    last_retention: Option<Instant>,
    /// Where each derivation (by `watermark_name`) stood when this thread
    /// last looked. It is the only one to write watermarks, so a pass whose
    /// horizon completes no window past that has nothing to derive and runs
    /// no statement. Polling with statements every 5 s (two transactions,
    /// eight statements, each parsed, bound and planned anew) was a quarter
    /// of this thread's CPU between derivations on a 1 M-series fleet at
    /// 30 s (2026-12-03).
    up_to_date: HashMap<&'static str, UpToDate>,
}

impl Maintenance {
    fn run(&mut self, rx: mpsc::Receiver<Request>) {
        loop {
            let reply = match rx.recv_timeout(MAINTENANCE_EVERY) {
                Ok(Request::Pass(reply)) => Some(reply),
                Err(RecvTimeoutError::Timeout) => None,
                Ok(Request::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            };
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            self.pass(reply.is_none());
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
        }
    }

    /// `paced`: a periodic pass, which yields to the writer and leaves the
    /// CPU to scrapes between statements; one someone waits for is not.
    fn pass(&mut self, paced: bool) {
        let now = unix_now();
        let newest_minute = self.published.newest_minute.load(Ordering::Acquire);
        if let Some(horizon) =
            derivation_horizon(now, newest_minute, self.options.derive_lateness_secs)
        {
            self.derive_logged(&FIVE_MINUTES, horizon, paced);
        }
        match self.watermark(&FIVE_MINUTES) {
            Ok(Some(wm_5m)) => self.derive_logged(&ONE_HOUR, wm_5m, paced),
            // No 5 m window derived yet: no hour is complete either.
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading watermark failed"),
        }
        if !self.stop.load(Ordering::Relaxed)
            && self
                .last_retention
                .is_none_or(|t| t.elapsed() >= RETENTION_EVERY)
        {
            self.last_retention = Some(Instant::now());
            self.apply_retention(now);
        }
    }

    /// `d`'s watermark, read from the store unless this thread knows it.
    fn watermark(&mut self, d: &Derivation) -> Result<Option<i64>, duckdb::Error> {
        match self.up_to_date.get(d.watermark_name()) {
            Some(UpToDate::Watermark(wm)) => Ok(Some(*wm)),
            Some(UpToDate::NothingBefore(_)) => Ok(None),
            None => watermark(&self.conn, d.watermark_name()),
        }
    }

    fn derive_logged(&mut self, d: &Derivation, horizon: i64, paced: bool) {
        let name = d.watermark_name();
        let complete_until = d.window_of(horizon);
        if self
            .up_to_date
            .get(name)
            .is_some_and(|known| complete_until <= known.next_window())
        {
            return;
        }
        // Looked up again unless this run ends up to date: a step that
        // failed may or may not have committed.
        self.up_to_date.remove(name);
        let result = derive(
            &self.conn,
            d,
            horizon,
            &mut self.group_budget,
            paced.then_some(&*self.published),
            &self.stop,
        );
        let (rows, error) = match result {
            Ok(Derived { rows, up_to_date }) => {
                if let Some(known) = up_to_date {
                    self.up_to_date.insert(name, known);
                }
                (rows, None)
            }
            Err((rows, e)) => (rows, Some(e)),
        };
        self.telemetry.rows_written(d.width(), rows);
        if rows > 0 {
            self.generations.bump(d.target);
            release_freed_memory();
        }
        if let Some(e) = error {
            tracing::error!(error = %e, resolution = d.target.as_str(), "deriving rollups failed");
        }
    }

    /// Start of the first window of `d` not derived yet, or None when
    /// unknown (nothing derived, or the watermark unreadable).
    fn derived_until(&mut self, d: &Derivation) -> Option<i64> {
        if let Some(known) = self.up_to_date.get(d.watermark_name()) {
            return Some(known.next_window());
        }
        watermark(&self.conn, d.watermark_name()).ok().flatten()
    }

    fn apply_retention(&mut self, now: i64) {
        // A source row outlives its retention until its window is derived:
        // after downtime longer than the 1 m retention, the windows before
        // the stop complete only once new minutes are committed.
        let one_minute_until = self.derived_until(&FIVE_MINUTES).unwrap_or(i64::MIN);
        let five_minutes_until = self.derived_until(&ONE_HOUR).unwrap_or(i64::MIN);
        let r = &self.options.retention;
        let rollups = [
            (Resolution::OneMinute, r.one_minute, one_minute_until),
            (Resolution::FiveMinutes, r.five_minutes, five_minutes_until),
            (Resolution::OneHour, r.one_hour, i64::MAX),
        ]
        .map(|(resolution, keep, derived_until)| {
            let table = resolution.stored_table();
            let sql = format!("DELETE FROM {table} WHERE ts < ?");
            let cutoff = (now - keep.as_secs() as i64).min(derived_until);
            (table, sql, cutoff, Some(resolution))
        });
        // The service graph's edges by their minute (Unix seconds); events
        // by when they last counted (Unix milliseconds), so an alert still
        // firing (its lease renewed by each notification) keeps its rows.
        // Neither is read through a generation.
        let others = [
            (
                "graph_edges_1m",
                "DELETE FROM graph_edges_1m WHERE ts < ?".to_string(),
                now - r.graph.as_secs() as i64,
                None,
            ),
            (
                "events",
                "DELETE FROM events WHERE coalesce(end_ms, time_ms) < ?".to_string(),
                (now - r.events.as_secs() as i64).saturating_mul(1000),
                None,
            ),
        ];
        for (table, sql, cutoff, resolution) in rollups.into_iter().chain(others) {
            match self.conn.execute(&sql, [cutoff]) {
                Ok(n) => {
                    self.telemetry.retention_deleted(n as u64);
                    if let Some(resolution) = resolution.filter(|_| n > 0) {
                        self.generations.bump(resolution);
                    }
                }
                Err(e) => tracing::error!(error = %e, table, "retention failed"),
            }
        }
    }
}

/// Up to where 5 m windows are complete, or None before the writer has
/// committed a minute. A window is complete when the wall clock is past it
/// by the lateness AND data that much newer has been committed: a backfill
/// (or a fleetscope catching up after downtime) is derived as it lands,
/// never skipped behind the watermark. "Nothing committed" must not read as
/// "everything complete": a pass that saw no minute yet, and then the first
/// rows committed under it, once derived a part of a window and set the
/// watermark to the end of time (i64::MIN - 120 wrapped), which stopped
/// derivation for good (10.4 M-series run, 2026-12-01).
fn derivation_horizon(now: i64, newest_minute: i64, lateness_secs: i64) -> Option<i64> {
    if newest_minute == i64::MIN {
        return None;
    }
    Some(
        now.min(newest_minute.saturating_add(60))
            .saturating_sub(lateness_secs),
    )
}

fn watermark(conn: &Connection, name: &str) -> Result<Option<i64>, duckdb::Error> {
    let mut stmt = conn.prepare("SELECT ts FROM watermarks WHERE name = ?")?;
    let mut rows = stmt.query([name])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// Derives the complete windows of `d.target` up to `horizon` from
/// `d.source`'s stored rows (aggregated in memory by `window_aggregate`;
/// rows go to the target's stored table in stored form). The series are
/// sliced by `sid` so that no step aggregates more than `group_budget`
/// (series, window) groups (see `series_numbers::next_slice`); a small
/// store derives several windows in one step. Each step commits with the watermark and
/// `sid` cursor it reached, so every window is derived exactly once across
/// crashes and stops. A row committed to a window after its slice was
/// derived is not in the coarser row: the lateness allowed before a window
/// is derived is what keeps rows from coming that late. Returns the rows
/// written and, when it got everything complete, where that left it; on
/// an error, the rows written before it.
fn derive(
    conn: &Connection,
    d: &Derivation,
    horizon: i64,
    group_budget: &mut u64,
    yield_to: Option<&Published>,
    stop: &AtomicBool,
) -> Result<Derived, (u64, StoreError)> {
    let end = d.window_of(horizon);
    let mut written = 0u64;
    let mut successes = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if let Some(writer) = yield_to {
            let waiting = Instant::now();
            while writer.writer_busy() && waiting.elapsed() < MAX_YIELD {
                idle(Duration::from_millis(100), stop);
            }
        }
        let clock = StatementClock::start();
        let step = derive_step(conn, d, end, *group_budget);
        match step {
            Ok(Step::UpToDate(known)) => {
                return Ok(Derived {
                    rows: written,
                    up_to_date: Some(known),
                })
            }
            Ok(Step::NoSourceRows) => break,
            Ok(Step::Derived(rows)) => {
                written += rows;
                successes += 1;
                let busy = clock.busy();
                if yield_to.is_some() && busy >= PACE_FROM {
                    idle(busy * IDLE_PER_BUSY, stop);
                }
                // Grow back after a halving, once statements pass again.
                if successes.is_multiple_of(16) {
                    *group_budget = (*group_budget * 2).min(GROUP_BUDGET);
                }
            }
            Err(e) => {
                if e.to_string().contains("Out of Memory") && *group_budget > MIN_GROUP_BUDGET {
                    *group_budget /= 2;
                    tracing::warn!(
                        groups = *group_budget,
                        "derivation ran out of DuckDB memory; retrying in smaller slices"
                    );
                    continue;
                }
                return Err((written, e));
            }
        }
    }
    Ok(Derived {
        rows: written,
        up_to_date: None,
    })
}

/// What a run of [`derive`] did.
struct Derived {
    rows: u64,
    /// Where it stopped with every complete window derived (None: stopped
    /// early, or the source has no rows).
    up_to_date: Option<UpToDate>,
}

/// Where a derivation stands with nothing complete left to derive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum UpToDate {
    /// Every window before this is derived (the stored watermark).
    Watermark(i64),
    /// Nothing derived yet, and the source has no row before this window
    /// (rows backfilled before it wait until the horizon passes it).
    NothingBefore(i64),
}

impl UpToDate {
    /// The first window that may still need deriving.
    fn next_window(self) -> i64 {
        match self {
            UpToDate::Watermark(t) | UpToDate::NothingBefore(t) => t,
        }
    }
}

/// What one [`derive_step`] did.
enum Step {
    /// Rows written (none for a run of windows without source rows).
    Derived(u64),
    /// Nothing complete left.
    UpToDate(UpToDate),
    NoSourceRows,
}

/// How long a derivation step kept its thread busy, for pacing. Wall time
/// misleads on a loaded box: a niced step that waits for the CPU takes
/// longer by the wall clock, and twice that in idling left one window of a
/// 10.4 M-series fleet ~10 minutes to derive, behind the 5 minutes that
/// bring the next (2026-12-02). So this counts the calling thread's CPU
/// time: a step's work runs there (DuckDB's streamed scan and append, and
/// the aggregation in memory).
struct StatementClock {
    wall: Instant,
    thread_cpu: Option<Duration>,
}

impl StatementClock {
    fn start() -> StatementClock {
        StatementClock {
            wall: Instant::now(),
            thread_cpu: thread_cpu_time(),
        }
    }

    fn busy(&self) -> Duration {
        match (self.thread_cpu, thread_cpu_time()) {
            (Some(before), Some(now)) => now.saturating_sub(before),
            _ => self.wall.elapsed(),
        }
    }
}

/// CPU time the calling thread has used, where the platform tells.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call's duration.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            return Some(Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            ));
        }
    }
    None
}

/// Sleeps for `span`, returning early once `stop` is set.
fn idle(span: Duration, stop: &AtomicBool) {
    let until = Instant::now() + span;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// One step of [`derive`], in one transaction: Some(rows written), or None
/// when nothing complete is left below `end`. Everything it reads is of one
/// snapshot, so the slice's sizes cover every row it aggregates.
fn derive_step(
    conn: &Connection,
    d: &Derivation,
    end: i64,
    group_budget: u64,
) -> Result<Step, StoreError> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = derive_step_in_transaction(conn, d, end, group_budget)
        .and_then(|rows| Ok(conn.execute_batch("COMMIT").map(|_| rows)?));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn derive_step_in_transaction(
    conn: &Connection,
    d: &Derivation,
    end: i64,
    group_budget: u64,
) -> Result<Step, StoreError> {
    let (source, width) = (d.source.stored_table(), d.width());
    let cursor = watermark(conn, d.cursor_name)?.unwrap_or(0);
    let standing = match watermark(conn, d.watermark_name())? {
        Some(wm) => UpToDate::Watermark(wm),
        None => {
            let sql = format!("SELECT min(ts) FROM {source}");
            let first: Option<i64> = conn.query_row(&sql, [], |r| r.get(0))?;
            match first {
                Some(t) => UpToDate::NothingBefore(d.window_of(t)),
                None => return Ok(Step::NoSourceRows),
            }
        }
    };
    let start = standing.next_window();
    if end <= start {
        return Ok(Step::UpToDate(standing));
    }
    // Skip windows without rows (downtime) instead of slicing them.
    let start = if cursor == 0 {
        let sql = format!("SELECT min(ts) FROM {source} WHERE ts >= ? AND ts < ?");
        let next: Option<i64> = conn.query_row(&sql, params![start, end], |r| r.get(0))?;
        match next {
            Some(t) => d.window_of(t),
            None => {
                set_progress(conn, d, end, 0)?;
                return Ok(Step::Derived(0));
            }
        }
    } else {
        start
    };
    let sizes = metric_sizes(conn)?;
    let series = series_in(&sizes).max(1);
    // Every `sid` is below 2^63 (see `series_numbers`), so a cursor, stored
    // as BIGINT, converts both ways.
    let (window_end, sid_from, sid_to) = if cursor == 0 && series <= group_budget {
        let windows = (group_budget / series).max(1) as i64;
        (end.min(start + windows * width), 0, None)
    } else {
        let from = u64::try_from(cursor).unwrap_or(0);
        (start + width, from, next_slice(&sizes, from, group_budget))
    };
    let mut groups = WindowAggregator::new(&sizes, sid_from, sid_to, start, window_end, width);
    aggregate_rows(
        conn,
        source,
        (start, window_end),
        (sid_from, sid_to),
        &mut groups,
    )?;
    let mut appender = conn.appender(d.target.stored_table())?;
    let rows = groups.drain(ROW_GROUP_ROWS, |chunk| {
        appender.append_record_batch(stored_batch(chunk).map_err(arrow_error)?)
    })?;
    appender.flush()?;
    drop(appender);
    match sid_to {
        None => set_progress(conn, d, window_end, 0)?,
        Some(to) => set_progress(conn, d, start, i64::try_from(to).unwrap_or(i64::MAX))?,
    }
    Ok(Step::Derived(rows as u64))
}

/// Feeds `groups` every row of `table` (a stored table) in the windows
/// `ts_range` and the `sid` slice `sid_range`, restored to complete
/// aggregates. Streams DuckDB's chunks, so memory stays one chunk.
fn aggregate_rows(
    conn: &Connection,
    table: &str,
    (start, end): (i64, i64),
    (from, to): (u64, Option<u64>),
    groups: &mut WindowAggregator,
) -> Result<(), StoreError> {
    let sql = format!(
        "SELECT sid, ts, count, sum, min, max, first, last, increase FROM {table}
         WHERE ts >= ? AND ts < ? AND sid >= ? AND sid < ?"
    );
    let mut stmt = conn.prepare(&sql)?;
    // As UBIGINT, the column's type: compared as another type, DuckDB casts
    // the column and cannot skip row groups by `sid`.
    drop(stmt.stream_arrow(params![start, end, from, to.unwrap_or(u64::MAX)])?);
    while let Some(chunk) = stmt.step()? {
        let batch = RecordBatch::from(&chunk);
        let sids = column::<UInt64Array>(&batch, 0)?;
        let ts = column::<Int64Array>(&batch, 1)?;
        let counts = column::<UInt32Array>(&batch, 2)?;
        let [sums, mins, maxes, firsts, lasts, increases] =
            [3, 4, 5, 6, 7, 8].map(|i| column::<Float64Array>(&batch, i));
        let (sums, mins, maxes, firsts) = (sums?, mins?, maxes?, firsts?);
        let (lasts, increases) = (lasts?, increases?);
        let nullable = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..batch.num_rows() {
            let stored = StoredAggregates {
                sum: nullable(sums, i),
                min: nullable(mins, i),
                max: nullable(maxes, i),
                first: nullable(firsts, i),
            };
            let row = restored(
                counts.value(i),
                stored,
                nullable(lasts, i).unwrap_or(f64::NAN),
                nullable(increases, i).unwrap_or(0.0),
            );
            groups
                .add(sids.value(i), ts.value(i), &row)
                .map_err(|e| StoreError::Inconsistent(e.to_string()))?;
        }
    }
    Ok(())
}

/// Column `i` of a batch DuckDB returned, as the Arrow type its SQL type
/// maps to.
fn column<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, StoreError> {
    batch.column(i).as_any().downcast_ref::<T>().ok_or_else(|| {
        StoreError::Inconsistent(format!(
            "column {i} of a rollup table read as {:?}",
            batch.column(i).data_type()
        ))
    })
}

/// Windows before `watermark` are derived, and in the one it starts, series
/// numbered below `cursor`.
fn set_progress(
    conn: &Connection,
    d: &Derivation,
    watermark: i64,
    cursor: i64,
) -> Result<(), duckdb::Error> {
    conn.execute(
        "INSERT OR REPLACE INTO watermarks VALUES (?, ?), (?, ?)",
        params![d.watermark_name(), watermark, d.cursor_name, cursor],
    )?;
    Ok(())
}

/// Derives 5m (or 1h) rows in slices of `budget` groups, for tests.
#[cfg(test)]
pub(super) fn derive_for_test(
    conn: &Connection,
    five_minutes: bool,
    horizon: i64,
    budget: u64,
) -> u64 {
    let d = if five_minutes {
        &FIVE_MINUTES
    } else {
        &ONE_HOUR
    };
    let mut budget = budget;
    derive(conn, d, horizon, &mut budget, None, &AtomicBool::new(false))
        .map_err(|(_, e)| e)
        .unwrap()
        .rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pacing counts CPU, not waiting: a statement that sat behind busier
    /// threads for as long as another computed must not earn the same idle.
    #[test]
    #[cfg(unix)]
    fn a_statement_clock_counts_cpu_time_not_waiting() {
        fn spin_for_cpu(span: Duration) {
            let start = thread_cpu_time().unwrap();
            let mut x = 0u64;
            while thread_cpu_time().unwrap() < start + span {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let waiting = StatementClock::start();
        std::thread::sleep(Duration::from_millis(200));
        let waited = waiting.busy();
        assert!(waited < Duration::from_millis(50), "{waited:?}");

        let computing = StatementClock::start();
        spin_for_cpu(Duration::from_millis(100));
        assert!(computing.busy() >= Duration::from_millis(100));
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        conn
    }

    type Row5m = (u64, i64, u32, f64, f64, f64, f64, f64, f64);

    /// Complete 5 m rows, as readers see them.
    fn rows_5m(conn: &Connection) -> Vec<Row5m> {
        let mut stmt = conn
            .prepare(
                "SELECT sid, ts, count, sum, min, max, first, last, increase
                 FROM rollup_5m ORDER BY sid, ts",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn derive_is_exact_and_moves_the_watermark() {
        let conn = store();
        conn.execute_batch(
            "INSERT INTO rollup_1m_rows VALUES (1, 600, 2, 3, 1, 2, 1, 2, 1), (1, 660, 2, 7, 3, 4, 3, 4, 2), (1, 900, 1, 9, 9, 9, 9, 9, 0)",
        )
        .unwrap();
        assert_eq!(
            derive_for_test(&conn, true, 1000, GROUP_BUDGET),
            1,
            "only the complete window"
        );
        assert_eq!(watermark(&conn, "rollup_5m").unwrap(), Some(900));
        assert_eq!(
            rows_5m(&conn),
            vec![(1, 600, 4, 10.0, 1.0, 4.0, 1.0, 4.0, 3.0)]
        );
        assert_eq!(
            derive_for_test(&conn, true, 1000, GROUP_BUDGET),
            0,
            "derived once"
        );
        assert_eq!(derive_for_test(&conn, true, 1200, GROUP_BUDGET), 1);
    }

    /// A fleet larger than the group budget is derived in `sid` slices, one
    /// window at a time, to the same rows as in one statement; a pass
    /// stopped between slices resumes without deriving a row twice; a late
    /// row of a metric first seen after the pass began is not skipped; and
    /// empty windows (downtime) are stepped over.
    #[test]
    fn slices_resume_and_match_one_statement() {
        use crate::store::series_numbers::sid;
        // Metric 1 has 700 series, metric 2 has 300.
        let fill = |conn: &Connection| {
            conn.execute_batch(
                "CREATE TEMP TABLE fleet AS SELECT CASE WHEN s <= 700 THEN (1::UBIGINT << 32) | s
                     ELSE (2::UBIGINT << 32) | (s - 700) END AS sid FROM range(1, 1001) a(s);
                 INSERT INTO series (id, metric, kind, other_labels, first_seen, sid)
                 SELECT sid, (sid >> 32)::VARCHAR, 'gauge', '{}', 0, sid FROM fleet;
                 INSERT INTO rollup_1m_rows
                 SELECT sid, 600 + m * 60, 2, NULL, NULL, NULL, NULL, (sid & 4095) * 10 + m, m
                 FROM fleet, range(0, 10) b(m);
                 -- a late row of metric 3, not in `series` when the pass began
                 INSERT INTO rollup_1m_rows VALUES ((3::UBIGINT << 32) | 1, 660, 1, NULL, NULL, NULL, NULL, 7, 1);
                 -- after an hour of downtime
                 INSERT INTO rollup_1m_rows
                 SELECT sid, 4800 + m * 60, 2, NULL, NULL, NULL, NULL, sid & 4095, 0
                 FROM fleet, range(0, 5) b(m);",
            )
            .unwrap();
        };
        let whole = store();
        fill(&whole);
        assert_eq!(derive_for_test(&whole, true, 5400, GROUP_BUDGET), 3001);
        let want = rows_5m(&whole);

        let sliced = store();
        fill(&sliced);
        // One slice, then a stop (as at shutdown), then the rest.
        let mut budget = 300;
        let first = derive_step(&sliced, &FIVE_MINUTES, 5400, budget).unwrap();
        assert!(
            matches!(first, Step::Derived(300)),
            "the first 300 series of metric 1"
        );
        assert_eq!(
            watermark(&sliced, "rollup_5m/sid").unwrap(),
            Some(sid(1, 301) as i64)
        );
        let stop = AtomicBool::new(false);
        let rest = derive(&sliced, &FIVE_MINUTES, 5400, &mut budget, None, &stop).unwrap();
        assert_eq!(300 + rest.rows, 3001);
        assert_eq!(rest.up_to_date, Some(UpToDate::Watermark(5400)));
        assert_eq!(rows_5m(&sliced), want);
        assert_eq!(watermark(&sliced, "rollup_5m").unwrap(), Some(5400));
        assert_eq!(watermark(&sliced, "rollup_5m/sid").unwrap(), Some(0));
        assert!(
            want.iter().any(|r| r.0 == sid(3, 1) && r.1 == 600),
            "the late row's series is derived"
        );
    }

    /// The in-memory aggregation gives what DuckDB's own aggregates give
    /// over the same rows (an independent oracle), for gauges that move
    /// inside the minute, steady ones and counters, over several metrics,
    /// slices and windows, and 1 h rows from 5 m rows likewise.
    #[test]
    fn derived_rows_equal_sql_aggregates_of_the_finer_rows() {
        let conn = store();
        conn.execute_batch(
            "CREATE TEMP TABLE fleet AS SELECT ((s % 7 + 1)::UBIGINT << 32) | (s // 7 + 1) AS sid
                 FROM range(0, 2000) a(s);
             INSERT INTO series (id, metric, kind, other_labels, first_seen, sid)
             SELECT sid, (sid >> 32)::VARCHAR, 'gauge', '{}', 0, sid FROM fleet;
             CREATE TEMP TABLE raw AS
             SELECT sid, 3600 + m * 60 AS ts, 1 + hash(sid, m) % 4 AS count,
                 (hash(sid, m, 1) % 1000) / 8.0 AS a, (hash(sid, m, 2) % 1000) / 8.0 AS b,
                 CASE WHEN sid % 3 = 0 THEN 5.0 ELSE (hash(sid, m, 3) % 1000) / 4.0 END AS c
             FROM fleet, range(0, 130) b(m);
             INSERT INTO rollup_1m_rows
             SELECT sid, ts, count,
                 CASE WHEN count > 2 THEN least(a, b, c) + greatest(a, b, c) + c * (count - 2) END,
                 CASE WHEN least(a, b, c) < least(a, c) THEN least(a, b, c) END,
                 CASE WHEN greatest(a, b, c) > greatest(a, c) THEN greatest(a, b, c) END,
                 CASE WHEN a <> c THEN a END, c, greatest(c - a, 0)
             FROM raw;",
        )
        .unwrap();
        let oracle = |source: &str, width: i64, target: &str| {
            format!(
                "SELECT count(*) FROM (
                     SELECT sid, (ts // {width}) * {width} AS bucket, sum(count) AS count,
                         sum(sum) AS sum, min(min) AS min, max(max) AS max,
                         arg_min(first, ts) AS first, arg_max(last, ts) AS last,
                         sum(increase) AS increase
                     FROM {source} GROUP BY sid, bucket HAVING bucket + {width} <= 3600 + 120 * 60
                 ) want FULL JOIN {target} got ON got.sid = want.sid AND got.ts = want.bucket
                 WHERE got.count IS DISTINCT FROM want.count OR got.first IS DISTINCT FROM want.first
                     OR got.last IS DISTINCT FROM want.last OR got.min IS DISTINCT FROM want.min
                     OR got.max IS DISTINCT FROM want.max
                     OR abs(got.sum - want.sum) > 1e-9 * abs(want.sum)
                     OR abs(got.increase - want.increase) > 1e-9 * abs(want.increase)
                     OR got.sum IS NULL OR want.sum IS NULL"
            )
        };
        let mut budget = 500;
        let stop = AtomicBool::new(false);
        for (d, source, width, target, rows) in [
            (&FIVE_MINUTES, "rollup_1m", 300, "rollup_5m", 2000 * 24),
            (&ONE_HOUR, "rollup_5m", 3600, "rollup_1h", 2000 * 2),
        ] {
            let written = derive(&conn, d, 3600 + 120 * 60, &mut budget, None, &stop)
                .map_err(|(_, e)| e)
                .unwrap()
                .rows;
            assert_eq!(written, rows, "{target}");
            let wrong: i64 = conn
                .query_row(&oracle(source, width, target), [], |r| r.get(0))
                .unwrap();
            assert_eq!(wrong, 0, "{target} rows that differ from SQL's");
        }
    }

    #[test]
    fn nothing_is_complete_before_a_minute_is_committed() {
        assert_eq!(derivation_horizon(10_000, i64::MIN, 180), None);
        assert_eq!(derivation_horizon(10_000, 9_000, 180), Some(8_880));
        // The wall clock bounds a minute stamped in the future.
        assert_eq!(derivation_horizon(10_000, 20_000, 180), Some(9_820));
        assert_eq!(
            derivation_horizon(10_000, i64::MIN + 1, 180),
            Some(i64::MIN)
        );
    }

    fn transactions_so_far(conn: &Connection) -> i64 {
        conn.query_row("SELECT txid_current()", [], |r| r.get(0))
            .unwrap()
    }

    /// A pass derives what is complete once, and a pass with nothing new
    /// to derive opens no transaction: DuckDB's transaction counter moves
    /// only by the probes reading it.
    #[test]
    fn a_pass_with_nothing_complete_runs_no_statement() {
        let conn = store();
        conn.execute_batch(
            "INSERT INTO series (id, metric, kind, other_labels, first_seen, sid)
                 VALUES (4294967297, 'm', 'gauge', '{}', 0, 4294967297);
             INSERT INTO rollup_1m_rows SELECT 4294967297, 600 + m * 60, 1, NULL, NULL, NULL,
                 NULL, m, 0 FROM range(0, 10) r(m);",
        )
        .unwrap();
        let probe = conn.try_clone().unwrap();
        let mut maintenance = maintenance_of(conn, 1140);
        // The horizon is the clock's: 1140 + 60 - 180 = 1020 -> 600..900.
        maintenance.options.derive_lateness_secs = 180;
        maintenance.pass(false);
        assert_eq!(rows_5m(&probe).len(), 1);
        let quiet = {
            let before = transactions_so_far(&probe);
            transactions_so_far(&probe) - before
        };
        let before = transactions_so_far(&probe);
        maintenance.pass(false);
        maintenance.pass(true);
        assert_eq!(transactions_so_far(&probe) - before, quiet);
        assert_eq!(rows_5m(&probe).len(), 1);

        // A newer minute committed completes the next window.
        maintenance
            .published
            .newest_minute
            .store(1320, Ordering::Release);
        maintenance.pass(false);
        assert_eq!(rows_5m(&probe).len(), 2);
    }

    /// Maintenance on `conn` whose writer has committed up to
    /// `newest_minute`, its retention not yet due.
    fn maintenance_of(conn: Connection, newest_minute: i64) -> Maintenance {
        Maintenance {
            conn,
            options: StoreOptions::new("/nonexistent", Default::default()),
            telemetry: Arc::new(Telemetry::default()),
            generations: Arc::new(Generations::default()),
            published: Arc::new(Published {
                newest_minute: AtomicI64::new(newest_minute),
                queue: Arc::new(Semaphore::new(1)),
                busy_below_free: 0,
            }),
            stop: Arc::new(AtomicBool::new(false)),
            group_budget: GROUP_BUDGET,
            last_retention: Some(Instant::now()),
            up_to_date: HashMap::new(),
        }
    }

    /// The service graph's edges and events are kept for their own
    /// retention (30 days by default), not forever; an alert that has
    /// fired for longer than that, its lease renewed by each notification,
    /// stays.
    #[test]
    fn retention_removes_old_graph_edges_and_events_but_not_a_firing_alert() {
        let conn = store();
        let probe = conn.try_clone().unwrap();
        let day = 86_400i64;
        let now = 100 * day;
        conn.execute_batch(&format!(
            "INSERT INTO graph_edges_1m (ts, source, target, kind, requests, errors, paired)
                 VALUES ({old}, 'a', 'b', 'sync', 1, 0, 0), ({recent}, 'a', 'b', 'sync', 1, 0, 0);
             INSERT INTO events (time_ms, end_ms, source, reason, severity, fingerprint) VALUES
                 ({old}000, NULL, 'kubernetes', 'BackOff', 'Warning', NULL),
                 ({old}000, {recent}000, 'kubernetes', 'BackOff', 'Warning', 'uid-1'),
                 ({old}000, {old}000, 'alert', 'Burn', 'critical', 'f1'),
                 ({old}000, {lease}000, 'alert', 'Burn', 'critical', 'f1'),
                 ({recent}000, NULL, 'kubernetes', 'Pulled', 'Normal', NULL);",
            old = now - 31 * day,
            recent = now - day,
            lease = now + day / 2,
        ))
        .unwrap();
        let mut maintenance = maintenance_of(conn, i64::MIN);
        maintenance.apply_retention(now);
        let edges: Vec<i64> = probe
            .prepare("SELECT ts FROM graph_edges_1m")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(edges, [now - day]);
        let mut events: Vec<(String, Option<i64>)> = probe
            .prepare("SELECT reason, end_ms FROM events")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        events.sort();
        assert_eq!(
            events,
            [
                ("BackOff".to_string(), Some((now - day) * 1000)),
                ("Burn".to_string(), Some((now + day / 2) * 1000)),
                ("Pulled".to_string(), None),
            ]
        );
    }

    /// After downtime longer than the 1 m retention, the windows before
    /// the stop are not derived yet (no newer minute completes them):
    /// their 1 m rows stay past their retention until they are, and so do
    /// 5 m rows an hour not derived yet needs; derived ones go.
    #[test]
    fn retention_keeps_rows_of_windows_not_derived_yet() {
        let conn = store();
        let probe = conn.try_clone().unwrap();
        let day = 86_400i64;
        let stop = 10 * day;
        let now = stop + 3 * day;
        conn.execute_batch(&format!(
            "INSERT INTO rollup_1m_rows VALUES
                 (1, {a}, 1, NULL, NULL, NULL, NULL, 1, 0),
                 (1, {b}, 1, NULL, NULL, NULL, NULL, 1, 0);
             INSERT INTO rollup_5m_rows VALUES
                 (1, {h}, 1, NULL, NULL, NULL, NULL, 1, 0),
                 (1, {a}, 1, NULL, NULL, NULL, NULL, 1, 0);
             INSERT INTO watermarks VALUES ('rollup_5m', {b}), ('rollup_1h', {a});",
            a = stop - 600,
            b = stop - 300,
            h = stop - 4200,
        ))
        .unwrap();
        let mut maintenance = maintenance_of(conn, stop - 300);
        maintenance.options.retention.one_minute = Duration::from_secs(2 * day as u64);
        maintenance.options.retention.five_minutes = Duration::from_secs(day as u64);
        maintenance.apply_retention(now);
        let ts_of = |table: &str| -> Vec<i64> {
            probe
                .prepare(&format!("SELECT ts FROM {table} ORDER BY ts"))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(ts_of("rollup_1m_rows"), [stop - 300]);
        assert_eq!(ts_of("rollup_5m_rows"), [stop - 600]);
    }

    #[test]
    fn a_stopped_pass_writes_nothing() {
        let conn = store();
        conn.execute_batch(
            "INSERT INTO rollup_1m_rows VALUES (1, 600, 1, NULL, NULL, NULL, NULL, 1, 0)",
        )
        .unwrap();
        let mut budget = GROUP_BUDGET;
        let stopped = AtomicBool::new(true);
        assert_eq!(
            derive(&conn, &FIVE_MINUTES, 1200, &mut budget, None, &stopped)
                .unwrap()
                .rows,
            0
        );
        assert_eq!(watermark(&conn, "rollup_5m").unwrap(), None);
    }
}
