//! The Grafana side of fleetscope, checked with Grafana's own code and the
//! plugin's own contract rather than our reading of them: each test seeds a
//! small synthetic fleet with the real binary (`fleetscope seed`), serves it
//! (`fleetscope serve` on a free loopback port), and runs one of the checkers
//! in tests/grafana/ against `/grafana`:
//! - `frames.test.js`: Grafana-10/11-shaped `/query` bodies, every answer
//!   through `toDataFrame` from `@grafana/data` 13;
//! - `lint-dashboards.js`: every dashboard in dashboards/ against the targets,
//!   payloads and variables the server offers;
//! - `schemathesis.sh`: the simpod-json-datasource OpenAPI file, fuzzed.
//!
//! A fourth test renders deploy/kubernetes with `kubectl kustomize` and checks
//! it grants no API access and its fleetscope.toml passes `check-config`.
//!
//! Their dependencies (node_modules, the schemathesis venv) come from
//! scripts/test-deps.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fleetscope_bin, Fleetscope};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("FLEETSCOPE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/fleetscope")
        })
}

fn schemathesis_bin() -> PathBuf {
    std::env::var_os("FLEETSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv"))
        .join("bin/schemathesis")
}

/// Fails with the one command that fixes a missing dependency.
fn require(what: &str, present: bool) {
    assert!(
        present,
        "{what} is missing: run scripts/test-deps.sh (it installs node_modules for tests/grafana, \
         schemathesis into ~/.cache/fleetscope/venv, and kubectl)"
    );
}

fn require_node() {
    let node = Command::new("node").arg("--version").output();
    require("node", node.is_ok_and(|o| o.status.success()));
    require(
        "tests/grafana/node_modules/@grafana/data",
        repo()
            .join("tests/grafana/node_modules/@grafana/data/package.json")
            .is_file(),
    );
}

/// Seeds ~2 h of a small fleet into `dir/data` with the real binary, then
/// serves it (the harness waits for /readyz).
async fn seeded_server(dir: &Path) -> Fleetscope {
    let data_dir = dir.join("data");
    let out = Command::new(fleetscope_bin())
        .args(["seed", "--data-dir"])
        .arg(&data_dir)
        .args([
            "--clusters",
            "2",
            "--namespaces",
            "3",
            "--pods",
            "6",
            "--nodes",
            "3",
            "--hours",
            "2",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run fleetscope seed");
    assert!(
        out.status.success(),
        "fleetscope seed failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    Fleetscope::start(dir, "self_scrape = false\n").await
}

/// Runs a checker to completion (killing it after `limit`), prints its
/// output, and asserts it exited 0.
async fn run_checker(name: &str, mut cmd: Command, limit: Duration) {
    let log_dir = tempfile::tempdir().expect("tempdir");
    let out_path = log_dir.path().join("output.txt");
    let out_file = std::fs::File::create(&out_path).expect("log file");
    cmd.current_dir(repo())
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("dup"))
        .stderr(out_file);
    let name_owned = name.to_string();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name_owned}: {e}"));
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("join");
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("----- {name} -----\n{output}\n----- end of {name} -----");
    match status {
        None => panic!("{name} did not finish within {limit:?}"),
        Some(s) => assert!(s.success(), "{name} failed ({s}); its output is above"),
    }
}

/// Drives the real binary with Grafana's own frame parser: tests/grafana/frames.test.js
/// posts the bodies Grafana 10/11 sends through simpod-json-datasource for every
/// target (payload as object and as JSON text, ad hoc filters, several refIds) and
/// runs each answer through `toDataFrame` from `@grafana/data` 13, checking time
/// and number fields, lengths and `heatmap-rows` meta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_frame_parser_reads_every_target() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = seeded_server(dir.path()).await;
    let mut cmd = Command::new("node");
    cmd.arg("tests/grafana/frames.test.js")
        .arg(fs.url("/grafana"));
    run_checker("frames.test.js", cmd, Duration::from_secs(120)).await;
    fs.proc.terminate();
}

