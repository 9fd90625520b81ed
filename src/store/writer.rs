//! The single writer thread: batches in, one DuckDB transaction per batch
//! group. Derivation of 5m/1h rows and retention are `maintenance`'s, on a
//! thread of their own, so a commit never waits for them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use duckdb::arrow::array::{ArrayRef, Int64Array, StringArray, UInt64Array};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::{params, Connection};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::maintenance::{MaintenanceThread, Published};
use super::series_numbers::SeriesNumbers;
use super::stored_form::{arrow_error, PackedRows, StoredColumns};
use super::unstored::{Unstored, UnstoredSeries};
use super::{
    DirLock, Generations, Resolution, StoreError, StoreHealth, StoreOptions, LABEL_COLUMNS,
};
use crate::graph::model::{EdgeRow, Event, Node};
use crate::rollup::{LabelSet, RollupRow, SeriesRow};
use crate::telemetry::{DropReason, Telemetry};

/// DuckDB's row group. A transaction that fills row groups has them
/// compressed straight into the database file; smaller ones are written to
/// the WAL uncompressed and compressed again at the next checkpoint, which
/// was a third of the writer's CPU.
pub(super) const ROW_GROUP_ROWS: usize = 122_880;
/// Rows (new series aside, see [`MAX_GATHER_SERIES`]) the writer gathers into one
/// transaction at most: a whole minute of a 1 M-series fleet. Everything in
/// a transaction is held until it commits (rollup rows packed, ~30 bytes
/// each, and built into Arrow arrays a row group at a time), so this bounds
/// the writer's memory.
///
/// Why a whole minute: the rows of a transaction are sorted before they are
/// stored, and a minute sorted as one packs into fewer bytes than the same
/// minute in pieces sorted each on its own. On a 1 M-series fleet's stored
/// rows (2026-12-02), 10.3 bytes per 1m row against 12.8 for the three
/// pieces of three row groups each that the writer used to commit.
const MAX_GATHER_ROWS: usize = 10 * ROW_GROUP_ROWS;
/// New series one transaction takes at most while the writer keeps up.
/// They are stored at once, through the WAL: that holds the least in
/// memory, and a 1 M-series fleet's first scrape is stored in time so.
const MAX_GATHER_SERIES: usize = 46_080;
/// ...and while it is behind (a fleet's first scrape, or a fleet-wide
/// rollout, brings more new series than it stores in a scrape interval):
/// a row group, stored whole, which DuckDB writes compressed straight into
/// the file (see `unstored`). 26 M new series took the writer 35 % less
/// time so (2026-12-02), at ~10 % more peak memory on a 1 M-series fleet
/// had it been used there.
const MAX_GATHER_SERIES_BEHIND: usize = ROW_GROUP_ROWS;
/// New series built into Arrow arrays and appended at a time.
const SERIES_APPEND_SLICE: usize = 8_192;
/// New series held unstored at most when commits keep failing (a full
/// disk); normally fewer than a row group wait.
const MAX_UNSTORED_SERIES: usize = 8 * ROW_GROUP_ROWS;
/// A new series (labels as text, JSON: 0.3-1 KB) weighs this many rollup
/// rows (72 bytes each as queued) in the budgets below. At 13, the queue
/// holds as many new series as it did before it also made room for a
/// gathered minute (2,000,000 rows at 8 each: 250,000), so a fleet's first
/// scrape takes no more memory than it did.
pub(super) const SERIES_ROW_WEIGHT: usize = 13;
/// Batches waiting for the writer; senders wait (backpressure) beyond this.
const QUEUE_DEPTH: usize = 256;
/// Weighted rows queued or in the writer's hands before producers wait:
/// room for a gathered minute and, beside it, as much again as the writer
/// commits in a second or two on a fleet too large for one minute a
/// transaction. A fleet's first scrape brings every series at once; this,
/// not the batch count, bounds the memory they take meanwhile.
const MAX_QUEUED_ROWS: usize = MAX_GATHER_ROWS + 2_000_000;
/// Rows kept for retry after a failed commit (e.g. a full disk); older rows
/// beyond this are dropped and counted.
const MAX_RETRY_ROWS: usize = 2_000_000;
/// Maintenance reads more than this held by the writer (gathered or queued)
/// as a busy writer: more than one gathered transaction and a row group.
const BUSY_WRITER_ROWS: usize = MAX_GATHER_ROWS + ROW_GROUP_ROWS;
const _: () = assert!(BUSY_WRITER_ROWS < MAX_QUEUED_ROWS);
/// A fleet too small to fill a row group commits this often...
const GROUP_COMMIT_WINDOW: Duration = Duration::from_secs(5);
/// ...and a larger one waits at most this long. The open minute of every
/// target is in memory anyway, so this adds seconds to a window of a minute.
const GROUP_COMMIT_MAX_WAIT: Duration = Duration::from_secs(40);
/// Targets hand a minute over at their first scrape of the next one, so a
/// fleet's minute reaches the writer in a burst one scrape interval long.
/// No batch for this long ends the burst, and the transaction.
const HANDOVER_QUIET: Duration = Duration::from_secs(2);

