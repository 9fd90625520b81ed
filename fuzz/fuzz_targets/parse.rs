//! Fuzz target for fleetscope's exposition parser (`src/scrape/parse`), compiled
//! on its own: any bytes, both formats.
//!
//! Run from the repository root: `cargo +nightly fuzz run parse`
//! (seed corpus: fuzz/corpus/parse, copied from tests/fixtures/exposition).
//! Checks: no panic, no hang, errors are final, label iteration agrees with
//! the reported counts, what `validate` accepts a scrape reads the same, and
//! in the Prometheus format a scrape is more lenient only for a raw line feed
//! in a label value (OpenMetrics' rules on what samples mean apply to
//! `validate` alone).
#![no_main]

#[allow(dead_code)]
#[path = "../../src/scrape/parse/mod.rs"]
mod parse;

use parse::{validate, Format, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Format::sniff(data);
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let mut parser = Parser::new(data, format);
        let mut samples = 0usize;
        let mut errored = false;
        let mut line_feed_in_value = false;
        while let Some(r) = parser.next_sample() {
            assert!(!errored, "parser yielded an item after an error");
            match r {
                Ok(s) => {
                    samples += 1;
                    assert!(s.line >= 1);
                    let mut n = 0;
                    for (name, value) in s.labels.iter() {
                        n += 1;
                        assert!(!name.is_empty());
                        let _ = value.to_cow();
                        line_feed_in_value |= value.as_str().contains('\n');
                        assert!(s.labels.get(name).is_some());
                    }
                    assert_eq!(n, s.labels.len());
                    if let Some(e) = s.exemplar {
                        assert_eq!(e.labels.iter().count(), e.labels.len());
                    }
                    let _ = parser.help(s.family);
                }
                Err(e) => {
                    assert!(e.line >= 1 && e.column >= 1);
                    errored = true;
                }
            }
            assert!(samples <= data.len() + 1);
        }
        assert!(parser.next_sample().is_none());
        match validate(data, format) {
            Ok(n) => assert!(!errored && n == samples),
            Err(_) if format == Format::Prometheus => assert!(errored || line_feed_in_value),
            Err(_) => {}
        }
    }
});
