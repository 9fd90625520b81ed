//! Ingest endpoints: OTLP/HTTP traces (`POST /v1/traces`, protobuf or
//! JSON, optionally gzip), OTLP/gRPC traces (`TraceService/Export` over
//! HTTP/2 on the same port), Zipkin v2 (`POST /api/v2/spans`, JSON or
//! proto3), and events (flat, or Kubernetes Event objects and EventLists)
//! or Alertmanager webhooks (`POST /api/v1/events`).
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
    ZipkinProtobuf,
}

/// Which ingest endpoint a body came to.
#[derive(Clone, Copy)]
enum Endpoint {
    Otlp,
    Zipkin,
}

/// The request body, gunzipped if it says so, never beyond `limit` bytes.
/// Other encodings (deflate, zstd, snappy: options of some exporters) are
/// refused with 415, so a sender learns to switch, rather than a 400 from
/// decoding compressed bytes as they are.
fn body_bytes(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    let gzip = match encoding.as_deref() {
        None | Some("" | "identity") => false,
        Some("gzip" | "x-gzip") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMedia(format!(
                "unsupported Content-Encoding {other:?}; send gzip or none"
            )))
        }
    };
    if !gzip {
        if body.len() > limit {
            return Err(ApiError::TooLarge(limit));
        }
        return Ok(body);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("bad gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::TooLarge(limit));
    }
    Ok(out.into())
}

async fn ingest(
    state: ApiState,
    headers: HeaderMap,
    body: Bytes,
    endpoint: Endpoint,
) -> Result<(Decoded, Wire), ApiError> {
    let limit = state.graph_max_body;
    let wire = body_wire(&headers, endpoint)?;
    let decoded = decode_and_submit(state, wire, move || body_bytes(&headers, body, limit)).await?;
    Ok((decoded, wire))
}

/// Decodes the bytes `body` yields (inflating is work too, so it runs
/// there) off the async workers, counts what was received and rejected,
/// and queues the spans for the graph.
async fn decode_and_submit(
    state: ApiState,
    wire: Wire,
    body: impl FnOnce() -> Result<Bytes, ApiError> + Send + 'static,
) -> Result<Decoded, ApiError> {
    let decoded = tokio::task::spawn_blocking(move || {
        let bytes = body()?;
        let result = match wire {
            Wire::OtlpProtobuf => decode::otlp_protobuf(&bytes),
            Wire::OtlpJson => decode::otlp_json(&bytes),
            Wire::Zipkin => decode::zipkin_v2_json(&bytes),
            Wire::ZipkinProtobuf => decode::zipkin_v2_protobuf(&bytes),
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
        Ok(()) => Ok(decoded),
        Err(GraphError::QueueFull) => Err(ApiError::Overloaded),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// The media type a request's Content-Type names, lower case, without
/// parameters; `None` when it has none.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().unwrap_or("");
    let media = value.split(';').next().unwrap_or("").trim();
    (!media.is_empty()).then(|| media.to_ascii_lowercase())
}

/// What an endpoint's body is in, from its Content-Type: OTLP/HTTP is
/// protobuf or JSON (protobuf when none is named, as some senders omit
/// it); Zipkin v2 is JSON or proto3.
fn body_wire(headers: &HeaderMap, endpoint: Endpoint) -> Result<Wire, ApiError> {
    const PROTOBUF: [&str; 2] = ["application/x-protobuf", "application/protobuf"];
    let media = media_type(headers);
    let wire = match (endpoint, media.as_deref()) {
        (Endpoint::Otlp, Some("application/json")) => Wire::OtlpJson,
        (Endpoint::Otlp, None) => Wire::OtlpProtobuf,
        (Endpoint::Otlp, Some(m)) if PROTOBUF.contains(&m) => Wire::OtlpProtobuf,
        (Endpoint::Zipkin, None | Some("application/json")) => Wire::Zipkin,
        (Endpoint::Zipkin, Some(m)) if PROTOBUF.contains(&m) => Wire::ZipkinProtobuf,
        (Endpoint::Otlp, Some(other)) => {
            return Err(ApiError::UnsupportedMedia(format!(
                "unsupported Content-Type {other:?}; OTLP/HTTP is application/x-protobuf or application/json"
            )))
        }
        (Endpoint::Zipkin, Some(other)) => {
            return Err(ApiError::UnsupportedMedia(format!(
                "unsupported Content-Type {other:?}; Zipkin v2 spans are application/json or application/x-protobuf"
            )))
        }
    };
    Ok(wire)
}

fn rejection_message(decoded: &Decoded) -> String {
    decoded
        .rejected
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `google.rpc.Status`, the body of every OTLP/HTTP failure.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An OTLP/HTTP failure as the spec has it: the HTTP status, and a
/// `google.rpc.Status` body in the request's own encoding, so exporters
/// can read the message (and a 503's Retry-After tells them to retry).
fn otlp_failure(e: ApiError, json: bool) -> Response {
    // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
    let code = match &e {
        ApiError::BadRequest(_) | ApiError::UnsupportedMedia(_) => 3,
        ApiError::TooLarge(_) => 8,
        ApiError::Overloaded | ApiError::Deadline => 14,
        _ => 13,
    };
    if let ApiError::Internal(detail) = &e {
        tracing::error!(%detail, "internal error answering an OTLP export");
    }
    let status = RpcStatus {
        code,
        message: e.to_string(),
    };
    let mut response = if json {
        (
            e.status(),
            axum::Json(json!({"code": status.code, "message": status.message})),
        )
            .into_response()
    } else {
        (
            e.status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )],
            status.encode_to_vec(),
        )
            .into_response()
    };
    if matches!(e, ApiError::Overloaded) {
        response
            .headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
    }
    response
}

pub async fn otlp_traces(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = media_type(&headers).as_deref() == Some("application/json");
    match otlp_export(state, headers, body).await {
        Ok(response) => response,
        Err(e) => otlp_failure(e, json),
    }
}

async fn otlp_export(
    state: ApiState,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (decoded, wire) = ingest(state, headers, body, Endpoint::Otlp).await?;
    if wire == Wire::OtlpJson {
        let rejected = decoded.rejected_total();
        let body = if rejected > 0 {
            json!({"partialSuccess": {"rejectedSpans": rejected.to_string(), "errorMessage": rejection_message(&decoded)}})
        } else {
            json!({})
        };
        return Ok(axum::Json(body).into_response());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        )],
        export_response(&decoded),
    )
        .into_response())
}

