//! One scrape's payload -> series identities -> the target's open minute.
//!
//! A scrape is all or nothing: the whole payload is parsed and checked
//! against the limits into a staging area first, and only a clean scrape
//! touches the aggregator, so a truncated or oversized payload writes no
//! partial rows.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use xxhash_rust::xxh3::xxh3_64;

use super::parse::{key_hash, ExpectedKey, Format, MetricKind, Parser, RawValue, Sample};
use crate::config::{Limits, TargetSpec};
use crate::rollup::{
    IdHasher, IdMap, LabelSet, MinuteAggregator, RollupRow, SeriesRow, Slot, NO_SLOT,
};
use crate::telemetry::ScrapeErrorReason;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("parse error at {0}")]
    Parse(String),
    #[error("sample limit exceeded: more than {limit} samples")]
    SampleLimit { limit: usize },
    #[error("series {series} has {count} labels, limit is {limit}")]
    TooManyLabels {
        series: String,
        count: usize,
        limit: usize,
    },
    #[error("series {series}: label {label:?} is longer than {limit} bytes")]
    LabelTooLong {
        series: String,
        label: String,
        limit: usize,
    },
}

impl IngestError {
    pub fn reason(&self) -> ScrapeErrorReason {
        match self {
            IngestError::Parse(_) => ScrapeErrorReason::ParseError,
            IngestError::SampleLimit { .. } => ScrapeErrorReason::SampleLimit,
            IngestError::TooManyLabels { .. } | IngestError::LabelTooLong { .. } => {
                ScrapeErrorReason::LabelLimit
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStats {
    pub samples: usize,
    pub duplicates: usize,
    pub new_series: usize,
    /// Known series found in the series cache because they were not near
    /// where the last scrape had them.
    pub out_of_order: usize,
}

#[derive(Clone, Copy)]
enum LabelValue<'a> {
    Raw(RawValue<'a>),
    Plain(&'a str),
}

impl<'a> LabelValue<'a> {
    fn append_to(&self, out: &mut Vec<u8>, scratch: &mut String) {
        match self {
            LabelValue::Plain(s) => out.extend_from_slice(s.as_bytes()),
            LabelValue::Raw(r) if !r.has_escapes() => out.extend_from_slice(r.0.as_bytes()),
            LabelValue::Raw(r) => {
                scratch.clear();
                r.unescape_into(scratch);
                out.extend_from_slice(scratch.as_bytes());
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            LabelValue::Plain(s) => s.len(),
            LabelValue::Raw(r) => r.0.len(),
        }
    }

    fn unescaped(self) -> Cow<'a, str> {
        match self {
            LabelValue::Plain(s) => Cow::Borrowed(s),
            LabelValue::Raw(r) => r.to_cow(),
        }
    }
}

fn label_set(labels: &[(&str, LabelValue<'_>)]) -> LabelSet {
    let values: Vec<Cow<'_, str>> = labels.iter().map(|(_, v)| v.unescaped()).collect();
    LabelSet::from_pairs(
        labels
            .iter()
            .zip(&values)
            .map(|((n, _), v)| (*n, v.as_ref())),
    )
}

struct Staged {
    raw_key: u64,
    key_len: u32,
    /// The id of a series this target has not stored yet; a stored one's
    /// slot holds its id, and this is 0.
    id: u64,
    /// `NO_SLOT` for a series this target has not stored yet.
    slot: Slot,
    counter: bool,
    value: f64,
}

/// The i-th sample of the last accepted scrape. Its series' id is in its
/// slot (see `Cached`).
struct Previous {
    raw_key: u64,
    slot: Slot,
    /// Length of its key text, so the parser can recognise it unscanned.
    key_len: u32,
}

/// How far ahead of the expected position a sample is looked for in the
/// last scrape's order before falling back to the hash table (series that
/// vanished, e.g. a rescheduled pod's, shift the rest).
const POSITION_LOOKAHEAD: usize = 4;

/// Spare entries the last scrape's order may have beyond an eighth before
/// it is allocated again at its exact length.
const PREVIOUS_SLACK: usize = 64;

/// Scratch for the scrape being ingested on this thread. An `ingest` call
/// runs to its end without yielding, so one area per thread serves every
/// target: kept per target it cost ~40 B for every series of the fleet,
/// allocated per scrape it cost a trip through the allocator for every
/// scrape. Bounded by `samples_per_scrape`.
#[derive(Default)]
struct ThreadScratch {
    staged: Vec<Staged>,
    last_positions: LastPositions,
}

thread_local! {
    static SCRATCH: RefCell<ThreadScratch> = RefCell::new(ThreadScratch::default());
}

/// Where each slot's series stood in the last scrape, built at the first
/// sample of a scrape found out of order. Without it, the samples after a
/// gap wider than [`POSITION_LOOKAHEAD`] (a rescheduled pod's five
/// `kube_pod_status_phase` series replaced by its successor's) all went
/// through the series cache, a cache miss each at fleet scale; and
/// exporters that write objects in map order (kube-state-metrics) write an
/// object's several series together, so finding the first puts the rest
/// back in order.
#[derive(Default)]
struct LastPositions {
    built: bool,
    by_slot: Vec<u32>,
}

const NOT_IN_LAST_SCRAPE: u32 = u32::MAX;

impl LastPositions {
    /// Where `slot` held `raw_key` in `previous`, if it did.
    fn find(&mut self, previous: &[Previous], slot: Slot, raw_key: u64) -> Option<usize> {
        if !self.built {
            self.built = true;
            self.by_slot.clear();
            for (i, p) in previous.iter().enumerate() {
                let s = p.slot as usize;
                if s >= self.by_slot.len() {
                    self.by_slot.resize(s + 1, NOT_IN_LAST_SCRAPE);
                }
                self.by_slot[s] = u32::try_from(i).unwrap_or(NOT_IN_LAST_SCRAPE);
            }
        }
        let at = *self.by_slot.get(slot as usize)? as usize;
        previous
            .get(at)
            .is_some_and(|p| p.raw_key == raw_key)
            .then_some(at)
    }
}

/// Counters get a reset-corrected increase. Prometheus' `/federate` serves
/// every sample as untyped, so the names of counters count too: `_total`,
/// and a histogram's or summary's `_bucket`, `_count` and `_sum` (without
/// them no federated cluster had a latency quantile or a request rate).
fn is_counter(kind: MetricKind, name: &str) -> bool {
    let histogram_part =
        || name.ends_with("_bucket") || name.ends_with("_count") || name.ends_with("_sum");
    match kind {
        MetricKind::Counter => true,
        MetricKind::Histogram => histogram_part(),
        MetricKind::Summary => name.ends_with("_count") || name.ends_with("_sum"),
        MetricKind::Unknown => name.ends_with("_total") || histogram_part(),
        _ => false,
    }
}

const TARGET_LABELS: [&str; 3] = ["cluster", "job", "instance"];
const EXPORTED_TARGET_LABELS: [&str; 3] = ["exported_cluster", "exported_job", "exported_instance"];
/// Where Prometheus puts a scraped `job` when the payload has an
/// `exported_job` of its own (a Pushgateway's series read through another
/// scrape): one more prefix.
const EXPORTED_TWICE_TARGET_LABELS: [&str; 3] = [
    "exported_exported_cluster",
    "exported_exported_job",
    "exported_exported_instance",
];

/// A series as this target writes it, keyed by a hash of its raw text.
///
/// Holds the slot only: the slot holds the id. Between scrapes every entry
/// names a live slot of its own series, because the only way a slot changes
/// hands, eviction in `begin`, drops the entries that name it before the
/// slot can be reused. (`Previous` entries of evicted series fail the
/// liveness check on use, and a scrape that reuses a slot rewrites them.)
/// 8 bytes an entry less, for every series of the fleet.
struct Cached {
    /// `NO_SLOT` while the scrape that first saw it is being staged.
    slot: Slot,
    /// Scrape that first saw it (forgetting what a rejected scrape added).
    first_scrape: u32,
}

/// Per-target ingest state: its labels, limits, open minute, and the series
/// cache that makes the steady state cheap.
///
/// Exporters write a series the same way every scrape, so the raw text of a
/// sample's name and label section identifies it for this target. The first
/// time a text is seen it takes the full path (label collection, limits,
/// sorting, unescaping, the stable id); afterwards one hash of the raw bytes
/// finds the id. Like Prometheus' scrape cache. Before that, the sample is
/// compared with the one at the same position in the last accepted scrape
/// (exporters write their series in a stable order), which finds most
/// series without touching a hash table.
pub struct Ingestor {
    target_values: [String; 3],
    honor_labels: bool,
    limits: Limits,
    aggregator: MinuteAggregator,
    previous: Vec<Previous>,
    seen: HashSet<u64, BuildHasherDefault<IdHasher>>,
    cache: IdMap<Cached>,
    scrape_seq: u32,
    key: Vec<u8>,
    scratch: String,
    /// TYPE lines in the last scrape's payload: the parser's room for them.
    families: usize,
}

impl Ingestor {
    /// The limits this target's scrapes are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn new(target: &TargetSpec, limits: Limits) -> Ingestor {
        Ingestor {
            target_values: [
                target.cluster.clone(),
                target.job.clone(),
                target.instance.clone(),
            ],
            honor_labels: target.honor_labels,
            limits,
            aggregator: MinuteAggregator::for_interval(target.interval),
            previous: Vec::new(),
            seen: HashSet::default(),
            cache: IdMap::default(),
            scrape_seq: 0,
            key: Vec::with_capacity(256),
            scratch: String::new(),
            families: 0,
        }
    }

    pub fn series_count(&self) -> usize {
        self.aggregator.series_count()
    }

    /// Starts a scrape at `ts_secs`, completing the previous minute into `out`.
    /// Returns the number of idle series evicted.
    pub fn begin(&mut self, ts_secs: i64, out: &mut Vec<RollupRow>) -> usize {
        let evicted = self.aggregator.begin_scrape(ts_secs, out);
        if self.cache.len() > 2 * self.aggregator.series_count() + 1024 {
            // An exporter that spells a series differently every scrape
            // (labels in random order) would grow the cache without bound;
            // the position shortcut does not need it, misses refill it.
            self.cache.clear();
        } else if evicted > 0 {
            // Entries of evicted series go with them; the next scrape that
            // has one takes the full path and finds it new again.
            let aggregator = &self.aggregator;
            self.cache.retain(|_, c| aggregator.is_live(c.slot));
        }
        evicted
    }

    /// Emits the open minute now (graceful shutdown).
    pub fn close(&mut self, out: &mut Vec<RollupRow>) {
        self.aggregator.close_open_minute(out);
    }

    /// Parses and checks the whole payload; on success adds every sample to
    /// the open minute and appends first-seen series to `new_series`.
    pub fn ingest(
        &mut self,
        body: &[u8],
        format: Format,
        new_series: &mut Vec<SeriesRow>,
    ) -> Result<IngestStats, IngestError> {
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.staged.clear();
            scratch.last_positions.built = false;
            self.ingest_staged(body, format, new_series, scratch)
        })
    }

    fn ingest_staged(
        &mut self,
        body: &[u8],
        format: Format,
        new_series: &mut Vec<SeriesRow>,
        scratch: &mut ThreadScratch,
    ) -> Result<IngestStats, IngestError> {
        let first_new = new_series.len();
        let result = self.stage(body, format, new_series, scratch);
        let staged = &scratch.staged;
        // The new-series duplicate check is scratch for one scrape, and
        // allocates only when a scrape has new series.
        self.seen = HashSet::default();
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                // A rejected scrape leaves no trace: not its samples, not its
                // new series, not their cache entries (whose series rows were
                // never written).
                new_series.truncate(first_new);
                let seq = self.scrape_seq;
                self.cache.retain(|_, c| c.first_scrape != seq);
                return Err(e);
            }
        };
        self.aggregator.reserve_for_new_series(stats.new_series);
        // Sized to this scrape: a cleared `Vec` would keep the capacity of
        // its largest scrape, which doubling left up to twice too big. A
        // scrape of about the last one's length reuses it.
        let fits = staged.len()..=staged.len() + staged.len() / 8 + PREVIOUS_SLACK;
        if fits.contains(&self.previous.capacity()) {
            self.previous.clear();
        } else {
            self.previous = Vec::with_capacity(staged.len());
        }
        for s in staged.iter() {
            let slot = if s.slot == NO_SLOT {
                let slot = self.aggregator.insert(s.id, s.counter);
                if let Some(c) = self.cache.get_mut(&s.raw_key) {
                    c.slot = slot;
                }
                slot
            } else {
                s.slot
            };
            self.aggregator.observe_slot(slot, s.value);
            self.previous.push(Previous {
                raw_key: s.raw_key,
                slot,
                key_len: s.key_len,
            });
        }
        Ok(stats)
    }

    fn stage(
        &mut self,
        body: &[u8],
        format: Format,
        new_series: &mut Vec<SeriesRow>,
        ThreadScratch {
            staged,
            last_positions,
        }: &mut ThreadScratch,
    ) -> Result<IngestStats, IngestError> {
        let Ingestor {
            target_values,
            honor_labels,
            limits,
            aggregator,
            previous,
            seen,
            cache,
            scrape_seq,
            key,
            scratch,
            families,
        } = self;
        // 0 is the mark of a slot no scrape has staged yet.
        *scrape_seq = scrape_seq.wrapping_add(1).max(1);
        let seq = *scrape_seq;
        let mut stats = IngestStats::default();
        let mut labels: Vec<(&str, LabelValue<'_>)> = Vec::with_capacity(16);
        let mut metric_names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut expected = 0usize;
        let mut parser = Parser::new(body, format).scraping(*families);
        loop {
            let hint = previous.get(expected).map(|p| ExpectedKey {
                len: p.key_len,
                hash: p.raw_key,
            });
            let Some(sample) = parser.next_sample_expecting(hint) else {
                break;
            };
            let sample = sample.map_err(|e| IngestError::Parse(e.to_string()))?;
            stats.samples += 1;
            if stats.samples > limits.samples_per_scrape {
                return Err(IngestError::SampleLimit {
                    limit: limits.samples_per_scrape,
                });
            }
            let (raw_key, key_len) = match hint {
                Some(hint) if sample.as_expected => (hint.hash, hint.len),
                // A key longer than 4 GiB cannot be expected; u32::MAX never matches.
                _ => (
                    key_hash(sample.key),
                    u32::try_from(sample.key.len()).unwrap_or(u32::MAX),
                ),
            };
            // Where the last scrape had it, or a little further on.
            let window = previous.get(expected..).unwrap_or_default();
            let known = match window
                .iter()
                .take(POSITION_LOOKAHEAD)
                .position(|p| p.raw_key == raw_key)
            {
                Some(ahead) => {
                    expected += ahead + 1;
                    Some(window[ahead].slot)
                }
                None => cache.get(&raw_key).map(|c| {
                    stats.out_of_order += 1;
                    if let Some(at) = last_positions.find(previous, c.slot, raw_key) {
                        expected = at + 1;
                    }
                    c.slot
                }),
            };
            // Not live: staged as new earlier in this scrape (a duplicate,
            // found as such on the full path).
            if let Some(slot) = known.filter(|&slot| aggregator.is_live(slot)) {
                if !aggregator.mark_scraped(slot, seq) {
                    stats.duplicates += 1;
                    continue;
                }
                staged.push(Staged {
                    raw_key,
                    key_len,
                    id: 0,
                    slot,
                    counter: false,
                    value: sample.value,
                });
                continue;
            }
            labels.clear();
            collect_labels(&sample, target_values, *honor_labels, &mut labels);
            check_label_limits(&sample, &labels, limits)?;
            let id = series_key(sample.name, &labels, key, scratch);
            if !seen.insert(id) {
                stats.duplicates += 1;
                continue;
            }
            let slot = match aggregator.slot_of(id) {
                // Stored already under another spelling of its labels, or
                // its cache entry was dropped.
                Some(slot) => {
                    if !aggregator.mark_scraped(slot, seq) {
                        stats.duplicates += 1;
                        continue;
                    }
                    slot
                }
                None => {
                    stats.new_series += 1;
                    let metric = metric_names
                        .entry(sample.name)
                        .or_insert_with(|| Arc::from(sample.name));
                    new_series.push(SeriesRow {
                        id,
                        metric: metric.clone(),
                        kind: sample.kind.as_str(),
                        labels: label_set(&labels),
                    });
                    NO_SLOT
                }
            };
            cache.insert(
                raw_key,
                Cached {
                    slot,
                    first_scrape: seq,
                },
            );
            staged.push(Staged {
                raw_key,
                key_len,
                id,
                slot,
                counter: is_counter(sample.kind, sample.name),
                value: sample.value,
            });
        }
        *families = parser.families_typed();
        Ok(stats)
    }

    /// Records `up`, `scrape_duration_seconds` and `scrape_samples_scraped`
    /// for this target into the open minute.
    pub fn record_scrape_health(
        &mut self,
        up: bool,
        duration_secs: f64,
        samples: usize,
        new_series: &mut Vec<SeriesRow>,
    ) {
        for (name, value) in [
            ("up", if up { 1.0 } else { 0.0 }),
            ("scrape_duration_seconds", duration_secs),
            ("scrape_samples_scraped", samples as f64),
        ] {
            let labels: Vec<(&str, LabelValue<'_>)> = TARGET_LABELS
                .iter()
                .zip(&self.target_values)
                .map(|(n, v)| (*n, LabelValue::Plain(v.as_str())))
                .collect();
            let id = series_key(name, &labels, &mut self.key, &mut self.scratch);
            if !self.aggregator.contains(id) {
                new_series.push(SeriesRow {
                    id,
                    metric: name.into(),
                    kind: "gauge",
                    labels: label_set(&labels),
                });
            }
            self.aggregator.observe(id, false, value);
        }
    }
}

/// The sample's labels plus the target labels, sorted by name. A scraped
/// label that collides with a target label wins under `honor_labels`,
/// otherwise it is kept as `exported_<name>`, as Prometheus does.
fn collect_labels<'s>(
    sample: &Sample<'s>,
    target_values: &'s [String; 3],
    honor_labels: bool,
    out: &mut Vec<(&'s str, LabelValue<'s>)>,
) {
    let mut present = [false; 3];
    for (name, value) in sample.labels.iter() {
        match TARGET_LABELS.iter().position(|t| *t == name) {
            Some(i) if honor_labels => {
                present[i] = true;
                out.push((name, LabelValue::Raw(value)));
            }
            Some(i) => {
                let taken = |name: &str| sample.labels.iter().any(|(n, _)| n == name);
                // A third level is not kept: no exporter nests that deep.
                let renamed = [EXPORTED_TARGET_LABELS[i], EXPORTED_TWICE_TARGET_LABELS[i]]
                    .into_iter()
                    .find(|name| !taken(name));
                if let Some(name) = renamed {
                    out.push((name, LabelValue::Raw(value)));
                }
            }
            None => out.push((name, LabelValue::Raw(value))),
        }
    }
    for i in 0..3 {
        if !present[i] {
            out.push((TARGET_LABELS[i], LabelValue::Plain(&target_values[i])));
        }
    }
    // Empty label values mean "no label" in Prometheus' data model.
    out.retain(|(_, v)| v.len() > 0);
    if !out.is_sorted_by(|a, b| a.0 <= b.0) {
        out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
}

fn check_label_limits(
    sample: &Sample<'_>,
    labels: &[(&str, LabelValue<'_>)],
    limits: &Limits,
) -> Result<(), IngestError> {
    if labels.len() > limits.labels_per_series {
        return Err(IngestError::TooManyLabels {
            series: sample.name.to_string(),
            count: labels.len(),
            limit: limits.labels_per_series,
        });
    }
    for (name, value) in labels {
        if name.len() > limits.label_name_length {
            return Err(IngestError::LabelTooLong {
                series: sample.name.to_string(),
                label: name.chars().take(64).collect(),
                limit: limits.label_name_length,
            });
        }
        if value.len() > limits.label_value_length {
            return Err(IngestError::LabelTooLong {
                series: sample.name.to_string(),
                label: name.to_string(),
                limit: limits.label_value_length,
            });
        }
    }
    Ok(())
}

/// The stable 64-bit series id: xxh3 of the metric name and the sorted,
/// unescaped label pairs, with separator bytes that cannot occur in UTF-8.
fn series_key(
    name: &str,
    labels: &[(&str, LabelValue<'_>)],
    key: &mut Vec<u8>,
    scratch: &mut String,
) -> u64 {
    key.clear();
    key.extend_from_slice(name.as_bytes());
    for (n, v) in labels {
        key.push(0xff);
        key.extend_from_slice(n.as_bytes());
        key.push(0xfe);
        v.append_to(key, scratch);
    }
    xxh3_64(key)
}

/// The id of a series given its metric name and (unsorted, unescaped) labels;
/// equal to what ingest assigns. Used by tests and tools to find a series.
pub fn series_id(metric: &str, labels: &[(&str, &str)]) -> u64 {
    let mut sorted: Vec<(&str, LabelValue<'_>)> = labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (*n, LabelValue::Plain(v)))
        .collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    series_key(metric, &sorted, &mut Vec::new(), &mut String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target(honor: bool) -> TargetSpec {
        TargetSpec {
            cluster: "sh-1".into(),
            job: "node".into(),
            instance: "10.0.0.1:9100".into(),
            url: "http://10.0.0.1:9100/metrics".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            honor_labels: honor,
            limits: Default::default(),
        }
    }

    #[test]
    fn ids_ignore_label_order_and_escaping() {
        let mut a = Ingestor::new(&target(false), Limits::default());
        let mut rows = Vec::new();
        let mut new = Vec::new();
        a.begin(0, &mut rows);
        a.ingest(b"m{b=\"x\\\\y\",a=\"1\"} 1\n", Format::Prometheus, &mut new)
            .unwrap();
        let want = series_id(
            "m",
            &[
                ("a", "1"),
                ("b", "x\\y"),
                ("cluster", "sh-1"),
                ("job", "node"),
                ("instance", "10.0.0.1:9100"),
            ],
        );
        assert_eq!(new[0].id, want);
        assert_eq!(new[0].label("b"), Some("x\\y"));
    }

    /// A label value with a raw line feed (which Prometheus' scrapes keep)
    /// is the same series as the one that escapes it as the format says.
    #[test]
    fn a_raw_line_feed_in_a_value_is_the_escaped_one() {
        let mut raw = Vec::new();
        let mut ing = Ingestor::new(&target(false), Limits::default());
        ing.ingest(b"m{a=\"x\ny\"} 1\nn 2\n", Format::Prometheus, &mut raw)
            .unwrap();
        let mut escaped = Vec::new();
        Ingestor::new(&target(false), Limits::default())
            .ingest(b"m{a=\"x\\ny\"} 1\n", Format::Prometheus, &mut escaped)
            .unwrap();
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].id, escaped[0].id);
        assert_eq!(raw[0].label("a"), Some("x\ny"));
        assert_eq!(&*raw[1].metric, "n");
    }

    #[test]
    fn honor_labels_decides_collisions() {
        let body = b"m{job=\"inner\",instance=\"pod:80\"} 1\n";
        let mut new = Vec::new();
        let mut kept = Ingestor::new(&target(true), Limits::default());
        kept.ingest(body, Format::Prometheus, &mut new).unwrap();
        assert_eq!(new[0].label("job"), Some("inner"));
        assert_eq!(new[0].label("instance"), Some("pod:80"));
        assert_eq!(new[0].label("cluster"), Some("sh-1"));
        new.clear();
        let mut renamed = Ingestor::new(&target(false), Limits::default());
        renamed.ingest(body, Format::Prometheus, &mut new).unwrap();
        assert_eq!(new[0].label("job"), Some("node"));
        assert_eq!(new[0].label("exported_job"), Some("inner"));
        // An `exported_job` of the payload's own keeps its name; the
        // scraped `job` gets one more prefix, as Prometheus does.
        new.clear();
        let mut pushed = Ingestor::new(&target(false), Limits::default());
        pushed
            .ingest(
                b"m{job=\"inner\",exported_job=\"batch\"} 1\n",
                Format::Prometheus,
                &mut new,
            )
            .unwrap();
        assert_eq!(new[0].label("job"), Some("node"));
        assert_eq!(new[0].label("exported_job"), Some("batch"));
        assert_eq!(new[0].label("exported_exported_job"), Some("inner"));
        assert_eq!(new[0].labels.len(), 5, "{:?}", new[0].labels);
    }

    #[test]
    fn a_bad_scrape_changes_nothing() {
        let limits = Limits {
            samples_per_scrape: 2,
            ..Limits::default()
        };
        let mut ing = Ingestor::new(&target(false), limits);
        let mut new = Vec::new();
        let err = ing
            .ingest(b"a 1\nb 2\nc 3\n", Format::Prometheus, &mut new)
            .unwrap_err();
        assert_eq!(err.reason(), ScrapeErrorReason::SampleLimit);
        assert!(new.is_empty());
        assert_eq!(ing.series_count(), 0);
        let err = ing
            .ingest(b"a 1\nb{x=\"1\" 2\n", Format::Prometheus, &mut new)
            .unwrap_err();
        assert_eq!(err.reason(), ScrapeErrorReason::ParseError);
        assert!(err.to_string().contains("2:"), "{err}");
        assert_eq!(ing.series_count(), 0);
    }

    #[test]
    fn cached_series_survive_a_rejected_scrape_correctly() {
        let limits = Limits {
            samples_per_scrape: 2,
            ..Limits::default()
        };
        let mut ing = Ingestor::new(&target(false), limits);
        let mut new = Vec::new();
        let mut rows = Vec::new();
        ing.begin(0, &mut rows);
        // b is first seen in a scrape that is then rejected...
        assert!(ing
            .ingest(b"a 1\nb 2\nc 3\n", Format::Prometheus, &mut new)
            .is_err());
        assert!(new.is_empty());
        // ...so its series row is still written when a good scrape has it.
        let stats = ing
            .ingest(b"b 2\na 1\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(stats.new_series, 2);
        let mut names: Vec<_> = new.iter().map(|s| &*s.metric).collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        // Steady state: cache hits, same ids, duplicates still caught.
        new.clear();
        let stats = ing
            .ingest(b"a 5\nb 6\na 7\n", Format::Prometheus, &mut new)
            .unwrap_err();
        assert_eq!(stats.reason(), ScrapeErrorReason::SampleLimit);
        let stats = ing
            .ingest(b"a 5\na 7\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(
            (stats.samples, stats.duplicates, stats.new_series),
            (2, 1, 0)
        );
        assert!(new.is_empty());
    }

    /// Rows of one complete minute, as (id, count, sum).
    fn minute_rows(ing: &mut Ingestor, next_minute: i64) -> Vec<(u64, u32, f64)> {
        let mut rows = Vec::new();
        ing.begin(next_minute, &mut rows);
        let mut got: Vec<_> = rows
            .iter()
            .map(|r| (r.series_id, r.agg.count, r.agg.sum))
            .collect();
        got.sort_by_key(|r| r.0);
        got
    }

    /// The position shortcut must never change which series a sample lands
    /// in: reordered payloads, series vanishing from the middle (pod churn)
    /// and new ones appearing there all aggregate exactly as by id.
    #[test]
    fn reordered_and_churning_payloads_keep_identities() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let mut rows = Vec::new();
        ing.begin(0, &mut rows);
        ing.ingest(b"a 1\nb 2\nc 3\nd 4\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(new.len(), 4);
        let id = |m: &str| {
            series_id(
                m,
                &[
                    ("cluster", "sh-1"),
                    ("job", "node"),
                    ("instance", "10.0.0.1:9100"),
                ],
            )
        };
        new.clear();
        // b vanished, e appeared in its place, then the rest reversed.
        let stats = ing
            .ingest(b"a 10\ne 5\nd 40\nc 30\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!((stats.new_series, stats.duplicates), (1, 0));
        assert_eq!(new[0].id, id("e"));
        // A duplicate found through the position shortcut is still dropped.
        let stats = ing
            .ingest(b"a 100\ne 50\ne 51\nd 400\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!((stats.new_series, stats.duplicates), (0, 1));
        let mut want = vec![
            (id("a"), 3, 111.0),
            (id("b"), 1, 2.0),
            (id("c"), 2, 33.0),
            (id("d"), 3, 444.0),
            (id("e"), 2, 55.0),
        ];
        want.sort_by_key(|r| r.0);
        assert_eq!(minute_rows(&mut ing, 60), want);
    }

    /// A gap wider than the lookahead (a pod's five phase series replaced by
    /// its successor's) or objects written in another order (as
    /// kube-state-metrics writes them, in map order) cost one series-cache
    /// lookup per jump, after which the samples are found by position again.
    #[test]
    fn samples_after_a_jump_are_found_by_position_again() {
        let phases = ["Pending", "Running", "Succeeded", "Failed", "Unknown"];
        let family = |pods: &[&str], value: f64| {
            let mut text = String::new();
            for pod in pods {
                for phase in phases {
                    text.push_str(&format!(
                        "kube_pod_status_phase{{pod=\"{pod}\",phase=\"{phase}\"}} {value}\n"
                    ));
                }
            }
            text
        };
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let (mut new, mut rows) = (Vec::new(), Vec::new());
        ing.begin(0, &mut rows);
        let first = family(&["a", "b", "c", "d", "e", "f"], 1.0);
        ing.ingest(first.as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(new.len(), 30);

        // b rescheduled as b2, in b's place.
        let replaced = family(&["a", "b2", "c", "d", "e", "f"], 2.0);
        let stats = ing
            .ingest(replaced.as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!((stats.new_series, stats.out_of_order), (5, 1));

        // The same objects in another order: one lookup per object.
        let shuffled = family(&["e", "a", "f", "c", "b2", "d"], 3.0);
        let stats = ing
            .ingest(shuffled.as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!((stats.new_series, stats.out_of_order), (0, 6));
        let stats = ing
            .ingest(shuffled.as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!((stats.new_series, stats.out_of_order), (0, 0));
        assert_eq!(minute_rows(&mut ing, 60).len(), 35);
    }

    /// A series idle past the eviction horizon is forgotten (its slot may go
    /// to another series) and is new again when it comes back.
    #[test]
    fn evicted_series_come_back_as_new() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let mut rows = Vec::new();
        ing.begin(0, &mut rows);
        ing.ingest(b"old 1\nkept 1\n", Format::Prometheus, &mut new)
            .unwrap();
        for minute in 1..=crate::rollup::IDLE_EVICTION_MINUTES + 1 {
            ing.begin(minute * 60, &mut rows);
            ing.ingest(b"kept 2\n", Format::Prometheus, &mut new)
                .unwrap();
        }
        assert_eq!(ing.series_count(), 1, "old was evicted");
        new.clear();
        let stats = ing
            .ingest(b"fresh 3\nold 7\nkept 2\n", Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(stats.new_series, 2);
        let names: Vec<_> = new.iter().map(|s| &*s.metric).collect();
        assert_eq!(names, ["fresh", "old"]);
        let next = (crate::rollup::IDLE_EVICTION_MINUTES + 2) * 60;
        let got = minute_rows(&mut ing, next);
        let mut sums: Vec<f64> = got.iter().map(|r| r.2).collect();
        sums.sort_by(f64::total_cmp);
        // kept was scraped twice in this minute (2 + 2).
        assert_eq!(sums, [3.0, 4.0, 7.0]);
    }

    /// The cache and the last scrape's order name slots, not ids: once a
    /// series is evicted and its slot taken by another, the evicted series'
    /// text must not lead to the new tenant.
    #[test]
    fn a_reused_slot_does_not_take_its_old_series_samples() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let mut rows = Vec::new();
        ing.begin(0, &mut rows);
        ing.ingest(
            b"old 1
kept 1
",
            Format::Prometheus,
            &mut new,
        )
        .unwrap();
        let horizon = crate::rollup::IDLE_EVICTION_MINUTES + 1;
        for minute in 1..=horizon {
            ing.begin(minute * 60, &mut rows);
            ing.ingest(
                b"kept 2
",
                Format::Prometheus,
                &mut new,
            )
            .unwrap();
        }
        assert_eq!(ing.series_count(), 1, "old was evicted");
        // `fresh` takes the slot `old` left.
        ing.ingest(
            b"fresh 3
kept 2
",
            Format::Prometheus,
            &mut new,
        )
        .unwrap();
        new.clear();
        let stats = ing
            .ingest(
                b"old 7
fresh 3
kept 2
",
                Format::Prometheus,
                &mut new,
            )
            .unwrap();
        assert_eq!(stats.new_series, 1);
        assert_eq!(&*new[0].metric, "old");
        let got = minute_rows(&mut ing, (horizon + 1) * 60);
        let by_id = |name: &str| {
            got.iter().find(|r| {
                r.0 == series_id(
                    name,
                    &[
                        ("cluster", "sh-1"),
                        ("job", "node"),
                        ("instance", "10.0.0.1:9100"),
                    ],
                )
            })
        };
        assert_eq!(by_id("fresh").map(|r| (r.1, r.2)), Some((2, 6.0)));
        assert_eq!(by_id("old").map(|r| (r.1, r.2)), Some((1, 7.0)));
    }

    /// One series written with its labels in a new order every scrape must
    /// not grow the cache without bound, nor become a new series.
    #[test]
    fn label_order_churn_keeps_the_cache_bounded() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let mut rows = Vec::new();
        let mut labels: Vec<String> = (0..7).map(|i| format!("l{i}=\"v{i}\"")).collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for scrape in 0..3000usize {
            // A pseudo-random order each scrape: thousands of spellings.
            for i in (1..labels.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                labels.swap(i, (seed % (i as u64 + 1)) as usize);
            }
            let body = format!("m{{{}}} {scrape}\n", labels.join(","));
            ing.begin(scrape as i64 * 15, &mut rows);
            ing.ingest(body.as_bytes(), Format::Prometheus, &mut new)
                .unwrap();
            assert!(ing.cache.len() <= 2 * ing.series_count() + 1025);
        }
        assert_eq!(new.len(), 1, "one series, however it is spelled");
    }

    /// What `/federate` serves: every family untyped. A histogram's parts
    /// still get their increase; a gauge does not.
    #[test]
    fn federated_histograms_are_counters() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let (mut rows, mut new) = (Vec::new(), Vec::new());
        let body = |n: u32| {
            format!(
                "# TYPE h_bucket untyped\nh_bucket{{le=\"1\"}} {n}\n# TYPE h_count untyped\n\
                 h_count {n}\n# TYPE h_sum untyped\nh_sum {n}\n# TYPE queue_depth untyped\n\
                 queue_depth {n}\n"
            )
        };
        for (minute, value) in [(0, 10), (60, 25)] {
            ing.begin(minute, &mut rows);
            ing.ingest(body(value).as_bytes(), Format::Prometheus, &mut new)
                .unwrap();
        }
        rows.clear();
        ing.begin(120, &mut rows);
        let target = [
            ("cluster", "sh-1"),
            ("job", "node"),
            ("instance", "10.0.0.1:9100"),
        ];
        let increase_of = |metric: &str, labels: &[(&str, &str)]| {
            let all: Vec<(&str, &str)> = labels.iter().chain(&target).copied().collect();
            let id = series_id(metric, &all);
            rows.iter()
                .find(|r| r.series_id == id)
                .map(|r| r.agg.increase)
        };
        assert_eq!(increase_of("h_bucket", &[("le", "1")]), Some(15.0));
        assert_eq!(increase_of("h_count", &[]), Some(15.0));
        assert_eq!(increase_of("h_sum", &[]), Some(15.0));
        assert_eq!(increase_of("queue_depth", &[]), Some(0.0));
    }

    #[test]
    fn duplicates_are_counted_and_dropped() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let stats = ing
            .ingest(
                b"a{x=\"1\"} 1\na{x=\"1\"} 2\n",
                Format::Prometheus,
                &mut new,
            )
            .unwrap();
        assert_eq!(
            (stats.samples, stats.duplicates, stats.new_series),
            (2, 1, 1)
        );
    }

    /// What a target keeps between scrapes is sized to its series, not to
    /// the largest power of two that growing passed through: 20,260 series
    /// (a kube-state-metrics target of the benchmark fleet) once doubled to
    /// 32,768 slots, and every series paid for staging it held on to.
    #[test]
    fn a_target_keeps_what_its_series_need_between_scrapes() {
        let mut ing = Ingestor::new(&target(false), Limits::default());
        let mut new = Vec::new();
        let mut rows = Vec::new();
        let body =
            |n: usize| -> String { (0..n).map(|i| format!("m{{pod=\"p{i}\"}} 1\n")).collect() };
        ing.begin(0, &mut rows);
        ing.ingest(body(20_260).as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(ing.aggregator.slot_capacity(), 20_260);
        // `up` and the other two health series come after the payload's.
        ing.record_scrape_health(true, 0.1, 20_260, &mut new);
        assert_eq!(ing.series_count(), 20_263);
        assert_eq!(ing.aggregator.slot_capacity(), 20_260 + 20_260 / 8);
        assert_eq!(ing.previous.capacity(), 20_260);
        assert_eq!(ing.seen.capacity(), 0);
        // A few pods more (churn): room for an eighth more, not twice as many.
        ing.begin(15, &mut rows);
        ing.ingest(body(20_270).as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        ing.record_scrape_health(true, 0.1, 20_270, &mut new);
        assert_eq!(ing.series_count(), 20_273);
        assert_eq!(ing.aggregator.slot_capacity(), 20_260 + 20_260 / 8);
        assert_eq!(ing.previous.capacity(), 20_270);
        assert_eq!(new.len(), 20_273);
        // A few pods fewer: the last scrape's order is rewritten in place.
        ing.begin(30, &mut rows);
        ing.ingest(body(20_265).as_bytes(), Format::Prometheus, &mut new)
            .unwrap();
        assert_eq!(ing.previous.len(), 20_265);
        assert_eq!(ing.previous.capacity(), 20_270);
    }
}
