//! The Grafana JSON datasource API (simpod-json-datasource 0.6.x), mounted
//! under a configurable prefix (default `/grafana`).
//!
//! Tolerant of what Grafana 10/11 actually send: unknown fields, `filters`
//! or `adhocFilters`, `payload` or `data`, payloads as objects or JSON
//! strings, multi-value variables as arrays, `a|b` or `{a,b}`. Answers
//! `/query` with data frames (explicit field types, epoch-millisecond times).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::views::{heat_row_labels, ViewAnswer, ViewArgs, ViewRequest, TARGETS};
use super::{ApiError, ApiState};
use crate::graph::model::{EdgeKind, Event, NodeKind};
use crate::graph::query::{self as graph_query, GraphAnswer, Health, NodeField, NodeView};
use crate::views::{self, Dim, FilterOp, NodeMode, PodMode, Scope, TimeRange};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(health))
        .route("/metrics", post(list_metrics))
        .route("/search", post(list_metrics))
        .route("/metric-payload-options", post(payload_options))
        .route("/query", post(query))
        .route("/variable", post(variable))
        .route("/tag-keys", post(tag_keys))
        .route("/tag-values", post(tag_values))
        .route("/annotations", post(annotations))
}

/// "Test connection" on the datasource page.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok", "service": "fleetscope"}))
}

/// Grafana sends bodies with `Content-Type: application/json`, but curl users
/// and older proxies do not; parse leniently and answer 400 on bad JSON.
fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    Ok(v)
}

/// A target's payload: `payload` (object or JSON text) or the older `data`.
fn payload_of(v: &Value) -> Result<Value, ApiError> {
    let p = v
        .get("payload")
        .filter(|p| !p.is_null())
        .or_else(|| v.get("data").filter(|p| !p.is_null()));
    match p {
        None => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(o @ Value::Object(_)) => Ok(o),
            _ => Err(ApiError::BadRequest(format!(
                "payload is not a JSON object: {s:?}"
            ))),
        },
        Some(o @ Value::Object(_)) => Ok(o.clone()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "payload must be an object, got {other}"
        ))),
    }
}

fn payload_option(name: &str, label: &str, kind: &str, options: Option<Vec<Value>>) -> Value {
    let mut o =
        json!({"name": name, "label": label, "type": kind, "reloadMetric": false, "width": 20});
    if let Some(options) = options {
        o["options"] = Value::Array(options);
    }
    o
}

fn static_options(items: &[(&str, &str)]) -> Vec<Value> {
    items
        .iter()
        .map(|(v, l)| json!({"label": l, "value": v}))
        .collect()
}

fn dim_payloads(dims: &[Dim]) -> Vec<Value> {
    dims.iter()
        .map(|d| payload_option(d.name(), d.name(), "multi-select", None))
        .collect()
}