/// One client span and its server span (Zipkin v2, as a Brave or
/// OpenTelemetry exporter sends them), from services whose spans name their
/// cluster and namespace, so the service map's variables have values.
/// Returns once `service_cluster` lists the cluster.
async fn send_a_call_between_two_services(fs: &Fleetscope) {
    let now_us = common::unix_now() * 1_000_000;
    let tags = serde_json::json!({"k8s.cluster.name": "cluster-01", "k8s.namespace.name": "shop"});
    let spans = serde_json::json!([
        {"traceId": "5af7183fb1d4cf5f5af7183fb1d4cf5f", "id": "6b221d5bc9e6496c", "kind": "CLIENT",
         "name": "get /cart", "timestamp": now_us, "duration": 4000,
         "localEndpoint": {"serviceName": "web"}, "tags": tags},
        {"traceId": "5af7183fb1d4cf5f5af7183fb1d4cf5f", "id": "7c332e6cdaf75a7d", "parentId": "6b221d5bc9e6496c",
         "kind": "SERVER", "name": "get /cart", "timestamp": now_us + 500, "duration": 3000,
         "localEndpoint": {"serviceName": "cart"}, "tags": tags}
    ]);
    let client = reqwest::Client::new();
    let sent = client
        .post(fs.url("/api/v2/spans"))
        .json(&spans)
        .send()
        .await
        .expect("POST /api/v2/spans");
    assert_eq!(sent.status().as_u16(), 202, "{:?}", sent.text().await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed: serde_json::Value = client
            .post(fs.url("/grafana/variable"))
            .json(&serde_json::json!({"payload": {"target": "service_cluster"}}))
            .send()
            .await
            .expect("POST /grafana/variable")
            .json()
            .await
            .expect("variable answer");
        if listed.to_string().contains("cluster-01") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service_cluster never listed cluster-01: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The builder's option lists of the service map's targets are what the
    // spans named too: node ids for focus, namespaces for the map.
    for (target, option, expected) in [
        ("service_focus", "node", "cluster-01/shop/cart"),
        ("blast_radius", "node", "cluster-01/shop/web"),
        ("service_map", "namespace", "shop"),
    ] {
        let options: serde_json::Value = client
            .post(fs.url("/grafana/metric-payload-options"))
            .json(&serde_json::json!({"metric": target, "name": option, "payload": {}}))
            .send()
            .await
            .expect("POST /grafana/metric-payload-options")
            .json()
            .await
            .expect("options answer");
        let values: Vec<&str> = options
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|o| o["value"].as_str())
            .collect();
        assert!(values.contains(&expected), "{target}.{option}: {values:?}");
    }
}

/// Drives the real binary with the shipped dashboards and Grafana's own frame
/// parser's package alongside: tests/grafana/lint-dashboards.js checks that every
/// dashboard in dashboards/ is valid JSON, names only targets, payload keys and
/// select values that the server's `/grafana/metrics` offers, defines every `$var`
/// it uses, and that its query variables answer `/grafana/variable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_match_what_the_server_offers() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = seeded_server(dir.path()).await;
    send_a_call_between_two_services(&fs).await;
    let mut cmd = Command::new("node");
    cmd.arg("tests/grafana/lint-dashboards.js")
        .arg(fs.url("/grafana"));
    run_checker("lint-dashboards.js", cmd, Duration::from_secs(60)).await;
    fs.proc.terminate();
}

/// Drives the real binary against the plugin's OpenAPI contract
/// (shared/contracts/simpod-json-datasource.openapi.yaml): schemathesis generates
/// requests for every operation, steered to fleetscope's real targets by
/// tests/grafana/schemathesis_hooks.py, and fails on any 5xx, hang or 2xx answer
/// that does not match the contract's response schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simpod_openapi_contract_holds_under_schemathesis() {
    require("schemathesis", schemathesis_bin().is_file());
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = seeded_server(dir.path()).await;
    let mut cmd = Command::new("bash");
    cmd.arg("tests/grafana/schemathesis.sh")
        .arg(fs.url("/grafana"));
    run_checker("schemathesis.sh", cmd, Duration::from_secs(300)).await;
    fs.proc.terminate();
}

/// Renders deploy/kubernetes with the real `kubectl kustomize` and checks the
/// result with the real binary: the ConfigMap's fleetscope.toml passes
/// `fleetscope check-config` and listens on 0.0.0.0:9470, and the pod gets
/// no access to the Kubernetes API (fleetscope never calls it): no RBAC, no
/// service account token mounted.
#[test]
fn kubernetes_manifests_render_and_grant_no_api_access() {
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    require("kubectl", kubectl.is_ok_and(|o| o.status.success()));
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(repo())
        .output()
        .expect("kubectl kustomize");
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/kubernetes failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "PersistentVolumeClaim",
    ] {
        assert!(
            rendered.contains(&format!("kind: {kind}\n")),
            "no {kind} in:\n{rendered}"
        );
    }
    for kind in ["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"] {
        assert!(
            !rendered.contains(&format!("kind: {kind}\n")),
            "{kind} rendered, but fleetscope does not call the API:\n{rendered}"
        );
    }
    let no_token = rendered
        .split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .any(|l| l == "kind: ServiceAccount" || l == "kind: Deployment")
        })
        .all(|doc| doc.contains("automountServiceAccountToken: false"));
    assert!(no_token, "a service account token is mounted:\n{rendered}");
    let config = repo().join("deploy/kubernetes/fleetscope.toml");
    let check = Command::new(fleetscope_bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .expect("fleetscope check-config");
    let effective = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "check-config {}: {}{}",
        config.display(),
        effective,
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        effective.contains("0.0.0.0:9470"),
        "the pod must listen on 0.0.0.0:9470:\n{effective}"
    );
}
