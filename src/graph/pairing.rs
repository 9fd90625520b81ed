//! Pairs caller and callee spans into edge observations, with a bounded
//! store of spans waiting for their other half (like Tempo's service-graph
//! processor), plus what Tempo does not do: a queue as a node of its own
//! between producers and consumers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::model::{EdgeKind, EdgeObservation, Node};
use super::span::{SpanKind, SpanRecord};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairingConfig {
    /// How long a span waits for its other half.
    pub wait: Duration,
    /// Spans waiting at most; beyond it the oldest is dropped (and counted).
    pub max_items: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        PairingConfig {
            wait: Duration::from_secs(10),
            max_items: 100_000,
        }
    }
}

/// Counters an operator alerts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PairingStats {
    pub paired: u64,
    /// Waited `wait` and found no other half.
    pub expired: u64,
    /// Pushed out because the store was full.
    pub dropped: u64,
    /// Internal or kind-less spans, which make no edge.
    pub ignored: u64,
    /// A span seen again ([`RecentSpans`]), not counted twice.
    pub duplicates: u64,
}

/// How long a span is remembered to know it again. Exporters send a batch
/// again when its answer was lost (the OTel SDKs retry for up to minutes);
/// the copy of a span whose pair is complete would otherwise wait, expire
/// and count once more, as a call from a "user" that never happened.
const REMEMBERED_FOR_NS: u64 = 120 * 1_000_000_000;

/// The spans of the last [`REMEMBERED_FOR_NS`], by a hash of what makes a
/// span itself (trace, span id, kind, service: the client and server halves
/// of a Zipkin shared span are two spans). At most `limit` of them: past it
/// the oldest are forgotten, so memory stays bounded whatever the span rate
/// and a very busy collector remembers a shorter time.
#[derive(Default)]
struct RecentSpans {
    seen: crate::rollup::IdMap<()>,
    order: VecDeque<(u64, u64)>,
}