async fn list_metrics(
    State(_state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    body_json(&body)?;
    let limit = payload_option("limit", "rows (top N)", "input", None);
    let out: Vec<Value> = TARGETS
        .iter()
        .map(|(value, label)| {
            let mut payloads = Vec::new();
            match *value {
                "pods_heatmap" => {
                    payloads.push(payload_option(
                        "mode",
                        "cell value",
                        "select",
                        Some(static_options(&PodMode::ALL)),
                    ));
                    payloads.extend(dim_payloads(&Dim::ALL));
                    payloads.push(limit.clone());
                }
                "nodes_heatmap" => {
                    payloads.push(payload_option(
                        "mode",
                        "cell value",
                        "select",
                        Some(static_options(&NodeMode::ALL)),
                    ));
                    payloads.extend(dim_payloads(&[Dim::Cluster, Dim::Node]));
                    payloads.push(limit.clone());
                }
                "cluster_status" => payloads.extend(dim_payloads(&[Dim::Cluster])),
                "service_map" => payloads.extend(dim_payloads(&[Dim::Cluster, Dim::Namespace])),
                "service_focus" => {
                    payloads.push(payload_option(
                        "node",
                        "node id (cluster/namespace/service)",
                        "input",
                        None,
                    ));
                    payloads.push(payload_option("hops", "hops", "input", None));
                }
                "blast_radius" | "service_events" => {
                    payloads.push(payload_option(
                        "node",
                        "node id (cluster/namespace/service)",
                        "input",
                        None,
                    ));
                }
                _ => {
                    payloads.push(payload_option("metric", "metric", "select", None));
                    payloads.push(payload_option("match", "label matchers", "input", None));
                    let aggs: Vec<(&str, &str)> =
                        views::SeriesAgg::NAMES.iter().map(|n| (*n, *n)).collect();
                    payloads.push(payload_option(
                        "agg",
                        "aggregation",
                        "select",
                        Some(static_options(&aggs)),
                    ));
                    payloads.push(payload_option("by", "group by", "multi-select", None));
                    payloads.extend(dim_payloads(&Dim::ALL));
                    payloads.push(limit.clone());
                }
            }
            json!({"label": label, "value": value, "payloads": payloads})
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

async fn payload_options(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let name = req.get("name").and_then(Value::as_str).unwrap_or("");
    let payload = payload_of(&req)?;
    let mut args = ViewArgs::from_json(&payload);
    // The option list of a dimension is not narrowed by that dimension itself.
    args.values.remove(name);
    let deadline = state.query_deadline();
    let target = req.get("metric").and_then(Value::as_str).unwrap_or("");
    let values: Vec<String> = if let Some(field) = service_option_field(target, name) {
        // The service map's targets take what the spans named, not the
        // scrape config's names.
        graph_query::node_values(
            &state.reader,
            &state.graph,
            field,
            args.graph_scope(),
            deadline,
        )
        .await?
    } else if let Some(dim) = Dim::parse(name) {
        views::dimension_values(&state.reader, dim, &args.scope()?, deadline).await?
    } else if name == "metric" {
        state.reader.metric_names(deadline).await?
    } else if name == "by" {
        let metric = args.one("metric").unwrap_or("up").to_string();
        let series = state.reader.series(Some(metric), deadline).await?;
        let mut keys: Vec<String> = series
            .into_iter()
            .flat_map(|s| s.labels.into_keys())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    } else {
        Vec::new()
    };
    Ok(Json(Value::Array(
        values
            .into_iter()
            .map(|v| json!({"label": v, "value": v}))
            .collect(),
    )))
}

fn time_ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .or_else(|| s.parse::<i64>().ok()),
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        _ => None,
    }
}

/// The time range of a request; the last hour when absent.
fn request_range(req: &Value) -> Result<(i64, i64), ApiError> {
    let now = super::time::unix_now();
    let range = req.get("range");
    let from = time_ms(range.and_then(|r| r.get("from"))).map(|ms| ms.div_euclid(1000));
    let to = time_ms(range.and_then(|r| r.get("to"))).map(|ms| ms.div_euclid(1000));
    for (name, parsed) in [("from", from), ("to", to)] {
        if range.is_some_and(|r| r.get(name).is_some()) && parsed.is_none() {
            return Err(ApiError::BadRequest(format!(
                "range.{name} is not an RFC 3339 time"
            )));
        }
    }
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to.saturating_sub(3600));
    if from > to {
        return Err(ApiError::BadRequest("range.from is after range.to".into()));
    }
    Ok((from, to))
}

/// Ad hoc filters on the fleet dimensions; others become label matchers
/// for `timeseries`.
/// An ad hoc filter on a label that is not a fleet dimension: (key, operator, value).
type LabelFilter = (String, String, String);

fn adhoc_scope(req: &Value) -> Result<(Scope, Vec<LabelFilter>), ApiError> {
    let mut scope = Scope::default();
    let mut label_filters = Vec::new();
    for key in ["filters", "adhocFilters"] {
        let Some(Value::Array(filters)) = req.get(key) else {
            continue;
        };
        for f in filters {
            let Some(k) = f.get("key").and_then(Value::as_str) else {
                continue;
            };
            let op = f.get("operator").and_then(Value::as_str).unwrap_or("=");
            let mut values: Vec<String> = match f.get("values").or_else(|| f.get("value")) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Number(n)) => vec![n.to_string()],
                _ => Vec::new(),
            };
            if matches!(op, "=" | "!=") && values.len() == 1 {
                values = super::views::split_multi(&values[0]);
            }
            let Some(dim) = Dim::parse(k) else {
                label_filters.push((k.to_string(), op.to_string(), values.join("|")));
                continue;
            };
            let op = match op {
                "=" | "=|" => FilterOp::In(values),
                "!=" | "!=|" => FilterOp::NotIn(values),
                "=~" => FilterOp::Regex(values.join("|")),
                "!~" => FilterOp::NotRegex(values.join("|")),
                other => {
                    return Err(ApiError::BadRequest(format!(
                        "unsupported ad hoc filter operator {other:?}"
                    )))
                }
            };
            scope.push(dim, op)?;
        }
    }
    Ok((scope, label_filters))
}

