//! New series the writer has numbered but not stored in `series` yet.
//!
//! Owns the choice of which of them a transaction stores. It must not
//! number series (`series_numbers` does) nor write anything (the writer
//! does).
//!
//! Why hold them: DuckDB writes a transaction's rows straight into the
//! database file, compressed, only when the transaction appends at least a
//! row group to a table; fewer rows go to the WAL and are compressed again at
//! a checkpoint, and a transaction that appends a row group and a part of
//! another leaves that part as a row group of its own. A fleet's first
//! scrape brings millions of series. Stored in transactions of 46,080 (the
//! writer's cap while it keeps up) a copy of 1 M series rows took 6.11 s of CPU; in
//! whole row groups, 3.16 s; in transactions of 150,000 (a row group and a
//! part), 6.15 s and twice the bytes (python duckdb 1.5.6, one thread,
//! 2026-12-02). So while the writer is behind (more new series come than
//! it stores in time), series wait here until they fill whole row groups, or
//! until a row of theirs is written, a transaction brings no new series
//! (the burst is over), someone waits for a sync, or they have waited
//! [`MAX_WAIT`].

use std::time::Duration;

use crate::rollup::{IdMap, SeriesRow};

/// The longest a new series waits to be stored. Its rows (written when its
/// first minute closes) store it earlier; this bounds how long a series
/// with no row yet is missing from `series` listings.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(60);

/// A new series with its number and the time it was first seen.
pub(super) struct Unstored {
    pub row: SeriesRow,
    pub sid: u64,
    pub first_seen: i64,
    /// A row of it is in the transaction being built: stored with it.
    referenced: bool,
}

#[derive(Default)]
pub(super) struct UnstoredSeries {
    /// In the order they were first seen.
    held: Vec<Unstored>,
    /// Series id -> its place in `held`.
    place: IdMap<usize>,
}

impl UnstoredSeries {
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn holds(&self, id: u64) -> bool {
        self.place.contains_key(&id)
    }

    pub fn add(&mut self, row: SeriesRow, sid: u64, first_seen: i64) {
        self.place.insert(row.id, self.held.len());
        self.held.push(Unstored {
            row,
            sid,
            first_seen,
            referenced: false,
        });
    }

    /// The number of a held series a row is being written for: the series
    /// is then stored in the same transaction.
    pub fn sid_for_row(&mut self, id: u64) -> Option<u64> {
        let held = self.held.get_mut(*self.place.get(&id)?)?;
        held.referenced = true;
        Some(held.sid)
    }

    /// Forgets which series rows were built for: a transaction that failed
    /// is built again from its batches.
    pub fn clear_references(&mut self) {
        for held in &mut self.held {
            held.referenced = false;
        }
    }

    /// Which held series this transaction stores, as places in the order
    /// to store them: all of them if `everything`, if one was seen
    /// [`MAX_WAIT`] ago or more, or if whole row groups cannot include every
    /// series a row of this transaction names; otherwise those series and
    /// the oldest others, as many as fill whole row groups of
    /// `row_group_rows` (none if they fill none).
    /// `now` in Unix seconds, as `first_seen`.
    pub fn choose(&self, everything: bool, row_group_rows: usize, now: i64) -> Vec<usize> {
        let all = self.held.len();
        let whole = all / row_group_rows * row_group_rows;
        let referenced = self.held.iter().filter(|h| h.referenced).count();
        // `held` is in first-seen order.
        let waited_long = self
            .held
            .first()
            .is_some_and(|h| now.saturating_sub(h.first_seen) >= MAX_WAIT.as_secs() as i64);
        let count = if everything || waited_long || referenced > whole {
            all
        } else if referenced == 0 && whole == 0 {
            return Vec::new();
        } else {
            whole
        };
        let mut chosen: Vec<usize> = (0..all).filter(|&i| self.held[i].referenced).collect();
        chosen.extend((0..all).filter(|&i| !self.held[i].referenced));
        chosen.truncate(count);
        chosen
    }

    pub fn get(&self, place: usize) -> Option<&Unstored> {
        self.held.get(place)
    }

    /// Removes the series at `places` (stored now) and returns their ids and
    /// numbers.
    pub fn remove(&mut self, places: &[usize]) -> Vec<(u64, u64)> {
        let mut gone = vec![false; self.held.len()];
        for &p in places {
            if let Some(g) = gone.get_mut(p) {
                *g = true;
            }
        }
        let mut removed = Vec::with_capacity(places.len());
        let mut kept = Vec::with_capacity(self.held.len().saturating_sub(places.len()));
        for (held, gone) in std::mem::take(&mut self.held).into_iter().zip(gone) {
            if gone {
                removed.push((held.row.id, held.sid));
            } else {
                kept.push(held);
            }
        }
        self.held = kept;
        self.reindex();
        removed
    }

    /// Drops the oldest series beyond `most` (commits keep failing, e.g. a
    /// full disk); returns how many.
    pub fn bound(&mut self, most: usize) -> usize {
        let over = self.held.len().saturating_sub(most);
        if over > 0 {
            self.held.drain(..over);
            self.reindex();
        }
        over
    }

    fn reindex(&mut self) {
        self.place.clear();
        for (i, held) in self.held.iter().enumerate() {
            self.place.insert(held.row.id, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::LabelSet;
    use std::sync::Arc;

    fn series(id: u64) -> SeriesRow {
        SeriesRow {
            id,
            metric: Arc::from("m"),
            kind: "gauge",
            labels: LabelSet::from_pairs([("pod", "p")]),
        }
    }

    fn held(n: u64) -> UnstoredSeries {
        let mut u = UnstoredSeries::default();
        for id in 0..n {
            u.add(series(id), 100 + id, 0);
        }
        u
    }

    #[test]
    fn fewer_than_a_row_group_wait_unless_a_row_or_a_sync_needs_them() {
        let u = held(5);
        assert!(u.choose(false, 4, 0).len() == 4, "one whole row group of 4");
        let u = held(3);
        assert!(u.choose(false, 4, 0).is_empty());
        assert_eq!(u.choose(true, 4, 0), vec![0, 1, 2], "a sync stores all");
        let mut u = held(3);
        assert_eq!(u.sid_for_row(2), Some(102));
        assert_eq!(
            u.choose(false, 4, 0),
            vec![2, 0, 1],
            "a row stores them all"
        );
    }

    #[test]
    fn rows_name_series_that_whole_row_groups_then_include_first() {
        let mut u = held(9);
        u.sid_for_row(7);
        u.sid_for_row(8);
        assert_eq!(u.choose(false, 4, 0), vec![7, 8, 0, 1, 2, 3, 4, 5]);
        u.clear_references();
        assert_eq!(u.choose(false, 4, 0), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn stored_series_leave_and_the_rest_keep_their_numbers() {
        let mut u = held(6);
        let stored = u.remove(&[0, 2, 4]);
        assert_eq!(stored, vec![(0, 100), (2, 102), (4, 104)]);
        assert_eq!(u.len(), 3);
        assert!(u.holds(3) && !u.holds(2));
        assert_eq!(u.sid_for_row(5), Some(105));
        assert_eq!(u.bound(1), 2);
        assert!(u.holds(5) && !u.holds(1) && !u.holds(3));
        assert_eq!(u.remove(&[0]), vec![(5, 105)]);
        assert!(u.is_empty());
    }
}
