use super::*;

fn all(input: &str, format: Format) -> Vec<Sample<'_>> {
    Parser::new(input.as_bytes(), format)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("unexpected error {e} in {input:?}"))
}

fn prom(input: &str) -> Vec<Sample<'_>> {
    all(input, Format::Prometheus)
}

fn om(input: &str) -> Vec<Sample<'_>> {
    all(input, Format::OpenMetrics)
}

/// The first error of a payload held to its format's letter (as `check-metrics`).
fn err(input: &str, format: Format) -> ParseError {
    let mut p = Parser::new(input.as_bytes(), format).validating();
    loop {
        match p.next_sample() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                // Errors are final.
                assert!(p.next_sample().is_none(), "parser continued after {e}");
                assert!(p.next().is_none());
                return e;
            }
            None => panic!("expected an error for {input:?}"),
        }
    }
}

fn labels_of(s: &Sample<'_>) -> Vec<(String, String)> {
    s.labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_cow().into_owned()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn simple_prometheus() {
    let s = prom("# HELP up Whether up.\n# TYPE up gauge\nup{job=\"a\",instance=\"b:9\"} 1\n");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].name, "up");
    assert_eq!(s[0].family, "up");
    assert_eq!(s[0].kind, MetricKind::Gauge);
    assert_eq!(s[0].value, 1.0);
    assert_eq!(s[0].line, 3);
    assert_eq!(s[0].timestamp_ms, None);
    assert!(s[0].exemplar.is_none());
    assert_eq!(
        labels_of(&s[0]),
        pairs(&[("job", "a"), ("instance", "b:9")])
    );
    assert_eq!(s[0].labels.len(), 2);
    assert_eq!(s[0].labels.get("instance"), Some(RawValue("b:9")));
    assert_eq!(s[0].labels.get("nope"), None);
}

