//! Wire-format decoders (`fleetscope::graph::decode`) against fixtures, bodies
//! encoded here with opentelemetry-proto's own types, malformed and random
//! input, and spans emitted by the real OpenTelemetry Python SDK
//! (tests/otel/emit_topology.py, skipped with a note when its venv is missing).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetscope::graph::decode::{
    otlp_json, otlp_protobuf, zipkin_shared_server_span_id, zipkin_v2_json,
    REJECT_END_BEFORE_START, REJECT_PARENT_ID, REJECT_SPAN_ID, REJECT_TRACE_ID,
};
use fleetscope::graph::span::{DecodeError, Decoded, SpanKind, SpanRecord};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spans")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn hex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn by_id<'a>(d: &'a Decoded, span_id: &str) -> &'a SpanRecord {
    let id = hex::<8>(span_id);
    d.spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("no span {span_id} in {:#?}", d.spans))
}

fn sorted_rejects(d: &Decoded) -> Vec<(&'static str, u64)> {
    let mut r = d.rejected.clone();
    r.sort();
    r
}

#[test]
fn otlp_json_fixture() {
    let d = otlp_json(&fixture("otlp_shop.json")).unwrap();
    assert_eq!(d.spans.len(), 10, "{:#?}", d.spans);
    assert_eq!(
        sorted_rejects(&d),
        vec![
            (REJECT_END_BEFORE_START, 1),
            (REJECT_PARENT_ID, 1),
            (REJECT_SPAN_ID, 3),
            (REJECT_TRACE_ID, 2),
        ]
    );
    let trace = hex::<16>("0af7651916cd43dd8448eb211c80319c");

    let fe_srv = by_id(&d, "b7ad6b7169203331");
    assert_eq!(fe_srv.trace_id, trace);
    assert_eq!(fe_srv.parent_span_id, None);
    assert_eq!(fe_srv.kind, Some(SpanKind::Server));
    assert_eq!(fe_srv.service, "frontend");
    assert_eq!(
        fe_srv.namespace.as_deref(),
        Some("shop"),
        "k8s.namespace.name wins"
    );
    assert_eq!(fe_srv.cluster.as_deref(), Some("dc-01"));
    assert_eq!(fe_srv.start_unix_nanos, 1_700_000_000_000_000_000);
    assert_eq!(fe_srv.duration_nanos(), 90_000_000);
    assert!(!fe_srv.error);

    // client -> server pair: the server's parent is the client span.
    let fe_cli = by_id(&d, "00f067aa0ba902b7");
    assert_eq!(fe_cli.kind, Some(SpanKind::Client));
    assert_eq!(fe_cli.server_address.as_deref(), Some("checkout.shop.svc"));
    let co_srv = by_id(&d, "53995c3f42cd8ad8");
    assert_eq!(co_srv.kind, Some(SpanKind::Server), "enum by name");
    assert_eq!(co_srv.service, "checkout");
    assert_eq!(co_srv.parent_span_id, Some(fe_cli.span_id));
    assert_eq!(
        co_srv.start_unix_nanos, 1_700_000_000_002_000_000,
        "int64 as JSON number"
    );
    assert!(!co_srv.error);

    let db = by_id(&d, "1a2b3c4d5e6f7081");
    assert_eq!(db.kind, Some(SpanKind::Client));
    assert_eq!(db.db_system.as_deref(), Some("mysql"));
    assert_eq!(db.db_name.as_deref(), Some("orders"));
    assert_eq!(db.server_address.as_deref(), Some("mysql.shop.svc"));

    let redis = by_id(&d, "2b3c4d5e6f708192");
    assert_eq!(redis.db_system.as_deref(), Some("redis"), "db.system.name");
    assert_eq!(redis.db_name.as_deref(), Some("0"), "db.namespace");
    assert_eq!(
        redis.server_address.as_deref(),
        Some("redis-cache.shop.svc"),
        "net.peer.name"
    );
    assert_eq!(redis.peer_service.as_deref(), Some("redis-cache"));

    let prod = by_id(&d, "3c4d5e6f708192a3");
    assert_eq!(prod.kind, Some(SpanKind::Producer));
    assert_eq!(prod.messaging_system.as_deref(), Some("kafka"));
    assert_eq!(prod.messaging_destination.as_deref(), Some("stock-events"));
    let cons = by_id(&d, "4d5e6f708192a3b4");
    assert_eq!(cons.kind, Some(SpanKind::Consumer));
    assert_eq!(cons.service, "inventory");
    assert_eq!(
        cons.namespace.as_deref(),
        Some("shop"),
        "service.namespace fallback"
    );
    assert_eq!(cons.cluster, None);
    assert_eq!(cons.parent_span_id, Some(prod.span_id));
    assert_eq!(
        cons.messaging_destination.as_deref(),
        Some("stock-events"),
        "messaging.destination"
    );

    assert!(
        by_id(&d, "5e6f708192a3b4c5").error,
        "server span with 503, status unset"
    );
    let pay = by_id(&d, "a3ce929d0e0e4736");
    assert!(pay.error, "status ERROR");
    assert_eq!(pay.service, "payment");

    let unknown = by_id(&d, "eee19b7ec3c1b176");
    assert_eq!(unknown.service, "unknown_service");
    assert_eq!(unknown.kind, Some(SpanKind::Internal));
}

