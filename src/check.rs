//! Offline checks behind `check-config` and `check-metrics`: no network, no store.

use std::io::Write;

use serde::Serialize;

use crate::scrape::parse::{Format, ParseError};

#[derive(Serialize)]
struct PrintedSample<'a> {
    name: &'a str,
    family: &'a str,
    kind: &'static str,
    labels: serde_json::Map<String, serde_json::Value>,
    /// Written as a string so NaN and infinities survive JSON.
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp_ms: Option<i64>,
}

/// Validates a whole payload in `format` (or sniffed when `None`),
/// OpenMetrics with its rules on what samples mean too (histogram buckets,
/// counter values, metric point grouping; see `scrape::parse::rules`). With
/// `print`, writes each sample as one JSON line. Returns the sample count.
pub fn check_metrics(
    input: &[u8],
    format: Option<Format>,
    print: Option<&mut dyn Write>,
) -> Result<usize, ParseError> {
    let format = format.unwrap_or_else(|| Format::sniff(input));
    let Some(out) = print else {
        return crate::scrape::parse::validate(input, format);
    };
    // A closed stdout (e.g. `| head`) ends printing, not validation.
    let mut printing = true;
    crate::scrape::parse::validate_each(input, format, |s| {
        if !printing {
            return;
        }
        let printed = PrintedSample {
            name: s.name,
            family: s.family,
            kind: s.kind.as_str(),
            labels: s
                .labels
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        serde_json::Value::String(v.to_cow().into_owned()),
                    )
                })
                .collect(),
            value: format_value(s.value),
            timestamp_ms: s.timestamp_ms,
        };
        if let Ok(line) = serde_json::to_string(&printed) {
            printing = writeln!(out, "{line}").is_ok();
        }
    })
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}