#[test]
fn escapes_in_label_values() {
    let input = r#"m{a="back\\slash",b="quo\"te",c="new\nline",d="plain",e="odd\tkeep"} 1"#;
    let s = prom(input);
    let l = s[0].labels;
    assert_eq!(l.get("a"), Some(RawValue(r"back\\slash")));
    assert!(l.get("a").is_some_and(|v| v.has_escapes()));
    assert!(!l.get("d").is_some_and(|v| v.has_escapes()));
    assert_eq!(
        l.get("a").map(|v| v.to_cow().into_owned()).as_deref(),
        Some("back\\slash")
    );
    assert_eq!(
        l.get("b").map(|v| v.to_cow().into_owned()).as_deref(),
        Some("quo\"te")
    );
    assert_eq!(
        l.get("c").map(|v| v.to_cow().into_owned()).as_deref(),
        Some("new\nline")
    );
    assert!(matches!(
        l.get("d").map(|v| v.to_cow()),
        Some(Cow::Borrowed("plain"))
    ));
    // Unknown escapes are kept verbatim in the Prometheus format...
    assert_eq!(
        l.get("e").map(|v| v.to_cow().into_owned()).as_deref(),
        Some("odd\\tkeep")
    );
    // ...and in OpenMetrics, whose ABNF allows a backslash before any
    // character (`BS normal-char`), in label values and HELP text alike.
    let s = om("# HELP m odd\\z help\\\nm{e=\"odd\\tkeep\"} 1\n# EOF\n");
    assert_eq!(
        s[0].labels
            .get("e")
            .map(|v| v.to_cow().into_owned())
            .as_deref(),
        Some("odd\\tkeep")
    );

    let mut buf = String::from(">");
    RawValue(r#"a\\\"b\n"#).unescape_into(&mut buf);
    assert_eq!(buf, ">a\\\"b\n");
    buf.clear();
    RawValue(r"trailing\").unescape_into(&mut buf);
    assert_eq!(buf, "trailing\\");
}

#[test]
fn quoted_delimiters_do_not_split() {
    let input = r#"m{path="/a,b=c}d",q="x\",y=\"z}",r="{}"} 7"#;
    for s in [prom(input), om(&format!("{input}\n# EOF\n"))] {
        assert_eq!(s.len(), 1);
        assert_eq!(
            labels_of(&s[0]),
            pairs(&[("path", "/a,b=c}d"), ("q", "x\",y=\"z}"), ("r", "{}")])
        );
        assert_eq!(s[0].value, 7.0);
    }
}

#[test]
fn unicode_label_values() {
    let s = prom("m{v=\"héllo ✓ 日本\"} 1\n");
    assert_eq!(labels_of(&s[0]), pairs(&[("v", "héllo ✓ 日本")]));
}

#[test]
fn special_floats() {
    let input = "a NaN\nb nan\nc +Inf\nd -Inf\ne Inf\nf inf\ng -infinity\nh +INF\ni 1e3\nj -0.5\nk .5\nl 1.\nm 0.1\nn 123456789012345678\no -0\np 1.7976931348623157e308\nq 5e-324\n";
    let s = prom(input);
    let v: Vec<f64> = s.iter().map(|s| s.value).collect();
    assert!(v[0].is_nan() && v[1].is_nan());
    assert_eq!(v[2], f64::INFINITY);
    assert_eq!(v[3], f64::NEG_INFINITY);
    assert_eq!(v[4], f64::INFINITY);
    assert_eq!(v[5], f64::INFINITY);
    assert_eq!(v[6], f64::NEG_INFINITY);
    assert_eq!(v[7], f64::INFINITY);
    assert_eq!(v[8], 1000.0);
    assert_eq!(v[9], -0.5);
    assert_eq!(v[10], 0.5);
    assert_eq!(v[11], 1.0);
    assert_eq!(v[12], 0.1);
    assert_eq!(v[13], 123456789012345678.0);
    assert!(v[14] == 0.0 && v[14].is_sign_negative());
    assert_eq!(v[15], f64::MAX);
    assert_eq!(v[16], 5e-324);
    // Go's ParseFloat rejects these.
    for bad in [
        "+nan", "-NaN", "1e400", "0x10", "1_000", "1e", ".", "--1", "infx",
    ] {
        let line = format!("m {bad}\n");
        let e = err(&line, Format::Prometheus);
        assert_eq!(e.line, 1, "{bad}: {e}");
        assert_eq!(e.column, 3, "{bad}: {e}");
    }
}

#[test]
fn fast_float_path_matches_std() {
    for s in [
        "0.1",
        "0.2",
        "0.3",
        "1.1",
        "123.456",
        "999999999999999",
        "0.000000000000001",
        "3.14159265358979",
        "12345.6789",
        "-98765.4321",
        "0.30000000000000004",
        "2.2250738585072014e-308",
    ] {
        assert_eq!(parse_f64(s), s.parse::<f64>().ok(), "{s}");
    }
}

#[test]
fn timestamps_prometheus() {
    let s = prom("a 1 1700000000123\nb{x=\"y\"} 2 -5\nc 3   \t\r\n");
    assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(s[1].timestamp_ms, Some(-5));
    assert_eq!(s[2].timestamp_ms, None);
    let e = err("a 1 1.5\n", Format::Prometheus);
    assert_eq!((e.line, e.column), (1, 5));
    let e = err("a 1 99999999999999999999\n", Format::Prometheus);
    assert_eq!((e.line, e.column), (1, 5));
}

#[test]
fn timestamps_openmetrics() {
    let s = om("a 1 1700000000.123\nb 2 1700000000\nc 3 1.5e3\nd 4 -1.2345\ne 5 0.0009\n# EOF\n");
    assert_eq!(s[0].timestamp_ms, Some(1_700_000_000_123));
    assert_eq!(s[1].timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(s[2].timestamp_ms, Some(1_500_000));
    assert_eq!(s[3].timestamp_ms, Some(-1234));
    assert_eq!(s[4].timestamp_ms, Some(0));
    for bad in ["NaN", "+Inf", "1e999", "x", "1.2.3"] {
        let e = err(&format!("a 1 {bad}\n# EOF\n"), Format::OpenMetrics);
        assert_eq!((e.line, e.column), (1, 5), "{bad}: {e}");
    }
    // OpenMetrics sets no range: finite seconds beyond i64 milliseconds
    // are kept, saturated.
    let s = om("a 1 12345678901234567890.1234567890\nb 2 -1e300\n# EOF\n");
    assert_eq!(s[0].timestamp_ms, Some(i64::MAX));
    assert_eq!(s[1].timestamp_ms, Some(i64::MIN));
}

#[test]
fn prometheus_liberal_whitespace_and_comments() {
    let input = "\n  # just a comment\n#no space comment\n# HELPER not help\n\t m { a = \"1\" , b=\"2\", } 3 \t 17  \r\n\nn{}4\n# EOF\n";
    let s = prom(input);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].line, 5);
    assert_eq!(labels_of(&s[0]), pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(s[0].value, 3.0);
    assert_eq!(s[0].timestamp_ms, Some(17));
    assert_eq!(s[1].name, "n");
    assert!(s[1].labels.is_empty());
    assert_eq!(s[1].value, 4.0);
    // Missing final newline is fine.
    assert_eq!(prom("a 1").len(), 1);
    assert_eq!(validate(b"", Format::Prometheus), Ok(0));
}

#[test]
fn help_type_unit() {
    let input = "# HELP foo_seconds Time with \\\\ and \\n.\n# TYPE foo_seconds gauge\n# UNIT foo_seconds seconds\nfoo_seconds 1\n# EOF\n";
    let mut p = Parser::new(input.as_bytes(), Format::OpenMetrics);
    let s = p.next_sample().and_then(|r| r.ok());
    assert!(s.is_some_and(|s| s.kind == MetricKind::Gauge && s.family == "foo_seconds"));
    assert_eq!(p.help("foo_seconds"), Some("Time with \\\\ and \\n."));
    assert_eq!(p.help("other"), None);
    assert!(p.next_sample().is_none());

    let mut p = Parser::new(
        b"# HELP a  spaced help  \n# TYPE a counter\na 1\n",
        Format::Prometheus,
    );
    assert!(p
        .next_sample()
        .is_some_and(|r| r.is_ok_and(|s| s.kind == MetricKind::Counter)));
    assert_eq!(p.help("a"), Some("spaced help"));

    // A scrape's parser reads the same samples and keeps no HELP text.
    let input = b"# HELP a x\n# TYPE a counter\na_total 1\n# HELP b y\n# TYPE b gauge\nb 2\n";
    let mut p = Parser::new(input, Format::Prometheus).scraping(1);
    let kinds: Vec<_> = std::iter::from_fn(|| p.next_sample())
        .map(|r| r.map(|s| (s.name, s.kind, s.value)))
        .collect();
    assert_eq!(
        kinds,
        [
            Ok(("a_total", MetricKind::Counter, 1.0)),
            Ok(("b", MetricKind::Gauge, 2.0))
        ]
    );
    assert_eq!((p.help("a"), p.families_typed()), (None, 2));

    // Prometheus: untyped -> Unknown; UNIT is just a comment.
    let s = prom("# TYPE u untyped\n# UNIT u seconds\nu 1\n");
    assert_eq!(s[0].kind, MetricKind::Unknown);
    // Prometheus: invalid type is an error, as in Go.
    let e = err("# TYPE u stateset\nu 1\n", Format::Prometheus);
    assert_eq!((e.line, e.column), (1, 10));
    // OpenMetrics: unit must be a suffix of the family name.
    let e = err(
        "# TYPE foo gauge\n# UNIT foo seconds\nfoo 1\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!((e.line, e.column), (2, 12));
    // OpenMetrics: duplicate TYPE.
    let e = err(
        "# TYPE foo gauge\n# TYPE foo gauge\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!((e.line, e.column), (2, 3));
    assert_eq!(MetricKind::GaugeHistogram.as_str(), "gaugehistogram");
    assert_eq!(MetricKind::Unknown.as_str(), "unknown");
}

#[test]
fn openmetrics_type_after_samples_is_error() {
    let e = err(
        "# TYPE a gauge\na 1\n# TYPE a gauge\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    let e = err("# HELP a x\na 1\n# HELP a y\n# EOF\n", Format::OpenMetrics);
    assert_eq!(e.line, 3);
    // Interleaving families.
    let e = err("a 1\nb 1\na 2\n# EOF\n", Format::OpenMetrics);
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    // Prometheus is liberal about all of that.
    assert_eq!(
        prom("# TYPE a gauge\na 1\n# TYPE a gauge\na 2\nb 1\na 3\n").len(),
        4
    );
}

#[test]
fn eof_rules() {
    assert_eq!(validate(b"a 1\n# EOF\n", Format::OpenMetrics), Ok(1));
    assert_eq!(validate(b"a 1\n# EOF", Format::OpenMetrics), Ok(1));
    assert_eq!(validate(b"# EOF\n", Format::OpenMetrics), Ok(0));
    let e = validate(b"a 1\n", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (2, 1), "{e}");
    let e = validate(b"a 1", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (1, 4), "{e}");
    let e = validate(b"", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (1, 1));
    let e = validate(b"a 1\n# EOF\nb 2\n", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    let e = validate(b"a 1\n# EOF\n\n", Format::OpenMetrics).unwrap_err();
    assert_eq!(e.line, 3);
    let e = validate(b"a 1\n\n# EOF\n", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (2, 1));
    let e = validate(b"# random comment\n# EOF\n", Format::OpenMetrics).unwrap_err();
    assert_eq!((e.line, e.column), (1, 3));
    // In Prometheus text "# EOF" is just a comment.
    assert_eq!(validate(b"a 1\n# EOF\nb 2\n", Format::Prometheus), Ok(2));
}

#[test]
fn exemplars() {
    let input = "# TYPE foo histogram\nfoo_bucket{le=\"0.1\"} 8 # {trace_id=\"KOO5S4vxi0o\"} 0.067 1520879607.789\nfoo_bucket{le=\"+Inf\"} 9 1520879608 # {} 2\nfoo_count 9\nfoo_sum 3.5\n# TYPE c counter\nc_total 5 # {trace_id=\"x\",span=\"a,b\"} 1.0\n# EOF\n";
    let s = om(input);
    assert_eq!(s.len(), 5);
    let ex = s[0].exemplar.expect("exemplar");
    assert_eq!(ex.value, 0.067);
    assert_eq!(ex.timestamp_ms, Some(1_520_879_607_789));
    assert_eq!(ex.labels.get("trace_id"), Some(RawValue("KOO5S4vxi0o")));
    assert_eq!(s[0].timestamp_ms, None);
    let ex = s[1].exemplar.expect("exemplar");
    assert_eq!(s[1].timestamp_ms, Some(1_520_879_608_000));
    assert!(ex.labels.is_empty());
    assert_eq!(ex.value, 2.0);
    assert_eq!(ex.timestamp_ms, None);
    assert!(s[2].exemplar.is_none());
    let ex = s[4].exemplar.expect("exemplar");
    assert_eq!(
        labels_of(&Sample {
            labels: ex.labels,
            ..s[4]
        }),
        pairs(&[("trace_id", "x"), ("span", "a,b")])
    );

    // Exemplar on a gauge: not allowed.
    let e = err(
        "# TYPE g gauge\ng 1 # {a=\"b\"} 1\n# EOF\n",
        Format::OpenMetrics,
    );
    assert_eq!((e.line, e.column), (2, 5), "{e}");
    // Exemplar labels longer than 128 code points.
    let long = "x".repeat(130);
    let e = err(
        &format!("# TYPE c counter\nc_total 1 # {{a=\"{long}\"}} 1\n# EOF\n"),
        Format::OpenMetrics,
    );
    assert_eq!((e.line, e.column), (2, 13), "{e}");
    // Exactly 128 is fine (1 + 127), and multibyte characters count once.
    let ok = "é".repeat(127);
    assert_eq!(
        validate(
            format!("# TYPE c counter\nc_total 1 # {{a=\"{ok}\"}} 1\n# EOF\n").as_bytes(),
            Format::OpenMetrics
        ),
        Ok(1)
    );
    // Exemplars are not part of the Prometheus format.
    let e = err("c_total 1 # {a=\"b\"} 1\n", Format::Prometheus);
    assert_eq!((e.line, e.column), (1, 11));
}

#[test]
fn histogram_and_summary_families_prometheus() {
    let input = "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\nrpc_seconds_bucket{le=\"0.5\"} 1\nrpc_seconds_bucket{le=\"+Inf\"} 2\nrpc_seconds_sum 0.7\nrpc_seconds_count 2\n# TYPE go_gc_duration_seconds summary\ngo_gc_duration_seconds{quantile=\"0.5\"} 1e-05\ngo_gc_duration_seconds_sum 0.1\ngo_gc_duration_seconds_count 3\n# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 10\nloose_metric 1\nrpc_seconds_count 5\n";
    let s = prom(input);
    let fam: Vec<(&str, &str, MetricKind)> = s.iter().map(|s| (s.name, s.family, s.kind)).collect();
    assert_eq!(
        fam,
        vec![
            ("rpc_seconds_bucket", "rpc_seconds", MetricKind::Histogram),
            ("rpc_seconds_bucket", "rpc_seconds", MetricKind::Histogram),
            ("rpc_seconds_sum", "rpc_seconds", MetricKind::Histogram),
            ("rpc_seconds_count", "rpc_seconds", MetricKind::Histogram),
            (
                "go_gc_duration_seconds",
                "go_gc_duration_seconds",
                MetricKind::Summary
            ),
            (
                "go_gc_duration_seconds_sum",
                "go_gc_duration_seconds",
                MetricKind::Summary
            ),
            (
                "go_gc_duration_seconds_count",
                "go_gc_duration_seconds",
                MetricKind::Summary
            ),
            (
                "http_requests_total",
                "http_requests_total",
                MetricKind::Counter
            ),
            ("loose_metric", "loose_metric", MetricKind::Unknown),
            // Out of order, but its TYPE was declared earlier.
            ("rpc_seconds_count", "rpc_seconds", MetricKind::Histogram),
        ]
    );
    assert_eq!(s[4].value, 1e-05);
}

#[test]
fn openmetrics_families() {
    let input = "# TYPE a counter\n# UNIT a_seconds seconds\n";
    let e = err(input, Format::OpenMetrics);
    assert_eq!(e.line, 3, "{e}"); // new family a_seconds, then missing EOF
    let input = "# TYPE rq histogram\nrq_bucket{le=\"1\"} 1\nrq_bucket{le=\"+Inf\"} 1\nrq_count 1\nrq_sum 0.5\nrq_created 1.7e9\n# TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 3\ngh_gcount 3\ngh_gsum 2\n# TYPE s summary\ns{quantile=\"0.9\"} 1\ns_count 1\ns_sum 1\ns_created 1\n# TYPE i info\ni_info{version=\"1\"} 1\n# TYPE st stateset\nst{st=\"a\"} 1\nst{st=\"b\"} 0\n# TYPE c counter\nc_total 1\nc_created 1\nplain 3\n# EOF\n";
    let s = om(input);
    let fam: Vec<(&str, MetricKind)> = s.iter().map(|s| (s.family, s.kind)).collect();
    use MetricKind::*;
    assert_eq!(
        fam,
        vec![
            ("rq", Histogram),
            ("rq", Histogram),
            ("rq", Histogram),
            ("rq", Histogram),
            ("rq", Histogram),
            ("gh", GaugeHistogram),
            ("gh", GaugeHistogram),
            ("gh", GaugeHistogram),
            ("s", Summary),
            ("s", Summary),
            ("s", Summary),
            ("s", Summary),
            ("i", Info),
            ("st", StateSet),
            ("st", StateSet),
            ("c", Counter),
            ("c", Counter),
            ("plain", Unknown),
        ]
    );
    // A counter declared under its `_total` name, or a sample without
    // `_total`: scraped (as Prometheus does), not valid OpenMetrics.
    for input in [
        "# TYPE c_total counter\nc_total 1\n# EOF\n",
        "# TYPE c counter\nc 1\n# EOF\n",
    ] {
        assert_eq!(om(input)[0].kind, Counter, "{input}");
        let e = err(input, Format::OpenMetrics);
        assert_eq!((e.line, e.column), (2, 1), "{e}");
    }
}

/// What Prometheus 2.42 scrapes from OpenMetrics text against its letter
/// (compared case by case, 2026-12-03): the scrape path reads it too; a
/// validator does not.
#[test]
fn openmetrics_is_read_as_prometheus_scrapes_it() {
    let long = "x".repeat(130);
    let cases = [
        "a 1\nb 1\na{x=\"1\"} 2\n# EOF\n".to_string(),
        "g 1\n# TYPE g gauge\n# EOF\n".to_string(),
        "# TYPE g gauge\n# TYPE g counter\ng 1\n# EOF\n".to_string(),
        "# HELP g x\n# HELP g y\ng 1\n# EOF\n".to_string(),
        "# TYPE h histogram\nh 1\n# EOF\n".to_string(),
        format!("# TYPE c counter\nc_total 1 # {{trace_id=\"{long}\"}} 1\n# EOF\n"),
    ];
    for input in &cases {
        assert!(!om(input).is_empty(), "{input}");
        assert!(
            validate(input.as_bytes(), Format::OpenMetrics).is_err(),
            "{input}"
        );
    }
    // The first TYPE stands.
    assert_eq!(om(&cases[2])[0].kind, MetricKind::Gauge);
}

/// Prometheus refuses a second name given as a label; so does the parser,
/// rather than store a series known by two names. A HELP line naming no
/// valid metric is ignored, as Prometheus does.
#[test]
fn name_as_a_label_is_refused_and_odd_help_ignored() {
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let e = err("foo{__name__=\"bar\"} 1\n# EOF\n", format);
        assert!(e.reason.contains("__name__"), "{e}");
    }
    assert_eq!(prom("# HELP foo-bar some text\nfoo 1\n").len(), 1);
}

/// As Prometheus scrapes it (its parser takes the comma between labels as
/// optional); OpenMetrics requires it.
#[test]
fn prometheus_labels_without_commas() {
    let s = prom("foo{a=\"1\" b=\"2\"\tc=\"3\"d=\"4\"} 1\n");
    assert_eq!(
        labels_of(&s[0]),
        pairs(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
    );
    assert_eq!(s[0].labels.len(), 4);
    let e = err("foo{a=\"1\" =\"2\"} 1\n", Format::Prometheus);
    assert!(e.reason.contains("expected ','"), "{e}");
    let e = err("foo{a=\"1\" b=\"2\"} 1\n# EOF\n", Format::OpenMetrics);
    assert!(e.reason.contains("expected ','"), "{e}");
}

#[test]
fn malformed_line_and_column() {
    let cases: &[(&str, Format, usize, usize)] = &[
        // bad metric name start
        ("ok 1\n1bad 2\n", Format::Prometheus, 2, 1),
        // invalid char inside name
        ("a-b 1\n", Format::Prometheus, 1, 2),
        // bad label name
        ("m{1a=\"x\"} 1\n", Format::Prometheus, 1, 3),
        // missing '='
        ("m{a \"x\"} 1\n", Format::Prometheus, 1, 5),
        // unquoted label value
        ("m{a=x} 1\n", Format::Prometheus, 1, 5),
        // unterminated value (column of the opening quote)
        ("m{a=\"x} 1\n", Format::Prometheus, 1, 5),
        // missing value
        ("\n\nm{a=\"x\"}\n", Format::Prometheus, 3, 9),
        // garbage value
        ("m 12abc\n", Format::Prometheus, 1, 3),
        // trailing junk after timestamp
        ("m 1 2 3\n", Format::Prometheus, 1, 7),
        // duplicate label
        ("m{a=\"1\",b=\"2\",a=\"3\"} 1\n", Format::Prometheus, 1, 15),
        // missing comma
        ("m{a=\"1\" b=\"2\"} 1\n# EOF\n", Format::OpenMetrics, 1, 8),
        // unterminated label set
        ("m{a=\"1\"\n", Format::Prometheus, 1, 8),
        // TYPE with bad name
        ("# TYPE 9x gauge\n", Format::Prometheus, 1, 8),
        // OpenMetrics: two spaces
        ("m  1\n# EOF\n", Format::OpenMetrics, 1, 3),
        // OpenMetrics: trailing comma (column of the comma)
        ("m{a=\"1\",} 1\n# EOF\n", Format::OpenMetrics, 1, 8),
        // OpenMetrics: space in label set
        ("m{a=\"1\", b=\"2\"} 1\n# EOF\n", Format::OpenMetrics, 1, 9),
        // OpenMetrics: trailing space
        ("m 1 \n# EOF\n", Format::OpenMetrics, 1, 5),
        // OpenMetrics: unknown type
        ("# TYPE m untyped\n# EOF\n", Format::OpenMetrics, 1, 10),
    ];
    for (input, format, line, col) in cases {
        let e = err(input, *format);
        assert_eq!((e.line, e.column), (*line, *col), "{input:?}: {e}");
        assert!(!e.reason.is_empty());
        assert_eq!(
            e.to_string(),
            format!("{}:{}: {}", e.line, e.column, e.reason)
        );
    }
    let bad_utf8 = b"ok 1\nm{a=\"\xff\xfe\"} 1\n";
    let e = validate(bad_utf8, Format::Prometheus).unwrap_err();
    assert_eq!((e.line, e.column), (2, 6), "{e}");
    assert!(e.reason.contains("UTF-8"));
    // Invalid UTF-8 in a plain comment does not matter in Prometheus text.
    assert_eq!(validate(b"# \xff\xff\na 1\n", Format::Prometheus), Ok(1));
}

#[test]
fn many_labels_duplicate_detection() {
    let mut line = String::from("m{");
    for i in 0..40 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    line.push_str("l7=\"again\"} 1\n");
    let e = err(&line, Format::Prometheus);
    assert_eq!(e.line, 1);
    assert_eq!(
        e.column,
        line.find("l7=\"again").map_or(0, |p| p + 1),
        "{e}"
    );
    let ok: String = (0..40)
        .map(|i| format!("l{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(",");
    let s = format!("m{{{ok}}} 1\n");
    let v = prom(&s);
    assert_eq!(v[0].labels.len(), 40);
    assert_eq!(v[0].labels.iter().count(), 40);
    assert_eq!(v[0].labels.get("l39"), Some(RawValue("v")));
}

#[test]
fn format_detection() {
    // Parameters it cannot read: not taken for OpenMetrics (as Prometheus).
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset"),
        Format::Prometheus
    );
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type(" Application/OpenMetrics-Text"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4"),
        Format::Prometheus
    );
    assert_eq!(Format::from_content_type(""), Format::Prometheus);
    assert_eq!(Format::sniff(b"a 1\n# EOF\n\n"), Format::OpenMetrics);
    assert_eq!(Format::sniff(b"a 1\n# EOF"), Format::OpenMetrics);
    assert_eq!(Format::sniff(b"# EOF\na 1\n"), Format::Prometheus);
    assert_eq!(Format::sniff(b""), Format::Prometheus);
}

#[test]
fn garbage_never_panics() {
    // A cheap deterministic fuzz over mutated snippets; the real fuzzer lives in fuzz/.
    let seeds: &[&[u8]] = &[
        b"# TYPE a histogram\na_bucket{le=\"1\"} 1 # {t=\"x\"} 1 1.5\n# EOF\n",
        b"m{a=\"\\\\\\\"\",b=\"}\"} NaN 12\n",
        b"# HELP x \\n\n# UNIT x_s s\nx_s 1\n",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for seed in seeds {
        for _ in 0..3000 {
            let mut v = seed.to_vec();
            for _ in 0..(next() % 4 + 1) {
                let len = v.len().max(1) as u64;
                let pos = (next() % len) as usize;
                const ALPHABET: &[u8] = b"{}\",=\\ \n#\xff0aE+-.";
                let byte = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
                match next() % 3 {
                    0 if pos < v.len() => v[pos] = byte,
                    1 => v.insert(pos.min(v.len()), byte),
                    _ if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {}
                }
            }
            for f in [Format::Prometheus, Format::OpenMetrics] {
                let mut n = 0;
                for r in Parser::new(&v, f) {
                    n += 1;
                    if let Ok(s) = r {
                        for (name, val) in s.labels.iter() {
                            assert!(!name.is_empty());
                            let _ = val.to_cow();
                        }
                    }
                    assert!(n <= v.len() + 1);
                }
            }
        }
    }
}

/// Sorted label names skip the duplicate check until the order breaks; a
/// repeat right after its twin, or far behind it, must still be caught.
#[test]
fn duplicates_after_sorted_names_are_caught() {
    let e = err("m{a=\"1\",b=\"2\",b=\"3\"} 1\n", Format::Prometheus);
    assert_eq!(e.column, 15, "{e}");
    let names: Vec<String> = (0..30).map(|i| format!("n{i:02}")).collect();
    let mut line = String::from("m{");
    for n in &names {
        line.push_str(&format!("{n}=\"v\","));
    }
    line.push_str("n05=\"again\"} 1\n");
    let e = err(&line, Format::Prometheus);
    assert_eq!(
        e.column,
        line.find("n05=\"again").map_or(0, |p| p + 1),
        "{e}"
    );
    let sorted = format!(
        "m{{{}}} 1\n",
        names
            .iter()
            .map(|n| format!("{n}=\"v\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(prom(&sorted)[0].labels.len(), 30);
}

/// Parses `input` giving the parser, for the n-th sample, the key of `hints[n]`.
fn hinted<'a>(input: &'a str, format: Format, hints: &[&str]) -> Vec<Sample<'a>> {
    let mut p = Parser::new(input.as_bytes(), format);
    let mut out = Vec::new();
    loop {
        let hint = hints.get(out.len()).map(|k| ExpectedKey {
            len: k.len() as u32,
            hash: key_hash(k),
        });
        match p.next_sample_expecting(hint) {
            Some(s) => out.push(s.unwrap_or_else(|e| panic!("{e} in {input:?}"))),
            None => return out,
        }
    }
}

#[test]
fn expected_key_skips_the_label_scan_and_gives_the_same_sample() {
    let text = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",path=\"/a,b}\"} 7 1700000000000\nup 1\n";
    let plain = prom(text);
    let keys: Vec<&str> = plain.iter().map(|s| s.key).collect();
    assert_eq!(
        keys,
        ["http_requests_total{code=\"200\",path=\"/a,b}\"}", "up"]
    );
    let got = hinted(text, Format::Prometheus, &keys);
    assert!(got.iter().all(|s| s.as_expected));
    assert!(plain.iter().all(|s| !s.as_expected));
    for (a, b) in plain.iter().zip(&got) {
        assert_eq!(
            (a.name, a.family, a.kind, a.key),
            (b.name, b.family, b.kind, b.key)
        );
        assert_eq!((a.value, a.timestamp_ms), (b.value, b.timestamp_ms));
        assert_eq!(labels_of(a), labels_of(b));
        assert_eq!(a.labels.len(), b.labels.len());
    }
}

#[test]
fn a_different_key_of_the_same_length_takes_the_full_path() {
    let got = hinted("m{a=\"2\"} 1\n", Format::Prometheus, &["m{a=\"1\"}"]);
    assert!(!got[0].as_expected);
    assert_eq!(labels_of(&got[0]), pairs(&[("a", "2")]));
}

#[test]
fn a_label_less_key_does_not_swallow_labels_that_follow_it() {
    // Text format allows blanks between the name and `{`.
    let got = hinted("m {a=\"1\"} 5\n", Format::Prometheus, &["m"]);
    assert!(!got[0].as_expected);
    assert_eq!(got[0].key, "m {a=\"1\"}");
    assert_eq!(labels_of(&got[0]), pairs(&[("a", "1")]));
    assert_eq!(got[0].value, 5.0);
}

#[test]
fn an_expected_key_does_not_excuse_the_rest_of_the_line() {
    let key = ExpectedKey {
        len: 9,
        hash: key_hash("m{a=\"1\"}"),
    };
    for (line, format) in [
        ("m{a=\"1\"} x1\n", Format::Prometheus),
        ("m{a=\"1\"}\t1\n# EOF\n", Format::OpenMetrics),
    ] {
        let mut p = Parser::new(line.as_bytes(), format);
        assert!(
            matches!(p.next_sample_expecting(Some(key)), Some(Err(_))),
            "{line:?}"
        );
    }
}

/// The first error of a scrape (no OpenMetrics rules, as the scrape path reads).
fn scrape_err(input: &str, format: Format) -> ParseError {
    Parser::new(input.as_bytes(), format)
        .find_map(Result::err)
        .unwrap_or_else(|| panic!("expected an error for {input:?}"))
}

#[test]
fn quoted_names_of_text_1_0_0() {
    let text = "# HELP \"http.server.duration\" Time taken.\n\
        # TYPE \"http.server.duration\" histogram\n\
        {\"http.server.duration_bucket\",\"url.scheme\"=\"https\",le=\"0.5\"} 3\n\
        {le=\"+Inf\",\"http.server.duration_bucket\",\"url.scheme\"=\"https\"} 4\n\
        {\"http.server.duration_count\"} 4\n\
        plain{\"k8s.pod.name\"=\"api-1\"} 1\n\
        {\"legacy_ok\"} 2\n";
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let input = match format {
            Format::Prometheus => text.to_string(),
            Format::OpenMetrics => format!("{text}# EOF\n"),
        };
        let s = all(&input, format);
        let names: Vec<(&str, &str, MetricKind)> =
            s.iter().map(|x| (x.name, x.family, x.kind)).collect();
        let hist = ("http.server.duration", MetricKind::Histogram);
        assert_eq!(
            names,
            [
                ("http.server.duration_bucket", hist.0, hist.1),
                ("http.server.duration_bucket", hist.0, hist.1),
                ("http.server.duration_count", hist.0, hist.1),
                ("plain", "plain", MetricKind::Unknown),
                ("legacy_ok", "legacy_ok", MetricKind::Unknown),
            ],
            "{format:?}"
        );
        assert_eq!(
            labels_of(&s[0]),
            pairs(&[("url.scheme", "https"), ("le", "0.5")])
        );
        assert_eq!(
            labels_of(&s[1]),
            pairs(&[("le", "+Inf"), ("url.scheme", "https")])
        );
        assert_eq!(s[1].labels.len(), 2);
        assert!(s[2].labels.is_empty());
        assert_eq!(labels_of(&s[3]), pairs(&[("k8s.pod.name", "api-1")]));
        assert_eq!(
            s[0].key,
            "{\"http.server.duration_bucket\",\"url.scheme\"=\"https\",le=\"0.5\"}"
        );
    }
}

#[test]
fn quoted_names_are_refused_where_they_cannot_be_read() {
    let cases = [
        ("{\"a\",\"b\"} 1\n", "metric name is already set"),
        ("m{\"b\"} 1\n", "metric name is already set"),
        ("{a=\"1\"} 1\n", "expected metric name"),
        (
            "{\"a\\\"b\"} 1\n",
            "escape sequences in quoted names are not supported",
        ),
        ("{\"\"} 1\n", "empty quoted name"),
        ("{\"a} 1\n", "unterminated quoted name"),
        (
            "{\"__name__\"=\"x\",\"a\"} 1\n",
            "label name __name__ is not allowed",
        ),
        ("# TYPE \"a\\\\b\" gauge\n", "escape sequences"),
    ];
    for (input, want) in cases {
        let e = scrape_err(input, Format::Prometheus);
        assert!(e.reason.contains(want), "{input:?}: {e}");
    }
    let e = scrape_err("{\"m\"} 1 # {\"trace.id\"} 1\n# EOF\n", Format::OpenMetrics);
    assert!(e.reason.contains("exemplar"), "{e}");
    // Validation reads them too, as Prometheus 3 and the Python client do,
    // with OpenMetrics' rules on what the samples mean.
    let valid = "# TYPE \"a.b\" counter\n{\"a.b_total\",\"c.d\"=\"1\"} 1\n# EOF\n";
    assert_eq!(validate(valid.as_bytes(), Format::OpenMetrics), Ok(1));
    let e = err(
        "# TYPE \"a.b\" counter\n{\"a.b_total\"} -1\n# EOF\n",
        Format::OpenMetrics,
    );
    assert!(e.reason.contains("negative"), "{e}");
}

#[test]
fn quoted_label_names_take_the_expected_key_path_too() {
    let text = "m{\"k8s.pod.name\"=\"api-1\",zone=\"a\"} 1\n{\"dotted.m\",x=\"1\"} 2\n";
    let plain = prom(text);
    let keys: Vec<&str> = plain.iter().map(|s| s.key).collect();
    let got = hinted(text, Format::Prometheus, &keys);
    assert!(got[0].as_expected);
    for (a, b) in plain.iter().zip(&got) {
        assert_eq!((a.name, a.key, a.value), (b.name, b.key, b.value));
        assert_eq!(labels_of(a), labels_of(b));
        assert_eq!(a.labels.len(), b.labels.len());
    }
    assert_eq!(got[1].name, "dotted.m");
}

#[test]
fn a_quoted_label_name_may_follow_without_a_comma_in_text_format() {
    // As Prometheus' lexer reads it; OpenMetrics has no such leniency.
    let s = prom("m{a=\"1\" \"b.c\"=\"2\"} 1\n");
    assert_eq!(labels_of(&s[0]), pairs(&[("a", "1"), ("b.c", "2")]));
    let e = scrape_err("m{a=\"1\"\"b.c\"=\"2\"} 1\n# EOF\n", Format::OpenMetrics);
    assert!(e.reason.contains("expected ','"), "{e}");
}

/// Prometheus (2.42, compared on 2026-12-03) keeps a sample whose label
/// value holds a raw line feed, and the samples after it; a scrape does too.
#[test]
fn raw_line_feed_in_a_label_value_continues_the_sample_when_scraping() {
    let s = prom("foo{a=\"x\ny\",b=\"z\"} 1\nbar 2\n");
    assert_eq!(s.len(), 2);
    assert_eq!(labels_of(&s[0]), pairs(&[("a", "x\ny"), ("b", "z")]));
    assert_eq!((s[0].value, s[0].line), (1.0, 1));
    assert_eq!((s[1].name, s[1].value, s[1].line), ("bar", 2.0, 3));
    // Several line feeds, in more than one value, with escapes beside them.
    let s = prom("m{a=\"1\n2\n\\\"3\",b=\"\n\"} 4 1000\r\n");
    assert_eq!(labels_of(&s[0]), pairs(&[("a", "1\n2\n\"3"), ("b", "\n")]));
    assert_eq!(s[0].timestamp_ms, Some(1000));
    // Lines after it keep their numbers in errors.
    let mut p = Parser::new(b"a{x=\"1\n2\"} 1\nb 2\nc{ 3\n", Format::Prometheus);
    assert_eq!(p.next_sample().map(|r| r.is_ok()), Some(true));
    assert_eq!(p.next_sample().map(|r| r.is_ok()), Some(true));
    let e = p
        .next_sample()
        .and_then(Result::err)
        .expect("error on line 4");
    assert_eq!(e.line, 4);
}

#[test]
fn line_feeds_in_label_values_are_refused_where_prometheus_refuses_them() {
    // A backslash does not escape a line feed.
    let e = scrape_err("foo{a=\"x\\\ny\"} 1\n", Format::Prometheus);
    assert_eq!(
        (e.line, e.column, e.reason.as_str()),
        (1, 7, "unterminated label value")
    );
    // OpenMetrics' values never hold one.
    let e = scrape_err("g{a=\"x\ny\"} 1\n# EOF\n", Format::OpenMetrics);
    assert_eq!((e.line, e.column), (1, 5));
    // A quote never closed is an error on the line it opened on, after one
    // scan of the rest of the payload.
    let unclosed = format!("ok 1\nm{{a=\"x\n{}", "n 1\n".repeat(100_000));
    let e = scrape_err(&unclosed, Format::Prometheus);
    assert_eq!(
        (e.line, e.column, e.reason.as_str()),
        (2, 5, "unterminated label value")
    );
    // Validating holds the format to its letter, as promtool does, with or
    // without the samples printed (check-metrics --print).
    let raw = "foo{a=\"x\ny\"} 1\n";
    let e = validate(raw.as_bytes(), Format::Prometheus).expect_err("raw line feed");
    assert_eq!((e.line, e.column), (1, 7));
    let e = err(raw, Format::Prometheus);
    assert_eq!((e.line, e.column), (1, 7));
    let mut printed = Vec::new();
    let e =
        crate::check::check_metrics(raw.as_bytes(), Some(Format::Prometheus), Some(&mut printed))
            .expect_err("raw line feed, printing");
    assert_eq!((e.line, e.column, printed.len()), (1, 7, 0));
    // Names never hold one, quoted or not, even in a sample read across
    // line feeds for its values.
    let e = scrape_err("{a=\"\n\",\"na\nme\"} 1\n", Format::Prometheus);
    assert_eq!((e.line, e.reason.as_str()), (2, "unterminated quoted name"));
    let e = scrape_err("m{z=\"\n\",\"a\nb\"=\"1\"} 1\n", Format::Prometheus);
    assert_eq!((e.line, e.reason.as_str()), (2, "unterminated quoted name"));
}

/// An error after a line feed in a value names the line and column its
/// byte is on.
#[test]
fn errors_in_a_sample_across_line_feeds_name_their_own_line() {
    let e = scrape_err("ok 1\nm{a=\"x\ny\"} bad\n", Format::Prometheus);
    assert_eq!((e.line, e.column), (3, 5), "{e}");
    let e = scrape_err("m{a=\"x\ny\",b=\"1\n\" 1\n", Format::Prometheus);
    assert_eq!(e.line, 3, "{e}");
    let mut bad_utf8 = b"m{a=\"x\n".to_vec();
    bad_utf8.extend_from_slice(b"y\xff\"} 1\n");
    let e = Parser::new(&bad_utf8, Format::Prometheus)
        .find_map(Result::err)
        .expect("invalid UTF-8");
    assert_eq!(
        (e.line, e.column, e.reason.as_str()),
        (2, 2, "invalid UTF-8")
    );
}

#[test]
fn an_escaped_backslash_before_a_raw_line_feed_is_a_value_when_scraping() {
    // `\\` is a backslash; the line feed after it is raw, as Prometheus' lexer reads it.
    let s = prom("m{a=\"x\\\\\ny\"} 1\n");
    assert_eq!(labels_of(&s[0]), pairs(&[("a", "x\\\ny")]));
}

/// check-metrics holds the Prometheus text format to what promtool (the
/// text parser of client_golang) refuses beyond the grammar; a scrape
/// reads the same payloads, as Prometheus does.
#[test]
fn validating_the_text_format_refuses_what_promtool_refuses() {
    for (payload, line, reason) in [
        (
            "# TYPE a gauge\n# TYPE a counter\na 1\n",
            2,
            "second TYPE line for metric name a",
        ),
        (
            "# HELP a one\n# HELP a two\na 1\n",
            2,
            "second HELP line for metric name a",
        ),
        (
            "a 1\n# TYPE a gauge\n",
            2,
            "TYPE line for metric name a after its samples (line 1)",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"x\"} 1\nh_count 1\nh_sum 1\n",
            2,
            "expected a number as the value of the \"le\" label, got \"x\"",
        ),
        (
            "# TYPE s summary\ns{quantile=\"high\"} 1\ns_count 1\ns_sum 1\n",
            2,
            "expected a number as the value of the \"quantile\" label, got \"high\"",
        ),
        (
            "# TYPE \"my.metric\" gauge\n#  TYPE   \"my.metric\" gauge\n{\"my.metric\"} 1\n",
            2,
            "second TYPE line for metric name my.metric",
        ),
    ] {
        let e = validate(payload.as_bytes(), Format::Prometheus).expect_err(payload);
        assert_eq!((e.line, e.reason.as_str()), (line, reason), "{payload}");
        let mut printed = Vec::new();
        let e = crate::check::check_metrics(
            payload.as_bytes(),
            Some(Format::Prometheus),
            Some(&mut printed),
        )
        .expect_err(payload);
        assert_eq!(e.reason, reason, "{payload}");
        assert!(Parser::new(payload.as_bytes(), Format::Prometheus).all(|s| s.is_ok()));
    }
    // What promtool accepts stays accepted: a histogram's family typed
    // after an untyped sample of another name, +Inf buckets, a HELP after
    // its samples, a comment that only looks like metadata.
    for payload in [
        "h_bucket{le=\"1\"} 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n",
        "a 1\n# HELP a late help\n",
        "# TYPEa gauge\n# TYPE a gauge\n# HELPER text\na 1\n",
    ] {
        validate(payload.as_bytes(), Format::Prometheus).expect(payload);
    }
}