#[test]
fn zipkin_fixture() {
    let d = zipkin_v2_json(&fixture("zipkin_brave.json")).unwrap();
    assert_eq!(d.spans.len(), 7, "{:#?}", d.spans);
    assert_eq!(
        sorted_rejects(&d),
        vec![(REJECT_SPAN_ID, 2), (REJECT_TRACE_ID, 1)]
    );

    let mut t64 = [0u8; 16];
    t64[8..].copy_from_slice(&hex::<8>("463ac35c9f6413ad"));
    let root = by_id(&d, "463ac35c9f6413ad");
    assert_eq!(root.trace_id, t64, "64-bit trace id left-padded");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, Some(SpanKind::Server));
    assert_eq!(root.service, "frontend");
    assert_eq!(root.namespace, None);
    assert_eq!(root.start_unix_nanos, 1_700_000_000_000_000_000);
    assert_eq!(root.end_unix_nanos, 1_700_000_000_090_000_000);

    // Shared B3 span: the client keeps the id, the server gets a derived id
    // and the client as parent.
    let client_id = hex::<8>("72485a3953bb6124");
    let client: Vec<_> = d.spans.iter().filter(|s| s.span_id == client_id).collect();
    assert_eq!(client.len(), 1);
    let client = client[0];
    assert_eq!(client.kind, Some(SpanKind::Client));
    assert_eq!(client.service, "frontend");
    assert_eq!(client.peer_service.as_deref(), Some("backend"));
    assert_eq!(client.server_address.as_deref(), Some("10.1.0.9:9000"));
    assert_eq!(client.parent_span_id, Some(root.span_id));
    let server = d
        .spans
        .iter()
        .find(|s| s.kind == Some(SpanKind::Server) && s.parent_span_id == Some(client_id))
        .expect("shared server span paired with its client");
    assert_eq!(server.service, "backend");
    assert_eq!(server.span_id, zipkin_shared_server_span_id(client_id));
    assert_ne!(server.span_id, client_id);
    assert!(!server.error);

    let db = by_id(&d, "e457b5a2e4d86bd1");
    assert_eq!(db.parent_span_id, Some(client_id));
    assert_eq!(db.db_system.as_deref(), Some("sql"), "Brave sql.query");
    assert_eq!(db.peer_service.as_deref(), Some("mysql"));
    assert_eq!(db.server_address.as_deref(), Some("10.1.0.20:3306"));

    let err = by_id(&d, "5af7183fb1d4cf5f");
    assert_eq!(err.trace_id, hex::<16>("5af7183fb1d4cf5f5af7183fb1d4cf5f"));
    assert!(err.error);
    let prod = by_id(&d, "6b221d5bc9e6496c");
    assert_eq!(prod.kind, Some(SpanKind::Producer));
    assert_eq!(prod.messaging_system.as_deref(), Some("kafka"));
    assert_eq!(prod.messaging_destination.as_deref(), Some("orders"));
    assert_eq!(prod.peer_service.as_deref(), Some("kafka"));
    let cons = by_id(&d, "7c332e6cdaf75a7d");
    assert_eq!(cons.kind, Some(SpanKind::Consumer));
    assert_eq!(cons.service, "billing");
    assert_eq!(cons.parent_span_id, Some(prod.span_id));
}

