//! Real Debian `prometheus` as a `/federate` source, scraping a real node
//! exporter; fleetscope federates from it with and without `honor_labels`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use fleetscope::store::{labels_of_row, STORED_LABELS};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_keeps_source_labels_with_honor_labels() {
    let (_exporter, ne_port) = start_node_exporter();
    wait_http_ok(&format!("http://127.0.0.1:{ne_port}/metrics")).await;
    let prom_dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, prom_port) = start_prometheus(
        prom_dir.path(),
        "node",
        &[format!("127.0.0.1:{ne_port}")],
        "zone: sorting-a",
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    let client = http();
    eventually(Duration::from_secs(60), "prometheus has node data", || {
        let (client, prom) = (client.clone(), prom.clone());
        async move {
            let v: serde_json::Value = client
                .get(format!(
                    "{prom}/api/v1/query?query=up%7Bjob%3D%22node%22%7D"
                ))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["data"]["result"][0]["value"][1] == "1").then_some(())
        }
    })
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        r#"
self_scrape = false
[scrape]
interval = "1s"
timeout = "1s"
[[cluster]]
name = "east"
[[cluster.federate]]
url = "{prom}"
match = ['{{job="node"}}']
[[cluster]]
name = "west"
[[cluster.federate]]
url = "{prom}/federate"
match = ['{{__name__=~"node_cpu_seconds_total|up"}}']
honor_labels = false
"#
    );
    let fs = Fleetscope::start(dir.path(), &config).await;
    eventually(
        Duration::from_secs(30),
        "3 federation scrapes each",
        || async {
            let t = fs.targets().await;
            (t.len() == 2
                && t.iter()
                    .all(|t| t["scrapes"].as_u64().unwrap_or(0) >= 3 && t["health"] == "up"))
            .then_some(())
        },
    )
    .await;
    let db_path = fs.db_path();
    assert!(fs.proc.terminate().success());

    let db = open_db(&db_path);
    let ne_instance = format!("127.0.0.1:{ne_port}");
    let prom_instance = format!("127.0.0.1:{prom_port}");
    let east = labels_of(&db, "east");
    assert!(!east.is_empty(), "east has node_cpu_seconds_total series");
    for l in &east {
        let label = |name: &str| l.get(name).map(String::as_str);
        assert_eq!(label("job"), Some("node"), "{l:?}");
        assert_eq!(label("instance"), Some(ne_instance.as_str()), "{l:?}");
        assert_eq!(label("zone"), Some("sorting-a"), "{l:?}");
        assert_eq!(label("cluster"), Some("east"), "{l:?}");
        assert_eq!(label("exported_job"), None, "{l:?}");
    }
    let west = labels_of(&db, "west");
    assert_eq!(west.len(), east.len(), "same series through both clusters");
    for l in &west {
        let label = |name: &str| l.get(name).map(String::as_str);
        assert_eq!(label("job"), Some("federate"), "{l:?}");
        assert_eq!(label("instance"), Some(prom_instance.as_str()), "{l:?}");
        assert_eq!(label("exported_job"), Some("node"), "{l:?}");
        assert_eq!(
            label("exported_instance"),
            Some(ne_instance.as_str()),
            "{l:?}"
        );
    }
    let rows: u64 = db
        .query_row(
            "SELECT sum(r.count)::UBIGINT FROM rollup_1m r JOIN series s ON s.sid = r.sid
             WHERE s.cluster = 'east' AND s.metric = 'node_cpu_seconds_total'",
            [],
            |r| r.get(0),
        )
        .expect("rows");
    assert!(
        rows >= 3 * east.len() as u64,
        "{rows} samples for {} series",
        east.len()
    );
}

/// Each stored series' whole label set, as the store's readers put it back
/// together from the label columns and `other_labels`.
fn labels_of(db: &duckdb::Connection, cluster: &str) -> Vec<BTreeMap<String, String>> {
    let mut stmt = db
        .prepare(&format!(
            "SELECT {STORED_LABELS} FROM series s
             WHERE s.cluster = ? AND s.metric = 'node_cpu_seconds_total'"
        ))
        .expect("prepare");
    let mut all = stmt
        .query_map([cluster], |r| labels_of_row(r, 0))
        .expect("query")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    all.sort();
    all
}
