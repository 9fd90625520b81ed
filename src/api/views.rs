//! Turns request arguments (a Grafana payload or a query string) into a fleet
//! view, runs it, and renders the answer as flat JSON rows for
//! `GET /api/v1/...` (Infinity, curl, notebooks). The Grafana frames of the
//! same answers are in `grafana.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::ApiError;
use crate::graph::model::Event;
use crate::graph::query::{self as graph_query, GraphAnswer, GraphScope};
use crate::views::selector::Selector;
use crate::views::{
    self, Dim, FilterOp, Heatmap, NodeMode, PodMode, Scope, SeriesQuery, SeriesResult, StatusPanel,
    TimeRange, ViewError,
};

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> Self {
        match e {
            ViewError::BadRequest(m) => ApiError::BadRequest(m),
            ViewError::Store(s) => s.into(),
        }
    }
}

/// The views offered to Grafana's `/metrics` and as `GET /api/v1/views/{target}`.
pub const TARGETS: [(&str, &str); 8] = [
    ("pods_heatmap", "Pods heatmap (every pod of the fleet)"),
    ("nodes_heatmap", "Nodes heatmap"),
    ("cluster_status", "Cluster status"),
    ("timeseries", "Any metric as time series"),
    ("service_map", "Service map (node graph)"),
    ("service_focus", "Service map around one node (k hops)"),
    ("blast_radius", "Blast radius: who depends on a node"),
    (
        "service_events",
        "Events and alerts of a node (annotations)",
    ),
];

/// Heatmap rows returned unless `limit` says otherwise.
pub const DEFAULT_ROWS: usize = 200;
pub const MAX_ROWS: usize = 10_000;

/// Request arguments, each possibly multi-valued.
#[derive(Debug, Clone, Default)]
pub struct ViewArgs {
    pub values: BTreeMap<String, Vec<String>>,
}

/// Values Grafana sends for "All" or an empty multi-select: no filter.
fn is_all(v: &str) -> bool {
    matches!(v, "" | "$__all" | "All" | "all" | "*" | ".*" | ".+")
}

/// What Grafana's `regex` variable format puts a backslash before
/// (`escapeRegex` in `@grafana/data`). The JSON datasource plugin
/// interpolates builder-mode payloads, targets and string variable queries
/// in that format, so `$cluster` = `eu.prod` arrives as `eu\.prod` and a
/// multi-select as `(eu\.prod|us\.prod)`.
const GRAFANA_REGEX_ESCAPED: &[char] = &[
    '\\', '^', '$', '*', '+', '?', '.', '(', ')', '|', '[', ']', '{', '}', '/',
];

