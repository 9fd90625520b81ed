//! Fleet views on a fleet of known shape, written through the real store
//! writer into a real DuckDB file; every expected cell is computed by hand.

use std::sync::Arc;
use std::time::Duration;

use fleetscope::config::Retention;
use fleetscope::rollup::{Aggregate, LabelSet, RollupRow, SeriesRow};
use fleetscope::scrape::ingest::series_id;
use fleetscope::store::{self, StoreOptions, StoreReader, StoreWriter, WriteBatch};
use fleetscope::telemetry::Telemetry;
use fleetscope::views::{
    self, Dim, FilterOp, NodeMode, PodMode, Scope, SeriesAgg, SeriesQuery, TimeRange,
};

const MINUTES: i64 = 10;
const DEADLINE: Duration = Duration::from_secs(10);
/// `api.max_points`' default.
const MAX_POINTS: usize = 1_000_000;

struct Fleet {
    writer: StoreWriter,
    reader: StoreReader,
    base: i64,
    _dir: tempfile::TempDir,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One series: labels, and per minute (increase for counters, value for gauges).
fn series(metric: &str, kind: &'static str, labels: &[(&str, &str)]) -> SeriesRow {
    let mut l = labels.to_vec();
    l.sort();
    SeriesRow {
        id: series_id(metric, labels),
        metric: metric.into(),
        kind,
        labels: LabelSet::from_pairs(l.iter().copied()),
    }
}

fn gauge_rows(id: u64, base: i64, value: impl Fn(i64) -> f64) -> Vec<RollupRow> {
    (0..MINUTES)
        .map(|m| {
            let mut a = Aggregate::EMPTY;
            a.add(value(m));
            RollupRow {
                series_id: id,
                bucket_start: base + m * 60,
                agg: a,
            }
        })
        .collect()
}

fn counter_rows(id: u64, base: i64, increase: impl Fn(i64) -> f64) -> Vec<RollupRow> {
    let mut total = 0.0;
    (0..MINUTES)
        .map(|m| {
            let inc = increase(m);
            let mut a = Aggregate::EMPTY;
            a.add(total);
            total += inc;
            a.add(total);
            a.increase = inc;
            RollupRow {
                series_id: id,
                bucket_start: base + m * 60,
                agg: a,
            }
        })
        .collect()
}

/// Pods (cluster, namespace, pod, node, cpu cores used, cpu request, memory used, memory limit).
type Pod = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
    f64,
    f64,
);
const PODS: [Pod; 3] = [
    (
        "a",
        "n1",
        "web-6f7d8c9b5-bxkzq",
        "node-x",
        0.5,
        1.0,
        256.0,
        1024.0,
    ),
    ("a", "n1", "db-0", "node-y", 0.2, 0.1, 900.0, 1000.0),
    (
        "b",
        "n2",
        "api-7c8d9f2g4-bxkzq",
        "node-z",
        0.3,
        0.6,
        100.0,
        1000.0,
    ),
];

