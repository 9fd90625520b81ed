//! The one span shape the graph understands, whatever the wire format
//! (OTLP protobuf/JSON, Zipkin v2). Decoders fill it; nothing else in the
//! graph knows about wire formats.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// A span reduced to what the dependency graph needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// `None` for a root span.
    pub parent_span_id: Option<[u8; 8]>,
    pub kind: Option<SpanKind>,
    /// `service.name` of the resource (Zipkin: localEndpoint.serviceName).
    pub service: String,
    /// `k8s.namespace.name` (or `service.namespace`) of the resource.
    pub namespace: Option<String>,
    /// `k8s.cluster.name` of the resource.
    pub cluster: Option<String>,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Status ERROR (OTLP), an `error` tag (Zipkin), or HTTP 5xx on a server span.
    pub error: bool,
    /// `db.system` (or its older/alternative spellings), e.g. "mysql", "redis".
    pub db_system: Option<String>,
    /// `db.name` / `db.namespace`.
    pub db_name: Option<String>,
    /// `server.address` / `net.peer.name` / Zipkin remoteEndpoint ipv4/ipv6.
    pub server_address: Option<String>,
    /// `peer.service` / Zipkin remoteEndpoint.serviceName.
    pub peer_service: Option<String>,
    /// `messaging.system`, e.g. "kafka", "rocketmq", "rabbitmq".
    pub messaging_system: Option<String>,
    /// `messaging.destination.name` (or `messaging.destination`), e.g. a topic.
    pub messaging_destination: Option<String>,
    /// `messaging.operation.type` (or `messaging.operation`): "send",
    /// "receive", "process"...; says which way a CLIENT messaging span goes.
    pub messaging_operation: Option<String>,
    /// A Zipkin SERVER span without `"shared": true`. Some B3
    /// instrumentation reuses its client's span id without the flag (and
    /// Zipkin's v1 converter cannot set it for a server reported alone);
    /// Zipkin's own trace merge reads a server span with a CLIENT span's id
    /// as shared, and so does the pairing.
    pub may_share_client_id: bool,
}

impl SpanRecord {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// A decoded batch: the valid spans, and how many were dropped and why.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Decoded {
    pub spans: Vec<SpanRecord>,
    /// (reason, count), e.g. ("missing span id", 3).
    pub rejected: Vec<(&'static str, u64)>,
}

impl Decoded {
    pub fn reject(&mut self, reason: &'static str) {
        self.reject_many(reason, 1);
    }

    pub fn reject_many(&mut self, reason: &'static str, count: u64) {
        match self.rejected.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += count,
            None => self.rejected.push((reason, count)),
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// A body that cannot be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed OTLP protobuf: {0}")]
    Protobuf(String),
    #[error("malformed Zipkin protobuf: {0}")]
    ZipkinProtobuf(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    /// Every span of a Zipkin body is in the v1 model, which Zipkin's own
    /// collector refuses on its v2 endpoint too; accepting it would drop
    /// every span behind a 202.
    #[error("Zipkin v1 JSON (binaryAnnotations, annotations with an endpoint): send Zipkin v2 (JSON or proto3) to /api/v2/spans")]
    ZipkinV1,
}
