//! Differential tests of `fleetscope::scrape::parse` against the
//! `prometheus-parse` crate (0.2.x), plus property-based round trips.
//!
//! prometheus-parse is a regex-based parser and is wrong in several ways that
//! matter for real exporters. We compare against it only on lines it handles
//! correctly (see `pp_can_handle`) and assert our own answer on the rest.
//! Known prometheus-parse defects (0.2.5):
//! 1. It splits the label section on every `,` and `=`, even inside quoted
//!    values (`{msg="a,b"}` becomes `msg="a` + garbage).
//! 2. Its label regex is `\{([^}]+)\}`, so a `}` inside a quoted value ends the
//!    label section early, and an empty `{}` makes the whole line "ignored".
//! 3. It never unescapes values: `\"`, `\\` and `\n` stay as written, and the
//!    surrounding quotes are removed with `trim_matches('"')`, which also eats
//!    escaped quotes at either end of the value.
//! 4. Metric names are matched with `\w+`, so recording-rule names with `:`
//!    (`job:requests:rate5m`) are silently dropped.
//! 5. Malformed lines are silently ignored instead of reported.
//! 6. Histograms/summaries are regrouped; `_sum`/`_count` come out untyped and
//!    summary lines without a `quantile` label are dropped.
//! 7. Lines without a timestamp get "now" as timestamp.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use fleetscope::scrape::parse::{
    key_hash, validate, ExpectedKey, Format, MetricKind, Parser, RawValue, Sample,
};
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exposition");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

fn parse_all(input: &[u8], format: Format) -> Vec<Sample<'_>> {
    Parser::new(input, format)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("parse error {e}"))
}

/// Go-style float for normalising `le`/`quantile` label values.
fn go_float(s: &str) -> f64 {
    match s.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" => f64::NAN,
        other => other.parse().unwrap_or_else(|_| panic!("bad float {s}")),
    }
}

fn canon_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

/// One sample normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Norm {
    name: String,
    labels: BTreeMap<String, String>,
    value: String,
    kind: &'static str,
    timestamp_ms: Option<i64>,
}

fn norm_labels(it: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    it.map(|(k, v)| {
        if k == "le" || k == "quantile" {
            let f = canon_float(go_float(&v));
            (k, f)
        } else {
            (k, v)
        }
    })
    .collect()
}

/// The kind prometheus-parse would report for one of our samples.
fn pp_kind_of(s: &Sample<'_>) -> &'static str {
    match s.kind {
        MetricKind::Counter if s.name == s.family => "counter",
        MetricKind::Gauge if s.name == s.family => "gauge",
        MetricKind::Histogram if s.name.strip_suffix("_bucket") == Some(s.family) => "histogram",
        MetricKind::Summary if s.name == s.family => "summary",
        _ => "untyped",
    }
}

fn ours_norm(s: &Sample<'_>) -> Norm {
    let kind = pp_kind_of(s);
    Norm {
        name: s.name.to_string(),
        labels: norm_labels(
            s.labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_cow().into_owned())),
        ),
        value: canon_float(s.value),
        kind,
        // prometheus-parse loses per-bucket timestamps when regrouping.
        timestamp_ms: if kind == "histogram" || kind == "summary" {
            None
        } else {
            s.timestamp_ms
        },
    }
}

fn pp_norm(scrape: &prometheus_parse::Scrape, now_ms: i64) -> Vec<Norm> {
    let mut out = Vec::new();
    for s in &scrape.samples {
        let labels = || s.labels.iter().map(|(k, v)| (k.clone(), v.clone()));
        let ts = s.timestamp.timestamp_millis();
        let ts = if ts >= now_ms - 60_000 {
            None
        } else {
            Some(ts)
        };
        match &s.value {
            prometheus_parse::Value::Counter(v) => out.push(Norm {
                name: s.metric.clone(),
                labels: norm_labels(labels()),
                value: canon_float(*v),
                kind: "counter",
                timestamp_ms: ts,
            }),
            prometheus_parse::Value::Gauge(v) => out.push(Norm {
                name: s.metric.clone(),
                labels: norm_labels(labels()),
                value: canon_float(*v),
                kind: "gauge",
                timestamp_ms: ts,
            }),
            prometheus_parse::Value::Untyped(v) => out.push(Norm {
                name: s.metric.clone(),
                labels: norm_labels(labels()),
                value: canon_float(*v),
                kind: "untyped",
                timestamp_ms: ts,
            }),
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = norm_labels(labels());
                    l.insert("le".into(), canon_float(b.less_than));
                    out.push(Norm {
                        name: format!("{}_bucket", s.metric),
                        labels: l,
                        value: canon_float(b.count),
                        kind: "histogram",
                        timestamp_ms: None,
                    });
                }
            }
            prometheus_parse::Value::Summary(qs) => {
                for q in qs {
                    let mut l = norm_labels(labels());
                    l.insert("quantile".into(), canon_float(q.quantile));
                    out.push(Norm {
                        name: s.metric.clone(),
                        labels: l,
                        value: canon_float(q.count),
                        kind: "summary",
                        timestamp_ms: None,
                    });
                }
            }
        }
    }
    out
}

