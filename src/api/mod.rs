//! HTTP API (axum): health, self-metrics, targets, series and rollup queries.
//!
//! Owns routing, request limits, auth and the mapping of every error to a
//! status code. Handlers read through `StoreReader` (off the runtime, with a
//! deadline) and the target registry; they must not write to the store and
//! must not build SQL from request text.

mod cache;
mod error;
mod grafana;
mod ingest;
mod servicemap;

mod time;
mod views;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::views::selector::Selector;
pub use error::ApiError;

use crate::config::{ApiConfig, Retention};
use crate::scrape::TargetRegistry;
use crate::store::{Resolution, RollupAgg, StoreReader};
use crate::telemetry::Telemetry;

/// Everything the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub reader: StoreReader,
    pub registry: TargetRegistry,
    pub telemetry: Arc<Telemetry>,
    pub api: ApiConfig,
    pub retention: Retention,
    pub ready: Arc<AtomicBool>,
    pub view_cache: Arc<cache::ViewCache>,
    pub graph: crate::graph::GraphService,
    /// Bytes of one span batch, decompressed (and of one events body).
    pub graph_max_body: usize,
    /// See `GraphSettings::alert_firing_lease`.
    pub alert_firing_lease: std::time::Duration,
    /// Seconds after a minute ends until every target has committed it
    /// (longest scrape interval + timeout + the minute roll).
    pub completion_lag_secs: i64,
}

impl ApiState {
    /// Views end where data is complete: a minute that only some targets
    /// have committed would show as a dip at the right edge of every panel.
    pub fn complete_end(&self, end: i64, now: i64) -> i64 {
        end.min(now - self.completion_lag_secs)
    }
}

/// Bytes of rendered view answers kept for repeated dashboard refreshes.
pub const VIEW_CACHE_BYTES: usize = 64 << 20;

pub fn new_view_cache() -> Arc<cache::ViewCache> {
    Arc::new(cache::ViewCache::new(VIEW_CACHE_BYTES))
}

impl ApiState {
    fn query_deadline(&self) -> Duration {
        self.api.request_timeout
    }
}

