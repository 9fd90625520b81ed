//! Throughput of `fleetscope::scrape::parse` vs the `prometheus-parse` crate
//! on the exposition fixtures (one criterion group per fixture).
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fleetscope::scrape::parse::{Format, Parser};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exposition");

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

/// Our side: parse every sample and sum values (and label counts) so nothing is optimised away.
fn ours(input: &[u8], format: Format) -> f64 {
    let mut sum = 0.0;
    for s in Parser::new(input, format) {
        match s {
            Ok(s) => sum += s.value + s.labels.len() as f64,
            Err(e) => panic!("{e}"),
        }
    }
    sum
}

fn theirs(text: &str) -> usize {
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}"));
    scrape.samples.len()
}

fn bench(c: &mut Criterion) {
    for (name, format, compare) in [
        ("node_exporter.prom", Format::Prometheus, true),
        ("kube_state_metrics.prom", Format::Prometheus, true),
        ("cadvisor.prom", Format::Prometheus, true),
        ("openmetrics_full.txt", Format::OpenMetrics, false),
    ] {
        let input = load(name);
        let text = String::from_utf8(input.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function("fleetscope", |b| b.iter(|| ours(black_box(&input), format)));
        // prometheus-parse only understands the Prometheus text format.
        if compare {
            g.bench_function("prometheus-parse", |b| b.iter(|| theirs(black_box(&text))));
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
