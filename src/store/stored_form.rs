//! How a rollup row's aggregates are stored: each one that follows from the
//! rest of the row is written as NULL, and the `rollup_*` views fill it back
//! in, so readers always see complete rows.
//!
//! In a minute of 2-4 samples most aggregates are implied by `first`,
//! `last` and `count`: a steady series has `first == last`, a counter or a
//! slowly moving gauge has its `min`/`max` at the minute's ends, and with
//! two samples `sum` is `first + last`. A NULL costs DuckDB a validity bit
//! where a double costs bytes (measured: a 1 m row 15.6 -> 11.7 bytes). The
//! rule is lossless by construction: a value is left out only when the
//! view's expression gives it back exactly (as a number; -0.0 may come
//! back as 0.0).
//!
//! This module owns the rule in its forms (Rust for rows stored, for rows
//! the writer holds packed until it stores them, and for rows read back by
//! maintenance; SQL for the views) and must stay the only place that knows
//! it.

use std::sync::Arc;

use duckdb::arrow::array::{
    ArrayRef, Float64Array, Float64Builder, Int64Array, UInt32Array, UInt64Array,
};
use duckdb::arrow::datatypes::{DataType, Field, Schema};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::RecordBatch;

use crate::rollup::{Aggregate, RollupRow};

/// The aggregates as stored: `None` where the view restores the value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StoredAggregates {
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub first: Option<f64>,
}

/// `sum` as the view restores it. Mirrors [`restoring_view!`]'s `sum` expression
/// operation for operation, so equal inputs give the same bits.
fn implied_sum(count: u32, first: f64, last: f64) -> f64 {
    if count == 2 {
        first + last
    } else {
        f64::from(count) * last
    }
}

pub(crate) fn stored(a: &Aggregate) -> StoredAggregates {
    let keep = |value: f64, implied: f64| (value != implied).then_some(value);
    StoredAggregates {
        sum: keep(a.sum, implied_sum(a.count, a.first, a.last)),
        min: keep(a.min, a.first.min(a.last)),
        max: keep(a.max, a.first.max(a.last)),
        first: keep(a.first, a.last),
    }
}

/// The complete aggregates of a stored row: what the `rollup_*` views
/// give back (see [`restoring_view!`]), for rows read past them.
pub(crate) fn restored(
    count: u32,
    stored: StoredAggregates,
    last: f64,
    increase: f64,
) -> Aggregate {
    let first = stored.first.unwrap_or(last);
    Aggregate {
        count,
        sum: stored
            .sum
            .unwrap_or_else(|| implied_sum(count, first, last)),
        min: stored.min.unwrap_or_else(|| first.min(last)),
        max: stored.max.unwrap_or_else(|| first.max(last)),
        first,
        last,
        increase,
    }
}

/// A rollup row ready to store: its series, bucket start and aggregates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowToStore<'a> {
    pub sid: u64,
    pub bucket: i64,
    pub agg: &'a Aggregate,
}

impl<'a> RowToStore<'a> {
    pub fn new(sid: u64, bucket: i64, agg: &'a Aggregate) -> RowToStore<'a> {
        RowToStore { sid, bucket, agg }
    }
}

/// Rows held in stored form until they are written: the values
/// [`stored`] leaves out are not kept, and neither is an `increase` of zero
/// (every gauge's). A row is one record of ~30 bytes against a
/// [`RollupRow`]'s 72. The writer holds a fleet's minute this way until it
/// commits (on a 1 M-series fleet, ~1.2 M rows) and then reads each record
/// once, in `sid` order, so a row read is one cache line or two.
#[derive(Debug)]
pub(crate) struct PackedRows {
    /// Per row, little-endian: series id (8 bytes), count (4), which of sum,
    /// min, max, first and increase are kept (1 byte, bits 0-4 in that
    /// order), last (8), then the kept values in that order (8 each).
    records: Vec<u8>,
    /// Bucket starts, one per run of rows of the same bucket, with the
    /// offset of the run's first record: a target's batch is a minute or
    /// two.
    bucket_runs: Vec<(i64, u32)>,
    rows: usize,
}

/// A packed row's series, bucket and where its record starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PackedRowRef {
    pub series_id: u64,
    pub bucket: i64,
    pub offset: u32,
}

const RECORD_FIXED: usize = 8 + 4 + 1 + 8;
const KEPT_AT: usize = 12;
const LAST_AT: usize = 13;

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn read_f64(bytes: &[u8], at: usize) -> Option<f64> {
    read_u64(bytes, at).map(f64::from_bits)
}

