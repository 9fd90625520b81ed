//! Fuzz target for fleetscope's exposition parser (`src/scrape/parse`), compiled
//! on its own: any bytes, both formats.
//!
//! Run from the repository root: `cargo +nightly fuzz run parse`
//! (seed corpus: fuzz/corpus/parse, copied from tests/fixtures/exposition).
//! Checks: no panic, no hang, errors are final, label iteration agrees with
//! the reported counts, and what `validate` accepts a scrape reads the same
//! (a scrape is the more lenient of the two: OpenMetrics' rules on what
//! samples mean, raw line feeds in text format label values).
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
        if let Ok(n) = validate(data, format) {
            assert!(!errored && n == samples);
        }
    }
});
