//! Load generator: many realistic scrape targets on loopback.
//!
//! One axum app serves a whole simulated fleet: per node a node exporter
//! (`/c/{cluster}/n/{node}/node`, ~800 series), kubelet's cAdvisor endpoint
//! (`.../cadvisor`, ~35 series per container) and, with GPUs, a DCGM exporter
//! (`.../dcgm`, 22 series per GPU); per cluster one kube-state-metrics
//! (`/c/{cluster}/ksm`, ~60 series per pod). Counters grow with time, gauges
//! move, and pods are rescheduled at a configurable rate under new names, so
//! series appear and vanish. Everything derives from one seed.
//!
//! Every node gets its own loopback address (127.1.x.y, Linux routes all of
//! 127/8 to `lo`), so `instance` differs per node as on a real fleet, and both
//! fleetscope and Prometheus keep the nodes' series apart without relabeling.
//! [`AddrMode::Single`] puts everything on one address instead.
//!
//! Payloads are rendered from precomputed label text (see [`render`]); only
//! the values are formatted per scrape.

mod configs;
mod exporters;
pub mod render;
pub mod spans;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use flate2::Compression;

pub use configs::{write_configs, ConfigOptions, WrittenConfigs};
use render::{Block, BlockBuilder, Families, Now};

/// The simulated fleet.
#[derive(Debug, Clone)]
pub struct Shape {
    pub clusters: usize,
    pub nodes_per_cluster: usize,
    pub pods_per_node: usize,
    pub containers_per_pod: usize,
    pub gpus_per_node: usize,
    /// Pods rescheduled (new name, new uid, counters from 0) per minute, per cluster.
    pub churn_per_min: f64,
    pub seed: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            clusters: 2,
            nodes_per_cluster: 5,
            pods_per_node: 30,
            containers_per_pod: 2,
            gpus_per_node: 0,
            churn_per_min: 2.0,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Node,
    Cadvisor,
    Ksm,
    Dcgm,
}

impl Kind {
    /// The job name the generated configs use.
    pub fn job(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Cadvisor => "cadvisor",
            Kind::Ksm => "kube-state-metrics",
            Kind::Dcgm => "dcgm",
        }
    }
    pub const ALL: [Kind; 4] = [Kind::Node, Kind::Cadvisor, Kind::Ksm, Kind::Dcgm];
}

/// One scrape target of the fleet.
#[derive(Debug, Clone)]
pub struct TargetInfo {
    pub cluster: String,
    pub kind: Kind,
    /// `/c/{cluster}/n/{node}/{kind}` or `/c/{cluster}/ksm`.
    pub path: String,
    /// Loopback address it is served on (port filled in once listening).
    pub addr: SocketAddr,
}

impl TargetInfo {
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

/// How the listeners are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrMode {
    /// One loopback address per node (and per kube-state-metrics): distinct `instance`s.
    PerNode,
    /// Everything on 127.0.0.1.
    Single,
}

/// splitmix64 over the parts: the source of every name and parameter.
pub(crate) fn hash(seed: u64, parts: &[u64]) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h = h.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h = z ^ (z >> 31);
    }
    h
}

const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "monitoring",
    "payments",
    "checkout",
    "search",
    "ml-training",
    "batch",
];
const WORKLOADS: [&str; 16] = [
    "api-gateway",
    "orders",
    "cart",
    "inventory",
    "recommendation",
    "search-indexer",
    "auth",
    "billing",
    "notifications",
    "image-resizer",
    "feature-store",
    "trainer",
    "etl-runner",
    "coredns",
    "fluent-bit",
    "envoy",
];
const SIDECARS: [&str; 4] = [
    "istio-proxy",
    "log-shipper",
    "config-reloader",
    "metrics-agent",
];
const ALNUM: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn alnum(h: u64, n: usize) -> String {
    let mut h = h;
    (0..n)
        .map(|_| {
            let c = ALNUM[(h % ALNUM.len() as u64) as usize] as char;
            h /= ALNUM.len() as u64;
            c
        })
        .collect()
}

fn hex(h: u64, n: usize) -> String {
    let mut s = String::with_capacity(n);
    let mut i = 0u64;
    while s.len() < n {
        s.push_str(&format!("{:016x}", hash(h, &[i])));
        i += 1;
    }
    s.truncate(n);
    s
}

