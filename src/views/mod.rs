//! Fleet views computed from stored rollups: the pods and nodes heatmaps,
//! cluster status, and any metric as grouped time series.
//!
//! Owns what each view means (which series, which ratio, which order). It is
//! independent of wire formats: `api` turns these structs into Grafana data
//! frames or flat JSON rows. It must not write to the store. Every SQL text
//! here is a constant or assembled from enums; request values are bound
//! parameters.

mod heatmap;
pub mod selector;
mod series;

pub use heatmap::{
    cluster_status, nodes_heatmap, pods_heatmap, HeatRow, Heatmap, NodeMode, PodMode, StatusPanel,
};
pub use series::{timeseries, SeriesAgg, SeriesQuery, SeriesResult, TimeSeries};

use duckdb::types::Value;

use crate::config::Retention;
use crate::store::Resolution;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<duckdb::Error> for ViewError {
    fn from(e: duckdb::Error) -> Self {
        ViewError::Store(e.into())
    }
}

/// The time axis of a view: aligned buckets of `step` seconds read from one resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeRange {
    /// First bucket start (aligned to `step`).
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
    pub step: i64,
    pub resolution: Resolution,
}

impl TimeRange {
    /// Picks a step of at least `min_step` seconds giving at most `max_points`
    /// buckets, rounded up to a whole number of resolution intervals.
    pub fn new(
        start: i64,
        end: i64,
        min_step: i64,
        max_points: i64,
        now: i64,
        retention: &Retention,
    ) -> Result<TimeRange, ViewError> {
        let span = checked_span(start, end)?;
        // A step longer than the range is one bucket: capped there, so no
        // step a request names overflows the bucket arithmetic.
        let wanted = min_step
            .clamp(1, span)
            .max(ceil_div(span, max_points.max(1)));
        let resolution = Resolution::for_query(wanted, start, now, retention);
        let res = resolution.secs();
        let step = ceil_div(wanted, res) * res;
        // Both ends on step boundaries: the same panel refreshed within one
        // step asks the same question (and hits the view cache).
        Ok(TimeRange {
            start: start.div_euclid(step) * step,
            end: ceil_div(end, step) * step,
            step,
            resolution,
        })
    }

    /// One window over the whole range (graph views), unaligned.
    pub fn whole(start: i64, end: i64) -> Result<TimeRange, ViewError> {
        checked_span(start, end)?;
        Ok(TimeRange {
            start,
            end,
            step: end - start,
            resolution: Resolution::OneMinute,
        })
    }

    fn resolution_table(&self) -> &'static str {
        self.resolution.table()
    }

    pub fn buckets(&self) -> Vec<i64> {
        (0..)
            .map(|i| self.start + i * self.step)
            .take_while(|t| *t < self.end)
            .collect()
    }

    fn index(&self, t: i64) -> Option<usize> {
        let i = (t - self.start).div_euclid(self.step);
        (i >= 0 && self.start + i * self.step < self.end).then_some(i as usize)
    }
}

/// The last second of the year 9999: later times are not times a fleet has.
const LATEST_TIME: i64 = 253_402_300_799;

/// The length of `[start, end)`, which must be a non-empty range between
/// 1970 and the year 9999.
fn checked_span(start: i64, end: i64) -> Result<i64, ViewError> {
    if end <= start {
        return Err(ViewError::BadRequest(
            "the range end must be after its start".into(),
        ));
    }
    if start < 0 || end > LATEST_TIME {
        return Err(ViewError::BadRequest(
            "the range must lie between 1970 and the year 9999".into(),
        ));
    }
    Ok(end - start)
}

/// Ceiling division for positive numbers (`i64::div_ceil` is unstable).
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// The dimensions users filter the fleet by (Grafana ad hoc filters and variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Cluster,
    Namespace,
    Node,
    Workload,
    Pod,
}

impl Dim {
    pub const ALL: [Dim; 5] = [
        Dim::Cluster,
        Dim::Namespace,
        Dim::Node,
        Dim::Workload,
        Dim::Pod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dim::Cluster => "cluster",
            Dim::Namespace => "namespace",
            Dim::Node => "node",
            Dim::Workload => "workload",
            Dim::Pod => "pod",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }

