//! Misbehaving targets served by the test itself (hang, trickle, 50 MB body,
//! gzip bomb, binary garbage, truncated body, 10^6 series) next to a healthy
//! one, all scraped by the real `fleetscope` binary. Each bad target gets
//! `up=0` with the right reason, nothing it sent is stored, memory stays
//! bounded, and the healthy target keeps its schedule.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::*;
use futures_util::stream;
use tokio::io::AsyncWriteExt;

const BODY_LIMIT: usize = 32 << 20;

fn stream_body(chunks: usize, chunk: Bytes, delay: Option<Duration>) -> Body {
    Body::from_stream(stream::unfold(0usize, move |i| {
        let chunk = chunk.clone();
        async move {
            if i == chunks {
                return None;
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            Some((Ok::<_, std::io::Error>(chunk), i + 1))
        }
    }))
}

fn gzip_bomb() -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).expect("gzip");
    }
    Bytes::from(enc.finish().expect("gzip"))
}

async fn start_bad_targets() -> (u16, u16) {
    let counter = Arc::new(AtomicU64::new(0));
    let bomb = gzip_bomb();
    let million: Bytes = {
        let mut s = String::with_capacity(20 << 20);
        for i in 0..1_000_000 {
            s.push_str(&format!("m{{i=\"{i}\"}} 1\n"));
        }
        Bytes::from(s)
    };
    let garbage: Bytes = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect::<Vec<_>>()
        .into();
    let app = Router::new()
        .route(
            "/healthy",
            get(move || {
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                async move { format!("# TYPE reqs_total counter\nreqs_total {n}\n") }
            }),
        )
        .route("/hang", get(std::future::pending::<String>))
        .route(
            "/trickle",
            get(|| async {
                stream_body(100, Bytes::from_static(b"a"), Some(Duration::from_secs(1)))
            }),
        )
        .route(
            "/big",
            get(|| async {
                let line = Bytes::from(format!("big_metric{{l=\"{}\"}} 1\n", "x".repeat(1000)));
                stream_body((50 << 20) / line.len(), line, None)
            }),
        )
        .route(
            "/gzip-bomb",
            get(move || {
                let bomb = bomb.clone();
                async move {
                    Response::builder()
                        .header(header::CONTENT_ENCODING, "gzip")
                        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                        .body(Body::from(bomb))
                        .expect("response")
                }
            }),
        )
        .route(
            "/garbage",
            get(move || {
                let g = garbage.clone();
                async move { g }
            }),
        )
        .route(
            "/million",
            get(move || {
                let m = million.clone();
                async move { m }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Truncated: promises 100000 bytes, sends a few, closes. Raw TCP, since
    // a well-behaved HTTP library refuses to do this.
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let raw_port = raw.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = raw.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut buf).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\ntruncated_a 1\ntruncated_b{x=\"")
                    .await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (port, raw_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_are_contained() {
    let (port, raw_port) = start_bad_targets().await;
    let jobs = [
        "healthy",
        "hang",
        "trickle",
        "big",
        "gzip-bomb",
        "garbage",
        "million",
    ];
    let mut config = format!(
        "self_scrape = false\n[scrape]\ninterval = \"2s\"\ntimeout = \"1s\"\n[limits]\nbody_bytes = {BODY_LIMIT}\n[[cluster]]\nname = \"lab\"\n"
    );
    for job in jobs {
        config.push_str(&format!(
            "[[cluster.static]]\njob = \"{job}\"\ntargets = [\"http://127.0.0.1:{port}/{job}\"]\n"
        ));
    }
    config.push_str(&format!(
        "[[cluster.static]]\njob = \"truncated\"\ntargets = [\"http://127.0.0.1:{raw_port}/metrics\"]\n"
    ));
    // A job's own limits apply to its targets alone: the healthy answer
    // (~40 bytes) is too large for this one.
    config.push_str(&format!(
        "[[cluster.static]]\njob = \"capped\"\ntargets = [\"http://127.0.0.1:{port}/healthy\"]\n\
         limits = {{ body_bytes = 10 }}\n"
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(dir.path(), &config).await;
    let started = std::time::Instant::now();
    let targets = eventually(
        Duration::from_secs(60),
        "4 scrapes of every target",
        || async {
            let t = fs.targets().await;
            (t.len() == 9 && t.iter().all(|t| t["scrapes"].as_u64().unwrap_or(0) >= 4)).then_some(t)
        },
    )
    .await;
    let elapsed = started.elapsed();
    let reason_of = |job: &str| {
        let t = targets.iter().find(|t| t["job"] == job).expect("target");
        (
            t["health"].as_str().unwrap_or("").to_string(),
            t["last_error_reason"].as_str().unwrap_or("").to_string(),
            t.clone(),
        )
    };
    for (job, reason) in [
        ("hang", "timeout"),
        ("trickle", "timeout"),
        ("big", "body_too_large"),
        ("gzip-bomb", "body_too_large"),
        ("garbage", "parse_error"),
        ("million", "sample_limit"),
        ("truncated", "read_error"),
        ("capped", "body_too_large"),
    ] {
        let (health, got, t) = reason_of(job);
        assert_eq!(
            (health.as_str(), got.as_str()),
            ("down", reason),
            "{job}: {t}"
        );
        assert!(
            t["last_error"].as_str().is_some_and(|e| !e.is_empty()),
            "{t}"
        );
    }
    let (health, _, healthy) = reason_of("healthy");
    assert_eq!(health, "up", "{healthy}");
    assert_eq!(
        healthy["late_scrapes"], 0,
        "the healthy target kept its schedule: {healthy}"
    );
    let expected = elapsed.as_secs_f64() / 2.0;
    let scrapes = healthy["scrapes"].as_f64().unwrap_or(0.0);
    assert!(
        scrapes >= expected - 2.0,
        "healthy target scraped {scrapes} times in {elapsed:?}"
    );
    let hang = reason_of("hang").2;
    let hang_secs = hang["last_scrape_duration_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        (1.0..1.5).contains(&hang_secs),
        "a hung target costs one timeout: {hang_secs}s"
    );

    let metrics = fs.self_metrics().await;
    assert!(
        metrics.contains("fleetscope_scrape_errors_total{reason=\"body_too_large\"}"),
        "{metrics}"
    );
    // DuckDB's own memory is reported beside ours, by use, and the rows
    // stored so far hold some of it.
    let duckdb_bytes: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("fleetscope_duckdb_memory_bytes{use=\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(duckdb_bytes > 0.0, "{metrics}");

    let peak_kib = fs.proc.peak_rss_kib();
    println!(
        "peak RSS with a 50 MB body, a 1 GB gzip bomb and 10^6 series on offer: {} MiB",
        peak_kib / 1024
    );
    assert!(peak_kib < 400 * 1024, "peak RSS {} MiB", peak_kib / 1024);

    let db_path = fs.db_path();
    assert!(fs.proc.terminate().success());
    let db = open_db(&db_path);
    let stored_from_bad: u64 = db
        .query_row(
            "SELECT count(*) FROM series WHERE job NOT IN ('healthy')
             AND metric NOT IN ('up', 'scrape_duration_seconds', 'scrape_samples_scraped')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(stored_from_bad, 0, "rejected scrapes wrote no series");
    let up_of_bad: f64 = db
        .query_row(
            "SELECT max(r.max) FROM rollup_1m r JOIN series s ON s.sid = r.sid WHERE s.metric = 'up' AND s.job <> 'healthy'",
            [],
            |r| r.get(0),
        )
        .expect("up");
    assert_eq!(up_of_bad, 0.0);
    let healthy_increase: f64 = db
        .query_row(
            "SELECT sum(r.increase) FROM rollup_1m r JOIN series s ON s.sid = r.sid WHERE s.metric = 'reqs_total'",
            [],
            |r| r.get(0),
        )
        .expect("increase");
    assert!(
        healthy_increase >= scrapes - 1.0,
        "counter increase {healthy_increase} after {scrapes} scrapes"
    );
}