fn uuid(h: u64) -> String {
    let x = hex(h, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

pub struct Container {
    pub name: String,
    pub id: String,
    pub image: String,
    pub image_id: String,
    pub cpu_request: f64,
    pub mem_limit: f64,
}

/// One incarnation of a pod slot: what cAdvisor and kube-state-metrics agree on.
pub struct Pod {
    pub identity: u64,
    pub generation: u64,
    /// Simulated second the pod started.
    pub start: f64,
    pub namespace: String,
    pub workload: String,
    pub replicaset: String,
    pub template_hash: String,
    pub name: String,
    pub uid: String,
    pub ip: String,
    pub sandbox_id: String,
    pub containers: Vec<Container>,
}

/// The static description of the fleet: names, targets, churn schedule.
pub struct Fleet {
    pub shape: Shape,
    targets: Vec<TargetInfo>,
    gens: Vec<Arc<TargetGen>>,
    by_path: HashMap<String, usize>,
    served_samples: AtomicU64,
    served_scrapes: AtomicU64,
    served_bytes: AtomicU64,
}

struct TargetGen {
    cluster: usize,
    node: usize,
    kind: Kind,
    state: Mutex<TargetState>,
}

#[derive(Default)]
struct TargetState {
    fams: Families,
    /// Blocks that never change (node exporter, ksm nodes and deployments, GPUs).
    fixed: Vec<Block>,
    /// One block per pod slot with the generation it was built for.
    pods: Vec<(u64, Block)>,
    last_len: usize,
}

impl Fleet {
    pub fn new(shape: Shape) -> Arc<Fleet> {
        let mut targets = Vec::new();
        let mut gens = Vec::new();
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        for c in 0..shape.clusters {
            let cname = Fleet::cluster_name(c);
            let mut kinds = vec![Kind::Node, Kind::Cadvisor];
            if shape.gpus_per_node > 0 {
                kinds.push(Kind::Dcgm);
            }
            for n in 0..shape.nodes_per_cluster {
                for &kind in &kinds {
                    let k = match kind {
                        Kind::Node => "node",
                        Kind::Cadvisor => "cadvisor",
                        _ => "dcgm",
                    };
                    targets.push(TargetInfo {
                        cluster: cname.clone(),
                        kind,
                        path: format!("/c/{cname}/n/node-{n:03}/{k}"),
                        addr: loopback,
                    });
                    gens.push((c, n, kind));
                }
            }
            targets.push(TargetInfo {
                cluster: cname.clone(),
                kind: Kind::Ksm,
                path: format!("/c/{cname}/ksm"),
                addr: loopback,
            });
            gens.push((c, usize::MAX, Kind::Ksm));
        }
        let by_path = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.path.clone(), i))
            .collect();
        let gens = gens
            .into_iter()
            .map(|(cluster, node, kind)| {
                Arc::new(TargetGen {
                    cluster,
                    node,
                    kind,
                    state: Mutex::new(TargetState::default()),
                })
            })
            .collect();
        Arc::new(Fleet {
            shape,
            targets,
            gens,
            by_path,
            served_samples: AtomicU64::new(0),
            served_scrapes: AtomicU64::new(0),
            served_bytes: AtomicU64::new(0),
        })
    }

    pub fn cluster_name(c: usize) -> String {
        format!("cluster-{c:02}")
    }

    fn node_name(&self, c: usize, n: usize) -> String {
        format!("c{c:02}-node-{n:03}")
    }

    fn node_id(&self, c: usize, n: usize) -> u64 {
        (c as u64) << 24 | n as u64
    }

    fn host_ip(&self, c: usize, n: usize) -> String {
        format!("10.{}.{}.{}", c % 256, n / 250, 10 + n % 250)
    }

    /// Targets with their paths (addresses are 127.0.0.1:0 until served).
    pub fn targets(&self) -> &[TargetInfo] {
        &self.targets
    }

    fn pods_per_cluster(&self) -> usize {
        self.shape.nodes_per_cluster * self.shape.pods_per_node
    }

    /// Which incarnation of pod slot `slot` of cluster `c` lives at simulated
    /// second `t`, and when it started. Each slot is rescheduled once per
    /// `period = slots * 60 / churn` seconds at its own phase, so the cluster
    /// sees `churn` reschedules per minute, spread evenly.
    pub fn pod_generation(&self, c: usize, slot: usize, t: f64) -> (u64, f64) {
        let h = hash(self.shape.seed, &[10, c as u64, slot as u64]);
        let frac = (h >> 11) as f64 / (1u64 << 53) as f64;
        if self.shape.churn_per_min <= 0.0 {
            return (0, -3600.0 - frac * 86_400.0 * 7.0);
        }
        let period = self.pods_per_cluster() as f64 * 60.0 / self.shape.churn_per_min;
        let phase = frac * period;
        let g = ((t + phase) / period).floor();
        let start = g * period - phase;
        // Generation 0 pods have been up a while already.
        let start = if g <= 0.0 {
            start.min(0.0) - 3600.0 - frac * 86_400.0
        } else {
            start
        };
        (g.max(0.0) as u64, start)
    }

    pub fn pod(&self, c: usize, slot: usize, t: f64) -> Pod {
        let (generation, start) = self.pod_generation(c, slot, t);
        let seed = self.shape.seed;
        let identity = hash(seed, &[11, c as u64, slot as u64, generation]);
        let ws = hash(seed, &[12, c as u64, slot as u64 / 3]);
        let namespace = NAMESPACES[(ws % NAMESPACES.len() as u64) as usize].to_string();
        let workload = format!(
            "{}-{}",
            WORKLOADS[((ws >> 8) % WORKLOADS.len() as u64) as usize],
            slot / 3
        );
        let template_hash = alnum(hash(ws, &[1]), 10);
        let replicaset = format!("{workload}-{template_hash}");
        let name = format!("{replicaset}-{}", alnum(identity, 5));
        let mut containers = Vec::new();
        for i in 0..self.shape.containers_per_pod.max(1) {
            let cname = if i == 0 {
                WORKLOADS[((ws >> 8) % WORKLOADS.len() as u64) as usize].to_string()
            } else {
                SIDECARS[(i - 1) % SIDECARS.len()].to_string()
            };
            let version = format!("v1.{}.{}", ws % 40, (ws >> 20) % 10);
            let image = if i == 0 {
                format!("registry.example.com/{namespace}/{cname}:{version}")
            } else {
                format!("docker.io/library/{cname}:1.{}", i + 2)
            };
            containers.push(Container {
                id: hex(hash(identity, &[20, i as u64]), 64),
                image_id: format!("{image}@sha256:{}", hex(hash(ws, &[21, i as u64]), 64)),
                image,
                name: cname,
                cpu_request: [0.1, 0.25, 0.5, 1.0][(hash(ws, &[22, i as u64]) % 4) as usize],
                mem_limit: [2.68435456e8, 5.36870912e8, 1.073741824e9, 4.294967296e9]
                    [(hash(ws, &[23, i as u64]) % 4) as usize],
            });
        }
        Pod {
            identity,
            generation,
            start,
            uid: uuid(hash(identity, &[1])),
            ip: format!(
                "10.{}.{}.{}",
                100 + c % 100,
                (slot / self.shape.pods_per_node.max(1)) % 256,
                2 + (hash(identity, &[2]) % 250)
            ),
            sandbox_id: hex(hash(identity, &[3]), 64),
            namespace,
            workload,
            replicaset,
            template_hash,
            name,
            containers,
        }
    }

    fn node_of_slot(&self, slot: usize) -> usize {
        slot / self.shape.pods_per_node.max(1)
    }

    fn render_target(&self, i: usize, now: Now, out: &mut Vec<u8>) -> usize {
        let g = &self.gens[i];
        let mut st = g.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = &mut *st;
        let seed = self.shape.seed;
        let (c, n) = (g.cluster, g.node);
        if st.fixed.is_empty() && st.pods.is_empty() {
            match g.kind {
                Kind::Node => {
                    let mut b = BlockBuilder::new(&mut st.fams, -86_400.0 * 3.0);
                    let node = self.node_name(c, n);
                    exporters::node_exporter(
                        &mut b,
                        seed,
                        self.node_id(c, n),
                        &node,
                        self.shape.pods_per_node.min(8),
                    );
                    st.fixed.push(b.finish());
                }
                Kind::Dcgm => {
                    let node = self.node_name(c, n);
                    for gpu in 0..self.shape.gpus_per_node {
                        let mut b = BlockBuilder::new(&mut st.fams, -86_400.0 * 3.0);
                        exporters::dcgm_gpu(&mut b, seed, self.node_id(c, n), gpu, &node);
                        st.fixed.push(b.finish());
                    }
                }
                Kind::Ksm => {
                    for n in 0..self.shape.nodes_per_cluster {
                        let mut b = BlockBuilder::new(&mut st.fams, -86_400.0 * 30.0);
                        exporters::ksm_node(
                            &mut b,
                            seed,
                            self.node_id(c, n),
                            &self.node_name(c, n),
                            &self.host_ip(c, n),
                        );
                        st.fixed.push(b.finish());
                    }
                    let mut b = BlockBuilder::new(&mut st.fams, -86_400.0 * 30.0);
                    for d in 0..self.pods_per_cluster().div_ceil(3) {
                        let pod = self.pod(c, d * 3, 0.0);
                        let replicas = (self.pods_per_cluster() - d * 3).min(3) as f64;
                        exporters::ksm_deployment(&mut b, &pod.namespace, &pod.workload, replicas);
                    }
                    st.fixed.push(b.finish());
                }
                Kind::Cadvisor => {}
            }
        }
        // Pod blocks: rebuild the slots whose pod was rescheduled.
        let slots: Vec<usize> = match g.kind {
            Kind::Cadvisor => {
                let p = self.shape.pods_per_node;
                (n * p..(n + 1) * p).collect()
            }
            Kind::Ksm => (0..self.pods_per_cluster()).collect(),
            _ => Vec::new(),
        };
        if st.pods.len() != slots.len() {
            st.pods.clear();
        }
        for (k, &slot) in slots.iter().enumerate() {
            let (generation, _) = self.pod_generation(c, slot, now.t);
            if st.pods.get(k).is_some_and(|(g, _)| *g == generation) {
                continue;
            }
            let pod = self.pod(c, slot, now.t);
            let mut b = BlockBuilder::new(&mut st.fams, pod.start);
            match g.kind {
                Kind::Cadvisor => exporters::cadvisor_pod(&mut b, seed, &pod),
                _ => {
                    let node = self.node_of_slot(slot);
                    exporters::ksm_pod(
                        &mut b,
                        seed,
                        &pod,
                        &self.node_name(c, node),
                        &self.host_ip(c, node),
                    )
                }
            }
            let block = b.finish();
            if k < st.pods.len() {
                st.pods[k] = (generation, block);
            } else {
                st.pods.push((generation, block));
            }
        }
        out.reserve(st.last_len + st.last_len / 8);
        let before = out.len();
        let samples = render::render(
            &st.fams,
            st.fixed.iter().chain(st.pods.iter().map(|(_, b)| b)),
            now,
            out,
        );
        st.last_len = out.len() - before;
        samples
    }

    /// Series per target kind and in total at simulated second 0.
    pub fn summary(&self) -> FleetSummary {
        let mut s = FleetSummary::default();
        let now = Now {
            t: 0.0,
            unix: unix_now(),
        };
        let mut out = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            out.clear();
            let n = self.render_target(i, now, &mut out);
            let e = s.per_kind.entry(t.kind.job()).or_default();
            e.0 += 1;
            e.1 += n;
            s.series += n;
            s.bytes += out.len();
            s.max_per_target = s.max_per_target.max(n);
        }
        s.targets = self.targets.len();
        s
    }
}

