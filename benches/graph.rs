//! Service-graph throughput: pairing and edge statistics from decoded spans,
//! and OTLP protobuf decode plus pairing end to end.
//!
//! Span mix per trace (8 spans, 5 services): frontend SERVER (root),
//! frontend CLIENT -> checkout SERVER, checkout CLIENT -> payment SERVER,
//! checkout CLIENT to MySQL, checkout PRODUCER -> inventory CONSUMER on Kafka.
//! Each service's spans come in their own resource, as SDKs send them.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fleetscope::graph::decode::otlp_protobuf;
use fleetscope::graph::pairing::PairingConfig;
use fleetscope::graph::LiveGraph;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use prost::Message;

const TRACES: u64 = 10_000;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn span(trace: u64, id: u64, parent: Option<u64>, kind: SpanKind, attrs: Vec<KeyValue>) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[8..].copy_from_slice(&(trace + 1).to_be_bytes());
    let start = 1_700_000_000_000_000_000 + trace * 1_000_000;
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (trace * 16 + id).to_be_bytes().to_vec(),
        parent_span_id: parent
            .map(|p| (trace * 16 + p).to_be_bytes().to_vec())
            .unwrap_or_default(),
        name: "op".into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 5_000_000 + (id * 997_331 % 40_000_000),
        attributes: attrs,
        ..Default::default()
    }
}

fn request() -> ExportTraceServiceRequest {
    let services = ["frontend", "checkout", "payment", "inventory"];
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services.len()];
    for t in 0..TRACES {
        by_service[0].push(span(
            t,
            1,
            None,
            SpanKind::Server,
            vec![kv("http.route", "/checkout")],
        ));
        by_service[0].push(span(
            t,
            2,
            Some(1),
            SpanKind::Client,
            vec![kv("server.address", "checkout")],
        ));
        by_service[1].push(span(
            t,
            3,
            Some(2),
            SpanKind::Server,
            vec![kv("http.route", "/api/checkout")],
        ));
        by_service[1].push(span(
            t,
            4,
            Some(3),
            SpanKind::Client,
            vec![kv("server.address", "payment")],
        ));
        by_service[2].push(span(
            t,
            5,
            Some(4),
            SpanKind::Server,
            vec![kv("http.route", "/api/pay")],
        ));
        by_service[1].push(span(
            t,
            6,
            Some(3),
            SpanKind::Client,
            vec![
                kv("db.system", "mysql"),
                kv("db.name", "orders"),
                kv("server.address", "mysql.shop.svc"),
            ],
        ));
        by_service[1].push(span(
            t,
            7,
            Some(3),
            SpanKind::Producer,
            vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "stock-events"),
            ],
        ));
        by_service[3].push(span(
            t,
            8,
            Some(7),
            SpanKind::Consumer,
            vec![
                kv("messaging.system", "kafka"),
                kv("messaging.destination.name", "stock-events"),
            ],
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: services
            .iter()
            .zip(by_service)
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", service),
                        kv("k8s.namespace.name", "shop"),
                        kv("k8s.cluster.name", "dc-01"),
                        kv("telemetry.sdk.language", "python"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

fn graph(c: &mut Criterion) {
    let body = request().encode_to_vec();
    let spans = otlp_protobuf(&body).expect("decodes").spans;
    let n = spans.len() as u64;
    let mut group = c.benchmark_group("service_graph");
    group.throughput(Throughput::Elements(n));
    group.sample_size(20);
    group.bench_function("pair_and_aggregate_decoded_spans", |b| {
        b.iter_batched(
            || (spans.clone(), LiveGraph::new(PairingConfig::default())),
            |(spans, mut g)| {
                g.ingest(spans, 1_700_000_000_000_000_000);
                g
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("otlp_protobuf_decode_pair_aggregate", |b| {
        b.iter_batched(
            || LiveGraph::new(PairingConfig::default()),
            |mut g| {
                let decoded = otlp_protobuf(&body).expect("decodes");
                g.ingest(decoded.spans, 1_700_000_000_000_000_000);
                g
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, graph);
criterion_main!(benches);
