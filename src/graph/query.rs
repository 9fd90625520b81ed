//! Questions asked of the graph over a time range: the whole map (filtered,
//! collapsed when too big to draw), the k-hop neighbourhood of one node,
//! the blast radius of one node, and the events attached to nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use duckdb::types::Value;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{Bfs, Reversed};
use serde::Serialize;

use super::model::{EdgeKind, EdgeStats, Event, Histogram, Node, NodeKind};
use super::{GraphService, HealthThresholds};
use crate::store::{StoreError, StoreReader};

/// Grafana's Node Graph panel stops drawing well past this many nodes.
pub const MAX_DRAWN_NODES: usize = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: Node,
    /// Incoming requests per second.
    pub rate_in: f64,
    pub rate_out: f64,
    pub error_rate_in: f64,
    pub p95_ms: Option<f64>,
    pub health: Health,
    pub events: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    pub source: String,
    pub target: String,
    pub kind: EdgeKind,
    /// Requests per second over the range.
    pub rate: f64,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub client_p50_ms: Option<f64>,
    pub client_p95_ms: Option<f64>,
    pub client_p99_ms: Option<f64>,
    pub server_p50_ms: Option<f64>,
    pub server_p95_ms: Option<f64>,
    pub server_p99_ms: Option<f64>,
    /// Mean client-minus-server time (network, queueing), ms.
    pub network_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct GraphAnswer {
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
    pub notes: Vec<String>,
    /// Blast radius: request rate into the failed node and entering the affected services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_risk_rate: Option<f64>,
}

/// Everything known about a time range: traffic per edge, node metadata, events.
pub struct Loaded {
    edges: BTreeMap<(String, String, EdgeKind), EdgeStats>,
    nodes: HashMap<String, Node>,
    pub events: Vec<Event>,
    seconds: f64,
    health: HealthThresholds,
}

fn histogram(v: Value) -> Histogram {
    let counts = match v {
        Value::List(items) => items
            .into_iter()
            .map(|i| match i {
                Value::UBigInt(n) => n,
                Value::BigInt(n) => n.max(0) as u64,
                Value::Int(n) => n.max(0) as u64,
                Value::HugeInt(n) => n.max(0) as u64,
                _ => 0,
            })
            .collect(),
        _ => Vec::new(),
    };
    Histogram {
        counts,
        sum_ms: 0.0,
    }
}

/// The events of `[$2, $1)` (Unix seconds), newest first, at most 10,000.
/// Rows sharing a fingerprint and a start are one event sent several
/// times, read back as one:
/// - an alert's notifications (firing, each repeat, resolved: one
///   fingerprint and `startsAt`): `end_ms` is when it was resolved (NULL
///   while firing), its severity the firing one, and it counts in every
///   range from `startsAt` to its resolution, or while its last firing
///   notification's lease lasts (the stored `end_ms` of a firing row);
/// - the updates of one Kubernetes Event object (one `uid`, or namespace
///   and name, and first occurrence): it lasts until the latest update's
///   last occurrence, and reads as that update.
const EVENTS_IN_RANGE: &str = "
    SELECT time_ms, end_ms, cluster, namespace, service, source, reason, message, severity,
        fingerprint
    FROM (
        SELECT time_ms, end_ms, cluster, namespace, service, source, reason, message,
            severity, fingerprint, coalesce(end_ms, time_ms) AS until
        FROM events WHERE fingerprint IS NULL AND time_ms < $1 * 1000
        UNION ALL
        SELECT time_ms,
            CASE WHEN source = 'alert' THEN min(end_ms) FILTER (WHERE severity = 'resolved')
                ELSE max(end_ms) END,
            cluster, any_value(namespace), any_value(service), source,
            any_value(reason), arg_max(message, coalesce(end_ms, time_ms)),
            coalesce(
                arg_max(severity, coalesce(end_ms, time_ms)) FILTER (WHERE severity <> 'resolved'),
                'resolved'),
            fingerprint,
            coalesce(min(end_ms) FILTER (WHERE severity = 'resolved'), max(end_ms), time_ms)
        FROM events WHERE fingerprint IS NOT NULL AND time_ms < $1 * 1000
        GROUP BY fingerprint, time_ms, source, cluster
    )
    WHERE until >= $2 * 1000
    ORDER BY time_ms DESC LIMIT 10000";