async fn fleet() -> Fleet {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::new(dir.path(), Retention::default());
    options.derive_lateness_secs = 0;
    let (writer, reader) = store::open(options, Arc::new(Telemetry::default())).unwrap();
    let base = (now() - 3 * 3600) / 3600 * 3600;
    let mut batch = WriteBatch::default();
    for (cluster, ns, pod, node, cores, request, mem, mem_limit) in PODS {
        let kubelet = [
            ("cluster", cluster),
            ("job", "kubelet"),
            ("instance", node),
            ("namespace", ns),
            ("pod", pod),
            ("container", "main"),
        ];
        let cpu = series("container_cpu_usage_seconds_total", "counter", &kubelet);
        batch
            .rollups
            .extend(counter_rows(cpu.id, base, |_| cores * 60.0));
        batch.series.push(cpu);
        // The pause container and the pod-level total must not count.
        let pause = [
            ("cluster", cluster),
            ("job", "kubelet"),
            ("instance", node),
            ("namespace", ns),
            ("pod", pod),
            ("container", "POD"),
        ];
        let p = series("container_cpu_usage_seconds_total", "counter", &pause);
        batch.rollups.extend(counter_rows(p.id, base, |_| 600.0));
        batch.series.push(p);
        let memory = series("container_memory_working_set_bytes", "gauge", &kubelet);
        batch.rollups.extend(gauge_rows(memory.id, base, |_| mem));
        batch.series.push(memory);
        let ksm = |extra: &[(&'static str, &'static str)]| {
            let mut l = vec![
                ("cluster", cluster),
                ("job", "ksm"),
                ("instance", "ksm:8080"),
                ("namespace", ns),
                ("pod", pod),
            ];
            l.extend_from_slice(extra);
            l
        };
        let req = series(
            "kube_pod_container_resource_requests",
            "gauge",
            &ksm(&[("container", "main"), ("resource", "cpu"), ("unit", "core")]),
        );
        batch.rollups.extend(gauge_rows(req.id, base, |_| request));
        batch.series.push(req);
        let lim = series(
            "kube_pod_container_resource_limits",
            "gauge",
            &ksm(&[
                ("container", "main"),
                ("resource", "memory"),
                ("unit", "byte"),
            ]),
        );
        batch
            .rollups
            .extend(gauge_rows(lim.id, base, |_| mem_limit));
        batch.series.push(lim);
        let restarts = series(
            "kube_pod_container_status_restarts_total",
            "counter",
            &ksm(&[("container", "main")]),
        );
        // db-0 restarts twice in minute 3.
        let restarting = pod == "db-0";
        batch.rollups.extend(counter_rows(restarts.id, base, |m| {
            if restarting && m == 3 {
                2.0
            } else {
                0.0
            }
        }));
        batch.series.push(restarts);
        let info = series("kube_pod_info", "gauge", &ksm(&[("node", node)]));
        batch.rollups.extend(gauge_rows(info.id, base, |_| 1.0));
        batch.series.push(info);
    }
    // node-x: 4 CPUs, 3 idle and 1 busy -> 25% utilisation.
    for (mode, rate) in [("idle", 3.0), ("user", 0.75), ("system", 0.25)] {
        let s = series(
            "node_cpu_seconds_total",
            "counter",
            &[
                ("cluster", "a"),
                ("job", "node"),
                ("instance", "node-x:9100"),
                ("node", "node-x"),
                ("mode", mode),
            ],
        );
        batch
            .rollups
            .extend(counter_rows(s.id, base, |_| rate * 60.0));
        batch.series.push(s);
    }
    writer.write(batch).await.unwrap();
    writer.sync().await.unwrap();
    Fleet {
        writer,
        reader,
        base,
        _dir: dir,
    }
}

