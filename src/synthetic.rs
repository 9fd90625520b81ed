//! A synthetic fleet history written straight into the store: for demos
//! (`fleetscope seed`), view benchmarks and tests that need days of data
//! without waiting days.
//!
//! Series are named and labelled exactly as cAdvisor, kube-state-metrics and
//! node exporter export them, so every view reads them like scraped data.
//! Deterministic for a given shape. Must not be used by the serving path.

use std::f64::consts::TAU;

use crate::rollup::{Aggregate, LabelSet, RollupRow, SeriesRow, ONE_MINUTE_SECS};
use crate::scrape::ingest::series_id;
use crate::store::{StoreError, StoreWriter, WriteBatch};

#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    pub clusters: usize,
    pub namespaces_per_cluster: usize,
    pub pods_per_namespace: usize,
    pub nodes_per_cluster: usize,
    /// Minutes of history ending at `end_minute` (exclusive, Unix seconds, minute aligned).
    pub minutes: i64,
    pub end_minute: i64,
}

impl FleetShape {
    pub fn pods(&self) -> usize {
        self.clusters * self.namespaces_per_cluster * self.pods_per_namespace
    }
}

const APPS: [&str; 8] = [
    "order-api",
    "sorter",
    "label-printer",
    "route-planner",
    "tracking",
    "billing",
    "scanner-gw",
    "eta-model",
];

/// A small deterministic hash for stable per-pod parameters.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn unit(x: u64) -> f64 {
    (mix(x) % 10_000) as f64 / 10_000.0
}