/// Reads the range `[start, end)` (Unix seconds) from the store and the live
/// minutes still in memory. Edges are counted by whole minutes, every
/// minute the range touches, and rates are per second of those minutes up
/// to now: a range that does not start on a minute (Grafana's never do)
/// neither counts a minute's requests over a part of it nor leaves out a
/// minute it shows.
pub async fn load(
    reader: &StoreReader,
    graph: &GraphService,
    start: i64,
    end: i64,
    deadline: Duration,
) -> Result<Loaded, StoreError> {
    let minutes_from = start.div_euclid(60) * 60;
    let minutes_to = end.saturating_add(59).div_euclid(60) * 60;
    let counted_to = minutes_to
        .min(chrono::Utc::now().timestamp())
        .max(minutes_from + 1);
    let (stored, nodes, events) = reader
        .run(deadline, move |conn| {
            let mut stmt = conn.prepare(
                "SELECT ts, source, target, kind, requests, errors, paired, network_sum_ms, client_sum_ms, server_sum_ms,
                        client_hist, server_hist
                 FROM graph_edges_1m WHERE ts >= ? AND ts < ?",
            )?;
            let mut rows = stmt.query(duckdb::params![minutes_from, minutes_to])?;
            // Merged as read: a month of minutes is tens of thousands of
            // rows per edge, and only their sum is answered.
            let mut edges: BTreeMap<(String, String, EdgeKind), EdgeStats> = BTreeMap::new();
            while let Some(r) = rows.next()? {
                let kind: String = r.get(3)?;
                let mut client = histogram(r.get(10)?);
                client.sum_ms = r.get::<_, Option<f64>>(8)?.unwrap_or(0.0);
                let mut server = histogram(r.get(11)?);
                server.sum_ms = r.get::<_, Option<f64>>(9)?.unwrap_or(0.0);
                let kind = if kind == "async" { EdgeKind::Async } else { EdgeKind::Sync };
                edges
                    .entry((r.get(1)?, r.get(2)?, kind))
                    .or_default()
                    .merge(&EdgeStats {
                        requests: r.get(4)?,
                        errors: r.get(5)?,
                        paired: r.get(6)?,
                        network_sum_ms: r.get::<_, Option<f64>>(7)?.unwrap_or(0.0),
                        client,
                        server,
                    });
            }
            let mut stmt = conn.prepare("SELECT id, kind, name, namespace, cluster, system FROM graph_nodes")?;
            let nodes = stmt
                .query_map([], |r| {
                    Ok(Node {
                        id: r.get(0)?,
                        kind: NodeKind::parse(&r.get::<_, String>(1)?),
                        name: r.get(2)?,
                        namespace: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        cluster: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        system: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = conn.prepare(EVENTS_IN_RANGE)?;
            let mut events = stmt
                .query_map(duckdb::params![end, start], |r| {
                    Ok(Event {
                        time_ms: r.get(0)?,
                        end_ms: r.get(1)?,
                        cluster: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        namespace: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                        service: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                        source: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                        reason: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                        message: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                        severity: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                        fingerprint: r.get(9)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            events.reverse();
            Ok((edges, nodes, events))
        })
        .await?;
    let mut loaded = Loaded {
        edges: stored,
        nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
        events,
        seconds: (counted_to - minutes_from) as f64,
        health: graph.config.health,
    };
    let live_rows = match graph.live().lock() {
        Ok(live) => {
            for n in live.nodes() {
                loaded
                    .nodes
                    .entry(n.id.clone())
                    .or_insert_with(|| n.clone());
            }
            live.open_rows(minutes_from, minutes_to)
        }
        Err(_) => Vec::new(),
    };
    for row in live_rows {
        loaded
            .edges
            .entry((row.source, row.target, row.kind))
            .or_default()
            .merge(&row.stats);
    }
    Ok(loaded)
}

/// What a dashboard variable or option list over the service map lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeField {
    /// Of service nodes.
    Cluster,
    /// Of service nodes.
    Namespace,
    /// Of every node: what focus, blast radius and events take.
    Id,
}

impl NodeField {
    fn of(self, n: &Node) -> Option<&str> {
        match self {
            NodeField::Cluster if n.kind == NodeKind::Service => Some(&n.cluster),
            NodeField::Namespace if n.kind == NodeKind::Service => Some(&n.namespace),
            NodeField::Id => Some(&n.id),
            _ => None,
        }
    }
}

/// The clusters or namespaces the graph's service nodes carry, or the ids
/// of its nodes (stored and live), those in `scope` only, sorted. Spans
/// name clusters and namespaces (`k8s.cluster.name`, `k8s.namespace.name`),
/// and the names need not be the scrape config's, so a service map
/// filtered by the metrics' cluster names can come out empty.
pub async fn node_values(
    reader: &StoreReader,
    graph: &GraphService,
    field: NodeField,
    scope: GraphScope,
    deadline: Duration,
) -> Result<Vec<String>, StoreError> {
    let stored = reader
        .run(deadline, |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, kind, coalesce(cluster, ''), coalesce(namespace, '') FROM graph_nodes",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Node {
                    id: r.get(0)?,
                    kind: NodeKind::parse(&r.get::<_, String>(1)?),
                    name: String::new(),
                    cluster: r.get(2)?,
                    namespace: r.get(3)?,
                    system: String::new(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let mut values: BTreeSet<String> = BTreeSet::new();
    let mut offer = |n: &Node| {
        if let Some(v) = field.of(n).filter(|v| !v.is_empty()) {
            if n.kind != NodeKind::Service || scope.keeps_service(n) {
                values.insert(v.to_string());
            }
        }
    };
    stored.iter().for_each(&mut offer);
    if let Ok(live) = graph.live().lock() {
        live.nodes().for_each(&mut offer);
    }
    Ok(values.into_iter().collect())
}

/// Filters: an empty list means no filter.
#[derive(Debug, Clone, Default)]
pub struct GraphScope {
    pub clusters: Vec<String>,
    pub namespaces: Vec<String>,
}

impl GraphScope {
    fn keeps_service(&self, n: &Node) -> bool {
        (self.clusters.is_empty() || self.clusters.contains(&n.cluster))
            && (self.namespaces.is_empty() || self.namespaces.contains(&n.namespace))
    }
}

/// Kubernetes event reasons that mean the workload is down or restarting,
/// whatever the event's type says.
const FAILING_REASONS: [&str; 6] = [
    "CrashLoopBackOff",
    "OOMKilled",
    "BackOff",
    "Failed",
    "Evicted",
    "ImagePullBackOff",
];
const DEGRADED_REASONS: [&str; 4] = [
    "Unhealthy",
    "FailedScheduling",
    "ProbeWarning",
    "FailedMount",
];

/// Severities as alerting rules spell them (kube-prometheus' critical /
/// warning / info, PagerDuty's critical / error / warning / info, P1-P5,
/// sev0-sev4, syslog's levels, Zabbix' disaster / high / average),
/// compared without case.
const FAILING_SEVERITIES: [&str; 16] = [
    "critical",
    "crit",
    "fatal",
    "emergency",
    "emerg",
    "alert",
    "page",
    "error",
    "err",
    "high",
    "major",
    "disaster",
    "p0",
    "p1",
    "sev0",
    "sev1",
];
const DEGRADED_SEVERITIES: [&str; 11] = [
    "warning", "warn", "average", "medium", "moderate", "minor", "low", "p2", "p3", "sev2", "sev3",
];

/// Severities of alerts that report rather than warn, and a resolution.
const QUIET_SEVERITIES: [&str; 11] = [
    "resolved",
    "info",
    "informational",
    "information",
    "notice",
    "none",
    "debug",
    "ok",
    "p4",
    "p5",
    "sev4",
];

/// What one event says of its node's health: its reason first (a
/// CrashLoopBackOff fails the node whatever the event's type), then its
/// severity. A Kubernetes event of type Normal says nothing; an alert says
/// something fired, so one whose severity is missing or unknown degrades
/// its node, and only info-like severities (info, none, notice, P4...)
/// and a lone resolution leave it healthy.
fn health_of_event(e: &Event) -> Health {
    let reason = e.reason.as_str();
    let is = |list: &[&str]| list.iter().any(|s| e.severity.eq_ignore_ascii_case(s));
    let an_alert_that_fired = e.source == "alert" && !is(&QUIET_SEVERITIES);
    if FAILING_REASONS.contains(&reason) || is(&FAILING_SEVERITIES) {
        Health::Failing
    } else if DEGRADED_REASONS.contains(&reason) || is(&DEGRADED_SEVERITIES) || an_alert_that_fired
    {
        Health::Degraded
    } else {
        Health::Healthy
    }
}

impl Loaded {
    fn node(&self, id: &str) -> Node {
        self.nodes.get(id).cloned().unwrap_or_else(|| Node {
            id: id.to_string(),
            kind: NodeKind::Service,
            name: id.rsplit('/').next().unwrap_or(id).to_string(),
            namespace: String::new(),
            cluster: String::new(),
            system: String::new(),
        })
    }

    /// Events of the node with this id. An id the graph does not know (a
    /// service that sends no traces, crash-looping say) is read as a
    /// service's, `cluster/namespace/name`; any other has none.
    pub fn events_for_id(&self, id: &str) -> Vec<Event> {
        let node = match self.nodes.get(id) {
            Some(node) => node.clone(),
            None => match Node::service_of_id(id) {
                Some(node) => node,
                None => return Vec::new(),
            },
        };
        self.events_of(&node).into_iter().cloned().collect()
    }

    /// Events that concern a node: same service name (and namespace/cluster when given).
    pub fn events_of(&self, node: &Node) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| {
                e.service == node.name
                    && (e.namespace.is_empty()
                        || node.namespace.is_empty()
                        || e.namespace == node.namespace)
                    && (e.cluster.is_empty()
                        || node.cluster.is_empty()
                        || e.cluster == node.cluster)
            })
            .collect()
    }

    fn answer(
        &self,
        keep_nodes: &HashSet<String>,
        keep_edges: &[(String, String, EdgeKind)],
    ) -> GraphAnswer {
        let mut incoming: HashMap<&str, EdgeStats> = HashMap::new();
        let mut outgoing: HashMap<&str, u64> = HashMap::new();
        let mut edges = Vec::new();
        for key in keep_edges {
            let Some(stats) = self.edges.get(key) else {
                continue;
            };
            incoming.entry(key.1.as_str()).or_default().merge(stats);
            *outgoing.entry(key.0.as_str()).or_default() += stats.requests;
            let client = &stats.client;
            let server = &stats.server;
            edges.push(EdgeView {
                source: key.0.clone(),
                target: key.1.clone(),
                kind: key.2,
                rate: stats.requests as f64 / self.seconds,
                requests: stats.requests,
                errors: stats.errors,
                error_rate: stats.error_rate(),
                client_p50_ms: client.quantile(0.5),
                client_p95_ms: client.quantile(0.95),
                client_p99_ms: client.quantile(0.99),
                server_p50_ms: server.quantile(0.5),
                server_p95_ms: server.quantile(0.95),
                server_p99_ms: server.quantile(0.99),
                network_ms: (stats.paired > 0).then(|| stats.network_sum_ms / stats.paired as f64),
            });
        }
        let mut nodes: Vec<NodeView> = keep_nodes
            .iter()
            .map(|id| {
                let node = self.node(id);
                let inc = incoming.get(id.as_str()).cloned().unwrap_or_default();
                let error_rate_in = inc.error_rate();
                let events = self.events_of(&node);
                let mut health = if error_rate_in > self.health.failing {
                    Health::Failing
                } else if error_rate_in >= self.health.degraded && inc.requests > 0 {
                    Health::Degraded
                } else {
                    Health::Healthy
                };
                for e in &events {
                    health = health.max(health_of_event(e));
                }
                let latency = if inc.server.count() > 0 {
                    &inc.server
                } else {
                    &inc.client
                };
                NodeView {
                    rate_in: inc.requests as f64 / self.seconds,
                    rate_out: outgoing.get(id.as_str()).copied().unwrap_or(0) as f64 / self.seconds,
                    error_rate_in,
                    p95_ms: latency.quantile(0.95),
                    health,
                    events: events.len(),
                    node,
                }
            })
            .collect();
        nodes.sort_by(|a, b| a.node.id.cmp(&b.node.id));
        edges.sort_by(|a, b| (&a.source, &a.target).cmp(&(&b.source, &b.target)));
        GraphAnswer {
            nodes,
            edges,
            notes: Vec::new(),
            at_risk_rate: None,
        }
    }

    fn petgraph(&self) -> (DiGraph<String, ()>, HashMap<String, NodeIndex>) {
        let mut g = DiGraph::new();
        let mut index = HashMap::new();
        for (s, t, _) in self.edges.keys() {
            for id in [s, t] {
                if !index.contains_key(id) {
                    index.insert(id.clone(), g.add_node(id.clone()));
                }
            }
            g.add_edge(index[s], index[t], ());
        }
        (g, index)
    }

    /// The whole map within `scope`: services in scope plus the middleware,
    /// externals and users they talk to. Collapsed (by namespace, then by
    /// cluster) rather than truncated when too big to draw.
    pub fn service_map(&self, scope: &GraphScope, max_nodes: usize) -> GraphAnswer {
        let in_scope = |id: &str| {
            let n = self.node(id);
            n.kind == NodeKind::Service && scope.keeps_service(&n)
        };
        let edges: Vec<_> = self
            .edges
            .keys()
            .filter(|(s, t, _)| in_scope(s) || in_scope(t))
            .cloned()
            .collect();
        let nodes: HashSet<String> = edges
            .iter()
            .flat_map(|(s, t, _)| [s.clone(), t.clone()])
            .collect();
        if nodes.len() <= max_nodes {
            return self.answer(&nodes, &edges);
        }
        for (level, label) in [
            (Collapse::Namespace, "namespace"),
            (Collapse::Cluster, "cluster"),
        ] {
            let collapsed = self.collapsed(&edges, level);
            if collapsed.nodes.len() <= max_nodes || level == Collapse::Cluster {
                let mut answer = collapsed.loaded.answer(&collapsed.nodes, &collapsed.edges);
                answer.notes.push(format!(
                    "{} nodes are more than the {max_nodes} a node graph can draw: services collapsed by {label} ({} nodes); filter by cluster or namespace to see services",
                    nodes.len(),
                    answer.nodes.len()
                ));
                return answer;
            }
        }
        self.answer(&nodes, &edges)
    }

    fn collapsed(&self, edges: &[(String, String, EdgeKind)], level: Collapse) -> CollapsedGraph {
        let group = |id: &str| -> String {
            let n = self.node(id);
            if n.kind != NodeKind::Service {
                return n.id;
            }
            match level {
                Collapse::Namespace => format!("{}/{}", n.cluster, n.namespace),
                Collapse::Cluster => n.cluster.clone(),
            }
        };
        let mut merged: BTreeMap<(String, String, EdgeKind), EdgeStats> = BTreeMap::new();
        let mut nodes = HashMap::new();
        for key in edges {
            let (s, t) = (group(&key.0), group(&key.1));
            if s == t {
                continue;
            }
            if let Some(stats) = self.edges.get(key) {
                merged
                    .entry((s.clone(), t.clone(), key.2))
                    .or_default()
                    .merge(stats);
            }
            for (orig, g) in [(&key.0, s), (&key.1, t)] {
                nodes.entry(g.clone()).or_insert_with(|| {
                    let n = self.node(orig);
                    if n.kind == NodeKind::Service {
                        Node {
                            id: g.clone(),
                            kind: NodeKind::Service,
                            name: g.clone(),
                            namespace: if level == Collapse::Namespace {
                                n.namespace
                            } else {
                                String::new()
                            },
                            cluster: n.cluster,
                            system: String::new(),
                        }
                    } else {
                        n
                    }
                });
            }
        }
        let keys: Vec<_> = merged.keys().cloned().collect();
        let ids: HashSet<String> = nodes.keys().cloned().collect();
        CollapsedGraph {
            loaded: Loaded {
                edges: merged,
                nodes,
                events: Vec::new(),
                seconds: self.seconds,
                health: self.health,
            },
            nodes: ids,
            edges: keys,
        }
    }

    /// The edges whose both ends are in `keep`.
    fn edges_within(&self, keep: &HashSet<String>) -> Vec<(String, String, EdgeKind)> {
        self.edges
            .keys()
            .filter(|(s, t, _)| keep.contains(s) && keep.contains(t))
            .cloned()
            .collect()
    }

    /// Nodes within `hops` calls upstream or downstream of `id`.
    pub fn focus(&self, id: &str, hops: usize) -> GraphAnswer {
        let (g, index) = self.petgraph();
        let Some(&start) = index.get(id) else {
            return GraphAnswer::default();
        };
        let mut keep: HashSet<String> = HashSet::new();
        for reversed in [false, true] {
            let mut depth: HashMap<NodeIndex, usize> = HashMap::from([(start, 0)]);
            let mut frontier = vec![start];
            while let Some(n) = frontier.pop() {
                let d = depth[&n];
                keep.insert(g[n].clone());
                if d == hops {
                    continue;
                }
                let dir = if reversed {
                    petgraph::Direction::Incoming
                } else {
                    petgraph::Direction::Outgoing
                };
                for m in g.neighbors_directed(n, dir) {
                    if let std::collections::hash_map::Entry::Vacant(slot) = depth.entry(m) {
                        slot.insert(d + 1);
                        frontier.insert(0, m);
                    }
                }
            }
        }
        self.answer(&keep, &self.edges_within(&keep))
    }

    /// Every node that transitively calls `id` (through queues too): who is
    /// hit if `id` is down. `at_risk_rate` is the request rate into `id`
    /// plus the rate entering the affected services from outside them.
    pub fn blast_radius(&self, id: &str) -> GraphAnswer {
        let (g, index) = self.petgraph();
        let Some(&start) = index.get(id) else {
            return GraphAnswer::default();
        };
        let mut affected: BTreeSet<String> = BTreeSet::new();
        let reversed = Reversed(&g);
        let mut bfs = Bfs::new(&reversed, start);
        while let Some(n) = bfs.next(&reversed) {
            affected.insert(g[n].clone());
        }
        let keep: HashSet<String> = affected.iter().cloned().collect();
        let mut answer = self.answer(&keep, &self.edges_within(&keep));
        let direct: u64 = self
            .edges
            .iter()
            .filter(|((_, t, _), _)| t == id)
            .map(|(_, s)| s.requests)
            .sum();
        let entering: u64 = self
            .edges
            .iter()
            .filter(|((s, t, _), _)| t != id && keep.contains(t) && !keep.contains(s))
            .map(|(_, s)| s.requests)
            .sum();
        let root_callers: u64 = self
            .edges
            .iter()
            .filter(|((s, t, _), _)| s == "user" && keep.contains(t))
            .map(|(_, s)| s.requests)
            .sum();
        answer.at_risk_rate = Some((direct + entering + root_callers) as f64 / self.seconds);
        answer
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collapse {
    Namespace,
    Cluster,
}

struct CollapsedGraph {
    loaded: Loaded,
    nodes: HashSet<String>,
    edges: Vec<(String, String, EdgeKind)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::live::LiveGraph;
    use crate::graph::pairing::PairingConfig;
    use crate::graph::span::{SpanKind, SpanRecord};

    fn span(kind: SpanKind, service: &str, ns: &str, id: u8, parent: Option<u8>) -> SpanRecord {
        SpanRecord {
            trace_id: [id / 16 + 1; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            kind: Some(kind),
            service: service.into(),
            namespace: Some(ns.into()),
            cluster: Some("dc-01".into()),
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_010_000_000,
            ..SpanRecord::default()
        }
    }

    /// frontend -> checkout -> payment, checkout -> mysql, checkout -> kafka -> inventory.
    fn shop() -> Loaded {
        let mut live = LiveGraph::new(PairingConfig::default());
        let mut spans = vec![
            span(SpanKind::Server, "frontend", "shop", 1, None),
            span(SpanKind::Client, "frontend", "shop", 2, Some(1)),
            span(SpanKind::Server, "checkout", "shop", 3, Some(2)),
            span(SpanKind::Client, "checkout", "shop", 4, Some(3)),
            span(SpanKind::Server, "payment", "pay", 5, Some(4)),
        ];
        let mut db = span(SpanKind::Client, "checkout", "shop", 6, Some(3));
        db.db_system = Some("mysql".into());
        db.server_address = Some("mysql.shop.svc".into());
        let mut produce = span(SpanKind::Producer, "checkout", "shop", 7, Some(3));
        produce.messaging_system = Some("kafka".into());
        produce.messaging_destination = Some("stock-events".into());
        let mut consume = span(SpanKind::Consumer, "inventory", "shop", 8, Some(7));
        consume.messaging_system = Some("kafka".into());
        consume.messaging_destination = Some("stock-events".into());
        let mut failing = span(SpanKind::Server, "payment", "pay", 9, Some(10));
        failing.error = true;
        let retry = span(SpanKind::Client, "checkout", "shop", 10, Some(3));
        spans.extend([db, produce, consume]);
        live.ingest(spans, 0);
        live.ingest(vec![failing, retry], 0);
        let (nodes, edges) = live.take_all();
        let mut loaded = Loaded {
            edges: BTreeMap::new(),
            nodes: nodes.into_iter().map(|n| (n.id.clone(), n)).collect(),
            events: Vec::new(),
            seconds: 60.0,
            health: HealthThresholds::default(),
        };
        for e in edges {
            loaded
                .edges
                .entry((e.source, e.target, e.kind))
                .or_default()
                .merge(&e.stats);
        }
        loaded
    }

    fn ids(a: &GraphAnswer) -> Vec<&str> {
        a.nodes.iter().map(|n| n.node.id.as_str()).collect()
    }

    #[test]
    fn whole_map_has_every_node_kind_and_health() {
        let map = shop().service_map(&GraphScope::default(), MAX_DRAWN_NODES);
        assert_eq!(
            ids(&map),
            vec![
                "dc-01/pay/payment",
                "dc-01/shop/checkout",
                "dc-01/shop/frontend",
                "dc-01/shop/inventory",
                "kafka://stock-events",
                "mysql://mysql.shop.svc",
                "user"
            ]
        );
        assert_eq!(map.edges.len(), 6);
        let payment = map.nodes.iter().find(|n| n.node.name == "payment").unwrap();
        // One of the two payment calls failed: 50% > 10%.
        assert_eq!(payment.health, Health::Failing);
        let async_edges = map
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Async)
            .count();
        assert_eq!(async_edges, 2);
        let scoped = shop().service_map(
            &GraphScope {
                clusters: vec![],
                namespaces: vec!["pay".into()],
            },
            MAX_DRAWN_NODES,
        );
        assert_eq!(
            ids(&scoped),
            vec!["dc-01/pay/payment", "dc-01/shop/checkout"]
        );
    }

    #[test]
    fn focus_and_blast_radius_by_hand() {
        let g = shop();
        let one_hop = g.focus("dc-01/shop/checkout", 1);
        assert_eq!(
            ids(&one_hop),
            vec![
                "dc-01/pay/payment",
                "dc-01/shop/checkout",
                "dc-01/shop/frontend",
                "kafka://stock-events",
                "mysql://mysql.shop.svc"
            ]
        );
        // Who is hit when MySQL is down: checkout calls it, frontend calls
        // checkout, users call frontend.
        let blast = g.blast_radius("mysql://mysql.shop.svc");
        assert_eq!(
            ids(&blast),
            vec![
                "dc-01/shop/checkout",
                "dc-01/shop/frontend",
                "mysql://mysql.shop.svc",
                "user"
            ]
        );
        // 1 call into mysql + 1 user call entering frontend, over 60 s.
        assert!((blast.at_risk_rate.unwrap() - 2.0 / 60.0).abs() < 1e-12);
        // The topic: its producer (and upstream) are hit; the consumer is not a caller.
        let topic = g.blast_radius("kafka://stock-events");
        assert!(!ids(&topic).contains(&"dc-01/shop/inventory"));
        assert!(ids(&topic).contains(&"dc-01/shop/checkout"));
    }

    #[test]
    fn big_graphs_collapse_instead_of_truncating() {
        let g = shop();
        let collapsed = g.service_map(&GraphScope::default(), 4);
        assert_eq!(collapsed.notes.len(), 1, "a note says what happened");
        assert!(ids(&collapsed).contains(&"dc-01/shop") || ids(&collapsed).contains(&"dc-01"));
        assert!(
            ids(&collapsed).contains(&"mysql://mysql.shop.svc"),
            "middleware stays itself"
        );
    }

    /// Events of a service the graph has not seen (one that sends no
    /// traces) are those of its own cluster and namespace, read from its
    /// id; an id that names no service has none.
    #[test]
    fn events_of_an_unknown_service_id_stay_in_its_cluster() {
        let mut g = shop();
        for (cluster, reason) in [("dc-01", "OOMKilled"), ("dc-02", "ScalingReplicaSet")] {
            g.events.push(Event {
                time_ms: 0,
                end_ms: None,
                cluster: cluster.into(),
                namespace: "shop".into(),
                service: "cart".into(),
                source: "kubernetes".into(),
                reason: reason.into(),
                message: String::new(),
                severity: "Warning".into(),
                fingerprint: None,
            });
        }
        let reasons = |id: &str| -> Vec<String> {
            g.events_for_id(id).into_iter().map(|e| e.reason).collect()
        };
        assert_eq!(reasons("dc-01/shop/cart"), ["OOMKilled"]);
        assert_eq!(reasons("dc-02/shop/cart"), ["ScalingReplicaSet"]);
        assert!(reasons("zzz/shop/cart").is_empty());
        assert!(reasons("shop/cart").is_empty());
        assert!(reasons("cart").is_empty());
        assert!(reasons("mysql://mysql.shop.svc/cart").is_empty());
    }

    #[test]
    fn alerts_and_events_set_health_as_their_senders_spell_severity() {
        let health_with = |source: &str, reason: &str, severity: &str| {
            let mut g = shop();
            g.events.push(Event {
                time_ms: 0,
                end_ms: None,
                cluster: "dc-01".into(),
                namespace: "shop".into(),
                service: "inventory".into(),
                source: source.into(),
                reason: reason.into(),
                message: String::new(),
                severity: severity.into(),
                fingerprint: None,
            });
            let map = g.service_map(&GraphScope::default(), 100);
            let inventory = map.nodes.iter().find(|n| n.node.name == "inventory");
            inventory.map(|n| (n.health, n.events))
        };
        let cases = [
            ("kubernetes", "Pulled", "Normal", Health::Healthy),
            ("kubernetes", "Unhealthy", "Warning", Health::Degraded),
            ("kubernetes", "BackOff", "Warning", Health::Failing),
            ("alert", "ErrorBudgetBurn", "page", Health::Failing),
            ("alert", "ErrorBudgetBurn", "P1", Health::Failing),
            ("alert", "ErrorBudgetBurn", "Error", Health::Failing),
            ("alert", "QueueGrowing", "P3", Health::Degraded),
            ("alert", "QueueGrowing", "", Health::Degraded),
            ("alert", "QueueGrowing", "ticket", Health::Degraded),
            ("alert", "CapacityReport", "info", Health::Healthy),
            ("alert", "CapacityReport", "none", Health::Healthy),
            ("alert", "QueueGrowing", "resolved", Health::Healthy),
        ];
        for (source, reason, severity, health) in cases {
            assert_eq!(
                health_with(source, reason, severity),
                Some((health, 1)),
                "{source} {reason} {severity:?}"
            );
        }
    }
}
