//! Exposition text -> samples.
//!
//! This module owns turning one complete, already-fetched scrape payload in the
//! Prometheus text exposition format 0.0.4 or OpenMetrics 1.0 text into a
//! stream of [`Sample`]s that borrow from the payload (zero copy): metric names,
//! family names, label names and (still escaped) label values are all `&str`
//! slices of the input.
//!
//! It must not do IO (no sockets, no files, no decompression), must not
//! allocate per sample on the hot path (only per metric family, per metadata
//! line and on errors; a scratch buffer for duplicate-label detection is reused),
//! and knows nothing about storage, series identity or rollups: callers
//! decide what to keep.
//!
//! Dialects:
//! * [`Format::Prometheus`] follows what Prometheus' own Go parser
//!   (`textparse.PromParser`) accepts: blank lines, arbitrary `#` comments,
//!   whitespace between tokens and around `=`/`,` inside `{}`, a trailing comma
//!   in label sets, trailing whitespace and `\r`, integer millisecond timestamps,
//!   no `# EOF` needed, and (when scraping, not in [`validate`]) a raw line
//!   feed inside a label value, which continues the sample on the next line.
//! * [`Format::OpenMetrics`] follows the OpenMetrics 1.0 ABNF: single spaces,
//!   no blank lines, only `# HELP`/`# TYPE`/`# UNIT`/`# EOF` comments, `# EOF`
//!   required as the last line, float-second timestamps (converted to ms,
//!   truncated toward zero, saturated beyond i64 milliseconds), exemplars,
//!   metadata before samples, families not interleaved. A backslash may
//!   escape any character (`BS normal-char`); unknown escapes are kept.
//!   What samples mean (histogram buckets, counter values, metric point
//!   grouping, name clashes) is checked only when asked for, by
//!   [`Parser::validating`] (see `rules`), as scrapers do not.
//!   Without it, OpenMetrics is read as Prometheus scrapes it (2.42,
//!   compared case by case on 2026-12-03): interleaved families, repeated or
//!   late metadata, a typed family's bare sample name and exemplars over
//!   128 characters do not fail a scrape.
//!
//! Errors are final: after the first [`ParseError`] the parser yields `None`.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use memchr::{memchr, memchr2, memchr3, memrchr};
use xxhash_rust::xxh3::xxh3_64;

mod rules;
#[cfg(test)]
mod tests;

/// Which text dialect a payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// From an HTTP Content-Type header value: application/openmetrics-text
    /// -> OpenMetrics, else Prometheus. A header whose parameters are not
    /// `key=value` is not understood, and like Prometheus the payload is
    /// then read as the Prometheus format.
    pub fn from_content_type(ct: &str) -> Format {
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        let parameters_ok = parts.all(|p| {
            p.trim()
                .split_once('=')
                .is_some_and(|(key, _)| !key.trim().is_empty())
        });
        if parameters_ok && media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// Guess from the payload: OpenMetrics if the last non-empty line is `# EOF`, else Prometheus.
    pub fn sniff(input: &[u8]) -> Format {
        let mut end = input.len();
        while end > 0 && matches!(input[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        let body = &input[..end];
        let start = memrchr(b'\n', body).map_or(0, |p| p + 1);
        if &body[start..] == b"# EOF" {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The declared type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    Unknown,
}

impl MetricKind {
    /// Lower-case name as written in `# TYPE` lines (OpenMetrics spelling).
    pub fn as_str(&self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::GaugeHistogram => "gaugehistogram",
            MetricKind::Summary => "summary",
            MetricKind::Info => "info",
            MetricKind::StateSet => "stateset",
            MetricKind::Unknown => "unknown",
        }
    }

    fn parse(s: &str, format: Format) -> Option<MetricKind> {
        match (s, format) {
            ("counter", _) => Some(MetricKind::Counter),
            ("gauge", _) => Some(MetricKind::Gauge),
            ("histogram", _) => Some(MetricKind::Histogram),
            ("summary", _) => Some(MetricKind::Summary),
            ("untyped", Format::Prometheus) => Some(MetricKind::Unknown),
            ("gaugehistogram", Format::OpenMetrics) => Some(MetricKind::GaugeHistogram),
            ("info", Format::OpenMetrics) => Some(MetricKind::Info),
            ("stateset", Format::OpenMetrics) => Some(MetricKind::StateSet),
            ("unknown", Format::OpenMetrics) => Some(MetricKind::Unknown),
            _ => None,
        }
    }

    /// Whether a sample named `family + suffix` belongs to a family of this kind.
    fn allows_suffix(self, suffix: &str, format: Format) -> bool {
        let om = format == Format::OpenMetrics;
        match self {
            MetricKind::Counter => match suffix {
                "_total" | "_created" => true,
                "" => !om,
                _ => false,
            },
            MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown => suffix.is_empty(),
            MetricKind::Histogram => matches!(suffix, "_bucket" | "_count" | "_sum" | "_created"),
            MetricKind::GaugeHistogram => matches!(suffix, "_bucket" | "_gcount" | "_gsum"),
            MetricKind::Summary => matches!(suffix, "" | "_count" | "_sum" | "_created"),
            MetricKind::Info => suffix == "_info",
        }
    }
}

/// Every suffix some kind allows; used to find a declared family from a sample name.
const FAMILY_SUFFIXES: [&str; 8] = [
    "_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info",
];

/// A label value exactly as written between the quotes (still escaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a>(pub &'a str);

impl<'a> RawValue<'a> {
    /// The value as written, escapes included.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    pub fn has_escapes(&self) -> bool {
        memchr(b'\\', self.0.as_bytes()).is_some()
    }

    /// Appends the unescaped value to buf.
    ///
    /// `\\` -> `\`, `\"` -> `"`, `\n` -> newline; any other backslash sequence
    /// is kept verbatim (as Prometheus does).
    pub fn unescape_into(&self, buf: &mut String) {
        let mut rest = self.0;
        while let Some(p) = memchr(b'\\', rest.as_bytes()) {
            buf.push_str(&rest[..p]);
            let after = &rest[p + 1..];
            let mut chars = after.chars();
            match chars.next() {
                Some('\\') => buf.push('\\'),
                Some('"') => buf.push('"'),
                Some('n') => buf.push('\n'),
                Some(c) => {
                    buf.push('\\');
                    buf.push(c);
                }
                None => {
                    buf.push('\\');
                    return;
                }
            }
            rest = chars.as_str();
        }
        buf.push_str(rest);
    }

    pub fn to_cow(&self) -> Cow<'a, str> {
        if self.has_escapes() {
            let mut s = String::with_capacity(self.0.len());
            self.unescape_into(&mut s);
            Cow::Owned(s)
        } else {
            Cow::Borrowed(self.0)
        }
    }
}

/// The label section of one sample, `{...}` contents, already validated by the parser.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    raw: &'a str,
    /// `UNCOUNTED` for a section taken as an expected key (see
    /// [`Parser::next_sample_expecting`]): its count is only needed on
    /// paths that are rare by then, so it is counted on demand.
    len: usize,
}

const UNCOUNTED: usize = usize::MAX;