/// A value as Grafana's `regex` format wrote it, back as it was. A backslash
/// before anything else is kept: label values may hold one.
pub fn grafana_unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek().filter(|n| GRAFANA_REGEX_ESCAPED.contains(n)) {
                chars.next();
                out.push(next);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Splits `v` at each `|` that is not escaped, undoing the escapes.
fn unescaped_alternatives(v: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '|' => {
                parts.push(grafana_unescape(&v[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(grafana_unescape(&v[start..]));
    parts
}

/// Whether the last character of `v` is escaped by a backslash.
fn ends_escaped(v: &str) -> bool {
    let before_last = &v[..v.len() - v.chars().next_back().map_or(0, char::len_utf8)];
    before_last
        .bytes()
        .rev()
        .take_while(|b| *b == b'\\')
        .count()
        % 2
        == 1
}

/// Splits one value the ways Grafana formats multi-value variables:
/// `a|b` (pipe), `(a|b)` (regex, its values escaped), `{a,b}` (glob) or a
/// plain single value, escaped or not.
pub fn split_multi(v: &str) -> Vec<String> {
    let v = v.trim();
    let parts: Vec<String> =
        if let Some(inner) = v.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            inner.split(',').map(str::to_string).collect()
        } else if let Some(inner) = v
            .strip_prefix('(')
            .filter(|_| v.ends_with(')') && !ends_escaped(v))
            .and_then(|r| r.strip_suffix(')'))
        {
            unescaped_alternatives(inner)
        } else {
            unescaped_alternatives(v)
        };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !is_all(p))
        .collect()
}

impl ViewArgs {
    /// From a JSON payload object; strings, numbers, booleans and arrays of them.
    pub fn from_json(payload: &Value) -> ViewArgs {
        let mut args = ViewArgs::default();
        if let Value::Object(map) = payload {
            for (k, v) in map {
                let vals: Vec<String> = match v {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(scalar)
                        .flat_map(|s| split_multi(&s))
                        .collect(),
                    other => scalar(other).map(|s| split_multi(&s)).unwrap_or_default(),
                };
                // Keep a raw copy for keys whose value may itself contain `|` or `,`.
                let raw: Vec<String> = scalar(v).into_iter().collect();
                args.values.insert(k.clone(), vals);
                args.values.insert(format!("{k}\u{0}raw"), raw);
            }
        }
        args
    }

    /// From query-string pairs; repeated keys add values.
    pub fn from_pairs(pairs: &[(String, String)]) -> ViewArgs {
        let mut args = ViewArgs::default();
        for (k, v) in pairs {
            args.values
                .entry(k.clone())
                .or_default()
                .extend(split_multi(v));
            args.values
                .entry(format!("{k}\u{0}raw"))
                .or_default()
                .push(v.clone());
        }
        args
    }

    pub fn one(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// The value exactly as sent (selectors contain `|` and `,`).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.values
            .get(&format!("{key}\u{0}raw"))
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    pub fn list(&self, key: &str) -> &[String] {
        self.values.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The service map's filters: its `cluster` and `namespace` values.
    pub fn graph_scope(&self) -> GraphScope {
        GraphScope {
            clusters: self.list("cluster").to_vec(),
            namespaces: self.list("namespace").to_vec(),
        }
    }

    pub fn scope(&self) -> Result<Scope, ApiError> {
        let mut scope = Scope::default();
        for dim in Dim::ALL {
            let values = self.list(dim.name());
            if !values.is_empty() {
                scope.push(dim, FilterOp::In(values.to_vec()))?;
            }
        }
        Ok(scope)
    }

    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.one("limit") {
            None => Ok(DEFAULT_ROWS),
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_ROWS).contains(n))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("limit must be a number from 1 to {MAX_ROWS}"))
                }),
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A view with its parameters, ready to run.
pub enum ViewRequest {
    PodsHeatmap {
        scope: Scope,
        mode: PodMode,
        limit: usize,
    },
    NodesHeatmap {
        scope: Scope,
        mode: NodeMode,
        limit: usize,
    },
    ClusterStatus {
        scope: Scope,
    },
    Timeseries(SeriesQuery),
    ServiceMap {
        scope: GraphScope,
    },
    ServiceFocus {
        node: String,
        hops: usize,
    },
    BlastRadius {
        node: String,
    },
    ServiceEvents {
        node: String,
    },
}

pub enum ViewAnswer {
    Heatmap {
        kind: &'static str,
        map: Heatmap,
    },
    Status {
        times: Vec<i64>,
        panels: Vec<StatusPanel>,
    },
    Series(SeriesResult),
    Graph(GraphAnswer),
    Events(Vec<Event>),
}

/// Most hops `service_focus` follows.
const MAX_HOPS: usize = 10;

impl ViewRequest {
    /// `None` for an unknown target: callers answer with an empty result.
    pub fn parse(
        target: &str,
        args: &ViewArgs,
        extra: Scope,
    ) -> Result<Option<ViewRequest>, ApiError> {
        let mut scope = args.scope()?;
        scope.filters.extend(extra.filters);
        Ok(Some(match target {
            "pods_heatmap" => ViewRequest::PodsHeatmap {
                scope,
                mode: args.one("mode").unwrap_or("").parse()?,
                limit: args.limit()?,
            },
            "nodes_heatmap" => ViewRequest::NodesHeatmap {
                scope,
                mode: args.one("mode").unwrap_or("").parse()?,
                limit: args.limit()?,
            },
            "cluster_status" => ViewRequest::ClusterStatus { scope },
            "timeseries" => {
                let selector = args
                    .raw("match")
                    .map(Selector::parse)
                    .transpose()
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                let metric = args
                    .one("metric")
                    .map(str::to_string)
                    .or_else(|| {
                        selector
                            .as_ref()
                            .and_then(|s| s.metric_name().map(str::to_string))
                    })
                    .unwrap_or_else(|| "up".to_string());
                let by = args.values.contains_key("by").then(|| {
                    args.list("by")
                        .iter()
                        .flat_map(|b| b.split(','))
                        .map(|b| b.trim().to_string())
                        .filter(|b| !b.is_empty())
                        .collect()
                });
                ViewRequest::Timeseries(SeriesQuery {
                    metric,
                    selector,
                    agg: args.one("agg").map(str::parse).transpose()?,
                    by,
                    scope,
                    limit: args.limit()?,
                })
            }
            "service_map" => ViewRequest::ServiceMap {
                scope: args.graph_scope(),
            },
            "service_focus" => ViewRequest::ServiceFocus {
                node: required_node(args)?,
                hops: match args.one("hops") {
                    None => 1,
                    Some(h) => h
                        .parse::<usize>()
                        .ok()
                        .filter(|h| (1..=MAX_HOPS).contains(h))
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "hops must be a number from 1 to {MAX_HOPS}"
                            ))
                        })?,
                },
            },
            "blast_radius" => ViewRequest::BlastRadius {
                node: required_node(args)?,
            },
            "service_events" => ViewRequest::ServiceEvents {
                node: required_node(args)?,
            },
            _ => return Ok(None),
        }))
    }

    /// True for views over the service graph (their range is the query range, not buckets).
    pub fn is_graph(&self) -> bool {
        matches!(
            self,
            ViewRequest::ServiceMap { .. }
                | ViewRequest::ServiceFocus { .. }
                | ViewRequest::BlastRadius { .. }
                | ViewRequest::ServiceEvents { .. }
        )
    }

    pub async fn run(
        self,
        state: &super::ApiState,
        range: TimeRange,
        deadline: Duration,
    ) -> Result<ViewAnswer, ApiError> {
        let reader = &state.reader;
        Ok(match self {
            ViewRequest::PodsHeatmap { scope, mode, limit } => ViewAnswer::Heatmap {
                kind: "pods",
                map: views::pods_heatmap(reader, &scope, mode, range, limit, deadline).await?,
            },
            ViewRequest::NodesHeatmap { scope, mode, limit } => ViewAnswer::Heatmap {
                kind: "nodes",
                map: views::nodes_heatmap(reader, &scope, mode, range, limit, deadline).await?,
            },
            ViewRequest::ClusterStatus { scope } => {
                let (times, panels) =
                    views::cluster_status(reader, &scope, range, deadline).await?;
                ViewAnswer::Status { times, panels }
            }
            ViewRequest::Timeseries(q) => {
                let max_points = state.api.max_points;
                ViewAnswer::Series(
                    views::timeseries(reader, &q, range, max_points, deadline).await?,
                )
            }
            graph => {
                let g = graph_query::load(reader, &state.graph, range.start, range.end, deadline)
                    .await?;
                match graph {
                    ViewRequest::ServiceMap { scope } => {
                        ViewAnswer::Graph(g.service_map(&scope, graph_query::MAX_DRAWN_NODES))
                    }
                    ViewRequest::ServiceFocus { node, hops } => {
                        ViewAnswer::Graph(g.focus(&node, hops))
                    }
                    ViewRequest::BlastRadius { node } => ViewAnswer::Graph(g.blast_radius(&node)),
                    _ => ViewAnswer::Events(g.events_for_id(&graph.node_id().unwrap_or_default())),
                }
            }
        })
    }

    fn node_id(&self) -> Option<String> {
        match self {
            ViewRequest::ServiceFocus { node, .. }
            | ViewRequest::BlastRadius { node }
            | ViewRequest::ServiceEvents { node } => Some(node.clone()),
            _ => None,
        }
    }
}

