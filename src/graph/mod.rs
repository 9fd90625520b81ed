//! The service -> middleware -> database dependency graph, from trace spans
//! (OTLP, Zipkin) plus Kubernetes events and alerts.
//!
//! Owns span decoding, caller/callee pairing with a bounded waiting store,
//! per-minute edge statistics (handed to the store like rollups), and the
//! graph questions (whole map, k-hop focus, blast radius, health). It must
//! not serve HTTP (the api module does) nor touch scraped metrics.

pub mod decode;
mod live;
pub mod model;
pub mod pairing;
pub mod query;
pub mod span;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use live::LiveGraph;
use model::Event;
use pairing::{PairingConfig, PairingStats};
use span::SpanRecord;

use crate::store::{StoreWriter, WriteBatch};

/// Health thresholds on a node's incoming error rate (Kiali's defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthThresholds {
    /// At or above: degraded (default 0.1%).
    pub degraded: f64,
    /// Above: failing (default 10%).
    pub failing: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            degraded: 0.001,
            failing: 0.10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphConfig {
    pub pairing: PairingConfig,
    /// Decoded batches waiting for the graph; beyond it ingest answers 503.
    pub queue_batches: usize,
    pub health: HealthThresholds,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            pairing: PairingConfig::default(),
            queue_batches: 1024,
            health: HealthThresholds::default(),
        }
    }
}

/// Span-ingest counters for `/metrics` and the API.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GraphStats {
    pub spans: u64,
    pub waiting: usize,
    pub pairing: PairingStats,
}

/// Handle shared by the HTTP ingest routes and the queries.
#[derive(Clone)]
pub struct GraphService {
    tx: mpsc::Sender<Vec<SpanRecord>>,
    live: Arc<Mutex<LiveGraph>>,
    writer: StoreWriter,
    pub config: GraphConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("span queue is full")]
    QueueFull,
    #[error("the graph worker has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// This host's clock, in Unix nanoseconds (0 before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl GraphService {
    /// Starts the worker that pairs spans and flushes complete minutes.
    pub fn start(
        config: GraphConfig,
        writer: StoreWriter,
        shutdown: CancellationToken,
    ) -> (GraphService, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Vec<SpanRecord>>(config.queue_batches.max(1));
        let live = Arc::new(Mutex::new(LiveGraph::new(config.pairing)));
        let service = GraphService {
            tx,
            live: live.clone(),
            writer: writer.clone(),
            config,
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    batch = rx.recv() => match batch {
                        Some(spans) => {
                            if let Ok(mut g) = live.lock() {
                                g.ingest(spans, now_ns());
                            }
                        }
                        None => break,
                    },
                    _ = tick.tick() => {
                        let now = now_ns();
                        let taken = live.lock().ok().map(|mut g| {
                            g.tick(now);
                            g.take_complete((now / 1_000_000_000) as i64)
                        });
                        if let Some((nodes, edges)) = taken {
                            flush(&writer, nodes, edges).await;
                        }
                    }
                    _ = shutdown.cancelled() => break,
                }
            }
            let taken = live.lock().ok().map(|mut g| g.take_all());
            if let Some((nodes, edges)) = taken {
                flush(&writer, nodes, edges).await;
            }
        });
        (service, task)
    }

    /// Queues decoded spans; refuses (never blocks) when the queue is full.
    pub fn submit(&self, spans: Vec<SpanRecord>) -> Result<(), GraphError> {
        if spans.is_empty() {
            return Ok(());
        }
        self.tx.try_send(spans).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => GraphError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => GraphError::Stopped,
        })
    }

    /// Returns once the events are committed.
    pub async fn submit_events(&self, events: Vec<Event>) -> Result<(), GraphError> {
        self.writer.store_events(events).await?;
        Ok(())
    }

    pub fn stats(&self) -> GraphStats {
        self.live
            .lock()
            .map(|g| GraphStats {
                spans: g.spans,
                waiting: g.waiting(),
                pairing: g.pairing_stats(),
            })
            .unwrap_or_default()
    }

    pub(crate) fn live(&self) -> &Arc<Mutex<LiveGraph>> {
        &self.live
    }
}

async fn flush(
    writer: &StoreWriter,
    graph_nodes: Vec<model::Node>,
    graph_edges: Vec<model::EdgeRow>,
) {
    if graph_nodes.is_empty() && graph_edges.is_empty() {
        return;
    }
    let batch = WriteBatch {
        graph_nodes,
        graph_edges,
        ..Default::default()
    };
    if let Err(e) = writer.write(batch).await {
        tracing::error!(error = %e, "cannot hand graph rows to the store");
    }
}
