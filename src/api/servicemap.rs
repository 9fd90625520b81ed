//! `GET /api/v1/servicemap[...]`: the service map, a node's neighbourhood
//! and its blast radius as plain JSON (nodes and edges with their stats).

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use super::views::{flat_rows, ViewArgs, ViewRequest};
use super::{first, query_pairs, time, ApiError, ApiState};
use crate::views::TimeRange;

async fn graph_view(
    state: ApiState,
    target: &str,
    raw: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let pairs = query_pairs(raw)?;
    let args = ViewArgs::from_pairs(&pairs);
    let Some(request) = ViewRequest::parse(target, &args, Default::default())? else {
        return Err(ApiError::NotFound(target.to_string()));
    };
    let now = time::unix_now();
    let end = first(&pairs, "end")
        .map(time::parse_time)
        .transpose()?
        .unwrap_or(now);
    let start = first(&pairs, "start")
        .map(time::parse_time)
        .transpose()?
        .unwrap_or(end - 3600);
    // The whole range is one window for the graph.
    let range = TimeRange::new(start, end, (end - start).max(60), 1, now, &state.retention)?;
    let range = TimeRange {
        start,
        end,
        ..range
    };
    let answer = request.run(&state, range, state.query_deadline()).await?;
    Ok(Json(flat_rows(&answer)))
}

pub async fn map(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    graph_view(state, "service_map", raw).await
}

pub async fn focus(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    graph_view(state, "service_focus", raw).await
}

pub async fn blast_radius(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    graph_view(state, "blast_radius", raw).await
}

pub async fn stats(State(state): State<ApiState>) -> Json<Value> {
    Json(json!(state.graph.stats()))
}