async fn query(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<axum::response::Response, ApiError> {
    let req = body_json(&body)?;
    let (start, end) = request_range(&req)?;
    let interval_s = req
        .get("intervalMs")
        .and_then(Value::as_f64)
        .map(|ms| (ms / 1000.0).ceil() as i64)
        .unwrap_or(60);
    let max_points = req
        .get("maxDataPoints")
        .and_then(Value::as_f64)
        .map(|n| n as i64)
        .unwrap_or(1000)
        .clamp(1, 11_000);
    let (adhoc, label_filters) = adhoc_scope(&req)?;
    let deadline = state.query_deadline();
    let mut parts: Vec<std::sync::Arc<String>> = Vec::new();
    let targets = req
        .get("targets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in targets {
        if t.get("hide").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let ref_id = t
            .get("refId")
            .and_then(Value::as_str)
            .unwrap_or("A")
            .to_string();
        let target = t
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut payload = payload_of(&t)?;
        if target == "timeseries" && !label_filters.is_empty() {
            payload = with_label_filters(payload, &label_filters);
        }
        let args = ViewArgs::from_json(&payload);
        let Some(request) = ViewRequest::parse(&target, &args, adhoc.clone())? else {
            // A panel whose query names no target yet has nothing to draw;
            // a target misspelt must not look like a range without data.
            if target.trim().is_empty() {
                continue;
            }
            let known: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
            return Err(ApiError::BadRequest(format!(
                "unknown target {target:?} (refId {ref_id}); one of {}",
                known.join(", ")
            )));
        };
        if request.is_graph() {
            // The graph covers the whole range as one window and includes
            // the live minute, so it is computed fresh, not cached.
            let range = TimeRange::whole(start, end)?;
            let answer = request.run(&state, range, deadline).await?;
            let frames: Vec<String> = frames_of(&answer, &ref_id)
                .iter()
                .map(Value::to_string)
                .collect();
            parts.push(std::sync::Arc::new(frames.join(",")));
            continue;
        }
        // Heatmaps keep columns readable: at most ~200 buckets however wide the panel.
        let cap = if matches!(request, ViewRequest::Timeseries(_)) {
            max_points
        } else {
            max_points.min(200)
        };
        let now = super::time::unix_now();
        let end = state.complete_end(end, now).max(start + 1);
        let range = TimeRange::new(start, end, interval_s.max(60), cap, now, &state.retention)?;
        let key = format!(
            "{target}\u{0}{ref_id}\u{0}{payload}\u{0}{adhoc:?}\u{0}{}:{}:{}:{}:{}",
            range.start,
            range.end,
            range.step,
            range.resolution.as_str(),
            state.reader.generation(range.resolution),
        );
        let answer = state
            .view_cache
            .get_or_compute(key, || async {
                let answer = request.run(&state, range, deadline).await?;
                let frames: Vec<String> = frames_of(&answer, &ref_id)
                    .iter()
                    .map(Value::to_string)
                    .collect();
                Ok(frames.join(","))
            })
            .await?;
        if !answer.is_empty() {
            parts.push(answer);
        }
    }
    let mut body = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(p);
    }
    body.push(']');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// Ad hoc filters on non-fleet keys become selector matchers for
/// `timeseries`. Multi-value operators (`=|`, `!=|`) become regex matchers;
/// operators a selector cannot express (`<`, `>`) and invalid label names are
/// ignored rather than failing the panel.
fn with_label_filters(mut payload: Value, filters: &[LabelFilter]) -> Value {
    let valid_name = |k: &str| {
        k.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let quote = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut matchers: Vec<String> = filters
        .iter()
        .filter(|(k, _, _)| valid_name(k))
        .filter_map(|(k, op, v)| {
            let op = match op.as_str() {
                "=" | "!=" | "=~" | "!~" => op.as_str(),
                "=|" => "=~",
                "!=|" => "!~",
                _ => return None,
            };
            Some(format!("{k}{op}{}", quote(v)))
        })
        .collect();
    if matchers.is_empty() {
        return payload;
    }
    let existing = payload
        .get("match")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    let metric_part = if let Some(brace) = existing.find('{') {
        let (m, rest) = existing.split_at(brace);
        let inner = rest.trim_start_matches('{').trim_end_matches('}').trim();
        if !inner.is_empty() {
            matchers.insert(0, inner.to_string());
        }
        m.to_string()
    } else {
        existing
    };
    if let Value::Object(o) = &mut payload {
        o.insert(
            "match".into(),
            json!(format!("{metric_part}{{{}}}", matchers.join(","))),
        );
    }
    payload
}

fn time_field(times: &[i64]) -> Value {
    json!({"name": "time", "type": "time", "config": {}, "values": times.iter().map(|t| t * 1000).collect::<Vec<_>>()})
}

fn number_values(values: &[Option<f64>]) -> Vec<Value> {
    values
        .iter()
        .map(|v| {
            v.filter(|v| v.is_finite())
                .map(Value::from)
                .unwrap_or(Value::Null)
        })
        .collect()
}

/// A data frame. `target` and an empty `datapoints` make every frame also a
/// valid item of the plugin's OpenAPI `/query` schema; Grafana's
/// `toDataFrame` reads `fields` first.
fn frame(name: &str, ref_id: &str, meta: Value, fields: Vec<Value>) -> Value {
    json!({"name": name, "refId": ref_id, "meta": meta, "fields": fields, "target": name, "datapoints": []})
}

pub fn frames_of(answer: &ViewAnswer, ref_id: &str) -> Vec<Value> {
    match answer {
        ViewAnswer::Graph(g) => node_graph_frames(g, ref_id),
        ViewAnswer::Events(events) => vec![annotation_frame(events, ref_id)],
        ViewAnswer::Heatmap { kind, map } => {
            let mut fields = vec![time_field(&map.times)];
            // Heatmap rows are drawn bottom-up in field order: hottest last, on top.
            for row in map.rows.iter().rev() {
                let labels = heat_row_labels(kind, &row.key);
                fields.push(json!({
                    "name": row.key.join("/"),
                    "type": "number",
                    "config": {"unit": map.unit, "displayNameFromDS": row.key.join("/")},
                    "labels": labels,
                    "values": number_values(&row.values),
                }));
            }
            let mut meta = json!({
                "type": "heatmap-rows",
                "preferredVisualisationType": "heatmap",
                "custom": {"total": map.total, "returned": map.rows.len(), "stepSeconds": map.range.step, "resolution": map.range.resolution.as_str()},
            });
            if map.total > map.rows.len() {
                meta["notices"] = json!([{"severity": "info", "text": format!("top {} of {} {kind}, hottest on top", map.rows.len(), map.total)}]);
            }
            vec![frame(&format!("{kind}_heatmap"), ref_id, meta, fields)]
        }
        ViewAnswer::Status { times, panels } => panels
            .iter()
            .map(|p| {
                let mut fields = vec![time_field(times)];
                for (cluster, values) in &p.clusters {
                    fields.push(json!({
                        "name": cluster,
                        "type": "number",
                        "config": {"unit": p.unit},
                        "labels": {"cluster": cluster},
                        "values": number_values(values),
                    }));
                }
                frame(
                    p.name,
                    ref_id,
                    json!({"preferredVisualisationType": "graph"}),
                    fields,
                )
            })
            .collect(),
        ViewAnswer::Series(s) => {
            let mut frames: Vec<Value> = s
                .series
                .iter()
                .map(|series| {
                    let name = display_name(&series.labels);
                    frame(
                        &name,
                        ref_id,
                        json!({"type": "timeseries-multi", "custom": {"resolution": s.range.resolution.as_str(), "stepSeconds": s.range.step}}),
                        vec![
                            time_field(&s.times),
                            json!({"name": "value", "type": "number", "config": {"displayNameFromDS": name}, "labels": series.labels, "values": number_values(&series.values)}),
                        ],
                    )
                })
                .collect();
            if s.total > s.series.len() {
                if let Some(first) = frames.first_mut() {
                    first["meta"]["notices"] = json!([{"severity": "info", "text": format!("showing {} of {} series", s.series.len(), s.total)}]);
                }
            }
            frames
        }
    }
}

fn strings(values: impl IntoIterator<Item = String>) -> Value {
    Value::Array(values.into_iter().map(Value::String).collect())
}

fn numbers(values: impl IntoIterator<Item = Option<f64>>) -> Value {
    Value::Array(
        values
            .into_iter()
            .map(|v| {
                v.filter(|v| v.is_finite())
                    .map(Value::from)
                    .unwrap_or(Value::Null)
            })
            .collect(),
    )
}

fn field(name: &str, kind: &str, config: Value, values: Value) -> Value {
    json!({"name": name, "type": kind, "config": config, "values": values})
}

fn icon(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::Service => "",
        NodeKind::Database => "database",
        NodeKind::Cache => "bolt",
        NodeKind::Queue => "envelope",
        NodeKind::External => "cloud",
        NodeKind::User => "user",
    }
}

fn health_color(h: Health) -> &'static str {
    match h {
        Health::Healthy => "green",
        Health::Degraded => "orange",
        Health::Failing => "red",
    }
}