#[derive(Debug, Default, Clone)]
pub struct FleetSummary {
    pub targets: usize,
    pub series: usize,
    pub bytes: usize,
    pub max_per_target: usize,
    /// job -> (targets, series)
    pub per_kind: std::collections::BTreeMap<&'static str, (usize, usize)>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Simulated time: real time since start times `speed`, plus manual advances.
pub struct Clock {
    start: Instant,
    start_unix: f64,
    speed: f64,
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn new(speed: f64) -> Clock {
        Clock {
            start: Instant::now(),
            start_unix: unix_now(),
            speed,
            offset_ms: AtomicI64::new(0),
        }
    }

    pub fn now(&self) -> Now {
        let t = self.start.elapsed().as_secs_f64() * self.speed
            + self.offset_ms.load(Relaxed) as f64 / 1000.0;
        Now {
            t,
            unix: self.start_unix + t,
        }
    }

    pub fn advance(&self, d: Duration) {
        self.offset_ms.fetch_add(d.as_millis() as i64, Relaxed);
    }
}

/// How to serve the fleet.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Port for every listener; 0 picks a free one (shared by all addresses when possible).
    pub port: u16,
    pub addr_mode: AddrMode,
    /// Simulated seconds per real second.
    pub speed: f64,
    /// gzip level used when the scraper accepts gzip (1 = fastest).
    pub gzip_level: u32,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            port: 0,
            addr_mode: AddrMode::PerNode,
            speed: 1.0,
            gzip_level: 1,
        }
    }
}

