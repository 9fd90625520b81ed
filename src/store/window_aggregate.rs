//! Coarser rollup rows from finer ones, in memory: how maintenance turns a
//! slice of 1 m rows into 5 m rows (and 5 m rows into 1 h rows).
//!
//! Owns the grouping, the aggregation rule of each column and the order the
//! derived rows are written in. Reading and writing DuckDB, and which slice
//! to derive, stay `maintenance`'s; the stored form is `stored_form`'s.
//!
//! Why not SQL: DuckDB's hash aggregate, and the sort that orders its
//! output for compression, were ~30 CPU s for one 5 m window of a 10.4 M-
//! series fleet (2026-12-02), a tenth of a core before anything else ran.
//! Series numbers are dense within each metric (see `series_numbers`), so
//! a slice's groups are an array indexed by position, and the output order
//! (window, metric, last value) needs a sort of each metric's run only.

use std::collections::HashMap;

use super::series_numbers::SEQ_BITS;
use super::stored_form::RowToStore;
use crate::rollup::Aggregate;

/// A row's `sid` fell outside the slice the aggregator was sized for: the
/// slice's sizes were read from another snapshot than its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rollup row of series {sid} at {ts} is outside the slice being derived")]
pub(super) struct OutsideSlice {
    pub sid: u64,
    pub ts: i64,
}

/// One metric's part of a slice: series `first_sid..=last_sid`, at
/// positions from `base`.
#[derive(Debug, Clone, Copy)]
struct Part {
    metric: u64,
    first_sid: u64,
    last_sid: u64,
    base: usize,
}

impl Part {
    fn len(&self) -> usize {
        (self.last_sid - self.first_sid + 1) as usize
    }
}

/// A group's aggregate so far, and the offsets (seconds from the first
/// window's start) of the rows its `first` and `last` came from.
#[derive(Clone, Copy)]
struct Group {
    agg: Aggregate,
    first_offset: u32,
    last_offset: u32,
}

/// No row yet: no offset reaches this (see [`WindowAggregator::new`]).
const EMPTY: u32 = u32::MAX;

impl Group {
    const NONE: Group = Group {
        agg: Aggregate::EMPTY,
        first_offset: EMPTY,
        last_offset: EMPTY,
    };
}

/// Groups of (series, window) for the series of one slice and the windows
/// `start..end` of `width` seconds: 64 bytes per group, allocated up front.
pub(super) struct WindowAggregator {
    parts: Vec<Part>,
    series: usize,
    start: i64,
    width: i64,
    windows: usize,
    /// The slice's `sid`s, `from..to` (`None`: no end), for rows of
    /// series `sizes` did not list.
    from: u64,
    to: Option<u64>,
    groups: Vec<Group>,
    /// Groups of rows in the slice's `sid` range whose series `sizes` did
    /// not list: none in a consistent store (the writer stores a series
    /// with its first row), but a store that lost a `series` row must
    /// still derive, and a bounded number of them is kept here.
    strays: HashMap<(u64, usize), Group>,
    /// The part the last row fell in: rows come in runs of one metric.
    hint: usize,
}

/// Stray groups kept at most (see `WindowAggregator::strays`).
const MAX_STRAYS: usize = 1 << 16;

impl WindowAggregator {
    /// `sizes`: per metric number, the highest `seq` stored (ascending, as
    /// `series_numbers::metric_sizes` reads them); the slice is the `sid`s
    /// `from..to` (`None`: every one from `from` up).
    pub fn new(
        sizes: &[(u64, u64)],
        from: u64,
        to: Option<u64>,
        start: i64,
        end: i64,
        width: i64,
    ) -> WindowAggregator {
        let mut parts = Vec::new();
        let mut base = 0usize;
        for &(metric, highest) in sizes {
            if highest == 0 {
                continue;
            }
            let first_sid = (metric << SEQ_BITS | 1).max(from);
            let mut last_sid = metric << SEQ_BITS | highest;
            if let Some(to) = to {
                last_sid = last_sid.min(to.saturating_sub(1));
            }
            if first_sid > last_sid {
                continue;
            }
            let part = Part {
                metric,
                first_sid,
                last_sid,
                base,
            };
            base += part.len();
            parts.push(part);
        }
        let width = width.max(1);
        let windows = usize::try_from((end - start).div_euclid(width).max(0)).unwrap_or(0);
        // Offsets are seconds below `windows * width`; callers keep that
        // far below `EMPTY` (a budget of 2^20 groups is ~100 years of 1 h
        // windows for one series).
        WindowAggregator {
            groups: vec![Group::NONE; base * windows],
            parts,
            series: base,
            start,
            width,
            windows,
            strays: HashMap::new(),
            from,
            to,
            hint: 0,
        }
    }