fn record_len(kept: u8) -> usize {
    RECORD_FIXED + 8 * kept.count_ones() as usize
}

impl PackedRows {
    /// The most rows one `PackedRows` holds, so that every record's offset
    /// fits in 32 bits (a record is at most 61 bytes).
    pub const MAX_ROWS: usize = u32::MAX as usize / (RECORD_FIXED + 5 * 8);

    /// Packs the first [`Self::MAX_ROWS`] of `rows`: callers pass chunks.
    pub fn pack(rows: &[RollupRow]) -> PackedRows {
        let rows = &rows[..rows.len().min(Self::MAX_ROWS)];
        let mut records = Vec::with_capacity(rows.len() * (RECORD_FIXED + 16));
        let mut bucket_runs: Vec<(i64, u32)> = Vec::new();
        for r in rows {
            if bucket_runs.last().map(|&(b, _)| b) != Some(r.bucket_start) {
                // Within MAX_ROWS records: fits.
                bucket_runs.push((r.bucket_start, records.len() as u32));
            }
            let s = stored(&r.agg);
            // -0.0 is kept: the bits, not the number, decide.
            let increase = (r.agg.increase.to_bits() != 0).then_some(r.agg.increase);
            let kept_values = [s.sum, s.min, s.max, s.first, increase];
            let kept = kept_values
                .iter()
                .enumerate()
                .fold(0u8, |k, (bit, v)| k | (u8::from(v.is_some()) << bit));
            records.extend_from_slice(&r.series_id.to_le_bytes());
            records.extend_from_slice(&r.agg.count.to_le_bytes());
            records.push(kept);
            records.extend_from_slice(&r.agg.last.to_le_bytes());
            for v in kept_values.into_iter().flatten() {
                records.extend_from_slice(&v.to_le_bytes());
            }
        }
        records.shrink_to_fit();
        PackedRows {
            records,
            bucket_runs,
            rows: rows.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// Every row's series, bucket and offset, in the order packed.
    pub fn rows(&self) -> impl Iterator<Item = PackedRowRef> + '_ {
        let mut offset = 0usize;
        let mut run = 0usize;
        std::iter::from_fn(move || {
            let series_id = read_u64(&self.records, offset)?;
            let kept = *self.records.get(offset + KEPT_AT)?;
            while self
                .bucket_runs
                .get(run + 1)
                .is_some_and(|&(_, from)| from as usize <= offset)
            {
                run += 1;
            }
            let bucket = self.bucket_runs.get(run)?.0;
            let row = PackedRowRef {
                series_id,
                bucket,
                // Within MAX_ROWS records: fits.
                offset: offset as u32,
            };
            offset += record_len(kept);
            Some(row)
        })
    }

    /// Appends the row whose record starts at `offset` (from
    /// [`Self::rows`]) to `columns` as `sid`'s row of `bucket`, as it was
    /// packed: the record is in stored form already. `None`, and nothing
    /// appended, if no record ends inside the rows there.
    pub fn push_stored(
        &self,
        offset: u32,
        sid: u64,
        bucket: i64,
        columns: &mut StoredColumns,
    ) -> Option<()> {
        let at = offset as usize;
        let count = u32::from_le_bytes(self.records.get(at + 8..at + 12)?.try_into().ok()?);
        let kept = *self.records.get(at + KEPT_AT)?;
        let last = read_f64(&self.records, at + LAST_AT)?;
        let mut values = [None; 5];
        let mut next_value = at + RECORD_FIXED;
        for (bit, value) in values.iter_mut().enumerate() {
            if kept & (1 << bit) != 0 {
                *value = Some(read_f64(&self.records, next_value)?);
                next_value += 8;
            }
        }
        let [sum, min, max, first, increase] = values;
        columns.push(
            sid,
            bucket,
            count,
            [sum, min, max, first],
            last,
            increase.unwrap_or(0.0),
        );
        Some(())
    }
}

/// An Arrow batch that could not be built, as the error of the DuckDB call
/// it was built for.
pub(crate) fn arrow_error(e: ArrowError) -> duckdb::Error {
    duckdb::Error::ToSqlConversionFailure(Box::new(e))
}

/// Rows in stored form, gathered column by column into one Arrow batch in
/// the column order of every `rollup_*_rows` table.
pub(crate) struct StoredColumns {
    sid: Vec<u64>,
    ts: Vec<i64>,
    count: Vec<u32>,
    /// sum, min, max and first: the columns that may be left out.
    optional: [Float64Builder; 4],
    last: Vec<f64>,
    increase: Vec<f64>,
}

impl StoredColumns {
    pub fn with_capacity(rows: usize) -> StoredColumns {
        StoredColumns {
            sid: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            count: Vec::with_capacity(rows),
            optional: std::array::from_fn(|_| Float64Builder::with_capacity(rows)),
            last: Vec::with_capacity(rows),
            increase: Vec::with_capacity(rows),
        }
    }

