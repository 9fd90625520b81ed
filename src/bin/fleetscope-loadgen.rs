//! `fleetscope-loadgen`: serve a simulated fleet of exporters on loopback.
//!
//! Thin CLI over [`fleetscope::loadgen`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fleetscope::loadgen::{self, AddrMode, ConfigOptions, Fleet, ServeOptions, Shape};

#[derive(Parser)]
#[command(
    name = "fleetscope-loadgen",
    version,
    about = "Serve many realistic scrape targets (node exporter, cAdvisor, kube-state-metrics, DCGM) on loopback"
)]
struct Cli {
    #[arg(long, env = "LOADGEN_CLUSTERS", default_value_t = 2)]
    clusters: usize,
    /// Nodes per cluster.
    #[arg(long, env = "LOADGEN_NODES", default_value_t = 5)]
    nodes: usize,
    #[arg(long, env = "LOADGEN_PODS_PER_NODE", default_value_t = 30)]
    pods_per_node: usize,
    #[arg(long, env = "LOADGEN_CONTAINERS_PER_POD", default_value_t = 2)]
    containers_per_pod: usize,
    #[arg(long, env = "LOADGEN_GPUS_PER_NODE", default_value_t = 0)]
    gpus_per_node: usize,
    /// Pods rescheduled per minute per cluster (new names: series come and go).
    #[arg(long, env = "LOADGEN_CHURN_PER_MIN", default_value_t = 2.0)]
    churn_per_min: f64,
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
    seed: u64,
    /// Port of every listener (0: pick a free one).
    #[arg(long, default_value_t = 9100)]
    port: u16,
    /// Serve everything on 127.0.0.1 instead of one 127.1.x.y address per node.
    #[arg(long)]
    single_address: bool,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// gzip level when the scraper sends Accept-Encoding: gzip.
    #[arg(long, default_value_t = 1)]
    gzip_level: u32,
    /// Write fleetscope.toml and prometheus.yml for these targets into DIR.
    #[arg(long)]
    write_configs: Option<PathBuf>,
    /// Scrape interval written into the configs.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Scrape timeout written into the configs (default: min(10s, interval)).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// fleetscope's listen address in the written config.
    #[arg(long, default_value = "127.0.0.1:9470")]
    fleetscope_listen: String,
    /// fleetscope's data_dir in the written config.
    #[arg(long, default_value = "./fleetscope-data")]
    fleetscope_data_dir: PathBuf,
    /// Also send a shop's traces (OTLP/HTTP protobuf) to this URL, e.g.
    /// http://127.0.0.1:9470/v1/traces, for the service map.
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Traces a second sent to --otlp-endpoint (~12 spans each).
    #[arg(long, default_value_t = 50)]
    traces_per_sec: usize,
    /// Print the fleet's series counts and exit.
    #[arg(long)]
    summary: bool,
    /// Render every target N times on one thread, print samples/s and exit.
    #[arg(long)]
    bench_render: Option<usize>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let shape = Shape {
        clusters: cli.clusters,
        nodes_per_cluster: cli.nodes,
        pods_per_node: cli.pods_per_node,
        containers_per_pod: cli.containers_per_pod,
        gpus_per_node: cli.gpus_per_node,
        churn_per_min: cli.churn_per_min,
        seed: cli.seed,
    };
    if let Some(rounds) = cli.bench_render {
        let fleet = Fleet::new(shape);
        let _ = loadgen::bench_render(&fleet, 1, None); // build the static text
        for level in [None, Some(cli.gzip_level)] {
            let (samples, secs) = loadgen::bench_render(&fleet, rounds, level);
            println!(
                "render{}: {samples} samples in {secs:.3}s = {:.0} samples/s on one thread",
                level.map(|l| format!(" + gzip -{l}")).unwrap_or_default(),
                samples as f64 / secs
            );
        }
        return Ok(());
    }
    let fleet = Fleet::new(shape.clone());
    let summary = fleet.summary();
    println!(
        "fleet: {} clusters x {} nodes, {} pods/node x {} containers, {} GPUs/node, churn {}/min/cluster, seed {}",
        shape.clusters, shape.nodes_per_cluster, shape.pods_per_node, shape.containers_per_pod,
        shape.gpus_per_node, shape.churn_per_min, shape.seed
    );
    for (job, (targets, series)) in &summary.per_kind {
        println!(
            "  {job:<20} {targets:>6} targets {series:>10} series ({:.0}/target)",
            *series as f64 / *targets as f64
        );
    }
    println!(
        "  total                {:>6} targets {:>10} series, {:.0} samples/s at {}, {:.1} MB per round uncompressed",
        summary.targets,
        summary.series,
        summary.series as f64 / cli.interval.as_secs_f64(),
        humantime::format_duration(cli.interval),
        summary.bytes as f64 / 1e6
    );
    if cli.summary {
        return Ok(());
    }
    let lg = loadgen::serve(
        fleet,
        ServeOptions {
            port: cli.port,
            addr_mode: if cli.single_address {
                AddrMode::Single
            } else {
                AddrMode::PerNode
            },
            speed: cli.speed,
            gzip_level: cli.gzip_level,
        },
    )
    .await?;
    println!(
        "serving {} targets on {} listener(s), e.g. {}",
        lg.targets.len(),
        lg.listeners.len(),
        lg.targets[0].url()
    );
    if let Some(dir) = &cli.write_configs {
        let timeout = cli
            .timeout
            .unwrap_or(cli.interval.min(Duration::from_secs(10)));
        let written = loadgen::write_configs(
            dir,
            &lg.targets,
            &ConfigOptions {
                interval: cli.interval,
                timeout,
                listen: cli.fleetscope_listen.clone(),
                data_dir: cli.fleetscope_data_dir.clone(),
                self_scrape: false,
                max_samples_per_target: summary.max_per_target,
            },
        )?;
        println!(
            "wrote {} and {}",
            written.fleetscope.display(),
            written.prometheus.display()
        );
        println!("point fleetscope at it:");
        println!(
            "  fleetscope serve --config {}",
            written.fleetscope.display()
        );
        println!(
            "  then open http://{}/api/v1/targets",
            cli.fleetscope_listen
        );
        println!("or Prometheus:");
        println!(
            "  prometheus --config.file={} --storage.tsdb.path=/tmp/prom-data --web.listen-address=127.0.0.1:9090",
            written.prometheus.display()
        );
    } else {
        println!("write matching fleetscope/Prometheus configs with --write-configs DIR");
    }
    if let Some(endpoint) = cli.otlp_endpoint.clone() {
        println!("sending {} traces/s to {endpoint}", cli.traces_per_sec);
        tokio::spawn(loadgen::spans::stream(
            endpoint,
            cli.traces_per_sec,
            cli.seed,
        ));
    }
    println!("ready");
    tokio::signal::ctrl_c().await?;
    let (scrapes, samples, bytes) = lg.served();
    println!("served {scrapes} scrapes, {samples} samples, {bytes} bytes");
    Ok(())
}
