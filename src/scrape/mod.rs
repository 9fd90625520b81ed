//! Scraping: one task per target, a jittered schedule, bounded fetch, parse,
//! and hand-off of complete buckets to the store.
//!
//! Owns the targets' schedules and health. A target's failure (hang, garbage,
//! huge body) is contained in its own task: it gets `up=0` and a reason, and
//! no other target waits for it. This module must not write to DuckDB
//! directly (it sends `WriteBatch`es to the store writer) nor serve HTTP.

pub mod fetch;
pub mod ingest;
pub mod parse;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::{Limits, TargetSpec};
use crate::store::{StoreWriter, WriteBatch};
use crate::telemetry::{ScrapeErrorReason, Telemetry};
use ingest::Ingestor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Unknown,
    Up,
    Down,
}

/// What `/api/v1/targets` shows for one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    pub cluster: String,
    pub job: String,
    pub instance: String,
    pub url: String,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_error_reason: Option<ScrapeErrorReason>,
    /// Unix milliseconds of the last scrape's start.
    pub last_scrape_ms: Option<i64>,
    pub last_scrape_duration_seconds: Option<f64>,
    pub last_samples: usize,
    pub series: usize,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
    /// Scrapes that started more than 10% of the interval late.
    pub late_scrapes: u64,
    /// Scheduled scrapes that never started because the previous one overran.
    pub missed_scrapes: u64,
    pub scrapes: u64,
}

/// Every target's status, shared between the scrape tasks and the API.
#[derive(Clone, Default)]
pub struct TargetRegistry {
    inner: Arc<RwLock<BTreeMap<String, Arc<Mutex<TargetStatus>>>>>,
}

impl TargetRegistry {
    fn register(&self, spec: &TargetSpec) -> Arc<Mutex<TargetStatus>> {
        let status = Arc::new(Mutex::new(TargetStatus {
            cluster: spec.cluster.clone(),
            job: spec.job.clone(),
            instance: spec.instance.clone(),
            url: spec.url.clone(),
            health: Health::Unknown,
            last_error: None,
            last_error_reason: None,
            last_scrape_ms: None,
            last_scrape_duration_seconds: None,
            last_samples: 0,
            series: 0,
            interval_seconds: spec.interval.as_secs_f64(),
            timeout_seconds: spec.timeout.as_secs_f64(),
            late_scrapes: 0,
            missed_scrapes: 0,
            scrapes: 0,
        }));
        let key = format!("{}\u{0}{}\u{0}{}", spec.cluster, spec.job, spec.url);
        if let Ok(mut map) = self.inner.write() {
            map.insert(key, status.clone());
        }
        status
    }

    pub fn snapshot(&self) -> Vec<TargetStatus> {
        let Ok(map) = self.inner.read() else {
            return Vec::new();
        };
        map.values()
            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
            .collect()
    }

    /// (up, down) counts; targets not yet scraped count as neither.
    pub fn health_counts(&self) -> (u64, u64) {
        self.snapshot()
            .iter()
            .fold((0, 0), |(up, down), t| match t.health {
                Health::Up => (up + 1, down),
                Health::Down => (up, down + 1),
                Health::Unknown => (up, down),
            })
    }
}

/// Shared by all scrape tasks.
#[derive(Clone)]
pub struct ScrapeContext {
    pub client: reqwest::Client,
    /// The Accept header of every scrape (`fetch::accept_header`).
    pub accept: &'static str,
    pub limits: Limits,
    pub writer: StoreWriter,
    pub telemetry: Arc<Telemetry>,
    pub bodies: Arc<fetch::BodyPool>,
    pub registry: TargetRegistry,
    pub shutdown: CancellationToken,
}

/// Spreads targets over the interval like Prometheus does: a stable offset
/// from the target's identity, so restarts keep the same phase.
fn schedule_offset(spec: &TargetSpec) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&spec.cluster, &spec.job, &spec.url).hash(&mut h);
    let interval_ns = spec.interval.as_nanos().max(1) as u64;
    Duration::from_nanos(h.finish() % interval_ns)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs one target until shutdown, then hands its open minute to the store.
