//! Heatmaps: one row per pod or node, one column per time bucket.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use duckdb::types::Value;

use super::{Dim, Scope, TimeRange, ViewError};
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

/// How the rollup rows of one row key (a pod, a node, a cluster) in one
/// bucket become one number. Computed in a single GROUP BY over the rows:
/// a pod's series are summed directly, with the covered time span standing
/// in for per-series averaging, so there is no second aggregation level.
#[derive(Clone, Copy)]
enum Cell {
    /// Counter rate per second over the covered part of the bucket, summed over series.
    Rate,
    /// Gauge average per series, summed over series (e.g. containers of a pod).
    AvgSum,
    /// Counter increase, summed.
    Increase,
    /// Sample-weighted average over all series (e.g. share of targets up).
    WeightedAvg,
    /// Distinct pods with data in the bucket.
    DistinctPods,
    /// Samples of a 0/1 gauge that were 0 (failed scrapes from `up`).
    Zeros,
}

impl Cell {
    fn sql(self, res: i64) -> String {
        match self {
            Cell::Rate => format!("sum(r.increase) / (max(r.ts) - min(r.ts) + {res})"),
            Cell::AvgSum => {
                format!("sum(r.sum / r.count) * {res} / (max(r.ts) - min(r.ts) + {res})")
            }
            Cell::Increase => "sum(r.increase)".into(),
            Cell::WeightedAvg => "sum(r.sum) / sum(r.count)".into(),
            Cell::DistinctPods => "count(DISTINCT sel.p)::DOUBLE".into(),
            Cell::Zeros => "sum(r.count - r.sum)".into(),
        }
    }
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
    /// What a filter on `dim` compares: a node row's own key for `node`
    /// (a node exporter's series often name their node by `instance`
    /// alone, as kube-prometheus relabels them), so a node chosen from the
    /// rows or from the `node` variable selects its row.
    fn filter_column(self, dim: Dim) -> &'static str {
        match (self, dim) {
            (RowKey::Node, Dim::Node) => "coalesce(s.node, s.instance)",
            _ => dim.sql(),
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
    /// Exact `"name":"value"` pairs `other_labels` must contain (so never
    /// a label with a column of its own: those are not in that JSON).
    label: Option<&'static str>,
    /// Only real containers: cAdvisor also exports a pod total (no
    /// `container` label) and the pause container (`POD`).
    real_containers: bool,
    cell: Cell,
}

impl Part {
    const fn new(metric: &'static str, cell: Cell) -> Part {
        Part {
            metric,
            label: None,
            real_containers: false,
            cell,
        }
    }
    const fn with_label(self, label: &'static str) -> Part {
        Part {
            label: Some(label),
            ..self
        }
    }
    const fn containers(self) -> Part {
        Part {
            real_containers: true,
            ..self
        }
    }
}

/// How the parts make the cell value.
enum Combine {
    /// The first part as is.
    Single,
    /// numerator / denominator. A bucket without a denominator uses the
    /// row's mean denominator: requests and limits change rarely, and a
    /// missed kube-state-metrics scrape should not blank a cell. Rows with
    /// no positive denominator at all are left out.
    Ratio,
    /// 1 - numerator / denominator (utilisation from idle or available).
    OneMinusRatio,
}

struct Rows {
    /// Row key strings, the cells, and the row's peak; hottest first.
    rows: Vec<HeatRow>,
    total: usize,
}

/// Computes a whole heatmap inside DuckDB in one statement: one scan of the
/// rollup table for all parts, the combination, the peak per row and the
/// top `limit` rows. Only the returned rows cross into Rust; row keys travel
/// as 64-bit hashes and their strings are fetched once per returned row.
#[allow(clippy::too_many_arguments)]
async fn heat_query(
    reader: &StoreReader,
    parts: &[Part],
    combine: Combine,
    key: RowKey,
    scope: &Scope,
    range: TimeRange,
    limit: usize,
    deadline: Duration,
) -> Result<Rows, ViewError> {
    let keys = key.sql();
    let res = range.resolution.secs();
    let mut params: Vec<Value> = Vec::new();
    let mut selects = Vec::new();
    let mut cell = String::from("CASE sel.part");
    for (i, part) in parts.iter().enumerate() {
        let mut cond = String::from("s.metric = ?");
        params.push(Value::Text(part.metric.to_string()));
        if let Some(label) = part.label {
            cond.push_str(" AND contains(s.other_labels, ?)");
            params.push(Value::Text(label.to_string()));
        }
        if part.real_containers {
            cond.push_str(" AND s.container IS NOT NULL AND s.container <> 'POD'");
        }
        cond.push_str(key.not_null());
        cond.push_str(&scope.sql_with(&mut params, |dim| key.filter_column(dim)));
        selects.push(format!(
            "SELECT s.id, s.sid, {i} AS part, hash({keys}) AS k, hash(s.pod) AS p FROM series s WHERE {cond}"
        ));
        cell.push_str(&format!(" WHEN {i} THEN {}", part.cell.sql(res)));
    }
    cell.push_str(" END");
    let selection = selects.join(" UNION ALL ");
    let names_params = params.clone();
    params.push(Value::BigInt(range.start));
    params.push(Value::BigInt(range.end));
    let ratio = "n.v / coalesce(CASE WHEN d.v > 0 THEN d.v END, m.mean)";
    let value = match combine {
        Combine::Single => "SELECT k, t, v FROM cells".to_string(),
        Combine::Ratio | Combine::OneMinusRatio => {
            let expr = if matches!(combine, Combine::Ratio) {
                ratio.to_string()
            } else {
                format!("1 - {ratio}")
            };
            format!(
                "SELECT n.k, n.t, {expr} AS v
                 FROM (SELECT k, t, v FROM cells WHERE part = 0) n
                 JOIN (SELECT k, avg(v) FILTER (WHERE v > 0) AS mean FROM cells WHERE part = 1 GROUP BY k) m ON m.k = n.k
                 LEFT JOIN (SELECT k, t, v FROM cells WHERE part = 1) d ON d.k = n.k AND d.t = n.t"
            )
        }
    };
    let step = range.step;
    let sql = format!(
        "WITH sel AS ({selection}),
         cells AS (
            SELECT sel.part, sel.k, (r.ts // {step}) * {step} AS t, {cell} AS v
            FROM {table} r JOIN sel ON r.sid = sel.sid
            WHERE r.ts >= ? AND r.ts < ?
            GROUP BY sel.part, sel.k, t),
         value AS ({value}),
         ranked AS (SELECT k, max(v) AS peak FROM value WHERE isfinite(v) GROUP BY k),
         top AS (SELECT k, peak, count(*) OVER () AS total FROM ranked ORDER BY peak DESC, k LIMIT {limit})
         SELECT value.k, value.t, value.v, top.peak, top.total FROM value JOIN top ON top.k = value.k",
        table = range.resolution_table(),
    );
    let names_sql =
        format!("SELECT DISTINCT k, {keys} FROM ({selection}) sel JOIN series s ON s.id = sel.id");
    let width = key.width();
    let buckets = range.buckets().len();
    let rows = reader
        .run(deadline, move |conn| {
            let mut cells: HashMap<u64, (f64, Vec<Option<f64>>)> = HashMap::new();
            let mut total = 0usize;
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(params))?;
            while let Some(row) = rows.next()? {
                let k: u64 = row.get(0)?;
                let t: i64 = row.get(1)?;
                let v: Option<f64> = row.get(2)?;
                let peak: f64 = row.get(3)?;
                total = row.get::<_, i64>(4)?.max(0) as usize;
                let Some(i) = range.index(t) else { continue };
                let entry = cells
                    .entry(k)
                    .or_insert_with(|| (peak, vec![None; buckets]));
                entry.1[i] = v.filter(|v| v.is_finite());
            }
            let mut names: HashMap<u64, Vec<String>> = HashMap::new();
            let mut stmt = conn.prepare(&names_sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(names_params))?;
            while let Some(row) = rows.next()? {
                let k: u64 = row.get(0)?;
                if !cells.contains_key(&k) {
                    continue;
                }
                let mut name = Vec::with_capacity(width);
                for i in 0..width {
                    name.push(row.get::<_, Option<String>>(i + 1)?.unwrap_or_default());
                }
                names.insert(k, name);
            }
            let mut out: Vec<HeatRow> = cells
                .into_iter()
                .filter_map(|(k, (peak, values))| {
                    Some(HeatRow {
                        key: names.remove(&k)?,
                        values,
                        peak,
                    })
                })
                .collect();
            out.sort_by(|a, b| b.peak.total_cmp(&a.peak).then_with(|| a.key.cmp(&b.key)));
            Ok(Rows { rows: out, total })
        })
        .await?;
    Ok(rows)
}

fn heatmap(rows: Rows, range: TimeRange, unit: &'static str) -> Heatmap {
    Heatmap {
        times: range.buckets(),
        range,
        rows: rows.rows,
        total: rows.total,
        unit,
    }
}

const CPU_USAGE: Part = Part::new("container_cpu_usage_seconds_total", Cell::Rate).containers();
const CPU: &str = "\"resource\":\"cpu\"";
const MEMORY: &str = "\"resource\":\"memory\"";

/// Every pod of the scope as a row; cells per `mode`; hottest first.
pub async fn pods_heatmap(
    reader: &StoreReader,
    scope: &Scope,
    mode: PodMode,
    range: TimeRange,
    limit: usize,
    deadline: Duration,
) -> Result<Heatmap, ViewError> {
    let (parts, combine, unit) = match mode {
        PodMode::CpuRequest => (
            vec![
                CPU_USAGE,
                Part::new("kube_pod_container_resource_requests", Cell::AvgSum).with_label(CPU),
            ],
            Combine::Ratio,
            "percentunit",
        ),
        PodMode::CpuLimit => (
            vec![
                CPU_USAGE,
                Part::new("kube_pod_container_resource_limits", Cell::AvgSum).with_label(CPU),
            ],
            Combine::Ratio,
            "percentunit",
        ),
        PodMode::MemoryLimit => (
            vec![
                Part::new("container_memory_working_set_bytes", Cell::AvgSum).containers(),
                Part::new("kube_pod_container_resource_limits", Cell::AvgSum).with_label(MEMORY),
            ],
            Combine::Ratio,
            "percentunit",
        ),
        PodMode::Restarts => (
            vec![Part::new(
                "kube_pod_container_status_restarts_total",
                Cell::Increase,
            )],
            Combine::Single,
            "short",
        ),
    };
    let rows = heat_query(
        reader,
        &parts,
        combine,
        RowKey::Pod,
        scope,
        range,
        limit,
        deadline,
    )
    .await?;
    Ok(heatmap(rows, range, unit))
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
    let (parts, combine) = match mode {
        NodeMode::Cpu => (
            vec![
                Part::new("node_cpu_seconds_total", Cell::Rate).with_label("\"mode\":\"idle\""),
                Part::new("node_cpu_seconds_total", Cell::Rate),
            ],
            Combine::OneMinusRatio,
        ),
        NodeMode::Memory => (
            vec![
                Part::new("node_memory_MemAvailable_bytes", Cell::AvgSum),
                Part::new("node_memory_MemTotal_bytes", Cell::AvgSum),
            ],
            Combine::OneMinusRatio,
        ),
        NodeMode::Pods => (
            vec![
                Part::new("kube_pod_info", Cell::DistinctPods),
                Part::new("kube_node_status_allocatable", Cell::AvgSum)
                    .with_label("\"resource\":\"pods\""),
            ],
            Combine::Ratio,
        ),
    };
    let rows = heat_query(
        reader,
        &parts,
        combine,
        RowKey::Node,
        scope,
        range,
        limit,
        deadline,
    )
    .await?;
    Ok(heatmap(rows, range, "percentunit"))
}

/// One status-history panel: a value per cluster per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPanel {
    pub name: &'static str,
    pub unit: &'static str,
    pub clusters: Vec<(String, Vec<Option<f64>>)>,
}