fn range(f: &Fleet, step: i64) -> TimeRange {
    TimeRange::new(
        f.base,
        f.base + MINUTES * 60,
        step,
        100,
        now(),
        &Retention::default(),
    )
    .unwrap()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_heatmap_cells_match_hand_computed_ratios() {
    let f = fleet().await;
    let r = range(&f, 120);
    assert_eq!((r.step, r.resolution.as_str()), (120, "1m"));
    let map = views::pods_heatmap(
        &f.reader,
        &Scope::default(),
        PodMode::CpuRequest,
        r,
        10,
        DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!(map.total, 3);
    let keys: Vec<&str> = map.rows.iter().map(|r| r.key[2].as_str()).collect();
    assert_eq!(
        keys[0], "db-0",
        "the hottest pod (0.2 / 0.1 = 200%) is first"
    );
    assert_eq!(map.times.len(), 5);
    for row in &map.rows {
        let (_, _, _, _, cores, request, _, _) = PODS.iter().find(|p| p.2 == row.key[2]).unwrap();
        for v in &row.values {
            assert!(
                close(*v, cores / request),
                "{:?}: {v:?} vs {}",
                row.key,
                cores / request
            );
        }
    }
    let mem = views::pods_heatmap(
        &f.reader,
        &Scope::default(),
        PodMode::MemoryLimit,
        r,
        10,
        DEADLINE,
    )
    .await
    .unwrap();
    assert!(close(mem.rows[0].values[0], 0.9), "db-0 uses 900 of 1000");
    let restarts = views::pods_heatmap(
        &f.reader,
        &Scope::default(),
        PodMode::Restarts,
        r,
        1,
        DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!((restarts.total, restarts.rows.len()), (3, 1), "top 1 of 3");
    assert_eq!(restarts.rows[0].key[2], "db-0");
    // Minute 3 falls in the 120 s bucket starting at minute 2.
    assert_eq!(
        restarts.rows[0].values,
        vec![Some(0.0), Some(2.0), Some(0.0), Some(0.0), Some(0.0)]
    );
    f.writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_filter_by_cluster_node_and_workload() {
    let f = fleet().await;
    let r = range(&f, 120);
    let run = |scope: Scope| {
        let reader = f.reader.clone();
        async move {
            let m = views::pods_heatmap(&reader, &scope, PodMode::CpuRequest, r, 10, DEADLINE)
                .await
                .unwrap();
            let mut pods: Vec<String> = m.rows.into_iter().map(|r| r.key[2].clone()).collect();
            pods.sort();
            pods
        }
    };
    let mut s = Scope::default();
    s.push(Dim::Cluster, FilterOp::In(vec!["b".into()]))
        .unwrap();
    assert_eq!(run(s).await, vec!["api-7c8d9f2g4-bxkzq"]);
    let mut s = Scope::default();
    s.push(Dim::Node, FilterOp::In(vec!["node-x".into()]))
        .unwrap();
    assert_eq!(
        run(s).await,
        vec!["web-6f7d8c9b5-bxkzq"],
        "a pod's node comes from kube_pod_info"
    );
    let mut s = Scope::default();
    s.push(Dim::Workload, FilterOp::In(vec!["web".into(), "db".into()]))
        .unwrap();
    assert_eq!(run(s).await, vec!["db-0", "web-6f7d8c9b5-bxkzq"]);
    let mut s = Scope::default();
    s.push(Dim::Namespace, FilterOp::NotRegex("n.*".into()))
        .unwrap();
    assert!(run(s).await.is_empty());
    let values = views::dimension_values(&f.reader, Dim::Workload, &Scope::default(), DEADLINE)
        .await
        .unwrap();
    assert_eq!(values, vec!["api", "db", "web"]);
    f.writer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_series_and_derived_resolution_agree() {
    let f = fleet().await;
    let r = range(&f, 120);
    let nodes = views::nodes_heatmap(&f.reader, &Scope::default(), NodeMode::Cpu, r, 10, DEADLINE)
        .await
        .unwrap();
    assert_eq!(nodes.rows.len(), 1);
    assert_eq!(nodes.rows[0].key, vec!["a", "node-x"]);
    assert!(
        nodes.rows[0].values.iter().all(|v| close(*v, 0.25)),
        "{:?}",
        nodes.rows[0].values
    );

    let q = SeriesQuery {
        metric: "container_cpu_usage_seconds_total".into(),
        selector: Some(views::selector::Selector::parse(r#"{container!="POD"}"#).unwrap()),
        agg: Some(SeriesAgg::Rate),
        by: Some(vec!["cluster".into()]),
        limit: 10,
        ..Default::default()
    };
    let by_cluster = views::timeseries(&f.reader, &q, r, MAX_POINTS, DEADLINE)
        .await
        .unwrap();
    assert_eq!(by_cluster.series.len(), 2);
    assert!(
        by_cluster.series[0].values.iter().all(|v| close(*v, 0.7)),
        "cluster a: 0.5 + 0.2 cores"
    );
    assert!(by_cluster.series[1].values.iter().all(|v| close(*v, 0.3)));

    // Grouping by stored label columns runs inside DuckDB; a matcher that
    // keeps every series takes the general path. Both must agree.
    for agg in [
        SeriesAgg::Avg,
        SeriesAgg::Max,
        SeriesAgg::Min,
        SeriesAgg::Sum,
        SeriesAgg::Rate,
        SeriesAgg::Increase,
    ] {
        for by in [vec!["cluster"], vec!["namespace", "cluster"], vec!["pod"]] {
            let mut q = SeriesQuery {
                metric: "container_cpu_usage_seconds_total".into(),
                agg: Some(agg),
                by: Some(by.iter().map(|s| s.to_string()).collect()),
                limit: 100,
                ..Default::default()
            };
            let in_store = views::timeseries(&f.reader, &q, r, MAX_POINTS, DEADLINE)
                .await
                .unwrap();
            q.selector = Some(views::selector::Selector::parse(r#"{cluster=~".*"}"#).unwrap());
            let general = views::timeseries(&f.reader, &q, r, MAX_POINTS, DEADLINE)
                .await
                .unwrap();
            // Series held one by one cost a value per step each: past the
            // budget the query is refused, not evaluated.
            let below_one_series = r.buckets().len() - 1;
            let tight = views::timeseries(&f.reader, &q, r, below_one_series, DEADLINE).await;
            assert!(
                matches!(&tight, Err(views::ViewError::BadRequest(m)) if m.contains("api.max_points")),
                "{agg:?} by {by:?}: {tight:?}"
            );
            assert!(in_store.series.len() >= 2, "{agg:?} by {by:?}");
            assert_eq!(in_store.total, general.total, "{agg:?} by {by:?}");
            for (a, b) in in_store.series.iter().zip(&general.series) {
                assert_eq!(a.labels, b.labels, "{agg:?} by {by:?}");
                assert_eq!(a.values.len(), b.values.len());
                for (x, y) in a.values.iter().zip(&b.values) {
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            assert!(close(Some(*x), *y), "{agg:?} by {by:?}: {x} vs {y}")
                        }
                        _ => assert_eq!(x, y, "{agg:?} by {by:?}"),
                    }
                }
            }
        }
    }

    // Derive 5m rows and read the same answer from them.
    f.writer.maintain().await.unwrap();
    f.writer.sync().await.unwrap();
    let r5 = range(&f, 300);
    assert_eq!(r5.resolution.as_str(), "5m");
    let derived = views::timeseries(&f.reader, &q, r5, MAX_POINTS, DEADLINE)
        .await
        .unwrap();
    assert_eq!(derived.times.len(), 2);
    assert!(
        derived.series[0].values.iter().all(|v| close(*v, 0.7)),
        "{:?}",
        derived.series[0].values
    );
    f.writer.shutdown().await;
}

/// A node exporter whose series name their node by `instance` alone (as
/// kube-prometheus relabels them, and as they arrive through /federate):
/// the nodes heatmap keys its row by that name, and a `node` filter with
/// that name selects the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_named_by_instance_alone_is_found_by_the_node_filter() {
    let f = fleet().await;
    let mut batch = WriteBatch::default();
    for (mode, rate) in [("idle", 1.0), ("user", 1.0)] {
        let s = series(
            "node_cpu_seconds_total",
            "counter",
            &[
                ("cluster", "a"),
                ("job", "node-exporter"),
                ("instance", "node-y"),
                ("mode", mode),
            ],
        );
        batch
            .rollups
            .extend(counter_rows(s.id, f.base, |_| rate * 60.0));
        batch.series.push(s);
    }
    f.writer.write(batch).await.unwrap();
    f.writer.sync().await.unwrap();
    let r = range(&f, 120);
    let mut scope = Scope::default();
    scope
        .push(Dim::Node, FilterOp::In(vec!["node-y".into()]))
        .unwrap();
    let nodes = views::nodes_heatmap(&f.reader, &scope, NodeMode::Cpu, r, 10, DEADLINE)
        .await
        .unwrap();
    assert_eq!(nodes.rows.len(), 1, "{:?}", nodes.rows);
    assert_eq!(nodes.rows[0].key, vec!["a", "node-y"]);
    assert!(nodes.rows[0].values.iter().all(|v| close(*v, 0.5)));
    f.writer.shutdown().await;
}
