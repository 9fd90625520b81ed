//! Names that are not Prometheus identifiers (`http.server.requests`,
//! `url.scheme`), end to end: an exporter built with the real Prometheus
//! Python client (`prometheus_client` 0.26 from the test venv,
//! tests/python/utf8_exporter.py) scraped by the real `fleetscope` binary.
//!
//! With the default `metric_name_escaping = "allow-utf-8"` fleetscope asks
//! for text 1.0.0 as Prometheus 3 does; the client answers with quoted names
//! and they are stored, rolled up and queried as sent. With "underscores"
//! it asks for 0.0.4 and the client escapes them, as Prometheus 2 stored
//! them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The exporter on a free port, or None (with a note) when the venv lacks
/// prometheus_client and the suite does not require it.
fn start_exporter() -> Option<(Proc, u16)> {
    let python = test_venv_python();
    let has_client = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_client {
        eprintln!(
            "SKIPPED: prometheus_client missing from {} (run scripts/test-deps.sh)",
            python.display()
        );
        assert!(
            std::env::var_os("FLEETSCOPE_REQUIRE_OTEL_PYTHON").is_none(),
            "the test venv is required (FLEETSCOPE_REQUIRE_OTEL_PYTHON) but lacks prometheus_client"
        );
        return None;
    }
    let port = free_port();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/utf8_exporter.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proc = Proc::spawn("utf8_exporter.py", &mut cmd);
    let out = proc.child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(out).read_line(&mut first).expect("read");
    assert_eq!(first.trim(), "ready", "exporter did not start");
    Some((proc, port))
}

fn config(port: u16, escaping: &str) -> String {
    format!(
        r#"
self_scrape = false
[scrape]
interval = "1s"
timeout = "1s"
metric_name_escaping = "{escaping}"
[[cluster]]
name = "test"
[[cluster.static]]
job = "app"
targets = ["127.0.0.1:{port}"]
"#
    )
}

/// The series matching `selector`, as `/api/v1/series` lists them.
async fn series(fs: &Fleetscope, selector: &str) -> Vec<serde_json::Value> {
    let v = fs
        .get_json(&format!("/api/v1/series?match[]={}", urlencode(selector)))
        .await;
    v["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until the target was scraped `n` times and `selector`'s series
/// are stored (the writer commits new series within seconds).
async fn wait_for_scrapes(fs: &Fleetscope, n: u64, selector: &str) {
    let target = eventually(Duration::from_secs(30), "scrapes", || async {
        let t = fs.targets().await.into_iter().next()?;
        (t["scrapes"].as_u64()? >= n).then_some(t)
    })
    .await;
    assert_eq!(target["health"], "up", "{target}");
    eventually(Duration::from_secs(30), "series stored", || async {
        (!series(fs, selector).await.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_from_a_real_client_are_stored_as_sent() {
    let Some((_exporter, port)) = start_exporter() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(dir.path(), &config(port, "allow-utf-8")).await;
    wait_for_scrapes(&fs, 3, r#"{job="app"}"#).await;

    let requests = series(
        &fs,
        r#"{"http.server.requests_total", "url.scheme"="https"}"#,
    )
    .await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["code"], "200");
    assert_eq!(requests[0]["job"], "app");
    let buckets = series(
        &fs,
        r#"{"rpc.client.duration_bucket", "rpc.service"="cart"}"#,
    )
    .await;
    let mut les: Vec<&str> = buckets.iter().filter_map(|s| s["le"].as_str()).collect();
    les.sort_unstable();
    assert_eq!(les, ["+Inf", "0.1", "1.0"]);
    assert_eq!(series(&fs, "plain_gauge").await.len(), 1);
    assert!(
        series(&fs, "http_server_requests_total").await.is_empty(),
        "no escaped twin"
    );

    // Stored: a graceful stop commits the open minute; the rows are there.
    let db_path = fs.db_path();
    let data_parent = fs.data_dir.parent().expect("parent").to_path_buf();
    assert!(fs.proc.terminate().success());
    let db = open_db(&db_path);
    let (kind, other_labels, last): (String, String, f64) = db
        .query_row(
            "SELECT s.kind, s.other_labels, arg_max(r.last, r.ts) FROM series s
             JOIN rollup_1m r ON r.sid = s.sid
             WHERE s.metric = 'http.server.requests_total' GROUP BY ALL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the counter's series and rollup rows");
    assert_eq!(kind, "counter");
    assert!(
        other_labels.contains(r#""url.scheme":"https""#),
        "{other_labels}"
    );
    assert_eq!(last, 5.0);
    drop(db);

    // Queried after a restart, with a quoted label name in the selector.
    let fs = Fleetscope::start(&data_parent, &config(port, "allow-utf-8")).await;
    let now = unix_now();
    let v = fs
        .get_json(&format!(
            "/api/v1/rollup?metric=rpc.client.duration_count&match={}&start={}&end={}&step=60&agg=max",
            urlencode(r#"{"rpc.service"="cart"}"#),
            now - 3600,
            now + 3600
        ))
        .await;
    assert_eq!(v["data"]["resolution"], "1m", "{v}");
    let result = v["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(result[0]["metric"]["rpc.service"], "cart", "{v}");
    let values = result[0]["values"].as_array().expect("values");
    assert!(
        !values.is_empty() && values.iter().all(|p| p[1].as_f64() == Some(2.0)),
        "the count of two observations: {v}"
    );
    assert!(fs.proc.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underscores_escaping_gets_prometheus_2_names() {
    let Some((_exporter, port)) = start_exporter() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(dir.path(), &config(port, "underscores")).await;
    wait_for_scrapes(&fs, 3, r#"{job="app"}"#).await;
    let requests = series(&fs, r#"http_server_requests_total{url_scheme="https"}"#).await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(series(&fs, r#"{"http.server.requests_total"}"#)
        .await
        .is_empty());
}