/// Grafana's Node Graph panel: a `nodes` and an `edges` frame with its
/// reserved field names. Async (queue) edges are dashed.
fn node_graph_frames(g: &GraphAnswer, ref_id: &str) -> Vec<Value> {
    let n = &g.nodes;
    let subtitle = |v: &NodeView| match v.node.kind {
        NodeKind::Service => format!("{}/{}", v.node.cluster, v.node.namespace),
        other => format!("{} {}", other.as_str(), v.node.system),
    };
    let mut nodes_meta = json!({"preferredVisualisationType": "nodeGraph"});
    if !g.notes.is_empty() {
        nodes_meta["notices"] = Value::Array(
            g.notes
                .iter()
                .map(|t| json!({"severity": "warning", "text": t}))
                .collect(),
        );
    }
    let nodes = frame(
        "nodes",
        ref_id,
        nodes_meta,
        vec![
            field(
                "id",
                "string",
                json!({}),
                strings(n.iter().map(|v| v.node.id.clone())),
            ),
            field(
                "title",
                "string",
                json!({}),
                strings(n.iter().map(|v| v.node.name.clone())),
            ),
            field(
                "subtitle",
                "string",
                json!({}),
                strings(n.iter().map(subtitle)),
            ),
            field(
                "mainstat",
                "number",
                json!({"unit": "reqps", "displayName": "requests/s"}),
                numbers(n.iter().map(|v| Some(v.rate_in))),
            ),
            field(
                "secondarystat",
                "number",
                json!({"unit": "ms", "displayName": "p95"}),
                numbers(n.iter().map(|v| v.p95_ms)),
            ),
            field(
                "arc__ok",
                "number",
                json!({"color": {"mode": "fixed", "fixedColor": "green"}, "displayName": "ok"}),
                numbers(
                    n.iter()
                        .map(|v| Some(1.0 - v.error_rate_in.clamp(0.0, 1.0))),
                ),
            ),
            field(
                "arc__err",
                "number",
                json!({"color": {"mode": "fixed", "fixedColor": "red"}, "displayName": "errors"}),
                numbers(n.iter().map(|v| Some(v.error_rate_in.clamp(0.0, 1.0)))),
            ),
            field(
                "color",
                "string",
                json!({}),
                strings(n.iter().map(|v| health_color(v.health).to_string())),
            ),
            field(
                "icon",
                "string",
                json!({}),
                strings(n.iter().map(|v| icon(v.node.kind).to_string())),
            ),
            field(
                "detail__kind",
                "string",
                json!({"displayName": "kind"}),
                strings(n.iter().map(|v| v.node.kind.as_str().to_string())),
            ),
            field(
                "detail__health",
                "string",
                json!({"displayName": "health"}),
                strings(n.iter().map(|v| format!("{:?}", v.health).to_lowercase())),
            ),
            field(
                "detail__error_rate",
                "number",
                json!({"unit": "percentunit", "displayName": "error rate"}),
                numbers(n.iter().map(|v| Some(v.error_rate_in))),
            ),
            field(
                "detail__events",
                "number",
                json!({"displayName": "events"}),
                numbers(n.iter().map(|v| Some(v.events as f64))),
            ),
        ],
    );
    let e = &g.edges;
    let max_rate = e.iter().map(|x| x.rate).fold(0.0, f64::max).max(1e-9);
    let edges = frame(
        "edges",
        ref_id,
        json!({"preferredVisualisationType": "nodeGraph"}),
        vec![
            field(
                "id",
                "string",
                json!({}),
                strings(e.iter().map(|x| format!("{}->{}", x.source, x.target))),
            ),
            field(
                "source",
                "string",
                json!({}),
                strings(e.iter().map(|x| x.source.clone())),
            ),
            field(
                "target",
                "string",
                json!({}),
                strings(e.iter().map(|x| x.target.clone())),
            ),
            field(
                "mainstat",
                "number",
                json!({"unit": "reqps", "displayName": "requests/s"}),
                numbers(e.iter().map(|x| Some(x.rate))),
            ),
            field(
                "secondarystat",
                "number",
                json!({"unit": "ms", "displayName": "p95"}),
                numbers(e.iter().map(|x| x.client_p95_ms.or(x.server_p95_ms))),
            ),
            field(
                "thickness",
                "number",
                json!({}),
                numbers(
                    e.iter()
                        .map(|x| Some(1.0 + 4.0 * (x.rate / max_rate).sqrt())),
                ),
            ),
            field(
                "color",
                "string",
                json!({}),
                strings(e.iter().map(|x| {
                    if x.error_rate > 0.10 {
                        "red"
                    } else if x.error_rate >= 0.001 {
                        "orange"
                    } else {
                        "green"
                    }
                    .to_string()
                })),
            ),
            field(
                "strokeDasharray",
                "string",
                json!({}),
                strings(e.iter().map(|x| {
                    if x.kind == EdgeKind::Async {
                        "6 4".to_string()
                    } else {
                        String::new()
                    }
                })),
            ),
            field(
                "detail__error_rate",
                "number",
                json!({"unit": "percentunit", "displayName": "error rate"}),
                numbers(e.iter().map(|x| Some(x.error_rate))),
            ),
            field(
                "detail__client_p99_ms",
                "number",
                json!({"unit": "ms", "displayName": "client p99"}),
                numbers(e.iter().map(|x| x.client_p99_ms)),
            ),
            field(
                "detail__server_p99_ms",
                "number",
                json!({"unit": "ms", "displayName": "server p99"}),
                numbers(e.iter().map(|x| x.server_p99_ms)),
            ),
            field(
                "detail__network_ms",
                "number",
                json!({"unit": "ms", "displayName": "client - server"}),
                numbers(e.iter().map(|x| x.network_ms)),
            ),
        ],
    );
    let mut frames = vec![nodes, edges];
    if let Some(rate) = g.at_risk_rate {
        frames.push(frame(
            "at_risk",
            ref_id,
            json!({}),
            vec![field(
                "requests_at_risk_per_second",
                "number",
                json!({"unit": "reqps"}),
                numbers([Some(rate)]),
            )],
        ));
    }
    frames
}