    /// Groups this aggregator holds (series x windows).
    #[cfg(test)]
    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn position(&mut self, sid: u64) -> Option<usize> {
        let metric = sid >> SEQ_BITS;
        let part = match self.parts.get(self.hint) {
            Some(p) if p.metric == metric => *p,
            _ => {
                let i = self
                    .parts
                    .binary_search_by_key(&metric, |p| p.metric)
                    .ok()?;
                self.hint = i;
                self.parts[i]
            }
        };
        (part.first_sid..=part.last_sid)
            .contains(&sid)
            .then(|| part.base + (sid - part.first_sid) as usize)
    }

    /// Adds one finer row (its complete aggregates, as the views give them).
    pub fn add(&mut self, sid: u64, ts: i64, row: &Aggregate) -> Result<(), OutsideSlice> {
        let outside = OutsideSlice { sid, ts };
        let offset = ts - self.start;
        if offset < 0 {
            return Err(outside);
        }
        let window = (offset / self.width) as usize;
        if window >= self.windows {
            return Err(outside);
        }
        let offset = u32::try_from(offset).map_err(|_| outside)?;
        let group = match self.position(sid) {
            Some(position) => &mut self.groups[window * self.series + position],
            None => {
                let in_slice = sid >= self.from && self.to.is_none_or(|to| sid < to);
                let room = self.strays.len() < MAX_STRAYS;
                if !in_slice || !(room || self.strays.contains_key(&(sid, window))) {
                    return Err(outside);
                }
                self.strays.entry((sid, window)).or_insert(Group::NONE)
            }
        };
        if group.first_offset == EMPTY {
            *group = Group {
                agg: *row,
                first_offset: offset,
                last_offset: offset,
            };
            return Ok(());
        }
        let agg = &mut group.agg;
        agg.count += row.count;
        agg.sum += row.sum;
        agg.min = agg.min.min(row.min);
        agg.max = agg.max.max(row.max);
        agg.increase += row.increase;
        // A minute stored twice (e.g. around a restart): the row committed
        // first keeps `first`, the one committed last gives `last`.
        if offset < group.first_offset {
            group.first_offset = offset;
            agg.first = row.first;
        }
        if offset >= group.last_offset {
            group.last_offset = offset;
            agg.last = row.last;
        }
        Ok(())
    }