// ---------------------------------------------------------------------------
// OTLP protobuf bodies built with opentelemetry-proto's types

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn sv(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}
fn iv(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", sv(service)),
            kv("k8s.namespace.name", sv("shop")),
            kv("k8s.cluster.name", sv("dc-01")),
            kv("telemetry.sdk.language", sv("rust")),
            kv("telemetry.sdk.name", sv("opentelemetry")),
            kv("telemetry.sdk.version", sv("0.33.0")),
            kv("host.name", sv("node-17")),
            kv("k8s.pod.name", sv(&format!("{service}-7d9c8b6f5-x2x4q"))),
        ],
        ..Default::default()
    })
}

fn pb_span(
    trace: [u8; 16],
    id: u64,
    parent: Option<u64>,
    kind: span::SpanKind,
    attrs: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: "op".into(),
        kind: kind as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000 + id,
        end_time_unix_nano: 1_700_000_000_000_100_000 + id,
        attributes: attrs,
        ..Default::default()
    }
}

fn request(batches: Vec<(&str, Vec<Span>)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: batches
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "test".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn shop_request() -> ExportTraceServiceRequest {
    use span::SpanKind as K;
    let t = hex::<16>("4bf92f3577b34da6a3ce929d0e0e4736");
    let mut bad = pb_span(t, 99, None, K::Internal, vec![]);
    bad.span_id = vec![1, 2, 3];
    let mut pay = pb_span(
        t,
        5,
        Some(4),
        K::Server,
        vec![kv("http.response.status_code", iv(500))],
    );
    pay.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: "declined".into(),
    });
    request(vec![
        (
            "frontend",
            vec![
                pb_span(
                    t,
                    1,
                    None,
                    K::Server,
                    vec![kv("http.response.status_code", iv(200))],
                ),
                pb_span(
                    t,
                    2,
                    Some(1),
                    K::Client,
                    vec![kv("server.address", sv("checkout.shop.svc"))],
                ),
            ],
        ),
        (
            "checkout",
            vec![
                pb_span(
                    t,
                    3,
                    Some(2),
                    K::Server,
                    vec![kv("http.response.status_code", iv(200))],
                ),
                pb_span(
                    t,
                    4,
                    Some(3),
                    K::Client,
                    vec![kv("peer.service", sv("payment"))],
                ),
                pb_span(
                    t,
                    6,
                    Some(3),
                    K::Client,
                    vec![
                        kv("db.system", sv("mysql")),
                        kv("db.name", sv("orders")),
                        kv("server.address", sv("mysql.shop.svc")),
                    ],
                ),
                pb_span(
                    t,
                    7,
                    Some(3),
                    K::Producer,
                    vec![
                        kv("messaging.system", sv("kafka")),
                        kv("messaging.destination.name", sv("stock-events")),
                    ],
                ),
                bad,
            ],
        ),
        ("payment", vec![pay]),
        (
            "inventory",
            vec![pb_span(
                t,
                8,
                Some(7),
                K::Consumer,
                vec![
                    kv("messaging.system", sv("kafka")),
                    kv("messaging.destination", sv("stock-events")),
                ],
            )],
        ),
    ])
}

