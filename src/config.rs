//! Typed configuration: defaults < TOML file < command-line flags, then `validate()`.
//!
//! Owns the shape of `fleetscope.toml` and every limit's default. It must not
//! start anything or touch the network: the scraper and the store read a
//! validated `Config` and nothing else.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default HTTP listen address: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9470";
pub const DEFAULT_DATA_DIR: &str = "./fleetscope-data";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// DuckDB's buffer-pool limit (its own memory, on top of the in-memory
    /// rollups), e.g. "128MB" or "2GB". DuckDB fills whatever it is given
    /// with cached blocks; the OS page cache serves re-reads almost as well,
    /// and big queries spill to the data directory rather than fail.
    pub duckdb_memory_limit: String,
    /// Threads DuckDB's query engine may use (a query's own thread counts as
    /// one). Unset: half the cores, at least one, so that a big query or a
    /// derivation never takes the cores scraping and the writer need. Raise
    /// it for faster large queries on a box with cores to spare.
    pub duckdb_threads: Option<u32>,
    pub scrape: ScrapeDefaults,
    pub limits: Limits,
    pub retention: Retention,
    pub api: ApiConfig,
    pub graph: GraphSettings,
    /// Scrape fleetscope's own `/metrics` (job "fleetscope").
    pub self_scrape: bool,
    #[serde(rename = "cluster")]
    pub clusters: Vec<ClusterConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("constant address parses"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            duckdb_memory_limit: "128MB".into(),
            duckdb_threads: None,
            scrape: ScrapeDefaults::default(),
            limits: Limits::default(),
            retention: Retention::default(),
            api: ApiConfig::default(),
            graph: GraphSettings::default(),
            self_scrape: true,
            clusters: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeDefaults {
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Whether exporters may send metric and label names that are not
    /// Prometheus identifiers (`http.server.duration`), as Prometheus 3 asks
    /// them to; or have them escaped to `http_server_duration`, as
    /// Prometheus 2 stored them.
    pub metric_name_escaping: NameEscaping,
}

impl Default for ScrapeDefaults {
    fn default() -> Self {
        ScrapeDefaults {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            metric_name_escaping: NameEscaping::AllowUtf8,
        }
    }
}

/// Spelled as Prometheus' `metric_name_escaping_scheme`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum NameEscaping {
    #[serde(rename = "allow-utf-8")]
    AllowUtf8,
    #[serde(rename = "underscores")]
    Underscores,
}

/// Per-scrape limits. Prometheus ships most of these off; a fleet tool cannot
/// afford one bad exporter taking the process down, so all are on by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Decompressed body bytes; the fetch aborts as soon as this is passed.
    pub body_bytes: usize,
    pub samples_per_scrape: usize,
    pub labels_per_series: usize,
    pub label_name_length: usize,
    pub label_value_length: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 64 << 20,
            samples_per_scrape: 50_000,
            labels_per_series: 64,
            label_name_length: 256,
            label_value_length: 4096,
        }
    }
}

/// How long each resolution is kept. The 1h default is over a year so last
/// year's peak sales day stays comparable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    #[serde(rename = "1m", with = "humantime_serde")]
    pub one_minute: Duration,
    #[serde(rename = "5m", with = "humantime_serde")]
    pub five_minutes: Duration,
    #[serde(rename = "1h", with = "humantime_serde")]
    pub one_hour: Duration,
    /// The service graph's 1 m edge rows.
    #[serde(with = "humantime_serde")]
    pub graph: Duration,
    /// Events and alert notifications, from when they last counted: an
    /// alert still firing, or an event still recurring, is kept.
    #[serde(with = "humantime_serde")]
    pub events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            one_minute: Duration::from_secs(2 * 86_400),
            five_minutes: Duration::from_secs(30 * 86_400),
            one_hour: Duration::from_secs(400 * 86_400),
            graph: Duration::from_secs(30 * 86_400),
            events: Duration::from_secs(30 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// When set, every API route except /healthz, /readyz and /metrics
    /// needs `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Upper bound on points one range query may return.
    pub max_points: usize,
    /// Where the Grafana JSON datasource API is mounted.
    pub grafana_prefix: String,
    /// HTTP basic auth as an alternative to the bearer token (Grafana's
    /// datasource "Basic auth" setting).
    pub basic_auth_user: Option<String>,
    pub basic_auth_password: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bearer_token: None,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            max_points: 1_000_000,
            grafana_prefix: "/grafana".into(),
            basic_auth_user: None,
            basic_auth_password: None,
        }
    }
}

