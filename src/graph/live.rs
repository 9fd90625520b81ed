//! The live graph: pairing plus per-minute edge windows in memory, handed
//! to the store as they complete.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::model::{EdgeKind, EdgeObservation, EdgeRow, EdgeStats, Node};
use super::pairing::{Pairer, PairingConfig, PairingStats};
use super::span::SpanRecord;

/// Interned nodes are keyed by identity: no string hashing per call.
type EdgeKey = (usize, usize, EdgeKind);
type EdgeCell = (Arc<Node>, Arc<Node>, EdgeStats);
type FastMap<K, V> = HashMap<K, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

/// Minutes kept in memory before they are flushed; late spans for a
/// flushed minute become an extra row for it (rows are additive).
const FLUSH_AFTER_SECS: i64 = 60;

pub struct LiveGraph {
    pairer: Pairer,
    nodes: FastMap<String, Node>,
    unsaved_nodes: Vec<Node>,
    windows: BTreeMap<i64, FastMap<EdgeKey, EdgeCell>>,
    /// Spans accepted by ingest (after decoding).
    pub spans: u64,
}

impl LiveGraph {
    pub fn new(config: PairingConfig) -> LiveGraph {
        LiveGraph {
            pairer: Pairer::new(config),
            nodes: FastMap::default(),
            unsaved_nodes: Vec::new(),
            windows: BTreeMap::new(),
            spans: 0,
        }
    }

    pub fn pairing_stats(&self) -> PairingStats {
        self.pairer.stats
    }

    pub fn waiting(&self) -> usize {
        self.pairer.waiting()
    }

    pub fn ingest(&mut self, spans: Vec<SpanRecord>, now_ns: u64) {
        let mut out = Vec::new();
        for span in spans {
            self.spans += 1;
            self.pairer.add(span, now_ns, &mut out);
        }
        self.pairer.expire(now_ns, &mut out);
        for obs in out {
            self.record(obs);
        }
    }

    /// Expires spans that waited too long (call periodically).
    pub fn tick(&mut self, now_ns: u64) {
        let mut out = Vec::new();
        self.pairer.expire(now_ns, &mut out);
        for obs in out {
            self.record(obs);
        }
    }

    fn record(&mut self, obs: EdgeObservation) {
        for node in [&obs.source, &obs.target] {
            if !self.nodes.contains_key(node.id.as_str()) {
                self.nodes.insert(node.id.clone(), Node::clone(node));
                self.unsaved_nodes.push(Node::clone(node));
            }
        }
        let minute = obs.at.div_euclid(60) * 60;
        let key = (
            Arc::as_ptr(&obs.source) as usize,
            Arc::as_ptr(&obs.target) as usize,
            obs.kind,
        );
        let (_, _, stats) = self
            .windows
            .entry(minute)
            .or_default()
            .entry(key)
            .or_insert_with(|| (obs.source.clone(), obs.target.clone(), EdgeStats::default()));
        stats.requests += 1;
        stats.errors += u64::from(obs.error);
        if let Some(ms) = obs.client_ms {
            stats.client.observe(ms);
        }
        if let Some(ms) = obs.server_ms {
            stats.server.observe(ms);
        }
        if let (Some(c), Some(s)) = (obs.client_ms, obs.server_ms) {
            stats.paired += 1;
            stats.network_sum_ms += (c - s).max(0.0);
        }
    }

    /// Nodes not yet saved, and edge rows of minutes that ended more than a
    /// minute ago.
    pub fn take_complete(&mut self, now_secs: i64) -> (Vec<Node>, Vec<EdgeRow>) {
        let horizon = now_secs - FLUSH_AFTER_SECS - 60;
        let keep = self.windows.split_off(&(horizon + 1));
        let done = std::mem::replace(&mut self.windows, keep);
        (std::mem::take(&mut self.unsaved_nodes), rows(done))
    }

    /// Everything still in memory (shutdown).
    pub fn take_all(&mut self) -> (Vec<Node>, Vec<EdgeRow>) {
        (
            std::mem::take(&mut self.unsaved_nodes),
            rows(std::mem::take(&mut self.windows)),
        )
    }

    /// Unflushed rows overlapping `[start, end)`, for queries that include "now".
    pub fn open_rows(&self, start: i64, end: i64) -> Vec<EdgeRow> {
        self.windows
            .range(start.div_euclid(60) * 60..end)
            .flat_map(|(minute, edges)| {
                edges.iter().map(|((_, _, kind), (s, t, stats))| EdgeRow {
                    minute: *minute,
                    source: s.id.clone(),
                    target: t.id.clone(),
                    kind: *kind,
                    stats: stats.clone(),
                })
            })
            .collect()
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }
}

fn rows(windows: BTreeMap<i64, FastMap<EdgeKey, EdgeCell>>) -> Vec<EdgeRow> {
    windows
        .into_iter()
        .flat_map(|(minute, edges)| {
            edges
                .into_iter()
                .map(move |((_, _, kind), (source, target, stats))| EdgeRow {
                    minute,
                    source: source.id.clone(),
                    target: target.id.clone(),
                    kind,
                    stats,
                })
        })
        .collect()
}