impl<'a> Labels<'a> {
    const EMPTY: Labels<'static> = Labels { raw: "", len: 0 };

    pub fn len(&self) -> usize {
        if self.len == UNCOUNTED {
            self.iter().count()
        } else {
            self.len
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Yields `(name, raw value)` in the order written.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            rest: self.raw,
            remaining: self.len,
        }
    }

    pub fn get(&self, name: &str) -> Option<RawValue<'a>> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The text between `{` and `}` exactly as written (empty when there were no braces).
    pub fn as_raw(&self) -> &'a str {
        self.raw
    }
}

impl<'a> IntoIterator for Labels<'a> {
    type Item = (&'a str, RawValue<'a>);
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

/// Iterator over a validated label section.
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    rest: &'a str,
    remaining: usize,
}

impl<'a> LabelIter<'a> {
    fn step(&mut self) -> Option<(&'a str, RawValue<'a>)> {
        let (s, name, mut i) = loop {
            let s = self.rest;
            let b = s.as_bytes();
            let mut i = 0;
            while i < b.len() && matches!(b[i], b' ' | b'\t' | b',') {
                i += 1;
            }
            let name;
            if b.get(i) == Some(&b'"') {
                // Validated: a quoted name holds no escapes.
                let close = i + 1 + memchr(b'"', b.get(i + 1..)?)?;
                name = s.get(i + 1..close)?;
                i = skip_ws(b, close + 1);
                if b.get(i) != Some(&b'=') {
                    // The metric name, quoted inside the braces: not a label.
                    self.rest = s.get(i..)?;
                    continue;
                }
            } else {
                let ns = i;
                i = scan_label_name(b, i);
                name = s.get(ns..i)?;
                i = skip_ws(b, i);
                if b.get(i) != Some(&b'=') {
                    return None;
                }
            }
            break (s, name, i);
        };
        let b = s.as_bytes();
        i = skip_ws(b, i + 1);
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let vs = i + 1;
        let ve = find_closing_quote(b, vs)?;
        let value = s.get(vs..ve)?;
        self.rest = s.get(ve + 1..)?;
        Some((name, RawValue(value)))
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, RawValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        match self.step() {
            Some(x) => {
                self.remaining -= 1;
                Some(x)
            }
            None => {
                self.remaining = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// An OpenMetrics exemplar attached to a sample.
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> {
    pub labels: Labels<'a>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// One sample line.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Full sample name as written, e.g. "http_request_duration_seconds_bucket".
    pub name: &'a str,
    /// Family name when the sample belongs to a TYPE-declared family
    /// (e.g. "http_request_duration_seconds"), else == name.
    pub family: &'a str,
    /// Declared kind of the family, Unknown if none.
    pub kind: MetricKind,
    pub labels: Labels<'a>,
    /// The name and label section exactly as written: what identifies the
    /// series within one target's payloads (see [`key_hash`]).
    pub key: &'a str,
    /// The line began with the key passed to [`Parser::next_sample_expecting`].
    pub as_expected: bool,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
    /// 1-based line number.
    pub line: usize,
}

/// The hash a sample's [`Sample::key`] is known by between scrapes.
#[inline]
pub fn key_hash(key: &str) -> u64 {
    xxh3_64(key.as_bytes())
}

/// A sample key the caller has seen this parser accept before, named by
/// its length and [`key_hash`]: typically the key at the same position in
/// the target's previous payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedKey {
    pub len: u32,
    pub hash: u64,
}

/// A parse failure at a 1-based line and 1-based byte column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{column}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// OpenMetrics exemplar label sets may hold at most this many code points.
const MAX_EXEMPLAR_RUNES: usize = 128;
/// Label sets up to this size are checked for duplicates pairwise; larger ones by sorting.
const PAIRWISE_DUP_LIMIT: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Family<'a> {
    name: &'a str,
    kind: MetricKind,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    /// A UNIT line named a unit (an empty one is allowed anywhere).
    names_unit: bool,
    has_samples: bool,
}

impl<'a> Family<'a> {
    fn new(name: &'a str) -> Self {
        Family {
            name,
            kind: MetricKind::Unknown,
            has_type: false,
            has_help: false,
            has_unit: false,
            names_unit: false,
            has_samples: false,
        }
    }
}

/// Streaming, zero-copy parser over a complete payload.
#[derive(Debug)]
pub struct Parser<'a> {
    input: &'a [u8],
    /// The whole input when it is valid UTF-8 (checked once, vectorised), so
    /// lines need no validation of their own; otherwise each line that
    /// matters is validated on its own.
    text: Option<&'a str>,
    pos: usize,
    line_start: usize,
    line_no: usize,
    last_line_len: usize,
    format: Format,
    finished: bool,
    /// Current family (the last one named by metadata, or in OpenMetrics by a sample).
    fam: Family<'a>,
    /// Prometheus: every `# TYPE` seen, for samples that do not follow their TYPE line.
    types: Vec<(&'a str, MetricKind)>,
    /// Prometheus: hash index over `types[..types_indexed]`, built lazily on the
    /// first sample that does not belong to the current family.
    types_index: HashMap<&'a str, MetricKind>,
    types_indexed: usize,
    /// Prometheus: last family lookup (sample name, family, kind).
    cache: Option<(&'a str, &'a str, MetricKind)>,
    helps: Vec<(&'a str, &'a str)>,
    /// Whether `helps` is kept (see [`Parser::scraping`]).
    keep_help: bool,
    /// OpenMetrics: families already finished (to reject interleaving).
    seen: HashSet<&'a str>,
    /// Reused per label set: (label name, 1-based column).
    scratch: Vec<(&'a str, usize)>,
    /// Key the caller expects on the next sample line.
    expected: Option<ExpectedKey>,
    /// OpenMetrics' rules on what samples mean, when asked for (see
    /// [`Parser::validating`]).
    rules: Option<Box<rules::OpenMetricsRules<'a>>>,
    /// Prometheus format: a raw line feed inside a label value continues the
    /// sample on the next line, as Prometheus' lexer reads it (a value runs to
    /// its closing quote), though the format says to write it as `\n`.
    /// Scrapes take it; validation ([`Parser::validating`]) refuses it, as
    /// promtool does.
    line_feeds_in_values: bool,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Parser {
            input,
            text: simdutf8::basic::from_utf8(input).ok(),
            pos: 0,
            line_start: 0,
            line_no: 0,
            last_line_len: 0,
            format,
            finished: false,
            fam: Family::new(""),
            types: Vec::new(),
            types_index: HashMap::new(),
            types_indexed: 0,
            cache: None,
            helps: Vec::new(),
            keep_help: true,
            seen: HashSet::new(),
            scratch: Vec::new(),
            expected: None,
            rules: None,
            line_feeds_in_values: true,
        }
    }

    /// Holds the payload to its format's letter, as a validator (and
    /// promtool) does and a scrape does not: OpenMetrics' rules on what
    /// samples mean (see `rules`), and no raw line feed in a Prometheus
    /// format label value (see `line_feeds_in_values`).
    pub fn validating(mut self) -> Self {
        if self.format == Format::OpenMetrics {
            self.rules = Some(Box::default());
        }
        self.line_feeds_in_values = false;
        self
    }

    /// For a scrape: HELP texts are not kept (nothing reads them), and room
    /// for `families` TYPE lines (the target's last scrape's count, see
    /// [`Parser::families_typed`]) is made at once rather than by doubling
    /// through the payload (1.7 % of the scrape workers' CPU, 2026-12-03).
    pub fn scraping(mut self, families: usize) -> Self {
        self.keep_help = false;
        self.types.reserve(families);
        self
    }

    /// How many TYPE lines the payload had so far.
    pub fn families_typed(&self) -> usize {
        self.types.len()
    }

    /// The dialect this parser was created for.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Family metadata seen so far is available for the current sample via Sample fields.
    /// Returns None at the end (for OpenMetrics, after `# EOF`; a missing `# EOF` is an error at end of input).
    pub fn next_sample(&mut self) -> Option<Result<Sample<'a>, ParseError>> {
        self.next_sample_expecting(None)
    }

    /// Like [`Parser::next_sample`], told which key the next sample line
    /// probably starts with. When its bytes are that key (same length, same
    /// [`key_hash`]) the label section is not scanned again: the caller saw
    /// it validated before, and only an identical text can match. Everything
    /// else on the line is parsed and checked as usual; any other line takes
    /// the full path, so the result is the same either way.
    pub fn next_sample_expecting(
        &mut self,
        expected: Option<ExpectedKey>,
    ) -> Option<Result<Sample<'a>, ParseError>> {
        self.expected = expected;
        while !self.finished {
            let input = self.input;
            if self.pos >= input.len() {
                self.finished = true;
                if self.format == Format::OpenMetrics {
                    let (line, column) = if input.is_empty() {
                        (1, 1)
                    } else if input.last() == Some(&b'\n') {
                        (self.line_no + 1, 1)
                    } else {
                        (self.line_no, self.last_line_len + 1)
                    };
                    return Some(Err(ParseError {
                        line,
                        column,
                        reason: "unexpected end of input, expected \"# EOF\"".to_string(),
                    }));
                }
                return None;
            }
            self.line_start = self.pos;
            let rest = &input[self.pos..];
            let line = match memchr(b'\n', rest) {
                Some(n) => {
                    self.pos += n + 1;
                    &rest[..n]
                }
                None => {
                    self.pos = input.len();
                    rest
                }
            };
            self.line_no += 1;
            self.last_line_len = line.len();
            let r = match self.format {
                Format::Prometheus => self.prom_line(line),
                Format::OpenMetrics => self.om_line(line),
            };
            match r {
                Ok(Some(s)) => return Some(Ok(s)),
                Ok(None) => {}
                Err(e) => match self.retry_across_line_feeds(e) {
                    Ok(Some(s)) => return Some(Ok(s)),
                    Ok(None) => {}
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                },
            }
        }
        None
    }

