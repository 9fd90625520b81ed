//! The load generator, in process: payloads are valid exposition text with
//! exporter-like series counts, counters grow, gzip is served on request,
//! pods churn over simulated time, and the generated config loads.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::Duration;

use fleetscope::check::check_metrics;
use fleetscope::config::Config;
use fleetscope::loadgen::{self, ConfigOptions, Kind, LoadGen, ServeOptions, Shape};
use fleetscope::scrape::parse::{Format, Parser};

const PODS_PER_NODE: usize = 6;
const CONTAINERS: usize = 2;
const GPUS: usize = 2;
const NODES: usize = 3;

fn shape() -> Shape {
    Shape {
        clusters: 2,
        nodes_per_cluster: NODES,
        pods_per_node: PODS_PER_NODE,
        containers_per_pod: CONTAINERS,
        gpus_per_node: GPUS,
        churn_per_min: 6.0,
        seed: 42,
    }
}

async fn start() -> LoadGen {
    loadgen::start(shape(), ServeOptions::default())
        .await
        .expect("loadgen starts")
}

fn client() -> reqwest::Client {
    // No transparent decompression: the test looks at the wire.
    reqwest::Client::builder()
        .no_gzip()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(url: &str, gzip: bool) -> (Vec<u8>, Option<String>) {
    let mut req = client().get(url);
    if gzip {
        req = req.header("Accept-Encoding", "gzip");
    }
    let resp = req.send().await.expect("scrape");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let enc = resp
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    (resp.bytes().await.unwrap().to_vec(), enc)
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

fn count(body: &[u8]) -> usize {
    check_metrics(body, Some(Format::Prometheus), None).unwrap_or_else(|e| {
        panic!(
            "payload invalid: {e}\n{}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        )
    })
}

fn value_of(body: &[u8], name: &str, label: (&str, &str)) -> f64 {
    for s in Parser::new(body, Format::Prometheus) {
        let s = s.unwrap();
        if s.name == name && s.labels.get(label.0).map(|v| v.0) == Some(label.1) {
            return s.value;
        }
    }
    panic!("{name}{{{}={:?}}} not found", label.0, label.1)
}

fn label_values(body: &[u8], name: &str, label: &str) -> BTreeSet<String> {
    Parser::new(body, Format::Prometheus)
        .map(|s| s.unwrap())
        .filter(|s| s.name == name)
        .filter_map(|s| s.labels.get(label).map(|v| v.0.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_valid_and_sized_like_real_exporters() {
    let lg = start().await;
    assert_eq!(lg.targets.len(), 2 * (NODES * 3 + 1));
    let containers = PODS_PER_NODE * CONTAINERS;
    let pods_per_cluster = NODES * PODS_PER_NODE;
    for kind in Kind::ALL {
        let t = lg.targets_of(kind).nth(1).expect("target of kind");
        let (body, enc) = get(&t.url(), false).await;
        assert_eq!(enc, None);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.starts_with("# HELP "), "{kind:?} starts with HELP");
        assert!(text.contains("# TYPE "));
        let n = count(&body);
        match kind {
            Kind::Node => assert!((500..=1000).contains(&n), "node exporter: {n} series"),
            Kind::Cadvisor => {
                let per = n as f64 / containers as f64;
                assert!(
                    (20.0..=40.0).contains(&per),
                    "cAdvisor: {per} per container"
                );
                assert!(text.contains("id=\"/kubepods/burstable/pod"));
                assert!(text.contains("container_cpu_usage_seconds_total{"));
                assert!(text.contains("container_memory_working_set_bytes{"));
                assert!(text.contains("container_network_receive_bytes_total{"));
                assert!(text.contains("container_fs_writes_bytes_total{"));
            }
            Kind::Ksm => {
                // Pods dominate; nodes and deployments add a little.
                let per = n as f64 / pods_per_cluster as f64;
                assert!((55.0..=80.0).contains(&per), "ksm: {per} per pod");
                for fam in [
                    "kube_pod_info{",
                    "kube_pod_status_phase{",
                    "kube_pod_status_ready{condition=",
                    "kube_pod_container_resource_requests{",
                    "kube_pod_container_resource_limits{",
                    "kube_pod_container_status_restarts_total{",
                    "kube_pod_owner{",
                ] {
                    assert!(text.contains(fam), "ksm has {fam}");
                }
            }
            Kind::Dcgm => {
                assert_eq!(n, GPUS * 22, "DCGM: 22 series per GPU");
                assert!(text.contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\",UUID=\"GPU-"));
                assert!(text.contains("Hostname=\""));
            }
        }
    }
    // Nodes differ from each other (own seed-derived values).
    let mut nodes = lg.targets_of(Kind::Node);
    let (a, _) = get(&nodes.next().unwrap().url(), false).await;
    let (b, _) = get(&nodes.next().unwrap().url(), false).await;
    assert_ne!(
        value_of(&a, "node_cpu_seconds_total", ("mode", "user")),
        value_of(&b, "node_cpu_seconds_total", ("mode", "user"))
    );
    let (_, served, _) = lg.served();
    assert!(served > 0);
}

/// Renders are queued one per core: every target scraped at once still
/// answers in full, and a path that is no target is a 404 without a render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_arriving_together_all_answer_and_unknown_paths_are_404() {
    let lg = start().await;
    let urls: Vec<String> = lg.targets.iter().map(|t| t.url()).collect();
    let scrapes = urls.iter().map(|u| get(u, true));
    let bodies = futures_util::future::join_all(scrapes).await;
    assert_eq!(bodies.len(), urls.len());
    for ((gz, enc), url) in bodies.iter().zip(&urls) {
        assert_eq!(enc.as_deref(), Some("gzip"), "{url}");
        assert!(count(&gunzip(gz)) > 0, "{url} served samples");
    }
    let (served, _, _) = lg.served();
    assert_eq!(served, urls.len() as u64, "scrapes served");

    let first = &urls[0];
    let unknown = format!("{}-no-such", first);
    let resp = client().get(&unknown).send().await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(resp.text().await.unwrap(), "no such target\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_increase_and_gzip_is_served_when_asked() {
    let lg = start().await;
    let node = lg.targets_of(Kind::Node).next().unwrap().url();
    let cadv = lg.targets_of(Kind::Cadvisor).next().unwrap().url();
    let (a, _) = get(&node, false).await;
    let (ca, _) = get(&cadv, false).await;
    lg.advance(Duration::from_secs(15));
    let (b, _) = get(&node, false).await;
    let (cb, _) = get(&cadv, false).await;
    let idle = ("mode", "idle");
    let (va, vb) = (
        value_of(&a, "node_cpu_seconds_total", idle),
        value_of(&b, "node_cpu_seconds_total", idle),
    );
    assert!(vb > va, "node_cpu_seconds_total grows: {va} -> {vb}");
    let (va, vb) = (
        value_of(&a, "node_network_receive_bytes_total", ("device", "eth0")),
        value_of(&b, "node_network_receive_bytes_total", ("device", "eth0")),
    );
    assert!(vb >= va, "network counter never decreases: {va} -> {vb}");
    // A pod that did not churn within the 15 s has a larger CPU counter.
    let pod = label_values(&ca, "container_cpu_usage_seconds_total", "pod")
        .intersection(&label_values(
            &cb,
            "container_cpu_usage_seconds_total",
            "pod",
        ))
        .next()
        .cloned()
        .expect("a pod survives 15 s");
    let (va, vb) = (
        value_of(&ca, "container_cpu_usage_seconds_total", ("pod", &pod)),
        value_of(&cb, "container_cpu_usage_seconds_total", ("pod", &pod)),
    );
    assert!(vb > va, "container cpu grows: {va} -> {vb}");

    let (gz, enc) = get(&node, true).await;
    assert_eq!(enc.as_deref(), Some("gzip"));
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let plain = gunzip(&gz);
    assert!(
        gz.len() * 4 < plain.len(),
        "gzip compresses: {} -> {}",
        plain.len(),
        gz.len()
    );
    assert_eq!(count(&plain), count(&b));
    // fleetscope's own scrape fetch (asks for gzip, inflates) gets the same samples back.
    let mut body = fleetscope::scrape::fetch::Body::default();
    fleetscope::scrape::fetch::fetch(
        &fleetscope::scrape::fetch::client().unwrap(),
        &node,
        fleetscope::scrape::fetch::accept_header(fleetscope::config::NameEscaping::AllowUtf8),
        std::time::Duration::from_secs(5),
        32 << 20,
        &mut body,
    )
    .await
    .unwrap();
    assert_eq!(count(&body.text), count(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_churn_over_simulated_time() {
    let lg = start().await;
    let ksm = lg.targets_of(Kind::Ksm).next().unwrap().url();
    let cadv = lg.targets_of(Kind::Cadvisor).next().unwrap().url();
    let (k0, _) = get(&ksm, false).await;
    let (c0, _) = get(&cadv, false).await;
    let pods0 = label_values(&k0, "kube_pod_info", "pod");
    assert_eq!(pods0.len(), NODES * PODS_PER_NODE);
    // cAdvisor and kube-state-metrics agree on the pod names.
    let cpods0 = label_values(&c0, "container_cpu_usage_seconds_total", "pod");
    assert!(cpods0.is_subset(&pods0));

    // 6 reschedules/min over 18 slots: after 2 minutes about 12 pods are new.
    lg.advance(Duration::from_secs(120));
    let (k1, _) = get(&ksm, false).await;
    let pods1 = label_values(&k1, "kube_pod_info", "pod");
    assert_eq!(pods1.len(), pods0.len(), "the pod count stays");
    let gone = pods0.difference(&pods1).count();
    assert!((8..=16).contains(&gone), "{gone} pods rescheduled in 2 min");
    assert_eq!(count(&k1), count(&k0), "same series count after churn");
    // A rescheduled pod's counters start over.
    let (c1, _) = get(&cadv, false).await;
    let cpods1 = label_values(&c1, "container_cpu_usage_seconds_total", "pod");
    assert!(cpods1.is_subset(&pods1));
    assert_ne!(cpods0, cpods1);

    // Same seed, same fleet: repeatable.
    let again = start().await;
    let (k2, _) = get(&again.targets_of(Kind::Ksm).next().unwrap().url(), false).await;
    assert_eq!(label_values(&k2, "kube_pod_info", "pod"), pods0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_configs_load_and_match_the_targets() {
    let lg = start().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ConfigOptions {
        interval: Duration::from_secs(15),
        timeout: Duration::from_secs(10),
        data_dir: dir.path().join("data"),
        ..ConfigOptions::default()
    };
    let written = loadgen::write_configs(dir.path(), &lg.targets, &opts).unwrap();
    let config = Config::load(&written.fleetscope).expect("generated config loads");
    config.validate().unwrap();
    assert_eq!(config.clusters.len(), 2);
    let targets = config.targets().unwrap();
    assert_eq!(targets.len(), lg.targets.len());
    for t in &targets {
        assert_eq!(t.interval, Duration::from_secs(15));
        assert!(lg
            .targets
            .iter()
            .any(|l| l.url() == t.url && l.cluster == t.cluster));
    }
    // Nodes are told apart by instance, as on a real fleet.
    let instances: BTreeSet<_> = targets
        .iter()
        .filter(|t| t.job == "node")
        .map(|t| t.instance.clone())
        .collect();
    assert_eq!(instances.len(), 2 * NODES);

    let prom = std::fs::read_to_string(&written.prometheus).unwrap();
    assert!(prom.contains("scrape_interval: 15s"));
    assert_eq!(prom.matches("__metrics_path__").count(), lg.targets.len());
    for t in &lg.targets {
        assert!(prom.contains(&format!("__metrics_path__: '{}'", t.path)));
    }
}
