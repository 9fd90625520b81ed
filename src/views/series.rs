//! Any stored metric as time series: label matchers, an aggregation, grouping.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::time::Duration;

use duckdb::types::Value;

use super::selector::Selector;
use super::{Scope, TimeRange, ViewError};
use crate::store::{self, labels_of_row, StoreReader, STORED_LABELS};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeriesAgg {
    Avg,
    Max,
    Min,
    Sum,
    /// Per-second counter rate.
    Rate,
    /// Counter increase per step.
    Increase,
    /// Quantile of a histogram's `_bucket` series, 0..=1.
    Quantile(f64),
}

impl FromStr for SeriesAgg {
    type Err = ViewError;
    fn from_str(s: &str) -> Result<Self, ViewError> {
        Ok(match s {
            "" | "avg" => SeriesAgg::Avg,
            "max" => SeriesAgg::Max,
            "min" => SeriesAgg::Min,
            "sum" => SeriesAgg::Sum,
            "rate" => SeriesAgg::Rate,
            "increase" => SeriesAgg::Increase,
            "quantile" => SeriesAgg::Quantile(0.99),
            other => {
                let q = other
                    .strip_prefix('p')
                    .and_then(|p| p.parse::<f64>().ok())
                    .map(|p| p / 100.0)
                    .filter(|q| (0.0..=1.0).contains(q));
                match q {
                    Some(q) => SeriesAgg::Quantile(q),
                    None => {
                        return Err(ViewError::BadRequest(format!(
                            "unknown agg {other:?}; expected avg, max, min, sum, rate, increase, quantile or p50/p95/p99"
                        )))
                    }
                }
            }
        })
    }
}

impl SeriesAgg {
    pub const NAMES: [&'static str; 9] = [
        "avg", "max", "min", "sum", "rate", "increase", "p50", "p95", "p99",
    ];

    /// Per series and bucket, over the rollup columns.
    fn per_series_sql(self, resolution_secs: i64) -> String {
        match self {
            SeriesAgg::Avg | SeriesAgg::Sum => "sum(r.sum) / sum(r.count)".into(),
            SeriesAgg::Max => "max(r.max)".into(),
            SeriesAgg::Min => "min(r.min)".into(),
            SeriesAgg::Rate => format!("sum(r.increase) / (count(*) * {resolution_secs})"),
            SeriesAgg::Increase | SeriesAgg::Quantile(_) => "sum(r.increase)".into(),
        }
    }