    /// HELP text of the current family (if seen), raw (escaped).
    pub fn help(&self, family: &str) -> Option<&'a str> {
        self.helps
            .iter()
            .rev()
            .find(|(n, _)| *n == family)
            .map(|(_, t)| *t)
    }

    fn err(&self, column: usize, reason: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line_no,
            column,
            reason: reason.into(),
        }
    }

    /// `raw` must start at the current line's start.
    fn utf8(&self, raw: &'a [u8]) -> Result<&'a str, ParseError> {
        if let Some(s) = self
            .text
            .and_then(|t| t.get(self.line_start..self.line_start + raw.len()))
        {
            return Ok(s);
        }
        std::str::from_utf8(raw).map_err(|e| self.err(e.valid_up_to() + 1, "invalid UTF-8"))
    }

    // ---------------------------------------------------------------- Prometheus

    fn prom_line(&mut self, raw: &'a [u8]) -> Result<Option<Sample<'a>>, ParseError> {
        let mut end = raw.len();
        while end > 0 && matches!(raw[end - 1], b' ' | b'\t' | b'\r') {
            end -= 1;
        }
        let raw = &raw[..end];
        let start = skip_ws(raw, 0);
        match raw.get(start) {
            None => Ok(None),
            Some(b'#') => {
                self.prom_comment(raw, start)?;
                Ok(None)
            }
            Some(_) => {
                let s = self.utf8(raw)?;
                self.sample(s, start).map(Some)
            }
        }
    }

    /// After a line failed: when its physical line ended inside a label
    /// value of the Prometheus format, the sample is read again as one line
    /// up to the first line feed outside quotes, so a value may hold raw line
    /// feeds as Prometheus' lexer allows (see `line_feeds_in_values`); any
    /// other error stands. Kept out of `next_sample_expecting`'s hot loop,
    /// which it is called from on errors only.
    #[cold]
    #[inline(never)]
    fn retry_across_line_feeds(&mut self, e: ParseError) -> Result<Option<Sample<'a>>, ParseError> {
        if self.format != Format::Prometheus
            || !self.line_feeds_in_values
            || e.reason != UNTERMINATED_VALUE
        {
            return Err(e);
        }
        let input = self.input;
        let Some(end) = end_of_line_outside_quotes(input, self.line_start) else {
            return Err(e);
        };
        let raw = &input[self.line_start..end];
        self.pos = (end + 1).min(input.len());
        // Not through `prom_line`, nor a trimming helper shared with it: a
        // second caller changes how the compiler builds the hot loop around
        // it (+3-9 % and +0.6-2 % instructions, cachegrind).
        let mut end = raw.len();
        while end > 0 && matches!(raw[end - 1], b' ' | b'\t' | b'\r') {
            end -= 1;
        }
        let start = skip_ws(raw, 0);
        let result = self
            .utf8(&raw[..end])
            .and_then(|s| self.sample(s, start).map(Some))
            .map_err(|e| position_in_joined_line(e, raw));
        self.line_no += memchr::memchr_iter(b'\n', raw).count();
        self.last_line_len = raw.len() - memrchr(b'\n', raw).map_or(0, |p| p + 1);
        result
    }

    /// `raw[hash] == b'#'`, trailing whitespace already removed.
    fn prom_comment(&mut self, raw: &'a [u8], hash: usize) -> Result<(), ParseError> {
        let kw = skip_ws(raw, hash + 1);
        if kw == hash + 1 {
            return Ok(()); // "#foo": plain comment
        }
        let is_help = raw[kw..].starts_with(b"HELP");
        let is_type = raw[kw..].starts_with(b"TYPE");
        if !(is_help || is_type) || !matches!(raw.get(kw + 4), Some(b' ' | b'\t')) {
            return Ok(());
        }
        let s = self.utf8(raw)?;
        let b = raw;
        let (name, ne) = self.metadata_name(s, skip_ws(b, kw + 4))?;
        let text = match b.get(ne) {
            None => "",
            Some(b' ' | b'\t') => &s[skip_ws(b, ne)..],
            // Prometheus keeps a scrape whose HELP names no valid metric.
            Some(_) if is_help => return Ok(()),
            Some(_) => return Err(self.err(ne + 1, "invalid character in metric name")),
        };
        if is_help {
            if self.keep_help {
                self.helps.push((name, text));
            }
            return Ok(());
        }
        if text.is_empty() {
            return Err(self.err(ne + 1, "expected metric type"));
        }
        let kind = MetricKind::parse(text, Format::Prometheus).ok_or_else(|| {
            self.err(
                s.len() - text.len() + 1,
                format!("invalid metric type {text:?}"),
            )
        })?;
        self.types.push((name, kind));
        self.cache = None;
        self.fam = Family::new(name);
        self.fam.kind = kind;
        self.fam.has_type = true;
        Ok(())
    }

    fn prom_family(&mut self, name: &'a str) -> (&'a str, MetricKind) {
        let fam = self.fam;
        if !fam.name.is_empty() {
            if let Some(suffix) = name.strip_prefix(fam.name) {
                if fam.kind.allows_suffix(suffix, Format::Prometheus) {
                    return (fam.name, fam.kind);
                }
            }
        }
        if self.types.is_empty() {
            return (name, MetricKind::Unknown);
        }
        if let Some((n, f, k)) = self.cache {
            if n == name {
                return (f, k);
            }
        }
        if self.types_indexed < self.types.len() {
            for &(n, k) in &self.types[self.types_indexed..] {
                self.types_index.insert(n, k);
            }
            self.types_indexed = self.types.len();
        }
        let r = self.lookup_declared(name);
        self.cache = Some((name, r.0, r.1));
        r
    }

    fn lookup_declared(&self, name: &'a str) -> (&'a str, MetricKind) {
        if let Some((k, v)) = self.types_index.get_key_value(name) {
            if v.allows_suffix("", Format::Prometheus) {
                return (k, *v);
            }
        }
        for suffix in FAMILY_SUFFIXES {
            if let Some(stem) = name.strip_suffix(suffix) {
                if let Some((k, v)) = self.types_index.get_key_value(stem) {
                    if v.allows_suffix(suffix, Format::Prometheus) {
                        return (k, *v);
                    }
                }
            }
        }
        (name, MetricKind::Unknown)
    }

    // ---------------------------------------------------------------- OpenMetrics

    fn om_line(&mut self, raw: &'a [u8]) -> Result<Option<Sample<'a>>, ParseError> {
        match raw.first() {
            None => Err(self.err(1, "empty line is not allowed in OpenMetrics")),
            Some(b'#') => {
                let s = self.utf8(raw)?;
                self.om_comment(s)?;
                Ok(None)
            }
            Some(_) => {
                let s = self.utf8(raw)?;
                let sample = self.sample(s, 0)?;
                if let Some(Err(why)) = self.rules.as_mut().map(|r| r.sample(&sample)) {
                    return Err(self.err(1, why));
                }
                Ok(Some(sample))
            }
        }
    }

    /// Whether OpenMetrics is held to the letter (validating, see
    /// [`Parser::validating`]), or read as Prometheus scrapes
    /// it: interleaved families, repeated or late metadata, a typed family's
    /// bare name and oversized exemplars are accepted then.
    fn strict(&self) -> bool {
        self.rules.is_some()
    }

    /// Ends the current family for the rules, if they apply.
    fn end_family_for_rules(&mut self) -> Result<(), ParseError> {
        let fam = self.fam;
        if fam.name.is_empty() {
            return Ok(());
        }
        match self
            .rules
            .as_mut()
            .map(|r| r.end_family(fam.name, fam.kind))
        {
            Some(Err(why)) => Err(self.err(1, why)),
            _ => Ok(()),
        }
    }

    fn om_comment(&mut self, s: &'a str) -> Result<(), ParseError> {
        let b = s.as_bytes();
        if s == "# EOF" {
            self.end_family_for_rules()?;
            if self.pos < self.input.len() {
                return Err(ParseError {
                    line: self.line_no + 1,
                    column: 1,
                    reason: "unexpected content after \"# EOF\"".to_string(),
                });
            }
            self.finished = true;
            return Ok(());
        }
        if b.get(1) != Some(&b' ') {
            return Err(self.err(2, "expected a single space after '#'"));
        }
        let kw = match b.get(2..7) {
            Some(b"HELP ") => 0,
            Some(b"TYPE ") => 1,
            Some(b"UNIT ") => 2,
            _ => {
                return Err(self.err(
                    3,
                    "unknown comment; OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF",
                ))
            }
        };
        let (name, ne) = self.metadata_name(s, 7)?;
        match b.get(ne) {
            Some(b' ') => {}
            None => return Err(self.err(ne + 1, "expected a space after metric name")),
            Some(_) => return Err(self.err(ne + 1, "invalid character in metric name")),
        }
        let text = &s[ne + 1..];
        let text_col = ne + 2;
        self.om_meta_family(name)?;
        match kw {
            0 => {
                if self.fam.has_help {
                    if !self.strict() {
                        return Ok(()); // the first one stands, as in Prometheus
                    }
                    return Err(self.err(3, format!("duplicate HELP for metric family {name}")));
                }
                self.fam.has_help = true;
                // Any character may follow a backslash (`BS normal-char` in
                // the ABNF); unknown escapes are kept as written.
                if self.keep_help {
                    self.helps.push((name, text));
                }
            }
            1 => {
                if self.fam.has_type {
                    if !self.strict() {
                        return Ok(());
                    }
                    return Err(self.err(3, format!("duplicate TYPE for metric family {name}")));
                }
                let kind = MetricKind::parse(text, Format::OpenMetrics)
                    .ok_or_else(|| self.err(text_col, format!("invalid metric type {text:?}")))?;
                self.fam.has_type = true;
                self.fam.kind = kind;
                self.check_unit_allowed()?;
            }
            _ => {
                if self.fam.has_unit {
                    if !self.strict() {
                        return Ok(());
                    }
                    return Err(self.err(3, format!("duplicate UNIT for metric family {name}")));
                }
                if scan_metric_name_chars(text.as_bytes(), 0) != text.len() {
                    return Err(self.err(text_col, "invalid unit"));
                }
                if !text.is_empty() {
                    let ok = name
                        .strip_suffix(text)
                        .is_some_and(|stem| stem.ends_with('_'));
                    if !ok {
                        return Err(self.err(
                            text_col,
                            format!("unit {text:?} is not a suffix of metric family {name:?}"),
                        ));
                    }
                }
                self.fam.has_unit = true;
                self.fam.names_unit = !text.is_empty();
                self.check_unit_allowed()?;
            }
        }
        Ok(())
    }

    /// Under OpenMetrics' rules, info and stateset families have no unit.
    fn check_unit_allowed(&self) -> Result<(), ParseError> {
        let unitless = matches!(self.fam.kind, MetricKind::Info | MetricKind::StateSet);
        if self.rules.is_some() && unitless && self.fam.names_unit {
            return Err(self.err(
                3,
                format!("a {} family has no unit", self.fam.kind.as_str()),
            ));
        }
        Ok(())
    }

    fn om_meta_family(&mut self, name: &'a str) -> Result<(), ParseError> {
        if self.fam.name == name {
            if self.fam.has_samples && self.strict() {
                return Err(self.err(
                    3,
                    format!("metadata for metric family {name} after its samples"),
                ));
            }
            Ok(())
        } else {
            self.om_start_family(name, 3)
        }
    }

    fn om_start_family(&mut self, name: &'a str, column: usize) -> Result<(), ParseError> {
        self.end_family_for_rules()?;
        if !self.fam.name.is_empty() {
            self.seen.insert(self.fam.name);
        }
        if self.strict() && self.seen.contains(name) {
            return Err(self.err(
                column,
                format!("metric family {name} appears more than once (families must not be interleaved)"),
            ));
        }
        self.fam = Family::new(name);
        Ok(())
    }

    fn om_family(
        &mut self,
        name: &'a str,
        column: usize,
    ) -> Result<(&'a str, MetricKind), ParseError> {
        let fam = self.fam;
        if !fam.name.is_empty() {
            if let Some(suffix) = name.strip_prefix(fam.name) {
                // Read as Prometheus scrapes it unless validating: a sample
                // named like its typed family (`# TYPE foo counter`, then
                // `foo 1`; or a counter declared under its `_total` name, as
                // several exporters write it).
                let bare_name = suffix.is_empty() && !self.strict();
                if fam.kind.allows_suffix(suffix, Format::OpenMetrics) || bare_name {
                    self.fam.has_samples = true;
                    return Ok((fam.name, fam.kind));
                }
                if suffix.is_empty() {
                    return Err(self.err(
                        column,
                        format!(
                            "sample name {name} is not valid for a {} family (missing suffix)",
                            fam.kind.as_str()
                        ),
                    ));
                }
            }
        }
        self.om_start_family(name, column)?;
        self.fam.has_samples = true;
        Ok((name, MetricKind::Unknown))
    }

    // ---------------------------------------------------------------- samples

    /// Parses a sample line starting at byte `i` (after leading whitespace).
    fn sample(&mut self, s: &'a str, mut i: usize) -> Result<Sample<'a>, ParseError> {
        let b = s.as_bytes();
        let om = self.format == Format::OpenMetrics;
        let ns = i;
        i = scan_metric_name(b, i);
        let mut name = &s[ns..i];
        let mut labels = Labels::EMPTY;
        let key;
        let mut as_expected = false;
        if i == ns {
            (name, labels, key, i) = self.quoted_name_key(s, ns)?;
        } else if let Some((known_labels, key_end)) = self.expected_key_at(s, ns, i) {
            labels = known_labels;
            key = &s[ns..key_end];
            as_expected = true;
            i = if om { key_end + 1 } else { skip_ws(b, key_end) };
        } else if om {
            let braces = b.get(i) == Some(&b'{');
            if braces {
                let (l, ni, _) = self.labels(s, i, NameInBraces::AlreadyNamed)?;
                labels = l;
                i = ni;
            }
            key = &s[ns..i];
            match b.get(i) {
                Some(b' ') => i += 1,
                None => return Err(self.err(i + 1, "expected a space and a value")),
                Some(_) if !braces => {
                    return Err(self.err(i + 1, "invalid character in metric name"))
                }
                Some(_) => return Err(self.err(i + 1, "expected a single space before value")),
            }
        } else {
            let after_name = i;
            i = skip_ws(b, i);
            if b.get(i) == Some(&b'{') {
                let (l, ni, _) = self.labels(s, i, NameInBraces::AlreadyNamed)?;
                labels = l;
                key = &s[ns..ni];
                i = skip_ws(b, ni);
            } else if i == after_name {
                return Err(match b.get(i) {
                    None => self.err(i + 1, "expected value after metric name"),
                    Some(_) => self.err(i + 1, "invalid character in metric name"),
                });
            } else {
                key = name;
            }
        }

        let (family, kind) = if om {
            self.om_family(name, ns + 1)?
        } else {
            self.prom_family(name)
        };

        let vs = i;
        let ve = token_end(b, i, om);
        if ve == vs {
            return Err(self.err(vs + 1, "expected value"));
        }
        let value = parse_f64(&s[vs..ve]).ok_or_else(|| self.err(vs + 1, "invalid value"))?;
        i = ve;

        let mut timestamp_ms = None;
        let mut exemplar = None;
        if om {
            // b[i] is ' ' or end of line.
            if i < b.len() {
                i += 1;
                if b.get(i) != Some(&b'#') {
                    let ts = token_end(b, i, true);
                    if ts == i {
                        return Err(self.err(i + 1, "expected timestamp or exemplar"));
                    }
                    timestamp_ms = Some(
                        parse_om_timestamp(&s[i..ts])
                            .ok_or_else(|| self.err(i + 1, "invalid timestamp"))?,
                    );
                    i = ts;
                    if i < b.len() {
                        i += 1;
                        if b.get(i) != Some(&b'#') {
                            return Err(self.err(i + 1, "expected exemplar or end of line"));
                        }
                    }
                }
                if i < b.len() {
                    let suffix = &name[family.len().min(name.len())..];
                    let allowed = match kind {
                        MetricKind::Counter => suffix == "_total",
                        MetricKind::Histogram | MetricKind::GaugeHistogram => suffix == "_bucket",
                        _ => false,
                    };
                    if !allowed {
                        return Err(self.err(
                            i + 1,
                            "exemplars are only allowed on counter _total and histogram _bucket samples",
                        ));
                    }
                    exemplar = Some(self.exemplar(s, i)?);
                }
            }
        } else {
            i = skip_ws(b, i);
            if i < b.len() {
                let te = token_end(b, i, false);
                if te == i {
                    // The value token stopped at '{'.
                    return Err(self.err(i + 1, "unexpected '{' after value"));
                }
                timestamp_ms =
                    Some(parse_i64(&b[i..te]).ok_or_else(|| self.err(i + 1, "invalid timestamp"))?);
                i = skip_ws(b, te);
                if i < b.len() {
                    return Err(self.err(i + 1, "unexpected text after timestamp"));
                }
            }
        }

        Ok(Sample {
            name,
            family,
            kind,
            labels,
            key,
            as_expected,
            value,
            timestamp_ms,
            exemplar,
            line: self.line_no,
        })
    }

    /// A sample key that starts with `{` at `ns`: Prometheus text 1.0.0
    /// quotes the metric name inside the braces, `{"name.with.dots",a="1"}`.
    /// Rare, so never the expected-key path. Returns the name, the labels,
    /// the key and the index of the value.
    #[cold]
    #[inline(never)]
    fn quoted_name_key(
        &mut self,
        s: &'a str,
        ns: usize,
    ) -> Result<(&'a str, Labels<'a>, &'a str, usize), ParseError> {
        let b = s.as_bytes();
        if b.get(ns) != Some(&b'{') {
            return Err(self.err(ns + 1, "expected metric name"));
        }
        let (labels, ni, quoted_name) = self.labels(s, ns, NameInBraces::Allowed)?;
        let name = quoted_name.ok_or_else(|| self.err(ns + 1, "expected metric name"))?;
        let value_start = if self.format == Format::OpenMetrics {
            match b.get(ni) {
                Some(b' ') => ni + 1,
                None => return Err(self.err(ni + 1, "expected a space and a value")),
                Some(_) => return Err(self.err(ni + 1, "expected a single space before value")),
            }
        } else {
            skip_ws(b, ni)
        };
        Ok((name, labels, &s[ns..ni], value_start))
    }

    /// OpenMetrics exemplar starting at `b[i] == b'#'`, running to end of line.
    fn exemplar(&mut self, s: &'a str, mut i: usize) -> Result<Exemplar<'a>, ParseError> {
        let b = s.as_bytes();
        if b.get(i + 1) != Some(&b' ') || b.get(i + 2) != Some(&b'{') {
            return Err(self.err(i + 1, "expected \"# {\" to start an exemplar"));
        }
        let open = i + 2;
        let (labels, ni, _) = self.labels(s, open, NameInBraces::Exemplar)?;
        let runes: usize = labels
            .iter()
            .map(|(n, v)| n.len() + unescaped_char_count(v.0))
            .sum();
        // Prometheus keeps the scrape whatever an exemplar's size.
        if runes > MAX_EXEMPLAR_RUNES && self.strict() {
            return Err(self.err(
                open + 1,
                format!(
                    "exemplar label set is {runes} characters long, limit is {MAX_EXEMPLAR_RUNES}"
                ),
            ));
        }
        i = ni;
        if b.get(i) != Some(&b' ') {
            return Err(self.err(i + 1, "expected a space and exemplar value"));
        }
        i += 1;
        let ve = token_end(b, i, true);
        if ve == i {
            return Err(self.err(i + 1, "expected exemplar value"));
        }
        let value =
            parse_f64(&s[i..ve]).ok_or_else(|| self.err(i + 1, "invalid exemplar value"))?;
        i = ve;
        let mut timestamp_ms = None;
        if i < b.len() {
            i += 1;
            let te = token_end(b, i, true);
            if te == i {
                return Err(self.err(i + 1, "expected exemplar timestamp"));
            }
            timestamp_ms = Some(
                parse_om_timestamp(&s[i..te])
                    .ok_or_else(|| self.err(i + 1, "invalid exemplar timestamp"))?,
            );
            if te < b.len() {
                return Err(self.err(te + 1, "unexpected text after exemplar"));
            }
        }
        Ok(Exemplar {
            labels,
            value,
            timestamp_ms,
        })
    }

    /// When the expected key starts at `ns` (its name ends at `name_end`) and
    /// is followed by what separates a key from its value, its label section
    /// and the index after the key. A key of the wrong length or bytes, or a
    /// label-less key that the line continues with labels, is not it.
    fn expected_key_at(
        &mut self,
        s: &'a str,
        ns: usize,
        name_end: usize,
    ) -> Option<(Labels<'a>, usize)> {
        let expected = self.expected.take()?;
        let b = s.as_bytes();
        let key_end = ns.checked_add(usize::try_from(expected.len).ok()?)?;
        let om = self.format == Format::OpenMetrics;
        match b.get(key_end) {
            Some(b' ') => {}
            Some(b'\t') if !om => {}
            _ => return None,
        }
        if key_end < name_end || key_hash(s.get(ns..key_end)?) != expected.hash {
            return None;
        }
        if key_end == name_end {
            let value_start = skip_ws(b, key_end);
            return (b.get(value_start) != Some(&b'{')).then_some((Labels::EMPTY, key_end));
        }
        let open = if om { name_end } else { skip_ws(b, name_end) };
        if b.get(open) != Some(&b'{') || b.get(key_end - 1) != Some(&b'}') {
            return None;
        }
        let raw = s.get(open + 1..key_end - 1)?;
        Some((
            Labels {
                raw,
                len: UNCOUNTED,
            },
            key_end,
        ))
    }

    /// Parses `{...}` with `b[open] == b'{'`; returns the labels, the index
    /// after `}` and the metric name when one was quoted among the labels
    /// (Prometheus text 1.0.0 writes `{"name.with.dots",a="1"}`).
    fn labels(
        &mut self,
        s: &'a str,
        open: usize,
        name_in_braces: NameInBraces,
    ) -> Result<(Labels<'a>, usize, Option<&'a str>), ParseError> {
        let b = s.as_bytes();
        let om = self.format == Format::OpenMetrics;
        let mut i = open + 1;
        let mut count = 0usize;
        let mut quoted_metric_name: Option<&'a str> = None;
        // While names arrive in strictly increasing order (Go clients sort
        // them) none can repeat an earlier one, so the duplicate check waits
        // until the order breaks.
        let mut ascending = true;
        self.scratch.clear();
        loop {
            if !om {
                i = skip_ws(b, i);
            }
            match b.get(i) {
                None => return Err(self.err(i + 1, "unterminated label set, expected '}'")),
                Some(b'}') => {
                    if om && (count > 0 || quoted_metric_name.is_some()) {
                        return Err(self.err(i, "trailing comma in label set"));
                    }
                    break;
                }
                _ => {}
            }
            let ns = i;
            let name_end = scan_label_name(b, i);
            let lname = if name_end > ns {
                i = name_end;
                &s[ns..name_end]
            } else if b.get(i) == Some(&b'"') {
                match self.quoted_in_labels(s, i, name_in_braces, &mut quoted_metric_name)? {
                    QuotedInLabels::LabelName { name, after } => {
                        i = after;
                        name
                    }
                    QuotedInLabels::MetricName { separator } => {
                        i = separator;
                        if b[separator] == b'}' {
                            break;
                        }
                        i += 1;
                        continue;
                    }
                }
            } else {
                return Err(self.err(i + 1, "expected label name"));
            };
            if lname == "__name__" {
                // As Prometheus: the name is written before the braces; a
                // second one would leave the series with two names.
                return Err(self.err(ns + 1, "label name __name__ is not allowed in a label set"));
            }
            if !om {
                i = skip_ws(b, i);
            }
            match b.get(i) {
                Some(b'=') => i += 1,
                None => return Err(self.err(i + 1, "unterminated label set, expected '='")),
                Some(_) => {
                    return Err(self.err(i + 1, "expected '=' after label name"));
                }
            }
            if !om {
                i = skip_ws(b, i);
            }
            if b.get(i) != Some(&b'"') {
                return Err(self.err(i + 1, "expected '\"' to start label value"));
            }
            let vs = i + 1;
            i = vs;
            loop {
                match memchr2(b'"', b'\\', &b[i..]) {
                    None => return Err(self.err(vs, UNTERMINATED_VALUE)),
                    Some(off) => {
                        let p = i + off;
                        if b[p] == b'"' {
                            i = p;
                            break;
                        }
                        match b.get(p + 1) {
                            None => return Err(self.err(vs, UNTERMINATED_VALUE)),
                            // Any character may follow a backslash, in
                            // both formats; unknown escapes are kept as
                            // written (`RawValue::unescape_into`).
                            Some(_) => i = p + 2,
                        }
                    }
                }
            }
            i += 1; // closing quote
            let col = ns + 1;
            if ascending && self.scratch.last().is_some_and(|(prev, _)| *prev >= lname) {
                ascending = false;
            }
            if !ascending
                && count < PAIRWISE_DUP_LIMIT
                && self.scratch.iter().any(|(n, _)| *n == lname)
            {
                return Err(self.err(col, format!("duplicate label name {lname:?}")));
            }
            self.scratch.push((lname, col));
            count += 1;
            if !om {
                i = skip_ws(b, i);
            }
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => break,
                // Prometheus' parser takes the comma as optional.
                Some(&c) if !om && (CLASS[c as usize] & LNAME_START != 0 || c == b'"') => {}
                None => return Err(self.err(i + 1, "unterminated label set, expected '}'")),
                Some(_) => return Err(self.err(i + 1, "expected ',' or '}' after label value")),
            }
        }
        let n = count;
        if !ascending && n > PAIRWISE_DUP_LIMIT {
            self.scratch.sort_unstable();
            let mut dup: Option<(&str, usize)> = None;
            for w in self.scratch.windows(2) {
                if w[0].0 == w[1].0 {
                    let col = w[0].1.max(w[1].1);
                    if dup.is_none_or(|(_, c)| col < c) {
                        dup = Some((w[0].0, col));
                    }
                }
            }
            if let Some((lname, col)) = dup {
                return Err(self.err(col, format!("duplicate label name {lname:?}")));
            }
        }
        Ok((
            Labels {
                raw: &s[open + 1..i],
                len: n,
            },
            i + 1,
            quoted_metric_name,
        ))
    }

    /// A quoted string among the labels at `b[open] == b'"'`: a label name
    /// when `=` follows it, else the sample's metric name (recorded in
    /// `metric_name`; `separator` is the index of the `,` or `}` after it).
    #[cold]
    #[inline(never)]
    fn quoted_in_labels(
        &self,
        s: &'a str,
        open: usize,
        name_in_braces: NameInBraces,
        metric_name: &mut Option<&'a str>,
    ) -> Result<QuotedInLabels<'a>, ParseError> {
        let b = s.as_bytes();
        let (quoted, after) = self.quoted_name(s, open)?;
        let next = if self.format == Format::OpenMetrics {
            after
        } else {
            skip_ws(b, after)
        };
        if !matches!(b.get(next), Some(b',' | b'}')) {
            return Ok(QuotedInLabels::LabelName {
                name: quoted,
                after,
            });
        }
        match name_in_braces {
            NameInBraces::Allowed if metric_name.is_none() => {}
            NameInBraces::Exemplar => {
                return Err(self.err(open + 1, "an exemplar has no metric name"))
            }
            _ => return Err(self.err(open + 1, "metric name is already set")),
        }
        *metric_name = Some(quoted);
        Ok(QuotedInLabels::MetricName { separator: next })
    }

    /// The family named by a `# HELP`, `# TYPE` or `# UNIT` line from `ns`
    /// on, plain or quoted; and the index after it.
    fn metadata_name(&self, s: &'a str, ns: usize) -> Result<(&'a str, usize), ParseError> {
        let b = s.as_bytes();
        if b.get(ns) == Some(&b'"') {
            return self.quoted_name(s, ns);
        }
        let ne = scan_metric_name(b, ns);
        if ne == ns {
            return Err(self.err(ns + 1, "expected metric name"));
        }
        Ok((&s[ns..ne], ne))
    }

    /// A name in double quotes at `b[open] == b'"'` (Prometheus text 1.0.0;
    /// OpenMetrics 1.0 has none, but Prometheus 3 and the Python client read
    /// them there too): its text and the index after the closing quote.
    /// Escapes inside it are refused: the parser hands out names as slices
    /// of the payload.
    #[cold]
    fn quoted_name(&self, s: &'a str, open: usize) -> Result<(&'a str, usize), ParseError> {
        let b = s.as_bytes();
        let start = open + 1;
        // A line feed can only be here in a sample read across line feeds
        // (see `retry_across_line_feeds`), which allows them in values only.
        let close = match memchr3(b'"', b'\\', b'\n', &b[start..]) {
            None => return Err(self.err(open + 1, "unterminated quoted name")),
            Some(off) if b[start + off] == b'\n' => {
                return Err(self.err(open + 1, "unterminated quoted name"))
            }
            Some(off) if b[start + off] == b'\\' => {
                return Err(self.err(
                    start + off + 1,
                    "escape sequences in quoted names are not supported",
                ))
            }
            Some(off) => start + off,
        };
        if close == start {
            return Err(self.err(open + 1, "empty quoted name"));
        }
        Ok((&s[start..close], close + 1))
    }
}

/// What a quoted string inside a label set turned out to be.
enum QuotedInLabels<'a> {
    LabelName { name: &'a str, after: usize },
    MetricName { separator: usize },
}

/// Whether a label set may hold the sample's quoted metric name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameInBraces {
    /// The line began with `{`: the name is inside, exactly once.
    Allowed,
    /// The name was written before the braces.
    AlreadyNamed,
    /// An exemplar's label set, which names no metric.
    Exemplar,
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Sample<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_sample()
    }
}