/// An `ExportTraceServiceResponse`, encoded: empty when every span was
/// taken, else a partial success that counts and names the rejected.
fn export_response(decoded: &Decoded) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let rejected = decoded.rejected_total();
    ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: rejection_message(decoded),
        }),
    }
    .encode_to_vec()
}

/// OTLP/gRPC, `TraceService/Export`, on the API's own port (HTTP/2 in
/// clear text, as exporters send it with `insecure`). tonic does gRPC's
/// framing, compression and status trailers; the message reaches the same
/// decoder as an OTLP/HTTP protobuf body, still as bytes.
pub async fn otlp_grpc_export(
    State(state): State<ApiState>,
    request: axum::extract::Request,
) -> Response {
    use tonic::codec::CompressionEncoding;
    let mut grpc = tonic::server::Grpc::new(RawMessages)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(state.graph_max_body);
    grpc.unary(GrpcExport(state), request)
        .await
        .map(axum::body::Body::new)
}

/// The gRPC route of OTLP's trace export.
pub const OTLP_GRPC_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Clone)]
struct GrpcExport(ApiState);

impl tonic::server::UnaryService<Bytes> for GrpcExport {
    type Response = Bytes;
    type Future =
        futures_util::future::BoxFuture<'static, Result<tonic::Response<Bytes>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            let message = request.into_inner();
            let decoded = decode_and_submit(state, Wire::OtlpProtobuf, move || Ok(message))
                .await
                .map_err(grpc_status)?;
            Ok(tonic::Response::new(export_response(&decoded).into()))
        })
    }
}

/// An ingest failure as OTLP/gRPC has it: UNAVAILABLE is what exporters
/// retry (with backoff); a bad message is not retried.
fn grpc_status(e: ApiError) -> tonic::Status {
    match e {
        ApiError::BadRequest(m) | ApiError::UnsupportedMedia(m) => {
            tonic::Status::invalid_argument(m)
        }
        ApiError::TooLarge(_) => tonic::Status::resource_exhausted(e.to_string()),
        ApiError::Overloaded | ApiError::Deadline => tonic::Status::unavailable(e.to_string()),
        other => {
            tracing::error!(detail = %other, "internal error answering an OTLP/gRPC export");
            tonic::Status::internal(other.to_string())
        }
    }
}