#[test]
fn otlp_protobuf_body() {
    let body = shop_request().encode_to_vec();
    let d = otlp_protobuf(&body).unwrap();
    assert_eq!(d.spans.len(), 8);
    assert_eq!(d.rejected, vec![(REJECT_SPAN_ID, 1)]);
    let id = |n: u64| n.to_be_bytes();
    let get = |n: u64| d.spans.iter().find(|s| s.span_id == id(n)).unwrap();
    assert_eq!(get(1).parent_span_id, None);
    assert_eq!(get(3).parent_span_id, Some(id(2)));
    assert_eq!(get(3).service, "checkout");
    assert_eq!(get(3).namespace.as_deref(), Some("shop"));
    assert_eq!(get(3).cluster.as_deref(), Some("dc-01"));
    assert_eq!(get(4).peer_service.as_deref(), Some("payment"));
    assert!(get(5).error);
    assert_eq!(get(5).kind, Some(SpanKind::Server));
    assert_eq!(get(6).db_system.as_deref(), Some("mysql"));
    assert_eq!(get(6).db_name.as_deref(), Some("orders"));
    assert_eq!(get(6).server_address.as_deref(), Some("mysql.shop.svc"));
    assert_eq!(
        get(7).messaging_destination.as_deref(),
        Some("stock-events")
    );
    assert_eq!(
        get(8).messaging_destination.as_deref(),
        Some("stock-events")
    );
    assert_eq!(get(8).kind, Some(SpanKind::Consumer));
    assert!(d
        .spans
        .iter()
        .filter(|s| s.span_id != id(5))
        .all(|s| !s.error));
}