/// A deliberately simple, independent judgement of whether prometheus-parse
/// parses a sample line correctly (defects 1-4 above).
fn pp_can_handle(line: &str) -> bool {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    if line[..name_end].contains(':') {
        return false; // defect 4
    }
    let Some(open) = line.find('{') else {
        return true;
    };
    let b = line.as_bytes();
    let mut i = open + 1;
    let mut in_quotes = false;
    let mut labels_seen = false;
    while i < b.len() {
        let c = b[i];
        if in_quotes {
            match c {
                b'"' => in_quotes = false,
                b'\\' | b',' | b'=' | b'}' | b'{' => return false, // defects 1-3
                _ => {}
            }
        } else {
            match c {
                b'"' => in_quotes = true,
                b'}' => return labels_seen, // defect 2: `{}`
                b' ' | b'\t' => return false,
                _ => labels_seen = true,
            }
        }
        i += 1;
    }
    false
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs both parsers on a Prometheus-format fixture and compares every sample
/// prometheus-parse can handle. Returns (compared, skipped) sample counts.
fn differential(name: &str) -> (usize, usize) {
    let input = fixture(name);
    let text = std::str::from_utf8(&input).expect("fixture is UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    let ours = parse_all(&input, Format::Prometheus);
    assert_eq!(validate(&input, Format::Prometheus), Ok(ours.len()));

    let safe = |line_no: usize| pp_can_handle(lines[line_no - 1].trim());
    let kept: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(i, l)| l.trim_start().starts_with('#') || l.trim().is_empty() || safe(i + 1))
        .map(|(_, l)| l.to_string())
        .collect();
    let now = now_ms();
    let scrape = prometheus_parse::Scrape::parse(kept.into_iter().map(Ok)).expect("pp parse");

    let mut theirs = pp_norm(&scrape, now);
    let mut mine: Vec<Norm> = ours
        .iter()
        .filter(|s| safe(s.line))
        .map(ours_norm)
        .collect();
    let skipped = ours.len() - mine.len();
    theirs.sort();
    mine.sort();
    assert_eq!(mine.len(), theirs.len(), "{name}: sample count differs");
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(a, b, "{name}: samples differ");
    }
    (mine.len(), skipped)
}

#[test]
fn differential_node_exporter() {
    let (n, skipped) = differential("node_exporter.prom");
    assert!(n >= 450, "only {n} samples compared");
    assert_eq!(skipped, 0);
}

#[test]
fn differential_kube_state_metrics() {
    let (n, skipped) = differential("kube_state_metrics.prom");
    assert!(n >= 1900, "only {n} samples compared");
    // kube_pod_annotations carries JSON in label values: prometheus-parse
    // splits it on `,`/`=` (defect 1); check ours instead.
    assert_eq!(skipped, 12);
    let input = fixture("kube_state_metrics.prom");
    let ann: Vec<Sample<'_>> = parse_all(&input, Format::Prometheus)
        .into_iter()
        .filter(|s| s.name == "kube_pod_annotations")
        .collect();
    assert_eq!(ann.len(), 12);
    for s in &ann {
        assert_eq!(s.kind, MetricKind::Gauge);
        let pod = s.labels.get("pod").map(|v| v.0).unwrap_or_default();
        let cfg = s
            .labels
            .get("annotation_kubectl_kubernetes_io_last_applied_configuration")
            .map(|v| v.to_cow().into_owned())
            .unwrap_or_default();
        assert!(
            cfg.starts_with(&format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"{pod}\""
            )),
            "{cfg}"
        );
        assert!(cfg.ends_with("\"tier\":\"a=b,c=d\"}}}\n"), "{cfg}");
        let path = s
            .labels
            .get("annotation_prometheus_io_path")
            .map(|v| v.to_cow().into_owned());
        assert!(
            path.as_deref() == Some("/metrics") || path.as_deref() == Some("C:\\metrics\\path"),
            "{path:?}"
        );
        assert_eq!(s.labels.len(), 5);
    }
}

