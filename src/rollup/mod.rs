//! In-memory 1-minute rollups, counter-aware, Thanos-style aggregates.
//!
//! Owns the per-series open bucket (count, sum, min, max, first, last and the
//! reset-corrected increase for counters) and decides when a bucket is
//! complete. It must not do IO or know about HTTP or DuckDB: complete buckets
//! leave as `RollupRow`s and the store persists them. The 5m and 1h
//! resolutions are derived from stored 1m rows by the store, with the same
//! `Aggregate::merge` rules expressed in SQL.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

pub const ONE_MINUTE_SECS: i64 = 60;

/// Series that have not been seen for this many minutes are dropped from
/// memory (pod churn); their stored rows stay.
pub const IDLE_EVICTION_MINUTES: i64 = 10;

/// The per-bucket aggregate. `increase` is only meaningful for counters: the
/// sum of non-negative deltas, where a drop is a counter reset and the new
/// value counts as the delta (what Prometheus' `increase()` assumes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub count: u32,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first: f64,
    pub last: f64,
    pub increase: f64,
}

impl Aggregate {
    pub const EMPTY: Aggregate = Aggregate {
        count: 0,
        sum: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        first: f64::NAN,
        last: f64::NAN,
        increase: 0.0,
    };

    #[inline]
    pub fn add(&mut self, value: f64) {
        if self.count == 0 {
            self.first = value;
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.last = value;
    }

    /// Combines a later bucket into this one (used to derive 5m/1h and to
    /// merge rows of the same minute written before and after a restart).
    pub fn merge(&mut self, later: &Aggregate) {
        if later.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *later;
            return;
        }
        self.count += later.count;
        self.sum += later.sum;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
        self.increase += later.increase;
    }
}

/// One complete bucket of one series, ready for the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupRow {
    pub series_id: u64,
    /// Unix seconds of the bucket start.
    pub bucket_start: i64,
    pub agg: Aggregate,
}

/// Identity of a series, written once when the series is first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub id: u64,
    /// Shared by the series of a metric that a scrape brings: a fleet's first
    /// scrape brings every series at once, a few hundred names over and over.
    pub metric: Arc<str>,
    /// `counter`, `gauge`, `histogram`, ... as declared by the exporter.
    pub kind: &'static str,
    /// Every label including `cluster`, `job` and `instance`, sorted by name,
    /// values unescaped. `__name__` is not included (it is `metric`).
    pub labels: LabelSet,
}

impl SeriesRow {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name)
    }
}

/// Label pairs packed into one allocation (`u32` length, bytes, repeated).
///
/// A fleet's first scrape creates every series at once and they queue for
/// the store; a `Vec<(String, String)>` costs two dozen allocations and
/// ~1.4 KB for a cAdvisor series, this one allocation of the text's size.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LabelSet(Box<[u8]>);

impl LabelSet {
    /// The pairs in name order (the scrape path passes them sorted, which
    /// is checked, not trusted: readers rely on the order).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        if pairs.clone().into_iter().is_sorted_by(|a, b| a.0 <= b.0) {
            return Self::packed(pairs);
        }
        let mut sorted: Vec<(&str, &str)> = pairs.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        Self::packed(sorted)
    }

    fn packed<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let len: usize = pairs
            .clone()
            .into_iter()
            .map(|(n, v)| 8 + n.len() + v.len())
            .sum();
        let mut packed = Vec::with_capacity(len);
        for (name, value) in pairs {
            for text in [name, value] {
                packed.extend_from_slice(&(text.len() as u32).to_le_bytes());
                packed.extend_from_slice(text.as_bytes());
            }
        }
        LabelSet(packed.into_boxed_slice())
    }

    pub fn iter(&self) -> LabelIter<'_> {
        LabelIter(&self.0)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for LabelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

pub struct LabelIter<'a>(&'a [u8]);

impl<'a> LabelIter<'a> {
    fn text(&mut self) -> Option<&'a str> {
        let (len, rest) = self.0.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let (text, rest) = rest.split_at_checked(len)?;
        self.0 = rest;
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: a `LabelSet` is only built by `packed`, which writes each
        // text's length and then the bytes of that `&str`, and is never
        // changed after; the reads walk the same lengths from the start, so
        // `text` is exactly the bytes of one `&str`. (Checking them again
        // was 6 % of the writer's time storing a fleet's new series.)
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        Some((self.text()?, self.text()?))
    }
}