/// What producers hand to the store: new series and complete buckets from
/// scrape targets; graph nodes and per-minute edge rows from the graph.
/// (Events are stored on their own, [`StoreWriter::store_events`].)
#[derive(Debug, Default)]
pub struct WriteBatch {
    pub series: Vec<SeriesRow>,
    pub rollups: Vec<RollupRow>,
    pub graph_nodes: Vec<Node>,
    pub graph_edges: Vec<EdgeRow>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
            && self.rollups.is_empty()
            && self.graph_nodes.is_empty()
            && self.graph_edges.is_empty()
    }

    /// Its weight in the queue's budget.
    fn rows(&self) -> usize {
        self.series.len() * SERIES_ROW_WEIGHT + self.table_rows()
    }

    /// Rows it adds to tables other than `series`.
    fn table_rows(&self) -> usize {
        self.rollups.len() + self.graph_nodes.len() + self.graph_edges.len()
    }
}

/// A batch as the writer holds it from receipt until it commits: its rollup
/// rows packed (see [`PackedRows`]), since a large fleet's whole minute is
/// held at once.
struct HeldBatch {
    /// Everything but the rollup rows.
    rest: WriteBatch,
    rollups: Vec<PackedRows>,
}

impl HeldBatch {
    fn hold(mut batch: WriteBatch) -> HeldBatch {
        let rows = std::mem::take(&mut batch.rollups);
        HeldBatch {
            rest: batch,
            rollups: rows
                .chunks(PackedRows::MAX_ROWS)
                .map(PackedRows::pack)
                .collect(),
        }
    }

    /// Rows it adds to tables, what a retry holds is bounded by.
    fn table_rows(&self) -> usize {
        self.rollups.iter().map(PackedRows::len).sum::<usize>() + self.rest.table_rows()
    }
}

enum Msg {
    /// The permit is the batch's share of `MAX_QUEUED_ROWS`, returned once
    /// the batch is committed (or dropped after failing).
    Batch(WriteBatch, OwnedSemaphorePermit),
    /// Replies once everything sent before it is committed.
    Sync(oneshot::Sender<Result<(), String>>),
    Shutdown(oneshot::Sender<()>),
}

/// Cheap handle to the writer thread; clone one per producer.
#[derive(Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<Msg>,
    /// Cloned for each events request (see `store_events`).
    events_conn: Arc<Mutex<Connection>>,
    queued_rows: Arc<Semaphore>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    maintenance: Arc<MaintenanceThread>,
}