/// Trace ingest and the dependency graph.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSettings {
    /// How long a client span waits for its server span (and vice versa).
    #[serde(with = "humantime_serde")]
    pub pairing_wait: std::time::Duration,
    /// Spans waiting for their other half at most (memory bound).
    pub max_pending_spans: usize,
    /// Decompressed bytes of one OTLP/Zipkin request.
    pub max_body_bytes: usize,
    /// Decoded batches queued for the graph; beyond it ingest answers 503.
    pub queue_batches: usize,
    /// Incoming error rate at or above which a node is degraded.
    pub degraded_error_rate: f64,
    /// Incoming error rate above which a node is failing.
    pub failing_error_rate: f64,
    /// How long a firing alert counts as firing after its last notification
    /// when no resolution comes. Alertmanager repeats a firing alert every
    /// `repeat_interval` (12h in kube-prometheus-stack, 4h by default) and
    /// sends no end time with it: set this to the receiver's
    /// `repeat_interval` plus its `group_interval`.
    #[serde(with = "humantime_serde")]
    pub alert_firing_lease: std::time::Duration,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            pairing_wait: std::time::Duration::from_secs(10),
            max_pending_spans: 100_000,
            max_body_bytes: 16 << 20,
            queue_batches: 1024,
            degraded_error_rate: 0.001,
            failing_error_rate: 0.10,
            alert_firing_lease: std::time::Duration::from_secs(12 * 3600 + 600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: String,
    #[serde(rename = "static")]
    pub static_jobs: Vec<StaticJob>,
    pub federate: Vec<FederateJob>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StaticJob {
    pub job: String,
    /// `host:port` or full URLs.
    pub targets: Vec<String>,
    pub scheme: Option<String>,
    pub metrics_path: Option<String>,
    #[serde(with = "humantime_serde::option")]
    pub interval: Option<Duration>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub honor_labels: bool,
    /// `[limits]` for this job's targets alone.
    pub limits: TargetLimits,
}

/// A job's own `samples_per_scrape` and `body_bytes`, over `[limits]`: a
/// cluster's `/federate` or a kube-state-metrics is far larger than a node
/// exporter, and raising the limit for all would let any exporter grow.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TargetLimits {
    pub samples_per_scrape: Option<usize>,
    pub body_bytes: Option<usize>,
}

