//! The service map end to end: the real OpenTelemetry Python SDK emits a
//! known topology to the real `fleetscope` binary over OTLP/HTTP; the graph
//! fleetscope answers must equal that topology. Bad bodies are rejected
//! clearly, and a real Alertmanager delivers an alert through its webhook
//! that ends up attached to the service it names.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn venv_python() -> std::path::PathBuf {
    let python = test_venv_python();
    assert!(
        python.exists(),
        "{} missing: run scripts/test-deps.sh (installs the OpenTelemetry SDK)",
        python.display()
    );
    python
}

/// (source, target) -> (requests, errors, async) as the native API reports them.
async fn edges(fs: &Fleetscope) -> BTreeMap<(String, String), (u64, u64, bool)> {
    let now = unix_now();
    let v = fs
        .get_json(&format!(
            "/api/v1/servicemap?start={}&end={}",
            now - 900,
            now + 120
        ))
        .await;
    v["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                (
                    e["source"].as_str().unwrap_or("").to_string(),
                    e["target"].as_str().unwrap_or("").to_string(),
                ),
                (
                    e["requests"].as_u64().unwrap_or(0),
                    e["errors"].as_u64().unwrap_or(0),
                    e["kind"] == "async",
                ),
            )
        })
        .collect()
}

fn expected_edges(summary: &Value) -> BTreeMap<(String, String), (u64, u64, bool)> {
    let svc = |name: &str| format!("dc-01/shop/{name}");
    let n = summary["iterations"].as_u64().expect("iterations");
    let mut want = BTreeMap::from([(("user".to_string(), svc("frontend")), (n, 0, false))]);
    for e in summary["edges"].as_array().expect("edges") {
        let (from, to) = (
            e["from"].as_str().unwrap_or(""),
            e["to"].as_str().unwrap_or(""),
        );
        let (req, err) = (
            e["requests"].as_u64().unwrap_or(0),
            e["errors"].as_u64().unwrap_or(0),
        );
        match e["kind"].as_str() {
            Some("http") => {
                want.insert((svc(from), svc(to)), (req, err, false));
            }
            Some("db") => {
                let target = format!(
                    "{}://{to}/{}",
                    e["db_system"].as_str().unwrap_or(""),
                    e["db_name"].as_str().unwrap_or("")
                );
                want.insert((svc(from), target), (req, err, false));
            }
            Some("messaging") => {
                let queue = format!(
                    "{}://{}",
                    e["messaging_system"].as_str().unwrap_or(""),
                    e["destination"].as_str().unwrap_or("")
                );
                want.insert((svc(from), queue.clone()), (req, err, true));
                want.insert((queue, svc(to)), (req, err, true));
            }
            other => panic!("unknown edge kind {other:?}"),
        }
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_topology_is_the_graph() {
    topology_is_the_graph(Otlp::Http).await;
}

/// The same SDK through its OTLP/gRPC exporter (grpcio, gzip, clear text),
/// to the API's own port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_topology_over_grpc_is_the_graph() {
    topology_is_the_graph(Otlp::Grpc).await;
}

#[derive(Clone, Copy)]
enum Otlp {
    Http,
    Grpc,
}

async fn topology_is_the_graph(protocol: Otlp) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\npairing_wait = \"2s\"\n",
    )
    .await;
    let out = Command::new(venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/otel/emit_topology.py"
        ))
        .args(match protocol {
            Otlp::Http => [fs.url("/v1/traces"), "50".into(), "http".into()],
            Otlp::Grpc => [fs.url(""), "50".into(), "grpc".into()],
        })
        .stderr(Stdio::inherit())
        .output()
        .expect("run the OpenTelemetry SDK script");
    assert!(out.status.success(), "emit_topology.py failed");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    let want = expected_edges(&summary);
    let got = eventually(
        Duration::from_secs(30),
        "the graph to match the topology",
        || {
            let (fs, want) = (&fs, &want);
            async move {
                let got = edges(fs).await;
                (&got == want).then_some(got)
            }
        },
    )
    .await;
    assert_eq!(got.len(), 6);

    // The same answer as Grafana Node Graph frames.
    let now = unix_now();
    let body = json!({
        "range": {"from": chrono_like(now - 900), "to": chrono_like(now + 120)},
        "targets": [
            {"refId": "A", "target": "service_map", "payload": {"namespace": "shop"}},
            // As the plugin sends `"node": "$node"` in builder mode: the
            // value in Grafana's regex format (`escapeRegex`).
            {"refId": "B", "target": "blast_radius", "payload": {"node": r"mysql:\/\/mysql\.shop\.svc\/orders"}},
            {"refId": "C", "target": "service_focus", "payload": {"node": "dc-01/shop/inventory", "hops": 1}}
        ]
    });
    let frames: Vec<Value> = http()
        .post(fs.url("/grafana/query"))
        .json(&body)
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("frames");
    let of = |ref_id: &str, name: &str| {
        frames
            .iter()
            .find(|f| f["refId"] == ref_id && f["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("frame {ref_id}/{name} in {frames:?}"))
    };
    let column = |frame: &Value, field: &str| -> Vec<Value> {
        frame["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|x| x["name"] == field))
            .and_then(|x| x["values"].as_array().cloned())
            .unwrap_or_else(|| panic!("field {field}"))
    };
    let nodes = of("A", "nodes");
    assert_eq!(nodes["meta"]["preferredVisualisationType"], "nodeGraph");
    let ids: Vec<String> = column(&nodes, "id")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "dc-01/shop/checkout",
            "dc-01/shop/frontend",
            "dc-01/shop/inventory",
            "dc-01/shop/payment",
            "kafka://stock-events",
            "mysql://mysql.shop.svc/orders",
            "user"
        ]
    );
    for (ok, err) in column(&nodes, "arc__ok")
        .iter()
        .zip(column(&nodes, "arc__err"))
    {
        let sum = ok.as_f64().unwrap_or(0.0) + err.as_f64().unwrap_or(0.0);
        assert!((sum - 1.0).abs() < 1e-9, "arcs sum to 1");
    }
    let payment = ids
        .iter()
        .position(|i| i == "dc-01/shop/payment")
        .expect("payment");
    assert!(
        (column(&nodes, "arc__err")[payment].as_f64().unwrap_or(0.0) - 0.1).abs() < 1e-9,
        "1 in 10 payment calls fail"
    );
    assert_eq!(
        column(&nodes, "detail__health")[payment],
        "degraded",
        "10% is degraded (failing is above 10%)"
    );
    let edges_frame = of("A", "edges");
    let dashed: Vec<(String, String)> = column(&edges_frame, "id")
        .iter()
        .zip(column(&edges_frame, "strokeDasharray"))
        .filter(|(_, d)| !d.as_str().unwrap_or("").is_empty())
        .map(|(id, d)| {
            (
                id.as_str().unwrap_or("").to_string(),
                d.as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        dashed.len(),
        2,
        "the two queue edges are dashed: {dashed:?}"
    );
    // Blast radius of the database: checkout calls it, frontend calls
    // checkout, users call frontend; inventory and payment are not callers.
    let blast: Vec<String> = column(&of("B", "nodes"), "id")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        blast,
        [
            "dc-01/shop/checkout",
            "dc-01/shop/frontend",
            "mysql://mysql.shop.svc/orders",
            "user"
        ]
    );
    let focus: Vec<String> = column(&of("C", "nodes"), "id")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(focus, ["dc-01/shop/inventory", "kafka://stock-events"]);
    assert!(fs.proc.terminate().success());
}

fn chrono_like(secs: i64) -> String {
    // RFC 3339 in UTC without pulling a date crate into the test.
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_span_bodies_are_rejected_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\nmax_body_bytes = 1048576\n",
    )
    .await;
    let client = http();
    let post = |path: &str, ct: &str, body: Vec<u8>| {
        client
            .post(fs.url(path))
            .header("Content-Type", ct.to_string())
            .body(body)
            .send()
    };
    let r = post(
        "/v1/traces",
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff, 0x0f, 0x12],
    )
    .await
    .expect("req");
    // OTLP/HTTP failures carry a google.rpc.Status in the request's encoding.
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let status = <RpcStatus as prost::Message>::decode(r.bytes().await.expect("body"))
        .expect("a google.rpc.Status");
    assert_eq!(status.code, 3, "INVALID_ARGUMENT");
    assert!(status.message.contains("protobuf"), "{status:?}");
    let r = post(
        "/v1/traces",
        "application/json",
        br#"{"resourceSpans": [{"resource": "#.to_vec(),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json Status");
    assert_eq!(v["code"], 3, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    // Encodings and media types it cannot read are refused as such.
    let r = client
        .post(fs.url("/v1/traces"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "zstd")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 415);
    let r = post("/v1/traces", "text/plain", b"hello".to_vec())
        .await
        .expect("req");
    assert_eq!(r.status(), 415);
    let r = post("/api/v2/spans", "application/x-thrift", vec![0x0c, 0x00])
        .await
        .expect("req");
    assert_eq!(r.status(), 415);
    let r = post(
        "/api/v2/spans",
        "application/json",
        br#"[{"traceId": "#.to_vec(),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 400);
    // Zipkin v1 spans on the v2 endpoint: refused whole, as Zipkin's own
    // collector refuses them, so the sender learns to switch encoders.
    let r = post(
        "/api/v2/spans",
        "application/json",
        br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","name":"get","timestamp":1,
             "annotations":[{"timestamp":1,"value":"sr","endpoint":{"serviceName":"web"}}]}]"#
            .to_vec(),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 400);
    let why = r.text().await.expect("body");
    assert!(why.contains("Zipkin v1"), "{why}");
    // 2 MiB over a 1 MiB limit; and a gzip body that inflates past it. The
    // server answers 413 from Content-Length without reading the body, so
    // the client may still be writing when the connection closes: a 413 or
    // a broken pipe are both a refusal; acceptance would be a 2xx.
    match post("/v1/traces", "application/x-protobuf", vec![0u8; 2 << 20]).await {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "refused while sending: {e}"),
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&vec![b'{'; 8 << 20]).expect("gzip");
    let r = client
        .post(fs.url("/v1/traces"))
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 413);
    // Spans with missing ids or start times, or that start an hour ahead of
    // the clock (a skewed host, or nanoseconds sent as Zipkin's
    // microseconds), are dropped and reported; the valid one counts.
    let hour_ahead = ((unix_now() + 3600) as u64 * 1_000_000_000).to_string();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": "", "spanId": "0102030405060708", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
            {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060709", "kind": 2},
            {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "010203040506070a", "kind": 2, "startTimeUnixNano": hour_ahead, "endTimeUnixNano": hour_ahead},
            {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
        ]}]
    }]});
    let r = post(
        "/v1/traces",
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
    .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "3", "{v}");
    let why = v["partialSuccess"]["errorMessage"].as_str().unwrap_or("");
    for reason in [
        "invalid trace id",
        "missing timestamp",
        "ahead of the collector's clock",
    ] {
        assert!(why.contains(reason), "{reason:?} in {why:?}");
    }
    let metrics = fs.self_metrics().await;
    assert!(
        metrics.contains("fleetscope_spans_received_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("fleetscope_spans_rejected_total{reason="),
        "{metrics}"
    );
    // Zipkin's proto3 encoding (Brave's PROTO3, Envoy's HTTP_PROTO): a
    // ListOfSpans of one span, encoded by hand from zipkin.proto's field
    // numbers: trace_id (1), id (3), kind (4) SERVER, timestamp (6).
    let mut span = vec![0x0a, 16];
    span.extend(1u8..=16);
    span.extend([0x1a, 8]);
    span.extend(1u8..=8);
    span.extend([0x20, 2, 0x31]);
    span.extend(1_700_000_000_000_000u64.to_le_bytes());
    let mut list = vec![0x0a, span.len() as u8];
    list.extend(span);
    let r = post("/api/v2/spans", "application/x-protobuf", list)
        .await
        .expect("req");
    assert_eq!(r.status(), 202);
    let r = post("/api/v2/spans", "application/x-protobuf", vec![0x0a, 0xff])
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    let metrics = fs.self_metrics().await;
    assert!(
        metrics.contains("fleetscope_spans_received_total 2"),
        "{metrics}"
    );
    // The process is still healthy.
    assert_eq!(
        client
            .get(fs.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert!(fs.proc.terminate().success());
}

/// A real Alertmanager (Debian's prometheus-alertmanager) sends alerts to
/// fleetscope's events endpoint through its webhook receiver: each is
/// attached to the workload its labels name (a kube-state-metrics alert to
/// its pod's workload, not to kube-state-metrics), one that names none is
/// no failed notification, an alert that fired hours ago and still fires
/// is in a view of the last minutes, and its resolution ends it: the
/// notifications of one alert read back as one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_attaches_alerts_to_services() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(dir.path(), "self_scrape = false\n").await;
    let am_port = free_port();
    let config = format!(
        "route:\n  receiver: fleetscope\n  group_by: ['alertname']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: fleetscope\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n",
        fs.url("/api/v1/events")
    );
    let am_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(am_dir.path().join("am.yml"), config).expect("write");
    let mut cmd = Command::new("prometheus-alertmanager");
    cmd.arg(format!(
        "--config.file={}",
        am_dir.path().join("am.yml").display()
    ))
    .arg(format!(
        "--storage.path={}",
        am_dir.path().join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
    .arg("--cluster.listen-address=")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let _am = Proc::spawn("prometheus-alertmanager", &mut cmd);
    let am = format!("http://127.0.0.1:{am_port}");
    wait_http_ok(&format!("{am}/-/ready")).await;
    let started = chrono_like(unix_now() - 30);
    let burn_labels = json!({"alertname": "PaymentErrorBudgetBurn", "severity": "critical", "service": "payment", "namespace": "shop", "cluster": "dc-01"});
    let crashloop_labels = json!({"alertname": "KubePodCrashLooping", "severity": "warning",
        "namespace": "shop", "cluster": "dc-01", "pod": "cart-7d9f8c6b5-x2x9z", "container": "cart",
        "job": "kube-state-metrics", "service": "kube-prometheus-stack-kube-state-metrics"});
    let post_alerts = |alerts: Value| {
        let am = am.clone();
        async move {
            let r = http()
                .post(format!("{am}/api/v2/alerts"))
                .json(&alerts)
                .send()
                .await
                .expect("post alert");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    post_alerts(json!([
        {"labels": burn_labels, "annotations": {"summary": "payment 5xx above 10% for 5m"}, "startsAt": started},
        // Firing for three hours already.
        {"labels": crashloop_labels, "annotations": {"description": "cart restarts"},
         "startsAt": chrono_like(unix_now() - 3 * 3600)},
        {"labels": {"alertname": "Watchdog", "severity": "none"}, "startsAt": started},
    ]))
    .await;
    let events_of = |node: &'static str| {
        let fs = &fs;
        async move {
            let now = unix_now();
            let v = fs
                .get_json(&format!(
                    "/api/v1/views/service_events?node={node}&start={}&end={}",
                    now - 600,
                    now + 60
                ))
                .await;
            v["rows"].as_array().cloned().unwrap_or_default()
        }
    };
    let events = eventually(Duration::from_secs(30), "the alert to arrive", || async {
        let rows = events_of("dc-01/shop/payment").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], "PaymentErrorBudgetBurn");
    assert_eq!(events[0]["source"], "alert");
    assert_eq!(events[0]["severity"], "critical");
    assert_eq!(events[0]["message"], "payment 5xx above 10% for 5m");
    assert!(events[0]["end_ms"].is_null(), "still firing: {events:?}");
    let cart = events_of("dc-01/shop/cart").await;
    assert_eq!(cart.len(), 1, "the pod's alert, on its workload: {cart:?}");
    assert_eq!(cart[0]["reason"], "KubePodCrashLooping");
    assert_eq!(cart[0]["message"], "cart restarts");
    // The same alert through the plugin's legacy annotations endpoint.
    let now = unix_now();
    let annotations: Vec<Value> = http()
        .post(fs.url("/grafana/annotations"))
        .json(&json!({
            "annotation": {"name": "alerts", "enable": true, "query": "dc-01/shop/payment"},
            "range": {"from": chrono_like(now - 600), "to": chrono_like(now + 60)}
        }))
        .send()
        .await
        .expect("annotations")
        .json()
        .await
        .expect("json");
    assert_eq!(annotations.len(), 1, "{annotations:?}");
    assert_eq!(annotations[0]["title"], "PaymentErrorBudgetBurn");

    // Resolved in Alertmanager: the resolution ends the one event.
    post_alerts(json!([{"labels": burn_labels, "startsAt": started,
        "endsAt": chrono_like(unix_now() - 1)}]))
    .await;
    let resolved = eventually(
        Duration::from_secs(30),
        "the resolution to arrive",
        || async {
            let rows = events_of("dc-01/shop/payment").await;
            rows.iter().any(|r| !r["end_ms"].is_null()).then_some(rows)
        },
    )
    .await;
    assert_eq!(
        resolved.len(),
        1,
        "one alert, not a row per notification: {resolved:?}"
    );
    assert_eq!(resolved[0]["severity"], "critical");
    // Every notification (the Watchdog's included) was taken.
    let metrics = http()
        .get(format!("{am}/metrics"))
        .send()
        .await
        .expect("alertmanager metrics")
        .text()
        .await
        .expect("text");
    let failed: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("alertmanager_notifications_failed_total{") && l.contains("webhook")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(failed, 0.0, "failed webhook notifications");
    assert!(fs.proc.terminate().success());
}

/// The load generator's trace stream, both real binaries:
/// `fleetscope-loadgen --otlp-endpoint` sends a shop's traces over OTLP/HTTP
/// and the service map shows its call graph with the databases and the
/// Kafka hop between producer and consumer, and the payment failures the
/// stream injects as errors on the edge into payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_trace_stream_builds_the_shop_graph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\npairing_wait = \"2s\"\n",
    )
    .await;
    let endpoint = fs.url("/v1/traces");
    let _loadgen = Proc::spawn(
        "fleetscope-loadgen",
        Command::new(env!("CARGO_BIN_EXE_fleetscope-loadgen")).args([
            "--clusters",
            "1",
            "--nodes",
            "1",
            "--pods-per-node",
            "1",
            "--port",
            "0",
            "--single-address",
            "--otlp-endpoint",
            &endpoint,
            "--traces-per-sec",
            "200",
        ]),
    );
    let svc = |name: &str| format!("cluster-00/shop/{name}");
    let order_to_payment = (svc("order"), svc("payment"));
    let kafka_to_fulfilment = ("kafka://order-events".to_string(), svc("fulfilment"));
    let want = [
        (svc("gateway"), svc("order")),
        (svc("gateway"), svc("cart")),
        (svc("cart"), "redis://redis-cart.shop.svc".to_string()),
        (
            svc("order"),
            "mysql://mysql-orders.shop.svc/orders".to_string(),
        ),
        (svc("order"), "kafka://order-events".to_string()),
        kafka_to_fulfilment.clone(),
        order_to_payment.clone(),
    ];
    let got = eventually(
        Duration::from_secs(60),
        "the shop's edges, with payment errors",
        || {
            let (fs, want, order_to_payment) = (&fs, &want, &order_to_payment);
            async move {
                let got = edges(fs).await;
                let complete = want.iter().all(|edge| got.contains_key(edge));
                let errors = got.get(order_to_payment).is_some_and(|e| e.1 > 0);
                (complete && errors).then_some(got)
            }
        },
    )
    .await;
    let (requests, errors, _) = got[&order_to_payment];
    // 2 % of payments fail in the stream; far fewer than all of them.
    assert!(
        requests > 10 * errors,
        "{requests} requests, {errors} errors"
    );
    assert!(got[&kafka_to_fulfilment].2, "the Kafka hop is asynchronous");
    assert!(
        !got.contains_key(&(svc("payment"), svc("order"))),
        "no edge against the call direction"
    );
}

/// Zipkin server spans that reuse their client's id without
/// `"shared": true` (B3 instrumentation inconsistent about the flag, as
/// Zipkin's own trace merge allows for) make one client-to-server edge,
/// whichever half is posted first, not a call from an unknown user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_unflagged_shared_spans_pair_with_their_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\npairing_wait = \"2s\"\n",
    )
    .await;
    let micros = unix_now() * 1_000_000;
    let span = |trace: &str, kind: &str, service: &str| {
        json!({
            "traceId": trace, "id": "a2fb4a1d1a96d312", "parentId": "0020000000000001",
            "kind": kind, "name": "get /cart", "timestamp": micros, "duration": 2_000,
            "localEndpoint": {"serviceName": service}
        })
    };
    let client = http();
    let post = |spans: Value| {
        client
            .post(fs.url("/api/v2/spans"))
            .header("Content-Type", "application/json")
            .body(spans.to_string())
            .send()
    };
    // Client first in one trace, server first in the other.
    for spans in [
        json!([span("463ac35c9f6413ad", "CLIENT", "frontend")]),
        json!([span("463ac35c9f6413ad", "SERVER", "cart")]),
        json!([span("5af7183fb1d4cf5f", "SERVER", "cart")]),
        json!([span("5af7183fb1d4cf5f", "CLIENT", "frontend")]),
    ] {
        let r = post(spans).await.expect("post");
        assert_eq!(r.status(), 202);
    }
    let call = ("//frontend".to_string(), "//cart".to_string());
    let got = eventually(Duration::from_secs(90), "frontend -> cart", || {
        let (fs, call) = (&fs, &call);
        async move {
            let got = edges(fs).await;
            got.contains_key(call).then_some(got)
        }
    })
    .await;
    assert_eq!(got[&call], (2, 0, false), "{got:?}");
    // Nothing waits on: no unpaired half becomes another edge.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = edges(&fs).await;
    assert_eq!(got.len(), 1, "{got:?}");
}

/// OTLP/gRPC answers in gRPC statuses: a message that is not protobuf is
/// INVALID_ARGUMENT (not retried); one that inflates past the limit, or is
/// over it as sent, is refused with a status that names the limit; an empty
/// export is OK; one with a span missing its ids is a partial success
/// naming the rejected span. Sent with grpcio's generic client
/// (tests/otel/grpc_export_raw.py), bytes as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_failures_are_grpc_statuses() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\nmax_body_bytes = 16384\n",
    )
    .await;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let no_ids = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    name: "no ids".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let out = Command::new(venv_python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/otel/grpc_export_raw.py"
        ))
        .arg(fs.addr.to_string())
        .args([
            hex(&[0xff, 0xff, 0xff, 0x0f, 0x12]),
            hex(&vec![0u8; 40_000]),
            String::new(),
            hex(&no_ids.encode_to_vec()),
            format!("plain:{}", hex(&vec![7u8; 20_000])),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("run grpc_export_raw.py");
    assert!(out.status.success(), "grpc_export_raw.py failed");
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(answers.len(), 5, "{answers:?}");
    // A refusal: one of the codes, and details that name the cause.
    let refused = |answer: &Value, codes: &[&str], cause: &str| {
        assert!(
            codes.contains(&answer["code"].as_str().unwrap_or("")),
            "{answer}"
        );
        assert!(
            answer["details"]
                .as_str()
                .is_some_and(|d| d.contains(cause)),
            "{answer}"
        );
    };
    refused(&answers[0], &["INVALID_ARGUMENT"], "protobuf");
    refused(&answers[1], &["RESOURCE_EXHAUSTED"], "16384");
    assert_eq!(answers[2]["code"], "OK", "{}", answers[2]);
    assert_eq!(answers[2]["response_hex"], "", "an empty response");
    assert_eq!(answers[3]["code"], "OK", "{}", answers[3]);
    let response_hex = answers[3]["response_hex"].as_str().unwrap_or("");
    let response_bytes: Vec<u8> = (0..response_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&response_hex[i..i + 2], 16).expect("hex"))
        .collect();
    let response =
        ExportTraceServiceResponse::decode(&response_bytes[..]).expect("an export response");
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1, "{partial:?}");
    assert!(!partial.error_message.is_empty());
    // Over the limit as sent: refused from its length prefix, in a gRPC
    // status (an HTTP 413 would reach the exporter as UNKNOWN).
    refused(
        &answers[4],
        &["RESOURCE_EXHAUSTED", "OUT_OF_RANGE"],
        "16384",
    );
    let metrics = fs.self_metrics().await;
    assert!(
        metrics.contains("fleetscope_spans_rejected_total{reason=\"undecodable_body\"} 1"),
        "{metrics}"
    );
}