    /// Combines the series of one group in one bucket.
    fn combine(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        Some(match self {
            SeriesAgg::Avg => values.iter().sum::<f64>() / values.len() as f64,
            SeriesAgg::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            SeriesAgg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            SeriesAgg::Sum | SeriesAgg::Rate | SeriesAgg::Increase | SeriesAgg::Quantile(_) => {
                values.iter().sum()
            }
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    /// Metric name; for quantiles the histogram family or its `_bucket` name.
    pub metric: String,
    pub selector: Option<Selector>,
    pub agg: Option<SeriesAgg>,
    /// Labels to group by. `None`: avg/max/min/sum aggregate the whole
    /// selection, rate/increase keep every series (as PromQL does).
    pub by: Option<Vec<String>>,
    pub scope: Scope,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TimeSeries {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    pub range: TimeRange,
    pub times: Vec<i64>,
    pub series: Vec<TimeSeries>,
    /// Series (or groups) before the limit was applied.
    pub total: usize,
}

struct StoredSeries {
    id: u64,
    labels: BTreeMap<String, String>,
}

async fn matching_series(
    reader: &StoreReader,
    metric: &str,
    selector: Option<&Selector>,
    scope: &Scope,
    deadline: Duration,
) -> Result<Vec<StoredSeries>, ViewError> {
    let mut params = vec![Value::Text(metric.to_string())];
    let cond = scope.sql(&mut params);
    let sql = format!("SELECT s.id, {STORED_LABELS} FROM series s WHERE s.metric = ?{cond}");
    let rows = reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(duckdb::params_from_iter(params), |r| {
                Ok(StoredSeries {
                    id: r.get(0)?,
                    labels: labels_of_row(r, 1)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter(|s| selector.is_none_or(|sel| sel.matches(metric, &s.labels)))
        .collect())
}

/// Evaluates `query` over `range`. Series evaluated one by one (label
/// matchers, rates kept per series, grouping by labels that are not
/// columns) are held a value per bucket each: more than `max_points` of
/// those values is refused, as `/api/v1/rollup` refuses them.
pub async fn timeseries(
    reader: &StoreReader,
    query: &SeriesQuery,
    range: TimeRange,
    max_points: usize,
    deadline: Duration,
) -> Result<SeriesResult, ViewError> {
    let agg = query.agg.unwrap_or(SeriesAgg::Avg);
    let metric = match agg {
        SeriesAgg::Quantile(_) if !query.metric.ends_with("_bucket") => {
            format!("{}_bucket", query.metric)
        }
        _ => query.metric.clone(),
    };
    if metric.is_empty() {
        return Err(ViewError::BadRequest("a metric name is required".into()));
    }
    let buckets = range.buckets();
    if let Some(by) = column_grouping(query, agg) {
        return grouped_in_store(reader, &metric, by, query, agg, range, deadline).await;
    }
    let series = matching_series(
        reader,
        &metric,
        query.selector.as_ref(),
        &query.scope,
        deadline,
    )
    .await?;
    let points = series.len().saturating_mul(buckets.len());
    if points > max_points {
        return Err(ViewError::BadRequest(format!(
            "{metric}: {} series x {} steps is {points} points, more than api.max_points ({max_points}); \
             narrow the selection, group by a column label or widen the interval",
            series.len(),
            buckets.len()
        )));
    }
    let values = per_series_values(reader, &series, agg, range, deadline).await?;

    let per_series = query.by.is_none() && matches!(agg, SeriesAgg::Rate | SeriesAgg::Increase);
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<Vec<f64>>> = BTreeMap::new();
    for s in &series {
        let Some(v) = values.get(&s.id) else { continue };
        let mut key: BTreeMap<String, String> = if per_series {
            s.labels.clone()
        } else {
            let by = query.by.as_deref().unwrap_or(&[]);
            s.labels
                .iter()
                .filter(|(k, _)| by.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        if let SeriesAgg::Quantile(_) = agg {
            key.insert("le".into(), s.labels.get("le").cloned().unwrap_or_default());
        }
        let cells = groups
            .entry(key)
            .or_insert_with(|| vec![Vec::new(); buckets.len()]);
        for (i, x) in v.iter().enumerate() {
            if let (Some(x), Some(cell)) = (x, cells.get_mut(i)) {
                cell.push(*x);
            }
        }
    }
    let mut out: Vec<TimeSeries> = groups
        .into_iter()
        .map(|(labels, cells)| TimeSeries {
            labels,
            values: cells.iter().map(|c| agg.combine(c)).collect(),
        })
        .collect();
    if let SeriesAgg::Quantile(q) = agg {
        out = histogram_quantiles(out, q, buckets.len());
    }
    let total = out.len();
    out.truncate(query.limit.max(1));
    Ok(SeriesResult {
        range,
        times: buckets,
        series: out,
        total,
    })
}

/// Labels stored as columns of `series` (and `workload`): grouping by them
/// needs neither the labels' JSON nor one row per series leaving the store.
fn is_label_column(label: &str) -> bool {
    store::LABEL_COLUMNS.contains(&label) || label == "workload"
}

/// The grouping, when the whole query can run inside the store: no label
/// matchers (they are evaluated on the labels' JSON), an aggregation across
/// series, and only column labels to group by.
fn column_grouping(query: &SeriesQuery, agg: SeriesAgg) -> Option<&[String]> {
    let by = query.by.as_deref()?;
    let plain = query
        .selector
        .as_ref()
        .is_none_or(|s| s.matchers.is_empty());
    let across_series = !matches!(agg, SeriesAgg::Quantile(_));
    (plain && across_series && by.iter().all(|l| is_label_column(l))).then_some(by)
}

/// Per-series values and their combination per group and bucket, in one
/// query: only groups x buckets rows come back.
async fn grouped_in_store(
    reader: &StoreReader,
    metric: &str,
    by: &[String],
    query: &SeriesQuery,
    agg: SeriesAgg,
    range: TimeRange,
    deadline: Duration,
) -> Result<SeriesResult, ViewError> {
    let mut params = vec![Value::Text(metric.to_string())];
    let scope = query.scope.sql(&mut params);
    params.push(Value::BigInt(range.start));
    params.push(Value::BigInt(range.end));
    // `by` holds only label-column names (checked by the caller).
    let mut by: Vec<&str> = by.iter().map(String::as_str).collect();
    by.sort_unstable();
    by.dedup();
    let group_cols: String = by.iter().map(|c| format!("s.{c} AS {c}, ")).collect();
    let outer_cols: String = by.iter().map(|c| format!("{c}, ")).collect();
    let inner_keys: String = by.iter().map(|c| format!("s.{c}, ")).collect();
    let combine = match agg {
        SeriesAgg::Avg => "avg(v)",
        SeriesAgg::Max => "max(v)",
        SeriesAgg::Min => "min(v)",
        _ => "sum(v)",
    };
    let step = range.step;
    let sql = format!(
        "SELECT {outer_cols} t, {combine} FILTER (WHERE isfinite(v)) FROM (
           SELECT {group_cols} (r.ts // {step}) * {step} AS t, {expr} AS v
           FROM {table} r JOIN series s ON s.sid = r.sid
           WHERE s.metric = ?{scope} AND r.ts >= ? AND r.ts < ?
           GROUP BY {inner_keys} r.sid, t)
         GROUP BY {outer_cols} t",
        expr = agg.per_series_sql(range.resolution.secs()),
        table = range.resolution_table(),
    );
    let width = range.buckets().len();
    let names: Vec<String> = by.iter().map(|c| c.to_string()).collect();
    let groups = reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params_from_iter(params))?;
            let mut groups: BTreeMap<BTreeMap<String, String>, Vec<Option<f64>>> = BTreeMap::new();
            while let Some(row) = rows.next()? {
                let mut key = BTreeMap::new();
                for (i, name) in names.iter().enumerate() {
                    if let Some(value) = row.get::<_, Option<String>>(i)? {
                        key.insert(name.clone(), value);
                    }
                }
                let t: i64 = row.get(names.len())?;
                let v: Option<f64> = row.get(names.len() + 1)?;
                let cells = groups.entry(key).or_insert_with(|| vec![None; width]);
                if let Some(cell) = range.index(t).and_then(|i| cells.get_mut(i)) {
                    *cell = v;
                }
            }
            Ok(groups)
        })
        .await?;
    let mut series: Vec<TimeSeries> = groups
        .into_iter()
        .map(|(labels, values)| TimeSeries { labels, values })
        .collect();
    let total = series.len();
    series.truncate(query.limit.max(1));
    Ok(SeriesResult {
        range,
        times: range.buckets(),
        series,
        total,
    })
}

async fn per_series_values(
    reader: &StoreReader,
    series: &[StoredSeries],
    agg: SeriesAgg,
    range: TimeRange,
    deadline: Duration,
) -> Result<HashMap<u64, Vec<Option<f64>>>, ViewError> {
    if series.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = series
        .iter()
        .map(|s| s.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let step = range.step;
    let sql = format!(
        "SELECT s.id, (r.ts // {step}) * {step} AS t, {expr}
         FROM {table} r JOIN series s ON s.sid = r.sid
         WHERE s.id IN (SELECT CAST(unnest(string_split(?, ',')) AS UBIGINT)) AND r.ts >= ? AND r.ts < ?
         GROUP BY s.id, t",
        expr = agg.per_series_sql(range.resolution.secs()),
        table = range.resolution_table(),
    );
    let width = range.buckets().len();
    Ok(reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(duckdb::params![ids, range.start, range.end])?;
            let mut out: HashMap<u64, Vec<Option<f64>>> = HashMap::new();
            while let Some(row) = rows.next()? {
                let id: u64 = row.get(0)?;
                let t: i64 = row.get(1)?;
                let v: Option<f64> = row.get(2)?;
                if let Some(i) = range.index(t) {
                    out.entry(id).or_insert_with(|| vec![None; width])[i] =
                        v.filter(|v| v.is_finite());
                }
            }
            Ok(out)
        })
        .await?)
}

/// Turns groups of cumulative `le` buckets into one quantile series per group,
/// interpolating linearly inside the bucket as Prometheus' `histogram_quantile` does.
fn histogram_quantiles(buckets: Vec<TimeSeries>, q: f64, width: usize) -> Vec<TimeSeries> {
    type Buckets = Vec<(f64, Vec<Option<f64>>)>;
    let mut by_group: BTreeMap<BTreeMap<String, String>, Buckets> = BTreeMap::new();
    for b in buckets {
        let mut labels = b.labels;
        let Some(le) = labels.remove("le").and_then(|le| parse_le(&le)) else {
            continue;
        };
        by_group.entry(labels).or_default().push((le, b.values));
    }
    by_group
        .into_iter()
        .map(|(mut labels, mut les)| {
            les.sort_by(|a, b| a.0.total_cmp(&b.0));
            let values = (0..width)
                .map(|i| {
                    let counts: Vec<(f64, f64)> = les
                        .iter()
                        .filter_map(|(le, v)| Some((*le, v.get(i).copied().flatten()?)))
                        .collect();
                    bucket_quantile(q, &counts)
                })
                .collect();
            labels.insert("quantile".into(), q.to_string());
            TimeSeries { labels, values }
        })
        .collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        _ => s.parse().ok(),
    }
}

/// `counts`: (upper bound, cumulative count) sorted by bound, ending in +Inf.
pub(crate) fn bucket_quantile(q: f64, counts: &[(f64, f64)]) -> Option<f64> {
    let &(last_le, total) = counts.last()?;
    if last_le != f64::INFINITY || total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let i = counts.iter().position(|(_, c)| *c >= rank)?;
    let (upper, count) = counts[i];
    if upper == f64::INFINITY {
        return counts.get(i.wrapping_sub(1)).map(|(le, _)| *le);
    }
    let (lower, below) = if i == 0 {
        (0.0_f64.min(upper), 0.0)
    } else {
        counts[i - 1]
    };
    if count == below {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / (count - below))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 100 observations: 50 <= 0.1, 90 <= 0.5, 100 <= 1.
        let c = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_quantile(0.5, &c), Some(0.1));
        let p90 = bucket_quantile(0.9, &c).unwrap();
        assert!((p90 - 0.5).abs() < 1e-12);
        let p95 = bucket_quantile(0.95, &c).unwrap();
        assert!((p95 - 0.75).abs() < 1e-12, "{p95}");
        assert_eq!(
            bucket_quantile(0.99, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(
            bucket_quantile(0.99, &[(1.0, 5.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
    }

    #[test]
    fn agg_names_parse() {
        assert_eq!(
            "p95".parse::<SeriesAgg>().unwrap(),
            SeriesAgg::Quantile(0.95)
        );
        assert!("p200".parse::<SeriesAgg>().is_err());
        assert!("median".parse::<SeriesAgg>().is_err());
    }
}
