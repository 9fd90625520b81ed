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
        let mut decoded = result.map_err(|e: DecodeError| ApiError::BadRequest(e.to_string()))?;
        decoded.reject_future(crate::graph::now_ns());
        Ok(decoded)
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

/// The first of `keys` that holds a non-empty string (senders write empty
/// fields rather than leave them out: kubernetes-event-exporter always
/// sends `clusterName`).
fn text(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
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
    // An item of a watch (`{"type": "ADDED", "object": {...}}`), as
    // `kubectl get events --watch -o json` and watch-based exporters
    // write them.
    if let (Some(kind), Some(object)) = (
        v.get("type").and_then(Value::as_str),
        v.get("object").filter(|o| o.is_object()),
    ) {
        return match kind {
            "ADDED" | "MODIFIED" => event_of(object),
            "DELETED" => Err("a watch's DELETED item (the event expired; nothing happened)"),
            _ => Err("a watch item that is neither ADDED nor MODIFIED"),
        };
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
        fingerprint: None,
    })
}

/// A Kubernetes Event object. The node it marks is the workload of the
/// object it is about: a pod's Deployment, StatefulSet, DaemonSet or Job
/// from the pod's name (see `workload_of`), a ReplicaSet's Deployment, any
/// other object by its own name. The cluster is `clusterName` when the
/// sender adds it (kubernetes-event-exporter does), else the request's.
///
/// Kubernetes folds repeats of an event into one object (`count` and
/// `lastTimestamp`, or `series`), so an event lasts from its first
/// occurrence to its last. Each update of the object is sent again (by an
/// exporter, or by the next `kubectl get events` posted); they share the
/// object's `uid` and first occurrence, which `graph::query` reads back as
/// one event, as it does an alert's notifications.
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
        "Pod" => crate::kube_names::workload_of(&name)
            .map(str::to_string)
            .unwrap_or(name),
        "ReplicaSet" => crate::kube_names::deployment_of_replicaset(&name),
        _ => name,
    };
    let metadata = v.get("metadata").cloned().unwrap_or(Value::Null);
    let first_ms = [
        v.get("firstTimestamp"),
        v.get("deprecatedFirstTimestamp"),
        v.get("eventTime"),
        v.get("lastTimestamp"),
        v.get("series").and_then(|s| s.get("lastObservedTime")),
        v.get("deprecatedLastTimestamp"),
        metadata.get("creationTimestamp"),
    ]
    .into_iter()
    .find_map(time_ms)
    .ok_or("event without a time (lastTimestamp, eventTime, firstTimestamp)")?;
    let last_ms = [
        v.get("lastTimestamp"),
        v.get("series").and_then(|s| s.get("lastObservedTime")),
        v.get("deprecatedLastTimestamp"),
    ]
    .into_iter()
    .find_map(time_ms)
    .filter(|last| *last > first_ms);
    let namespace = match text(object, &["namespace"]) {
        ns if ns.is_empty()
            && !CLUSTER_SCOPED_KINDS.contains(&text(object, &["kind"]).as_str()) =>
        {
            text(&metadata, &["namespace"])
        }
        ns => ns,
    };
    // Without a uid (a hand-written or trimmed object), the Event's own
    // name, unique in its namespace, identifies it as well.
    let identity = match (text(&metadata, &["uid"]), text(&metadata, &["name"])) {
        (uid, _) if !uid.is_empty() => uid,
        (_, name) if !name.is_empty() => format!("{}/{name}", text(&metadata, &["namespace"])),
        _ => String::new(),
    };
    Ok(Event {
        time_ms: first_ms,
        end_ms: last_ms,
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
        fingerprint: (!identity.is_empty()).then_some(identity),
    })
}

/// Kinds without a namespace. Their events are filed in `default` (the
/// Event object needs one), which is not where the object lives.
const CLUSTER_SCOPED_KINDS: [&str; 8] = [
    "Node",
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "CertificateSigningRequest",
];

fn time_ms_end(v: Option<&Value>) -> Option<i64> {
    time_ms(v).filter(|t| *t > 0)
}

