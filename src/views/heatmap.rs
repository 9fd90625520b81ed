//! Heatmaps: one row per pod or node, one column per time bucket.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use duckdb::types::Value;

use super::{Scope, TimeRange, ViewError};
use crate::store::StoreReader;

/// The cell value of the pods heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodMode {
    CpuRequest,
    CpuLimit,
    MemoryLimit,
    Restarts,
}

impl FromStr for PodMode {
    type Err = ViewError;
    fn from_str(s: &str) -> Result<Self, ViewError> {
        Ok(match s {
            "" | "cpu_request" => PodMode::CpuRequest,
            "cpu_limit" => PodMode::CpuLimit,
            "memory_limit" => PodMode::MemoryLimit,
            "restarts" => PodMode::Restarts,
            other => {
                return Err(ViewError::BadRequest(format!(
                    "unknown pods_heatmap mode {other:?}; expected cpu_request, cpu_limit, memory_limit or restarts"
                )))
            }
        })
    }
}

impl PodMode {
    pub const ALL: [(&'static str, &'static str); 4] = [
        ("cpu_request", "CPU usage / request"),
        ("cpu_limit", "CPU usage / limit"),
        ("memory_limit", "Memory working set / limit"),
        ("restarts", "Container restarts"),
    ];
}

/// The cell value of the nodes heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeMode {
    Cpu,
    Memory,
    Pods,
}

impl FromStr for NodeMode {
    type Err = ViewError;
    fn from_str(s: &str) -> Result<Self, ViewError> {
        Ok(match s {
            "" | "cpu" => NodeMode::Cpu,
            "memory" => NodeMode::Memory,
            "pods" => NodeMode::Pods,
            other => {
                return Err(ViewError::BadRequest(format!(
                    "unknown nodes_heatmap mode {other:?}; expected cpu, memory or pods"
                )))
            }
        })
    }
}

impl NodeMode {
    pub const ALL: [(&'static str, &'static str); 3] = [
        ("cpu", "CPU utilisation"),
        ("memory", "Memory utilisation"),
        ("pods", "Pods / allocatable pods"),
    ];
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeatRow {
    /// `[cluster, namespace, pod]` or `[cluster, node]`.
    pub key: Vec<String>,
    pub values: Vec<Option<f64>>,
    pub peak: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub range: TimeRange,
    pub times: Vec<i64>,
    /// Hottest first, at most the requested limit.
    pub rows: Vec<HeatRow>,
    /// Rows before the limit was applied.
    pub total: usize,
    pub unit: &'static str,
}

/// How one series' rollup rows in a bucket become one number.
#[derive(Clone, Copy)]
enum PerSeries {
    /// Counter rate per second over the covered part of the bucket.
    Rate,
    /// Gauge average.
    Avg,
    /// Counter increase.
    Increase,
    /// 1 when the series has data in the bucket (for counting pods).
    Present,
}

impl PerSeries {
    fn sql(self, resolution_secs: i64) -> String {
        match self {
            PerSeries::Rate => format!("sum(r.increase) / (count(*) * {resolution_secs})"),
            PerSeries::Avg => "sum(r.sum) / sum(r.count)".into(),
            PerSeries::Increase => "sum(r.increase)".into(),
            PerSeries::Present => "1.0".into(),
        }
    }
}

/// How series that share a row key are combined.
#[derive(Clone, Copy)]
enum Across {
    Sum,
    Avg,
    CountDistinctPods,
}

#[derive(Clone, Copy)]
enum RowKey {
    Pod,
    Node,
    Cluster,
}

impl RowKey {
    fn sql(self) -> &'static str {
        match self {
            RowKey::Pod => "s.cluster, s.namespace, s.pod",
            RowKey::Node => "s.cluster, coalesce(s.node, s.instance)",
            RowKey::Cluster => "s.cluster",
        }
    }
    fn width(self) -> usize {
        match self {
            RowKey::Pod => 3,
            RowKey::Node => 2,
            RowKey::Cluster => 1,
        }
    }
    fn not_null(self) -> &'static str {
        match self {
            RowKey::Pod => " AND s.pod IS NOT NULL AND s.namespace IS NOT NULL",
            RowKey::Node => " AND coalesce(s.node, s.instance) IS NOT NULL",
            RowKey::Cluster => "",
        }
    }
}