impl std::iter::FusedIterator for Parser<'_> {}

/// Validates a whole payload, held to its format's letter (see
/// [`Parser::validating`]): the number of samples or the first error.
pub fn validate(input: &[u8], format: Format) -> Result<usize, ParseError> {
    validate_each(input, format, |_| {})
}

/// [`validate`], handing each sample to `each` once it has passed.
pub fn validate_each<'a>(
    input: &'a [u8],
    format: Format,
    mut each: impl FnMut(&Sample<'a>),
) -> Result<usize, ParseError> {
    let mut p = Parser::new(input, format).validating();
    let mut text = (format == Format::Prometheus).then(rules::TextRules::default);
    let mut n = 0;
    while let Some(r) = p.next_sample() {
        let sample = r?;
        if let Some(text) = text.as_mut() {
            text.sample(&sample)?;
        }
        each(&sample);
        n += 1;
    }
    if let Some(text) = text {
        text.metadata(input)?;
    }
    Ok(n)
}

// -------------------------------------------------------------------- lexing helpers

const MNAME_START: u8 = 1;
const MNAME_CONT: u8 = 2;
const LNAME_START: u8 = 4;
const LNAME_CONT: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= MNAME_START | MNAME_CONT;
        }
        if digit {
            v |= MNAME_CONT | LNAME_CONT;
        }
        if alpha {
            v |= LNAME_START | LNAME_CONT;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// End of a `[a-zA-Z_:][a-zA-Z0-9_:]*` name starting at `i` (== i when none).
#[inline]
fn scan_metric_name(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(&c) if CLASS[c as usize] & MNAME_START != 0 => scan_metric_name_chars(b, i + 1),
        _ => i,
    }
}