/// opentelemetry-proto's serde serializer writes the OTLP/JSON mapping (hex
/// ids, int64 as strings, enums as integers): our JSON decoder must read
/// exactly what the protobuf decoder reads from the same request.
#[test]
fn otlp_json_matches_protobuf_for_the_reference_serializer() {
    let req = shop_request();
    let json = serde_json::to_vec(&req).unwrap();
    let text = String::from_utf8_lossy(&json);
    assert!(
        text.contains("\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{text}"
    );
    assert_eq!(
        otlp_json(&json).unwrap(),
        otlp_protobuf(&req.encode_to_vec()).unwrap()
    );
}

#[test]
fn undecodable_bodies_are_errors_not_panics() {
    // Protobuf: a length-delimited field longer than the body; a bad wire type.
    for bad in [
        &[0x0a, 0x10, 0x01][..],
        &[0x0f][..],
        &[0x0a, 0x02, 0x12, 0x05][..],
    ] {
        match otlp_protobuf(bad) {
            Err(DecodeError::Protobuf(m)) => assert!(!m.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let json = fixture("otlp_shop.json");
    match otlp_json(&json[..json.len() / 2]) {
        Err(DecodeError::Json(m)) => assert!(m.contains("EOF"), "{m}"),
        other => panic!("{other:?}"),
    }
    match otlp_json(b"[{\"resourceSpans\":[]}]") {
        Err(DecodeError::Json(m)) => assert!(m.contains("expected an object"), "{m}"),
        other => panic!("{other:?}"),
    }
    let zipkin = fixture("zipkin_brave.json");
    match zipkin_v2_json(&zipkin[..zipkin.len() - 3]) {
        Err(DecodeError::Json(m)) => assert!(m.contains("EOF"), "{m}"),
        other => panic!("{other:?}"),
    }
    match zipkin_v2_json(br#"{"traceId":"463ac35c9f6413ad","id":"1","timestamp":1}"#) {
        Err(DecodeError::Json(m)) => assert!(m.contains("expected a JSON array"), "{m}"),
        other => panic!("{other:?}"),
    }
    // OTLP JSON sent to the protobuf decoder: an error, whatever prost makes of it.
    assert!(otlp_protobuf(&json).is_err());
    // Empty bodies: an empty protobuf message is a valid empty request; empty JSON is not JSON.
    assert_eq!(otlp_protobuf(b"").unwrap(), Decoded::default());
    assert!(otlp_json(b"").is_err());
    assert!(zipkin_v2_json(b"").is_err());
    assert_eq!(zipkin_v2_json(b"[]").unwrap(), Decoded::default());
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(8) {
        if b.is_empty() {
            b.push(rng.next() as u8);
            continue;
        }
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] = rng.next() as u8,
            1 => b[i] ^= 1 << rng.below(8),
            2 => b.truncate(i),
            3 => {
                b.remove(i);
            }
            4 => {
                const NASTY: &[u8] = b"{}[]\":,0-e\x80\xff";
                b.insert(i, NASTY[rng.below(NASTY.len())])
            }
            _ => {
                let j = rng.below(b.len());
                let (lo, hi) = (i.min(j), i.max(j));
                let chunk = b[lo..hi].to_vec();
                b.splice(i..i, chunk);
            }
        }
    }
    b
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    let seeds = [
        shop_request().encode_to_vec(),
        fixture("otlp_shop.json"),
        fixture("zipkin_brave.json"),
        serde_json::to_vec(&shop_request()).unwrap(),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded_ok = 0u64;
    for round in 0..6000 {
        let body = if round % 5 == 0 {
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        let results = [
            otlp_protobuf(&body),
            otlp_json(&body),
            zipkin_v2_json(&body),
        ];
        for d in results.iter().flatten() {
            decoded_ok += 1;
            for s in &d.spans {
                assert!(s.end_unix_nanos >= s.start_unix_nanos);
                assert!(s.trace_id.iter().any(|&b| b != 0));
                assert!(s.span_id.iter().any(|&b| b != 0));
            }
        }
    }
    assert!(decoded_ok > 0);
}

// ---------------------------------------------------------------------------
// Throughput (printed; the floor only catches a collapse, not a regression)

fn realistic_batch(n: usize, seed: u64) -> ExportTraceServiceRequest {
    use span::SpanKind as K;
    let mut spans = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&(seed + i / 8 + 1).to_be_bytes());
        trace[8..].copy_from_slice(&0xdead_beef_u64.to_be_bytes());
        let kind = [K::Server, K::Client, K::Client, K::Internal][(i % 4) as usize];
        let mut s = pb_span(
            trace,
            i + 1,
            (i % 8 != 0).then_some(i),
            kind,
            vec![
                kv("http.request.method", sv("POST")),
                kv("http.route", sv("/api/v1/orders/{id}")),
                kv(
                    "url.full",
                    sv("http://checkout.shop.svc:8080/api/v1/orders/123456?expand=items"),
                ),
                kv("server.address", sv("checkout.shop.svc")),
                kv("server.port", iv(8080)),
                kv("http.response.status_code", iv(200)),
                kv("network.protocol.version", sv("1.1")),
                kv("user_agent.original", sv("python-requests/2.32.3")),
            ],
        );
        s.name = "POST /api/v1/orders/{id}".into();
        s.status = Some(Status::default());
        spans.push(s);
    }
    request(vec![("checkout", spans)])
}

fn spans_per_sec(
    label: &str,
    bodies: &[Vec<u8>],
    decode: fn(&[u8]) -> Result<Decoded, DecodeError>,
) -> f64 {
    let mut spans = 0u64;
    let start = Instant::now();
    let mut rounds = 0;
    while rounds < 3 || start.elapsed() < Duration::from_millis(700) {
        for b in bodies {
            spans += decode(b).unwrap().spans.len() as u64;
        }
        rounds += 1;
    }
    let rate = spans as f64 / start.elapsed().as_secs_f64();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    eprintln!(
        "{label}: {:.0} spans/s ({} spans in {} bodies, {:.0} bytes/span)",
        rate,
        spans / rounds,
        bodies.len(),
        bytes as f64 / (spans / rounds) as f64
    );
    rate
}

#[test]
fn decode_throughput() {
    let reqs: Vec<_> = (0..8).map(|i| realistic_batch(512, i * 1000)).collect();
    let pb: Vec<_> = reqs.iter().map(|r| r.encode_to_vec()).collect();
    let json: Vec<_> = reqs
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let zipkin: Vec<_> = pb
        .iter()
        .map(|b| {
            let d = otlp_protobuf(b).unwrap();
            let spans: Vec<_> = d
                .spans
                .iter()
                .map(|s| {
                    let h = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
                    serde_json::json!({
                        "traceId": h(&s.trace_id), "id": h(&s.span_id),
                        "parentId": s.parent_span_id.map(|p| h(&p)),
                        "kind": "CLIENT", "name": "post /api/v1/orders/{id}",
                        "timestamp": s.start_unix_nanos / 1000, "duration": 100,
                        "localEndpoint": {"serviceName": "checkout", "ipv4": "10.1.0.9"},
                        "remoteEndpoint": {"serviceName": "orders", "ipv4": "10.1.0.10", "port": 8080},
                        "tags": {"http.method": "POST", "http.path": "/api/v1/orders/123456", "http.status_code": "200"}
                    })
                })
                .collect();
            serde_json::to_vec(&spans).unwrap()
        })
        .collect();
    let pb_rate = spans_per_sec("otlp_protobuf", &pb, otlp_protobuf);
    spans_per_sec("otlp_json", &json, otlp_json);
    spans_per_sec("zipkin_v2_json", &zipkin, zipkin_v2_json);
    if !cfg!(debug_assertions) {
        assert!(
            pb_rate > 50_000.0,
            "OTLP protobuf decode collapsed: {pb_rate:.0} spans/s"
        );
    }
}

// ---------------------------------------------------------------------------
// Real OpenTelemetry Python SDK -> OTLP/HTTP -> otlp_protobuf

fn otel_python() -> Option<PathBuf> {
    let venv = std::env::var_os("FLEETSCOPE_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("FLEETSCOPE_CACHE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fleetscope"))
                })?;
            Some(cache.join("venv"))
        })?;
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk.trace, opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