/// Events as an annotation frame: time, timeEnd, title, text, tags.
fn annotation_frame(events: &[Event], ref_id: &str) -> Value {
    frame(
        "annotations",
        ref_id,
        json!({"dataTopic": "annotations"}),
        vec![
            field(
                "time",
                "time",
                json!({}),
                Value::Array(events.iter().map(|e| json!(e.time_ms)).collect()),
            ),
            field(
                "timeEnd",
                "time",
                json!({}),
                Value::Array(
                    events
                        .iter()
                        .map(|e| json!(e.end_ms.unwrap_or(e.time_ms)))
                        .collect(),
                ),
            ),
            field(
                "title",
                "string",
                json!({}),
                strings(events.iter().map(|e| e.reason.clone())),
            ),
            field(
                "text",
                "string",
                json!({}),
                strings(events.iter().map(|e| e.message.clone())),
            ),
            field(
                "tags",
                "other",
                json!({}),
                Value::Array(
                    events
                        .iter()
                        .map(|e| json!([e.source, e.severity, e.service, e.namespace, e.cluster]))
                        .collect(),
                ),
            ),
        ],
    )
}

fn display_name(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "total".into();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

async fn variable(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let payload = req.get("payload").cloned().unwrap_or(json!({}));
    let target = payload
        .get("target")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            req.get("target")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    // The variable query is a dimension name, "metrics", or a JSON object
    // {"target": "namespace", "cluster": "$cluster"} narrowing it. The plugin
    // sends a query in string format as that text (variables in Grafana's
    // regex format) under `target`, and one in JSON format as the object
    // itself.
    let (what, args) = match parse_interpolated_object(&target) {
        Some(o) => (
            o.get("target")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            ViewArgs::from_json(&o),
        ),
        None => (target.trim().to_string(), ViewArgs::from_json(&payload)),
    };
    let deadline = state.query_deadline();
    let values = if let Some(dim) = Dim::parse(&what) {
        let mut args = args;
        args.values.remove(dim.name());
        views::dimension_values(&state.reader, dim, &args.scope()?, deadline).await?
    } else if what == "metrics" || what == "metric" {
        state.reader.metric_names(deadline).await?
    } else if let Some(field) = service_map_field(&what) {
        let mut scope = args.graph_scope();
        match field {
            NodeField::Cluster => scope.clusters.clear(),
            NodeField::Namespace => scope.namespaces.clear(),
            NodeField::Id => {}
        }
        graph_query::node_values(&state.reader, &state.graph, field, scope, deadline).await?
    } else {
        Vec::new()
    };
    Ok(Json(Value::Array(
        values
            .into_iter()
            .map(|v| json!({"__text": v, "__value": v}))
            .collect(),
    )))
}

/// The option lists of the service map's targets that come from the graph.
fn service_option_field(target: &str, option: &str) -> Option<NodeField> {
    match (target, option) {
        ("service_map", "cluster") => Some(NodeField::Cluster),
        ("service_map", "namespace") => Some(NodeField::Namespace),
        ("service_focus" | "blast_radius" | "service_events", "node") => Some(NodeField::Id),
        _ => None,
    }
}

/// Variable queries over what the service map's nodes carry:
/// `service_cluster`, `service_namespace` (narrowed by `"cluster"`).
fn service_map_field(what: &str) -> Option<NodeField> {
    match what {
        "service_cluster" => Some(NodeField::Cluster),
        "service_namespace" => Some(NodeField::Namespace),
        _ => None,
    }
}

/// A JSON object written in a variable query, after Grafana put variables
/// into it in its regex format: `"cluster":"eu\.prod"` is not JSON (`\.` is
/// no JSON escape), so such escapes are doubled to reach the value as
/// Grafana wrote it (`ViewArgs` undoes the regex format).
fn parse_interpolated_object(text: &str) -> Option<Value> {
    let parsed = serde_json::from_str::<Value>(text).or_else(|e| {
        if !text.contains('\\') {
            return Err(e);
        }
        let mut json = String::with_capacity(text.len() + 8);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            json.push(c);
            if c == '\\' {
                match chars.peek() {
                    Some(&n) if "\"\\/bfnrtu".contains(n) => {
                        json.push(n);
                        chars.next();
                    }
                    _ => json.push('\\'),
                }
            }
        }
        serde_json::from_str::<Value>(&json)
    });
    parsed.ok().filter(Value::is_object)
}