impl Limits {
    /// These limits with a target's own over them.
    pub fn for_target(&self, own: TargetLimits) -> Limits {
        Limits {
            samples_per_scrape: own.samples_per_scrape.unwrap_or(self.samples_per_scrape),
            body_bytes: own.body_bytes.unwrap_or(self.body_bytes),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FederateJob {
    pub job: String,
    /// Base URL of the cluster's Prometheus, e.g. `http://prometheus.monitoring:9090`.
    pub url: String,
    /// `match[]` selectors; at least one is required by Prometheus.
    #[serde(rename = "match")]
    pub matchers: Vec<String>,
    #[serde(with = "humantime_serde::option")]
    pub interval: Option<Duration>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Federation keeps the source's labels by default, as Prometheus docs advise.
    pub honor_labels: bool,
    /// `[limits]` for this Prometheus alone (a cluster's federation is
    /// often more than the default 50,000 samples).
    pub limits: TargetLimits,
}

impl Default for FederateJob {
    fn default() -> Self {
        FederateJob {
            job: "federate".into(),
            url: String::new(),
            matchers: Vec::new(),
            interval: None,
            timeout: None,
            honor_labels: true,
            limits: TargetLimits::default(),
        }
    }
}

/// One concrete scrape target, after expanding jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    pub cluster: String,
    pub job: String,
    /// Value of the `instance` label: `host:port` of the URL.
    pub instance: String,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub honor_labels: bool,
    /// The job's own limits, over `[limits]`.
    pub limits: TargetLimits,
}

impl Config {
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::from_toml_str(&text, path)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        check_scrape_timing("scrape", self.scrape.interval, self.scrape.timeout)?;
        let l = &self.limits;
        for (name, v) in [
            ("limits.body_bytes", l.body_bytes),
            ("limits.samples_per_scrape", l.samples_per_scrape),
            ("limits.labels_per_series", l.labels_per_series),
            ("limits.label_name_length", l.label_name_length),
            ("limits.label_value_length", l.label_value_length),
            ("api.max_body_bytes", self.api.max_body_bytes),
            ("api.max_points", self.api.max_points),
        ] {
            if v == 0 {
                return invalid(format!("{name} must be greater than 0"));
            }
        }
        if self.duckdb_threads == Some(0) {
            return invalid("duckdb_threads must be greater than 0".into());
        }
        if !is_duckdb_memory_size(&self.duckdb_memory_limit) {
            return invalid(format!(
                "duckdb_memory_limit {:?}: expected a size such as \"128MB\", \"2GiB\" or \"10%\"",
                self.duckdb_memory_limit
            ));
        }
        for c in &self.clusters {
            for f in &c.federate {
                for m in &f.matchers {
                    if let Err(e) = crate::views::selector::Selector::parse(m) {
                        return invalid(format!(
                            "cluster {:?}, federate job {:?}: match {m:?}: {e}",
                            c.name, f.job
                        ));
                    }
                }
            }
        }
        let r = &self.retention;
        if r.one_minute < Duration::from_secs(3600) {
            return invalid("retention.1m must be at least 1h".into());
        }
        if r.five_minutes < r.one_minute || r.one_hour < r.five_minutes {
            return invalid(
                "retention must not shrink with coarser resolution (1m <= 5m <= 1h)".into(),
            );
        }
        for (name, keep) in [("graph", r.graph), ("events", r.events)] {
            if keep < Duration::from_secs(3600) {
                return invalid(format!("retention.{name} must be at least 1h"));
            }
        }
        if let Some(token) = &self.api.bearer_token {
            if token.trim().is_empty() {
                return invalid("api.bearer_token is set but empty".into());
            }
        }
        let prefix = &self.api.grafana_prefix;
        if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
            return invalid(format!(
                "api.grafana_prefix {prefix:?} must start with / and not end with /"
            ));
        }
        if self.api.basic_auth_user.is_some() != self.api.basic_auth_password.is_some() {
            return invalid("api.basic_auth_user and api.basic_auth_password go together".into());
        }
        let g = &self.graph;
        if g.max_pending_spans == 0 || g.max_body_bytes == 0 || g.queue_batches == 0 {
            return invalid("graph.max_pending_spans, graph.max_body_bytes and graph.queue_batches must be greater than 0".into());
        }
        if !(0.0..=1.0).contains(&g.degraded_error_rate)
            || !(0.0..=1.0).contains(&g.failing_error_rate)
            || g.degraded_error_rate > g.failing_error_rate
        {
            return invalid(
                "graph error-rate thresholds must be within 0..1 with degraded <= failing".into(),
            );
        }
        let mut names = HashSet::new();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.name.trim().is_empty() {
                return invalid(format!("cluster[{i}].name is empty"));
            }
            if !names.insert(c.name.as_str()) {
                return invalid(format!("cluster name {:?} appears twice", c.name));
            }
            for j in &c.static_jobs {
                if j.job.is_empty() {
                    return invalid(format!(
                        "cluster {:?}: a static job has no `job` name",
                        c.name
                    ));
                }
                if j.targets.is_empty() {
                    return invalid(format!(
                        "cluster {:?} job {:?}: `targets` is empty",
                        c.name, j.job
                    ));
                }
            }
            for f in &c.federate {
                if f.matchers.is_empty() {
                    return invalid(format!(
                        "cluster {:?} federate {:?}: at least one `match` selector is required",
                        c.name, f.url
                    ));
                }
            }
        }
        // Two targets with one (cluster, job, instance) would write the same
        // series (their `up` and `scrape_*` at least) from two places.
        let mut seen = HashMap::new();
        for t in self.targets()? {
            check_scrape_timing(&format!("target {}", t.url), t.interval, t.timeout)?;
            if t.limits.samples_per_scrape == Some(0) || t.limits.body_bytes == Some(0) {
                return invalid(format!(
                    "target {}: its job's limits must be greater than 0",
                    t.url
                ));
            }
            let key = (t.cluster.clone(), t.job.clone(), t.instance.clone());
            if let Some(other) = seen.insert(key, t.url.clone()) {
                return invalid(if other == t.url {
                    format!(
                        "target {} appears twice in cluster {:?} job {:?}",
                        t.url, t.cluster, t.job
                    )
                } else {
                    format!(
                        "targets {other} and {} in cluster {:?} job {:?} are both instance {:?}, \
                         so their series would collide; give them different jobs (or, for \
                         /federate, one block with both `match` lists)",
                        t.url, t.cluster, t.job, t.instance
                    )
                });
            }
        }
        Ok(())
    }

    /// Expands the configured jobs into concrete targets.
    pub fn targets(&self) -> Result<Vec<TargetSpec>, ConfigError> {
        let mut out = Vec::new();
        for c in &self.clusters {
            for j in &c.static_jobs {
                let scheme = j.scheme.as_deref().unwrap_or("http");
                let path = j.metrics_path.as_deref().unwrap_or("/metrics");
                for t in &j.targets {
                    let url = if t.contains("://") {
                        t.clone()
                    } else {
                        format!("{scheme}://{t}{path}")
                    };
                    out.push(TargetSpec {
                        cluster: c.name.clone(),
                        job: j.job.clone(),
                        instance: instance_of(&url)?,
                        url,
                        interval: j.interval.unwrap_or(self.scrape.interval),
                        timeout: j.timeout.unwrap_or(self.scrape.timeout),
                        honor_labels: j.honor_labels,
                        limits: j.limits,
                    });
                }
            }
            for f in &c.federate {
                let base = f.url.trim_end_matches('/');
                let base = base.strip_suffix("/federate").unwrap_or(base);
                let mut url = format!("{base}/federate?");
                for (i, m) in f.matchers.iter().enumerate() {
                    if i > 0 {
                        url.push('&');
                    }
                    url.push_str("match%5B%5D=");
                    url.push_str(&percent_encode(m));
                }
                out.push(TargetSpec {
                    cluster: c.name.clone(),
                    job: f.job.clone(),
                    instance: instance_of(&url)?,
                    url,
                    interval: f.interval.unwrap_or(self.scrape.interval),
                    timeout: f.timeout.unwrap_or(self.scrape.timeout),
                    honor_labels: f.honor_labels,
                    limits: f.limits,
                });
            }
        }
        Ok(out)
    }
}

