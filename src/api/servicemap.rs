//! `GET /api/v1/servicemap[...]`: the service map, a node's neighbourhood
//! and its blast radius as plain JSON (nodes and edges with their stats).

use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use super::{view_from_query, ApiError, ApiState};

pub async fn map(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    view_from_query(&state, "service_map", raw).await
}

pub async fn focus(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    view_from_query(&state, "service_focus", raw).await
}

pub async fn blast_radius(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    view_from_query(&state, "blast_radius", raw).await
}

pub async fn stats(State(state): State<ApiState>) -> Json<Value> {
    Json(json!(state.graph.stats()))
}