    /// SQL for the dimension of series alias `s`. A pod's node comes from
    /// kube-state-metrics' `kube_pod_info` when its own series lack one.
    fn sql(self) -> &'static str {
        match self {
            Dim::Cluster => "s.cluster",
            Dim::Namespace => "s.namespace",
            Dim::Workload => "s.workload",
            Dim::Pod => "s.pod",
            Dim::Node => {
                "coalesce(s.node, (SELECT any_value(k.node) FROM series k WHERE k.metric = 'kube_pod_info' \
                 AND k.cluster IS NOT DISTINCT FROM s.cluster AND k.namespace = s.namespace AND k.pod = s.pod))"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Regex(String),
    NotRegex(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub dim: Dim,
    pub op: FilterOp,
}

/// Which part of the fleet a view covers; empty means the whole fleet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    pub filters: Vec<Filter>,
}

/// Values per `IN` list; more is a request error, not a slow query.
const MAX_FILTER_VALUES: usize = 1000;

impl Scope {
    pub fn push(&mut self, dim: Dim, op: FilterOp) -> Result<(), ViewError> {
        match &op {
            FilterOp::In(v) | FilterOp::NotIn(v) if v.len() > MAX_FILTER_VALUES => {
                return Err(ViewError::BadRequest(format!(
                    "filter on {} has {} values, at most {MAX_FILTER_VALUES} are allowed",
                    dim.name(),
                    v.len()
                )))
            }
            FilterOp::Regex(r) | FilterOp::NotRegex(r) => {
                regex::Regex::new(r).map_err(|e| {
                    ViewError::BadRequest(format!("bad regex for {}: {e}", dim.name()))
                })?;
            }
            _ => {}
        }
        self.filters.push(Filter { dim, op });
        Ok(())
    }

    /// `AND ...` conditions over series alias `s`, values appended to `params`.
    fn sql(&self, params: &mut Vec<Value>) -> String {
        self.sql_with(params, Dim::sql)
    }

    /// [`Scope::sql`] with each dimension read by `column_of`.
    fn sql_with(&self, params: &mut Vec<Value>, column_of: impl Fn(Dim) -> &'static str) -> String {
        let mut out = String::new();
        for f in &self.filters {
            let col = column_of(f.dim);
            match &f.op {
                FilterOp::In(values) | FilterOp::NotIn(values) => {
                    if values.is_empty() {
                        continue;
                    }
                    let marks = vec!["?"; values.len()].join(", ");
                    let not = if matches!(f.op, FilterOp::NotIn(_)) {
                        "NOT "
                    } else {
                        ""
                    };
                    out.push_str(&format!(" AND coalesce({col}, '') {not}IN ({marks})"));
                    params.extend(values.iter().map(|v| Value::Text(v.clone())));
                }
                FilterOp::Regex(r) | FilterOp::NotRegex(r) => {
                    let not = if matches!(f.op, FilterOp::NotRegex(_)) {
                        "NOT "
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        " AND {not}regexp_full_match(coalesce({col}, ''), ?)"
                    ));
                    params.push(Value::Text(r.clone()));
                }
            }
        }
        out
    }
}

/// Distinct values of one dimension within a scope (Grafana variables and tag values).
pub async fn dimension_values(
    reader: &crate::store::StoreReader,
    dim: Dim,
    scope: &Scope,
    deadline: std::time::Duration,
) -> Result<Vec<String>, ViewError> {
    let mut params = Vec::new();
    let cond = scope.sql(&mut params);
    let col = dim.sql();
    let sql = format!(
        "SELECT DISTINCT v FROM (SELECT {col} AS v FROM series s WHERE 1 = 1{cond}) WHERE v IS NOT NULL AND v <> '' ORDER BY v LIMIT 10000"
    );
    let values = reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows =
                stmt.query_map(duckdb::params_from_iter(params), |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_caps_points_and_aligns_to_resolution() {
        let r = Retention::default();
        let now = 1_000_000_000;
        let day = TimeRange::new(now - 86_400, now, 20, 200, now, &r).unwrap();
        assert_eq!(day.resolution, Resolution::FiveMinutes);
        assert_eq!(day.step, 600);
        assert!(day.buckets().len() <= 201);
        let hour = TimeRange::new(now - 3600, now, 15, 1000, now, &r).unwrap();
        assert_eq!((hour.step, hour.resolution), (60, Resolution::OneMinute));
        // A step longer than the range is one bucket; times past the year
        // 9999 or before 1970 are refused, not overflowed.
        let hour_end = now - now % 3600;
        let one = TimeRange::new(hour_end - 3600, hour_end, i64::MAX, 100, now, &r).unwrap();
        assert_eq!(one.buckets().len(), 1);
        assert!(TimeRange::new(now, i64::MAX, 60, 100, now, &r).is_err());
        assert!(TimeRange::new(i64::MIN, now, 60, 100, now, &r).is_err());
        assert!(TimeRange::whole(-1, now).is_err());
        let month = TimeRange::new(now - 30 * 86_400, now, 60, 1000, now, &r).unwrap();
        assert_ne!(
            month.resolution,
            Resolution::OneMinute,
            "a 30-day panel never reads 1m data"
        );
        assert!(TimeRange::new(now, now - 1, 60, 100, now, &r).is_err());
    }

    #[test]
    fn scope_sql_binds_values() {
        let mut s = Scope::default();
        s.push(
            Dim::Cluster,
            FilterOp::In(vec!["a".into(), "b'; DROP TABLE series; --".into()]),
        )
        .unwrap();
        s.push(Dim::Namespace, FilterOp::Regex("team-.*".into()))
            .unwrap();
        assert!(s.push(Dim::Pod, FilterOp::Regex("(".into())).is_err());
        let mut params = Vec::new();
        let sql = s.sql(&mut params);
        assert!(!sql.contains("DROP"), "{sql}");
        assert_eq!(params.len(), 3);
    }
}