#[test]
fn differential_cadvisor() {
    let (n, skipped) = differential("cadvisor.prom");
    assert!(n >= 3000, "only {n} samples compared");
    assert_eq!(skipped, 0);
    let input = fixture("cadvisor.prom");
    let s = parse_all(&input, Format::Prometheus);
    assert!(s
        .iter()
        .all(|s| s.timestamp_ms.is_some_and(|t| t >= 1_714_550_400_000)));
}

#[test]
fn differential_app_misc_and_pp_defects() {
    let (n, skipped) = differential("app_misc.prom");
    assert!(n >= 15, "only {n} samples compared");
    assert!(skipped >= 8, "{skipped}");

    let input = fixture("app_misc.prom");
    let ours = parse_all(&input, Format::Prometheus);
    let msgs: Vec<String> = ours
        .iter()
        .filter(|s| s.name == "app_errors_total")
        .filter_map(|s| s.labels.get("msg").map(|v| v.to_cow().into_owned()))
        .collect();
    assert_eq!(
        msgs,
        [
            "timeout, retrying",
            "key=value",
            "say \"hi\"",
            "C:\\temp\\x",
            "multi\nline",
            "plain"
        ]
    );

    // Defect 1: prometheus-parse splits `msg="timeout, retrying"` on the comma.
    let pp = prometheus_parse::Scrape::parse(
        ["app_errors_total{msg=\"timeout, retrying\"} 3".to_string()]
            .into_iter()
            .map(Ok),
    )
    .expect("pp");
    assert_ne!(pp.samples[0].labels.get("msg"), Some("timeout, retrying"));
    // Defect 3: no unescaping.
    let pp = prometheus_parse::Scrape::parse(
        ["m{msg=\"say \\\"hi\\\"\"} 2".to_string()]
            .into_iter()
            .map(Ok),
    )
    .expect("pp");
    assert_ne!(pp.samples[0].labels.get("msg"), Some("say \"hi\""));
    // Defect 4: recording rule names are dropped entirely; ours keeps them.
    let pp = prometheus_parse::Scrape::parse(
        ["job:requests:rate5m{job=\"api\"} 12.5".to_string()]
            .into_iter()
            .map(Ok),
    )
    .expect("pp");
    assert!(pp.samples.is_empty());
    let rr: Vec<&Sample<'_>> = ours
        .iter()
        .filter(|s| s.name == "job:requests:rate5m")
        .collect();
    assert_eq!(rr.len(), 1);
    assert_eq!((rr[0].kind, rr[0].value), (MetricKind::Gauge, 12.5));
    // Defect 2: `{}` and `}` inside values.
    let ups: Vec<f64> = ours
        .iter()
        .filter(|s| s.name == "app_up")
        .map(|s| s.value)
        .collect();
    assert_eq!(ups, [1.0, 2.0]);
    let routes: Vec<String> = ours
        .iter()
        .filter(|s| s.family == "api_request_duration_seconds")
        .filter_map(|s| s.labels.get("route").map(|v| v.0.to_string()))
        .collect();
    assert_eq!(routes.iter().filter(|r| *r == "/orders/{id}").count(), 4);
    // Histogram/summary family assignment.
    let fam: Vec<(&str, MetricKind)> = ours
        .iter()
        .filter(|s| s.name.starts_with("api_request") || s.name.starts_with("rpc_"))
        .map(|s| (s.family, s.kind))
        .collect();
    assert_eq!(fam.len(), 14);
    assert!(fam[..10]
        .iter()
        .all(|f| *f == ("api_request_duration_seconds", MetricKind::Histogram)));
    assert!(fam[10..]
        .iter()
        .all(|f| *f == ("rpc_duration_seconds", MetricKind::Summary)));
    // Defect 5: malformed input is silently accepted by prometheus-parse.
    let bad = fixture("malformed_bad_value.prom");
    let pp = prometheus_parse::Scrape::parse(
        std::str::from_utf8(&bad)
            .expect("utf8")
            .lines()
            .map(|l| Ok(l.to_string())),
    )
    .expect("pp");
    assert_eq!(pp.samples.len(), 1);
    assert!(validate(&bad, Format::Prometheus).is_err());
}