pub fn router(state: ApiState) -> Router {
    let auth = || middleware::from_fn_with_state(state.clone(), require_token);
    let api = Router::new()
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/series", get(series))
        .route("/api/v1/rollup", get(rollup))
        .route("/api/v1/views/{target}", get(native_view))
        .route("/api/v1/servicemap", get(servicemap::map))
        .route("/api/v1/servicemap/focus", get(servicemap::focus))
        .route(
            "/api/v1/servicemap/blast-radius",
            get(servicemap::blast_radius),
        )
        .route("/api/v1/servicemap/stats", get(servicemap::stats))
        .nest(&state.api.grafana_prefix, grafana::routes())
        .route(
            &format!("{}/", state.api.grafana_prefix),
            get(grafana::health),
        )
        .route_layer(auth())
        .layer(DefaultBodyLimit::max(state.api.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(state.api.max_body_bytes));
    // Span batches are bigger than API requests; their own (compressed) limit
    // here, and the decompressed limit while inflating.
    let spans = Router::new()
        .route("/v1/traces", post(ingest::otlp_traces))
        .route("/api/v2/spans", post(ingest::zipkin_spans))
        // A cluster's `kubectl get events -A -o json` is megabytes.
        .route("/api/v1/events", post(ingest::events))
        .route_layer(auth())
        .layer(DefaultBodyLimit::max(state.graph_max_body))
        .layer(RequestBodyLimitLayer::new(state.graph_max_body));
    // gRPC bounds its messages itself (tonic reads the length prefix before
    // the message, and stops inflating at the limit) and answers in gRPC
    // statuses, which an HTTP 413 is not.
    let grpc = Router::new()
        .route(
            ingest::OTLP_GRPC_EXPORT_PATH,
            post(ingest::otlp_grpc_export),
        )
        .route_layer(auth());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(self_metrics))
        .merge(api)
        .merge(spans)
        .merge(grpc)
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.api.request_timeout + Duration::from_secs(1),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Bearer token and/or basic auth, when configured, guard `/api` and the
/// Grafana routes. Comparison is constant-time.
async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let api = &state.api;
    let mut accepted = Vec::new();
    if let Some(token) = &api.bearer_token {
        accepted.push(format!("Bearer {token}"));
    }
    if let (Some(user), Some(password)) = (&api.basic_auth_user, &api.basic_auth_password) {
        use base64::Engine as _;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        accepted.push(format!("Basic {encoded}"));
    }
    if !accepted.is_empty() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let ok = given.is_some_and(|g| {
            accepted
                .iter()
                .any(|a| constant_time_eq(g.as_bytes(), a.as_bytes()))
        });
        if !ok {
            // Named as configured: a client offered only Bearer while basic
            // auth is what is set cannot ask its user for a password.
            let mut response = ApiError::Unauthorized.into_response();
            let headers = response.headers_mut();
            headers.remove(header::WWW_AUTHENTICATE);
            if api.bearer_token.is_some() {
                headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            if api.basic_auth_user.is_some() && api.basic_auth_password.is_some() {
                headers.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"fleetscope\""),
                );
            }
            return response;
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Live unless the store will take nothing until a restart: a liveness
/// probe then restarts the process, and the restart replays DuckDB's WAL.
async fn healthz(State(state): State<ApiState>) -> Response {
    match state.reader.health().fatal() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

/// Ready once serving, and while the store commits what is scraped.
async fn readyz(State(state): State<ApiState>) -> Response {
    if !state.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    match state.reader.health().problem() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn self_metrics(State(state): State<ApiState>) -> Response {
    let dir = state.reader.data_dir().to_path_buf();
    let bytes = tokio::task::spawn_blocking(move || crate::store::store_bytes(&dir))
        .await
        .unwrap_or(0);
    // A busy DuckDB must not hold up a scrape of this page: the figures are
    // left out past the deadline.
    let duckdb_memory = state
        .reader
        .duckdb_memory(Duration::from_secs(2))
        .await
        .unwrap_or_default();
    let (up, down) = state.registry.health_counts();
    let body = state.telemetry.render(bytes, &duckdb_memory, up, down);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn targets(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({"status": "success", "data": {"targets": state.registry.snapshot()}}))
}

/// Query-string pairs in order; repeated keys (`match[]`) are kept.
fn query_pairs(raw: Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn selectors(pairs: &[(String, String)]) -> Result<Vec<Selector>, ApiError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "match" || k == "match[]")
        .map(|(_, v)| Selector::parse(v).map_err(|e| ApiError::BadRequest(e.to_string())))
        .collect()
}

#[derive(Serialize)]
struct SeriesOut<'a> {
    #[serde(rename = "__name__")]
    name: &'a str,
    #[serde(flatten)]
    labels: &'a BTreeMap<String, String>,
}

async fn series(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pairs = query_pairs(raw)?;
    let selectors = selectors(&pairs)?;
    if selectors.is_empty() {
        return Err(ApiError::BadRequest(
            "at least one match[] selector is required".into(),
        ));
    }
    // As Prometheus' `limit` (0: none); by default, and at most, a bound,
    // as a selector without a metric name reads every stored series.
    let limit = match first(&pairs, "limit") {
        None => DEFAULT_SERIES_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => MAX_SERIES_LIMIT,
            Ok(n) => n.min(MAX_SERIES_LIMIT),
            Err(_) => return Err(ApiError::BadRequest(format!("limit {l:?} is not a number"))),
        },
    };
    let mut out = Vec::new();
    let mut truncated = false;
    for sel in selectors {
        let metric = sel.metric_name().map(str::to_string);
        let (found, more) = state
            .reader
            .series_where(
                metric,
                move |s| sel.matches(&s.metric, &s.labels),
                limit.saturating_sub(out.len()),
                state.query_deadline(),
            )
            .await?;
        out.extend(found);
        truncated |= more;
    }
    out.sort_by_key(|s| s.id);
    out.dedup_by_key(|s| s.id);
    let data: Vec<_> = out
        .iter()
        .map(|s| SeriesOut {
            name: &s.metric,
            labels: &s.labels,
        })
        .collect();
    let mut answer = json!({"status": "success", "data": data});
    if truncated {
        answer["warnings"] = json!([format!("results truncated due to limit ({limit} series)")]);
    }
    Ok(Json(answer))
}

/// `/api/v1/series` answers at most this many series unless `limit` asks.
const DEFAULT_SERIES_LIMIT: usize = 10_000;
/// ... and never more than this.
const MAX_SERIES_LIMIT: usize = 1_000_000;

/// `GET /api/v1/views/{pods_heatmap|nodes_heatmap|cluster_status|timeseries}`:
/// the Grafana targets as flat JSON rows, with the payload keys as query
/// parameters plus `start`, `end` and `step`.
async fn native_view(
    State(state): State<ApiState>,
    axum::extract::Path(target): axum::extract::Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    view_from_query(&state, &target, raw).await
}

