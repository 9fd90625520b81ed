//! `fleetscope check-metrics`, the binary itself, on files: OpenMetrics is
//! checked against its rules on what samples mean as well as its grammar;
//! the Prometheus format, which has no such rules, only against its grammar.

use std::path::Path;
use std::process::{Command, Output};

fn check_metrics(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetscope"))
        .arg("check-metrics")
        .args(args)
        .arg(file)
        .output()
        .expect("run fleetscope check-metrics")
}

#[test]
fn openmetrics_rules_decide_the_exit_status() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exposition/openmetrics_full.txt");
    let valid = check_metrics(&[], &fixture);
    assert!(valid.status.success(), "{valid:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let no_inf_bucket = dir.path().join("no_inf_bucket.txt");
    std::fs::write(
        &no_inf_bucket,
        "# TYPE rpc_seconds histogram\n\
         rpc_seconds_bucket{le=\"0.5\"} 3\n\
         rpc_seconds_count 3\n\
         rpc_seconds_sum 0.9\n\
         # TYPE up gauge\n\
         up 1\n\
         # EOF\n",
    )
    .expect("write");
    let broken = check_metrics(&["--format", "openmetrics"], &no_inf_bucket);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let message = String::from_utf8_lossy(&broken.stderr);
    // Found when the family ends, at the next family's first line.
    assert!(
        message.starts_with("5:1: histogram metric point without a +Inf bucket"),
        "{message}"
    );

    let prometheus = dir.path().join("no_inf_bucket.prom");
    std::fs::write(
        &prometheus,
        "# TYPE rpc_seconds histogram\nrpc_seconds_bucket{le=\"0.5\"} 3\n",
    )
    .expect("write");
    let lenient = check_metrics(&["--format", "prometheus"], &prometheus);
    assert!(lenient.status.success(), "{lenient:?}");
}