/// Like Kubernetes' generated name parts: drawn from its vowel-free alphabet.
fn generated_name(mut x: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

struct Builder {
    series: Vec<SeriesRow>,
    /// (series id, is counter, value at minute m: fn index)
    gens: Vec<(u64, bool, Gen)>,
}

#[derive(Clone, Copy)]
enum Gen {
    /// Gauge: base * (1 + amp * sin(day phase)).
    Wave { base: f64, amp: f64, phase: f64 },
    /// Counter with a rate that follows a wave.
    Rate { base: f64, amp: f64, phase: f64 },
    /// Counter that steps by one every `every` minutes.
    Steps { every: i64, offset: i64 },
}

impl Gen {
    fn value(self, minute: i64) -> f64 {
        let day = (minute.rem_euclid(1440)) as f64 / 1440.0;
        match self {
            Gen::Wave { base, amp, phase } | Gen::Rate { base, amp, phase } => {
                base * (1.0 + amp * (TAU * day + phase).sin())
            }
            Gen::Steps { every, offset } => ((minute + offset).div_euclid(every)) as f64,
        }
    }
}

impl Builder {
    fn add(&mut self, metric: &str, kind: &'static str, labels: &[(&str, &str)], gen: Gen) {
        let id = series_id(metric, labels);
        let mut sorted = labels.to_vec();
        sorted.sort();
        self.series.push(SeriesRow {
            id,
            metric: metric.into(),
            kind,
            labels: LabelSet::from_pairs(sorted.iter().copied()),
        });
        self.gens.push((id, kind == "counter", gen));
    }
}

fn build(shape: &FleetShape) -> Builder {
    let mut b = Builder {
        series: Vec::new(),
        gens: Vec::new(),
    };
    for c in 0..shape.clusters {
        let cluster = format!("dc-{:02}", c + 1);
        let nodes: Vec<String> = (0..shape.nodes_per_cluster.max(1))
            // Fully qualified, as most clouds name nodes: dots in a name
            // are what Grafana's regex-formatted variables escape.
            .map(|n| format!("node-{:02}.{cluster}.internal", n + 1))
            .collect();
        for (n, node) in nodes.iter().enumerate() {
            let seed = (c * 1000 + n) as u64;
            let busy = 0.2 + 0.6 * unit(seed);
            let inst = format!("{node}:9100");
            for cpu in 0..4 {
                let cpu = cpu.to_string();
                for (mode, share) in [
                    ("idle", 1.0 - busy),
                    ("user", busy * 0.8),
                    ("system", busy * 0.2),
                ] {
                    b.add(
                        "node_cpu_seconds_total",
                        "counter",
                        &[
                            ("cluster", &cluster),
                            ("job", "node"),
                            ("instance", &inst),
                            ("node", node),
                            ("cpu", &cpu),
                            ("mode", mode),
                        ],
                        Gen::Rate {
                            base: share,
                            amp: if mode == "idle" { -0.3 * busy } else { 0.3 },
                            phase: 0.0,
                        },
                    );
                }
            }
            let total = 64.0 * 1024.0 * 1024.0 * 1024.0;
            let node_labels = [
                ("cluster", cluster.as_str()),
                ("job", "node"),
                ("instance", inst.as_str()),
                ("node", node.as_str()),
            ];
            b.add(
                "node_memory_MemTotal_bytes",
                "gauge",
                &node_labels,
                Gen::Wave {
                    base: total,
                    amp: 0.0,
                    phase: 0.0,
                },
            );
            b.add(
                "node_memory_MemAvailable_bytes",
                "gauge",
                &node_labels,
                Gen::Wave {
                    base: total * (1.0 - busy),
                    amp: 0.1,
                    phase: 1.0,
                },
            );
            b.add(
                "up",
                "gauge",
                &node_labels[..3],
                Gen::Wave {
                    base: 1.0,
                    amp: 0.0,
                    phase: 0.0,
                },
            );
            b.add(
                "kube_node_status_allocatable",
                "gauge",
                &[
                    ("cluster", &cluster),
                    ("job", "kube-state-metrics"),
                    ("instance", "ksm:8080"),
                    ("node", node),
                    ("resource", "pods"),
                    ("unit", "integer"),
                ],
                Gen::Wave {
                    base: 110.0,
                    amp: 0.0,
                    phase: 0.0,
                },
            );
        }
        for ns in 0..shape.namespaces_per_cluster {
            let namespace = format!("team-{}", ns + 1);
            for p in 0..shape.pods_per_namespace {
                let seed = ((c * 100 + ns) * 10_000 + p) as u64;
                let app = APPS[(mix(seed) % APPS.len() as u64) as usize];
                let pod = format!(
                    "{app}-{}-{}",
                    generated_name(mix(seed), 9),
                    generated_name(mix(seed + 7), 5)
                );
                let node = &nodes[p % nodes.len()];
                let request = 0.1 + (unit(seed) * 20.0).round() * 0.05;
                // Most pods run at 30-90% of their request; a few are hot.
                let usage = request
                    * if unit(seed + 1) > 0.95 {
                        1.6
                    } else {
                        0.3 + 0.6 * unit(seed + 2)
                    };
                let mem_limit = (256 + 256 * (mix(seed + 3) % 8)) as f64 * 1024.0 * 1024.0;
                let kubelet = [
                    ("cluster", cluster.as_str()),
                    ("job", "kubelet"),
                    ("instance", node.as_str()),
                    ("namespace", namespace.as_str()),
                    ("pod", pod.as_str()),
                    ("container", "main"),
                ];
                b.add(
                    "container_cpu_usage_seconds_total",
                    "counter",
                    &kubelet,
                    Gen::Rate {
                        base: usage,
                        amp: 0.4,
                        phase: unit(seed + 4),
                    },
                );
                b.add(
                    "container_memory_working_set_bytes",
                    "gauge",
                    &kubelet,
                    Gen::Wave {
                        base: mem_limit * (0.4 + 0.5 * unit(seed + 5)),
                        amp: 0.1,
                        phase: 0.0,
                    },
                );
                let ksm = |b: &mut Builder, metric: &str, kind, extra: &[(&str, &str)], gen| {
                    let mut l = vec![
                        ("cluster", cluster.as_str()),
                        ("job", "kube-state-metrics"),
                        ("instance", "ksm:8080"),
                        ("namespace", namespace.as_str()),
                        ("pod", pod.as_str()),
                    ];
                    l.extend_from_slice(extra);
                    b.add(metric, kind, &l, gen);
                };
                let flat = |v| Gen::Wave {
                    base: v,
                    amp: 0.0,
                    phase: 0.0,
                };
                let cpu = [("container", "main"), ("resource", "cpu"), ("unit", "core")];
                ksm(
                    &mut b,
                    "kube_pod_container_resource_requests",
                    "gauge",
                    &cpu,
                    flat(request),
                );
                ksm(
                    &mut b,
                    "kube_pod_container_resource_limits",
                    "gauge",
                    &cpu,
                    flat(request * 2.0),
                );
                let memory = [
                    ("container", "main"),
                    ("resource", "memory"),
                    ("unit", "byte"),
                ];
                ksm(
                    &mut b,
                    "kube_pod_container_resource_limits",
                    "gauge",
                    &memory,
                    flat(mem_limit),
                );
                let restarts = if unit(seed + 6) > 0.97 {
                    Gen::Steps {
                        every: 30,
                        offset: p as i64,
                    }
                } else {
                    flat(0.0)
                };
                ksm(
                    &mut b,
                    "kube_pod_container_status_restarts_total",
                    "counter",
                    &[("container", "main")],
                    restarts,
                );
                ksm(
                    &mut b,
                    "kube_pod_info",
                    "gauge",
                    &[("node", node.as_str())],
                    flat(1.0),
                );
            }
        }
    }
    b
}

/// Writes the whole history through the store writer in minute batches, then
/// asks it to derive 5m/1h rows. Returns (series, 1m rows) written.
pub async fn seed(writer: &StoreWriter, shape: &FleetShape) -> Result<(usize, u64), StoreError> {
    let b = build(shape);
    let series_count = b.series.len();
    writer
        .write(WriteBatch {
            series: b.series,
            rollups: Vec::new(),
            ..Default::default()
        })
        .await?;
    let start = shape.end_minute - shape.minutes * ONE_MINUTE_SECS;
    let mut rows = 0u64;
    // Counter totals carried across minutes.
    let mut totals = vec![0.0f64; b.gens.len()];
    let mut batch = Vec::with_capacity(256 * 1024);
    for m in 0..shape.minutes {
        let ts = start + m * ONE_MINUTE_SECS;
        let minute = ts / ONE_MINUTE_SECS;
        for (i, (id, counter, gen)) in b.gens.iter().enumerate() {
            let mut agg = Aggregate::EMPTY;
            if *counter {
                let increase = match gen {
                    Gen::Rate { .. } => gen.value(minute).max(0.0) * 60.0,
                    Gen::Steps { .. } => (gen.value(minute) - gen.value(minute - 1)).max(0.0),
                    Gen::Wave { .. } => 0.0,
                };
                let before = totals[i];
                totals[i] += increase;
                // Two scrapes a minute: the first and last of the bucket.
                agg.add(before + increase / 2.0);
                agg.add(totals[i]);
                agg.increase = increase;
            } else {
                let v = gen.value(minute);
                agg.add(v);
                agg.add(v);
            }
            batch.push(RollupRow {
                series_id: *id,
                bucket_start: ts,
                agg,
            });
        }
        if batch.len() >= 200_000 || m + 1 == shape.minutes {
            rows += batch.len() as u64;
            writer
                .write(WriteBatch {
                    series: Vec::new(),
                    rollups: std::mem::take(&mut batch),
                    ..Default::default()
                })
                .await?;
        }
    }
    writer.sync().await?;
    writer.maintain().await?;
    writer.sync().await?;
    Ok((series_count, rows))
}
