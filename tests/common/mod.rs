//! Test harness: real programs on loopback (the fleetscope binary, Debian's
//! prometheus and prometheus-node-exporter) and small scripted HTTP targets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Python of the venv that scripts/test-deps.sh fills
/// (`FLEETSCOPE_VENV`, else `~/.cache/fleetscope/venv`).
pub fn test_venv_python() -> PathBuf {
    let venv = std::env::var_os("FLEETSCOPE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("FLEETSCOPE_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                        .join(".cache/fleetscope")
                })
                .join("venv")
        });
    venv.join("bin/python")
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        let child = cmd.stdin(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {name}: {e} (run scripts/test.sh, which installs it)")
        });
        Proc {
            child,
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {}", self.name);
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `fleetscope serve`.
pub struct Fleetscope {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

pub fn fleetscope_bin() -> &'static str {
    env!("CARGO_BIN_EXE_fleetscope")
}

impl Fleetscope {
    /// Writes `config` (TOML without `listen`/`data_dir`) and starts the binary.
    pub async fn start(dir: &Path, config: &str) -> Fleetscope {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let data_dir = dir.join("data");
        let config_path = dir.join("fleetscope.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut cmd = Command::new(fleetscope_bin());
        cmd.args(["serve", "--config"])
            .arg(&config_path)
            .args(["--listen", &addr.to_string(), "--data-dir"])
            .arg(&data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn("fleetscope", &mut cmd);
        // Keep draining stdout so the banner never blocks the process.
        if let Some(out) = proc.child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    println!("[fleetscope] {line}");
                }
            });
        }
        let fs = Fleetscope {
            proc,
            addr,
            data_dir,
        };
        let client = http();
        let url = fs.url("/readyz");
        eventually(Duration::from_secs(30), "fleetscope /readyz", || {
            let (client, url) = (client.clone(), url.clone());
            async move {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        fs
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = http().get(self.url(path)).send().await.expect("request");
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.expect("json")
    }

    pub async fn targets(&self) -> Vec<serde_json::Value> {
        let v = self.get_json("/api/v1/targets").await;
        v["data"]["targets"].as_array().cloned().unwrap_or_default()
    }

    /// fleetscope's own `/metrics` text.
    pub async fn self_metrics(&self) -> String {
        let r = http()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        r.text().await.expect("metrics text")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(fleetscope::store::DB_FILE)
    }
}

/// A real node exporter on a free loopback port.
pub fn start_node_exporter() -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("prometheus-node-exporter");
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (Proc::spawn("prometheus-node-exporter", &mut cmd), port)
}

pub async fn wait_http_ok(url: &str) {
    let client = http();
    eventually(Duration::from_secs(30), url, || {
        let (client, url) = (client.clone(), url.to_string());
        async move {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await;
}

/// Opens the DuckDB file of a stopped fleetscope, read-only.
pub fn open_db(path: &Path) -> duckdb::Connection {
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)
        .expect("config");
    duckdb::Connection::open_with_flags(path, config).expect("open db")
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A real Prometheus scraping the given targets every second.
pub fn start_prometheus(
    dir: &Path,
    job: &str,
    targets: &[String],
    extra_labels: &str,
) -> (Proc, u16) {
    let port = free_port();
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n        labels: {{{extra_labels}}}\n",
        targets.join(", ")
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (Proc::spawn("prometheus", &mut cmd), port)
}