#[test]
fn openmetrics_fixture() {
    let input = fixture("openmetrics_full.txt");
    assert_eq!(Format::sniff(&input), Format::OpenMetrics);
    let mut p = Parser::new(&input, Format::OpenMetrics);
    let mut samples = Vec::new();
    for r in p.by_ref() {
        samples.push(r.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(samples.len(), 38);
    assert_eq!(
        p.help("acme_http_request_duration_seconds"),
        Some(r#"Duration of HTTP requests, with "quotes" and a \\ backslash and a \n newline."#)
    );
    let by_kind = |k: MetricKind| samples.iter().filter(|s| s.kind == k).count();
    assert_eq!(by_kind(MetricKind::Histogram), 14);
    assert_eq!(by_kind(MetricKind::Counter), 4);
    assert_eq!(by_kind(MetricKind::Summary), 6);
    assert_eq!(by_kind(MetricKind::GaugeHistogram), 5);
    assert_eq!(by_kind(MetricKind::StateSet), 3);
    assert_eq!(by_kind(MetricKind::Info), 1);
    assert_eq!(by_kind(MetricKind::Gauge), 3);
    assert_eq!(by_kind(MetricKind::Unknown), 2);
    let ex: Vec<_> = samples
        .iter()
        .filter_map(|s| s.exemplar.map(|e| (s.name, e)))
        .collect();
    assert_eq!(ex.len(), 5);
    assert_eq!(
        ex[0].1.labels.get("trace_id"),
        Some(RawValue("4bf92f3577b34da6a3ce929d0e0e4736"))
    );
    assert_eq!(ex[0].1.timestamp_ms, Some(1_714_550_400_123));
    assert_eq!(ex[2].1.timestamp_ms, Some(1_714_550_399_500));
    let jobs = samples
        .iter()
        .find(|s| s.name == "acme_jobs_processed_total")
        .expect("jobs");
    assert_eq!(jobs.timestamp_ms, Some(1_714_550_400_000));
    assert_eq!(
        jobs.exemplar.map(|e| e.timestamp_ms),
        Some(Some(1_714_550_399_999))
    );
    let created = samples
        .iter()
        .find(|s| s.name == "acme_http_request_duration_seconds_created")
        .expect("created");
    assert_eq!(
        (created.family, created.value),
        ("acme_http_request_duration_seconds", 1714460000.5)
    );
    let weird = samples
        .iter()
        .find(|s| s.labels.get("method") == Some(RawValue("POST")))
        .and_then(|s| s.labels.get("handler"))
        .map(|v| v.to_cow().into_owned());
    assert_eq!(weird.as_deref(), Some("/weird,{path}=\"x\""));
    let stateset: Vec<String> = samples
        .iter()
        .filter(|s| s.kind == MetricKind::StateSet)
        .filter_map(|s| {
            s.labels
                .get("acme_feature_flags")
                .map(|v| v.to_cow().into_owned())
        })
        .collect();
    assert_eq!(stateset, ["dark_mode", "new_checkout", "ünïcödé ✓"]);
    let temps: Vec<f64> = samples
        .iter()
        .filter(|s| s.family == "acme_temperature_celsius")
        .map(|s| s.value)
        .collect();
    assert_eq!(temps, [61.5, f64::NEG_INFINITY, f64::INFINITY]);
    assert!(samples.iter().any(|s| s.value.is_nan()));
    // The same payload is not valid Prometheus 0.0.4 text (exemplars).
    assert!(validate(&input, Format::Prometheus).is_err());
}

#[test]
fn malformed_fixtures() {
    let cases: &[(&str, Format, usize, usize)] = &[
        (
            "malformed_unterminated_label.prom",
            Format::Prometheus,
            2,
            26,
        ),
        ("malformed_duplicate_label.prom", Format::Prometheus, 3, 15),
        ("malformed_bad_value.prom", Format::Prometheus, 2, 10),
        ("malformed_bad_utf8.prom", Format::Prometheus, 2, 6),
        ("malformed_om_missing_eof.txt", Format::OpenMetrics, 3, 1),
        ("malformed_om_after_eof.txt", Format::OpenMetrics, 4, 1),
        ("malformed_om_interleaved.txt", Format::OpenMetrics, 5, 1),
        (
            "malformed_om_type_after_samples.txt",
            Format::OpenMetrics,
            2,
            3,
        ),
    ];
    for (name, format, line, column) in cases {
        let e = validate(&fixture(name), *format).expect_err(name);
        assert_eq!((e.line, e.column), (*line, *column), "{name}: {e}");
    }
}

#[test]
fn all_valid_fixtures_validate() {
    for (name, format, count) in [
        ("node_exporter.prom", Format::Prometheus, 507),
        ("kube_state_metrics.prom", Format::Prometheus, 2057),
        ("cadvisor.prom", Format::Prometheus, 3036),
        ("app_misc.prom", Format::Prometheus, 27),
        ("openmetrics_full.txt", Format::OpenMetrics, 38),
    ] {
        let input = fixture(name);
        assert_eq!(validate(&input, format), Ok(count), "{name}");
        if format == Format::Prometheus {
            assert_eq!(Format::sniff(&input), Format::Prometheus, "{name}");
        }
    }
}

// ------------------------------------------------------------------ round trip

#[derive(Debug, Clone, Copy, PartialEq)]
enum GenKind {
    Counter,
    Gauge,
    Untyped,
    Histogram,
    Summary,
}

#[derive(Debug, Clone)]
struct GenRow {
    labels: Vec<(String, String)>,
    value: f64,
    ts_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct GenFamily {
    base: String,
    kind: GenKind,
    declare: bool,
    help: Option<String>,
    rows: Vec<GenRow>,
}

fn value_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => proptest::char::range('a', 'z'),
        1 => Just('\\'),
        1 => Just('"'),
        1 => Just('\n'),
        1 => Just(','),
        1 => Just('='),
        1 => Just('}'),
        1 => Just('{'),
        1 => Just(' '),
        1 => Just('#'),
        2 => any::<char>(),
    ]
}

fn float_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>().prop_filter("finite", |v| v.is_finite()),
        2 => (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
    ]
}

fn gen_row() -> impl Strategy<Value = GenRow> {
    (
        proptest::collection::btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("reserved", |n| n != "le" && n != "quantile"),
            proptest::collection::vec(value_char(), 0..12)
                .prop_map(|v| v.into_iter().collect::<String>()),
            0..5,
        ),
        float_value(),
        proptest::option::of(-10_000_000_000_000i64..10_000_000_000_000),
    )
        .prop_map(|(labels, value, ts_ms)| GenRow {
            labels: labels.into_iter().collect(),
            value,
            ts_ms,
        })
}