impl RecentSpans {
    /// Remembers `span`; whether it was already remembered.
    fn seen_before(&mut self, span: &SpanRecord, now_ns: u64, limit: usize) -> bool {
        let mut ids = [0u8; 25];
        ids[..16].copy_from_slice(&span.trace_id);
        ids[16..24].copy_from_slice(&span.span_id);
        ids[24] = span.kind.map_or(0, |k| k as u8 + 1);
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(
            span.service.as_bytes(),
            xxhash_rust::xxh3::xxh3_64(&ids),
        );
        while let Some(&(at, old)) = self.order.front() {
            if self.order.len() < limit && now_ns.saturating_sub(at) < REMEMBERED_FOR_NS {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.insert(key, ()).is_some() {
            return true;
        }
        self.order.push_back((now_ns, key));
        false
    }
}

type Key = ([u8; 16], [u8; 8]);

/// Nodes interned by a hash of the span fields that name them, so a call
/// costs a hash and an `Arc` clone instead of formatting ids and cloning
/// names. Bounded: past `MAX_INTERNED` distinct nodes the cache starts over
/// (it is only a cache; the graph itself keys nodes by id).
#[derive(Default)]
struct Interner {
    key: Vec<u8>,
    nodes: FastMap<u64, Arc<Node>>,
}

const MAX_INTERNED: usize = 200_000;

impl Interner {
    fn get(&mut self, parts: &[&str], make: impl FnOnce() -> Node) -> Arc<Node> {
        self.key.clear();
        for p in parts {
            self.key.extend_from_slice(p.as_bytes());
            self.key.push(0xff);
        }
        let h = xxhash_rust::xxh3::xxh3_64(&self.key);
        if let Some(n) = self.nodes.get(&h) {
            return n.clone();
        }
        if self.nodes.len() >= MAX_INTERNED {
            self.nodes.clear();
        }
        let n = Arc::new(make());
        self.nodes.insert(h, n.clone());
        n
    }

    fn service(&mut self, span: &SpanRecord) -> Arc<Node> {
        let (c, n) = (
            span.cluster.as_deref().unwrap_or(""),
            span.namespace.as_deref().unwrap_or(""),
        );
        self.get(&["s", c, n, &span.service], || Node::service(span))
    }

    fn datastore(&mut self, span: &SpanRecord, system: &str) -> Arc<Node> {
        let parts = [
            "d",
            system,
            span.server_address.as_deref().unwrap_or(""),
            span.peer_service.as_deref().unwrap_or(""),
            span.db_name.as_deref().unwrap_or(""),
        ];
        self.get(&parts, || Node::datastore(span, system))
    }

    fn queue(&mut self, system: &str, destination: &str) -> Arc<Node> {
        self.get(&["q", system, destination], || {
            Node::queue(system, destination)
        })
    }

    fn external(&mut self, peer: &str) -> Arc<Node> {
        self.get(&["e", peer], || Node::external(peer))
    }

    fn user(&mut self) -> Arc<Node> {
        self.get(&["u"], Node::user)
    }
}

/// Span ids are random: a fast non-keyed hash is enough (and SipHash is a
/// large share of pairing time).
type FastMap<K, V> = HashMap<K, V, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

struct Waiting {
    span: SpanRecord,
    arrived_ns: u64,
}

/// Client spans wait under their own span id; server spans under their
/// parent's. Whichever half comes second completes the pair.
#[derive(Default)]
pub struct Pairer {
    config: PairingConfig,
    clients: FastMap<Key, Waiting>,
    servers: FastMap<Key, Waiting>,
    /// Waiting servers that may share their client's id
    /// ([`SpanRecord::may_share_client_id`]): (trace, own id) -> their key
    /// in `servers`. At most one entry per waiting server.
    servers_by_own_id: FastMap<Key, Key>,
    /// Arrival order for expiry and eviction; entries may be stale (already paired).
    order: VecDeque<(u64, Key, bool)>,
    recent: RecentSpans,
    nodes: Interner,
    pub stats: PairingStats,
}

/// Spans remembered to know them again, per span that may wait: a
/// collector with room for 100,000 waiting spans remembers 400,000 (~16 MB).
const REMEMBERED_PER_WAITING: usize = 4;

fn millis(span: &SpanRecord) -> f64 {
    span.duration_nanos() as f64 / 1e6
}

fn secs(span: &SpanRecord) -> i64 {
    (span.start_unix_nanos / 1_000_000_000) as i64
}

/// A call only its caller reported (client or producer span).
fn seen_by_caller(
    source: Arc<Node>,
    target: Arc<Node>,
    kind: EdgeKind,
    span: &SpanRecord,
) -> EdgeObservation {
    EdgeObservation {
        source,
        target,
        kind,
        error: span.error,
        client_ms: Some(millis(span)),
        server_ms: None,
        at: secs(span),
    }
}

/// Whether a messaging operation takes messages from the broker (else it
/// hands them over: "send", "publish", "create").
fn receives_messages(operation: Option<&str>) -> bool {
    operation.is_some_and(|op| {
        ["receive", "process", "settle", "deliver"]
            .iter()
            .any(|r| op.eq_ignore_ascii_case(r))
    })
}

/// A call only its callee reported (server or consumer span).
fn seen_by_callee(
    source: Arc<Node>,
    target: Arc<Node>,
    kind: EdgeKind,
    span: &SpanRecord,
) -> EdgeObservation {
    EdgeObservation {
        source,
        target,
        kind,
        error: span.error,
        client_ms: None,
        server_ms: Some(millis(span)),
        at: secs(span),
    }
}

impl Pairer {
    pub fn new(config: PairingConfig) -> Pairer {
        Pairer {
            config,
            ..Pairer::default()
        }
    }

    pub fn waiting(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Feeds one span; `now_ns` is the arrival time. Edges that are complete
    /// are appended to `out`.
    pub fn add(&mut self, span: SpanRecord, now_ns: u64, out: &mut Vec<EdgeObservation>) {
        let limit = self.config.max_items.max(1) * REMEMBERED_PER_WAITING;
        if self.recent.seen_before(&span, now_ns, limit) {
            self.stats.duplicates += 1;
            return;
        }
        match span.kind {
            Some(SpanKind::Client) => {
                if let Some(system) = span.db_system.clone() {
                    // Databases and caches are not traced themselves: the
                    // client span is the whole call.
                    out.push(seen_by_caller(
                        self.nodes.service(&span),
                        self.nodes.datastore(&span, &system),
                        EdgeKind::Sync,
                        &span,
                    ));
                    return;
                }
                if let (Some(system), Some(dest)) =
                    (&span.messaging_system, &span.messaging_destination)
                {
                    // The messaging conventions make batch sends, pull
                    // receives and settlements CLIENT spans: the broker is
                    // not traced, so the span is the whole call, and its
                    // operation says which way the messages went.
                    let service = self.nodes.service(&span);
                    let queue = self.nodes.queue(system, dest);
                    out.push(if receives_messages(span.messaging_operation.as_deref()) {
                        seen_by_callee(queue, service, EdgeKind::Async, &span)
                    } else {
                        seen_by_caller(service, queue, EdgeKind::Async, &span)
                    });
                    return;
                }
                let key = (span.trace_id, span.span_id);
                match self.take_server_of(key) {
                    Some(server) => self.pair(&span, &server.span, out),
                    None => self.wait(key, span, true, now_ns, out),
                }
            }
            Some(SpanKind::Server) => {
                if span.may_share_client_id {
                    // A client span of this trace with the server's own id
                    // is the other half of a shared span, as Zipkin's trace
                    // merge reads it.
                    if let Some(client) = self.clients.remove(&(span.trace_id, span.span_id)) {
                        self.pair(&client.span, &span, out);
                        return;
                    }
                }
                match span.parent_span_id {
                    None => out.push(seen_by_callee(
                        self.nodes.user(),
                        self.nodes.service(&span),
                        EdgeKind::Sync,
                        &span,
                    )),
                    Some(parent) => {
                        let key = (span.trace_id, parent);
                        match self.clients.remove(&key) {
                            Some(client) => self.pair(&client.span, &span, out),
                            None => {
                                let own_id = span
                                    .may_share_client_id
                                    .then_some((span.trace_id, span.span_id));
                                self.wait(key, span, false, now_ns, out);
                                if let Some(own_id) = own_id {
                                    self.servers_by_own_id.insert(own_id, key);
                                }
                            }
                        }
                    }
                }
            }
            Some(SpanKind::Producer) => match (&span.messaging_system, &span.messaging_destination)
            {
                (Some(system), Some(dest)) => out.push(seen_by_caller(
                    self.nodes.service(&span),
                    self.nodes.queue(system, dest),
                    EdgeKind::Async,
                    &span,
                )),
                _ => self.stats.ignored += 1,
            },
            Some(SpanKind::Consumer) => match (&span.messaging_system, &span.messaging_destination)
            {
                (Some(system), Some(dest)) => out.push(seen_by_callee(
                    self.nodes.queue(system, dest),
                    self.nodes.service(&span),
                    EdgeKind::Async,
                    &span,
                )),
                _ => self.stats.ignored += 1,
            },
            _ => self.stats.ignored += 1,
        }
    }

    /// The waiting server span that answers the client span `key`: the
    /// client's child, or a server span that shares the client's id.
    fn take_server_of(&mut self, key: Key) -> Option<Waiting> {
        if let Some(server) = self.servers.remove(&key) {
            self.forget_own_id(&server.span);
            return Some(server);
        }
        let waits_under = self.servers_by_own_id.remove(&key)?;
        match self.servers.get(&waits_under) {
            Some(w) if w.span.span_id == key.1 => self.servers.remove(&waits_under),
            _ => None,
        }
    }

    /// Drops the own-id entry of a server span that stopped waiting.
    fn forget_own_id(&mut self, server: &SpanRecord) {
        if server.may_share_client_id {
            self.servers_by_own_id
                .remove(&(server.trace_id, server.span_id));
        }
    }

    fn pair(&mut self, client: &SpanRecord, server: &SpanRecord, out: &mut Vec<EdgeObservation>) {
        self.stats.paired += 1;
        out.push(EdgeObservation {
            source: self.nodes.service(client),
            target: self.nodes.service(server),
            kind: EdgeKind::Sync,
            error: client.error || server.error,
            client_ms: Some(millis(client)),
            server_ms: Some(millis(server)),
            at: secs(client),
        });
    }

    fn wait(
        &mut self,
        key: Key,
        span: SpanRecord,
        client: bool,
        now_ns: u64,
        out: &mut Vec<EdgeObservation>,
    ) {
        while self.waiting() >= self.config.max_items.max(1) {
            match self.order.pop_front() {
                Some((_, old, was_client)) => {
                    let map = if was_client {
                        &mut self.clients
                    } else {
                        &mut self.servers
                    };
                    if let Some(w) = map.remove(&old) {
                        self.stats.dropped += 1;
                        self.unpaired(w.span, was_client, out);
                    }
                }
                None => break,
            }
        }
        let map = if client {
            &mut self.clients
        } else {
            &mut self.servers
        };
        let replaced = map.insert(
            key,
            Waiting {
                span,
                arrived_ns: now_ns,
            },
        );
        if let Some(replaced) = replaced.filter(|_| !client) {
            self.forget_own_id(&replaced.span);
        }
        self.order.push_back((now_ns, key, client));
    }

    /// Emits what can still be said about spans that waited too long.
    pub fn expire(&mut self, now_ns: u64, out: &mut Vec<EdgeObservation>) {
        let wait = self.config.wait.as_nanos() as u64;
        while let Some(&(arrived, key, client)) = self.order.front() {
            if now_ns.saturating_sub(arrived) < wait {
                break;
            }
            self.order.pop_front();
            let map = if client {
                &mut self.clients
            } else {
                &mut self.servers
            };
            if let Some(w) = map.remove(&key) {
                if w.arrived_ns == arrived {
                    self.stats.expired += 1;
                    self.unpaired(w.span, client, out);
                } else {
                    map.insert(key, w);
                }
            }
        }
    }

    /// A client span whose callee never reported is an edge to the peer it
    /// names, if any; a server span whose caller never reported is called
    /// by a "user" (an uninstrumented client or ingress).
    fn unpaired(&mut self, span: SpanRecord, client: bool, out: &mut Vec<EdgeObservation>) {
        if client {
            let Some(peer) = span
                .peer_service
                .clone()
                .or_else(|| span.server_address.clone())
            else {
                return;
            };
            out.push(seen_by_caller(
                self.nodes.service(&span),
                self.nodes.external(&peer),
                EdgeKind::Sync,
                &span,
            ));
        } else {
            self.forget_own_id(&span);
            out.push(seen_by_callee(
                self.nodes.user(),
                self.nodes.service(&span),
                EdgeKind::Sync,
                &span,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn span(kind: SpanKind, service: &str, id: u8, parent: Option<u8>) -> SpanRecord {
        SpanRecord {
            trace_id: [7; 16],
            span_id: [id; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            kind: Some(kind),
            service: service.into(),
            namespace: Some("shop".into()),
            cluster: Some("dc-01".into()),
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_000_000_000 + 20_000_000,
            ..SpanRecord::default()
        }
    }

    #[test]
    fn pairs_in_either_order() {
        let mut p = Pairer::new(PairingConfig::default());
        let mut out = Vec::new();
        p.add(span(SpanKind::Client, "frontend", 1, None), 0, &mut out);
        assert!(out.is_empty());
        let mut server = span(SpanKind::Server, "checkout", 2, Some(1));
        server.end_unix_nanos -= 5_000_000;
        p.add(server, 1, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source.id, "dc-01/shop/frontend");
        assert_eq!(out[0].target.id, "dc-01/shop/checkout");
        assert_eq!(
            (out[0].client_ms, out[0].server_ms),
            (Some(20.0), Some(15.0))
        );
        // Server first, then client.
        p.add(span(SpanKind::Server, "payment", 4, Some(3)), 2, &mut out);
        p.add(span(SpanKind::Client, "checkout", 3, None), 3, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].target.name, "payment");
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.stats.paired, 2);
    }

    /// Batch sends and pull receives are CLIENT spans in the messaging
    /// conventions; they reach the queue node as producer and consumer
    /// spans do.
    #[test]
    fn messaging_client_spans_go_the_way_their_operation_says() {
        let mut p = Pairer::new(PairingConfig::default());
        let mut out = Vec::new();
        for (service, id, operation) in [("checkout", 1, "send"), ("inventory", 2, "receive")] {
            let mut s = span(SpanKind::Client, service, id, None);
            s.messaging_system = Some("kafka".into());
            s.messaging_destination = Some("stock-events".into());
            s.messaging_operation = Some(operation.into());
            p.add(s, 0, &mut out);
        }
        let edges: Vec<(&str, &str, EdgeKind)> = out
            .iter()
            .map(|e| (e.source.id.as_str(), e.target.id.as_str(), e.kind))
            .collect();
        assert_eq!(
            edges,
            [
                (
                    "dc-01/shop/checkout",
                    "kafka://stock-events",
                    EdgeKind::Async
                ),
                (
                    "kafka://stock-events",
                    "dc-01/shop/inventory",
                    EdgeKind::Async
                ),
            ]
        );
        assert_eq!(p.waiting(), 0);
    }

    /// An exporter that sends a batch again (its answer was lost) must not
    /// count a call twice, nor make a "user" call of the late copy of a
    /// server span whose client was paired already.
    #[test]
    fn a_span_sent_again_counts_once() {
        let mut p = Pairer::new(PairingConfig::default());
        let mut out = Vec::new();
        let client = span(SpanKind::Client, "frontend", 1, None);
        let server = span(SpanKind::Server, "checkout", 2, Some(1));
        p.add(client.clone(), 0, &mut out);
        p.add(server.clone(), 1, &mut out);
        assert_eq!(out.len(), 1);
        p.add(server.clone(), 2_000_000_000, &mut out);
        p.add(client.clone(), 2_000_000_000, &mut out);
        p.expire(60_000_000_000, &mut out);
        assert_eq!(
            out.len(),
            1,
            "{:?}",
            out.iter().map(|e| &e.source.id).collect::<Vec<_>>()
        );
        assert_eq!(p.stats.duplicates, 2);
        assert_eq!(p.waiting(), 0);
        // A Zipkin shared span: the server half reuses the client's id, and
        // is no copy of it.
        let shared_client = span(SpanKind::Client, "frontend", 7, None);
        let mut shared_server = span(SpanKind::Server, "payment", 7, None);
        shared_server.may_share_client_id = true;
        p.add(shared_client, 3_000_000_000, &mut out);
        p.add(shared_server, 3_000_000_000, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].target.id, "dc-01/shop/payment");
        // Remembered for two minutes, then a span is new again.
        p.add(server, 200_000_000_000, &mut out);
        assert_eq!(p.stats.duplicates, 2);
        assert_eq!(p.waiting(), 1);
    }

    #[test]
    fn middleware_nodes_and_expiry() {
        let mut p = Pairer::new(PairingConfig {
            wait: Duration::from_secs(10),
            max_items: 2,
        });
        let mut out = Vec::new();
        let mut db = span(SpanKind::Client, "checkout", 1, None);
        db.db_system = Some("mysql".into());
        db.db_name = Some("orders".into());
        db.server_address = Some("mysql.shop.svc".into());
        p.add(db, 0, &mut out);
        assert_eq!(out[0].target.id, "mysql://mysql.shop.svc/orders");
        let mut cache = span(SpanKind::Client, "checkout", 2, None);
        cache.db_system = Some("redis".into());
        cache.server_address = Some("redis-master".into());
        p.add(cache, 0, &mut out);
        assert_eq!(out[1].target.kind, super::super::model::NodeKind::Cache);
        let mut produce = span(SpanKind::Producer, "checkout", 3, None);
        produce.messaging_system = Some("kafka".into());
        produce.messaging_destination = Some("stock-events".into());
        let mut consume = span(SpanKind::Consumer, "inventory", 4, Some(3));
        consume.messaging_system = Some("kafka".into());
        consume.messaging_destination = Some("stock-events".into());
        p.add(produce, 0, &mut out);
        p.add(consume, 0, &mut out);
        assert_eq!(
            (out[2].target.id.as_str(), out[3].source.id.as_str()),
            ("kafka://stock-events", "kafka://stock-events")
        );
        assert_eq!(out[3].kind, EdgeKind::Async);
        out.clear();

        // A client whose callee never reports becomes an edge to its peer.
        let mut lonely = span(SpanKind::Client, "checkout", 5, None);
        lonely.peer_service = Some("bank-gateway".into());
        p.add(lonely, 0, &mut out);
        p.add(span(SpanKind::Server, "payment", 6, Some(99)), 1, &mut out);
        p.expire(5_000_000_000, &mut out);
        assert!(out.is_empty(), "not yet");
        p.expire(11_000_000_000, &mut out);
        assert_eq!(p.stats.expired, 2);
        let targets: Vec<&str> = out.iter().map(|o| o.target.id.as_str()).collect();
        assert_eq!(
            targets,
            vec!["external://bank-gateway", "dc-01/shop/payment"]
        );
        assert_eq!(out[1].source.id, "user");

        // Bounded: the third waiting span pushes the oldest out.
        out.clear();
        for id in 10..13 {
            p.add(
                span(SpanKind::Client, "a", id, None),
                20_000_000_000,
                &mut out,
            );
        }
        assert_eq!(p.waiting(), 2);
        assert_eq!(p.stats.dropped, 1);
    }

    /// Zipkin server spans without `"shared": true` that reuse their
    /// client's id pair with that client in either order, as Zipkin's trace
    /// merge reads them; one that is the client's child still pairs by its
    /// parent; and what waits for a shared half is let go with the span.
    #[test]
    fn unflagged_shared_server_spans_pair_with_the_client_of_their_id() {
        let mut p = Pairer::new(PairingConfig::default());
        let mut out = Vec::new();
        let unflagged = |service: &str, id: u8, parent: Option<u8>| SpanRecord {
            may_share_client_id: true,
            ..span(SpanKind::Server, service, id, parent)
        };
        // Client first: the server (id 2, the client's parent 1) joins it.
        p.add(span(SpanKind::Client, "frontend", 2, Some(1)), 0, &mut out);
        p.add(unflagged("checkout", 2, Some(1)), 1, &mut out);
        // Server first, then its client.
        p.add(unflagged("payment", 4, Some(3)), 2, &mut out);
        p.add(span(SpanKind::Client, "checkout", 4, Some(3)), 3, &mut out);
        // A server without a propagated parent still joins a client before it.
        p.add(span(SpanKind::Client, "checkout", 6, Some(5)), 4, &mut out);
        p.add(unflagged("stock", 6, None), 5, &mut out);
        // An unflagged server that is its client's child pairs as usual.
        p.add(unflagged("mail", 8, Some(7)), 6, &mut out);
        p.add(span(SpanKind::Client, "checkout", 7, Some(3)), 7, &mut out);
        let pairs: Vec<(&str, &str)> = out
            .iter()
            .map(|o| (o.source.name.as_str(), o.target.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("frontend", "checkout"),
                ("checkout", "payment"),
                ("checkout", "stock"),
                ("checkout", "mail"),
            ]
        );
        assert_eq!(p.stats.paired, 4);
        assert_eq!((p.waiting(), p.servers_by_own_id.len()), (0, 0));

        // One that never meets its client expires as a callee of a user and
        // leaves nothing behind; a later client of its id waits alone.
        out.clear();
        p.add(unflagged("ledger", 10, Some(9)), 0, &mut out);
        assert_eq!(p.servers_by_own_id.len(), 1);
        p.expire(11_000_000_000, &mut out);
        assert_eq!((p.waiting(), p.servers_by_own_id.len()), (0, 0));
        assert_eq!(out[0].source.id, "user");
        p.add(
            span(SpanKind::Client, "checkout", 10, Some(9)),
            12_000_000_000,
            &mut out,
        );
        assert_eq!((p.waiting(), p.stats.paired), (1, 4));
    }
}