/// Series ids are already xxh3 hashes; hashing them again is wasted work.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A series' place in its target's aggregator. Slots are handed out in the
/// order series are first seen, which is the order the exporter writes them,
/// so a scrape walks the slots front to back instead of probing a hash table
/// at random (at fleet scale every probe was a cache miss).
pub type Slot = u32;

/// No slot yet (a series first seen in a scrape not yet accepted).
pub const NO_SLOT: Slot = Slot::MAX;

struct SeriesState {
    id: u64,
    /// False once evicted; the slot waits on the free list for reuse.
    live: bool,
    counter: bool,
    /// The scrape that last staged this series (duplicate detection).
    last_scrape: u32,
    /// Last raw value seen (NaN before the first), carried across buckets so
    /// the increase between two scrapes lands in the later bucket.
    prev_raw: f64,
    bucket: Aggregate,
    last_seen_minute: i64,
}

/// The open minute of every series of one target. One per scrape target,
/// owned by that target's task, so the hot path takes no lock.
pub struct MinuteAggregator {
    open_minute: Option<i64>,
    slots: Vec<SeriesState>,
    index: IdMap<Slot>,
    free: Vec<Slot>,
    /// Series unseen for longer are evicted.
    idle_eviction_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Accepted,
    /// NaN (including Prometheus' staleness marker) carries no value to aggregate.
    SkippedNaN,
}

impl Default for MinuteAggregator {
    fn default() -> Self {
        Self::new()
    }
}

impl MinuteAggregator {
    pub fn new() -> Self {
        MinuteAggregator {
            open_minute: None,
            slots: Vec::new(),
            index: IdMap::default(),
            free: Vec::new(),
            idle_eviction_secs: IDLE_EVICTION_MINUTES * ONE_MINUTE_SECS,
        }
    }

