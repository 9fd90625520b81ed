//! Wire formats -> [`SpanRecord`]: OTLP protobuf, OTLP/JSON and Zipkin v2 JSON.
//!
//! Owns: turning one already-decompressed request body into a [`Decoded`]
//! batch, i.e. validating ids and timestamps, picking the handful of resource
//! and span attributes the dependency graph needs (with the older and
//! alternative spellings of each), and counting why spans were dropped.
//!
//! Must not: do IO (no sockets, files, clocks or logging; the HTTP layer reads
//! and gunzips bodies, reports errors and counts rejects), know anything about
//! the graph (pairing client and server spans, edges, windows all live
//! elsewhere), or panic on any input. A body that cannot be read at all is a
//! [`DecodeError`]; a single bad span is dropped and counted in
//! [`Decoded::rejected`] while the rest of the batch is kept.
//!
//! # Rules shared by all formats
//!
//! - Trace id: 16 bytes, not all zero, else rejected with [`REJECT_TRACE_ID`].
//!   Span id: 8 bytes, not all zero, else [`REJECT_SPAN_ID`].
//! - Parent span id: absent/empty -> root. An all-zero parent id is also read
//!   as "root" (Zipkin does the same; some SDKs send it). Any other wrong
//!   length or non-hex -> [`REJECT_PARENT_ID`].
//! - `end < start` -> [`REJECT_END_BEFORE_START`].
//! - `error` is set by an error status (OTLP status ERROR; Zipkin `error` tag or
//!   `otel.status_code=ERROR`), or by an HTTP status >= 500
//!   (`http.response.status_code`, else `http.status_code`) on a SERVER span.
//!   A Zipkin `error` tag on a SERVER span that answered 4xx is not a failure
//!   (Brave tags every status outside 1xx-3xx; the client erred).
//! - Where several attribute spellings exist the preferred one wins whatever
//!   the order the attributes arrive in (see each field below).
//!
//! # OTLP (protobuf and JSON)
//!
//! Resource: `service.name` (missing/empty -> `"unknown_service"`, like the
//! SDKs), `k8s.namespace.name` else `service.namespace`, `k8s.cluster.name`.
//! Span: `db.system` else `db.system.name`; `db.name` else `db.namespace`;
//! `server.address` else `net.peer.name` else `network.peer.address` else
//! `http.host` else the host of `url.full` / `http.url` else the older
//! `net.sock.peer.addr` / `net.peer.ip`; `peer.service` (or
//! `service.peer.name`); `messaging.system`; `messaging.destination.name` else
//! `messaging.destination`; `messaging.operation.type` else
//! `messaging.operation`. Kind 0..=5 map to [`SpanKind`]; an unknown kind
//! value is `Unspecified` (OTLP always carries a kind, so never `None`).
//!
//! OTLP protobuf is `prost::Message::decode` into wire-compatible mirrors of
//! the opentelemetry-proto messages that declare only these fields (see
//! [`otlp_protobuf`]): no allocation per attribute, unused fields skipped.
//!
//! OTLP/JSON follows the OTLP spec's JSON mapping: lowerCamelCase keys (proto
//! field names in snake_case are taken too, as proto3's JSON mapping has
//! parsers do), ids as
//! hex strings (base64 ids are invalid and rejected per span), enums as
//! integers or their names (`"SPAN_KIND_SERVER"`, also `"SERVER"`), 64-bit
//! integers as decimal strings or numbers, attribute values as `AnyValue`
//! objects, unknown fields ignored. It is a hand-written `serde_json::Value`
//! walk: opentelemetry-proto's `with-serde` derives do read hex ids and string
//! int64s, but they take enums only as integers and fail the *whole* request
//! on one bad id, where we want to drop just that span.
//!
//! # Zipkin v2 JSON (and proto3)
//!
//! A JSON array of spans; a proto3 `ListOfSpans` is read span by span as its
//! JSON form. Ids are hex; like the Zipkin server, shorter ids are
//! left-padded with zeros (so a 64-bit, 16-char `traceId` becomes a 128-bit id
//! whose high half is zero). `timestamp`/`duration` are microseconds; a span
//! without a `timestamp` is an incomplete fragment and is rejected
//! ([`REJECT_MISSING_TIMESTAMP`]); a missing `duration` is 0. `kind` absent or
//! unknown -> `None`, but absent with both endpoints' service names -> a
//! client's call, as Zipkin's dependency linker reads it. A body of v1 spans
//! only ([`is_zipkin_v1`]) is a [`DecodeError::ZipkinV1`] (Zipkin's own
//! collector refuses it on v2 too); a v1 span among v2 ones is rejected
//! ([`REJECT_ZIPKIN_V1`]). Service: `localEndpoint.serviceName` kept as sent (not
//! lowercased), missing/empty -> `"unknown"`. `remoteEndpoint.serviceName` ->
//! `peer_service` (else tag `peer.service`). `server_address`: tags
//! `server.address`, `net.peer.name`, `network.peer.address`, `peer.hostname`,
//! `http.host`, the host of `url.full` / `http.url`, else `remoteEndpoint`
//! `ipv4` (else `ipv6`) with `:port` when a port is given (`10.0.0.7:3306`,
//! `[fd00::1]:3306`). Namespace/cluster come from tags
//! `k8s.namespace.name`/`service.namespace`/`k8s.cluster.name` when present
//! (OTel's Zipkin exporter may send them), else `None`.
//!
//! Zipkin tag dialects (OTel semantic conventions first, then OpenTracing,
//! then Brave/Spring Cloud Sleuth instrumentation tags, which carry no explicit
//! system):
//! - `db_system`: `db.system`, `db.system.name`, `db.type` (OpenTracing:
//!   `sql`, `redis`, `cassandra`...), else inferred: `sql.query`/`jdbc.query`
//!   (and `jdbc.query[N]` of Spring Boot 3's datasource-micrometer)
//!   -> `"sql"` (Brave's MySQL/p6spy and Sleuth's JDBC do not name the engine;
//!   the engine is usually `remoteEndpoint.serviceName`, e.g. "mysql", which
//!   lands in `peer_service`), `cassandra.*` -> `"cassandra"`, `mongodb.*` ->
//!   `"mongodb"`, `redis.*` -> `"redis"`.
//! - `db_name`: `db.name`, `db.namespace`, `db.instance`, `cassandra.keyspace`.
//! - `messaging_system`: `messaging.system`, else inferred: `kafka.*` ->
//!   `"kafka"`, `rabbit.*` -> `"rabbitmq"`, `jms.*` -> `"jms"`.
//! - `messaging_destination`: `messaging.destination.name`,
//!   `messaging.destination`, `message_bus.destination`, `kafka.topic`,
//!   `rabbit.queue`, `jms.queue`/`jms.topic`, `rabbit.exchange`.
//! - `messaging_operation`: `messaging.operation.type`, `messaging.operation`
//!   (a CLIENT messaging span sends or receives by it).
//! - `peer_service` also from `service.peer.name`, `peer.service`'s newer name.
//!
//! B3 shared spans: with B3 propagation a SERVER span marked `"shared": true`
//! reuses its CLIENT span's id. The graph pairs a client with the server span
//! whose `parent_span_id` is the client's `span_id`, so a shared server span
//! gets `parent_span_id = Some(id)` and `span_id =`
//! [`zipkin_shared_server_span_id`]`(id)` (the id with its top bit flipped).
//! Its own `parentId` (the client's parent) is dropped. Children of the
//! server side that were reported with `parentId = id` will point at the
//! client span; for service-to-service edges that is the same caller. A
//! SERVER span without the flag keeps its ids and is marked
//! [`SpanRecord::may_share_client_id`]: the pairing joins it to a CLIENT
//! span of the same trace and id, as Zipkin's trace merge backfills the flag.

use prost::bytes::Bytes;
use prost::Message;
use serde_json::{Map, Value};

use super::span::{DecodeError, Decoded, SpanKind, SpanRecord};

