//! Ingest endpoints: OTLP/HTTP traces (`POST /v1/traces`, protobuf or
//! JSON, optionally gzip), Zipkin v2 (`POST /api/v2/spans`), and events or
//! Alertmanager webhooks (`POST /api/v1/events`).
//!
//! Bodies are bounded after decompression; decoding runs off the async
//! workers; a full graph queue answers 503 with Retry-After so exporters
//! back off and retry, as OTLP specifies.

use std::io::Read;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::{json, Value};

use super::{ApiError, ApiState};
use crate::graph::decode;
use crate::graph::model::Event;
use crate::graph::span::{DecodeError, Decoded};
use crate::graph::GraphError;

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    OtlpProtobuf,
    OtlpJson,
    Zipkin,
}

/// The request body, gunzipped if it says so, never beyond `limit` bytes.
fn body_bytes(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Vec<u8>, ApiError> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        if body.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("bad gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(out)
}

async fn ingest(
    state: ApiState,
    headers: HeaderMap,
    body: Bytes,
    wire: Wire,
) -> Result<(Decoded, Wire), ApiError> {
    let limit = state.graph_max_body;
    let wire = match wire {
        Wire::Zipkin => Wire::Zipkin,
        _ => {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json"));
            if json {
                Wire::OtlpJson
            } else {
                Wire::OtlpProtobuf
            }
        }
    };
    let decoded = tokio::task::spawn_blocking(move || {
        let bytes = body_bytes(&headers, body, limit)?;
        let result = match wire {
            Wire::OtlpProtobuf => decode::otlp_protobuf(&bytes),
            Wire::OtlpJson => decode::otlp_json(&bytes),
            Wire::Zipkin => decode::zipkin_v2_json(&bytes),
        };
        result.map_err(|e: DecodeError| ApiError::BadRequest(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => {
            state.telemetry.spans_rejected("undecodable_body", 1);
            return Err(e);
        }
    };
    state.telemetry.spans_received(decoded.spans.len() as u64);
    for (reason, n) in &decoded.rejected {
        state.telemetry.spans_rejected(reason, *n);
    }
    let spans = decoded.spans.clone();
    match state.graph.submit(spans) {
        Ok(()) => Ok((decoded, wire)),
        Err(GraphError::QueueFull) => Err(ApiError::Overloaded),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

fn rejection_message(decoded: &Decoded) -> String {
    decoded
        .rejected
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn otlp_traces(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (decoded, wire) = ingest(state, headers, body, Wire::OtlpProtobuf).await?;
    let rejected = decoded.rejected_total();
    if wire == Wire::OtlpJson {
        let body = if rejected > 0 {
            json!({"partialSuccess": {"rejectedSpans": rejected.to_string(), "errorMessage": rejection_message(&decoded)}})
        } else {
            json!({})
        };
        return Ok(axum::Json(body).into_response());
    }
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let response = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: rejection_message(&decoded),
        }),
    };
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        response.encode_to_vec(),
    )
        .into_response())
}

pub async fn zipkin_spans(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    ingest(state, headers, body, Wire::Zipkin).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

fn time_ms(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        // Seconds or milliseconds: anything below year 2200 in seconds is seconds.
        Value::Number(n) => n.as_f64().map(|f| {
            if f < 7.3e9 {
                (f * 1000.0) as i64
            } else {
                f as i64
            }
        }),
        _ => None,
    }
}

fn text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// One event in the documented shape (see README), or `None` with a reason.
fn event_of(v: &Value) -> Result<Event, &'static str> {
    let time_ms = time_ms(v.get("time")).ok_or("missing or bad `time`")?;
    let service = text(v, &["service", "workload", "object"]);
    if service.is_empty() {
        return Err("missing `service`");
    }
    Ok(Event {
        time_ms,
        end_ms: time_ms_end(v.get("end")),
        cluster: text(v, &["cluster"]),
        namespace: text(v, &["namespace"]),
        service,
        source: match text(v, &["source"]) {
            s if s.is_empty() => "kubernetes".into(),
            s => s,
        },
        reason: text(v, &["reason"]),
        message: text(v, &["message"]),
        severity: match text(v, &["severity", "type"]) {
            s if s.is_empty() => "Normal".into(),
            s => s,
        },
    })
}

fn time_ms_end(v: Option<&Value>) -> Option<i64> {
    time_ms(v).filter(|t| *t > 0)
}

/// An Alertmanager webhook alert: the service is taken from the first of
/// the labels `service`, `app`, `workload`, `deployment`, `job`, `pod`.
fn alert_of(v: &Value) -> Result<Event, &'static str> {
    let labels = v.get("labels").ok_or("alert without labels")?;
    let annotations = v.get("annotations").cloned().unwrap_or(json!({}));
    let service = text(
        labels,
        &["service", "app", "workload", "deployment", "job", "pod"],
    );
    if service.is_empty() {
        return Err("alert names no service");
    }
    let time_ms = time_ms(v.get("startsAt")).ok_or("alert without startsAt")?;
    let resolved = v.get("status").and_then(Value::as_str) == Some("resolved");
    Ok(Event {
        time_ms,
        end_ms: if resolved {
            time_ms_end(v.get("endsAt"))
        } else {
            None
        },
        cluster: text(labels, &["cluster"]),
        namespace: text(labels, &["namespace"]),
        service,
        source: "alert".into(),
        reason: text(labels, &["alertname"]),
        message: text(&annotations, &["summary", "description", "message"]),
        severity: if resolved {
            "resolved".into()
        } else {
            text(labels, &["severity"])
        },
    })
}

/// `POST /api/v1/events`: a JSON array of events, `{"events": [...]}`, or an
/// Alertmanager webhook body (`{"alerts": [...]}`).
pub async fn events(State(state): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    type Parse = fn(&Value) -> Result<Event, &'static str>;
    let (items, parse): (Vec<Value>, Parse) = match &v {
        Value::Array(a) => (a.clone(), event_of),
        Value::Object(o) if o.contains_key("alerts") => (
            o.get("alerts")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            alert_of,
        ),
        Value::Object(o) if o.contains_key("events") => (
            o.get("events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            event_of,
        ),
        Value::Object(_) => (vec![v.clone()], event_of),
        _ => return Err(ApiError::BadRequest(
            "expected an event, an array of events, {\"events\": [...]} or an Alertmanager webhook"
                .into(),
        )),
    };
    let mut accepted = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(e) => accepted.push(e),
            Err(reason) => rejected.push(format!("item {i}: {reason}")),
        }
    }
    if accepted.is_empty() && !rejected.is_empty() {
        return Err(ApiError::BadRequest(rejected.join("; ")));
    }
    let n = accepted.len();
    state
        .graph
        .submit_events(accepted)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"accepted": n, "rejected": rejected})),
    )
        .into_response())
}