    /// For a target scraped every `interval`: a series is kept at least two
    /// intervals after it was last seen, so a slow target's counters keep
    /// their previous value from one scrape to the next.
    pub fn for_interval(interval: std::time::Duration) -> Self {
        let interval_secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX / 4);
        MinuteAggregator {
            idle_eviction_secs: (IDLE_EVICTION_MINUTES * ONE_MINUTE_SECS)
                .max(2 * interval_secs + ONE_MINUTE_SECS),
            ..Self::new()
        }
    }

    pub fn series_count(&self) -> usize {
        self.index.len()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    pub fn slot_of(&self, id: u64) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    /// Whether `slot` holds a series: slots are freed by eviction (and
    /// reused after), so a remembered slot must be checked.
    #[inline]
    pub fn is_live(&self, slot: Slot) -> bool {
        self.slots.get(slot as usize).is_some_and(|s| s.live)
    }

    /// Records that scrape `seq` staged the series in `slot`; false if that
    /// scrape already had it (a duplicate sample).
    #[inline]
    pub fn mark_scraped(&mut self, slot: Slot, seq: u32) -> bool {
        match self.slots.get_mut(slot as usize) {
            Some(s) if s.last_scrape == seq => false,
            Some(s) => {
                s.last_scrape = seq;
                true
            }
            None => false,
        }
    }

    /// Makes room for `new` series about to be inserted. A target's series
    /// count barely moves after its first scrape, so the slots grow by what
    /// is needed (at least an eighth, for churn) instead of doubling: at
    /// fleet scale doubling left ~40 % of all slots, 88 B each, unused.
    pub fn reserve_for_new_series(&mut self, new: usize) {
        self.make_room(new.saturating_sub(self.free.len()));
    }

    /// Room for `needed` more slots: at least that, an eighth more, or 4.
    fn make_room(&mut self, needed: usize) {
        if self.slots.capacity() - self.slots.len() < needed {
            self.slots
                .reserve_exact(needed.max(self.slots.len() / 8).max(4));
        }
    }

    #[cfg(test)]
    pub(crate) fn slot_capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The slot of `id`, made live if it is not.
    pub fn insert(&mut self, id: u64, counter: bool) -> Slot {
        if let Some(&slot) = self.index.get(&id) {
            return slot;
        }
        let state = SeriesState {
            id,
            live: true,
            counter,
            last_scrape: 0,
            prev_raw: f64::NAN,
            bucket: Aggregate::EMPTY,
            last_seen_minute: self.open_minute.unwrap_or(0),
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = state;
                slot
            }
            None => {
                self.make_room(1);
                self.slots.push(state);
                (self.slots.len() - 1) as Slot
            }
        };
        self.index.insert(id, slot);
        slot
    }

    pub fn open_minute(&self) -> Option<i64> {
        self.open_minute
    }

    /// Starts a scrape observed at `ts_secs`. When it falls in a later minute
    /// than the open one, the open minute is complete: its non-empty buckets
    /// are appended to `out`, and idle series are evicted. Returns how many
    /// series were evicted. A clock that went backwards keeps the open minute.
    pub fn begin_scrape(&mut self, ts_secs: i64, out: &mut Vec<RollupRow>) -> usize {
        let minute = ts_secs.div_euclid(ONE_MINUTE_SECS) * ONE_MINUTE_SECS;
        match self.open_minute {
            Some(open) if minute <= open => 0,
            Some(_) => {
                self.close_open_minute(out);
                self.open_minute = Some(minute);
                let horizon = minute - self.idle_eviction_secs;
                let mut evicted = 0;
                for (slot, s) in self.slots.iter_mut().enumerate() {
                    if s.live && s.last_seen_minute < horizon {
                        s.live = false;
                        self.index.remove(&s.id);
                        self.free.push(slot as Slot);
                        evicted += 1;
                    }
                }
                evicted
            }
            None => {
                self.open_minute = Some(minute);
                0
            }
        }
    }

    /// Adds one sample to the open minute (call `begin_scrape` first).
    pub fn observe(&mut self, id: u64, counter: bool, value: f64) -> Observed {
        let slot = self.insert(id, counter);
        self.observe_slot(slot, value)
    }

    /// Adds one sample of the series in `slot` (from `insert`) to the open
    /// minute.
    #[inline]
    pub fn observe_slot(&mut self, slot: Slot, value: f64) -> Observed {
        let minute = self.open_minute.unwrap_or(0);
        let Some(state) = self.slots.get_mut(slot as usize) else {
            return Observed::SkippedNaN;
        };
        state.last_seen_minute = minute;
        if value.is_nan() {
            return Observed::SkippedNaN;
        }
        if state.counter {
            if !state.prev_raw.is_nan() {
                let delta = if value >= state.prev_raw {
                    value - state.prev_raw
                } else {
                    value
                };
                state.bucket.increase += delta;
            }
            state.prev_raw = value;
        }
        state.bucket.add(value);
        Observed::Accepted
    }

    /// Emits the open minute's buckets even though the minute is not over
    /// (graceful shutdown). The counters' previous values are kept.
    pub fn close_open_minute(&mut self, out: &mut Vec<RollupRow>) {
        let Some(open) = self.open_minute else { return };
        // One allocation, not a doubling series with a copy at each step.
        out.reserve(self.series_count());
        for s in self.slots.iter_mut() {
            if s.live && s.bucket.count > 0 {
                out.push(RollupRow {
                    series_id: s.id,
                    bucket_start: open,
                    agg: s.bucket,
                });
                s.bucket = Aggregate::EMPTY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_by_minute(rows: &[RollupRow], id: u64) -> Vec<(i64, Aggregate)> {
        let mut v: Vec<_> = rows
            .iter()
            .filter(|r| r.series_id == id)
            .map(|r| (r.bucket_start, r.agg))
            .collect();
        v.sort_by_key(|(t, _)| *t);
        v
    }

    #[test]
    fn gauge_bucket_keeps_count_sum_min_max_first_last() {
        let mut agg = MinuteAggregator::new();
        let mut out = Vec::new();
        for (t, v) in [(0, 5.0), (15, 1.0), (30, 9.0), (45, 3.0)] {
            agg.begin_scrape(t, &mut out);
            agg.observe(7, false, v);
        }
        assert!(out.is_empty(), "minute not complete yet");
        agg.begin_scrape(60, &mut out);
        let got = rows_by_minute(&out, 7);
        assert_eq!(got.len(), 1);
        let (start, a) = got[0];
        assert_eq!(start, 0);
        assert_eq!(
            (a.count, a.sum, a.min, a.max, a.first, a.last),
            (4, 18.0, 1.0, 9.0, 5.0, 3.0)
        );
        assert_eq!(a.increase, 0.0);
    }

    #[test]
    fn counter_increase_is_reset_corrected_and_spans_buckets() {
        let mut agg = MinuteAggregator::new();
        let mut out = Vec::new();
        // 10 -> 20 -> 25 | reset to 3 -> 8 | 12
        for (t, v) in [
            (0, 10.0),
            (20, 20.0),
            (40, 25.0),
            (60, 3.0),
            (80, 8.0),
            (120, 12.0),
        ] {
            agg.begin_scrape(t, &mut out);
            agg.observe(1, true, v);
        }
        agg.close_open_minute(&mut out);
        let got = rows_by_minute(&out, 1);
        let inc: Vec<f64> = got.iter().map(|(_, a)| a.increase).collect();
        assert_eq!(inc, vec![15.0, 3.0 + 5.0, 4.0]);
        // The total equals what two raw readings say, reset included.
        assert_eq!(inc.iter().sum::<f64>(), 15.0 + 3.0 + 5.0 + 4.0);
    }

    #[test]
    fn nan_is_skipped_and_idle_series_evicted() {
        let mut agg = MinuteAggregator::new();
        let mut out = Vec::new();
        agg.begin_scrape(0, &mut out);
        assert_eq!(agg.observe(1, false, f64::NAN), Observed::SkippedNaN);
        agg.observe(2, false, 1.0);
        let evicted = agg.begin_scrape(60 * (IDLE_EVICTION_MINUTES + 2), &mut out);
        assert_eq!(evicted, 2);
        assert_eq!(out.len(), 1, "NaN-only series emits no row");
    }

    /// A target scraped every 15 minutes: its counters keep their previous
    /// value between scrapes, so each scrape's minute has an increase.
    #[test]
    fn a_slow_targets_counters_are_not_evicted_between_scrapes() {
        let mut agg = MinuteAggregator::for_interval(std::time::Duration::from_secs(900));
        let mut out = Vec::new();
        for (t, v) in [(0, 100.0), (900, 160.0), (1800, 190.0)] {
            assert_eq!(agg.begin_scrape(t, &mut out), 0);
            agg.observe(1, true, v);
        }
        agg.close_open_minute(&mut out);
        let inc: Vec<f64> = rows_by_minute(&out, 1)
            .iter()
            .map(|(_, a)| a.increase)
            .collect();
        assert_eq!(inc, [0.0, 60.0, 30.0]);
        // Gone once unseen for more than two intervals and a minute.
        assert_eq!(agg.begin_scrape(1800 + 1920, &mut out), 1);
    }

    #[test]
    fn label_set_keeps_pairs_in_order() {
        let pairs = [("a", ""), ("job", "node"), ("path", "/\u{0}\"x\"/ü")];
        let set = LabelSet::from_pairs(pairs);
        assert_eq!(set.iter().collect::<Vec<_>>(), pairs.to_vec());
        assert_eq!(set.get("path"), Some("/\u{0}\"x\"/ü"));
        assert_eq!(set.get("a"), Some(""));
        assert_eq!(set.get("missing"), None);
        assert_eq!(set.len(), 3);
        assert!(LabelSet::from_pairs([]).is_empty());
    }

    #[test]
    fn merge_matches_single_bucket() {
        let values = [3.0, -1.0, 7.5, 2.0, 2.0, 10.0];
        let mut whole = Aggregate::EMPTY;
        values.iter().for_each(|v| whole.add(*v));
        let (mut a, mut b) = (Aggregate::EMPTY, Aggregate::EMPTY);
        values[..2].iter().for_each(|v| a.add(*v));
        values[2..].iter().for_each(|v| b.add(*v));
        a.merge(&b);
        assert_eq!(a, whole);
    }
}
