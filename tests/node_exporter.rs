//! Real Debian `prometheus-node-exporter` scraped by the real `fleetscope`
//! binary; the rollups in the DuckDB file are checked against raw scrapes the
//! test takes itself before and after.

mod common;

use std::time::Duration;

use common::*;
use fleetscope::scrape::parse::{Format, Parser};

const CPU_IDLE: (&str, &str) = ("0", "idle");

async fn raw_cpu_idle(url: &str) -> (f64, usize) {
    let body = http()
        .get(url)
        .send()
        .await
        .expect("scrape")
        .bytes()
        .await
        .expect("body");
    let mut value = None;
    let mut samples = 0;
    for s in Parser::new(&body, Format::Prometheus) {
        let s = s.expect("node exporter output parses");
        samples += 1;
        if s.name == "node_cpu_seconds_total"
            && s.labels.get("cpu").map(|v| v.0) == Some(CPU_IDLE.0)
            && s.labels.get("mode").map(|v| v.0) == Some(CPU_IDLE.1)
        {
            value = Some(s.value);
        }
    }
    (
        value.expect("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} present"),
        samples,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_exporter_rollups_match_raw_scrapes() {
    let (_exporter, port) = start_node_exporter();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    wait_http_ok(&metrics_url).await;
    let (before, raw_samples) = raw_cpu_idle(&metrics_url).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"
self_scrape = false
[scrape]
interval = "1s"
timeout = "1s"
[[cluster]]
name = "test"
[[cluster.static]]
job = "node"
targets = ["127.0.0.1:{port}"]
"#
    );
    let fs = Fleetscope::start(dir.path(), &config).await;
    let target = eventually(Duration::from_secs(30), "5 good scrapes", || async {
        let t = fs.targets().await.into_iter().next()?;
        (t["scrapes"].as_u64()? >= 5).then_some(t)
    })
    .await;
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["instance"], format!("127.0.0.1:{port}"));
    let addr = fs.addr;
    let data_dir = fs.data_dir.clone();
    let db_path = fs.db_path();
    let status = fs.proc.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status}");
    let (after, _) = raw_cpu_idle(&metrics_url).await;

    let db = open_db(&db_path);
    let id = fleetscope::scrape::ingest::series_id(
        "node_cpu_seconds_total",
        &[
            ("cluster", "test"),
            ("job", "node"),
            ("instance", &format!("127.0.0.1:{port}")),
            ("cpu", CPU_IDLE.0),
            ("mode", CPU_IDLE.1),
        ],
    );
    let kind: String = db
        .query_row("SELECT kind FROM series WHERE id = ?", [id], |r| r.get(0))
        .expect("the cpu series is stored under the id computed from its labels");
    assert_eq!(kind, "counter");
    let (count, increase, first, last): (u64, f64, f64, f64) = db
        .query_row(
            "SELECT sum(count)::UBIGINT, sum(increase), arg_min(first, ts), arg_max(last, ts) FROM rollup_1m WHERE sid = (SELECT sid FROM series WHERE id = ?)",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .expect("rollup rows");
    assert!(count >= 5, "at least the 5 scrapes waited for: {count}");
    assert!(
        before <= first && last <= after,
        "{before} <= {first} .. {last} <= {after}"
    );
    assert!(increase >= 0.0);
    // No reset happened, so the increase is exactly last - first, and it is
    // bounded by what the two raw scrapes around the run saw.
    assert!(
        (increase - (last - first)).abs() < 1e-6,
        "{increase} vs {}",
        last - first
    );
    assert!(increase <= after - before + 1e-9);

    let node_series: u64 = db
        .query_row(
            "SELECT count(*) FROM series WHERE job = 'node' AND cluster = 'test'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        node_series as f64 >= raw_samples as f64 * 0.9,
        "stored {node_series} series, exporter serves {raw_samples} samples"
    );
    let up_min: f64 = db
        .query_row("SELECT min(r.min) FROM rollup_1m r JOIN series s ON s.sid = r.sid WHERE s.metric = 'up'", [], |r| r.get(0))
        .expect("up rows");
    assert_eq!(up_min, 1.0);
    drop(db);

    // Restart on the same directory: the API answers from what was committed.
    let config = format!("{config}\n");
    let dir2 = data_dir.parent().expect("parent").to_path_buf();
    let fs = Fleetscope::start(&dir2, &config).await;
    assert_ne!(fs.addr, addr);
    let q = format!(
        "/api/v1/rollup?metric=node_cpu_seconds_total&match={}&start=0&end=4102444800&step=86400&agg=increase",
        urlencode(r#"{cpu="0",mode="idle",cluster="test"}"#)
    );
    let v = fs.get_json(&q).await;
    // A day-sized step reads the 1h resolution, which is derived only once
    // its hour is complete: nothing yet, rather than a partial hour.
    assert_eq!(v["data"]["resolution"], "1h");
    assert!(
        v["data"]["result"].as_array().expect("result").is_empty(),
        "{v}"
    );
    let q1m = q
        .replace("step=86400", "step=60")
        .replace("start=0", &format!("start={}", unix_now() - 3600))
        .replace("end=4102444800", &format!("end={}", unix_now() + 3600));
    let v = fs.get_json(&q1m).await;
    assert_eq!(v["data"]["resolution"], "1m");
    let api_1m: f64 = v["data"]["result"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|p| p[1].as_f64().unwrap_or(0.0))
        .sum();
    assert!(
        (api_1m - increase).abs() < 1e-6,
        "api {api_1m} vs db {increase}"
    );
    assert!(fs.proc.terminate().success());
}
