//! An OTLP trace stream with the shape of a shop's call graph, for the
//! service map: a gateway fans out to services that call each other, Redis,
//! MySQL, Elasticsearch and Kafka (a consumer picks the message up in the
//! same trace); latency is log-normal with a Pareto tail, and each service
//! fails at its own small rate, which its callers see. Seeded like the rest
//! of the load generator, so a run repeats.
//!
//! Owns only the generation and the OTLP/HTTP protobuf export; what the
//! spans mean is the graph module's business.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// What a service calls, in order, each with the probability that a
/// request makes that call.
enum Call {
    Http {
        service: usize,
        route: &'static str,
    },
    Db {
        system: &'static str,
        name: &'static str,
        address: &'static str,
    },
    Publish {
        system: &'static str,
        topic: &'static str,
        consumer: usize,
    },
}

struct Service {
    name: &'static str,
    /// Median of the service's own work per request, in milliseconds.
    median_ms: f64,
    /// Share of requests that fail in this service itself.
    error_rate: f64,
    calls: &'static [(f64, Call)],
}

const GATEWAY: usize = 0;
const CART: usize = 1;
const ORDER: usize = 2;
const USER: usize = 3;
const SEARCH: usize = 4;
const INVENTORY: usize = 5;
const PAYMENT: usize = 6;
const FULFILMENT: usize = 7;

static SHOP: [Service; 8] = [
    Service {
        name: "gateway",
        median_ms: 1.0,
        error_rate: 0.0005,
        calls: &[
            (
                0.9,
                Call::Http {
                    service: USER,
                    route: "GET /api/session",
                },
            ),
            (
                0.5,
                Call::Http {
                    service: SEARCH,
                    route: "GET /api/search",
                },
            ),
            (
                0.6,
                Call::Http {
                    service: CART,
                    route: "POST /api/cart",
                },
            ),
            (
                0.3,
                Call::Http {
                    service: ORDER,
                    route: "POST /api/orders",
                },
            ),
        ],
    },
    Service {
        name: "cart",
        median_ms: 2.0,
        error_rate: 0.002,
        calls: &[
            (
                1.0,
                Call::Db {
                    system: "redis",
                    name: "0",
                    address: "redis-cart.shop.svc",
                },
            ),
            (
                0.5,
                Call::Http {
                    service: INVENTORY,
                    route: "GET /api/stock",
                },
            ),
        ],
    },
    Service {
        name: "order",
        median_ms: 4.0,
        error_rate: 0.002,
        calls: &[
            (
                1.0,
                Call::Http {
                    service: INVENTORY,
                    route: "POST /api/reserve",
                },
            ),
            (
                1.0,
                Call::Http {
                    service: PAYMENT,
                    route: "POST /api/pay",
                },
            ),
            (
                1.0,
                Call::Db {
                    system: "mysql",
                    name: "orders",
                    address: "mysql-orders.shop.svc",
                },
            ),
            (
                1.0,
                Call::Publish {
                    system: "kafka",
                    topic: "order-events",
                    consumer: FULFILMENT,
                },
            ),
        ],
    },
    Service {
        name: "user",
        median_ms: 1.5,
        error_rate: 0.001,
        calls: &[
            (
                1.0,
                Call::Db {
                    system: "redis",
                    name: "1",
                    address: "redis-sessions.shop.svc",
                },
            ),
            (
                0.2,
                Call::Db {
                    system: "mysql",
                    name: "users",
                    address: "mysql-users.shop.svc",
                },
            ),
        ],
    },
    Service {
        name: "search",
        median_ms: 3.0,
        error_rate: 0.003,
        calls: &[(
            1.0,
            Call::Db {
                system: "elasticsearch",
                name: "products",
                address: "es.shop.svc",
            },
        )],
    },
    Service {
        name: "inventory",
        median_ms: 2.0,
        error_rate: 0.002,
        calls: &[(
            1.0,
            Call::Db {
                system: "mysql",
                name: "inventory",
                address: "mysql-inventory.shop.svc",
            },
        )],
    },
    Service {
        name: "payment",
        median_ms: 25.0,
        error_rate: 0.02,
        calls: &[],
    },
    Service {
        name: "fulfilment",
        median_ms: 5.0,
        error_rate: 0.001,
        calls: &[(
            1.0,
            Call::Db {
                system: "mysql",
                name: "shipments",
                address: "mysql-orders.shop.svc",
            },
        )],
    },
];

