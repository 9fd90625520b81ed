//! Nodes, edges and edge statistics of the dependency graph.

use serde::Serialize;

use super::span::SpanRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Service,
    Database,
    Cache,
    Queue,
    External,
    /// Callers outside the traced world (root server spans, uninstrumented clients).
    User,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Service => "service",
            NodeKind::Database => "database",
            NodeKind::Cache => "cache",
            NodeKind::Queue => "queue",
            NodeKind::External => "external",
            NodeKind::User => "user",
        }
    }

    pub fn parse(s: &str) -> NodeKind {
        match s {
            "database" => NodeKind::Database,
            "cache" => NodeKind::Cache,
            "queue" => NodeKind::Queue,
            "external" => NodeKind::External,
            "user" => NodeKind::User,
            _ => NodeKind::Service,
        }
    }
}

/// A node. Services are `cluster/namespace/name`; databases, caches and
/// queues are named by what they are, not by who calls them, so one shared
/// MySQL used from many clusters is one node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub namespace: String,
    pub cluster: String,
    /// db.system / messaging.system for middleware nodes.
    pub system: String,
}

impl Node {
    pub fn service(span: &SpanRecord) -> Node {
        let cluster = span.cluster.clone().unwrap_or_default();
        let namespace = span.namespace.clone().unwrap_or_default();
        Node {
            id: format!("{cluster}/{namespace}/{}", span.service),
            kind: NodeKind::Service,
            name: span.service.clone(),
            namespace,
            cluster,
            system: String::new(),
        }
    }

    /// The service an id written as [`Node::service`] writes it names:
    /// `cluster/namespace/name`, cluster and namespace possibly empty.
    pub fn service_of_id(id: &str) -> Option<Node> {
        let mut parts = id.splitn(3, '/');
        let (cluster, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
        if name.is_empty() || cluster.contains(':') {
            return None;
        }
        Some(Node {
            id: id.to_string(),
            kind: NodeKind::Service,
            name: name.to_string(),
            namespace: namespace.to_string(),
            cluster: cluster.to_string(),
            system: String::new(),
        })
    }

    /// The database or cache a client span talks to.
    pub fn datastore(span: &SpanRecord, system: &str) -> Node {
        let kind = match system {
            "redis" | "memcached" | "valkey" | "aerospike" => NodeKind::Cache,
            _ => NodeKind::Database,
        };
        let target = span
            .server_address
            .clone()
            .or_else(|| span.peer_service.clone())
            .unwrap_or_else(|| "unknown".into());
        let name = match &span.db_name {
            Some(db) if kind == NodeKind::Database => format!("{target}/{db}"),
            _ => target,
        };
        Node {
            id: format!("{system}://{name}"),
            kind,
            name,
            namespace: String::new(),
            cluster: String::new(),
            system: system.to_string(),
        }
    }

    /// A topic or queue: its own node between producers and consumers.
    pub fn queue(system: &str, destination: &str) -> Node {
        Node {
            id: format!("{system}://{destination}"),
            kind: NodeKind::Queue,
            name: destination.to_string(),
            namespace: String::new(),
            cluster: String::new(),
            system: system.to_string(),
        }
    }

    /// An uninstrumented peer a client span names.
    pub fn external(peer: &str) -> Node {
        Node {
            id: format!("external://{peer}"),
            kind: NodeKind::External,
            name: peer.to_string(),
            namespace: String::new(),
            cluster: String::new(),
            system: String::new(),
        }
    }

    pub fn user() -> Node {
        Node {
            id: "user".into(),
            kind: NodeKind::User,
            name: "user".into(),
            namespace: String::new(),
            cluster: String::new(),
            system: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// Request/response (client -> server, service -> database).
    Sync,
    /// Through a queue (producer -> queue -> consumer).
    Async,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Sync => "sync",
            EdgeKind::Async => "async",
        }
    }
}

/// Latency histogram bounds in milliseconds (the last bucket is +Inf).
pub const LATENCY_BOUNDS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Histogram {
    /// Non-cumulative counts per bucket; `LATENCY_BOUNDS_MS.len() + 1` long.
    pub counts: Vec<u64>,
    pub sum_ms: f64,
}

impl Histogram {
    pub fn observe(&mut self, ms: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        let i = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.counts[i] += 1;
        self.sum_ms += ms;
    }

    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum_ms += other.sum_ms;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Quantile by linear interpolation inside the bucket (milliseconds).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            let c = *c as f64;
            if below + c >= rank && c > 0.0 {
                let lower = if i == 0 {
                    0.0
                } else {
                    LATENCY_BOUNDS_MS[i - 1]
                };
                let Some(upper) = LATENCY_BOUNDS_MS.get(i) else {
                    return Some(lower);
                };
                return Some(lower + (upper - lower) * (rank - below) / c);
            }
            below += c;
        }
        LATENCY_BOUNDS_MS.last().copied()
    }
}

/// Traffic on one edge over some window.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EdgeStats {
    pub requests: u64,
    pub errors: u64,
    /// Latency seen by the caller (client / producer spans).
    pub client: Histogram,
    /// Latency seen by the callee (server spans), when paired.
    pub server: Histogram,
    /// Client-minus-server time over paired calls (network and queueing), ms.
    pub network_sum_ms: f64,
    pub paired: u64,
}

impl EdgeStats {
    pub fn merge(&mut self, other: &EdgeStats) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.client.merge(&other.client);
        self.server.merge(&other.server);
        self.network_sum_ms += other.network_sum_ms;
        self.paired += other.paired;
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// One observed call on an edge, produced by pairing.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeObservation {
    /// Interned: the same node is the same `Arc` while the interner holds it.
    pub source: std::sync::Arc<Node>,
    pub target: std::sync::Arc<Node>,
    pub kind: EdgeKind,
    pub error: bool,
    pub client_ms: Option<f64>,
    pub server_ms: Option<f64>,
    /// When the call happened (start of the caller's span), Unix seconds.
    pub at: i64,
}

/// One edge's traffic in one minute: what the store keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeRow {
    /// Unix seconds of the minute start.
    pub minute: i64,
    pub source: String,
    pub target: String,
    pub kind: EdgeKind,
    pub stats: EdgeStats,
}

/// A Kubernetes event or an alert, attached to the service it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    /// Unix milliseconds.
    pub time_ms: i64,
    pub end_ms: Option<i64>,
    pub cluster: String,
    pub namespace: String,
    /// The service (or workload) it concerns.
    pub service: String,
    /// "kubernetes" or "alert".
    pub source: String,
    /// CrashLoopBackOff, OOMKilled, Unhealthy, FailedScheduling,
    /// ScalingReplicaSet, or an alert name.
    pub reason: String,
    pub message: String,
    /// Normal / Warning for events; info / warning / critical for alerts.
    pub severity: String,
    /// What identifies one event sent several times: an alert's
    /// Alertmanager fingerprint (its notifications, firing, repeated and
    /// resolved, share it and `time_ms`, its `startsAt`), or a Kubernetes
    /// Event object's `uid` (else its namespace/name: its updates share it
    /// and `time_ms`, the first occurrence). Rows sharing both, in one
    /// cluster, read back as one event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}