/// A running load generator; dropping it stops the listeners.
pub struct LoadGen {
    pub fleet: Arc<Fleet>,
    pub clock: Arc<Clock>,
    /// Every target with its real address.
    pub targets: Vec<TargetInfo>,
    /// The distinct listening addresses.
    pub listeners: Vec<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl LoadGen {
    /// Moves simulated time forward (pod churn, counters) without waiting.
    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub fn targets_of(&self, kind: Kind) -> impl Iterator<Item = &TargetInfo> {
        self.targets.iter().filter(move |t| t.kind == kind)
    }

    /// (scrapes, samples, bytes on the wire) served so far.
    pub fn served(&self) -> (u64, u64, u64) {
        (
            self.fleet.served_scrapes.load(Relaxed),
            self.fleet.served_samples.load(Relaxed),
            self.fleet.served_bytes.load(Relaxed),
        )
    }

    /// Stops serving and waits until the listeners are closed.
    pub async fn stop(mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

/// Loopback address of host number `i` in per-node mode: 127.1.x.y with y in 1..=254.
fn host_addr(i: usize) -> Ipv4Addr {
    let x = i / 254;
    Ipv4Addr::new(
        127,
        1 + (x / 256) as u8,
        (x % 256) as u8,
        1 + (i % 254) as u8,
    )
}

#[derive(Clone)]
struct AppState {
    fleet: Arc<Fleet>,
    clock: Arc<Clock>,
    gzip_level: u32,
    /// One permit per core: renders are CPU-bound, and each holds a whole
    /// payload (up to tens of MB for a big kube-state-metrics) twice, so a
    /// fleet's scrapes arriving together must not all render at once.
    renders: Arc<tokio::sync::Semaphore>,
}

/// Starts serving `shape` on loopback. Must run inside a tokio runtime.
pub async fn start(shape: Shape, opts: ServeOptions) -> anyhow::Result<LoadGen> {
    serve(Fleet::new(shape), opts).await
}

/// Starts serving `fleet` on loopback, keeping the payload text it has
/// built already (by [`Fleet::summary`]): a 26 M-series fleet's is ~4 GB,
/// and building it a second time left the first copy's freed memory
/// resident in the allocator's main heap.
pub async fn serve(fleet: Arc<Fleet>, opts: ServeOptions) -> anyhow::Result<LoadGen> {
    let clock = Arc::new(Clock::new(opts.speed));
    // Address of each target.
    let per_cluster_hosts = fleet.shape.nodes_per_cluster + 1;
    let host_of = |t: &TargetInfo, i: usize| -> usize {
        let c = fleet.gens[i].cluster;
        let n = fleet.gens[i].node;
        if t.kind == Kind::Ksm {
            c * per_cluster_hosts + fleet.shape.nodes_per_cluster
        } else {
            c * per_cluster_hosts + n
        }
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut target_host = Vec::new();
    for (i, t) in fleet.targets.iter().enumerate() {
        let ip = match opts.addr_mode {
            AddrMode::Single => IpAddr::V4(Ipv4Addr::LOCALHOST),
            AddrMode::PerNode => IpAddr::V4(host_addr(host_of(t, i))),
        };
        if ips.last() != Some(&ip) && !ips.contains(&ip) {
            ips.push(ip);
        }
        target_host.push(ip);
    }
    let state = AppState {
        fleet: fleet.clone(),
        clock: clock.clone(),
        gzip_level: opts.gzip_level.min(9),
        renders: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
    };
    let app = axum::Router::new().fallback(handle).with_state(state);
    let mut port = opts.port;
    let mut bound: HashMap<IpAddr, SocketAddr> = HashMap::new();
    let mut tasks = Vec::new();
    for ip in &ips {
        let listener = match tokio::net::TcpListener::bind(SocketAddr::new(*ip, port)).await {
            Ok(l) => l,
            Err(_) if port != 0 && opts.port == 0 => {
                tokio::net::TcpListener::bind(SocketAddr::new(*ip, 0)).await?
            }
            Err(e) => return Err(anyhow::anyhow!("cannot listen on {ip}:{port}: {e}")),
        };
        let addr = listener.local_addr()?;
        if port == 0 {
            port = addr.port();
        }
        bound.insert(*ip, addr);
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }
    let mut targets = fleet.targets.clone();
    for (t, ip) in targets.iter_mut().zip(&target_host) {
        t.addr = bound[ip];
    }
    let listeners = ips.iter().map(|ip| bound[ip]).collect();
    Ok(LoadGen {
        fleet,
        clock,
        targets,
        listeners,
        tasks,
    })
}

thread_local! {
    /// The uncompressed payload, kept by each blocking thread from one render
    /// to the next rather than allocated afresh (up to tens of MB) per scrape.
    static RENDER_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

async fn handle(
    axum::extract::State(state): axum::extract::State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if path == "/" {
        let mut s = String::from("fleetscope-loadgen targets:\n");
        for t in state.fleet.targets() {
            s.push_str(&t.path);
            s.push('\n');
        }
        return Response::new(Body::from(s));
    }
    let Some(&target) = state.fleet.by_path.get(path) else {
        return (StatusCode::NOT_FOUND, "no such target\n").into_response();
    };
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let fleet = state.fleet.clone();
    let now = state.clock.now();
    let level = state.gzip_level;
    let Ok(permit) = state.renders.clone().acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    // Rendering is CPU work of a few ms: keep it off the I/O threads.
    let rendered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let (samples, body) = RENDER_BUFFER.with_borrow_mut(|out| {
            out.clear();
            let samples = fleet.render_target(target, now, out);
            let body = if gzip {
                let mut enc =
                    GzEncoder::new(Vec::with_capacity(out.len() / 6), Compression::new(level));
                std::io::Write::write_all(&mut enc, out).ok()?;
                enc.finish().ok()?
            } else {
                out.clone()
            };
            Some((samples, body))
        })?;
        fleet.served_scrapes.fetch_add(1, Relaxed);
        fleet.served_samples.fetch_add(samples as u64, Relaxed);
        fleet.served_bytes.fetch_add(body.len() as u64, Relaxed);
        Some(body)
    })
    .await
    .ok()
    .flatten();
    match rendered {
        None => (StatusCode::INTERNAL_SERVER_ERROR, "render failed\n").into_response(),
        Some(body) => {
            let mut r = Response::builder().header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            );
            if gzip {
                r = r.header(header::CONTENT_ENCODING, "gzip");
            }
            r.body(Body::from(body)).unwrap_or_default()
        }
    }
}

/// Renders every target once at each of `rounds` successive simulated
/// scrapes on the calling thread, gzip at `gzip_level` (None: plain);
/// returns (samples, seconds).
pub fn bench_render(fleet: &Fleet, rounds: usize, gzip_level: Option<u32>) -> (usize, f64) {
    let started = Instant::now();
    let mut samples = 0;
    let mut out = Vec::new();
    let unix = unix_now();
    for r in 0..rounds {
        let now = Now {
            t: r as f64 * 15.0,
            unix: unix + r as f64 * 15.0,
        };
        for i in 0..fleet.targets.len() {
            out.clear();
            samples += fleet.render_target(i, now, &mut out);
            if let Some(level) = gzip_level {
                let mut enc = GzEncoder::new(Vec::new(), Compression::new(level));
                let _ = std::io::Write::write_all(&mut enc, &out);
                let _ = enc.finish();
            }
        }
    }
    (samples, started.elapsed().as_secs_f64())
}
