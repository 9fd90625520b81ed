//! The read side: cloned connections on `spawn_blocking`, interrupted at a deadline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duckdb::{params, Connection};
use serde::Serialize;

use super::StoreError;
use crate::config::Retention;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Resolution {
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

impl Resolution {
    /// `step` rounded up to whole rows of this resolution: a bucket of 90 s
    /// over 1 m rows would hold one row, then two, and every aggregate over
    /// it would swing.
    pub fn whole_step(self, step: i64) -> i64 {
        let res = self.secs();
        let step = step.max(res);
        (step / res + i64::from(step % res != 0)).saturating_mul(res)
    }

    pub fn secs(self) -> i64 {
        match self {
            Resolution::OneMinute => 60,
            Resolution::FiveMinutes => 300,
            Resolution::OneHour => 3600,
        }
    }

    /// The view that reads this resolution's complete rows (a constant,
    /// safe to put in SQL).
    pub fn table(self) -> &'static str {
        match self {
            Resolution::OneMinute => "rollup_1m",
            Resolution::FiveMinutes => "rollup_5m",
            Resolution::OneHour => "rollup_1h",
        }
    }

    /// The table that stores this resolution's rows, in stored form (see
    /// `stored_form`): for the writer only.
    pub(crate) fn stored_table(self) -> &'static str {
        match self {
            Resolution::OneMinute => "rollup_1m_rows",
            Resolution::FiveMinutes => "rollup_5m_rows",
            Resolution::OneHour => "rollup_1h_rows",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::OneMinute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::OneHour => "1h",
        }
    }

    /// The coarsest resolution that still gives at least one row per step,
    /// falling back to a coarser one when `start` is older than a finer
    /// resolution keeps data. A 30-day panel never reads 1m rows.
    pub fn for_query(step_secs: i64, start: i64, now: i64, retention: &Retention) -> Resolution {
        let by_step = if step_secs >= 3600 {
            Resolution::OneHour
        } else if step_secs >= 300 {
            Resolution::FiveMinutes
        } else {
            Resolution::OneMinute
        };
        let age = now.saturating_sub(start).max(0) as u64;
        let by_age = if age > retention.five_minutes.as_secs() {
            Resolution::OneHour
        } else if age > retention.one_minute.as_secs() {
            Resolution::FiveMinutes
        } else {
            Resolution::OneMinute
        };
        if by_age.secs() > by_step.secs() {
            by_age
        } else {
            by_step
        }
    }
}

/// How the rows of one series within one step are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RollupAgg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
    /// Reset-corrected counter increase over the step.
    Increase,
    /// `increase / step`, per second.
    Rate,
}

impl FromStr for RollupAgg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "avg" => RollupAgg::Avg,
            "min" => RollupAgg::Min,
            "max" => RollupAgg::Max,
            "sum" => RollupAgg::Sum,
            "count" => RollupAgg::Count,
            "first" => RollupAgg::First,
            "last" => RollupAgg::Last,
            "increase" => RollupAgg::Increase,
            "rate" => RollupAgg::Rate,
            other => {
                return Err(format!(
                    "unknown agg {other:?}; expected one of avg, min, max, sum, count, first, last, increase, rate"
                ))
            }
        })
    }
}

impl RollupAgg {
    /// SQL over the rollup columns; constants only, never request text.
    fn sql(self) -> &'static str {
        match self {
            RollupAgg::Avg => "sum(sum) / sum(count)",
            RollupAgg::Min => "min(min)",
            RollupAgg::Max => "max(max)",
            RollupAgg::Sum => "sum(sum)",
            RollupAgg::Count => "sum(count)::DOUBLE",
            RollupAgg::First => "arg_min(first, ts)",
            RollupAgg::Last => "arg_max(last, ts)",
            RollupAgg::Increase => "sum(increase)",
            // Per second of the minutes it has rows for: a bucket cut by
            // the range's ends, or a target down for a while, is not
            // diluted by time it was not measured.
            RollupAgg::Rate => "sum(increase) / (count(*) * ?)",
        }
    }
}

/// The columns of `series s` that hold a series' labels, in the order
/// `labels_of_row` reads them: the label columns (`super::LABEL_COLUMNS`),
/// then the JSON of the rest.
pub const STORED_LABELS: &str =
    "s.cluster, s.job, s.instance, s.namespace, s.pod, s.node, s.container, s.other_labels";