fn gen_family() -> impl Strategy<Value = GenFamily> {
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,10}",
        prop_oneof![
            Just(GenKind::Counter),
            Just(GenKind::Gauge),
            Just(GenKind::Untyped),
            Just(GenKind::Histogram),
            Just(GenKind::Summary)
        ],
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9 \\\\\n\"]{0,20}"),
        proptest::collection::vec(gen_row(), 1..4),
    )
        .prop_map(|(base, kind, declare, help, rows)| GenFamily {
            base,
            kind,
            declare,
            help,
            rows,
        })
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn fmt_om_ts(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// What a parsed sample must look like.
#[derive(Debug, Clone, PartialEq)]
struct Expect {
    name: String,
    family: String,
    kind: MetricKind,
    labels: Vec<(String, String)>,
    value: String,
    ts_ms: Option<i64>,
}

/// Renders families in the given format; returns text, expected samples and expected HELP texts.
fn render(families: &[GenFamily], format: Format) -> (String, Vec<Expect>, Vec<(String, String)>) {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    let mut expect = Vec::new();
    let mut helps = Vec::new();
    for (i, f) in families.iter().enumerate() {
        let family = format!("{}_f{i}", f.base);
        // Untyped families without metadata and everything with metadata.
        let declare = f.declare || f.kind != GenKind::Untyped;
        let kind = match f.kind {
            GenKind::Counter => MetricKind::Counter,
            GenKind::Gauge => MetricKind::Gauge,
            GenKind::Untyped => MetricKind::Unknown,
            GenKind::Histogram => MetricKind::Histogram,
            GenKind::Summary => MetricKind::Summary,
        };
        if let Some(h) = &f.help {
            let esc = if om {
                escape_value(h)
            } else {
                h.replace('\\', "\\\\").replace('\n', "\\n")
            };
            out.push_str(&format!("# HELP {family} {esc}\n"));
            let expected = if om {
                esc
            } else {
                esc.trim_matches([' ', '\t']).to_string()
            };
            helps.push((family.clone(), expected));
        }
        if declare {
            let t = match (f.kind, om) {
                (GenKind::Untyped, false) => "untyped",
                (GenKind::Untyped, true) => "unknown",
                _ => kind.as_str(),
            };
            out.push_str(&format!("# TYPE {family} {t}\n"));
        }
        for (j, row) in f.rows.iter().enumerate() {
            let mut variants: Vec<(String, Vec<(String, String)>)> = Vec::new();
            let labels = row.labels.clone();
            match f.kind {
                GenKind::Counter => variants.push((
                    if om {
                        format!("{family}_total")
                    } else {
                        family.clone()
                    },
                    labels,
                )),
                GenKind::Gauge | GenKind::Untyped => variants.push((family.clone(), labels)),
                GenKind::Histogram => {
                    let mut l = labels.clone();
                    l.push(("le".into(), fmt_value([0.5, 1.0, f64::INFINITY][j % 3])));
                    variants.push((format!("{family}_bucket"), l));
                    variants.push((format!("{family}_count"), labels.clone()));
                    variants.push((format!("{family}_sum"), labels));
                }
                GenKind::Summary => {
                    let mut l = labels.clone();
                    l.push(("quantile".into(), "0.99".into()));
                    variants.push((family.clone(), l));
                    variants.push((format!("{family}_count"), labels.clone()));
                    variants.push((format!("{family}_sum"), labels));
                }
            }
            for (name, labels) in variants {
                out.push_str(&name);
                if !labels.is_empty() || j % 2 == 1 {
                    let body: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
                        .collect();
                    out.push('{');
                    out.push_str(&body.join(","));
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&fmt_value(row.value));
                if let Some(ts) = row.ts_ms {
                    out.push(' ');
                    out.push_str(&if om { fmt_om_ts(ts) } else { ts.to_string() });
                }
                out.push('\n');
                expect.push(Expect {
                    name: name.clone(),
                    family: family.clone(),
                    kind,
                    labels,
                    value: fmt_value(row.value),
                    ts_ms: row.ts_ms,
                });
            }
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    (out, expect, helps)
}

impl Expect {
    fn of(s: &Sample<'_>) -> Expect {
        Expect {
            name: s.name.to_string(),
            family: s.family.to_string(),
            kind: s.kind,
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_cow().into_owned()))
                .collect(),
            value: fmt_value(s.value),
            ts_ms: s.timestamp_ms,
        }
    }
}

fn check_round_trip(families: &[GenFamily], format: Format) -> Result<(), TestCaseError> {
    let (text, expect, helps) = render(families, format);
    let mut p = Parser::new(text.as_bytes(), format);
    let mut got = Vec::new();
    for r in p.by_ref() {
        let s = r.map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        got.push(Expect::of(&s));
        prop_assert_eq!(s.labels.len(), s.labels.iter().count());
    }
    prop_assert_eq!(&got, &expect, "{}", text);
    for (family, h) in helps {
        prop_assert_eq!(p.help(&family), Some(h.as_str()));
    }
    // `validate` also holds OpenMetrics to its rules on what samples mean,
    // which generated families do not keep.
    if format == Format::Prometheus {
        prop_assert_eq!(validate(text.as_bytes(), format), Ok(expect.len()));
    }
    Ok(())
}

/// Everything a caller can see of a parse: each sample (with its key) or the error.
type Outcome = (Vec<(Expect, String)>, Option<String>);

/// Parses `text`, passing the n-th key of `hints` (when given) before the n-th sample.
fn outcome(text: &[u8], format: Format, hints: Option<&[String]>) -> (Outcome, usize) {
    let mut p = Parser::new(text, format);
    let (mut samples, mut error, mut as_expected) = (Vec::new(), None, 0);
    loop {
        let hint = hints
            .and_then(|h| h.get(samples.len()))
            .map(|k| ExpectedKey {
                len: k.len() as u32,
                hash: key_hash(k),
            });
        match p.next_sample_expecting(hint) {
            None => break,
            Some(Err(e)) => {
                error = Some(e.to_string());
                break;
            }
            Some(Ok(s)) => {
                as_expected += usize::from(s.as_expected);
                assert_eq!(s.labels.len(), s.labels.iter().count());
                samples.push((Expect::of(&s), s.key.to_string()));
            }
        }
    }
    ((samples, error), as_expected)
}

fn keys_of(text: &str, format: Format) -> Vec<String> {
    outcome(text.as_bytes(), format, None)
        .0
         .0
        .into_iter()
        .map(|(_, key)| key)
        .collect()
}

/// Keys from the payload itself, from another payload, and from the
/// payload one sample off, on the payload and on a copy with one byte
/// changed: the answer (samples, keys, errors) is the same as without keys,
/// and the payload's own keys are all recognised.
fn check_expected_keys(
    families: &[GenFamily],
    others: &[GenFamily],
    flip_at: usize,
    flip_to: u8,
    format: Format,
) -> Result<(), TestCaseError> {
    let (text, ..) = render(families, format);
    let own = keys_of(&text, format);
    let other = keys_of(&render(others, format).0, format);
    let shifted: Vec<String> = own.iter().skip(1).cloned().collect();
    let mut flipped = text.clone().into_bytes();
    let at = flip_at % flipped.len();
    flipped[at] = flip_to;
    for payload in [text.as_bytes(), flipped.as_slice()] {
        let (plain, _) = outcome(payload, format, None);
        for hints in [&own, &other, &shifted] {
            let (got, _) = outcome(payload, format, Some(hints));
            prop_assert_eq!(&got, &plain, "{}", String::from_utf8_lossy(payload));
        }
    }
    let (_, recognised) = outcome(text.as_bytes(), format, Some(&own));
    prop_assert_eq!(recognised, own.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn expected_keys_change_nothing_but_speed(
        families in proptest::collection::vec(gen_family(), 1..6),
        others in proptest::collection::vec(gen_family(), 1..6),
        flip_at in any::<usize>(),
        flip_to in prop_oneof![Just(b' '), Just(b'\t'), Just(b'{'), Just(b'}'), Just(b'"'), Just(b'\n'), Just(b'#'), any::<u8>()],
    ) {
        check_expected_keys(&families, &others, flip_at, flip_to, Format::Prometheus)?;
        check_expected_keys(&families, &others, flip_at, flip_to, Format::OpenMetrics)?;
    }

    #[test]
    fn round_trip_prometheus(families in proptest::collection::vec(gen_family(), 1..6)) {
        check_round_trip(&families, Format::Prometheus)?;
    }

    #[test]
    fn round_trip_openmetrics(families in proptest::collection::vec(gen_family(), 1..6)) {
        check_round_trip(&families, Format::OpenMetrics)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for f in [Format::Prometheus, Format::OpenMetrics] {
            let n = Parser::new(&bytes, f).count();
            prop_assert!(n <= bytes.len() + 1);
            let _ = validate(&bytes, f);
        }
        let _ = Format::sniff(&bytes);
    }

    #[test]
    fn single_label_value_round_trip(v in proptest::collection::vec(value_char(), 0..40)) {
        let v: String = v.into_iter().collect();
        let text = format!("m{{a=\"{}\",b=\"x\"}} 1\n", escape_value(&v));
        let s = parse_all(text.as_bytes(), Format::Prometheus);
        let got = s[0].labels.get("a").map(|r| r.to_cow().into_owned());
        prop_assert_eq!(got.as_deref(), Some(v.as_str()));
        prop_assert_eq!(s[0].labels.get("a").map(|r| r.has_escapes()), Some(v.contains(['\\', '"', '\n'])));
    }
}