/// POSTs `body` to `/api/v1/events{query}`; the answer of its 202.
async fn post_events(fs: &Fleetscope, query: &str, body: &Value) -> Value {
    let r = http()
        .post(fs.url(&format!("/api/v1/events{query}")))
        .json(body)
        .send()
        .await
        .expect("post events");
    assert_eq!(r.status(), 202);
    r.json().await.expect("json")
}

/// Kubernetes Event objects as Kubernetes writes them: an EventList as
/// `kubectl get events -o json` prints it (core/v1, with one events.k8s.io/v1
/// event as newer components record them) and one event as
/// kubernetes-event-exporter's webhook posts it (with `clusterName`). Each
/// is attached to the workload of the object it is about. The list posted
/// again, one object updated, still reads as one event per object, lasting
/// from its first occurrence to its last. Written by hand after the API's
/// field names (no API server runs here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_event_objects_attach_to_their_workloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(dir.path(), "self_scrape = false\n").await;
    let now = unix_now();
    let event_list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [
            {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "checkout-7d9f8b6c4-x2k9p.1820f3a9c2b1d4e5", "namespace": "shop",
                             "uid": "9a1f2b3c-0000-4000-8000-000000000001", "resourceVersion": "48213",
                             "creationTimestamp": chrono_like(now - 300)},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "checkout-7d9f8b6c4-x2k9p",
                                   "namespace": "shop", "uid": "5e2d0c1a-0000-4000-8000-000000000002",
                                   "resourceVersion": "48100", "fieldPath": "spec.containers{checkout}"},
                "reason": "BackOff",
                "message": "Back-off restarting failed container checkout in pod checkout-7d9f8b6c4-x2k9p_shop",
                "source": {"component": "kubelet", "host": "node-3"},
                "firstTimestamp": chrono_like(now - 300),
                "lastTimestamp": chrono_like(now - 60),
                "count": 7, "type": "Warning", "eventTime": null,
                "reportingComponent": "kubelet", "reportingInstance": "node-3"
            },
            {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "checkout-7d9f8b6c4.1820f3a9c0000001", "namespace": "shop",
                             "creationTimestamp": chrono_like(now - 290)},
                "involvedObject": {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                   "name": "checkout-7d9f8b6c4", "namespace": "shop"},
                "reason": "SuccessfulCreate",
                "message": "Created pod: checkout-7d9f8b6c4-x2k9p",
                "source": {"component": "replicaset-controller"},
                "firstTimestamp": chrono_like(now - 290),
                "lastTimestamp": chrono_like(now - 290),
                "count": 1, "type": "Normal", "eventTime": null
            },
            {
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "payment-5f7b9c8d4f-bxcdz.1820f3aa00000002", "namespace": "shop",
                             "creationTimestamp": chrono_like(now - 30)},
                "eventTime": format!("{}.123456Z", chrono_like(now - 30).trim_end_matches('Z')),
                "reportingController": "kubelet", "reportingInstance": "node-1",
                "action": "Probe",
                "reason": "Unhealthy",
                "regarding": {"kind": "Pod", "namespace": "shop", "name": "payment-5f7b9c8d4f-bxcdz",
                              "fieldPath": "spec.containers{payment}"},
                "note": "Readiness probe failed: HTTP probe failed with statuscode: 503",
                "type": "Warning"
            },
            {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "nameless", "namespace": "shop"},
                "involvedObject": {"kind": "Pod", "namespace": "shop"},
                "reason": "Pulled", "type": "Normal", "lastTimestamp": chrono_like(now - 10)
            }
        ]
    });
    let answer = post_events(&fs, "?cluster=dc-01", &event_list).await;
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert!(
        answer["rejected"][0]
            .as_str()
            .is_some_and(|m| m.starts_with("item 3:") && m.contains("no name")),
        "{answer}"
    );
    // kubernetes-event-exporter's webhook: one event, its cluster named.
    let exported = json!({
        "metadata": {"name": "inventory.1820f3ab00000003", "namespace": "shop"},
        "reason": "ScalingReplicaSet",
        "message": "Scaled up replica set inventory-6c8d9f7b5 to 4 from 2",
        "source": {"component": "deployment-controller"},
        "firstTimestamp": chrono_like(now - 20), "lastTimestamp": chrono_like(now - 20),
        "count": 1, "type": "Normal",
        "involvedObject": {"kind": "Deployment", "namespace": "shop", "name": "inventory", "apiVersion": "apps/v1"},
        "clusterName": "dc-02"
    });
    post_events(&fs, "", &exported).await;

    let rows_of = |node: &'static str| {
        let fs = &fs;
        async move {
            let v = fs
                .get_json(&format!(
                    "/api/v1/views/service_events?node={node}&start={}&end={}",
                    now - 600,
                    now + 60
                ))
                .await;
            let mut rows = v["rows"].as_array().cloned().unwrap_or_default();
            rows.sort_by_key(|r| r["reason"].as_str().unwrap_or("").to_string());
            (!rows.is_empty()).then_some(rows)
        }
    };
    let checkout = eventually(Duration::from_secs(30), "checkout's events", || {
        rows_of("dc-01/shop/checkout")
    })
    .await;
    let reasons: Vec<&str> = checkout
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["BackOff", "SuccessfulCreate"], "{checkout:?}");
    assert_eq!(checkout[0]["severity"], "Warning");
    assert_eq!(checkout[0]["source"], "kubernetes");
    assert!(checkout[0]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Back-off restarting")));
    let payment = eventually(Duration::from_secs(30), "payment's events", || {
        rows_of("dc-01/shop/payment")
    })
    .await;
    assert_eq!(payment[0]["reason"], "Unhealthy", "{payment:?}");
    assert!(payment[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Readiness probe failed")));
    let inventory = eventually(Duration::from_secs(30), "inventory's events", || {
        rows_of("dc-02/shop/inventory")
    })
    .await;
    assert_eq!(inventory[0]["reason"], "ScalingReplicaSet", "{inventory:?}");

    // The list posted again a minute later (a cron job's next `kubectl get
    // events`), the BackOff object updated in place by the kubelet: the
    // same uid and first occurrence, a higher count and a later last one.
    // Each object still reads as one event, lasting until its last
    // occurrence.
    let mut again = event_list.clone();
    again["items"][0]["count"] = json!(9);
    again["items"][0]["lastTimestamp"] = json!(chrono_like(now - 5));
    for _ in 0..2 {
        post_events(&fs, "?cluster=dc-01", &again).await;
    }
    let checkout = eventually(Duration::from_secs(30), "the updated BackOff", || {
        let rows = rows_of("dc-01/shop/checkout");
        async move {
            rows.await
                .filter(|rows| rows[0]["end_ms"] == json!((now - 5) * 1000))
        }
    })
    .await;
    let reasons: Vec<&str> = checkout
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["BackOff", "SuccessfulCreate"], "{checkout:?}");
    assert_eq!(
        checkout[0]["time_ms"],
        json!((now - 300) * 1000),
        "first occurrence"
    );
    assert!(fs.proc.terminate().success());
}

/// A service map over a range that does not start or end on a minute (as
/// Grafana's never do) counts every minute it touches, whole, and its rates
/// are per second of those minutes: 60 calls in one minute read as 1/s
/// over any part of that minute, not as 60 over the part's seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_over_a_range_inside_a_minute_are_per_second_of_that_minute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[graph]\npairing_wait = \"2s\"\n",
    )
    .await;
    let minute = unix_now().div_euclid(60) * 60 - 120;
    let spans: Vec<Value> = (0..60u64)
        .flat_map(|i| {
            let trace = format!("{:032x}", 0x5af7_0000 + i);
            let micros = (minute + 5) * 1_000_000 + i as i64 * 500_000;
            [
                json!({"traceId": trace, "id": format!("{:016x}", 2 * i + 1), "kind": "CLIENT",
                       "name": "get /cart", "timestamp": micros, "duration": 2_000,
                       "localEndpoint": {"serviceName": "frontend"}}),
                json!({"traceId": trace, "id": format!("{:016x}", 2 * i + 2),
                       "parentId": format!("{:016x}", 2 * i + 1), "kind": "SERVER",
                       "name": "get /cart", "timestamp": micros + 200, "duration": 1_500,
                       "localEndpoint": {"serviceName": "cart"}}),
            ]
        })
        .collect();
    let r = http()
        .post(fs.url("/api/v2/spans"))
        .json(&spans)
        .send()
        .await
        .expect("post spans");
    assert_eq!(r.status(), 202);
    let answer = eventually(Duration::from_secs(90), "60 calls frontend -> cart", || {
        let fs = &fs;
        async move {
            let v = fs
                .get_json(&format!(
                    "/api/v1/servicemap?start={}&end={}",
                    minute + 20,
                    minute + 40
                ))
                .await;
            let edge = v["edges"]
                .as_array()?
                .iter()
                .find(|e| e["source"] == "//frontend" && e["target"] == "//cart")?
                .clone();
            (edge["requests"] == 60).then_some(edge)
        }
    })
    .await;
    let rate = answer["rate"].as_f64().expect("rate");
    assert!((rate - 1.0).abs() < 1e-9, "{answer}");
}