pub async fn run_target(ctx: ScrapeContext, spec: TargetSpec) {
    let status = ctx.registry.register(&spec);
    let limits = ctx.limits.for_target(spec.limits);
    let mut ingestor = Ingestor::new(&spec, limits.clone());
    let first = tokio::time::Instant::now() + schedule_offset(&spec);
    let mut ticker = tokio::time::interval_at(first, spec.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut active_series = 0usize;
    let mut previous_tick = None;
    loop {
        let scheduled = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            at = ticker.tick() => at,
        };
        let late = scheduled.elapsed() > spec.interval / 10;
        // With MissedTickBehavior::Skip a gap of more than one interval
        // between ticks means ticks were skipped.
        let missed = previous_tick
            .map(|p: tokio::time::Instant| {
                (scheduled.duration_since(p).as_secs_f64() / spec.interval.as_secs_f64()).round()
                    as u64
            })
            .unwrap_or(1)
            .saturating_sub(1);
        previous_tick = Some(scheduled);
        let mut batch = WriteBatch::default();
        let scraped = tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                // The scrape had begun its minute: the last complete one is
                // in the batch already, and would be lost with it.
                if !batch.is_empty() {
                    let _ = ctx.writer.write(batch).await;
                }
                break;
            }
            s = scrape_once(&ctx, &spec, &mut ingestor, &mut batch) => s,
        };
        let series_now = ingestor.series_count();
        ctx.telemetry
            .active_series_delta(series_now as i64 - active_series as i64);
        active_series = series_now;
        if let Ok(mut s) = status.lock() {
            s.scrapes += 1;
            s.late_scrapes += u64::from(late);
            s.missed_scrapes += missed;
            s.last_scrape_ms = Some(scraped.started_ms);
            s.last_scrape_duration_seconds = Some(scraped.duration_secs);
            s.series = series_now;
            match &scraped.error {
                None => {
                    s.health = Health::Up;
                    s.last_error = None;
                    s.last_error_reason = None;
                    s.last_samples = scraped.samples;
                }
                Some((reason, message)) => {
                    s.health = Health::Down;
                    s.last_error = Some(message.clone());
                    s.last_error_reason = Some(*reason);
                    s.last_samples = 0;
                }
            }
        }
        if ctx.writer.write(batch).await.is_err() {
            tracing::error!(target = %spec.url, "store writer stopped; target task ends");
            return;
        }
    }
    let mut batch = WriteBatch::default();
    ingestor.close(&mut batch.rollups);
    let _ = ctx.writer.write(batch).await;
    ctx.telemetry.active_series_delta(-(active_series as i64));
}

struct ScrapeResult {
    started_ms: i64,
    duration_secs: f64,
    samples: usize,
    error: Option<(ScrapeErrorReason, String)>,
}

async fn scrape_once(
    ctx: &ScrapeContext,
    spec: &TargetSpec,
    ingestor: &mut Ingestor,
    batch: &mut WriteBatch,
) -> ScrapeResult {
    let started_ms = unix_ms();
    let started = Instant::now();
    ingestor.begin(started_ms.div_euclid(1000), &mut batch.rollups);
    let mut body = ctx.bodies.take();
    let fetched = fetch::fetch(
        &ctx.client,
        &spec.url,
        ctx.accept,
        spec.timeout,
        ingestor.limits().body_bytes,
        &mut body,
    )
    .await;
    let outcome = match fetched {
        Ok(format) => ingestor
            .ingest(&body.text, format, &mut batch.series)
            .map_err(|e| (e.reason(), e.to_string())),
        Err(e) => Err((e.reason(), e.to_string())),
    };
    ctx.bodies.give_back(body);
    let duration_secs = started.elapsed().as_secs_f64();
    let (samples, error) = match outcome {
        Ok(stats) => {
            ctx.telemetry.scrape_ok(stats.samples as u64);
            if stats.duplicates > 0 {
                ctx.telemetry.duplicate_series(stats.duplicates as u64);
            }
            (stats.samples, None)
        }
        Err((reason, message)) => {
            ctx.telemetry.scrape_failed(reason);
            tracing::debug!(target = %spec.url, %message, "scrape failed");
            (0, Some((reason, message)))
        }
    };
    ingestor.record_scrape_health(error.is_none(), duration_secs, samples, &mut batch.series);
    ScrapeResult {
        started_ms,
        duration_secs,
        samples,
        error,
    }
}