#[inline]
fn scan_metric_name_chars(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && CLASS[b[i] as usize] & MNAME_CONT != 0 {
        i += 1;
    }
    i
}

/// End of a `[a-zA-Z_][a-zA-Z0-9_]*` name starting at `i` (== i when none).
#[inline]
fn scan_label_name(b: &[u8], mut i: usize) -> usize {
    match b.get(i) {
        Some(&c) if CLASS[c as usize] & LNAME_START != 0 => {
            i += 1;
            while i < b.len() && CLASS[b[i] as usize] & LNAME_CONT != 0 {
                i += 1;
            }
            i
        }
        _ => i,
    }
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// End of a value/timestamp token: up to a space (OpenMetrics) or space, tab or `{` (Prometheus).
#[inline]
fn token_end(b: &[u8], mut i: usize, om: bool) -> usize {
    if om {
        return match memchr(b' ', b.get(i..).unwrap_or(&[])) {
            Some(n) => i + n,
            None => b.len(),
        };
    }
    while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'{') {
        i += 1;
    }
    i
}

const UNTERMINATED_VALUE: &str = "unterminated label value";

/// An error found in a sample read across line feeds names the line and
/// column its byte is on, not an offset into the joined text.
fn position_in_joined_line(mut e: ParseError, raw: &[u8]) -> ParseError {
    let before = &raw[..e.column.saturating_sub(1).min(raw.len())];
    if let Some(last) = memrchr(b'\n', before) {
        e.line += memchr::memchr_iter(b'\n', before).count();
        e.column = before.len() - last;
    }
    e
}