/// The longest scrape interval accepted.
const MAX_SCRAPE_INTERVAL: Duration = Duration::from_secs(30 * 60);

fn check_scrape_timing(
    what: &str,
    interval: Duration,
    timeout: Duration,
) -> Result<(), ConfigError> {
    if interval < Duration::from_secs(1) {
        return Err(ConfigError::Invalid(format!(
            "{what}: interval must be at least 1s"
        )));
    }
    // The store forgets, hourly, the numbers of series that wrote no row
    // since the last sweep; a target must write a row more often.
    if interval > MAX_SCRAPE_INTERVAL {
        return Err(ConfigError::Invalid(format!(
            "{what}: interval ({}) must be at most {}",
            humantime::format_duration(interval),
            humantime::format_duration(MAX_SCRAPE_INTERVAL)
        )));
    }
    if timeout.is_zero() || timeout > interval {
        return Err(ConfigError::Invalid(format!(
            "{what}: timeout ({}) must be positive and not longer than the interval ({})",
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        )));
    }
    Ok(())
}

/// `host:port` of an http(s) URL, as Prometheus sets `instance`.
fn instance_of(url: &str) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "target {url:?}: only http:// and https:// are supported"
            ))
        })?;
    // What the HTTP client would refuse at every scrape (a bad port, an
    // empty or invalid host) is refused here, where it can be fixed.
    reqwest::Url::parse(url).map_err(|e| ConfigError::Invalid(format!("target {url:?}: {e}")))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(ConfigError::Invalid(format!("target {url:?}: no host")));
    }
    Ok(authority.to_string())
}

