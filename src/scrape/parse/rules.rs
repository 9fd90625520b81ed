//! OpenMetrics 1.0's rules on what samples mean, beyond its grammar:
//! counter-like values, histogram buckets, summary quantiles, stateset and
//! info values, how a family's samples group into metric points, and sample
//! names that clash between families.
//!
//! `check-metrics` applies them, as a conformance validator would (the
//! OpenMetrics parser test suite expects them). Scraping does not, like
//! Prometheus' own scraper: a target whose histogram breaks one of them is
//! still ingested rather than lost for the whole scrape.
//!
//! Owns only its bookkeeping. It sees each sample after the parser accepted
//! its syntax and must not change what the parser yields.

use std::collections::{HashMap, HashSet};

use super::{parse_f64, MetricKind, ParseError, Sample};

/// A metric point's identity within its family: its labels, less the one
/// that tells its samples apart (`le`, `quantile`, the stateset's own), as
/// (name, value as written), sorted.
type PointKey<'a> = Vec<(&'a str, &'a str)>;

#[derive(Debug, Default)]
pub(super) struct OpenMetricsRules<'a> {
    /// Sample names claimed by the families finished so far: each family's
    /// name and the names its type adds.
    claimed: HashSet<String>,
    points_seen: HashSet<PointKey<'a>>,
    point: Option<PointKey<'a>>,
    point_timestamp_ms: Option<i64>,
    histogram: HistogramPoint,
}

/// What the rules of one histogram metric point need, gathered over its
/// samples.
#[derive(Debug, Default)]
struct HistogramPoint {
    open: bool,
    highest_le: Option<f64>,
    cumulative: f64,
    count: Option<f64>,
    has_sum: bool,
    has_gsum: bool,
    negative_buckets: bool,
    negative_gsum: bool,
}

impl HistogramPoint {
    fn check(&self) -> Result<(), String> {
        if !self.open {
            return Ok(());
        }
        if self.highest_le != Some(f64::INFINITY) {
            return Err("histogram metric point without a +Inf bucket".into());
        }
        if self.count.is_some_and(|count| count != self.cumulative) {
            return Err("histogram count differs from its +Inf bucket".into());
        }
        if (self.has_sum || self.has_gsum) && self.count.is_none() {
            return Err("histogram has a sum but no count".into());
        }
        if self.count.is_some() && !(self.has_sum || self.has_gsum) {
            return Err("histogram has a count but no sum".into());
        }
        if self.negative_buckets && self.has_sum {
            return Err("histogram with negative buckets must not have _sum".into());
        }
        if self.negative_gsum && !self.negative_buckets {
            return Err("negative _gsum without negative buckets".into());
        }
        Ok(())
    }
}

/// Suffixes whose values count things: never NaN, and (but `_gsum`) never
/// negative.
const COUNTER_LIKE: [&str; 6] = ["_total", "_sum", "_count", "_bucket", "_gcount", "_gsum"];

/// The sample names a family of `kind` named `name` claims.
fn claimed_names(name: &str, kind: MetricKind) -> Vec<String> {
    let suffixes: &[&str] = match kind {
        MetricKind::Counter => &["", "_total", "_created"],
        MetricKind::Summary => &["", "_count", "_sum", "_created"],
        MetricKind::Histogram => &["", "_count", "_sum", "_bucket", "_created"],
        MetricKind::GaugeHistogram => &["", "_gcount", "_gsum", "_bucket"],
        MetricKind::Info => &["", "_info"],
        MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown => &[""],
    };
    suffixes.iter().map(|s| format!("{name}{s}")).collect()
}

fn is_integer(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0
}