/// `node` is a graph node id such as `dc-01/shop/checkout` or `mysql://db/orders`.
fn required_node(args: &ViewArgs) -> Result<String, ApiError> {
    args.raw("node").map(grafana_unescape).ok_or_else(|| {
        ApiError::BadRequest(
            "payload key `node` (a node id like cluster/namespace/service) is required".into(),
        )
    })
}

fn heat_key_json(kind: &str, key: &[String]) -> serde_json::Map<String, Value> {
    let names: &[&str] = if kind == "pods" {
        &["cluster", "namespace", "pod"]
    } else {
        &["cluster", "node"]
    };
    names
        .iter()
        .zip(key)
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect()
}

pub fn heat_row_labels(kind: &str, key: &[String]) -> BTreeMap<String, String> {
    heat_key_json(kind, key)
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn finite(v: Option<f64>) -> Value {
    v.filter(|v| v.is_finite())
        .map(Value::from)
        .unwrap_or(Value::Null)
}

/// Flat rows: one object per cell (or point), easy for Infinity and notebooks.
pub fn flat_rows(answer: &ViewAnswer) -> Value {
    match answer {
        ViewAnswer::Heatmap { kind, map } => {
            let mut rows = Vec::new();
            for (rank, r) in map.rows.iter().enumerate() {
                for (t, v) in map.times.iter().zip(&r.values) {
                    let mut o = heat_key_json(kind, &r.key);
                    o.insert("rank".into(), json!(rank + 1));
                    o.insert("time".into(), json!(t * 1000));
                    o.insert("value".into(), finite(*v));
                    rows.push(Value::Object(o));
                }
            }
            json!({
                "rows": rows,
                "total": map.total,
                "returned": map.rows.len(),
                "step_seconds": map.range.step,
                "resolution": map.range.resolution.as_str(),
                "unit": map.unit,
            })
        }
        ViewAnswer::Status { times, panels } => {
            let mut rows = Vec::new();
            for p in panels {
                for (cluster, values) in &p.clusters {
                    for (t, v) in times.iter().zip(values) {
                        rows.push(json!({"panel": p.name, "cluster": cluster, "time": t * 1000, "value": finite(*v)}));
                    }
                }
            }
            json!({"rows": rows})
        }
        ViewAnswer::Graph(g) => serde_json::to_value(g).unwrap_or(Value::Null),
        ViewAnswer::Events(events) => json!({"rows": events}),
        ViewAnswer::Series(s) => {
            let mut rows = Vec::new();
            for series in &s.series {
                for (t, v) in s.times.iter().zip(&series.values) {
                    rows.push(
                        json!({"labels": series.labels, "time": t * 1000, "value": finite(*v)}),
                    );
                }
            }
            json!({
                "rows": rows,
                "total": s.total,
                "step_seconds": s.range.step,
                "resolution": s.range.resolution.as_str(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_value_variables_in_every_shape() {
        assert_eq!(split_multi("a|b"), vec!["a", "b"]);
        assert_eq!(split_multi("{a,b}"), vec!["a", "b"]);
        assert_eq!(split_multi("(a|b)"), vec!["a", "b"]);
        assert_eq!(split_multi("$__all"), Vec::<String>::new());
        // Grafana's regex format, as the JSON datasource plugin sends
        // builder-mode payloads and string variable queries.
        assert_eq!(split_multi(r"eu\.prod"), vec!["eu.prod"]);
        assert_eq!(
            split_multi(r"(eu\.prod|ip-10-0-1-2\.ec2\.internal)"),
            vec!["eu.prod", "ip-10-0-1-2.ec2.internal"]
        );
        assert_eq!(split_multi(r"a\|b"), vec!["a|b"]);
        assert_eq!(split_multi(r"\(x\)"), vec!["(x)"]);
        assert_eq!(split_multi(r"C:\temp"), vec![r"C:\temp"]);
        assert_eq!(
            grafana_unescape(r"mysql:\/\/db\/orders"),
            "mysql://db/orders"
        );
        let args = ViewArgs::from_json(
            &json!({"cluster": ["a", "b|c"], "namespace": "{x,y}", "pod": "All"}),
        );
        assert_eq!(args.list("cluster"), ["a", "b", "c"]);
        assert_eq!(args.list("namespace"), ["x", "y"]);
        assert!(args.list("pod").is_empty());
        let q = ViewArgs::from_pairs(&[
            ("cluster".into(), "a".into()),
            ("cluster".into(), "b".into()),
        ]);
        assert_eq!(q.list("cluster"), ["a", "b"]);
    }

    #[test]
    fn unknown_target_is_not_an_error() {
        assert!(
            ViewRequest::parse("nope", &ViewArgs::default(), Scope::default())
                .unwrap()
                .is_none()
        );
        let bad = ViewArgs::from_json(&json!({"mode": "sideways"}));
        assert!(ViewRequest::parse("pods_heatmap", &bad, Scope::default()).is_err());
    }
}