/// Names of the services the stream's spans come from, gateway first.
pub fn service_names() -> impl Iterator<Item = &'static str> {
    SHOP.iter().map(|s| s.name)
}

/// Where the spans say they run (`k8s.cluster.name`, `k8s.namespace.name`).
pub const CLUSTER: &str = "cluster-00";
pub const NAMESPACE: &str = "shop";

/// A seeded source of whole traces.
pub struct TraceStream {
    rng: SmallRng,
    /// Spans so far, per service (index into [`SHOP`]).
    spans: Vec<Vec<Span>>,
}

impl TraceStream {
    pub fn new(seed: u64) -> TraceStream {
        TraceStream {
            rng: SmallRng::seed_from_u64(seed ^ 0x5a17_7ace),
            spans: SHOP.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// One export request holding `traces` whole traces whose roots start
    /// evenly over the `period` before `end`.
    pub fn request(
        &mut self,
        traces: usize,
        end: SystemTime,
        period: Duration,
    ) -> ExportTraceServiceRequest {
        let end_ns = end
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let step = period.as_nanos() as u64 / traces.max(1) as u64;
        let first = end_ns.saturating_sub(period.as_nanos() as u64);
        for i in 0..traces as u64 {
            let trace_id: [u8; 16] = self.rng.random();
            self.serve(
                GATEWAY,
                trace_id,
                None,
                SpanKind::Server,
                "GET /checkout",
                first + i * step,
                Vec::new(),
            );
        }
        let resource_spans = SHOP
            .iter()
            .zip(&mut self.spans)
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        attr("service.name", service.name),
                        attr("k8s.cluster.name", CLUSTER),
                        attr("k8s.namespace.name", NAMESPACE),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: std::mem::take(spans),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    /// A span of `service` handling a request from `parent`, with its own
    /// calls beneath it; returns when it ended and whether it failed.
    #[allow(clippy::too_many_arguments)]
    fn serve(
        &mut self,
        service: usize,
        trace_id: [u8; 16],
        parent: Option<[u8; 8]>,
        kind: SpanKind,
        name: &str,
        start_ns: u64,
        mut attributes: Vec<KeyValue>,
    ) -> (u64, bool) {
        let def = &SHOP[service];
        let span_id: [u8; 8] = self.rng.random();
        let mut now = start_ns + self.latency_ns(def.median_ms / 2.0);
        let mut failed = false;
        for (probability, call) in def.calls {
            if !self.rng.random_bool(*probability) {
                continue;
            }
            let (end, call_failed) = self.call(service, call, trace_id, span_id, now);
            now = end;
            failed |= call_failed;
        }
        now += self.latency_ns(def.median_ms / 2.0);
        failed |= self.rng.random_bool(def.error_rate);
        if kind == SpanKind::Server {
            attributes.push(int_attr(
                "http.response.status_code",
                if failed { 500 } else { 200 },
            ));
        }
        self.spans[service].push(span(
            trace_id, span_id, parent, kind, name, start_ns, now, failed, attributes,
        ));
        (now, failed)
    }

    /// One outgoing call of `caller` made at `start_ns` under `parent`.
    fn call(
        &mut self,
        caller: usize,
        call: &Call,
        trace_id: [u8; 16],
        parent: [u8; 8],
        start_ns: u64,
    ) -> (u64, bool) {
        let span_id: [u8; 8] = self.rng.random();
        let network = |rng: &mut SmallRng| 100_000 + rng.random_range(0..200_000u64);
        let (kind, name, end, failed, attributes) = match call {
            Call::Http { service, route } => {
                let sent = start_ns + network(&mut self.rng);
                let (answered, failed) = self.serve(
                    *service,
                    trace_id,
                    Some(span_id),
                    SpanKind::Server,
                    route,
                    sent,
                    Vec::new(),
                );
                let end = answered + network(&mut self.rng);
                let attributes = vec![
                    attr(
                        "server.address",
                        &format!("{}.{NAMESPACE}.svc", SHOP[*service].name),
                    ),
                    int_attr("http.response.status_code", if failed { 500 } else { 200 }),
                ];
                (SpanKind::Client, route.to_string(), end, failed, attributes)
            }
            Call::Db {
                system,
                name,
                address,
            } => {
                let end = start_ns + self.latency_ns(if *system == "mysql" { 3.0 } else { 0.5 });
                let failed = self.rng.random_bool(0.001);
                let attributes = vec![
                    attr("db.system", system),
                    attr("db.name", name),
                    attr("server.address", address),
                ];
                (
                    SpanKind::Client,
                    format!("{system} {name}"),
                    end,
                    failed,
                    attributes,
                )
            }
            Call::Publish {
                system,
                topic,
                consumer,
            } => {
                let end = start_ns + self.latency_ns(0.8);
                let attributes = vec![
                    attr("messaging.system", system),
                    attr("messaging.destination.name", topic),
                ];
                // The consumer picks the message up after a queueing delay,
                // in the same trace, while the producer has moved on.
                let picked_up = end + self.latency_ns(20.0);
                self.serve(
                    *consumer,
                    trace_id,
                    Some(span_id),
                    SpanKind::Consumer,
                    &format!("{topic} process"),
                    picked_up,
                    attributes.clone(),
                );
                (
                    SpanKind::Producer,
                    format!("{topic} publish"),
                    end,
                    false,
                    attributes,
                )
            }
        };
        self.spans[caller].push(span(
            trace_id,
            span_id,
            Some(parent),
            kind,
            &name,
            start_ns,
            end,
            failed,
            attributes,
        ));
        (end, failed)
    }

    /// Log-normal around `median_ms` (sigma 0.5), with one in a hundred
    /// stretched by a Pareto factor (alpha 1.5): the tail real services have.
    fn latency_ns(&mut self, median_ms: f64) -> u64 {
        let (u1, u2): (f64, f64) = (self.rng.random_range(f64::EPSILON..1.0), self.rng.random());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let mut ms = median_ms * (0.5 * normal).exp();
        if self.rng.random_bool(0.01) {
            ms *= self.rng.random_range(f64::EPSILON..1.0).powf(-1.0 / 1.5);
        }
        (ms * 1e6) as u64
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    kind: SpanKind,
    name: &str,
    start_ns: u64,
    end_ns: u64,
    failed: bool,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.to_string(),
        kind: kind as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        attributes,
        status: Some(Status {
            code: if failed {
                StatusCode::Error
            } else {
                StatusCode::Unset
            } as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn int_attr(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// Sends `traces_per_sec` traces a second to `endpoint` (OTLP/HTTP, e.g.
/// `http://127.0.0.1:9470/v1/traces`) until the task is dropped; a failed
/// export is logged and the stream goes on.
pub async fn stream(endpoint: String, traces_per_sec: usize, seed: u64) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("otlp: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut traces = TraceStream::new(seed);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let body = traces
            .request(traces_per_sec, SystemTime::now(), Duration::from_secs(1))
            .encode_to_vec();
        let sent = client
            .post(&endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("otlp: {endpoint} answered HTTP {}", r.status()),
            Err(e) => eprintln!("otlp: export to {endpoint} failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_are_whole_and_repeat_for_a_seed() {
        let end = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let a = TraceStream::new(7).request(200, end, Duration::from_secs(1));
        let b = TraceStream::new(7).request(200, end, Duration::from_secs(1));
        assert_eq!(a, b);
        let spans: Vec<&Span> = a
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect();
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 200);
        // Every parent is a span of the same trace.
        let ids: std::collections::HashSet<(&[u8], &[u8])> = spans
            .iter()
            .map(|s| (&s.trace_id[..], &s.span_id[..]))
            .collect();
        for s in &spans {
            assert!(s.end_time_unix_nano > s.start_time_unix_nano, "{}", s.name);
            if !s.parent_span_id.is_empty() {
                assert!(
                    ids.contains(&(&s.trace_id[..], &s.parent_span_id[..])),
                    "{}",
                    s.name
                );
            }
        }
        // Every service took part, and some requests failed.
        assert_eq!(a.resource_spans.len(), SHOP.len());
        let errors = spans
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .is_some_and(|st| st.code == StatusCode::Error as i32)
            })
            .count();
        assert!(
            errors > 0 && errors < spans.len() / 10,
            "{errors} of {}",
            spans.len()
        );
    }
}