impl<'a> OpenMetricsRules<'a> {
    /// Checks one sample of the current family. Err: why it breaks a rule.
    pub fn sample(&mut self, s: &Sample<'a>) -> Result<(), String> {
        let suffix = s.name.get(s.family.len()..).unwrap_or("");
        let histogram = matches!(s.kind, MetricKind::Histogram | MetricKind::GaugeHistogram);
        if COUNTER_LIKE.contains(&suffix) {
            if s.value.is_nan() {
                return Err(format!("{} must not be NaN", s.name));
            }
            if suffix != "_gsum" && s.value < 0.0 {
                return Err(format!("{} must not be negative", s.name));
            }
        }
        let mut distinguishing = None;
        let mut le = None;
        match (s.kind, suffix) {
            (MetricKind::Histogram | MetricKind::GaugeHistogram, "_bucket") => {
                let raw = s.labels.get("le").map(|v| v.as_str());
                let threshold = raw.filter(|r| *r != "NaN").and_then(parse_f64);
                let Some((raw, threshold)) = raw.zip(threshold) else {
                    return Err(format!("{} needs an le label holding a number", s.name));
                };
                if threshold == f64::INFINITY && raw != "+Inf" {
                    return Err(format!("le={raw:?} must be written \"+Inf\""));
                }
                if !is_integer(s.value) {
                    return Err(format!("bucket {} must hold a whole number", s.name));
                }
                distinguishing = Some("le");
                le = Some(threshold);
            }
            (_, "_count" | "_gcount") if !is_integer(s.value) => {
                return Err(format!("{} must hold a whole number", s.name));
            }
            (MetricKind::Summary, "") => {
                let quantile = s.labels.get("quantile").map(|v| v.as_str());
                let in_range = quantile
                    .and_then(parse_f64)
                    .is_some_and(|q| (0.0..=1.0).contains(&q));
                if !in_range {
                    return Err(format!("{} needs a quantile label from 0 to 1", s.name));
                }
                if s.value < 0.0 {
                    return Err(format!("quantile value of {} must not be negative", s.name));
                }
                distinguishing = Some("quantile");
            }
            (MetricKind::StateSet, _) => {
                if s.labels.get(s.family).is_none() {
                    return Err(format!("stateset sample needs a {:?} label", s.family));
                }
                if s.value != 0.0 && s.value != 1.0 {
                    return Err(format!("stateset {} must be 0 or 1", s.name));
                }
                distinguishing = Some(s.family);
            }
            (MetricKind::Info, _) if s.value != 1.0 => {
                return Err(format!("info {} must be 1", s.name));
            }
            _ => {}
        }
        let key: PointKey<'a> = if s.kind == MetricKind::Info {
            // Its points cannot be told apart by labels.
            Vec::new()
        } else {
            let mut key: PointKey<'a> = s
                .labels
                .iter()
                .filter(|(name, _)| Some(*name) != distinguishing)
                .map(|(name, value)| (name, value.as_str()))
                .collect();
            key.sort_unstable();
            key
        };
        if self.point.as_ref() == Some(&key) {
            let previous = self.point_timestamp_ms;
            if previous.is_some() != s.timestamp_ms.is_some() {
                return Err("a metric point's samples must all have a timestamp or none".into());
            }
            if s.kind != MetricKind::Info && s.timestamp_ms < previous {
                return Err("timestamps go backwards within a metric point".into());
            }
            if s.timestamp_ms != previous {
                self.end_point()?;
            }
        } else {
            if self.points_seen.contains(&key) {
                return Err(format!(
                    "samples of one metric point of {} are not together",
                    s.family
                ));
            }
            self.end_point()?;
            self.points_seen.insert(key.clone());
            self.point = Some(key);
        }
        self.point_timestamp_ms = s.timestamp_ms;
        if histogram {
            self.add_to_histogram(suffix, s.value, le)?;
        }
        Ok(())
    }

    fn add_to_histogram(
        &mut self,
        suffix: &str,
        value: f64,
        le: Option<f64>,
    ) -> Result<(), String> {
        let h = &mut self.histogram;
        h.open = true;
        match (suffix, le) {
            ("_bucket", Some(le)) => {
                if h.highest_le.is_some_and(|highest| le <= highest) {
                    return Err("histogram buckets out of le order".into());
                }
                if value < h.cumulative {
                    return Err("histogram buckets are not cumulative".into());
                }
                h.negative_buckets |= le < 0.0;
                h.highest_le = Some(le);
                h.cumulative = value;
            }
            ("_count" | "_gcount", _) => h.count = Some(value),
            ("_sum", _) => h.has_sum = true,
            ("_gsum", _) => {
                h.has_gsum = true;
                h.negative_gsum |= value < 0.0;
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the metric point just ended (a histogram's whole) and starts
    /// a new one.
    fn end_point(&mut self) -> Result<(), String> {
        let ended = std::mem::take(&mut self.histogram);
        ended.check()
    }

    /// Ends the current family, named `name`, of `kind`: its last metric
    /// point is checked and the sample names it claims must be free.
    pub fn end_family(&mut self, name: &str, kind: MetricKind) -> Result<(), String> {
        self.end_point()?;
        self.point = None;
        self.point_timestamp_ms = None;
        self.points_seen.clear();
        for claimed in claimed_names(name, kind) {
            if !self.claimed.insert(claimed.clone()) {
                return Err(format!("{claimed} clashes with an earlier metric family"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, ParseError, Parser};

    fn check(body: &str, rules: bool) -> Result<usize, ParseError> {
        let text = format!("{body}# EOF\n");
        let parser = Parser::new(text.as_bytes(), Format::OpenMetrics);
        let parser = if rules { parser.validating() } else { parser };
        let mut n = 0;
        for s in parser {
            s?;
            n += 1;
        }
        Ok(n)
    }

    #[test]
    fn a_well_formed_exposition_of_every_type_passes() {
        let body = "\
# TYPE jobs counter
jobs_total{q=\"a\"} 3 100
jobs_created{q=\"a\"} 50 100
jobs_total{q=\"b\"} 0.5
# TYPE latency_seconds histogram
# UNIT latency_seconds seconds
latency_seconds_bucket{le=\"0.1\"} 1
latency_seconds_bucket{le=\"1\"} 4
latency_seconds_bucket{le=\"+Inf\"} 4
latency_seconds_count 4
latency_seconds_sum 2.5
# TYPE offset gaugehistogram
offset_bucket{le=\"-1\"} 2
offset_bucket{le=\"+Inf\"} 5
offset_gcount 5
offset_gsum -3
# TYPE rpc summary
rpc{quantile=\"0.5\"} 0.2
rpc{quantile=\"1\"} 0.9
rpc_count 7
rpc_sum 3.1
# TYPE mode stateset
mode{mode=\"on\"} 1
mode{mode=\"off\"} 0
# TYPE build info
build_info{version=\"1.2\"} 1
# TYPE temp gauge
temp -4.5
temp{x=\"y\"} NaN
";
        assert_eq!(check(body, true), Ok(21));
    }

    /// Each case breaks one rule: rejected with the rules, accepted by the
    /// scrape path, which parses the grammar only.
    #[test]
    fn each_broken_rule_is_named_and_only_the_rules_reject_it() {
        let cases = [
            ("# TYPE a counter\na_total NaN\n", "must not be NaN"),
            ("# TYPE a counter\na_total -1\n", "must not be negative"),
            ("# TYPE a summary\na_count -2\na_sum 1\n", "must not be negative"),
            ("# TYPE a summary\na_count 1.5\na_sum 1\n", "whole number"),
            ("# TYPE a summary\na{quantile=\"1.5\"} 1\n", "quantile label"),
            ("# TYPE a summary\na 1\n", "quantile label"),
            ("# TYPE a summary\na{quantile=\"0.5\"} -1\n", "must not be negative"),
            ("# TYPE a histogram\na_bucket 1\n", "le label"),
            ("# TYPE a histogram\na_bucket{le=\"NaN\"} 1\n", "le label"),
            ("# TYPE a histogram\na_bucket{le=\"+INF\"} 1\n", "\"+Inf\""),
            ("# TYPE a histogram\na_bucket{le=\"+Inf\"} 1.5\n", "whole number"),
            ("# TYPE a histogram\na_bucket{le=\"1\"} 1\n", "+Inf bucket"),
            (
                "# TYPE a histogram\na_bucket{le=\"2\"} 1\na_bucket{le=\"1\"} 1\n",
                "out of le order",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"1\"} 2\na_bucket{le=\"+Inf\"} 1\n",
                "not cumulative",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_count 3\na_sum 1\n",
                "differs from its +Inf",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_sum 1\n",
                "sum but no count",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"+Inf\"} 2\na_count 2\n",
                "count but no sum",
            ),
            (
                "# TYPE a histogram\na_bucket{le=\"-1\"} 1\na_bucket{le=\"+Inf\"} 2\na_count 2\na_sum 1\n",
                "negative buckets",
            ),
            (
                "# TYPE a gaugehistogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"+Inf\"} 2\na_gcount 2\na_gsum -1\n",
                "negative _gsum",
            ),
            ("# TYPE a stateset\na 1\n", "stateset sample needs"),
            ("# TYPE a stateset\na{a=\"x\"} 2\n", "0 or 1"),
            ("# TYPE a info\na_info 2\n", "must be 1"),
            ("# TYPE a_seconds info\n# UNIT a_seconds seconds\n", "no unit"),
            ("# UNIT a_seconds seconds\n# TYPE a_seconds stateset\n", "no unit"),
            (
                "# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\"} 1\n",
                "not together",
            ),
            ("# TYPE a gauge\na 1 10\na 1 9\n", "backwards"),
            ("# TYPE a gauge\na 1 10\na 1\n", "timestamp or none"),
            (
                "# TYPE a counter\na_total 1\n# TYPE a_created gauge\na_created 1\n",
                "clashes",
            ),
            ("# TYPE a_total counter\na_total 1\n", "missing suffix"),
        ];
        for (body, why) in cases {
            let e = check(body, true).expect_err(body);
            assert!(e.reason.contains(why), "{body:?}: {e}");
            assert!(check(body, false).is_ok(), "scraping rejects {body:?}");
        }
    }

    #[test]
    fn a_point_may_repeat_with_later_timestamps_and_info_is_one_point() {
        let body = "\
# TYPE a histogram
a_bucket{le=\"+Inf\"} 1 10
a_count 1 10
a_sum 1 10
a_bucket{le=\"+Inf\"} 2 20
a_count 2 20
a_sum 2 20
# TYPE b info
b_info{v=\"1\"} 1 20
b_info{v=\"2\"} 1 10
";
        assert_eq!(check(body, true), Ok(8));
    }
}

/// The Prometheus text format's rules beyond its grammar that promtool
/// (client_golang's text parser) holds a payload to: one HELP and one TYPE
/// line per metric name, no TYPE line after samples of that name, and
/// `le` / `quantile` values that are numbers. `check-metrics` applies them;
/// scraping does not, as Prometheus' scraper does not.
#[derive(Debug, Default)]
pub(super) struct TextRules<'a> {
    /// Line of each sample name's first sample.
    first_sample: HashMap<&'a str, usize>,
}

impl<'a> TextRules<'a> {
    pub(super) fn sample(&mut self, s: &Sample<'a>) -> Result<(), ParseError> {
        self.first_sample.entry(s.name).or_insert(s.line);
        let numeric = match s.kind {
            MetricKind::Histogram if s.name.strip_prefix(s.family) == Some("_bucket") => "le",
            MetricKind::Summary if s.name == s.family => "quantile",
            _ => return Ok(()),
        };
        match s.labels.get(numeric) {
            Some(v) if parse_f64(v.as_str()).is_none() => Err(ParseError {
                line: s.line,
                column: 1,
                reason: format!(
                    "expected a number as the value of the {numeric:?} label, got {:?}",
                    v.as_str()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Checks the HELP and TYPE lines of `input`, once every sample of it
    /// has been through [`TextRules::sample`].
    pub(super) fn metadata(&self, input: &[u8]) -> Result<(), ParseError> {
        let mut helped: HashSet<&[u8]> = HashSet::new();
        let mut typed: HashSet<&[u8]> = HashSet::new();
        for (i, line) in input.split(|&b| b == b'\n').enumerate() {
            let Some((keyword, name)) = metadata_line(line) else {
                continue;
            };
            let at = i + 1;
            let shown = String::from_utf8_lossy(name);
            let fail = |reason: String| {
                Err(ParseError {
                    line: at,
                    column: 1,
                    reason,
                })
            };
            if keyword == b"HELP" && !helped.insert(name) {
                return fail(format!("second HELP line for metric name {shown}"));
            }
            if keyword == b"TYPE" {
                if !typed.insert(name) {
                    return fail(format!("second TYPE line for metric name {shown}"));
                }
                let sampled = std::str::from_utf8(name)
                    .ok()
                    .and_then(|n| self.first_sample.get(n));
                if let Some(&first) = sampled.filter(|&&first| first < at) {
                    return fail(format!(
                        "TYPE line for metric name {shown} after its samples (line {first})"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The keyword (HELP or TYPE) and the metric name of a metadata line of the
/// Prometheus text format, the name unquoted; None for any other line.
fn metadata_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let rest = &line[line.iter().position(|b| !is_blank(b))?..];
    let rest = rest.strip_prefix(b"#")?;
    let rest = &rest[rest.iter().position(|b| !is_blank(b))?..];
    let keyword = rest.get(..4)?;
    if keyword != b"HELP" && keyword != b"TYPE" || !rest.get(4).is_some_and(is_blank) {
        return None;
    }
    let rest = &rest[4..];
    let rest = &rest[rest.iter().position(|b| !is_blank(b))?..];
    let name = match rest.strip_prefix(b"\"") {
        Some(quoted) => &quoted[..quoted.iter().position(|&b| b == b'"')?],
        None => &rest[..rest.iter().position(is_blank).unwrap_or(rest.len())],
    };
    Some((keyword, name))
}
