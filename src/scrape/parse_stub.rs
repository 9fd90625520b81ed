#![allow(unused)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format { Prometheus, OpenMetrics }
impl Format {
    pub fn from_content_type(ct: &str) -> Format { todo!() }
    pub fn sniff(input: &[u8]) -> Format { todo!() }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind { Counter, Gauge, Histogram, GaugeHistogram, Summary, Info, StateSet, Unknown }
impl MetricKind { pub fn as_str(&self) -> &'static str { todo!() } }
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a>(pub &'a str);
impl<'a> RawValue<'a> {
    pub fn has_escapes(&self) -> bool { todo!() }
    pub fn unescape_into(&self, buf: &mut String) { todo!() }
    pub fn to_cow(&self) -> std::borrow::Cow<'a, str> { todo!() }
}
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> { s: &'a str }
pub struct LabelIter<'a> { s: &'a str }
impl<'a> Iterator for LabelIter<'a> { type Item = (&'a str, RawValue<'a>); fn next(&mut self) -> Option<Self::Item> { todo!() } }
impl<'a> Labels<'a> {
    pub fn len(&self) -> usize { todo!() }
    pub fn is_empty(&self) -> bool { todo!() }
    pub fn iter(&self) -> LabelIter<'a> { todo!() }
    pub fn get(&self, name: &str) -> Option<RawValue<'a>> { todo!() }
}
#[derive(Debug, Clone, Copy)]
pub struct Exemplar<'a> { pub labels: Labels<'a>, pub value: f64, pub timestamp_ms: Option<i64> }
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub name: &'a str, pub family: &'a str, pub kind: MetricKind, pub labels: Labels<'a>,
    pub value: f64, pub timestamp_ms: Option<i64>, pub exemplar: Option<Exemplar<'a>>, pub line: usize,
}
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{line}:{column}: {reason}")]
pub struct ParseError { pub line: usize, pub column: usize, pub reason: String }
pub struct Parser<'a> { i: &'a [u8] }
impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self { todo!() }
    pub fn next_sample(&mut self) -> Option<Result<Sample<'a>, ParseError>> { todo!() }
}
impl<'a> Iterator for Parser<'a> { type Item = Result<Sample<'a>, ParseError>; fn next(&mut self) -> Option<Self::Item> { todo!() } }
pub fn validate(input: &[u8], format: Format) -> Result<usize, ParseError> { todo!() }