/// Index of the first line feed at or after `start` that is not inside a
/// quoted string (`b.len()` if none), or `None` where a backslash inside one
/// comes before a line feed (a line feed is never escaped; Prometheus
/// refuses it). One forward pass, so a payload with an unclosed quote costs
/// a scan of the rest of it, once.
fn end_of_line_outside_quotes(b: &[u8], start: usize) -> Option<usize> {
    let mut in_quotes = false;
    let mut i = start;
    while let Some(off) = b
        .get(i..)
        .and_then(|rest| memchr3(b'"', b'\\', b'\n', rest))
    {
        let p = i + off;
        match b[p] {
            b'\n' if !in_quotes => return Some(p),
            b'"' => in_quotes = !in_quotes,
            b'\\' if in_quotes => match b.get(p + 1) {
                Some(b'\n') => return None,
                _ => {
                    i = p + 2;
                    continue;
                }
            },
            _ => {}
        }
        i = p + 1;
    }
    Some(b.len())
}

/// Index of the closing quote of a quoted string whose contents start at `i`.
fn find_closing_quote(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let p = i + memchr2(b'"', b'\\', b.get(i..)?)?;
        if b[p] == b'"' {
            return Some(p);
        }
        i = p + 2;
    }
}

fn unescaped_char_count(raw: &str) -> usize {
    let mut n = 0;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
        }
        n += 1;
    }
    n
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Parses a float the way Go's `strconv.ParseFloat(s, 64)` does for decimal
/// input: `NaN`, `Inf`, `+Inf`, `-Inf`, `infinity` in any case, `+`/`-` signs,
/// exponents; out-of-range values are rejected. Hex floats are not supported.
#[inline]
fn parse_f64(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (neg, start) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    // Fast path (Clinger): at most 15 significant digits and a decimal
    // exponent within +-22. Mantissa and power of ten are then both exact,
    // so one IEEE multiplication or division is correctly rounded.
    let mut i = start;
    let mut mant: u64 = 0;
    let mut digits = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
        digits += 1;
        i += 1;
    }
    let mut frac = 0i32;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            mant = mant.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
            digits += 1;
            frac += 1;
            i += 1;
        }
    }
    if digits > 0 && digits <= 15 {
        let mut exp: i32 = 0;
        let mut ok = i == b.len();
        if !ok && matches!(b[i], b'e' | b'E') {
            let mut j = i + 1;
            let eneg = match b.get(j) {
                Some(b'-') => {
                    j += 1;
                    true
                }
                Some(b'+') => {
                    j += 1;
                    false
                }
                _ => false,
            };
            let es = j;
            while j < b.len() && b[j].is_ascii_digit() && j - es < 4 {
                exp = exp * 10 + i32::from(b[j] - b'0');
                j += 1;
            }
            if j == b.len() && j > es {
                ok = true;
                if eneg {
                    exp = -exp;
                }
            }
        }
        if ok {
            let e10 = exp - frac;
            if (-22..=22).contains(&e10) {
                let m = mant as f64;
                let v = if e10 >= 0 {
                    m * POW10[e10 as usize]
                } else {
                    m / POW10[(-e10) as usize]
                };
                // m * 10^e10 with m < 2^53 can still exceed 2^53 and round;
                // that is the single correctly-rounded operation Clinger allows.
                return Some(if neg { -v } else { v });
            }
        }
    }
    match b.get(start)? {
        c if c.is_ascii_alphabetic() => {
            let word = &b[start..];
            if word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"infinity") {
                Some(if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                })
            } else if start == 0 && word.eq_ignore_ascii_case(b"nan") {
                Some(f64::NAN)
            } else {
                None
            }
        }
        b'0'..=b'9' | b'.' => {
            // Rust accepts a subset of Go's syntax here (no hex floats, no
            // underscores); Go reports overflow to infinity as an error.
            let v: f64 = s.parse().ok()?;
            if v.is_infinite() {
                None
            } else {
                Some(v)
            }
        }
        _ => None,
    }
}

