//! Parse + series identity + 1m rollup per core, DuckDB flush through the
//! Appender, and storing new series (a fleet's first scrape). Fixtures are
//! real-shaped payloads in tests/fixtures/exposition.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fleetscope::config::{Limits, Retention, TargetSpec};
use fleetscope::rollup::{Aggregate, LabelSet, RollupRow, SeriesRow};
use fleetscope::scrape::ingest::Ingestor;
use fleetscope::scrape::parse::{validate, Format};
use fleetscope::store::{self, StoreOptions, WriteBatch};
use fleetscope::telemetry::Telemetry;

const FIXTURES: &[&str] = &[
    "node_exporter.prom",
    "kube_state_metrics.prom",
    "cadvisor.prom",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/exposition/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn target() -> TargetSpec {
    TargetSpec {
        cluster: "bench".into(),
        job: "bench".into(),
        instance: "10.0.0.1:9100".into(),
        url: "http://10.0.0.1:9100/metrics".into(),
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        honor_labels: false,
        limits: Default::default(),
    }
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_rollup");
    for name in FIXTURES {
        let body = fixture(name);
        let samples = validate(&body, Format::Prometheus).expect("fixture parses");
        group.throughput(Throughput::Elements(samples as u64));
        let limits = Limits {
            samples_per_scrape: usize::MAX,
            ..Limits::default()
        };
        let mut ingestor = Ingestor::new(&target(), limits);
        let mut rows = Vec::new();
        let mut new_series = Vec::new();
        let mut ts = 0;
        // First scrape registers the series; the steady state is what counts.
        ingestor
            .ingest(&body, Format::Prometheus, &mut new_series)
            .expect("ingest");
        group.bench_function(*name, |b| {
            b.iter(|| {
                ts += 15;
                rows.clear();
                new_series.clear();
                ingestor.begin(ts, &mut rows);
                ingestor
                    .ingest(&body, Format::Prometheus, &mut new_series)
                    .expect("ingest")
            })
        });
    }
    group.finish();
}

fn flush(c: &mut Criterion) {
    const ROWS: usize = 200_000;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (writer, _reader) = open_store(&runtime, dir.path());
    // The rows' series, stored first: the writer drops rows of series it
    // does not know.
    let series_id = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let series: Vec<SeriesRow> = (0..ROWS as u64)
        .map(|i| SeriesRow {
            id: series_id(i),
            metric: Arc::from("bench_gauge"),
            kind: "gauge",
            labels: LabelSet::from_pairs([("pod", format!("pod-{i}").as_str())]),
        })
        .collect();
    write_and_sync(
        &runtime,
        &writer,
        WriteBatch {
            series,
            ..Default::default()
        },
    );
    let mut group = c.benchmark_group("store_flush");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    let mut minute = 0i64;
    group.bench_function("appender_1m_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                minute += 60;
                let mut agg = Aggregate::EMPTY;
                agg.add(1.0);
                agg.add(2.0);
                let rollups: Vec<RollupRow> = (0..ROWS as u64)
                    .map(|i| RollupRow {
                        series_id: series_id(i),
                        bucket_start: minute,
                        agg,
                    })
                    .collect();
                total += write_and_sync(
                    &runtime,
                    &writer,
                    WriteBatch {
                        rollups,
                        ..Default::default()
                    },
                );
            }
            total
        })
    });
    group.finish();
    runtime.block_on(writer.shutdown());
}

/// How long the store takes to write `batch` and commit it.
fn write_and_sync(
    runtime: &tokio::runtime::Runtime,
    writer: &store::StoreWriter,
    batch: WriteBatch,
) -> Duration {
    let started = Instant::now();
    runtime.block_on(async {
        writer.write(batch).await.expect("write");
        writer.sync().await.expect("sync");
    });
    started.elapsed()
}

fn open_store(
    runtime: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) -> (store::StoreWriter, store::StoreReader) {
    runtime
        .block_on(async {
            tokio::task::spawn_blocking({
                let dir = dir.to_path_buf();
                move || {
                    store::open(
                        StoreOptions::new(dir, Retention::default()),
                        Arc::new(Telemetry::default()),
                    )
                }
            })
            .await
        })
        .expect("join")
        .expect("open store")
}

/// New series as a fleet's first scrape brings them: each iteration scrapes
/// the three fixtures as 20 targets it has not seen (cAdvisor's, kube-state-
/// metrics' and node exporter's label shapes, 112,000 series) and stores
/// them: building the rows, DuckDB's append, compression and commit.
fn new_series(c: &mut Criterion) {
    const TARGETS: usize = 20;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (writer, _reader) = open_store(&runtime, dir.path());
    let bodies: Vec<Vec<u8>> = FIXTURES.iter().map(|name| fixture(name)).collect();
    let mut round = 0usize;
    let mut first_scrape = move || -> Vec<SeriesRow> {
        round += 1;
        let mut series = Vec::new();
        for t in 0..TARGETS {
            for body in &bodies {
                let mut spec = target();
                spec.instance = format!("10.{}.{}.{t}:9100", round / 250, round % 250);
                let mut ingestor = Ingestor::new(&spec, Limits::default());
                ingestor
                    .ingest(body, Format::Prometheus, &mut series)
                    .expect("ingest");
            }
        }
        series
    };
    let per_round = first_scrape().len();
    let mut group = c.benchmark_group("store_new_series");
    group.throughput(Throughput::Elements(per_round as u64));
    group.sample_size(10);
    group.bench_function("first_scrape_of_20_targets", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let series = first_scrape();
                total += write_and_sync(
                    &runtime,
                    &writer,
                    WriteBatch {
                        series,
                        ..Default::default()
                    },
                );
            }
            total
        })
    });
    group.finish();
    runtime.block_on(writer.shutdown());
}

criterion_group!(benches, ingest, flush, new_series);
criterion_main!(benches);