/// An Alertmanager webhook alert, attached to the workload it is about:
/// the `deployment`, `statefulset` or `daemonset` label, else the workload
/// of its `pod` (see `workload_of`), else `app`, `workload`, `service` or
/// `job`. The workload comes first because kube-state-metrics' alerts
/// (KubePodCrashLooping, KubeDeploymentReplicasMismatch) also carry the
/// `service` and `job` of kube-state-metrics itself.
///
/// Alertmanager sends a firing alert with a zero `endsAt`, repeats it every
/// `repeat_interval`, and sends it once more when resolved; the three share
/// the alert's `fingerprint` and `startsAt`, which `graph::query` reads
/// back as one event. A firing notification counts for `firing_lease` past
/// `now_ms`, so an alert whose resolution never comes does not stay on
/// for good.
fn alert_of(v: &Value, now_ms: i64, firing_lease_ms: i64) -> Result<Event, &'static str> {
    let labels = v.get("labels").ok_or("alert without labels")?;
    let workload = text(labels, &["deployment", "statefulset", "daemonset"]);
    let pod = text(labels, &["pod"]);
    let service = if !workload.is_empty() {
        workload
    } else if !pod.is_empty() {
        crate::kube_names::workload_of(&pod)
            .map(str::to_string)
            .unwrap_or(pod)
    } else {
        text(labels, &["app", "workload", "service", "job"])
    };
    if service.is_empty() {
        return Err("alert names no workload or service (labels deployment, statefulset, daemonset, pod, app, workload, service, job)");
    }
    let time_ms = time_ms(v.get("startsAt")).ok_or("alert without startsAt")?;
    let resolved = v.get("status").and_then(Value::as_str) == Some("resolved");
    let annotations = v.get("annotations").cloned().unwrap_or(json!({}));
    Ok(Event {
        time_ms,
        end_ms: Some(if resolved {
            time_ms_end(v.get("endsAt")).unwrap_or(now_ms)
        } else {
            now_ms.saturating_add(firing_lease_ms)
        }),
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
        fingerprint: Some(match text(v, &["fingerprint"]) {
            f if !f.is_empty() => f,
            _ => labels_fingerprint(labels),
        }),
    })
}

/// A stand-in for Alertmanager's fingerprint (senders before 0.20 do not
/// send one): a hash of the sorted label pairs, which identify an alert.
fn labels_fingerprint(labels: &Value) -> String {
    let mut pairs: Vec<(&str, &str)> = labels
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort_unstable();
    let mut key = Vec::new();
    for (k, v) in pairs {
        key.extend_from_slice(k.as_bytes());
        key.push(0xff);
        key.extend_from_slice(v.as_bytes());
        key.push(0xfe);
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&key))
}

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