    fn push(
        &mut self,
        sid: u64,
        bucket: i64,
        count: u32,
        optional: [Option<f64>; 4],
        last: f64,
        increase: f64,
    ) {
        self.sid.push(sid);
        self.ts.push(bucket);
        self.count.push(count);
        for (column, value) in self.optional.iter_mut().zip(optional) {
            column.append_option(value);
        }
        self.last.push(last);
        self.increase.push(increase);
    }

    /// Appends `sid`'s complete aggregate of `bucket`, leaving out what the
    /// views restore.
    pub fn push_aggregate(&mut self, sid: u64, bucket: i64, agg: &Aggregate) {
        let s = stored(agg);
        self.push(
            sid,
            bucket,
            agg.count,
            [s.sum, s.min, s.max, s.first],
            agg.last,
            agg.increase,
        );
    }

    pub fn finish(self) -> Result<RecordBatch, ArrowError> {
        let [sum, min, max, first] = self.optional.map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(self.sid)),
            Arc::new(Int64Array::from(self.ts)),
            Arc::new(UInt32Array::from(self.count)),
            sum,
            min,
            max,
            first,
            Arc::new(Float64Array::from(self.last)),
            Arc::new(Float64Array::from(self.increase)),
        ];
        let fields: Vec<Field> = [
            ("sid", DataType::UInt64),
            ("ts", DataType::Int64),
            ("count", DataType::UInt32),
            ("sum", DataType::Float64),
            ("min", DataType::Float64),
            ("max", DataType::Float64),
            ("first", DataType::Float64),
            ("last", DataType::Float64),
            ("increase", DataType::Float64),
        ]
        .into_iter()
        .map(|(name, ty)| Field::new(name, ty, true))
        .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
    }
}