/// A gRPC codec that hands messages over as the bytes they are: the span
/// decoder reads protobuf itself, without building prost's message tree.
#[derive(Clone, Copy, Default)]
struct RawMessages;

impl tonic::codec::Codec for RawMessages {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawMessages;
    type Decoder = RawMessages;

    fn encoder(&mut self) -> RawMessages {
        RawMessages
    }

    fn decoder(&mut self) -> RawMessages {
        RawMessages
    }
}

impl tonic::codec::Encoder for RawMessages {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawMessages {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

pub async fn zipkin_spans(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    ingest(state, headers, body, Endpoint::Zipkin).await?;
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

/// One event: a Kubernetes Event object (core/v1 or events.k8s.io/v1, as
/// `kubectl get events -o json` and event exporters' webhooks send them), or
/// the documented flat shape (see README); else the reason it is neither.
fn event_of(v: &Value) -> Result<Event, &'static str> {
    if v.get("involvedObject").is_some() || v.get("regarding").is_some() {
        return kubernetes_event_of(v);
    }
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

/// A Kubernetes Event object. The node it marks is the workload of the
/// object it is about: a pod's Deployment, StatefulSet, DaemonSet or Job
/// from the pod's name (see `workload_of`), a ReplicaSet's Deployment, any
/// other object by its own name. The cluster is `clusterName` when the
/// sender adds it (kubernetes-event-exporter does), else the request's.
fn kubernetes_event_of(v: &Value) -> Result<Event, &'static str> {
    let object = v
        .get("involvedObject")
        .or_else(|| v.get("regarding"))
        .filter(|o| o.is_object())
        .ok_or("event without an involvedObject")?;
    let name = text(object, &["name"]);
    if name.is_empty() {
        return Err("event whose involvedObject has no name");
    }
    let service = match text(object, &["kind"]).as_str() {
        "Pod" => crate::kube_names::workload_of(&name).unwrap_or(name),
        "ReplicaSet" => crate::kube_names::deployment_of_replicaset(&name),
        _ => name,
    };
    let metadata = v.get("metadata").cloned().unwrap_or(Value::Null);
    let time_ms = [
        v.get("lastTimestamp"),
        v.get("series").and_then(|s| s.get("lastObservedTime")),
        v.get("eventTime"),
        v.get("deprecatedLastTimestamp"),
        v.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ]
    .into_iter()
    .find_map(time_ms)
    .ok_or("event without a time (lastTimestamp, eventTime, firstTimestamp)")?;
    let namespace = match text(object, &["namespace"]) {
        ns if ns.is_empty() => text(&metadata, &["namespace"]),
        ns => ns,
    };
    Ok(Event {
        time_ms,
        end_ms: None,
        cluster: text(v, &["clusterName", "cluster"]),
        namespace,
        service,
        source: "kubernetes".into(),
        reason: text(v, &["reason"]),
        message: text(v, &["message", "note"]),
        severity: match text(v, &["type"]) {
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
/// The array under `key`; none when it is missing or not an array.
fn array_at<'a>(o: &'a serde_json::Map<String, Value>, key: &str) -> &'a [Value] {
    o.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Query parameters of `POST /api/v1/events`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct EventsQuery {
    /// The cluster of events that do not name one (a Kubernetes Event does
    /// not know its cluster: an exporter per cluster can say it here).
    cluster: Option<String>,
}

pub async fn events(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    type Parse = fn(&Value) -> Result<Event, &'static str>;
    let (items, parse): (&[Value], Parse) = match &v {
        Value::Array(a) => (a, event_of),
        // An EventList (`kubectl get events -o json`).
        Value::Object(o) if o.get("items").is_some_and(Value::is_array) => {
            (array_at(o, "items"), event_of)
        }
        Value::Object(o) if o.contains_key("alerts") => (array_at(o, "alerts"), alert_of),
        Value::Object(o) if o.contains_key("events") => (array_at(o, "events"), event_of),
        Value::Object(_) => (std::slice::from_ref(&v), event_of),
        _ => return Err(ApiError::BadRequest(
            "expected an event, an array of events, {\"events\": [...]}, a Kubernetes EventList or an Alertmanager webhook"
                .into(),
        )),
    };
    let mut accepted = Vec::new();
    let mut rejected: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(mut e) => {
                if e.cluster.is_empty() {
                    e.cluster = query.cluster.clone().unwrap_or_default();
                }
                accepted.push(e)
            }
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
