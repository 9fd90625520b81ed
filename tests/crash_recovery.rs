//! `kill -9` after a flush loses nothing committed; a second process on the
//! same data directory fails fast with a clear message; the API rejects bad
//! requests and missing tokens. All against the real `fleetscope` binary.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::*;

const TOKEN: &str = "s3cret-token";

async fn counter_target() -> u16 {
    let n = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let v = n.fetch_add(3, Ordering::Relaxed) + 3;
            async move {
                format!(
                    "# TYPE parcels_sorted_total counter\nparcels_sorted_total{{line=\"a\"}} {v}\n"
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn committed_points(fs: &Fleetscope, start: i64) -> Vec<(i64, f64)> {
    let q = format!(
        "/api/v1/rollup?metric=parcels_sorted_total&start={start}&end={}&step=60&agg=increase",
        start + 7200
    );
    let r = http()
        .get(fs.url(&q))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("query");
    assert!(r.status().is_success(), "{}", r.status());
    let v: serde_json::Value = r.json().await.expect("json");
    v["data"]["result"][0]["values"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_i64().unwrap_or(0),
                        p[1].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_committed() {
    let port = counter_target().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "self_scrape = false\n[api]\nbearer_token = \"{TOKEN}\"\n[scrape]\ninterval = \"1s\"\ntimeout = \"1s\"\n\
         [[cluster]]\nname = \"c\"\n[[cluster.static]]\njob = \"sorter\"\ntargets = [\"127.0.0.1:{port}\"]\n"
    );
    let start = unix_now() - 120;
    let fs = Fleetscope::start(dir.path(), &config).await;

    // One writer per data directory: a second process fails fast and says why.
    let t0 = Instant::now();
    let second = Command::new(fleetscope_bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("fleetscope.toml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(&fs.data_dir)
        .stdout(Stdio::null())
        .output()
        .expect("second process");
    let fail_time = t0.elapsed();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("in use by another fleetscope"), "{stderr}");
    println!("second process refused in {fail_time:?}");
    assert!(fail_time < Duration::from_secs(5));

    // Auth and bad requests.
    let client = http();
    let r = client
        .get(fs.url("/api/v1/targets"))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    let r = client
        .get(fs.url("/api/v1/targets"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    for (q, needle) in [
        ("/api/v1/rollup?metric=x&agg=median", "unknown agg"),
        ("/api/v1/rollup?match=x%7Ba%3D", "bad selector"),
        ("/api/v1/rollup?agg=avg", "metric name is required"),
        (
            "/api/v1/rollup?metric=x&start=10&end=5",
            "end must be after start",
        ),
        ("/api/v1/rollup?metric=x&start=yesterday", "RFC 3339"),
        ("/api/v1/series", "match[]"),
        ("/api/v1/series?match[]=up&limit=ten", "not a number"),
        ("/api/v1/rollup?match[]=a&match[]=b", "one match selector"),
    ] {
        let r = client
            .get(fs.url(q))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 400, "{q}");
        let v: serde_json::Value = r.json().await.expect("json error body");
        assert_eq!(v["status"], "error");
        assert!(
            v["error"].as_str().unwrap_or("").contains(needle),
            "{q}: {v}"
        );
    }
    let sqlish = urlencode("x'; COPY series TO '/tmp/pwned.csv'; --");
    let r = client
        .get(fs.url(&format!("/api/v1/rollup?metric={sqlish}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200, "a metric name is a literal, never SQL");
    assert!(!std::path::Path::new("/tmp/pwned.csv").exists());

    // Wait for a minute to complete and be committed.
    let before = eventually(Duration::from_secs(90), "a committed 1m bucket", || {
        let fs = &fs;
        async move {
            let p = committed_points(fs, start).await;
            (!p.is_empty()).then_some(p)
        }
    })
    .await;
    // A listing without a metric name stops at its limit and says so, as
    // Prometheus' `limit` does (the target has its sample and `up`,
    // `scrape_*` series).
    let listed = client
        .get(fs.url(&format!(
            "/api/v1/series?match[]={}&limit=1",
            urlencode("{job=\"sorter\"}")
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("req");
    let listed: serde_json::Value = listed.json().await.expect("json");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert!(
        listed["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains("truncated"),
        "{listed}"
    );
    fs.proc.kill9();

    let t0 = Instant::now();
    let fs = Fleetscope::start(dir.path(), &config).await;
    println!("restart after kill -9 ready in {:?}", t0.elapsed());
    let after = committed_points(&fs, start).await;
    for (ts, v) in &before {
        let found = after.iter().find(|(t, _)| t == ts);
        assert_eq!(
            found.map(|(_, v)| *v),
            Some(*v),
            "bucket {ts} survived kill -9 unchanged"
        );
    }
    assert!(fs.proc.terminate().success());
}

/// A graceful shutdown while a scrape hangs keeps the minute before it. A
/// scrape hands its target's last complete minute over as it begins; the
/// target here answers through one minute and hangs in the next, and
/// SIGTERM arrives while that scrape waits. The stopped store must hold
/// the answered minute's row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_hung_scrape_keeps_the_minute_before() {
    let answered_minute = Arc::new(AtomicU64::new(u64::MAX));
    let hung = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/metrics",
        get({
            let (answered_minute, hung) = (answered_minute.clone(), hung.clone());
            move || {
                let minute = (unix_now() / 60) as u64;
                let first = answered_minute
                    .compare_exchange(u64::MAX, minute, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                let answer = first || answered_minute.load(Ordering::SeqCst) == minute;
                let hung = hung.clone();
                async move {
                    if !answer {
                        hung.fetch_add(1, Ordering::SeqCst);
                        std::future::pending::<()>().await;
                    }
                    "# TYPE parcels_sorted_total counter\nparcels_sorted_total 7\n".to_string()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "self_scrape = false\n[scrape]\ninterval = \"5s\"\ntimeout = \"4s\"\n\
         [[cluster]]\nname = \"c\"\n[[cluster.static]]\njob = \"sorter\"\ntargets = [\"127.0.0.1:{port}\"]\n"
    );
    let fs = Fleetscope::start(dir.path(), &config).await;
    eventually(
        Duration::from_secs(90),
        "a scrape hanging in the next minute",
        || {
            let hung = hung.clone();
            async move { (hung.load(Ordering::SeqCst) > 0).then_some(()) }
        },
    )
    .await;
    let db_path = fs.db_path();
    assert!(fs.proc.terminate().success());
    let conn = open_db(&db_path);
    let rows: i64 = conn
        .query_row(
            "SELECT count(*) FROM rollup_1m r JOIN series s ON s.sid = r.sid
             WHERE s.metric = 'parcels_sorted_total' AND r.ts = ?",
            [answered_minute.load(Ordering::SeqCst) as i64 * 60],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(rows, 1, "the answered minute's row after SIGTERM");
}

/// An event answered 202 is committed: `kill -9` right after the answer
/// keeps it (an Alertmanager would not send the notification again for
/// hours). Read back from the data directory after the restart's clean stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_event_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = "self_scrape = false\n";
    let fs = Fleetscope::start(dir.path(), config).await;
    let event = serde_json::json!({
        "time": unix_now(), "cluster": "dc-01", "namespace": "shop", "service": "checkout",
        "reason": "OOMKilled", "message": "container checkout was OOM killed", "severity": "Warning"
    });
    let answer = reqwest::Client::new()
        .post(fs.url("/api/v1/events"))
        .json(&event)
        .send()
        .await
        .expect("POST /api/v1/events");
    assert_eq!(answer.status().as_u16(), 202);
    fs.proc.kill9();

    let fs = Fleetscope::start(dir.path(), config).await;
    let db = fs.db_path();
    assert!(fs.proc.terminate().success());
    let stored: Vec<(String, String)> = open_db(&db)
        .prepare("SELECT service, reason FROM events")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(stored, [("checkout".to_string(), "OOMKilled".to_string())]);
}

/// `fleetscope seed` into a data directory that already holds a store is
/// refused, and the store is left as it was: a second history over the
/// first would double every count and increase.
#[test]
fn seeding_over_an_existing_store_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed = || {
        Command::new(fleetscope_bin())
            .args(["seed", "--data-dir"])
            .arg(dir.path())
            .args(["--clusters", "1", "--namespaces", "1", "--pods", "2"])
            .args(["--nodes", "1", "--hours", "1"])
            .output()
            .expect("run fleetscope seed")
    };
    assert!(seed().status.success());
    let size = std::fs::metadata(dir.path().join(fleetscope::store::DB_FILE))
        .expect("store")
        .len();
    let again = seed();
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("already holds a store"), "{said}");
    let after = std::fs::metadata(dir.path().join(fleetscope::store::DB_FILE))
        .expect("store")
        .len();
    assert_eq!(size, after);
}

/// HTTP basic auth (Grafana's datasource "Basic auth") guards the API as a
/// bearer token does; a refusal names the scheme that is configured, so a
/// client can ask its user for a password. The health routes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_the_api_and_names_its_scheme() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Fleetscope::start(
        dir.path(),
        "self_scrape = false\n[api]\nbasic_auth_user = \"grafana\"\nbasic_auth_password = \"pw\"\n",
    )
    .await;
    let client = reqwest::Client::new();
    let get = |user: Option<(&'static str, &'static str)>| {
        let mut r = client.get(fs.url("/api/v1/targets"));
        if let Some((u, p)) = user {
            r = r.basic_auth(u, Some(p));
        }
        r.send()
    };
    let refused = get(None).await.expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    let schemes: Vec<&str> = refused
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(schemes, ["Basic realm=\"fleetscope\""]);
    assert_eq!(
        get(Some(("grafana", "nope")))
            .await
            .expect("request")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        get(Some(("grafana", "pw")))
            .await
            .expect("request")
            .status()
            .as_u16(),
        200
    );
    let health = client
        .get(fs.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status().as_u16(), 200);
    assert!(fs.proc.terminate().success());
}
