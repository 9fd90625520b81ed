//! fleetscope: fleet-wide Kubernetes observability in one binary.
//!
//! Data flows one way; each module reads only from the one before it:
//!
//! ```text
//! targets -> scrape (fetch, parse, ingest) -> rollup (1m buckets) -> store (DuckDB writer)
//!                                                                      |
//!                                             api (HTTP, JSON) <- store reader
//! ```
//!
//! - [`config`]: typed config, defaults, validation.
//! - [`scrape`]: per-target tasks, bounded fetch, the exposition parser, ingest.
//! - [`rollup`]: in-memory 1-minute aggregates, counter resets.
//! - [`store`]: the single DuckDB writer, migrations, derivation, retention, reads.
//! - [`views`]: fleet views (heatmaps, cluster status, grouped series) over the store.
//! - [`api`]: the HTTP surface: native JSON and the Grafana JSON datasource.
//! - [`telemetry`]: fleetscope's own metrics.
//! - [`app`]: wiring and shutdown order; [`check`]: offline validators for the CLI.

pub mod api;
pub mod app;
pub mod check;
pub mod config;
pub mod graph;
pub mod kube_names;
pub mod loadgen;
pub mod rollup;
pub mod scrape;
pub mod store;
pub mod synthetic;
pub mod telemetry;
pub mod views;