/// `POST /api/v1/events` (gzip or not): one event, a JSON array of them,
/// `{"events": [...]}`, a Kubernetes EventList or watch stream, or an
/// Alertmanager webhook body (`{"alerts": [...]}`).
pub async fn events(
    State(state): State<ApiState>,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let limit = state.graph_max_body;
    let lease_ms = i64::try_from(state.alert_firing_lease.as_millis()).unwrap_or(i64::MAX);
    let now_ms = chrono::Utc::now().timestamp_millis();
    // Inflating and parsing megabytes of JSON is work: off the async workers.
    let read = tokio::task::spawn_blocking(move || {
        events_in(&body_bytes(&headers, body, limit)?, now_ms, lease_ms)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (mut accepted, rejected) = (read.accepted, read.rejected);
    for e in &mut accepted {
        if e.cluster.is_empty() {
            e.cluster = query.cluster.clone().unwrap_or_default();
        }
    }
    // Alertmanager counts a 4xx as a failed notification and alerts on
    // it: a group of alerts about no workload (Watchdog) is not an error.
    if accepted.is_empty() && !rejected.is_empty() && !read.from_alertmanager {
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

/// What a body of `POST /api/v1/events` held.
struct EventsBody {
    accepted: Vec<Event>,
    /// Why each other item was not read, by its place.
    rejected: Vec<String>,
    from_alertmanager: bool,
}

/// Reads the events of a body. A body of several JSON documents one after
/// another (`kubectl get events --watch -o json`) is read as an array of
/// them.
fn events_in(bytes: &[u8], now_ms: i64, lease_ms: i64) -> Result<EventsBody, ApiError> {
    let mut documents = serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    let v = match documents.len() {
        0 => return Err(ApiError::BadRequest("empty request body".into())),
        1 => documents.pop().unwrap_or(Value::Null),
        _ => Value::Array(documents),
    };
    let (items, from_alertmanager): (&[Value], bool) = match &v {
        Value::Array(a) => (a, false),
        // An EventList (`kubectl get events -o json`).
        Value::Object(o) if o.get("items").is_some_and(Value::is_array) => {
            (array_at(o, "items"), false)
        }
        Value::Object(o) if o.contains_key("alerts") => (array_at(o, "alerts"), true),
        Value::Object(o) if o.contains_key("events") => (array_at(o, "events"), false),
        Value::Object(_) => (std::slice::from_ref(&v), false),
        _ => return Err(ApiError::BadRequest(
            "expected an event, an array of events, {\"events\": [...]}, a Kubernetes EventList or an Alertmanager webhook"
                .into(),
        )),
    };
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let read = if from_alertmanager {
            alert_of(item, now_ms, lease_ms)
        } else {
            event_of(item)
        };
        match read {
            Ok(e) => accepted.push(e),
            Err(reason) => rejected.push(format!("item {i}: {reason}")),
        }
    }
    Ok(EventsBody {
        accepted,
        rejected,
        from_alertmanager,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;
    const LEASE: i64 = 3_600_000;

    fn read(body: &str) -> EventsBody {
        match events_in(body.as_bytes(), NOW, LEASE) {
            Ok(read) => read,
            Err(e) => panic!("{body}: {e:?}"),
        }
    }

    #[test]
    fn a_watch_stream_is_read_item_by_item() {
        let event = |name: &str| {
            json!({"involvedObject": {"kind": "Pod", "name": name, "namespace": "shop"},
                   "reason": "BackOff", "type": "Warning", "lastTimestamp": null,
                   "eventTime": "2024-05-01T10:00:00.123456Z"})
        };
        // `kubectl get events --watch -o json`: documents one after another.
        let body = format!(
            "{}\n{}\n{}",
            json!({"type": "ADDED", "object": event("cart-7d9f8c6b5-x2x9z")}),
            json!({"type": "MODIFIED", "object": event("web-0")}),
            json!({"type": "DELETED", "object": event("web-1")}),
        );
        let got = read(&body);
        let services: Vec<&str> = got.accepted.iter().map(|e| e.service.as_str()).collect();
        assert_eq!(services, ["cart", "web"]);
        assert_eq!(got.accepted[0].time_ms, 1_714_557_600_123);
        assert_eq!(got.rejected.len(), 1, "{:?}", got.rejected);
        assert!(got.rejected[0].starts_with("item 2: a watch's DELETED item"));
    }

    #[test]
    fn an_empty_field_does_not_hide_the_next() {
        let got = read(
            r#"{"clusterName": "", "cluster": "dc-02", "message": "", "note": "pulled",
                "regarding": {"kind": "Deployment", "name": "web"},
                "eventTime": "2024-05-01T10:00:00Z"}"#,
        );
        assert_eq!(got.accepted[0].cluster, "dc-02");
        assert_eq!(got.accepted[0].message, "pulled");
    }

    fn alert(labels: Value, status: &str) -> Value {
        json!({"status": status, "labels": labels, "annotations": {},
               "startsAt": "2024-05-01T10:00:00.123456789+08:00",
               "endsAt": if status == "resolved" { "2024-05-01T10:30:00Z" } else { "0001-01-01T00:00:00Z" }})
    }

    #[test]
    fn an_alert_lands_on_the_workload_it_is_about() {
        let ksm = json!({"alertname": "KubePodCrashLooping", "pod": "cart-7d9f8c6b5-x2x9z",
                         "job": "kube-state-metrics", "service": "ksm"});
        let deployment = json!({"alertname": "KubeDeploymentReplicasMismatch",
                                "deployment": "web", "pod": "x-1", "service": "ksm"});
        let app = json!({"alertname": "HighLatency", "service": "payment", "job": "payment"});
        let body = json!({"version": "4", "status": "firing",
                          "alerts": [alert(ksm, "firing"), alert(deployment, "firing"), alert(app, "firing")]});
        let got = read(&body.to_string());
        let services: Vec<&str> = got.accepted.iter().map(|e| e.service.as_str()).collect();
        assert_eq!(services, ["cart", "web", "payment"]);
        assert_eq!(
            got.accepted[0].time_ms, 1_714_528_800_123,
            "+08:00 and nanoseconds"
        );
    }

    #[test]
    fn an_alerts_notifications_share_a_fingerprint_and_firing_ones_a_lease() {
        let labels = json!({"alertname": "Burn", "service": "payment", "severity": "critical"});
        let reordered = json!({"severity": "critical", "service": "payment", "alertname": "Burn"});
        let body = json!({"alerts": [alert(labels, "firing"), alert(reordered, "resolved")]});
        let got = read(&body.to_string());
        let (firing, resolved) = (&got.accepted[0], &got.accepted[1]);
        assert_eq!(firing.end_ms, Some(NOW + LEASE));
        assert_eq!(firing.severity, "critical");
        assert_eq!(resolved.end_ms, Some(1_714_559_400_000));
        assert_eq!(resolved.severity, "resolved");
        assert!(firing.fingerprint.is_some());
        assert_eq!(firing.fingerprint, resolved.fingerprint);
        // Alertmanager's own fingerprint, when sent, is the one kept.
        let mut sent = alert(json!({"alertname": "Burn", "service": "payment"}), "firing");
        sent["fingerprint"] = json!("3f1a2b4c5d6e7f80");
        let got = read(&json!({"alerts": [sent]}).to_string());
        assert_eq!(
            got.accepted[0].fingerprint.as_deref(),
            Some("3f1a2b4c5d6e7f80")
        );
    }

    #[test]
    fn alerts_about_no_workload_are_noted_not_refused() {
        let body = json!({"alerts": [alert(json!({"alertname": "Watchdog"}), "firing")]});
        let got = read(&body.to_string());
        assert!(got.accepted.is_empty());
        assert!(got.from_alertmanager);
        assert_eq!(got.rejected.len(), 1);
        // A flat event without a service is still an error of the sender's.
        let got = read(r#"[{"time": 1700000000, "reason": "x"}]"#);
        assert!(!got.from_alertmanager);
        assert_eq!(got.rejected, ["item 0: missing `service`"]);
    }

    #[test]
    fn a_kubernetes_event_lasts_from_its_first_occurrence_to_its_last() {
        let body = json!({
            "metadata": {"name": "node-3.1820f3a9c2b1d4e5", "namespace": "default",
                         "uid": "9a1f2b3c-0000-4000-8000-000000000001"},
            "involvedObject": {"kind": "Node", "name": "node-3", "uid": "node-3"},
            "reason": "NodeNotReady", "type": "Normal", "count": 4,
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:30:00Z"
        });
        let node = &read(&body.to_string()).accepted[0];
        assert_eq!(node.time_ms, 1_714_557_600_000);
        assert_eq!(node.end_ms, Some(1_714_559_400_000));
        assert_eq!(node.namespace, "", "a Node lives in no namespace");
        assert_eq!(
            node.fingerprint.as_deref(),
            Some("9a1f2b3c-0000-4000-8000-000000000001")
        );
        // events.k8s.io/v1: the series' last observation; no uid, so the
        // Event's namespace and name identify it.
        let series = json!({
            "metadata": {"name": "web-0.17f", "namespace": "shop"},
            "regarding": {"kind": "Pod", "name": "web-0", "namespace": "shop"},
            "reason": "Unhealthy", "type": "Warning",
            "eventTime": "2024-05-01T10:00:00.250000Z",
            "series": {"count": 12, "lastObservedTime": "2024-05-01T10:05:00.500000Z"}
        });
        let pod = &read(&series.to_string()).accepted[0];
        assert_eq!(
            (pod.time_ms, pod.end_ms),
            (1_714_557_600_250, Some(1_714_557_900_500))
        );
        assert_eq!(pod.namespace, "shop");
        assert_eq!(pod.service, "web");
        assert_eq!(pod.fingerprint.as_deref(), Some("shop/web-0.17f"));
        // Seen once: a point in time.
        let once = json!({
            "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "shop"},
            "reason": "ScalingReplicaSet", "count": 1,
            "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z"
        });
        let once = &read(&once.to_string()).accepted[0];
        assert_eq!((once.time_ms, once.end_ms), (1_714_557_600_000, None));
        assert_eq!(once.fingerprint, None);
    }
}