/// A minimal OTLP/HTTP receiver: records each POST body (gunzipped) and
/// answers 200 with an empty ExportTraceServiceResponse.
fn spawn_receiver() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let b = b.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(conn, &b);
            });
        }
    });
    (url, bodies)
}

fn serve_connection(conn: TcpStream, bodies: &Mutex<Vec<Vec<u8>>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if r.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let (mut len, mut gzip) = (0usize, false);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap_or(0),
                    "content-encoding" => gzip = v.trim().eq_ignore_ascii_case("gzip"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
            body = plain;
        }
        if request_line.starts_with("POST /v1/traces ") {
            bodies.lock().unwrap().push(body);
            w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")?;
        } else {
            w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
    }
}

/// Edges the way the graph will pair spans: CLIENT -> SERVER child (http),
/// CLIENT with db_system and no SERVER child (db, named by server_address),
/// PRODUCER -> CONSUMER child (messaging).
fn edges(spans: &[SpanRecord]) -> BTreeMap<(String, String, &'static str), (u64, u64)> {
    let mut children: HashMap<([u8; 16], [u8; 8]), Vec<&SpanRecord>> = HashMap::new();
    for s in spans {
        if let Some(p) = s.parent_span_id {
            children.entry((s.trace_id, p)).or_default().push(s);
        }
    }
    let child = |s: &SpanRecord, kind: SpanKind| {
        children
            .get(&(s.trace_id, s.span_id))
            .and_then(|c| c.iter().find(|c| c.kind == Some(kind)).copied())
    };
    let mut out = BTreeMap::new();
    for s in spans {
        let edge = match s.kind {
            Some(SpanKind::Client) => match child(s, SpanKind::Server) {
                Some(srv) => Some((srv.service.clone(), "http", srv.error)),
                None if s.db_system.is_some() => {
                    let to = s.server_address.clone().or(s.db_system.clone()).unwrap();
                    Some((to, "db", s.error))
                }
                None => None,
            },
            Some(SpanKind::Producer) => child(s, SpanKind::Consumer)
                .map(|c| (c.service.clone(), "messaging", s.error || c.error)),
            _ => None,
        };
        if let Some((to, kind, error)) = edge {
            let e: &mut (u64, u64) = out.entry((s.service.clone(), to, kind)).or_default();
            e.0 += 1;
            e.1 += u64::from(error);
        }
    }
    out
}