/// Rows in stored form, as one Arrow batch in the column order of every
/// `rollup_*_rows` table.
pub(crate) fn stored_batch(rows: &[RowToStore<'_>]) -> Result<RecordBatch, ArrowError> {
    let mut columns = StoredColumns::with_capacity(rows.len());
    for r in rows {
        columns.push_aggregate(r.sid, r.bucket, r.agg);
    }
    columns.finish()
}

/// `CREATE VIEW <table> AS ...` over `<table>_rows`, restoring what
/// [`stored`] left out. A migration string, hence a macro.
macro_rules! restoring_view {
    ($table:literal) => {
        concat!(
            "CREATE VIEW ",
            $table,
            " AS SELECT sid, ts, count,
                coalesce(sum, CASE WHEN count = 2 THEN coalesce(first, last) + last
                    ELSE count * last END) AS sum,
                coalesce(min, least(coalesce(first, last), last)) AS min,
                coalesce(max, greatest(coalesce(first, last), last)) AS max,
                coalesce(first, last) AS first, last, increase
            FROM ",
            $table,
            "_rows;\n"
        )
    };
}
pub(crate) use restoring_view;

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(count: u32, sum: f64, min: f64, max: f64, first: f64, last: f64) -> Aggregate {
        Aggregate {
            count,
            sum,
            min,
            max,
            first,
            last,
            increase: 0.0,
        }
    }

    /// Steady, two-sample, dipping, single-sample, extreme, inexact and
    /// infinite minutes.
    fn awkward_aggregates() -> [Aggregate; 7] {
        [
            agg(4, 20.0, 5.0, 5.0, 5.0, 5.0),
            agg(2, 21.0, 10.0, 11.0, 10.0, 11.0),
            agg(3, 9.0, 1.0, 4.0, 4.0, 4.0),
            agg(1, -3.5, -3.5, -3.5, -3.5, -3.5),
            agg(5, 1e300, -1e-300, 7.0, 2.0, 6.0),
            agg(2, 0.30000000000000004, 0.1, 0.2, 0.1, 0.2),
            agg(3, f64::INFINITY, 1.0, f64::INFINITY, 1.0, f64::INFINITY),
        ]
    }

    #[test]
    fn implied_values_are_left_out_and_the_rest_kept() {
        // A steady gauge: everything follows from last and count.
        let steady = stored(&agg(4, 20.0, 5.0, 5.0, 5.0, 5.0));
        assert_eq!(
            steady,
            StoredAggregates {
                sum: None,
                min: None,
                max: None,
                first: None
            }
        );
        // A counter over two samples.
        let two = stored(&agg(2, 21.0, 10.0, 11.0, 10.0, 11.0));
        assert_eq!(
            (two.sum, two.min, two.max, two.first),
            (None, None, None, Some(10.0))
        );
        // A gauge that dipped inside the minute keeps its min and sum.
        let dip = stored(&agg(3, 9.0, 1.0, 4.0, 4.0, 4.0));
        assert_eq!(
            (dip.sum, dip.min, dip.max, dip.first),
            (Some(9.0), Some(1.0), None, None)
        );
    }
    /// Maintenance reads stored rows past the views and restores them in
    /// Rust: both restorations must give the same numbers.
    #[test]
    fn rust_restores_what_the_view_restores() {
        let aggs = awkward_aggregates();
        let mut conn = duckdb::Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn, std::path::Path::new(":memory:")).unwrap();
        let rows: Vec<RowToStore<'_>> = aggs
            .iter()
            .enumerate()
            .map(|(i, a)| RowToStore::new(i as u64 + 1, 60, a))
            .collect();
        let mut app = conn.appender("rollup_1m_rows").unwrap();
        app.append_record_batch(stored_batch(&rows).unwrap())
            .unwrap();
        app.flush().unwrap();
        drop(app);
        let mut stmt = conn
            .prepare(
                "SELECT count, sum, min, max, first, last, increase FROM rollup_1m ORDER BY sid",
            )
            .unwrap();
        let from_view: Vec<Aggregate> = stmt
            .query_map([], |r| {
                Ok(Aggregate {
                    count: r.get(0)?,
                    sum: r.get(1)?,
                    min: r.get(2)?,
                    max: r.get(3)?,
                    first: r.get(4)?,
                    last: r.get(5)?,
                    increase: r.get(6)?,
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (a, viewed) in aggs.iter().zip(&from_view) {
            let in_rust = restored(a.count, stored(a), a.last, a.increase);
            assert_eq!(&in_rust, viewed, "stored as {:?}", stored(a));
            assert_eq!(&in_rust, a);
        }
    }

    /// Rows packed and unpacked are the rows: every kind of aggregate the
    /// stored form leaves parts of out, a zero and a negative-zero
    /// increase, buckets in runs and alone.
    #[test]
    fn packed_rows_store_as_the_rows_do() {
        let mut aggs = awkward_aggregates();
        aggs[1].increase = 1.0;
        aggs[4].increase = 0.1;
        aggs[5].increase = -0.0;
        let rows: Vec<RollupRow> = aggs
            .iter()
            .enumerate()
            .map(|(i, a)| RollupRow {
                series_id: 100 + i as u64,
                bucket_start: [60, 60, 120, 60, 60, 180, 180][i],
                agg: *a,
            })
            .collect();
        let packed = PackedRows::pack(&rows);
        assert_eq!(packed.len(), rows.len());
        let refs: Vec<PackedRowRef> = packed.rows().collect();
        assert_eq!(
            refs.iter()
                .map(|at| (at.series_id, at.bucket))
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|r| (r.series_id, r.bucket_start))
                .collect::<Vec<_>>()
        );
        // Appended from the records, the rows are the batch the rows give
        // themselves, in another order too.
        let sid = |series_id: u64| series_id * 3;
        let mut from_packed = StoredColumns::with_capacity(rows.len());
        for at in refs.iter().rev() {
            packed
                .push_stored(at.offset, sid(at.series_id), at.bucket, &mut from_packed)
                .unwrap();
        }
        let direct: Vec<RowToStore<'_>> = rows
            .iter()
            .rev()
            .map(|r| RowToStore::new(sid(r.series_id), r.bucket_start, &r.agg))
            .collect();
        let from_packed = from_packed.finish().unwrap();
        assert_eq!(from_packed, stored_batch(&direct).unwrap());
        let increases = from_packed
            .column(8)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(
            increases.value(1).is_sign_negative(),
            "a -0.0 increase keeps its sign"
        );
        let mut columns = StoredColumns::with_capacity(1);
        let past_end = u32::try_from(packed.records.len()).unwrap();
        assert!(packed.push_stored(past_end, 1, 60, &mut columns).is_none());
        // Only what the stored form keeps, and non-zero increases: none of
        // the steady row's, all five of the 1e300 row's.
        let values = 2 + 2 + 5 + 2 + 1;
        assert_eq!(packed.records.len(), rows.len() * RECORD_FIXED + values * 8);
    }
}
