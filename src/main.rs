//! The `fleetscope` command line: parse arguments, load config, start tracing,
//! hand over to the library, turn the result into an exit code.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use fleetscope::app::{self, ServeOptions};
use fleetscope::config::Config;
use fleetscope::scrape::parse::Format;

#[derive(Parser)]
#[command(
    name = "fleetscope",
    version,
    about = "Fleet-wide Kubernetes observability: scrape, roll up into DuckDB, serve to Grafana"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Scrape the configured targets, keep rollups, serve the API.
    Serve {
        /// TOML config; without it fleetscope runs the embedded default
        /// (self-scrape plus a local node exporter when one answers).
        #[arg(long, env = "FLEETSCOPE_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides `listen` from the config.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Overrides `data_dir` from the config.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate a config file and print the effective config.
    CheckConfig { file: PathBuf },
    /// Validate an exposition payload like `promtool check metrics`.
    CheckMetrics {
        #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
        format: FormatArg,
        /// Print every parsed sample as a JSON line.
        #[arg(long)]
        print: bool,
        /// File to check; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Write a synthetic fleet history (cAdvisor, kube-state-metrics and node
    /// exporter series) into a data directory: for demos and view benchmarks.
    Seed {
        #[arg(long, default_value = "./fleetscope-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 3)]
        clusters: usize,
        #[arg(long, default_value_t = 4)]
        namespaces: usize,
        /// Pods per namespace.
        #[arg(long, default_value_t = 25)]
        pods: usize,
        /// Nodes per cluster.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value_t = 24)]
        hours: i64,
    },
    /// Print the version.
    Version,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Auto,
    Prometheus,
    Openmetrics,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("FLEETSCOPE_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version => {
            println!("fleetscope {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(config) => {
                println!(
                    "{}",
                    toml::to_string_pretty(&config).context("rendering config")?
                );
                let targets = config.targets()?;
                eprintln!(
                    "{}: valid, {} clusters, {} targets",
                    file.display(),
                    config.clusters.len(),
                    targets.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::CheckMetrics {
            format,
            print,
            file,
        } => {
            let mut input = Vec::new();
            match file.as_deref() {
                None => std::io::stdin().read_to_end(&mut input),
                Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut input),
                Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_to_end(&mut input)),
            }
            .context("reading input")?;
            let format = match format {
                FormatArg::Auto => None,
                FormatArg::Prometheus => Some(Format::Prometheus),
                FormatArg::Openmetrics => Some(Format::OpenMetrics),
            };
            let stdout = std::io::stdout();
            let mut lock = std::io::BufWriter::new(stdout.lock());
            let printer: Option<&mut dyn Write> = if print { Some(&mut lock) } else { None };
            let result = fleetscope::check::check_metrics(&input, format, printer);
            let _ = lock.flush();
            match result {
                Ok(_) => Ok(ExitCode::SUCCESS),
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Seed {
            data_dir,
            clusters,
            namespaces,
            pods,
            nodes,
            hours,
        } => {
            init_tracing();
            let existing = data_dir.join(fleetscope::store::DB_FILE);
            if existing.exists() {
                anyhow::bail!(
                    "{} already holds a store: seed writes its history into a new data directory \
                     (over an existing one it would add a second copy of every minute)",
                    existing.display()
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let shape = fleetscope::synthetic::FleetShape {
                clusters,
                namespaces_per_cluster: namespaces,
                pods_per_namespace: pods,
                nodes_per_cluster: nodes,
                minutes: hours * 60,
                end_minute: now / 60 * 60,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let (series, rows) = runtime.block_on(async {
                let options = fleetscope::store::StoreOptions::new(&data_dir, Default::default());
                let telemetry = std::sync::Arc::new(fleetscope::telemetry::Telemetry::default());
                let (writer, _reader) = tokio::task::spawn_blocking(move || {
                    fleetscope::store::open(options, telemetry)
                })
                .await??;
                let written = fleetscope::synthetic::seed(&writer, &shape).await;
                writer.shutdown().await;
                anyhow::Ok(written?)
            })?;
            println!(
                "seeded {}: {} pods, {series} series, {rows} 1m rows over {hours}h",
                data_dir.display(),
                shape.pods()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            app::tune_allocator();
            init_tracing();
            let discover_local = config.is_none();
            let mut cfg = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            if let Some(listen) = listen {
                cfg.listen = listen;
            }
            if let Some(dir) = data_dir {
                cfg.data_dir = dir;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(app::serve(
                ServeOptions {
                    config: cfg,
                    discover_local,
                },
                shutdown_signal(),
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