async fn tag_keys(body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    body_json(&body)?;
    Ok(Json(Value::Array(
        Dim::ALL
            .iter()
            .map(|d| json!({"type": "string", "text": d.name()}))
            .collect(),
    )))
}

async fn tag_values(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let key = req.get("key").and_then(Value::as_str).unwrap_or("");
    let Some(dim) = Dim::parse(key) else {
        return Ok(Json(json!([])));
    };
    let (scope, _) = adhoc_scope(&req)?;
    let values =
        views::dimension_values(&state.reader, dim, &scope, state.query_deadline()).await?;
    Ok(Json(Value::Array(
        values.into_iter().map(|v| json!({"text": v})).collect(),
    )))
}

/// Legacy annotations (`POST /annotations`): the events and alerts in the
/// range, optionally only those of the node named by the annotation's
/// `query` (a node id such as `dc-01/shop/payment`), in the old
/// simple-json shape.
async fn annotations(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = body_json(&body)?;
    let (start, end) = request_range(&req)?;
    let node = req
        .pointer("/annotation/query")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty());
    let loaded = crate::graph::query::load(
        &state.reader,
        &state.graph,
        start,
        end.max(start + 1),
        state.query_deadline(),
    )
    .await?;
    let events: Vec<Event> = match node {
        Some(id) => loaded.events_for_id(id),
        None => loaded.events.clone(),
    };
    let name = req
        .pointer("/annotation/name")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Json(Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "annotation": name,
                    "time": e.time_ms,
                    "timeEnd": e.end_ms.unwrap_or(e.time_ms),
                    "title": e.reason,
                    "text": e.message,
                    "tags": [e.source, e.severity, e.service, e.namespace, e.cluster],
                })
            })
            .collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_accepts_object_string_and_data() {
        assert_eq!(
            payload_of(&json!({"payload": {"a": 1}})).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            payload_of(&json!({"payload": "{\"a\": 1}"})).unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            payload_of(&json!({"data": {"a": 2}})).unwrap(),
            json!({"a": 2})
        );
        assert_eq!(payload_of(&json!({"payload": ""})).unwrap(), json!({}));
        assert!(payload_of(&json!({"payload": "not json"})).is_err());
    }

    #[test]
    fn adhoc_filters_old_and_new_names() {
        let req = json!({
            "filters": [{"key": "cluster", "operator": "=", "value": "a|b"}],
            "adhocFilters": [{"key": "namespace", "operator": "=~", "value": "team-.*"}, {"key": "le", "operator": "=", "value": "0.5"}]
        });
        let (scope, labels) = adhoc_scope(&req).unwrap();
        assert_eq!(scope.filters.len(), 2);
        assert_eq!(
            scope.filters[0].op,
            FilterOp::In(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            labels,
            vec![("le".to_string(), "=".to_string(), "0.5".to_string())]
        );
        let merged = with_label_filters(json!({"match": "m{a=\"1\"}"}), &labels);
        assert_eq!(merged["match"], "m{a=\"1\",le=\"0.5\"}");
        let ignored = vec![
            ("le".to_string(), "<".to_string(), "5".to_string()),
            ("".to_string(), "=".to_string(), "x".to_string()),
        ];
        assert_eq!(
            with_label_filters(json!({"metric": "up"}), &ignored),
            json!({"metric": "up"})
        );
        let multi = vec![("code".to_string(), "=|".to_string(), "500|503".to_string())];
        assert_eq!(
            with_label_filters(json!({}), &multi)["match"],
            "{code=~\"500|503\"}"
        );
    }

    #[test]
    fn range_from_grafana_request() {
        let req = json!({"range": {"from": "2026-11-11T12:00:00.000Z", "to": "2026-11-11T13:00:00.000Z", "raw": {"from": "now-1h", "to": "now"}}});
        let (a, b) = request_range(&req).unwrap();
        assert_eq!(b - a, 3600);
        assert!(request_range(&json!({"range": {"from": "yesterday"}})).is_err());
    }
}