/// A size DuckDB's `memory_limit` takes: a number and a unit (bytes, KB..TB,
/// KiB..TiB, spelled out or by initial, any case) or a percentage.
fn is_duckdb_memory_size(text: &str) -> bool {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.parse::<f64>().is_err() {
        return false;
    }
    const UNITS: [&str; 25] = [
        "",
        "%",
        "b",
        "byte",
        "bytes",
        "k",
        "kb",
        "kib",
        "kilobyte",
        "kilobytes",
        "m",
        "mb",
        "mib",
        "megabyte",
        "megabytes",
        "g",
        "gb",
        "gib",
        "gigabyte",
        "gigabytes",
        "t",
        "tb",
        "tib",
        "terabyte",
        "terabytes",
    ];
    UNITS.contains(&unit.trim().to_ascii_lowercase().as_str())
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl GraphSettings {
    pub fn graph_config(&self) -> crate::graph::GraphConfig {
        crate::graph::GraphConfig {
            pairing: crate::graph::pairing::PairingConfig {
                wait: self.pairing_wait,
                max_items: self.max_pending_spans,
            },
            queue_batches: self.queue_batches,
            health: crate::graph::HealthThresholds {
                degraded: self.degraded_error_rate,
                failing: self.failing_error_rate,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/fleetscope.example.toml");
        let config = Config::load(&path).expect("example config is valid");
        assert!(!config.clusters.is_empty());
        assert!(!config.targets().expect("targets expand").is_empty());
    }

    #[test]
    fn federate_url_encodes_match() {
        let config = Config::from_toml_str(
            r#"
[[cluster]]
name = "sh-1"
[[cluster.federate]]
url = "http://prom:9090"
match = ['{job=~"node|kubelet"}']
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        config.validate().unwrap();
        let t = &config.targets().unwrap()[0];
        assert_eq!(
            t.url,
            "http://prom:9090/federate?match%5B%5D=%7Bjob%3D~%22node%7Ckubelet%22%7D"
        );
        assert_eq!(t.instance, "prom:9090");
        assert!(t.honor_labels);
        // Two blocks reading one Prometheus under one job would write the
        // same `up` and `scrape_*` series from two targets.
        let twice = Config::from_toml_str(
            r#"
[[cluster]]
name = "sh-1"
[[cluster.federate]]
url = "http://prom:9090"
match = ['{job="node"}']
[[cluster.federate]]
url = "http://prom:9090"
match = ['{job="kubelet"}']
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        let e = twice.validate().unwrap_err().to_string();
        assert!(e.contains("would collide"), "{e}");
        // A federation larger than `[limits]` allows, raised for it alone.
        let big = Config::from_toml_str(
            r#"
[limits]
samples_per_scrape = 1000
[[cluster]]
name = "sh-1"
[[cluster.federate]]
url = "http://prom:9090"
match = ['{job="node"}']
limits = { samples_per_scrape = 2000000, body_bytes = 536870912 }
[[cluster.static]]
job = "node"
targets = ["10.0.0.1:9100"]
"#,
            Path::new("t.toml"),
        )
        .unwrap();
        big.validate().unwrap();
        let limits: Vec<Limits> = big
            .targets()
            .unwrap()
            .iter()
            .map(|t| big.limits.for_target(t.limits))
            .collect();
        assert_eq!(
            limits
                .iter()
                .map(|l| (l.samples_per_scrape, l.body_bytes))
                .collect::<Vec<_>>(),
            [(1000, 64 << 20), (2_000_000, 512 << 20)]
        );
    }

    #[test]
    fn errors_are_precise() {
        let bad = Config::from_toml_str("listen = 5", Path::new("x.toml")).unwrap_err();
        assert!(bad.to_string().contains("x.toml"), "{bad}");
        let unknown =
            Config::from_toml_str("lisen = \"1.2.3.4:5\"", Path::new("x.toml")).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
        let mut c = Config::default();
        c.scrape.timeout = Duration::from_secs(60);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("timeout"), "{e}");
        c.scrape.interval = Duration::from_secs(3600);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("must be at most 30m"), "{e}");
        let mut c = Config::default();
        for good in ["128MB", "2GiB", "1.5 GB", "512mb", "10%", "1000000"] {
            c.duckdb_memory_limit = good.into();
            assert!(c.validate().is_ok(), "{good}");
        }
        c.duckdb_memory_limit = "lots".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("duckdb_memory_limit"), "{e}");
        let federate = Config::from_toml_str(
            "[[cluster]]\nname = \"a\"\n[[cluster.federate]]\nurl = \"http://p:9090\"\nmatch = ['{job=']",
            Path::new("x.toml"),
        )
        .unwrap();
        let e = federate.validate().unwrap_err().to_string();
        assert!(e.contains("match \"{job=\""), "{e}");
        for target in ["127.0.0.1:99999", "::1:9100", "h :1"] {
            let bad = Config::from_toml_str(
                &format!("[[cluster]]\nname = \"a\"\n[[cluster.static]]\njob = \"j\"\ntargets = [\"{target}\"]"),
                Path::new("x.toml"),
            )
            .unwrap();
            let e = bad.targets().unwrap_err().to_string();
            assert!(e.contains(target), "{target}: {e}");
        }
        let threads = Config::from_toml_str("duckdb_threads = 0", Path::new("x.toml")).unwrap();
        let e = threads.validate().unwrap_err().to_string();
        assert!(e.contains("duckdb_threads"), "{e}");
        let events = Config::from_toml_str(
            "[retention]\nevents = \"10m\"\ngraph = \"90days\"",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(events.retention.graph, Duration::from_secs(90 * 86_400));
        let e = events.validate().unwrap_err().to_string();
        assert!(e.contains("retention.events"), "{e}");
    }
}