/// Trace id missing, not 16 bytes (32 hex chars), not hex, or all zero.
pub const REJECT_TRACE_ID: &str = "invalid trace id";
/// Span id missing, not 8 bytes (16 hex chars), not hex, or all zero.
pub const REJECT_SPAN_ID: &str = "invalid span id";
/// Parent span id present but not 8 bytes / 16 hex chars.
pub const REJECT_PARENT_ID: &str = "invalid parent span id";
/// End timestamp before start timestamp.
pub const REJECT_END_BEFORE_START: &str = "end before start";
/// A timestamp (or Zipkin duration) that is not a non-negative integer, or
/// overflows u64 nanoseconds.
pub const REJECT_TIMESTAMP: &str = "invalid timestamp";
/// A span without a start time: a Zipkin span without `timestamp` (an
/// incomplete fragment), an OTLP span whose `startTimeUnixNano` is absent or
/// 0 (the protocol's "unset").
pub const REJECT_MISSING_TIMESTAMP: &str = "missing timestamp";
/// How far ahead of this host's clock a span may start. Further out it is a
/// skewed clock or a unit mistake (nanoseconds sent where Zipkin wants
/// microseconds), and its minute's edge statistics would wait in memory
/// until the clock got there.
pub const MAX_CLOCK_AHEAD_NANOS: u64 = 10 * 60 * 1_000_000_000;
pub const REJECT_FUTURE: &str = "start more than 10 minutes ahead of the collector's clock";

impl Decoded {
    /// Drops the spans that start further ahead of `now_unix_nanos` than a
    /// clock may run ([`MAX_CLOCK_AHEAD_NANOS`]).
    pub fn reject_future(&mut self, now_unix_nanos: u64) {
        let latest = now_unix_nanos.saturating_add(MAX_CLOCK_AHEAD_NANOS);
        let before = self.spans.len();
        self.spans.retain(|s| s.start_unix_nanos <= latest);
        let dropped = (before - self.spans.len()) as u64;
        if dropped > 0 {
            self.reject_many(REJECT_FUTURE, dropped);
        }
    }
}
/// A JSON array element where a span object was expected.
pub const REJECT_NOT_OBJECT: &str = "span is not an object";
/// A Zipkin v1 span (`binaryAnnotations`, or annotations that carry an
/// `endpoint`) among v2 spans; a body of v1 spans alone is a
/// [`DecodeError::ZipkinV1`].
pub const REJECT_ZIPKIN_V1: &str = "zipkin v1 span";

/// `service.name` default, as the OTel SDKs use.
pub const OTLP_UNKNOWN_SERVICE: &str = "unknown_service";
/// Service of a Zipkin span without `localEndpoint.serviceName`.
pub const ZIPKIN_UNKNOWN_SERVICE: &str = "unknown";

/// Decodes an OTLP `ExportTraceServiceRequest` protobuf body.
///
/// Uses `prost::Message::decode`, but into [`lite`] mirrors of the
/// opentelemetry-proto messages that declare only the fields the graph reads
/// (same field numbers and wire types), with `Bytes` slices of the body for
/// ids, keys and string values. prost skips every other field (names, events,
/// links, scopes, nested attribute values) without allocating, so a span
/// costs no allocation per attribute; decoding into the full
/// `ExportTraceServiceRequest` allocates two `String`s per attribute and ran
/// at about a third of the speed. Strings are UTF-8-checked only where read:
/// a key or value that is not UTF-8 is ignored instead of failing the body.
pub fn otlp_protobuf(body: &[u8]) -> Result<Decoded, DecodeError> {
    let req = lite::ExportTraceServiceRequest::decode(Bytes::copy_from_slice(body))
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len())
        .sum();
    let mut out = Decoded {
        spans: Vec::with_capacity(total),
        rejected: Vec::new(),
    };
    for rs in &req.resource_spans {
        let mut res = ResourcePicks::default();
        if let Some(r) = &rs.resource {
            for kv in &r.attributes {
                if let Ok(key) = std::str::from_utf8(&kv.key) {
                    res.offer(key, pb_value(kv));
                }
            }
        }
        let res = res.finish(OTLP_UNKNOWN_SERVICE);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                pb_span(&mut out, &res, span);
            }
        }
    }
    Ok(out)
}