/// Clusters shown in one status panel at most.
const MAX_CLUSTERS: usize = 10_000;

/// Per cluster: share of targets up, failed scrapes, pods not ready.
pub async fn cluster_status(
    reader: &StoreReader,
    scope: &Scope,
    range: TimeRange,
    deadline: Duration,
) -> Result<(Vec<i64>, Vec<StatusPanel>), ViewError> {
    let panels = [
        (
            "targets_up_ratio",
            "percentunit",
            Part::new("up", Cell::WeightedAvg),
        ),
        ("scrape_errors", "short", Part::new("up", Cell::Zeros)),
        (
            "pods_not_ready",
            "short",
            Part::new("kube_pod_status_ready", Cell::AvgSum).with_label("\"condition\":\"false\""),
        ),
    ];
    let mut out = Vec::new();
    for (name, unit, part) in panels {
        let rows = heat_query(
            reader,
            &[part],
            Combine::Single,
            RowKey::Cluster,
            scope,
            range,
            MAX_CLUSTERS,
            deadline,
        )
        .await?;
        let mut clusters: Vec<(String, Vec<Option<f64>>)> = rows
            .rows
            .into_iter()
            .map(|r| (r.key.into_iter().next().unwrap_or_default(), r.values))
            .collect();
        clusters.sort_by(|a, b| a.0.cmp(&b.0));
        out.push(StatusPanel {
            name,
            unit,
            clusters,
        });
    }
    Ok((range.buckets(), out))
}