/// Runs a Grafana target from query-string arguments and answers flat JSON:
/// the native face of every view (`/api/v1/views/...`, `/api/v1/servicemap...`).
pub(crate) async fn view_from_query(
    state: &ApiState,
    target: &str,
    raw: Option<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pairs = query_pairs(raw)?;
    let args = views::ViewArgs::from_pairs(&pairs);
    let Some(request) = views::ViewRequest::parse(target, &args, Default::default())? else {
        let known: Vec<&str> = views::TARGETS.iter().map(|(t, _)| *t).collect();
        return Err(ApiError::NotFound(format!(
            "unknown view {target:?}; one of {}",
            known.join(", ")
        )));
    };
    let now = time::unix_now();
    let (start, end) = start_end(&pairs, now)?;
    let step = first(&pairs, "step")
        .map(time::parse_step)
        .transpose()?
        .unwrap_or(60);
    let range = if request.is_graph() {
        // The graph and events cover the whole range as one window, "now" included.
        crate::views::TimeRange::whole(start, end)?
    } else {
        // Metric views end at complete minutes.
        let end = state.complete_end(end, now).max(start + 1);
        crate::views::TimeRange::new(start, end, step, 11_000, now, &state.retention)?
    };
    let answer = request.run(state, range, state.query_deadline()).await?;
    Ok(Json(views::flat_rows(&answer)))
}

/// `start` and `end` as Prometheus' API takes them; the last hour by default.
fn start_end(pairs: &[(String, String)], now: i64) -> Result<(i64, i64), ApiError> {
    let end = first(pairs, "end")
        .map(time::parse_time)
        .transpose()?
        .unwrap_or(now);
    let start = first(pairs, "start")
        .map(time::parse_time)
        .transpose()?
        .unwrap_or(end - 3600);
    Ok((start, end))
}

async fn rollup(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let pairs = query_pairs(raw)?;
    let now = time::unix_now();
    let (start, end) = start_end(&pairs, now)?;
    if end <= start {
        return Err(ApiError::BadRequest("end must be after start".into()));
    }
    let step = match first(&pairs, "step") {
        Some(s) => time::parse_step(s)?,
        None => ((end - start) / 300).max(60),
    };
    let agg: RollupAgg = first(&pairs, "agg")
        .unwrap_or("avg")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let mut selectors = selectors(&pairs)?;
    if selectors.len() > 1 {
        return Err(ApiError::BadRequest(
            "one match selector per query: a rollup reads one metric".into(),
        ));
    }
    let mut selector = selectors.pop().unwrap_or_default();
    if let Some(metric) = first(&pairs, "metric") {
        selector.push_equal("__name__", metric);
    }
    let Some(metric) = selector.metric_name().map(str::to_string) else {
        return Err(ApiError::BadRequest(
            "a metric name is required: metric=NAME or match=NAME{...}".into(),
        ));
    };
    let resolution = Resolution::for_query(step, start, now, &state.retention);
    let step = resolution.whole_step(step);
    let series: Vec<_> = state
        .reader
        .series(Some(metric), state.query_deadline())
        .await?
        .into_iter()
        .filter(|s| selector.matches(&s.metric, &s.labels))
        .collect();
    let points_per_series = ((end - start) / step + 1) as usize;
    if points_per_series.saturating_mul(series.len()) > state.api.max_points {
        return Err(ApiError::BadRequest(format!(
            "query would return up to {} points ({} series x {points_per_series} steps), limit is {}; \
             narrow the selector or raise step",
            points_per_series.saturating_mul(series.len()),
            series.len(),
            state.api.max_points
        )));
    }
    let ids: Vec<u64> = series.iter().map(|s| s.id).collect();
    let points = state
        .reader
        .rollups(
            resolution,
            ids,
            start,
            end,
            step,
            agg,
            state.query_deadline(),
        )
        .await?;
    let mut by_series: BTreeMap<u64, Vec<(i64, Option<f64>)>> = BTreeMap::new();
    for p in points {
        let v = p.value.is_finite().then_some(p.value);
        by_series.entry(p.series_id).or_default().push((p.ts, v));
    }
    let result: Vec<_> = series
        .iter()
        .filter_map(|s| {
            let values = by_series.remove(&s.id)?;
            let mut metric = s.labels.clone();
            metric.insert("__name__".into(), s.metric.clone());
            Some(json!({"metric": metric, "values": values}))
        })
        .collect();
    Ok(Json(json!({
        "status": "success",
        "data": {
            "resolution": resolution.as_str(),
            "step": step,
            "start": start,
            "end": end,
            "agg": agg,
            "result": result,
        }
    })))
}