/// A stored series' whole label set, from the columns `STORED_LABELS`
/// selected from column `first` on. `other_labels` does not repeat the label
/// columns (rows stored before schema 8 do, with the same values).
pub fn labels_of_row(row: &duckdb::Row, first: usize) -> duckdb::Result<BTreeMap<String, String>> {
    let other: String = row.get(first + super::LABEL_COLUMNS.len())?;
    // Only the writer writes this JSON; a row it cannot read keeps its columns.
    let mut labels: BTreeMap<String, String> = serde_json::from_str(&other).unwrap_or_default();
    for (i, name) in super::LABEL_COLUMNS.iter().enumerate() {
        if let Some(value) = row.get::<_, Option<String>>(first + i)? {
            labels.insert((*name).to_string(), value);
        }
    }
    Ok(labels)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesInfo {
    pub id: u64,
    pub metric: String,
    pub kind: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupPoint {
    pub series_id: u64,
    pub ts: i64,
    pub value: f64,
}

/// Cheap, cloneable read handle.
#[derive(Clone)]
pub struct StoreReader {
    template: Arc<Mutex<Connection>>,
    data_dir: PathBuf,
    generations: Arc<super::Generations>,
    health: Arc<super::StoreHealth>,
}

impl StoreReader {
    pub(super) fn new(
        conn: Connection,
        data_dir: PathBuf,
        generations: Arc<super::Generations>,
        health: Arc<super::StoreHealth>,
    ) -> StoreReader {
        StoreReader {
            template: Arc::new(Mutex::new(conn)),
            data_dir,
            generations,
            health,
        }
    }

    /// Whether the store is taking writes (see [`super::StoreHealth`]).
    pub fn health(&self) -> &super::StoreHealth {
        &self.health
    }

    /// The data generation of a resolution: equal generations, equal answers.
    pub fn generation(&self, resolution: Resolution) -> u64 {
        self.generations.get(resolution)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs `f` on its own connection off the async runtime; interrupts the
    /// query when `deadline` passes.
    pub async fn run<T, F>(&self, deadline: Duration, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = super::connection_from(&self.template)?;
        let interrupt = conn.interrupt_handle();
        let task = tokio::task::spawn_blocking(move || f(&conn));
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(StoreError::Join(join.to_string())),
            Err(_) => {
                interrupt.interrupt();
                Err(StoreError::Deadline)
            }
        }
    }

    /// Series, optionally only of one metric name. Label matching beyond the
    /// name happens in the caller, on parsed labels, never in SQL.
    pub async fn series(
        &self,
        metric: Option<String>,
        deadline: Duration,
    ) -> Result<Vec<SeriesInfo>, StoreError> {
        let (series, _) = self
            .series_where(metric, |_| true, usize::MAX, deadline)
            .await?;
        Ok(series)
    }

    /// The series of `metric` (all when `None`) that `keep` keeps, at most
    /// `limit` of them, sorted by name and labels; and whether more were
    /// kept than returned. Rows are read as a stream, so memory follows
    /// `limit`, not the store's size.
    pub async fn series_where(
        &self,
        metric: Option<String>,
        keep: impl Fn(&SeriesInfo) -> bool + Send + 'static,
        limit: usize,
        deadline: Duration,
    ) -> Result<(Vec<SeriesInfo>, bool), StoreError> {
        self.run(deadline, move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT s.id, s.metric, s.kind, {STORED_LABELS} FROM series s
                 WHERE (?1 IS NULL OR s.metric = ?1)"
            ))?;
            let mut rows = stmt.query(params![metric])?;
            let mut out = Vec::new();
            let mut truncated = false;
            while let Some(r) = rows.next()? {
                let series = SeriesInfo {
                    id: r.get(0)?,
                    metric: r.get(1)?,
                    kind: r.get(2)?,
                    labels: labels_of_row(r, 3)?,
                };
                if !keep(&series) {
                    continue;
                }
                if out.len() == limit {
                    truncated = true;
                    break;
                }
                out.push(series);
            }
            out.sort_unstable_by(|a, b| (&a.metric, &a.labels).cmp(&(&b.metric, &b.labels)));
            Ok((out, truncated))
        })
        .await
    }

    /// Memory DuckDB's buffer manager holds, by what it holds it for
    /// (`duckdb_memory()`: cached table blocks, hash tables, ...), in bytes.
    /// Memory DuckDB's allocator keeps after freeing it is not in here.
    pub async fn duckdb_memory(
        &self,
        deadline: Duration,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(deadline, |conn| {
            let mut stmt = conn.prepare(
                "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY tag",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Distinct metric names (for pickers).
    pub async fn metric_names(&self, deadline: Duration) -> Result<Vec<String>, StoreError> {
        self.run(deadline, |conn| {
            let mut stmt = conn.prepare("SELECT DISTINCT metric FROM series ORDER BY metric")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// One value per series and step in `[start, end)`, steps aligned to
    /// multiples of `step` since the epoch.
    #[allow(clippy::too_many_arguments)]
    pub async fn rollups(
        &self,
        resolution: Resolution,
        series_ids: Vec<u64>,
        start: i64,
        end: i64,
        step: i64,
        agg: RollupAgg,
        deadline: Duration,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        if series_ids.is_empty() {
            return Ok(Vec::new());
        }
        let step = resolution.whole_step(step);
        let row_secs = resolution.secs() as f64;
        self.run(deadline, move |conn| {
            let ids = series_ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT s.id, (r.ts // {step}) * {step} AS t, {agg} AS v
                 FROM {table} r JOIN series s ON s.sid = r.sid
                 WHERE s.id IN (SELECT CAST(unnest(string_split(?, ',')) AS UBIGINT))
                   AND r.ts >= ? AND r.ts < ?
                 GROUP BY s.id, t ORDER BY s.id, t",
                agg = agg.sql(),
                table = resolution.table(),
            );
            let mut stmt = conn.prepare(&sql)?;
            let map = |r: &duckdb::Row<'_>| {
                Ok(RollupPoint {
                    series_id: r.get(0)?,
                    ts: r.get(1)?,
                    value: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                })
            };
            let rows = if agg == RollupAgg::Rate {
                stmt.query_map(params![row_secs, ids, start, end], map)?
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                stmt.query_map(params![ids, start, end], map)?
                    .collect::<Result<Vec<_>, _>>()?
            };
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_labels_lists_the_label_columns_in_order_then_the_rest() {
        let listed: Vec<&str> = STORED_LABELS
            .split(", ")
            .map(|c| c.trim_start_matches("s."))
            .collect();
        let mut want = super::super::LABEL_COLUMNS.to_vec();
        want.push("other_labels");
        assert_eq!(listed, want);
    }
}