/// Prometheus text timestamp: integer milliseconds, optional sign.
#[inline]
fn parse_i64(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = i64::from(c - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(d)?
        } else {
            v.checked_mul(10)?.checked_add(d)?
        };
    }
    Some(v)
}

/// OpenMetrics timestamp: float seconds -> integer milliseconds, truncated toward zero.
/// Plain decimals are converted exactly; exponent forms go through f64.
fn parse_om_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, start) = match b.first()? {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let mut i = start;
    let mut secs: i64 = 0;
    let mut int_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        match secs
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b[i] - b'0')))
        {
            Some(v) => secs = v,
            None => return far_timestamp(s),
        }
        int_digits += 1;
        i += 1;
    }
    let mut ms_frac: i64 = 0;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            if frac_digits < 3 {
                ms_frac = ms_frac * 10 + i64::from(b[i] - b'0');
            }
            frac_digits += 1;
            i += 1;
        }
    }
    if i == b.len() {
        if int_digits + frac_digits == 0 {
            return None;
        }
        let mut k = frac_digits;
        while k < 3 {
            ms_frac *= 10;
            k += 1;
        }
        let Some(ms) = secs.checked_mul(1000).and_then(|v| v.checked_add(ms_frac)) else {
            return far_timestamp(s);
        };
        return Some(if neg { -ms } else { ms });
    }
    if !matches!(b.get(i), Some(b'e' | b'E')) || int_digits + frac_digits == 0 {
        return None;
    }
    far_timestamp(s)
}

/// A timestamp in seconds that is a finite number but may not fit in i64
/// milliseconds: OpenMetrics sets no range, so it is kept, saturated (the
/// scrape path stamps samples with the scrape's own time anyway).
fn far_timestamp(s: &str) -> Option<i64> {
    let ms = s.parse::<f64>().ok()? * 1000.0;
    // `as` saturates at i64's bounds.
    ms.is_finite().then(|| ms.trunc() as i64)
}