/// One metric's contribution to a view.
#[derive(Clone, Copy)]
struct Part {
    metric: &'static str,
    /// Exact `"name":"value"` pairs the labels JSON must contain.
    label: Option<&'static str>,
    /// Only real containers: cAdvisor also exports a pod total (no
    /// `container` label) and the pause container (`POD`).
    real_containers: bool,
    per_series: PerSeries,
    across: Across,
}

type Grid = HashMap<Vec<String>, Vec<Option<f64>>>;

/// Runs several parts over the same rows in ONE scan of the rollup table
/// and returns one grid per part. Rows are keyed by a 64-bit hash of the
/// row key inside DuckDB, and the key strings are fetched once per row key
/// afterwards, so the big result carries no strings.
async fn query_parts(
    reader: &StoreReader,
    parts: &[Part],
    key: RowKey,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<Vec<Grid>, ViewError> {
    let keys = key.sql();
    let mut params: Vec<Value> = Vec::new();
    let mut selects = Vec::new();
    let mut per_series = String::from("CASE sel.part");
    let mut across = String::from("CASE x.part");
    let resolution_secs = range.resolution.secs();
    for (i, part) in parts.iter().enumerate() {
        let mut cond = String::from("s.metric = ?");
        params.push(Value::Text(part.metric.to_string()));
        if let Some(label) = part.label {
            cond.push_str(" AND contains(s.labels, ?)");
            params.push(Value::Text(label.to_string()));
        }
        if part.real_containers {
            cond.push_str(" AND s.container IS NOT NULL AND s.container <> 'POD'");
        }
        cond.push_str(key.not_null());
        cond.push_str(&scope.sql(&mut params));
        selects.push(format!(
            "SELECT s.id, {i} AS part, hash({keys}) AS k, hash(s.pod) AS p FROM series s WHERE {cond}"
        ));
        per_series.push_str(&format!(
            " WHEN {i} THEN {}",
            part.per_series.sql(resolution_secs)
        ));
        let combine = match part.across {
            Across::Sum => "sum(x.v)",
            Across::Avg => "avg(x.v)",
            Across::CountDistinctPods => "count(DISTINCT x.p)::DOUBLE",
        };
        across.push_str(&format!(" WHEN {i} THEN {combine}"));
    }
    per_series.push_str(" END");
    across.push_str(" END");
    let selection = selects.join(" UNION ALL ");
    let names_params = params.clone();
    params.push(Value::BigInt(range.start));
    params.push(Value::BigInt(range.end));
    let step = range.step;
    let sql = format!(
        "WITH sel AS ({selection}),
         x AS (
            SELECT sel.part, sel.k, sel.p, (r.ts // {step}) * {step} AS t, {per_series} AS v
            FROM {table} r JOIN sel ON r.series_id = sel.id
            WHERE r.ts >= ? AND r.ts < ?
            GROUP BY sel.part, sel.k, sel.p, r.series_id, t)
         SELECT x.part, x.k, x.t, {across} FROM x GROUP BY x.part, x.k, x.t",
        table = range.resolution_table(),
    );
    let names_sql =
        format!("SELECT DISTINCT k, {keys} FROM ({selection}) sel JOIN series s ON s.id = sel.id");
    let width = key.width();
    let buckets = range.buckets().len();
    let part_count = parts.len();
    let grids = reader
        .run(deadline, move |conn| {
            let mut cells: Vec<HashMap<u64, Vec<Option<f64>>>> = vec![HashMap::new(); part_count];
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                let part: i32 = row.get(0)?;
                let k: u64 = row.get(1)?;
                let t: i64 = row.get(2)?;
                let v: Option<f64> = row.get(3)?;
                let (Some(i), Some(grid)) = (range.index(t), cells.get_mut(part as usize)) else {
                    continue;
                };
                grid.entry(k).or_insert_with(|| vec![None; buckets])[i] =
                    v.filter(|v| v.is_finite());
            }
            let mut names: HashMap<u64, Vec<String>> = HashMap::new();
            let mut stmt = conn.prepare(&names_sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(names_params))?;
            while let Some(row) = rows.next()? {
                let k: u64 = row.get(0)?;
                let mut name = Vec::with_capacity(width);
                for i in 0..width {
                    name.push(row.get::<_, Option<String>>(i + 1)?.unwrap_or_default());
                }
                names.insert(k, name);
            }
            Ok(cells
                .into_iter()
                .map(|grid| {
                    grid.into_iter()
                        .filter_map(|(k, v)| Some((names.get(&k)?.clone(), v)))
                        .collect::<Grid>()
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(grids)
}

/// Two parts in one scan: (numerator, denominator).
async fn query_pair(
    reader: &StoreReader,
    num: Part,
    den: Part,
    key: RowKey,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<(Grid, Grid), ViewError> {
    let mut grids = query_parts(reader, &[num, den], key, scope, range, deadline)
        .await?
        .into_iter();
    Ok((
        grids.next().unwrap_or_default(),
        grids.next().unwrap_or_default(),
    ))
}

async fn query_part(
    reader: &StoreReader,
    part: Part,
    key: RowKey,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<Grid, ViewError> {
    Ok(query_parts(reader, &[part], key, scope, range, deadline)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// numerator / denominator per cell. A bucket without a denominator uses
/// the row's mean denominator: requests and limits change rarely, and a
/// missing kube-state-metrics scrape should not blank a cell.
fn ratio(num: Grid, den: &Grid, invert: bool) -> Grid {
    num.into_iter()
        .filter_map(|(k, values)| {
            let d = den.get(&k)?;
            let known: Vec<f64> = d.iter().flatten().copied().filter(|v| *v > 0.0).collect();
            let mean = (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64);
            let out = values
                .iter()
                .zip(d)
                .map(|(n, d)| {
                    let d = d.filter(|d| *d > 0.0).or(mean)?;
                    let r = (*n)? / d;
                    Some(if invert { 1.0 - r } else { r })
                })
                .collect();
            Some((k, out))
        })
        .collect()
}

fn into_heatmap(grid: Grid, range: TimeRange, limit: usize, unit: &'static str) -> Heatmap {
    let mut rows: Vec<HeatRow> = grid
        .into_iter()
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .map(|(key, values)| {
            let peak = values
                .iter()
                .flatten()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            HeatRow { key, values, peak }
        })
        .collect();
    rows.sort_by(|a, b| b.peak.total_cmp(&a.peak).then_with(|| a.key.cmp(&b.key)));
    let total = rows.len();
    rows.truncate(limit);
    Heatmap {
        times: range.buckets(),
        range,
        rows,
        total,
        unit,
    }
}

const CPU_USAGE: Part = Part {
    metric: "container_cpu_usage_seconds_total",
    label: None,
    real_containers: true,
    per_series: PerSeries::Rate,
    across: Across::Sum,
};

fn ksm_resource(metric: &'static str, resource: &'static str) -> Part {
    Part {
        metric,
        label: Some(resource),
        real_containers: false,
        per_series: PerSeries::Avg,
        across: Across::Sum,
    }
}

/// Every pod of the scope as a row; cells per `mode`; hottest first.
pub async fn pods_heatmap(
    reader: &StoreReader,
    scope: &Scope,
    mode: PodMode,
    range: TimeRange,
    limit: usize,
    deadline: Duration,
) -> Result<Heatmap, ViewError> {
    let q = |p| query_part(reader, p, RowKey::Pod, scope, range, deadline);
    let pair = |a, b| query_pair(reader, a, b, RowKey::Pod, scope, range, deadline);
    let (grid, unit) = match mode {
        PodMode::CpuRequest | PodMode::CpuLimit => {
            let metric = if mode == PodMode::CpuRequest {
                "kube_pod_container_resource_requests"
            } else {
                "kube_pod_container_resource_limits"
            };
            let (num, den) = pair(CPU_USAGE, ksm_resource(metric, "\"resource\":\"cpu\"")).await?;
            (ratio(num, &den, false), "percentunit")
        }
        PodMode::MemoryLimit => {
            let usage = Part {
                metric: "container_memory_working_set_bytes",
                label: None,
                real_containers: true,
                per_series: PerSeries::Avg,
                across: Across::Sum,
            };
            let limits = ksm_resource(
                "kube_pod_container_resource_limits",
                "\"resource\":\"memory\"",
            );
            let (num, den) = pair(usage, limits).await?;
            (ratio(num, &den, false), "percentunit")
        }
        PodMode::Restarts => {
            let restarts = Part {
                metric: "kube_pod_container_status_restarts_total",
                label: None,
                real_containers: false,
                per_series: PerSeries::Increase,
                across: Across::Sum,
            };
            (q(restarts).await?, "short")
        }
    };
    Ok(into_heatmap(grid, range, limit, unit))
}

/// Every node of the scope as a row; cells per `mode`; hottest first.
pub async fn nodes_heatmap(
    reader: &StoreReader,
    scope: &Scope,
    mode: NodeMode,
    range: TimeRange,
    limit: usize,
    deadline: Duration,
) -> Result<Heatmap, ViewError> {
    let pair = |a, b| query_pair(reader, a, b, RowKey::Node, scope, range, deadline);
    let grid = match mode {
        NodeMode::Cpu => {
            let cpu = |label| Part {
                metric: "node_cpu_seconds_total",
                label,
                real_containers: false,
                per_series: PerSeries::Rate,
                across: Across::Sum,
            };
            let (idle, all) = pair(cpu(Some("\"mode\":\"idle\"")), cpu(None)).await?;
            ratio(idle, &all, true)
        }
        NodeMode::Memory => {
            let gauge = |metric| Part {
                metric,
                label: None,
                real_containers: false,
                per_series: PerSeries::Avg,
                across: Across::Sum,
            };
            let (available, total) = pair(
                gauge("node_memory_MemAvailable_bytes"),
                gauge("node_memory_MemTotal_bytes"),
            )
            .await?;
            ratio(available, &total, true)
        }
        NodeMode::Pods => {
            let pods = Part {
                metric: "kube_pod_info",
                label: None,
                real_containers: false,
                per_series: PerSeries::Present,
                across: Across::CountDistinctPods,
            };
            let allocatable = ksm_resource("kube_node_status_allocatable", "\"resource\":\"pods\"");
            let (num, den) = pair(pods, allocatable).await?;
            ratio(num, &den, false)
        }
    };
    Ok(into_heatmap(grid, range, limit, "percentunit"))
}

/// One status-history panel: a value per cluster per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPanel {
    pub name: &'static str,
    pub unit: &'static str,
    pub clusters: Vec<(String, Vec<Option<f64>>)>,
}

/// Per cluster: share of targets up, failed scrapes, pods not ready.
pub async fn cluster_status(
    reader: &StoreReader,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<(Vec<i64>, Vec<StatusPanel>), ViewError> {
    let pair = |a, b| query_pair(reader, a, b, RowKey::Cluster, scope, range, deadline);
    let up = |per_series, across| Part {
        metric: "up",
        label: None,
        real_containers: false,
        per_series,
        across,
    };
    let not_ready = Part {
        metric: "kube_pod_status_ready",
        label: Some("\"condition\":\"false\""),
        real_containers: false,
        per_series: PerSeries::Avg,
        across: Across::Sum,
    };
    let (up_ratio, not_ready) = pair(up(PerSeries::Avg, Across::Avg), not_ready).await?;
    // Failed scrapes = samples of `up` that were 0: count - sum, per bucket.
    let failed_grid = failed_scrapes(reader, scope, range, deadline).await?;
    let panel = |name, unit, grid: Grid| {
        let mut clusters: Vec<(String, Vec<Option<f64>>)> = grid
            .into_iter()
            .map(|(k, v)| (k.into_iter().next().unwrap_or_default(), v))
            .collect();
        clusters.sort_by(|a, b| a.0.cmp(&b.0));
        StatusPanel {
            name,
            unit,
            clusters,
        }
    };
    Ok((
        range.buckets(),
        vec![
            panel("targets_up_ratio", "percentunit", up_ratio),
            panel("scrape_errors", "short", failed_grid),
            panel("pods_not_ready", "short", not_ready),
        ],
    ))
}

async fn failed_scrapes(
    reader: &StoreReader,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<Grid, ViewError> {
    let mut params: Vec<Value> = Vec::new();
    let cond = scope.sql(&mut params);
    params.push(Value::BigInt(range.start));
    params.push(Value::BigInt(range.end));
    let step = range.step;
    let sql = format!(
        "SELECT s.cluster, (r.ts // {step}) * {step} AS t, sum(r.count - r.sum)
         FROM {table} r JOIN series s ON s.id = r.series_id
         WHERE s.metric = 'up'{cond} AND r.ts >= ? AND r.ts < ?
         GROUP BY ALL",
        table = range.resolution_table(),
    );
    let buckets = range.buckets().len();
    Ok(reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(params))?;
            let mut grid: Grid = HashMap::new();
            while let Some(row) = rows.next()? {
                let cluster = row.get::<_, Option<String>>(0)?.unwrap_or_default();
                let t: i64 = row.get(1)?;
                let v: Option<f64> = row.get(2)?;
                if let Some(i) = range.index(t) {
                    grid.entry(vec![cluster])
                        .or_insert_with(|| vec![None; buckets])[i] = v;
                }
            }
            Ok(grid)
        })
        .await?)
}