    /// The derived rows, in the order they are stored in: by window, then
    /// metric, then last value (neighbours of similar magnitude compress
    /// best; see `Writer::commit`). Calls `emit` with up to `chunk` rows at
    /// a time, so the caller appends them without holding them all twice.
    pub fn drain<E>(
        self,
        chunk: usize,
        mut emit: impl FnMut(&[RowToStore<'_>]) -> Result<(), E>,
    ) -> Result<usize, E> {
        let chunk = chunk.max(1);
        let metric = |sid: u64| sid >> SEQ_BITS;
        let mut strays: Vec<(usize, u64, Group)> = self
            .strays
            .into_iter()
            .map(|((sid, window), group)| (window, sid, group))
            .collect();
        strays.sort_unstable_by(|a, b| {
            (a.0, metric(a.1))
                .cmp(&(b.0, metric(b.1)))
                .then(a.2.agg.last.total_cmp(&b.2.agg.last))
        });
        let mut strays = strays.iter().peekable();
        let mut run: Vec<u32> = Vec::new();
        let mut out: Vec<RowToStore<'_>> = Vec::with_capacity(chunk);
        let mut rows = 0;
        macro_rules! push {
            ($row:expr) => {
                out.push($row);
                if out.len() == chunk {
                    emit(&out)?;
                    rows += out.len();
                    out.clear();
                }
            };
        }
        let bucket = |window: usize| self.start + window as i64 * self.width;
        // Strays up to (window, metric), in their place in the order.
        macro_rules! strays_up_to {
            ($key:expr, $inclusive:expr) => {
                while let Some((w, sid, group)) = strays.next_if(|(w, sid, _)| {
                    let here = (*w, metric(*sid));
                    here < $key || ($inclusive && here == $key)
                }) {
                    push!(RowToStore::new(*sid, bucket(*w), &group.agg));
                }
            };
        }
        for window in 0..self.windows {
            let groups = &self.groups[window * self.series..(window + 1) * self.series];
            for part in &self.parts {
                strays_up_to!((window, part.metric), false);
                run.clear();
                run.extend(
                    (0..part.len() as u32)
                        .filter(|&i| groups[part.base + i as usize].first_offset != EMPTY),
                );
                run.sort_unstable_by(|&a, &b| {
                    let last = |i: u32| groups[part.base + i as usize].agg.last;
                    last(a).total_cmp(&last(b))
                });
                for &i in &run {
                    push!(RowToStore::new(
                        part.first_sid + u64::from(i),
                        bucket(window),
                        &groups[part.base + i as usize].agg,
                    ));
                }
                strays_up_to!((window, part.metric), true);
            }
            strays_up_to!((window, u64::MAX), true);
        }
        if !out.is_empty() {
            emit(&out)?;
            rows += out.len();
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::series_numbers::sid;

    fn row(count: u32, first: f64, last: f64, min: f64, max: f64, sum: f64) -> Aggregate {
        Aggregate {
            count,
            sum,
            min,
            max,
            first,
            last,
            increase: (last - first).max(0.0),
        }
    }

    fn drained(a: WindowAggregator, chunk: usize) -> Vec<(u64, i64, Aggregate)> {
        let mut out = Vec::new();
        a.drain(chunk, |rows| {
            out.extend(rows.iter().map(|r| (r.sid, r.bucket, *r.agg)));
            Ok::<(), ()>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn rows_combine_per_series_and_window_whatever_order_they_come_in() {
        let sizes = [(1, 2), (2, 1)];
        let mut a = WindowAggregator::new(&sizes, 0, None, 600, 1200, 300);
        assert_eq!(a.groups(), 3 * 2);
        let s = sid(1, 1);
        // Minutes 660 and 600 of window 600, out of order; 900 is the next window.
        a.add(s, 660, &row(2, 5.0, 7.0, 4.0, 7.0, 11.0)).unwrap();
        a.add(s, 600, &row(2, 1.0, 3.0, 1.0, 9.0, 4.0)).unwrap();
        a.add(s, 900, &row(1, 8.0, 8.0, 8.0, 8.0, 8.0)).unwrap();
        a.add(sid(2, 1), 720, &row(1, 2.0, 2.0, 2.0, 2.0, 2.0))
            .unwrap();
        let out = drained(a, 100);
        assert_eq!(out.len(), 3);
        let (first_sid, bucket, agg) = out[0];
        assert_eq!((first_sid, bucket), (s, 600));
        assert_eq!(agg.count, 4);
        assert_eq!(agg.sum, 15.0);
        assert_eq!((agg.min, agg.max), (1.0, 9.0));
        assert_eq!(
            (agg.first, agg.last),
            (1.0, 7.0),
            "first/last by minute, not arrival"
        );
        assert_eq!(agg.increase, 2.0 + 2.0);
        assert_eq!((out[1].0, out[1].1), (sid(2, 1), 600));
        assert_eq!((out[2].0, out[2].1, out[2].2.count), (s, 900, 1));
    }

    #[test]
    fn output_is_by_window_then_metric_then_last_value_in_chunks() {
        let sizes = [(1, 3), (2, 2)];
        let mut a = WindowAggregator::new(&sizes, 0, None, 0, 600, 300);
        for (seq, last) in [(1, 9.0), (2, -1.0), (3, 4.0)] {
            a.add(sid(1, seq), 300, &row(1, last, last, last, last, last))
                .unwrap();
            a.add(sid(1, seq), 0, &row(1, last, last, last, last, last))
                .unwrap();
        }
        for (seq, last) in [(1, 0.5), (2, 0.25)] {
            a.add(sid(2, seq), 0, &row(1, last, last, last, last, last))
                .unwrap();
        }
        let mut chunks = Vec::new();
        let rows = a
            .drain(2, |rows| {
                chunks.push(rows.iter().map(|r| (r.sid, r.bucket)).collect::<Vec<_>>());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(rows, 8);
        assert_eq!(
            chunks,
            vec![
                vec![(sid(1, 2), 0), (sid(1, 3), 0)],
                vec![(sid(1, 1), 0), (sid(2, 2), 0)],
                vec![(sid(2, 1), 0), (sid(1, 2), 300)],
                vec![(sid(1, 3), 300), (sid(1, 1), 300)],
            ]
        );
    }

    #[test]
    fn a_slice_holds_only_its_series_and_windows() {
        // Metric 1 has 5 series, metric 2 has 3; the slice is 1:3 .. 2:2.
        let sizes = [(1, 5), (2, 3)];
        let mut a = WindowAggregator::new(&sizes, sid(1, 3), Some(sid(2, 2)), 0, 300, 300);
        assert_eq!(a.groups(), 3 + 1);
        let value = |v: f64| row(1, v, v, v, v, v);
        for (inside, v) in [(sid(1, 3), 1.0), (sid(1, 5), 2.0), (sid(2, 1), 3.0)] {
            a.add(inside, 60, &value(v)).unwrap();
        }
        for outside in [sid(1, 2), sid(2, 2), sid(3, 1)] {
            assert_eq!(
                a.add(outside, 60, &value(0.0)),
                Err(OutsideSlice {
                    sid: outside,
                    ts: 60
                })
            );
        }
        assert!(
            a.add(sid(1, 3), 300, &value(0.0)).is_err(),
            "past the last window"
        );
        assert!(
            a.add(sid(1, 3), -60, &value(0.0)).is_err(),
            "before the first"
        );
        // A series `sizes` did not list, inside the slice: derived all the
        // same, in its metric's place.
        a.add(sid(1, 6), 60, &value(0.5)).unwrap();
        a.add(sid(1, 6), 120, &value(0.7)).unwrap();
        let rows = drained(a, 10);
        let sids: Vec<u64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(sids, [sid(1, 3), sid(1, 5), sid(1, 6), sid(2, 1)]);
        assert_eq!(
            (rows[2].2.count, rows[2].2.first, rows[2].2.last),
            (2, 0.5, 0.7)
        );
    }

    /// Without a listed series at all (the last slice takes every `sid`
    /// above its start), rows are still derived, up to a bound.
    #[test]
    fn unlisted_series_are_derived_up_to_a_bound() {
        let mut a = WindowAggregator::new(&[], 0, None, 0, 600, 300);
        let one = row(1, 1.0, 1.0, 1.0, 1.0, 1.0);
        a.add(sid(7, 1), 0, &one).unwrap();
        a.add(sid(7, 1), 300, &one).unwrap();
        a.add(sid(5, 2), 60, &one).unwrap();
        let keys: Vec<(u64, i64)> = drained(a, 2).iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(keys, [(sid(5, 2), 0), (sid(7, 1), 0), (sid(7, 1), 300)]);

        let mut a = WindowAggregator::new(&[], 0, None, 0, 300, 300);
        for seq in 1..=MAX_STRAYS as u64 {
            a.add(sid(1, seq), 0, &one).unwrap();
        }
        a.add(sid(1, 1), 60, &one).unwrap();
        assert!(a.add(sid(1, MAX_STRAYS as u64 + 1), 0, &one).is_err());
    }
}