impl StoreWriter {
    pub(super) fn start(
        conn: Connection,
        lock: DirLock,
        options: StoreOptions,
        telemetry: Arc<Telemetry>,
        generations: Arc<Generations>,
        health: Arc<StoreHealth>,
    ) -> Result<StoreWriter, StoreError> {
        let series_numbers = SeriesNumbers::load(&conn)?;
        let forget_series_after = options.forget_series_after;
        let newest_minute: Option<i64> =
            conn.query_row("SELECT max(ts) FROM rollup_1m", [], |r| r.get(0))?;
        let queued_rows = Arc::new(Semaphore::new(MAX_QUEUED_ROWS));
        telemetry.watch_store_queue(queued_rows.clone(), MAX_QUEUED_ROWS);
        let published = Arc::new(Published {
            newest_minute: AtomicI64::new(newest_minute.unwrap_or(i64::MIN)),
            queue: queued_rows.clone(),
            busy_below_free: MAX_QUEUED_ROWS - BUSY_WRITER_ROWS,
        });
        let maintenance = MaintenanceThread::start(
            conn.try_clone()?,
            options,
            telemetry.clone(),
            generations.clone(),
            published.clone(),
        )?;
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let events_conn = Arc::new(Mutex::new(conn.try_clone()?));
        let mut state = Writer {
            conn,
            _lock: lock,
            telemetry,
            series_numbers,
            unstored: UnstoredSeries::default(),
            retry: VecDeque::new(),
            retry_rows: 0,
            forget_series_after,
            last_sweep: Instant::now(),
            generations,
            published,
            health: health.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                // Also when it panics: nothing is stored from then on.
                let _stopped = StoppedOnDrop(health);
                state.run(rx)
            })
            .map_err(|e| StoreError::Join(e.to_string()))?;
        Ok(StoreWriter {
            tx,
            events_conn,
            queued_rows,
            maintenance: Arc::new(maintenance),
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Queues a batch; waits while the writer's queue is full.
    pub async fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        // A batch bigger than the whole budget waits for all of it.
        let weight = batch.rows().min(MAX_QUEUED_ROWS) as u32;
        let permit = self
            .queued_rows
            .clone()
            .acquire_many_owned(weight)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        self.tx
            .send(Msg::Batch(batch, permit))
            .await
            .map_err(|_| StoreError::WriterGone)
    }

    /// Stores events and returns once they are committed, in a transaction
    /// of their own on a connection of their own, off the async runtime. An
    /// event answered as accepted survives a crash (Alertmanager sends a
    /// notification again only after its repeat interval, hours later), and
    /// a request's few rows do not end the writer's gathering of a fleet's
    /// minute. Nothing else inserts into `events`; retention deletes old
    /// rows only, which never conflict with new ones.
    pub async fn store_events(&self, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = super::connection_from(&self.events_conn)?;
        tokio::task::spawn_blocking(move || insert_events(&mut conn, &events))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Returns when everything queued before this call is committed.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Sync(reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Join(message)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// Commits everything queued, then derives coarser resolutions and
    /// applies retention if due; returns when done. The maintenance thread
    /// also does this by itself every few seconds.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.sync().await?;
        self.maintenance.pass().await
    }

    /// Stops maintenance (what it has not derived yet is derived after the
    /// next start), commits everything queued, checkpoints, and stops the
    /// thread.
    pub async fn shutdown(&self) {
        self.maintenance.stop().await;
        let (reply, done) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// What the writer has gathered for its next transaction.
#[derive(Debug, Clone, Copy)]
struct Gathered {
    /// Rows for tables other than `series`.
    rows: usize,
    series: usize,
    /// New series this transaction takes at most (see [`series_cap`]).
    series_cap: usize,
    /// Since the first batch of the transaction.
    waited: Duration,
    /// Since the latest batch.
    quiet: Duration,
}

/// How long the writer waits for more rows before committing what it has
/// gathered, if nothing else arrives: None to commit now. It waits for a
/// larger fleet's whole minute (the burst in which its targets hand the
/// minute over, up to [`MAX_GATHER_ROWS`]), for at most
/// [`GROUP_COMMIT_MAX_WAIT`]; past [`GROUP_COMMIT_WINDOW`], only while the
/// rate so far fills a row group by then, since waiting longer would only
/// delay a fleet that can never fill one.
fn gathering_wait(g: Gathered) -> Option<Duration> {
    if is_full(g.rows, g.series, g.series_cap) || g.waited >= GROUP_COMMIT_MAX_WAIT {
        return None;
    }
    if g.waited < GROUP_COMMIT_WINDOW {
        return Some(GROUP_COMMIT_WINDOW - g.waited);
    }
    // The rate so far fills a row group by GROUP_COMMIT_MAX_WAIT while the
    // time waited is at most this.
    let fills_while =
        GROUP_COMMIT_MAX_WAIT.mul_f64((g.rows + g.series) as f64 / ROW_GROUP_ROWS as f64);
    if g.waited > fills_while || g.quiet >= HANDOVER_QUIET {
        return None;
    }
    Some(
        (fills_while - g.waited)
            .min(HANDOVER_QUIET - g.quiet)
            .min(GROUP_COMMIT_MAX_WAIT - g.waited),
    )
}

/// Waits up to `timeout` for the next message, parked until a sender wakes
/// the thread: a sleep-and-poll loop woke the writer 50 times a second for
/// the whole of every gathering, a measurable share of a large fleet's CPU.
/// None when the time passed or every sender is gone.
fn recv_within<T>(rx: &mut mpsc::Receiver<T>, timeout: Duration) -> Option<T> {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let deadline = Instant::now() + timeout;
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        match rx.poll_recv(&mut cx) {
            std::task::Poll::Ready(msg) => return msg,
            std::task::Poll::Pending => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                // Returns when woken, when `left` passed, or spuriously;
                // each is checked by polling again.
                std::thread::park_timeout(left);
            }
        }
    }
}

/// Whether a transaction holds the most it takes, of rows or new series.
fn is_full(rows: usize, series: usize, series_cap: usize) -> bool {
    rows >= MAX_GATHER_ROWS || series >= series_cap
}

/// New series to gather with `unstored` held: while the writer is behind,
/// as many as complete their row group, so a burst of new series is stored
/// a whole row group a transaction.
fn series_cap(behind: bool, unstored: usize) -> usize {
    if behind {
        MAX_GATHER_SERIES_BEHIND - unstored % MAX_GATHER_SERIES_BEHIND
    } else {
        MAX_GATHER_SERIES
    }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Writer {
    conn: Connection,
    _lock: DirLock,
    telemetry: Arc<Telemetry>,
    series_numbers: SeriesNumbers,
    /// New series numbered, waiting to fill a row group of `series`.
    unstored: UnstoredSeries,
    generations: Arc<Generations>,
    /// The newest committed minute and the next `sid`, for maintenance:
    /// published after each commit.
    published: Arc<Published>,
    health: Arc<StoreHealth>,
    retry: VecDeque<HeldBatch>,
    retry_rows: usize,
    forget_series_after: Duration,
    last_sweep: Instant,
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            let mut pending = Vec::new();
            let mut permits = Vec::new();
            let mut syncs = Vec::new();
            let mut shutdown = None;
            let mut rows = 0;
            let mut series = 0;
            let behind = self.published.writer_busy();
            let series_cap = series_cap(behind, self.unstored.len());
            let mut next = Some(first);
            let gathering_since = Instant::now();
            let mut latest_batch = gathering_since;
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Batch(b, permit) => {
                        permits.push(permit);
                        rows += b.table_rows();
                        series += b.series.len();
                        latest_batch = Instant::now();
                        pending.push(HeldBatch::hold(b));
                    }
                    Msg::Sync(reply) => syncs.push(reply),
                    Msg::Shutdown(reply) => {
                        shutdown = Some(reply);
                        break;
                    }
                }
                // Nothing pending, or someone waits on a sync: commit now.
                let gather = rows + series > 0 && syncs.is_empty();
                while next.is_none() && !is_full(rows, series, series_cap) {
                    match rx.try_recv() {
                        Ok(msg) => next = Some(msg),
                        Err(mpsc::error::TryRecvError::Empty) if gather => {
                            let wait = gathering_wait(Gathered {
                                rows,
                                series,
                                series_cap,
                                waited: gathering_since.elapsed(),
                                quiet: latest_batch.elapsed(),
                            });
                            match wait {
                                Some(wait) => next = recv_within(&mut rx, wait),
                                None => break,
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            // Someone waits for what was sent to be stored, or the writer
            // keeps up: new series are stored now.
            let store_all_series = !syncs.is_empty() || shutdown.is_some() || !behind;
            let result = self.commit_with_retry(pending, store_all_series);
            // Committed, or kept for retry under its own bound.
            drop(permits);
            if self.last_sweep.elapsed() >= self.forget_series_after {
                let forgotten = self.series_numbers.sweep();
                self.last_sweep = Instant::now();
                tracing::debug!(
                    forgotten,
                    "forgot the numbers of series silent since the last sweep"
                );
            }
            for reply in syncs {
                let _ = reply.send(result.clone());
            }
            if let Some(reply) = shutdown {
                if let Err(e) = self.conn.execute_batch("CHECKPOINT") {
                    tracing::warn!(error = %e, "checkpoint at shutdown failed");
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Commits earlier failed batches first, then the new ones. On failure
    /// everything is kept (bounded) for the next attempt.
    fn commit_with_retry(
        &mut self,
        new: Vec<HeldBatch>,
        store_all_series: bool,
    ) -> Result<(), String> {
        for b in new {
            self.retry_rows += b.table_rows();
            self.retry.push_back(b);
        }
        while self.retry_rows > MAX_RETRY_ROWS {
            match self.retry.pop_front() {
                Some(old) => {
                    let rows = old.table_rows();
                    self.retry_rows -= rows;
                    self.telemetry
                        .rows_dropped(DropReason::NotCommitted, rows as u64);
                    tracing::error!(rows, "dropping rows that could not be stored");
                }
                None => break,
            }
        }
        let series_to_store = store_all_series && !self.unstored.is_empty();
        if self.retry.is_empty() && !series_to_store {
            return Ok(());
        }
        let started = Instant::now();
        let mut batches: Vec<HeldBatch> = self.retry.drain(..).collect();
        let result = self.commit(&mut batches, store_all_series);
        let dropped = self.unstored.bound(MAX_UNSTORED_SERIES);
        if dropped > 0 {
            self.telemetry
                .rows_dropped(DropReason::SeriesNotStored, dropped as u64);
            tracing::error!(
                series = dropped,
                "dropping new series that could not be stored"
            );
        }
        match result {
            Ok((series_written, rows_written)) => {
                self.retry_rows = 0;
                self.health.commit_succeeded();
                self.telemetry.flush_latency(started.elapsed());
                self.telemetry.series_written(series_written);
                self.telemetry.rows_written(60, rows_written);
                self.generations.bump(Resolution::OneMinute);
                Ok(())
            }
            Err(e) => {
                self.telemetry.store_write_error();
                self.health.commit_failed(&e.to_string());
                tracing::error!(error = %e, "store commit failed; rows kept for retry");
                self.retry.extend(batches);
                Err(e.to_string())
            }
        }
    }

    /// Neither stored (as far as the writer knows) nor held unstored.
    fn is_new(&self, id: u64) -> bool {
        !self.series_numbers.knows(id) && !self.unstored.holds(id)
    }

    /// Numbers the batches' series that are neither stored nor held, and
    /// holds them (see `unstored`); the batches keep none. Returns how many
    /// it took.
    fn take_new_series(
        &mut self,
        batches: &mut [HeldBatch],
        now: i64,
    ) -> Result<usize, duckdb::Error> {
        let candidates: Vec<u64> = batches
            .iter()
            .flat_map(|b| &b.rest.series)
            .filter(|s| self.is_new(s.id))
            .map(|s| s.id)
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        // Stored already if a sweep forgot them: they keep their number,
        // and `series` its one row. Looked up before any is taken, so a
        // failed lookup leaves the batches whole for the retry.
        self.series_numbers.recall(&self.conn, &candidates)?;
        let mut fresh: Vec<SeriesRow> = batches
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.rest.series))
            .filter(|s| self.is_new(s.id))
            .collect();
        // Numbered in name order, so a metric's new series get neighbouring
        // numbers.
        fresh.sort_unstable_by(|a, b| a.metric.cmp(&b.metric).then(a.id.cmp(&b.id)));
        fresh.dedup_by_key(|s| s.id);
        let mut unnumbered = 0usize;
        let taken = fresh.len();
        for s in fresh {
            match self.series_numbers.allocate(&s.metric) {
                Ok(sid) => self.unstored.add(s, sid, now),
                Err(_) => unnumbered += 1,
            }
        }
        if unnumbered > 0 {
            self.telemetry
                .rows_dropped(DropReason::SeriesNotStored, unnumbered as u64);
            tracing::error!(
                series = unnumbered,
                "dropping new series: no number left for their metric"
            );
        }
        Ok(taken - unnumbered)
    }

    fn commit(
        &mut self,
        batches: &mut [HeldBatch],
        store_all_series: bool,
    ) -> Result<(u64, u64), duckdb::Error> {
        let now = unix_now();
        // A transaction with no new series ends a burst of them (a fleet's
        // first scrape): what is left of it is stored, whole row group or not.
        let burst_over = self.take_new_series(batches, now)? == 0;
        self.unstored.clear_references();
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let began = Instant::now();
        let mut series_took = Duration::ZERO;
        let mut rows_took = Duration::ZERO;
        let mut stored_places = Vec::new();
        let result = (|| {
            let mut rows = 0u64;
            let mut newest = self.published.newest_minute.load(Ordering::Relaxed);
            {
                // Columnar: Arrow batches, several times faster than
                // binding every value of every row.
                let numbers = &mut self.series_numbers;
                let packed: Vec<&PackedRows> = batches.iter().flat_map(|b| &b.rollups).collect();
                let mut order: Vec<RowAt> =
                    Vec::with_capacity(packed.iter().map(|p| p.len()).sum());
                let mut unknown_rows: Vec<(u64, RowAt)> = Vec::new();
                for (part, rows) in packed.iter().enumerate() {
                    for at in rows.rows() {
                        let row = RowAt {
                            bucket: at.bucket,
                            sid: 0,
                            // A transaction holds thousands of parts, not
                            // billions: fits.
                            part: part as u32,
                            offset: at.offset,
                        };
                        match numbers
                            .sid_for_row(at.series_id)
                            .or_else(|| self.unstored.sid_for_row(at.series_id))
                        {
                            Some(sid) => order.push(RowAt { sid, ..row }),
                            None => unknown_rows.push((at.series_id, row)),
                        }
                    }
                }
                if !unknown_rows.is_empty() {
                    // A series can be forgotten here while its producer
                    // still holds it live and so never sends it again: one
                    // whose samples were all NaN for a sweep or two (a
                    // summary's quantiles while nothing is observed). Its
                    // number is in `series`.
                    let mut ids: Vec<u64> = unknown_rows.iter().map(|(id, _)| *id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    numbers.recall_for_rows(&self.conn, &ids)?;
                    unknown_rows.retain(|(id, row)| match numbers.sid_for_row(*id) {
                        Some(sid) => {
                            order.push(RowAt { sid, ..*row });
                            false
                        }
                        None => true,
                    });
                }
                let unknown = unknown_rows.len();
                if unknown > 0 {
                    // Producers send a series before its first row; this
                    // would be a bug, and the rows could not be named.
                    self.telemetry
                        .rows_dropped(DropReason::UnknownSeries, unknown as u64);
                    tracing::error!(rows = unknown, "dropping rollup rows of unknown series");
                }
                // By minute, then `sid`: metric by metric (a query reads
                // one metric and skips the row groups outside its `sid`
                // range: see `series_numbers`), and within a metric in the
                // order its series were first seen, so `sid` is stored as
                // small steps and one target's series sit together. On a
                // 1 M-series fleet's whole minutes (2026-12-02) this packed
                // a 1m row into 10.3 bytes, against 10.5 in order of the
                // last value within each metric (the order before, which
                // stores values better and `sid` worse: 2.5 bytes against
                // 1.3). Derived rows keep last-value order
                // (`window_aggregate`).
                order.sort_unstable_by_key(|r| (r.bucket, r.sid));
                if let Some(latest) = order.last() {
                    // Sorted by minute first: the last row has the newest.
                    newest = newest.max(latest.bucket);
                    let mut app = self.conn.appender(Resolution::OneMinute.stored_table())?;
                    // A row group's Arrow arrays at a time (~8 MB), straight
                    // from the packed records.
                    let mut unreadable = 0usize;
                    for chunk in order.chunks(ROW_GROUP_ROWS) {
                        let mut columns = StoredColumns::with_capacity(chunk.len());
                        for at in chunk {
                            let pushed = packed.get(at.part as usize).and_then(|rows| {
                                rows.push_stored(at.offset, at.sid, at.bucket, &mut columns)
                            });
                            unreadable += usize::from(pushed.is_none());
                        }
                        app.append_record_batch(columns.finish().map_err(arrow_error)?)?;
                    }
                    app.flush()?;
                    if unreadable > 0 {
                        // Records the writer packed itself: a bug if seen.
                        tracing::error!(rows = unreadable, "dropping unreadable packed rows");
                    }
                    rows = (order.len() - unreadable) as u64;
                }
            }
            rows_took = began.elapsed();
            // After the rows: they decide which new series must go with them.
            stored_places =
                self.unstored
                    .choose(store_all_series || burst_over, ROW_GROUP_ROWS, now);
            if !stored_places.is_empty() {
                let mut stored: Vec<&Unstored> = stored_places
                    .iter()
                    .filter_map(|&p| self.unstored.get(p))
                    .collect();
                // A metric's series together (see `series_numbers`).
                stored.sort_unstable_by_key(|u| u.sid);
                // In slices, each handed over before the next is built: a
                // row group of labels as Arrow arrays and again in the
                // appender's buffer would hold ~2x its text at once.
                let mut app = self.conn.appender("series")?;
                for slice in stored.chunks(SERIES_APPEND_SLICE) {
                    app.append_record_batch(series_batch(slice)?)?;
                    app.flush()?;
                }
            }
            series_took = began.elapsed() - rows_took;
            write_graph(&self.conn, batches.iter().map(|b| &b.rest), now)?;
            Ok((rows, newest))
        })();
        match result.and_then(|rows| self.conn.execute_batch("COMMIT").map(|_| rows)) {
            Ok((rows, newest)) => {
                let stored = self.unstored.remove(&stored_places);
                let series = stored.len() as u64;
                tracing::debug!(
                    series,
                    rows,
                    series_ms = series_took.as_millis() as u64,
                    rows_ms = rows_took.as_millis() as u64,
                    total_ms = began.elapsed().as_millis() as u64,
                    "committed"
                );
                for (id, sid) in stored {
                    self.series_numbers.remember(id, sid);
                }
                self.published
                    .newest_minute
                    .store(newest, Ordering::Release);
                Ok((series, rows))
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

/// Marks the store's health when the writer thread ends, however it ends.
struct StoppedOnDrop(Arc<StoreHealth>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.writer_stopped();
    }
}

/// Where a held rollup row is, and its sort key.
#[derive(Clone, Copy)]
struct RowAt {
    bucket: i64,
    sid: u64,
    /// Index of its `PackedRows` among the transaction's.
    part: u32,
    /// Of its record in that `PackedRows`.
    offset: u32,
}

/// Graph nodes (first seen wins) and edge rows: few rows per minute, so
/// plain prepared statements.
fn write_graph<'a>(
    conn: &Connection,
    batches: impl Iterator<Item = &'a WriteBatch> + Clone,
    now: i64,
) -> Result<(), duckdb::Error> {
    let nodes = batches.clone().flat_map(|b| &b.graph_nodes);
    let edges = batches.flat_map(|b| &b.graph_edges);
    let mut node_stmt =
        conn.prepare("INSERT OR IGNORE INTO graph_nodes VALUES (?, ?, ?, ?, ?, ?, ?)")?;
    for n in nodes {
        node_stmt.execute(params![
            n.id,
            n.kind.as_str(),
            n.name,
            n.namespace,
            n.cluster,
            n.system,
            now
        ])?;
    }
    let mut edge_stmt = conn.prepare(
        "INSERT INTO graph_edges_1m VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CAST(? AS UBIGINT[]), CAST(? AS UBIGINT[]))",
    )?;
    let list = |counts: &[u64]| {
        format!(
            "[{}]",
            counts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    for e in edges {
        let s = &e.stats;
        edge_stmt.execute(params![
            e.minute,
            e.source,
            e.target,
            e.kind.as_str(),
            s.requests,
            s.errors,
            s.paired,
            s.network_sum_ms,
            s.client.sum_ms,
            s.server.sum_ms,
            list(&s.client.counts),
            list(&s.server.counts)
        ])?;
    }
    Ok(())
}

/// Inserts `events` in one transaction, committed on return.
fn insert_events(conn: &mut Connection, events: &[Event]) -> Result<(), StoreError> {
    // Rolled back when dropped uncommitted.
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO events (time_ms, end_ms, cluster, namespace, service, source, reason,
                 message, severity, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )?;
        for e in events {
            stmt.execute(params![
                e.time_ms,
                e.end_ms,
                e.cluster,
                e.namespace,
                e.service,
                e.source,
                e.reason,
                e.message,
                e.severity,
                e.fingerprint
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// New series as one Arrow record batch in the column order of the table
/// (fleets start with hundreds of thousands of series at once).
fn series_batch(held: &[&Unstored]) -> Result<RecordBatch, duckdb::Error> {
    let rows: Vec<&SeriesRow> = held.iter().map(|u| &u.row).collect();
    // One pass over each series' labels for all its label columns (a fleet's
    // first scrape writes a million series at once).
    let mut columns_of_labels: [Vec<Option<&str>>; LABEL_COLUMNS.len()] =
        std::array::from_fn(|_| Vec::with_capacity(rows.len()));
    for row in &rows {
        let mut found = [None; LABEL_COLUMNS.len()];
        for (name, value) in row.labels.iter() {
            if let Some(i) = label_column(name) {
                found[i] = Some(value);
            }
        }
        for (column, value) in columns_of_labels.iter_mut().zip(found) {
            column.push(value);
        }
    }
    let [cluster, job, instance, namespace, pod, node, container] = columns_of_labels;
    let workload = StringArray::from_iter(
        pod.iter()
            .map(|p| p.and_then(crate::kube_names::workload_of)),
    );
    let text_column =
        |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.id))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| &*r.metric),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.kind))),
        text_column(cluster),
        text_column(job),
        text_column(instance),
        text_column(namespace),
        text_column(pod),
        text_column(node),
        text_column(container),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| other_labels_json(&r.labels)),
        )),
        Arc::new(Int64Array::from_iter_values(
            held.iter().map(|u| u.first_seen),
        )),
        Arc::new(workload),
        Arc::new(UInt64Array::from_iter_values(held.iter().map(|u| u.sid))),
    ];
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let fields = vec![
        Field::new("id", DataType::UInt64, false),
        text("metric", false),
        text("kind", false),
        text("cluster", true),
        text("job", true),
        text("instance", true),
        text("namespace", true),
        text("pod", true),
        text("node", true),
        text("container", true),
        text("other_labels", false),
        Field::new("first_seen", DataType::Int64, false),
        text("workload", true),
        Field::new("sid", DataType::UInt64, false),
    ];
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(arrow_error)
}

fn label_column(name: &str) -> Option<usize> {
    LABEL_COLUMNS.iter().position(|c| *c == name)
}

/// The labels that have no column of their own, as a JSON object with keys
/// in name order. The label columns are not repeated: it would add ~140
/// bytes of text to each stored series, and compressing that text is what a
/// fleet's first scrape spends its time on (`store::read::labels_of_row`
/// puts the whole set back together).
fn other_labels_json(labels: &LabelSet) -> String {
    // `LabelSet` keeps its pairs in name order: the keys come out sorted.
    struct InNameOrder<'a>(&'a LabelSet);
    impl serde::Serialize for InNameOrder<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(
                self.0
                    .iter()
                    .filter(|(name, _)| label_column(name).is_none()),
            )
        }
    }
    serde_json::to_string(&InNameOrder(labels)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::stored_form::{stored_batch, RowToStore};
    use super::*;
    use crate::rollup::Aggregate;

    #[test]
    fn other_labels_are_an_object_in_name_order_without_the_label_columns() {
        let sorted = LabelSet::from_pairs([
            ("a", "x\"y"),
            ("b", "\\n"),
            ("c", "ü"),
            ("cluster", "east"),
            ("pod", "p-1"),
        ]);
        assert_eq!(
            other_labels_json(&sorted),
            r#"{"a":"x\"y","b":"\\n","c":"ü"}"#
        );
        let unsorted = LabelSet::from_pairs([("mode", "idle"), ("job", "j"), ("cpu", "0")]);
        assert_eq!(other_labels_json(&unsorted), r#"{"cpu":"0","mode":"idle"}"#);
        let only_columns = LabelSet::from_pairs([("job", "j"), ("instance", "i")]);
        assert_eq!(other_labels_json(&only_columns), "{}");
        assert_eq!(other_labels_json(&LabelSet::default()), "{}");
    }

    #[test]
    fn large_fleets_gather_a_minute_small_ones_commit_every_window() {
        let secs = Duration::from_secs;
        let gathered = |rows, series, waited, quiet| Gathered {
            series_cap: MAX_GATHER_SERIES,
            rows,
            series,
            waited: secs(waited),
            quiet: secs(quiet),
        };
        // Within the window everyone waits, quiet or not...
        assert!(gathering_wait(gathered(10, 0, 1, 1)).is_some());
        assert!(gathering_wait(gathered(100_000, 0, 4, 3)).is_some());
        // ...until the most one transaction takes.
        assert!(gathering_wait(gathered(MAX_GATHER_ROWS, 0, 1, 0)).is_none());
        assert!(gathering_wait(gathered(400_000, MAX_GATHER_SERIES, 1, 0)).is_none());
        // 2,000 rows/s cannot fill a row group in the longest wait: commit
        // at the end of the window.
        assert!(gathering_wait(gathered(10_000, 0, 5, 0)).is_none());
        // A larger fleet's minute arrives in a burst: gather while batches
        // keep coming, commit when they stop, and never wait past the limit.
        assert!(gathering_wait(gathered(100_000, 0, 5, 0)).is_some());
        assert!(gathering_wait(gathered(900_000, 0, 15, 1)).is_some());
        assert!(gathering_wait(gathered(900_000, 0, 15, 2)).is_none());
        assert!(gathering_wait(gathered(900_000, 0, 40, 0)).is_none());
        // New series alone are worth gathering: a fleet's first scrape.
        assert!(gathering_wait(gathered(0, 30_000, 6, 0)).is_some());
        assert!(gathering_wait(gathered(0, MAX_GATHER_SERIES, 1, 0)).is_none());
        let behind = Gathered {
            series_cap: series_cap(true, 0),
            ..gathered(0, 90_000, 6, 0)
        };
        assert!(gathering_wait(behind).is_some());
        // Nothing arriving, the wait ends where the decision would change:
        // the window's end, the quiet limit, the rate's last chance.
        assert_eq!(gathering_wait(gathered(10, 0, 1, 1)), Some(secs(4)));
        assert_eq!(gathering_wait(gathered(900_000, 0, 15, 1)), Some(secs(1)));
        assert_eq!(
            gathering_wait(gathered(ROW_GROUP_ROWS / 4, 0, 8, 0)),
            Some(secs(2))
        );
        let one_eighth_late = gathering_wait(gathered(ROW_GROUP_ROWS / 8, 0, 5, 1));
        assert_eq!(one_eighth_late, Some(Duration::ZERO));
    }

    /// The writer sleeps through a gathering, woken by the next batch, not
    /// by a clock.
    #[test]
    fn a_gathering_writer_wakes_for_a_message_and_at_its_deadline() {
        let (tx, mut rx) = mpsc::channel::<u32>(4);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.blocking_send(7).unwrap();
            tx
        });
        let started = Instant::now();
        assert_eq!(recv_within(&mut rx, Duration::from_secs(30)), Some(7));
        assert!(started.elapsed() < Duration::from_secs(20));
        let tx = sender.join().unwrap();

        let started = Instant::now();
        assert_eq!(recv_within(&mut rx, Duration::from_millis(30)), None);
        assert!(started.elapsed() >= Duration::from_millis(30));

        drop(tx);
        assert_eq!(recv_within(&mut rx, Duration::from_secs(30)), None);
    }

    #[test]
    fn new_series_are_gathered_to_complete_a_row_group() {
        assert_eq!(series_cap(true, 0), ROW_GROUP_ROWS);
        assert_eq!(series_cap(true, 100), ROW_GROUP_ROWS - 100);
        assert_eq!(series_cap(true, ROW_GROUP_ROWS + 5), ROW_GROUP_ROWS - 5);
        assert_eq!(series_cap(false, 100), MAX_GATHER_SERIES);
        let full = |series| is_full(0, series, series_cap(true, 20_000));
        assert!(!full(ROW_GROUP_ROWS - 20_001) && full(ROW_GROUP_ROWS - 20_000));
    }

    fn read_rows(conn: &Connection, view: &str) -> Vec<(u64, i64, [f64; 6], u32)> {
        let sql = format!(
            "SELECT sid, ts, sum, min, max, first, last, increase, count FROM {view} ORDER BY sid, ts"
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        stmt.query_map([], |r| {
            let mut v = [0.0; 6];
            for (i, x) in v.iter_mut().enumerate() {
                *x = r.get(i + 2)?;
            }
            Ok((r.get(0)?, r.get(1)?, v, r.get(8)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Minutes of random series, some steady, some moving, some with a dip,
    /// of 1-5 samples of awkward floats: what the views give back is what
    /// was aggregated, and 5 m rows derived from stored-form 1 m rows are
    /// those derived from the complete rows.
    #[test]
    fn stored_form_round_trips_through_duckdb() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut rows = Vec::new();
        for n in 0..400u32 {
            let sid = super::super::series_numbers::sid(1, u64::from(n) + 1);
            for minute in 0..10i64 {
                let count = rng.random_range(1..=5u32);
                let base = match n % 4 {
                    0 => 0.1,
                    1 => rng.random_range(-1e9..1e9),
                    2 => f64::from(n) * 1e-7,
                    _ => rng.random::<f64>(),
                };
                let values: Vec<f64> = (0..count)
                    .map(|i| match n % 3 {
                        0 => base,
                        1 => base + f64::from(i) * 0.3,
                        _ => base * rng.random_range(0.5..1.5),
                    })
                    .collect();
                let mut agg = Aggregate::EMPTY;
                for v in &values {
                    agg.count += 1;
                    agg.sum += v;
                    agg.min = agg.min.min(*v);
                    agg.max = agg.max.max(*v);
                    if agg.first.is_nan() {
                        agg.first = *v;
                    }
                    agg.last = *v;
                }
                agg.increase = f64::from(n);
                rows.push((
                    sid,
                    RollupRow {
                        series_id: u64::from(n),
                        bucket_start: 600 + minute * 60,
                        agg,
                    },
                ));
            }
        }
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        let refs: Vec<RowToStore<'_>> = rows
            .iter()
            .map(|(sid, r)| RowToStore::new(*sid, r.bucket_start, &r.agg))
            .collect();
        let mut app = conn.appender("rollup_1m_rows").unwrap();
        app.append_record_batch(stored_batch(&refs).unwrap())
            .unwrap();
        app.flush().unwrap();
        drop(app);
        let elided: u64 = conn
            .query_row(
                "SELECT count(*) - count(min) FROM rollup_1m_rows",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            elided > 1000,
            "most minima follow from first/last, {elided} left out"
        );
        let got = read_rows(&conn, "rollup_1m");
        assert_eq!(got.len(), rows.len());
        for ((sid, ts, v, count), (want_sid, want)) in got.iter().zip(&rows) {
            let a = &want.agg;
            assert_eq!((*sid, *ts, *count), (*want_sid, want.bucket_start, a.count));
            assert_eq!(
                *v,
                [a.sum, a.min, a.max, a.first, a.last, a.increase],
                "sid {sid} ts {ts}"
            );
        }
        // The same rows complete, aggregated without the stored form.
        let mut full = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut full, std::path::Path::new(":memory:")).unwrap();
        let mut stmt = full
            .prepare("INSERT INTO rollup_1m_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .unwrap();
        for (sid, r) in &rows {
            let a = &r.agg;
            stmt.execute(params![
                sid,
                r.bucket_start,
                a.count,
                a.sum,
                a.min,
                a.max,
                a.first,
                a.last,
                a.increase
            ])
            .unwrap();
        }
        full.execute_batch(
            "CREATE VIEW plain_5m AS SELECT sid, (ts // 300) * 300 AS ts, sum(sum) AS sum,
                 min(min) AS min, max(max) AS max, arg_min(first, ts) AS first,
                 arg_max(last, ts) AS last, sum(increase) AS increase, sum(count) AS count
             FROM rollup_1m_rows WHERE ts < 1200 GROUP BY ALL",
        )
        .unwrap();
        // In slices of 128 series, as a large fleet is derived.
        conn.execute_batch(
            "INSERT INTO series (id, metric, kind, other_labels, first_seen, sid)
             SELECT DISTINCT sid, 'm', 'gauge', '{}', 0, sid FROM rollup_1m_rows",
        )
        .unwrap();
        assert_eq!(
            super::super::maintenance::derive_for_test(&conn, true, 1200, 128),
            800
        );
        assert_eq!(read_rows(&conn, "rollup_5m"), read_rows(&full, "plain_5m"));
        let derived_elided: u64 = conn
            .query_row(
                "SELECT count(*) - count(first) FROM rollup_5m_rows",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(derived_elided > 100, "steady series store no 5 m first");
    }
}