#[test]
fn otel_python_sdk_topology_decodes() {
    let Some(python) = otel_python() else {
        eprintln!(
            "SKIPPED otel_python_sdk_topology_decodes: no venv with opentelemetry-sdk \
             (run scripts/test-deps.sh, or set FLEETSCOPE_VENV)"
        );
        if std::env::var_os("FLEETSCOPE_REQUIRE_OTEL_PYTHON").is_some() {
            panic!("FLEETSCOPE_REQUIRE_OTEL_PYTHON is set but the OTel Python SDK is missing");
        }
        return;
    };
    let (url, bodies) = spawn_receiver();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otel/emit_topology.py");
    let iterations = 30u64;
    let out = Command::new(&python)
        .arg(&script)
        .arg(&url)
        .arg(iterations.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "emit_topology.py failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let bodies = bodies.lock().unwrap().clone();
    assert!(!bodies.is_empty());
    let mut spans = Vec::new();
    for b in &bodies {
        let d = otlp_protobuf(b).unwrap();
        assert_eq!(d.rejected, vec![], "SDK spans rejected");
        spans.extend(d.spans);
    }
    assert_eq!(spans.len() as u64, summary["spans"].as_u64().unwrap());
    assert_eq!(spans.len() as u64, 8 * iterations);
    for s in &spans {
        assert_eq!(s.namespace.as_deref(), Some("shop"), "{s:?}");
        assert_eq!(s.cluster.as_deref(), Some("dc-01"), "{s:?}");
        assert!(s.start_unix_nanos > 0 && s.end_unix_nanos >= s.start_unix_nanos);
    }
    let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &spans {
        *by_service.entry(s.service.as_str()).or_default() += 1;
    }
    for (svc, n) in summary["spans_by_service"].as_object().unwrap() {
        assert_eq!(
            by_service.get(svc.as_str()).copied(),
            n.as_u64(),
            "spans of {svc}"
        );
    }

    let got = edges(&spans);
    let mut want = BTreeMap::new();
    for e in summary["edges"].as_array().unwrap() {
        let kind = match e["kind"].as_str().unwrap() {
            "http" => "http",
            "db" => "db",
            "messaging" => "messaging",
            k => panic!("unknown edge kind {k}"),
        };
        want.insert(
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
                kind,
            ),
            (
                e["requests"].as_u64().unwrap(),
                e["errors"].as_u64().unwrap(),
            ),
        );
    }
    assert_eq!(got, want);
    assert_eq!(
        want[&("checkout".into(), "payment".into(), "http")],
        (iterations, iterations / 10)
    );

    let db = spans.iter().find(|s| s.db_system.is_some()).unwrap();
    assert_eq!(db.db_system.as_deref(), Some("mysql"));
    assert_eq!(db.db_name.as_deref(), Some("orders"));
    let prod = spans
        .iter()
        .find(|s| s.kind == Some(SpanKind::Producer))
        .unwrap();
    assert_eq!(prod.messaging_system.as_deref(), Some("kafka"));
    assert_eq!(prod.messaging_destination.as_deref(), Some("stock-events"));
}
