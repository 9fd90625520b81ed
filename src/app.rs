//! Wiring: opens the store, starts one task per target, serves HTTP, and
//! shuts everything down in order (stop scraping -> flush open minutes ->
//! commit -> checkpoint).
//!
//! Owns task lifetimes and the start-up banner; it holds no logic of any stage.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::{Config, TargetSpec};
use crate::scrape::{self, ScrapeContext, TargetRegistry};
use crate::store::{self, StoreError, StoreOptions};
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    /// The last minutes scraped before the stop could not be committed;
    /// the next start's first scrapes begin new minutes.
    #[error("stopped without committing the last scraped minutes: {0}")]
    FinalCommit(StoreError),
}

/// Allocations at least this big get their own mapping from glibc, which
/// returns it to the system when freed.
const MMAP_THRESHOLD_BYTES: i32 = 1 << 20;

/// Sets glibc's allocator for a long-running server; call before any thread
/// starts. glibc raises its mmap threshold each time a big block is freed
/// (up to 32 MB), after which big, short-lived buffers (a minute's rollup
/// rows, Arrow batches, scrape bodies, a derivation's group array) come from
/// the arenas and stay resident there once freed. A fixed 1 MiB threshold
/// hands them back: on the 1 M-series fleet peak RSS fell by 18 % and RSS at
/// the end by 24 % (benches/README.md, session 10). An operator's own
/// `GLIBC_TUNABLES` or `MALLOC_MMAP_THRESHOLD_` wins.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set_by_operator = ["GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        if !set_by_operator {
            // SAFETY: mallopt only changes allocator parameters.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
            }
        }
    }
}

/// How `serve` was started.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub config: Config,
    /// No config file was given: also look for a node exporter on
    /// 127.0.0.1:9100 and scrape it when it answers.
    pub discover_local: bool,
}

const LOCAL_NODE_EXPORTER: &str = "http://127.0.0.1:9100/metrics";

async fn local_node_exporter_answers(client: &reqwest::Client) -> bool {
    matches!(
        client.get(LOCAL_NODE_EXPORTER).timeout(Duration::from_secs(1)).send().await,
        Ok(r) if r.status().is_success()
    )
}

pub async fn serve(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    let config = options.config;
    config.validate()?;
    let telemetry = Arc::new(Telemetry::default());

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AppError::Listen {
        addr: config.listen,
        source,
    })?;

    let mut store_options = StoreOptions::new(&config.data_dir, config.retention.clone());
    store_options.memory_limit = config.duckdb_memory_limit.clone();
    if let Some(threads) = config.duckdb_threads {
        store_options.threads = threads as usize;
    }
    let longest = config
        .targets()?
        .iter()
        .map(|t| t.interval + t.timeout)
        .max()
        .unwrap_or(config.scrape.interval + config.scrape.timeout);
    store_options.derive_lateness_secs = 120 + longest.as_secs() as i64;
    let store_telemetry = telemetry.clone();
    let (writer, reader) =
        tokio::task::spawn_blocking(move || store::open(store_options, store_telemetry))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))??;

    let client = scrape::fetch::client()?;
    let mut targets = config.targets()?;
    if config.self_scrape {
        targets.push(TargetSpec {
            cluster: "local".into(),
            job: "fleetscope".into(),
            instance: local.to_string(),
            url: format!("http://{local}/metrics"),
            interval: config.scrape.interval,
            timeout: config.scrape.timeout,
            honor_labels: false,
            limits: Default::default(),
        });
    }
    if options.discover_local && local_node_exporter_answers(&client).await {
        targets.push(TargetSpec {
            cluster: "local".into(),
            job: "node".into(),
            instance: "127.0.0.1:9100".into(),
            url: LOCAL_NODE_EXPORTER.into(),
            interval: config.scrape.interval,
            timeout: config.scrape.timeout,
            honor_labels: false,
            limits: Default::default(),
        });
    }

    let token = CancellationToken::new();
    let registry = TargetRegistry::default();
    let ctx = ScrapeContext {
        client,
        accept: scrape::fetch::accept_header(config.scrape.metric_name_escaping),
        limits: config.limits.clone(),
        writer: writer.clone(),
        telemetry: telemetry.clone(),
        bodies: Arc::default(),
        registry: registry.clone(),
        shutdown: token.clone(),
    };
    let (graph, graph_task) = crate::graph::GraphService::start(
        config.graph.graph_config(),
        writer.clone(),
        token.clone(),
    );
    let mut tasks = JoinSet::new();
    for spec in &targets {
        tasks.spawn(scrape::run_target(ctx.clone(), spec.clone()));
    }
    let ready = Arc::new(AtomicBool::new(false));
    let state = ApiState {
        reader,
        registry,
        telemetry,
        api: config.api.clone(),
        retention: config.retention.clone(),
        ready: ready.clone(),
        view_cache: api::new_view_cache(),
        graph,
        graph_max_body: config.graph.max_body_bytes,
        alert_firing_lease: config.graph.alert_firing_lease,
        completion_lag_secs: 60 + longest.as_secs() as i64,
    };
    let app = api::router(state);
    print_banner(&config, local, &targets);
    ready.store(true, Ordering::Relaxed);

    let server_token = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: flushing open buckets");
        server_token.cancel();
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .await;
    token.cancel();
    while tasks.join_next().await.is_some() {}
    let _ = graph_task.await;
    let committed = writer.sync().await;
    writer.shutdown().await;
    served.map_err(AppError::Serve)?;
    match committed {
        Ok(()) => {
            tracing::info!("stopped; all flushed buckets are committed");
            Ok(())
        }
        Err(e) => Err(AppError::FinalCommit(e)),
    }
}

fn print_banner(config: &Config, local: SocketAddr, targets: &[TargetSpec]) {
    println!(
        "fleetscope {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "  data:    {}",
        config.data_dir.join(store::DB_FILE).display()
    );
    println!("  targets: {}", targets.len());
    for t in targets.iter().take(20) {
        println!("    - {}/{} {}", t.cluster, t.job, t.url);
    }
    if targets.len() > 20 {
        println!(
            "    ... and {} more (GET /api/v1/targets)",
            targets.len() - 20
        );
    }
    println!(
        "  Grafana: add a JSON datasource (simpod-json-datasource) with URL http://{local}/grafana"
    );
}

#[cfg(test)]
mod tests {
    /// After tuning, a 1.5 MiB block is mapped on its own (and so unmapped
    /// when freed) even right after an 8 MiB block was freed, which left to
    /// glibc raises its threshold to 8 MiB and puts the next 1.5 MiB block
    /// in an arena. glibc marks a chunk it mapped on its own with bit 1 of
    /// the size word just before the block.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn big_blocks_stay_mapped_on_their_own_after_tuning() {
        super::tune_allocator();
        drop(std::hint::black_box(vec![1u8; 8 << 20]));
        let block = std::hint::black_box(vec![1u8; 3 << 19]);
        // SAFETY: glibc puts a chunk's size word right before every block
        // malloc returns; the block is live while it is read.
        let size_word = unsafe { *(block.as_ptr() as *const usize).sub(1) };
        assert_eq!(size_word & 2, 2, "1.5 MiB block came from an arena");
    }
}