/// The subset of opentelemetry-proto's trace messages that the graph reads,
/// wire-compatible with `opentelemetry.proto.collector.trace.v1` (field
/// numbers from the .proto; enums are int32 on the wire, `string` and `bytes`
/// are both length-delimited). Everything not declared here is skipped.
mod lite {
    use prost::bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, optional, tag = "1")]
        pub resource: Option<Resource>,
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Resource {
        #[prost(message, repeated, tag = "1")]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "bytes", tag = "1")]
        pub trace_id: Bytes,
        #[prost(bytes = "bytes", tag = "2")]
        pub span_id: Bytes,
        #[prost(bytes = "bytes", tag = "4")]
        pub parent_span_id: Bytes,
        /// `Span.SpanKind` enum.
        #[prost(int32, tag = "6")]
        pub kind: i32,
        #[prost(fixed64, tag = "7")]
        pub start_time_unix_nano: u64,
        #[prost(fixed64, tag = "8")]
        pub end_time_unix_nano: u64,
        #[prost(message, repeated, tag = "9")]
        pub attributes: Vec<KeyValue>,
        #[prost(message, optional, tag = "15")]
        pub status: Option<Status>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Status {
        /// `Status.StatusCode` enum.
        #[prost(int32, tag = "3")]
        pub code: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KeyValue {
        /// A proto `string`, UTF-8-checked where used.
        #[prost(bytes = "bytes", tag = "1")]
        pub key: Bytes,
        #[prost(message, optional, tag = "2")]
        pub value: Option<AnyValue>,
    }

    /// The scalar members of the `AnyValue.value` oneof (a valid sender sets
    /// one; arrays, kvlists, bytes and bools are skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AnyValue {
        #[prost(bytes = "bytes", optional, tag = "1")]
        pub string_value: Option<Bytes>,
        #[prost(int64, optional, tag = "3")]
        pub int_value: Option<i64>,
        #[prost(double, optional, tag = "4")]
        pub double_value: Option<f64>,
    }
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` body.
pub fn otlp_json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let mut root: Value =
        serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    camel_case_keys(&mut root);
    let Some(root) = root.as_object() else {
        return Err(DecodeError::Json(format!(
            "OTLP/JSON: expected an object with \"resourceSpans\", found {}",
            json_type(&root)
        )));
    };
    let mut out = Decoded::default();
    let resource_spans = match root.get("resourceSpans") {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(DecodeError::Json(format!(
                "OTLP/JSON: \"resourceSpans\" must be an array, found {}",
                json_type(other)
            )))
        }
    };
    for (i, rs) in resource_spans.iter().enumerate() {
        let Some(rs) = rs.as_object() else {
            return Err(DecodeError::Json(format!(
                "OTLP/JSON: resourceSpans[{i}] must be an object, found {}",
                json_type(rs)
            )));
        };
        let mut res = ResourcePicks::default();
        if let Some(attrs) = rs
            .get("resource")
            .and_then(Value::as_object)
            .and_then(|r| r.get("attributes"))
            .and_then(Value::as_array)
        {
            for (k, v) in attrs.iter().filter_map(json_key_value) {
                res.offer(k, v);
            }
        }
        let res = res.finish(OTLP_UNKNOWN_SERVICE);
        // `instrumentationLibrarySpans` is the pre-1.0 (OTLP <= 0.18) name.
        let scopes = rs
            .get("scopeSpans")
            .or_else(|| rs.get("instrumentationLibrarySpans"));
        let scopes = match scopes {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(DecodeError::Json(format!(
                    "OTLP/JSON: resourceSpans[{i}].scopeSpans must be an array, found {}",
                    json_type(other)
                )))
            }
        };
        for (j, ss) in scopes.iter().enumerate() {
            let spans = match ss.as_object().map(|o| o.get("spans")) {
                Some(None | Some(Value::Null)) => continue,
                Some(Some(Value::Array(a))) => a,
                Some(Some(other)) => {
                    return Err(DecodeError::Json(format!(
                        "OTLP/JSON: resourceSpans[{i}].scopeSpans[{j}].spans must be an array, found {}",
                        json_type(other)
                    )))
                }
                None => {
                    return Err(DecodeError::Json(format!(
                        "OTLP/JSON: resourceSpans[{i}].scopeSpans[{j}] must be an object, found {}",
                        json_type(ss)
                    )))
                }
            };
            out.spans.reserve(spans.len());
            for span in spans {
                json_otlp_span(&mut out, &res, span);
            }
        }
    }
    Ok(out)
}

/// Decodes a Zipkin v2 JSON body (a JSON array of spans).
pub fn zipkin_v2_json(body: &[u8]) -> Result<Decoded, DecodeError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Array(spans) = root else {
        return Err(DecodeError::Json(format!(
            "Zipkin v2: expected a JSON array of spans, found {}",
            json_type(&root)
        )));
    };
    let mut out = Decoded {
        spans: Vec::with_capacity(spans.len()),
        rejected: Vec::new(),
    };
    for span in &spans {
        zipkin_span(&mut out, span);
    }
    if !spans.is_empty() && out.rejected == [(REJECT_ZIPKIN_V1, spans.len() as u64)] {
        return Err(DecodeError::ZipkinV1);
    }
    Ok(out)
}

/// The v1 model's marks: `binaryAnnotations`, or annotations that name
/// their own endpoint (v2 annotations are a timestamp and a value).
fn is_zipkin_v1(span: &Map<String, Value>) -> bool {
    span.contains_key("binaryAnnotations")
        || span
            .get("annotations")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|an| an.get("endpoint").is_some()))
}

/// Zipkin's proto3 encoding (`zipkin.proto3.ListOfSpans`), the messages
/// declared with only the fields read.
mod zipkin_proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        /// 1 CLIENT, 2 SERVER, 3 PRODUCER, 4 CONSUMER; 0 unspecified.
        #[prost(int32, tag = "4")]
        pub kind: i32,
        /// Microseconds since the epoch.
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        /// Microseconds.
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(map = "string, string", tag = "11")]
        pub tags: std::collections::HashMap<String, String>,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }
}

/// Decodes a Zipkin proto3 body (`ListOfSpans`, as Brave's PROTO3 encoding
/// and Envoy's `HTTP_PROTO` send). Each span is read as its v2 JSON form
/// would be, so both encodings follow one set of rules.
pub fn zipkin_v2_protobuf(body: &[u8]) -> Result<Decoded, DecodeError> {
    let list = zipkin_proto::ListOfSpans::decode(body)
        .map_err(|e| DecodeError::ZipkinProtobuf(e.to_string()))?;
    let mut out = Decoded {
        spans: Vec::with_capacity(list.spans.len()),
        rejected: Vec::new(),
    };
    for span in &list.spans {
        zipkin_span(&mut out, &zipkin_proto_as_json(span));
    }
    Ok(out)
}

fn zipkin_proto_as_json(span: &zipkin_proto::Span) -> Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let endpoint = |ep: &zipkin_proto::Endpoint| {
        let mut o = Map::new();
        o.insert("serviceName".into(), Value::from(ep.service_name.as_str()));
        if let Ok(v4) = <[u8; 4]>::try_from(ep.ipv4.as_slice()) {
            o.insert(
                "ipv4".into(),
                Value::from(std::net::Ipv4Addr::from(v4).to_string()),
            );
        }
        if let Ok(v6) = <[u8; 16]>::try_from(ep.ipv6.as_slice()) {
            o.insert(
                "ipv6".into(),
                Value::from(std::net::Ipv6Addr::from(v6).to_string()),
            );
        }
        if ep.port > 0 {
            o.insert("port".into(), Value::from(ep.port));
        }
        Value::Object(o)
    };
    let mut o = Map::new();
    o.insert("traceId".into(), Value::from(hex(&span.trace_id)));
    o.insert("id".into(), Value::from(hex(&span.id)));
    if !span.parent_id.is_empty() {
        o.insert("parentId".into(), Value::from(hex(&span.parent_id)));
    }
    let kind = ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"];
    if let Some(k) = span
        .kind
        .checked_sub(1)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| kind.get(i))
    {
        o.insert("kind".into(), Value::from(*k));
    }
    // Zero is proto3's "absent".
    if span.timestamp != 0 {
        o.insert("timestamp".into(), Value::from(span.timestamp));
    }
    o.insert("duration".into(), Value::from(span.duration));
    if let Some(ep) = &span.local_endpoint {
        o.insert("localEndpoint".into(), endpoint(ep));
    }
    if let Some(ep) = &span.remote_endpoint {
        o.insert("remoteEndpoint".into(), endpoint(ep));
    }
    let tags: Map<String, Value> = span
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    o.insert("tags".into(), Value::Object(tags));
    o.insert("shared".into(), Value::from(span.shared));
    Value::Object(o)
}

/// The span id given to a Zipkin B3 shared SERVER span (which arrives with
/// its client's id): the id with its top bit flipped, or, in the one case
/// where that would be all zeros, with its second bit flipped.
pub fn zipkin_shared_server_span_id(id: [u8; 8]) -> [u8; 8] {
    let v = u64::from_be_bytes(id);
    let d = v ^ (1 << 63);
    let d = if d == 0 { v ^ (1 << 62) } else { d };
    d.to_be_bytes()
}

// ---------------------------------------------------------------------------
// Attribute picking, shared by all formats. Values are borrowed from the
// decoded body; only the winners are copied into the SpanRecord.

#[derive(Clone, Copy, Debug, PartialEq)]
enum AttrVal<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Other,
}

impl<'a> AttrVal<'a> {
    fn as_str(self) -> Option<&'a str> {
        match self {
            AttrVal::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_status_code(self) -> Option<i64> {
        match self {
            AttrVal::Int(i) => Some(i),
            AttrVal::Double(d) if d.is_finite() => Some(d as i64),
            AttrVal::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// The `host[:port]` of an absolute URL, without user info.
fn url_host(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then_some(host)
}

/// One field with several possible sources; the lowest rank wins.
#[derive(Clone, Copy, Default)]
struct Pick<'a> {
    val: Option<&'a str>,
    rank: u8,
}

impl<'a> Pick<'a> {
    fn offer(&mut self, rank: u8, v: Option<&'a str>) {
        if let Some(v) = v {
            if !v.is_empty() && (self.val.is_none() || rank < self.rank) {
                self.val = Some(v);
                self.rank = rank;
            }
        }
    }

    fn owned(&self) -> Option<String> {
        self.val.map(str::to_owned)
    }
}

#[derive(Default)]
struct ResourcePicks<'a> {
    service: Pick<'a>,
    namespace: Pick<'a>,
    cluster: Pick<'a>,
}

impl<'a> ResourcePicks<'a> {
    /// Returns whether the key was one of ours.
    fn offer(&mut self, key: &str, v: AttrVal<'a>) -> bool {
        match key {
            "service.name" => self.service.offer(0, v.as_str()),
            "k8s.namespace.name" => self.namespace.offer(0, v.as_str()),
            "service.namespace" => self.namespace.offer(1, v.as_str()),
            "k8s.cluster.name" => self.cluster.offer(0, v.as_str()),
            _ => return false,
        }
        true
    }

    fn finish(&self, unknown_service: &str) -> Resource {
        Resource {
            service: self.service.val.unwrap_or(unknown_service).to_owned(),
            namespace: self.namespace.owned(),
            cluster: self.cluster.owned(),
        }
    }
}

struct Resource {
    service: String,
    namespace: Option<String>,
    cluster: Option<String>,
}

#[derive(Default)]
struct SpanPicks<'a> {
    db_system: Pick<'a>,
    db_name: Pick<'a>,
    server_address: Pick<'a>,
    peer_service: Pick<'a>,
    messaging_system: Pick<'a>,
    messaging_destination: Pick<'a>,
    messaging_operation: Pick<'a>,
    /// (rank, code)
    http_status: Option<(u8, i64)>,
}

impl<'a> SpanPicks<'a> {
    /// The OTel semantic-convention keys. Returns whether the key was ours.
    fn offer_otel(&mut self, key: &str, v: AttrVal<'a>) -> bool {
        match key {
            "db.system" => self.db_system.offer(0, v.as_str()),
            "db.system.name" => self.db_system.offer(1, v.as_str()),
            "db.name" => self.db_name.offer(0, v.as_str()),
            "db.namespace" => self.db_name.offer(1, v.as_str()),
            "server.address" => self.server_address.offer(0, v.as_str()),
            "net.peer.name" => self.server_address.offer(1, v.as_str()),
            "network.peer.address" => self.server_address.offer(2, v.as_str()),
            // Older names of `network.peer.address`; an address alone, so
            // after a host name from a URL.
            "net.sock.peer.addr" | "net.peer.ip" => self.server_address.offer(7, v.as_str()),
            // Older HTTP client conventions name the server only in the
            // Host header or the URL (`http.url`, now `url.full`).
            "http.host" => self.server_address.offer(4, v.as_str()),
            "url.full" => self.server_address.offer(5, v.as_str().and_then(url_host)),
            "http.url" => self.server_address.offer(6, v.as_str().and_then(url_host)),
            "peer.service" => self.peer_service.offer(1, v.as_str()),
            // The newer name of `peer.service`.
            "service.peer.name" => self.peer_service.offer(1, v.as_str()),
            "messaging.system" => self.messaging_system.offer(0, v.as_str()),
            "messaging.destination.name" => self.messaging_destination.offer(0, v.as_str()),
            "messaging.destination" => self.messaging_destination.offer(1, v.as_str()),
            "messaging.operation.type" => self.messaging_operation.offer(0, v.as_str()),
            "messaging.operation" => self.messaging_operation.offer(1, v.as_str()),
            "http.response.status_code" => self.offer_status(0, v),
            "http.status_code" => self.offer_status(1, v),
            _ => return false,
        }
        true
    }

    /// OpenTracing and Brave/Sleuth tags seen in Zipkin data.
    fn offer_zipkin_dialects(&mut self, key: &str, v: AttrVal<'a>) {
        let s = v.as_str();
        match key {
            "db.type" => self.db_system.offer(2, s),
            "db.instance" => self.db_name.offer(2, s),
            "peer.hostname" => self.server_address.offer(3, s),
            "message_bus.destination" => self.messaging_destination.offer(2, s),
            "sql.query" | "jdbc.query" => self.db_system.offer(5, Some("sql")),
            // datasource-micrometer (Spring Boot 3's JDBC observations)
            // numbers the statements of a batch: `jdbc.query[0]`, ...
            k if k.starts_with("jdbc.query[") => self.db_system.offer(5, Some("sql")),
            "cassandra.keyspace" => {
                self.db_system.offer(5, Some("cassandra"));
                self.db_name.offer(3, s);
            }
            "kafka.topic" => {
                self.messaging_system.offer(5, Some("kafka"));
                self.messaging_destination.offer(3, s);
            }
            "rabbit.queue" => {
                self.messaging_system.offer(5, Some("rabbitmq"));
                self.messaging_destination.offer(4, s);
            }
            "rabbit.exchange" => {
                self.messaging_system.offer(5, Some("rabbitmq"));
                self.messaging_destination.offer(6, s);
            }
            "jms.queue" | "jms.topic" => {
                self.messaging_system.offer(5, Some("jms"));
                self.messaging_destination.offer(5, s);
            }
            _ => {
                if key.starts_with("cassandra.") {
                    self.db_system.offer(5, Some("cassandra"));
                } else if key.starts_with("mongodb.") {
                    self.db_system.offer(5, Some("mongodb"));
                } else if key.starts_with("redis.") {
                    self.db_system.offer(5, Some("redis"));
                } else if key.starts_with("kafka.") {
                    self.messaging_system.offer(5, Some("kafka"));
                } else if key.starts_with("rabbit.") {
                    self.messaging_system.offer(5, Some("rabbitmq"));
                }
            }
        }
    }

    fn offer_status(&mut self, rank: u8, v: AttrVal<'a>) {
        if let Some(code) = v.as_status_code() {
            if self.http_status.is_none_or(|(r, _)| rank < r) {
                self.http_status = Some((rank, code));
            }
        }
    }
}

/// Everything but the strings, already validated ids.
struct Core {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    kind: Option<SpanKind>,
    start: u64,
    end: u64,
    status_error: bool,
    /// See [`SpanRecord::may_share_client_id`].
    may_share_client_id: bool,
}

fn push(
    out: &mut Decoded,
    core: Core,
    service: &str,
    namespace: Option<&str>,
    cluster: Option<&str>,
    p: &SpanPicks<'_>,
) {
    if core.start == 0 {
        out.reject(REJECT_MISSING_TIMESTAMP);
        return;
    }
    if core.end < core.start {
        out.reject(REJECT_END_BEFORE_START);
        return;
    }
    let http_5xx =
        core.kind == Some(SpanKind::Server) && p.http_status.is_some_and(|(_, code)| code >= 500);
    out.spans.push(SpanRecord {
        trace_id: core.trace_id,
        span_id: core.span_id,
        parent_span_id: core.parent_span_id,
        kind: core.kind,
        service: service.to_owned(),
        namespace: namespace.map(str::to_owned),
        cluster: cluster.map(str::to_owned),
        start_unix_nanos: core.start,
        end_unix_nanos: core.end,
        error: core.status_error || http_5xx,
        db_system: p.db_system.owned(),
        db_name: p.db_name.owned(),
        server_address: p.server_address.owned(),
        peer_service: p.peer_service.owned(),
        messaging_system: p.messaging_system.owned(),
        messaging_destination: p.messaging_destination.owned(),
        messaging_operation: p.messaging_operation.owned(),
        may_share_client_id: core.may_share_client_id,
    });
}

// ---------------------------------------------------------------------------
// Ids

fn nonzero(b: &[u8]) -> bool {
    b.iter().any(|&x| x != 0)
}

fn id_bytes<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
    let a: [u8; N] = b.try_into().ok()?;
    nonzero(&a).then_some(a)
}

/// `Ok(None)` for a root span (empty or all-zero parent id).
fn parent_bytes(b: &[u8]) -> Result<Option<[u8; 8]>, ()> {
    if b.is_empty() {
        return Ok(None);
    }
    let a: [u8; 8] = b.try_into().map_err(|_| ())?;
    Ok(nonzero(&a).then_some(a))
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly `2 * N` hex digits.
fn hex_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
}

/// 1 to `2 * N` hex digits, left-padded with zeros (Zipkin's normalization).
fn hex_padded<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut nibble = 2 * N;
    for &c in b.iter().rev() {
        nibble -= 1;
        let v = hex_val(c)?;
        out[nibble / 2] |= if nibble % 2 == 1 { v } else { v << 4 };
    }
    Some(out)
}

fn kind_from_i64(k: i64) -> SpanKind {
    match k {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// Status code ERROR in OTLP is 2.
const OTLP_STATUS_ERROR: i32 = 2;

// ---------------------------------------------------------------------------
// OTLP protobuf

fn pb_value(kv: &lite::KeyValue) -> AttrVal<'_> {
    let Some(v) = &kv.value else {
        return AttrVal::Other;
    };
    if let Some(s) = &v.string_value {
        return std::str::from_utf8(s).map_or(AttrVal::Other, AttrVal::Str);
    }
    if let Some(i) = v.int_value {
        return AttrVal::Int(i);
    }
    v.double_value.map_or(AttrVal::Other, AttrVal::Double)
}

fn pb_span(out: &mut Decoded, res: &Resource, span: &lite::Span) {
    let Some(trace_id) = id_bytes::<16>(&span.trace_id) else {
        out.reject(REJECT_TRACE_ID);
        return;
    };
    let Some(span_id) = id_bytes::<8>(&span.span_id) else {
        out.reject(REJECT_SPAN_ID);
        return;
    };
    let Ok(parent_span_id) = parent_bytes(&span.parent_span_id) else {
        out.reject(REJECT_PARENT_ID);
        return;
    };
    let mut picks = SpanPicks::default();
    for kv in &span.attributes {
        if let Ok(key) = std::str::from_utf8(&kv.key) {
            picks.offer_otel(key, pb_value(kv));
        }
    }
    let core = Core {
        trace_id,
        span_id,
        parent_span_id,
        kind: Some(kind_from_i64(i64::from(span.kind))),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano,
        status_error: span
            .status
            .as_ref()
            .is_some_and(|s| s.code == OTLP_STATUS_ERROR),
        may_share_client_id: false,
    };
    push(
        out,
        core,
        &res.service,
        res.namespace.as_deref(),
        res.cluster.as_deref(),
        &picks,
    );
}

// ---------------------------------------------------------------------------
// JSON helpers

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A u64 as a JSON number or decimal string; absent/null -> 0.
fn json_u64(v: Option<&Value>) -> Result<u64, ()> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(u) => Ok(u),
            None => match n.as_f64() {
                // 1.8446744073709552e19 is 2^64; `as` saturates, so bound it.
                Some(f) if f.is_finite() && (0.0..1.844_674_407_370_955_2e19).contains(&f) => {
                    Ok(f as u64)
                }
                _ => Err(()),
            },
        },
        Some(Value::String(s)) => s.parse().map_err(|_| ()),
        Some(_) => Err(()),
    }
}

/// OTLP/JSON `{"key": "...", "value": {AnyValue}}`.
fn json_key_value(kv: &Value) -> Option<(&str, AttrVal<'_>)> {
    let o = kv.as_object()?;
    let key = o.get("key")?.as_str()?;
    Some((key, json_any(o.get("value"))))
}

fn json_any(v: Option<&Value>) -> AttrVal<'_> {
    let Some(o) = v.and_then(Value::as_object) else {
        return AttrVal::Other;
    };
    if let Some(s) = o.get("stringValue").and_then(Value::as_str) {
        return AttrVal::Str(s);
    }
    match o.get("intValue") {
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return AttrVal::Int(i);
            }
        }
        Some(Value::String(s)) => {
            if let Ok(i) = s.parse() {
                return AttrVal::Int(i);
            }
        }
        _ => {}
    }
    if let Some(d) = o.get("doubleValue").and_then(Value::as_f64) {
        return AttrVal::Double(d);
    }
    AttrVal::Other
}

fn json_otlp_kind(v: Option<&Value>) -> SpanKind {
    match v {
        Some(Value::Number(n)) => n.as_i64().map_or(SpanKind::Unspecified, kind_from_i64),
        Some(Value::String(s)) => match s.strip_prefix("SPAN_KIND_").unwrap_or(s) {
            "INTERNAL" => SpanKind::Internal,
            "SERVER" => SpanKind::Server,
            "CLIENT" => SpanKind::Client,
            "PRODUCER" => SpanKind::Producer,
            "CONSUMER" => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        },
        _ => SpanKind::Unspecified,
    }
}

fn json_otlp_status_error(status: Option<&Value>) -> bool {
    match status
        .and_then(Value::as_object)
        .and_then(|s| s.get("code"))
    {
        Some(Value::Number(n)) => n.as_i64() == Some(i64::from(OTLP_STATUS_ERROR)),
        Some(Value::String(s)) => s == "STATUS_CODE_ERROR" || s == "ERROR",
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// OTLP/JSON

fn json_otlp_span(out: &mut Decoded, res: &Resource, span: &Value) {
    let Some(o) = span.as_object() else {
        out.reject(REJECT_NOT_OBJECT);
        return;
    };
    let (trace_id, span_id, parent_span_id) = match json_ids(
        o,
        ["traceId", "spanId", "parentSpanId"],
        hex_exact::<16>,
        hex_exact::<8>,
    ) {
        Ok(ids) => ids,
        Err(reason) => {
            out.reject(reason);
            return;
        }
    };
    let (Ok(start), Ok(end)) = (
        json_u64(o.get("startTimeUnixNano")),
        json_u64(o.get("endTimeUnixNano")),
    ) else {
        out.reject(REJECT_TIMESTAMP);
        return;
    };
    let mut picks = SpanPicks::default();
    if let Some(attrs) = o.get("attributes").and_then(Value::as_array) {
        for (k, v) in attrs.iter().filter_map(json_key_value) {
            picks.offer_otel(k, v);
        }
    }
    let core = Core {
        trace_id,
        span_id,
        parent_span_id,
        kind: Some(json_otlp_kind(o.get("kind"))),
        start,
        end,
        status_error: json_otlp_status_error(o.get("status")),
        may_share_client_id: false,
    };
    push(
        out,
        core,
        &res.service,
        res.namespace.as_deref(),
        res.cluster.as_deref(),
        &picks,
    );
}

/// (trace id, span id, parent span id).
type SpanIds = ([u8; 16], [u8; 8], Option<[u8; 8]>);

/// Trace, span and parent span ids of a JSON span (field names and hex
/// rules differ between OTLP/JSON and Zipkin), or the reason to reject it.
/// An empty or all-zero parent means a root span.
fn json_ids(
    o: &Map<String, Value>,
    [trace, span, parent]: [&str; 3],
    hex16: fn(&str) -> Option<[u8; 16]>,
    hex8: fn(&str) -> Option<[u8; 8]>,
) -> Result<SpanIds, &'static str> {
    let trace_id = str_field(o, trace)
        .and_then(hex16)
        .filter(|a| nonzero(a))
        .ok_or(REJECT_TRACE_ID)?;
    let span_id = str_field(o, span)
        .and_then(hex8)
        .filter(|a| nonzero(a))
        .ok_or(REJECT_SPAN_ID)?;
    let parent_span_id = match o.get(parent) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => {
            let a = hex8(s).ok_or(REJECT_PARENT_ID)?;
            nonzero(&a).then_some(a)
        }
        Some(_) => return Err(REJECT_PARENT_ID),
    };
    Ok((trace_id, span_id, parent_span_id))
}

/// Renames snake_case keys to lowerCamelCase, throughout. Proto3's JSON
/// mapping has parsers accept a field's proto name as well as its JSON name
/// (the OpenTelemetry Collector does), and some senders write `trace_id`.
/// Every key of an OTLP/JSON object is a field name (attributes are lists
/// of `{key, value}`, never maps), so no user data is renamed; a key given
/// both ways keeps its lowerCamelCase value.
fn camel_case_keys(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(camel_case_keys),
        Value::Object(o) if o.keys().any(|k| k.contains('_')) => {
            let (snake, camel): (Vec<_>, Vec<_>) = std::mem::take(o)
                .into_iter()
                .partition(|(k, _)| k.contains('_'));
            for (key, mut value) in camel {
                camel_case_keys(&mut value);
                o.insert(key, value);
            }
            for (key, mut value) in snake {
                camel_case_keys(&mut value);
                o.entry(lower_camel_case(&key)).or_insert(value);
            }
        }
        Value::Object(o) => o.values_mut().for_each(camel_case_keys),
        _ => {}
    }
}

fn lower_camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn str_field<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// Zipkin v2

fn zipkin_kind(v: Option<&Value>) -> Option<SpanKind> {
    let s = v?.as_str()?;
    [
        ("CLIENT", SpanKind::Client),
        ("SERVER", SpanKind::Server),
        ("PRODUCER", SpanKind::Producer),
        ("CONSUMER", SpanKind::Consumer),
    ]
    .into_iter()
    .find(|(name, _)| s.eq_ignore_ascii_case(name))
    .map(|(_, k)| k)
}

/// `ipv4` (else `ipv6`) of an endpoint, with `:port` when one is given.
fn zipkin_endpoint_address(ep: &Map<String, Value>) -> Option<String> {
    let port = ep
        .get("port")
        .and_then(Value::as_u64)
        .filter(|p| (1..=65535).contains(p));
    if let Some(ip) = str_field(ep, "ipv4").filter(|s| !s.is_empty()) {
        return Some(match port {
            Some(p) => format!("{ip}:{p}"),
            None => ip.to_owned(),
        });
    }
    if let Some(ip) = str_field(ep, "ipv6").filter(|s| !s.is_empty()) {
        return Some(match port {
            Some(p) => format!("[{ip}]:{p}"),
            None => ip.to_owned(),
        });
    }
    None
}

fn zipkin_span(out: &mut Decoded, span: &Value) {
    let Some(o) = span.as_object() else {
        out.reject(REJECT_NOT_OBJECT);
        return;
    };
    if is_zipkin_v1(o) {
        out.reject(REJECT_ZIPKIN_V1);
        return;
    }
    let (trace_id, id, parent) = match json_ids(
        o,
        ["traceId", "id", "parentId"],
        hex_padded::<16>,
        hex_padded::<8>,
    ) {
        Ok(ids) => ids,
        Err(reason) => {
            out.reject(reason);
            return;
        }
    };

    let ts = match o.get("timestamp") {
        None | Some(Value::Null) => {
            out.reject(REJECT_MISSING_TIMESTAMP);
            return;
        }
        v => json_u64(v),
    };
    let nanos = ts
        .and_then(|ts| Ok((ts, json_u64(o.get("duration"))?)))
        .ok()
        .and_then(|(ts, dur)| {
            let start = ts.checked_mul(1000)?;
            Some((start, start.checked_add(dur.checked_mul(1000)?)?))
        });
    let Some((start, end)) = nanos else {
        out.reject(REJECT_TIMESTAMP);
        return;
    };
    if start == 0 {
        // Zipkin treats timestamp 0 as absent.
        out.reject(REJECT_MISSING_TIMESTAMP);
        return;
    }
    let local_service = o
        .get("localEndpoint")
        .and_then(Value::as_object)
        .and_then(|ep| str_field(ep, "serviceName"))
        .filter(|s| !s.is_empty());
    let service = local_service.unwrap_or(ZIPKIN_UNKNOWN_SERVICE);
    let remote = o.get("remoteEndpoint").and_then(Value::as_object);
    let remote_service = remote
        .and_then(|ep| str_field(ep, "serviceName"))
        .filter(|s| !s.is_empty());
    // Zipkin's own dependency linker reads a span without a kind that names
    // both services as a client's call (instrumentation that reports only
    // local and remote endpoints, e.g. of a database driver).
    let kind = zipkin_kind(o.get("kind")).or_else(|| {
        (local_service.is_some() && remote_service.is_some()).then_some(SpanKind::Client)
    });
    let shared = o.get("shared").and_then(Value::as_bool) == Some(true);
    let (span_id, parent_span_id) = if shared && kind == Some(SpanKind::Server) {
        (zipkin_shared_server_span_id(id), Some(id))
    } else {
        (id, parent)
    };

    let mut picks = SpanPicks::default();
    let mut res = ResourcePicks::default();
    let mut error_tag = false;
    let mut otel_error = false;
    picks.peer_service.offer(0, remote_service);
    if let Some(tags) = o.get("tags").and_then(Value::as_object) {
        for (k, v) in tags {
            let v = match v {
                Value::String(s) => AttrVal::Str(s),
                Value::Number(n) => n
                    .as_i64()
                    .map(AttrVal::Int)
                    .or_else(|| n.as_f64().map(AttrVal::Double))
                    .unwrap_or(AttrVal::Other),
                _ => AttrVal::Other,
            };
            match k.as_str() {
                // Zipkin: an `error` tag with any value marks a failed span.
                "error" => error_tag = true,
                "otel.status_code" => {
                    otel_error |= v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("ERROR"))
                }
                // service.name is localEndpoint's job in Zipkin.
                "service.name" => {}
                k => {
                    if !res.offer(k, v) && !picks.offer_otel(k, v) {
                        picks.offer_zipkin_dialects(k, v);
                    }
                }
            }
        }
    }
    // Remote ip:port is the weakest source of a server address.
    let remote_address = match picks.server_address.val {
        Some(_) => None,
        None => remote.and_then(zipkin_endpoint_address),
    };
    if let Some(addr) = remote_address.as_deref() {
        picks.server_address.offer(9, Some(addr));
    }

    // Brave tags every HTTP response outside 1xx-3xx `error`; a server that
    // answered 4xx did not fail (OTel counts only 5xx on the server side,
    // as `push` does for status codes).
    let client_fault = kind == Some(SpanKind::Server)
        && picks
            .http_status
            .is_some_and(|(_, code)| (400..500).contains(&code));
    let core = Core {
        trace_id,
        span_id,
        parent_span_id,
        kind,
        start,
        end,
        status_error: otel_error || (error_tag && !client_fault),
        may_share_client_id: kind == Some(SpanKind::Server) && !shared,
    };
    push(
        out,
        core,
        service,
        res.namespace.val,
        res.cluster.val,
        &picks,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as PbSpan, Status,
    };

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex_exact::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(hex_exact::<2>("0aF"), None);
        assert_eq!(hex_exact::<2>("0aFg"), None);
        assert_eq!(hex_exact::<2>("é1"), None);
        assert_eq!(hex_padded::<4>("abc"), Some([0, 0, 0x0a, 0xbc]));
        assert_eq!(hex_padded::<4>("12345678"), Some([0x12, 0x34, 0x56, 0x78]));
        assert_eq!(hex_padded::<4>("123456789"), None);
        assert_eq!(hex_padded::<4>(""), None);
        assert_eq!(
            hex_padded::<16>("463ac35c9f6413ad"),
            Some([0, 0, 0, 0, 0, 0, 0, 0, 0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad])
        );
    }

    #[test]
    fn shared_id_is_distinct_and_never_zero() {
        let id = [0x12, 0, 0, 0, 0, 0, 0, 1];
        let d = zipkin_shared_server_span_id(id);
        assert_ne!(d, id);
        assert_eq!(d, [0x92, 0, 0, 0, 0, 0, 0, 1]);
        let top = [0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(nonzero(&zipkin_shared_server_span_id(top)));
    }

    #[test]
    fn json_u64_forms() {
        assert_eq!(
            json_u64(Some(&Value::from("1700000000000000000"))),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(json_u64(Some(&Value::from(5u64))), Ok(5));
        assert_eq!(json_u64(None), Ok(0));
        assert_eq!(json_u64(Some(&Value::from(-1))), Err(()));
        assert_eq!(json_u64(Some(&Value::from("12x"))), Err(()));
        assert_eq!(json_u64(Some(&Value::from(1e30))), Err(()));
    }

    #[test]
    fn attribute_precedence_is_order_independent() {
        let mut p = SpanPicks::default();
        p.offer_otel("net.peer.name", AttrVal::Str("old"));
        p.offer_otel("server.address", AttrVal::Str("new"));
        p.offer_otel("network.peer.address", AttrVal::Str("10.0.0.1"));
        assert_eq!(p.server_address.val, Some("new"));
        p.offer_otel("http.status_code", AttrVal::Str("503"));
        p.offer_otel("http.response.status_code", AttrVal::Int(200));
        p.offer_otel("http.status_code", AttrVal::Int(500));
        assert_eq!(p.http_status, Some((0, 200)));
        p.offer_otel("db.namespace", AttrVal::Str("ns"));
        p.offer_otel("db.name", AttrVal::Int(3)); // wrong type: ignored
        assert_eq!(p.db_name.val, Some("ns"));
    }

    fn pb_request(spans: Vec<PbSpan>, resource: Vec<KeyValue>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(PbResource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn protobuf_rejects_and_defaults() {
        let good = PbSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![kv(
                "http.response.status_code",
                any_value::Value::IntValue(502),
            )],
            ..Default::default()
        };
        let spans = vec![
            good.clone(),
            PbSpan {
                trace_id: vec![0; 16],
                ..good.clone()
            },
            PbSpan {
                trace_id: vec![1; 8],
                ..good.clone()
            },
            PbSpan {
                span_id: vec![],
                ..good.clone()
            },
            PbSpan {
                parent_span_id: vec![3; 4],
                ..good.clone()
            },
            PbSpan {
                parent_span_id: vec![0; 8],
                ..good.clone()
            },
            PbSpan {
                end_time_unix_nano: 5,
                ..good.clone()
            },
            PbSpan {
                kind: 3,
                status: Some(Status {
                    code: 2,
                    ..Default::default()
                }),
                attributes: vec![kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(503),
                )],
                ..good.clone()
            },
            PbSpan {
                kind: 99,
                attributes: vec![],
                ..good.clone()
            },
        ];
        let body = pb_request(spans, vec![kv("k8s.cluster.name", s("dc-01"))]);
        let d = otlp_protobuf(&body).unwrap();
        assert_eq!(d.spans.len(), 4, "{d:?}");
        assert_eq!(d.spans[0].service, OTLP_UNKNOWN_SERVICE);
        assert_eq!(d.spans[0].cluster.as_deref(), Some("dc-01"));
        assert!(d.spans[0].error, "server span with 502");
        assert_eq!(d.spans[1].parent_span_id, None, "all-zero parent is root");
        assert!(d.spans[2].error, "status ERROR");
        assert_eq!(d.spans[2].kind, Some(SpanKind::Client));
        assert_eq!(d.spans[3].kind, Some(SpanKind::Unspecified));
        assert!(!d.spans[3].error);
        let mut rej = d.rejected.clone();
        rej.sort();
        assert_eq!(
            rej,
            vec![
                (REJECT_END_BEFORE_START, 1),
                (REJECT_PARENT_ID, 1),
                (REJECT_SPAN_ID, 1),
                (REJECT_TRACE_ID, 2),
            ]
        );
    }

    #[test]
    fn protobuf_non_utf8_strings_are_ignored_not_fatal() {
        // Encode with bytes where the proto says string: a key and a value
        // that are not UTF-8.
        let span = lite::Span {
            trace_id: Bytes::from_static(&[1; 16]),
            span_id: Bytes::from_static(&[2; 8]),
            kind: 3,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![
                lite::KeyValue {
                    key: Bytes::from_static(b"db.system"),
                    value: Some(lite::AnyValue {
                        string_value: Some(Bytes::from_static(b"my\xffsql")),
                        ..Default::default()
                    }),
                },
                lite::KeyValue {
                    key: Bytes::from_static(b"\xc3peer.service"),
                    value: Some(lite::AnyValue {
                        string_value: Some(Bytes::from_static(b"x")),
                        ..Default::default()
                    }),
                },
                lite::KeyValue {
                    key: Bytes::from_static(b"db.name"),
                    value: Some(lite::AnyValue {
                        string_value: Some(Bytes::from_static(b"orders")),
                        ..Default::default()
                    }),
                },
            ],
            ..Default::default()
        };
        let body = lite::ExportTraceServiceRequest {
            resource_spans: vec![lite::ResourceSpans {
                resource: None,
                scope_spans: vec![lite::ScopeSpans { spans: vec![span] }],
            }],
        }
        .encode_to_vec();
        let d = otlp_protobuf(&body).unwrap();
        assert_eq!(d.spans.len(), 1);
        assert_eq!(d.spans[0].db_system, None);
        assert_eq!(d.spans[0].peer_service, None);
        assert_eq!(d.spans[0].db_name.as_deref(), Some("orders"));
        assert_eq!(d.spans[0].service, OTLP_UNKNOWN_SERVICE);
    }

    /// The lite mirror reads what the full opentelemetry-proto types wrote,
    /// including all AnyValue kinds and fields it does not declare.
    #[test]
    fn lite_mirror_reads_full_messages() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
        let span = PbSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "k=v".into(),
            flags: 0x101,
            name: "name".into(),
            kind: 4,
            start_time_unix_nano: 7,
            end_time_unix_nano: 9,
            attributes: vec![
                kv(
                    "a",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(s("x")),
                        }],
                    }),
                ),
                kv(
                    "b",
                    any_value::Value::KvlistValue(KeyValueList {
                        values: vec![kv("c", s("y"))],
                    }),
                ),
                kv("c", any_value::Value::BytesValue(vec![0xff; 3])),
                kv("d", any_value::Value::BoolValue(true)),
                kv("messaging.system", s("kafka")),
                kv("http.status_code", any_value::Value::DoubleValue(503.0)),
            ],
            dropped_attributes_count: 1,
            events: vec![Event {
                name: "e".into(),
                attributes: vec![kv("k", s("v"))],
                ..Default::default()
            }],
            links: vec![Link {
                trace_id: vec![5; 16],
                span_id: vec![6; 8],
                ..Default::default()
            }],
            status: Some(Status {
                message: "m".into(),
                code: 2,
            }),
            ..Default::default()
        };
        let d = otlp_protobuf(&pb_request(vec![span], vec![kv("service.name", s("svc"))])).unwrap();
        assert_eq!(d.rejected, vec![]);
        let r = &d.spans[0];
        assert_eq!(r.service, "svc");
        assert_eq!(r.trace_id, [1; 16]);
        assert_eq!(r.span_id, [2; 8]);
        assert_eq!(r.parent_span_id, Some([3; 8]));
        assert_eq!(r.kind, Some(SpanKind::Producer));
        assert_eq!((r.start_unix_nanos, r.end_unix_nanos), (7, 9));
        assert_eq!(r.messaging_system.as_deref(), Some("kafka"));
        assert!(r.error);
    }

    #[test]
    fn client_5xx_is_not_an_error_by_itself() {
        let span = PbSpan {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind: 3,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![kv("http.status_code", s("500"))],
            ..Default::default()
        };
        let d = otlp_protobuf(&pb_request(vec![span], vec![])).unwrap();
        assert!(!d.spans[0].error);
    }

    #[test]
    fn otlp_json_enum_names_and_bad_ids() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"svc"}},
            {"key":"service.namespace","value":{"stringValue":"fallback"}}]},
          "scopeSpans":[{"spans":[
            {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
             "kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":2,
             "status":{"code":"STATUS_CODE_ERROR"},"unknownField":{"x":1}},
            {"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"7uGbfsPBsXQ=","kind":2},
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
             "startTimeUnixNano":"soon"},
            42
          ]}]}]}"#;
        let d = otlp_json(body).unwrap();
        assert_eq!(d.spans.len(), 1);
        let sp = &d.spans[0];
        assert_eq!(sp.service, "svc");
        assert_eq!(sp.namespace.as_deref(), Some("fallback"));
        assert_eq!(sp.kind, Some(SpanKind::Server));
        assert!(sp.error);
        assert_eq!(sp.trace_id[0], 0x5b);
        let mut rej = d.rejected.clone();
        rej.sort();
        assert_eq!(
            rej,
            vec![
                (REJECT_TIMESTAMP, 1),
                (REJECT_TRACE_ID, 1),
                (REJECT_NOT_OBJECT, 1)
            ]
        );
    }

    /// Proto field names (snake_case) decode as the JSON names do, also
    /// mixed with them, and the JSON name wins when a field is given both
    /// ways; attribute keys are left as sent.
    #[test]
    fn otlp_json_takes_proto_field_names_too() {
        let camel = br#"{"resourceSpans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"svc"}}]},
          "scopeSpans":[{"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
             "parentSpanId":"0000000000000001","kind":3,"startTimeUnixNano":"10",
             "endTimeUnixNano":"20","attributes":[
               {"key":"db.system_name","value":{"stringValue":"x"}},
               {"key":"peer.service","value":{"stringValue":"ledger"}}]}]}]}]}"#;
        let snake = br#"{"resource_spans":[{"resource":{"attributes":[
            {"key":"service.name","value":{"string_value":"svc"}}]},
          "scopeSpans":[{"spans":[
            {"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174",
             "spanId":"eee19b7ec3c1b174","parent_span_id":"0000000000000001","kind":3,
             "start_time_unix_nano":"10","end_time_unix_nano":"20","attributes":[
               {"key":"db.system_name","value":{"string_value":"x"}},
               {"key":"peer.service","value":{"string_value":"ledger"}}]}]}]}]}"#;
        let (camel, snake) = (otlp_json(camel).unwrap(), otlp_json(snake).unwrap());
        assert_eq!(format!("{camel:?}"), format!("{snake:?}"));
        assert_eq!(snake.spans.len(), 1);
        assert_eq!(snake.spans[0].service, "svc");
        assert_eq!(snake.spans[0].peer_service.as_deref(), Some("ledger"));
        assert_eq!(snake.spans[0].end_unix_nanos, 20);
        assert_eq!(
            lower_camel_case("start_time_unix_nano"),
            "startTimeUnixNano"
        );
        assert_eq!(lower_camel_case("_x__y_"), "xY");
    }

    /// Brave tags every HTTP response outside 1xx-3xx `error`: a server's
    /// 4xx is the client's fault, not a failed span; its 5xx and a client's
    /// error tag are failures.
    #[test]
    fn zipkin_error_tags_on_server_4xx_are_not_failures() {
        let span = |kind: &str, status: &str| {
            format!(
                r#"{{"traceId":"1","id":"2","kind":"{kind}","timestamp":1,"duration":1,
                   "tags":{{"http.status_code":"{status}","error":"{status}"}}}}"#
            )
        };
        let body = format!(
            "[{},{},{},{}]",
            span("SERVER", "404"),
            span("SERVER", "503"),
            span("CLIENT", "404"),
            r#"{"traceId":"1","id":"3","kind":"SERVER","timestamp":1,
               "tags":{"http.status_code":"404","otel.status_code":"ERROR"}}"#
        );
        let d = zipkin_v2_json(body.as_bytes()).unwrap();
        let errors: Vec<bool> = d.spans.iter().map(|s| s.error).collect();
        assert_eq!(errors, [false, true, true, true]);
    }

    /// A proto3 span decodes as its v2 JSON twin does.
    #[test]
    fn zipkin_proto3_reads_as_its_json_form() {
        use zipkin_proto::{Endpoint, ListOfSpans, Span};
        let span = Span {
            trace_id: vec![0x46, 0x3a, 0xc3, 0x5c, 0x9f, 0x64, 0x13, 0xad],
            id: vec![0xa2, 0xfb, 0x4a, 0x1d, 0x1a, 0x96, 0xd3, 0x12],
            parent_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
            kind: 1,
            timestamp: 1_000,
            duration: 50,
            local_endpoint: Some(Endpoint {
                service_name: "frontend".into(),
                ..Default::default()
            }),
            remote_endpoint: Some(Endpoint {
                service_name: "mysql".into(),
                ipv4: vec![10, 0, 0, 7],
                port: 3306,
                ..Default::default()
            }),
            tags: [("db.system".to_string(), "mysql".to_string())].into(),
            shared: false,
        };
        let no_timestamp = Span {
            timestamp: 0,
            ..span.clone()
        };
        let body = ListOfSpans {
            spans: vec![span, no_timestamp],
        }
        .encode_to_vec();
        let json = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312",
            "parentId":"0000000000000001","kind":"CLIENT","timestamp":1000,"duration":50,
            "localEndpoint":{"serviceName":"frontend"},
            "remoteEndpoint":{"serviceName":"mysql","ipv4":"10.0.0.7","port":3306},
            "tags":{"db.system":"mysql"}},
            {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312"}]"#;
        let (proto, json) = (
            zipkin_v2_protobuf(&body).unwrap(),
            zipkin_v2_json(json).unwrap(),
        );
        assert_eq!(format!("{proto:?}"), format!("{json:?}"));
        assert_eq!(proto.spans.len(), 1);
        assert_eq!(
            proto.spans[0].server_address.as_deref(),
            Some("10.0.0.7:3306")
        );
        assert_eq!(proto.spans[0].peer_service.as_deref(), Some("mysql"));
        assert!(matches!(
            zipkin_v2_protobuf(&[0x0a, 0xff]),
            Err(DecodeError::ZipkinProtobuf(_))
        ));
    }

    /// A client span that names its server only in the URL or Host header
    /// (older HTTP conventions) still names it; better sources win.
    #[test]
    fn server_address_from_the_url_or_host_header() {
        assert_eq!(
            url_host("https://user:pw@api.pay.example:8443/v1/charge?x=1"),
            Some("api.pay.example:8443")
        );
        assert_eq!(url_host("http://[fd00::1]:80#top"), Some("[fd00::1]:80"));
        assert_eq!(url_host("/relative/path"), None);
        assert_eq!(url_host("http:///nohost"), None);
        let body = br#"[{"traceId":"1","id":"2","kind":"CLIENT","timestamp":1,
            "tags":{"http.url":"https://api.pay.example/v1/charge"}},
            {"traceId":"1","id":"3","kind":"CLIENT","timestamp":1,
            "tags":{"url.full":"https://a.example/x","http.host":"b.example",
                    "http.url":"https://c.example/"}}]"#;
        let d = zipkin_v2_json(body).unwrap();
        let addresses: Vec<_> = d
            .spans
            .iter()
            .map(|s| s.server_address.as_deref())
            .collect();
        assert_eq!(addresses, [Some("api.pay.example"), Some("b.example")]);
    }

    #[test]
    fn the_newer_peer_service_name_is_read() {
        let body = br#"[{"traceId":"1","id":"2","kind":"CLIENT","timestamp":1,
            "tags":{"service.peer.name":"payments"}}]"#;
        let d = zipkin_v2_json(body).unwrap();
        assert_eq!(d.spans[0].peer_service.as_deref(), Some("payments"));
    }

    #[test]
    fn top_level_shapes() {
        assert!(
            matches!(otlp_json(b"[]"), Err(DecodeError::Json(m)) if m.contains("expected an object"))
        );
        assert!(matches!(
            otlp_json(br#"{"resourceSpans":{}}"#),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(otlp_json(b"{}").unwrap(), Decoded::default());
        assert!(
            matches!(zipkin_v2_json(b"{}"), Err(DecodeError::Json(m)) if m.contains("expected a JSON array"))
        );
        assert!(matches!(zipkin_v2_json(b"[{"), Err(DecodeError::Json(_))));
        assert!(matches!(
            otlp_protobuf(&[0x0a, 0xff]),
            Err(DecodeError::Protobuf(_))
        ));
    }

    /// A Zipkin v1 body (Brave's or zipkin-go's v1 encoders pointed at the
    /// v2 endpoint) is refused whole, as Zipkin's collector refuses it, so
    /// the sender sees a 400 rather than a 202 for spans that were dropped.
    #[test]
    fn zipkin_v1_bodies_are_refused() {
        let with_binary_annotations = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312",
            "name":"get","timestamp":1000,"duration":5,
            "binaryAnnotations":[{"key":"http.path","value":"/","endpoint":{"serviceName":"web"}}]}]"#;
        let core_annotations_only = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312",
            "name":"get","timestamp":1000,"duration":5,
            "annotations":[{"timestamp":1000,"value":"sr","endpoint":{"serviceName":"web","ipv4":"10.0.0.1"}},
                           {"timestamp":1005,"value":"ss","endpoint":{"serviceName":"web","ipv4":"10.0.0.1"}}]}]"#;
        for body in [&with_binary_annotations[..], &core_annotations_only[..]] {
            let e = zipkin_v2_json(body).expect_err("v1 body");
            assert!(matches!(e, DecodeError::ZipkinV1), "{e}");
            assert!(e.to_string().contains("send Zipkin v2"), "{e}");
        }
        // v2 annotations (a timestamp and a value) are not v1's.
        let v2 = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","kind":"SERVER",
            "timestamp":1000,"duration":5,"localEndpoint":{"serviceName":"web"},
            "annotations":[{"timestamp":1001,"value":"wr"}]}]"#;
        assert_eq!(zipkin_v2_json(v2).expect("v2").spans.len(), 1);
    }

    /// Kind-less spans naming both services are a client's call (Zipkin's
    /// dependency linker); Spring Boot 3's numbered JDBC query tags and the
    /// older peer address attributes are read.
    #[test]
    fn zipkin_kindless_calls_and_sender_dialects() {
        let body = br#"[
          {"traceId":"463ac35c9f6413ad","id":"0000000000000001","timestamp":1000,"duration":5,
           "localEndpoint":{"serviceName":"orders"},"remoteEndpoint":{"serviceName":"mysql","port":3306},
           "tags":{"jdbc.query[0]":"select 1"}},
          {"traceId":"463ac35c9f6413ad","id":"0000000000000002","timestamp":1000,"duration":5,
           "localEndpoint":{"serviceName":"orders"}},
          {"traceId":"463ac35c9f6413ad","id":"0000000000000003","timestamp":1000,"duration":5,
           "remoteEndpoint":{"serviceName":"mysql"}},
          {"traceId":"463ac35c9f6413ad","id":"0000000000000004","kind":"CLIENT","timestamp":1000,
           "localEndpoint":{"serviceName":"orders"},"tags":{"net.sock.peer.addr":"10.1.2.3"}}
        ]"#;
        let d = zipkin_v2_json(body).expect("v2");
        let [call, local, no_local, old_addr] = &d.spans[..] else {
            panic!("{d:?}")
        };
        assert_eq!(call.kind, Some(SpanKind::Client));
        assert_eq!(call.peer_service.as_deref(), Some("mysql"));
        assert_eq!(call.db_system.as_deref(), Some("sql"));
        assert_eq!((local.kind, no_local.kind), (None, None));
        assert_eq!(old_addr.server_address.as_deref(), Some("10.1.2.3"));
    }

    #[test]
    fn zipkin_shared_and_fallbacks() {
        let body = br#"[
          {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","kind":"CLIENT",
           "timestamp":1000,"duration":50,"localEndpoint":{"serviceName":"Frontend"},
           "remoteEndpoint":{"ipv6":"fd00::1","port":8080},"tags":{"http.status_code":"503"}},
          {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0000000000000001",
           "kind":"SERVER","shared":true,"timestamp":1010,"duration":30,
           "localEndpoint":{"serviceName":"backend"},"tags":{"http.status_code":"503"}},
          {"traceId":"463ac35c9f6413ad","id":"b","kind":"PRODUCER","timestamp":5,
           "tags":{"kafka.topic":"orders","error":""}},
          {"traceId":"463ac35c9f6413ad","id":"c","timestamp":5,"tags":{"cassandra.keyspace":"ks"}},
          {"traceId":"463ac35c9f6413ad","id":"d"},
          {"traceId":"463ac35c9f6413ad","id":"e","timestamp":-1},
          {"traceId":"463ac35c9f6413ad","id":"f","timestamp":18446744073709551,"duration":1000},
          {"traceId":"1","id":"2","timestamp":1,"binaryAnnotations":[]}
        ]"#;
        let d = zipkin_v2_json(body).unwrap();
        assert_eq!(d.spans.len(), 4, "{d:?}");
        let [c, sv, p, cass] = &d.spans[..] else {
            unreachable!()
        };
        assert_eq!(c.service, "Frontend");
        assert_eq!(c.server_address.as_deref(), Some("[fd00::1]:8080"));
        assert!(!c.error, "client 5xx alone is not an error");
        assert_eq!(c.start_unix_nanos, 1_000_000);
        assert_eq!(c.end_unix_nanos, 1_050_000);
        assert_eq!(sv.parent_span_id, Some(c.span_id));
        assert_ne!(sv.span_id, c.span_id);
        assert!(sv.error);
        // Flagged shared, its id is its own already; only an unflagged
        // server span may still turn out to share its client's.
        assert!(!sv.may_share_client_id && !c.may_share_client_id);
        let unflagged = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312",
            "parentId":"0000000000000001","kind":"SERVER","timestamp":1010,"duration":30,
            "localEndpoint":{"serviceName":"backend"}}]"#;
        let d2 = zipkin_v2_json(unflagged).unwrap();
        assert!(d2.spans[0].may_share_client_id);
        assert_eq!(d2.spans[0].span_id, c.span_id);
        assert_eq!(p.kind, Some(SpanKind::Producer));
        assert_eq!(p.service, ZIPKIN_UNKNOWN_SERVICE);
        assert_eq!(p.span_id, [0, 0, 0, 0, 0, 0, 0, 0xb]);
        assert!(p.error);
        assert_eq!(p.messaging_system.as_deref(), Some("kafka"));
        assert_eq!(p.messaging_destination.as_deref(), Some("orders"));
        assert_eq!(cass.kind, None);
        assert_eq!(cass.db_system.as_deref(), Some("cassandra"));
        assert_eq!(cass.db_name.as_deref(), Some("ks"));
        let mut rej = d.rejected.clone();
        rej.sort();
        assert_eq!(
            rej,
            vec![
                (REJECT_TIMESTAMP, 2),
                (REJECT_MISSING_TIMESTAMP, 1),
                (REJECT_ZIPKIN_V1, 1)
            ]
        );
    }
}
