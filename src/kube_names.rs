//! Kubernetes' naming rules: which workload a pod or ReplicaSet name
//! belongs to. Pure functions on names, shared by the store (the `workload`
//! column of a series) and event ingest (the node an event marks); they
//! must not do IO or know either.

/// The workload a pod name belongs to, from Kubernetes' naming rules:
/// Deployment pods are `<name>-<replicaset hash>-<5 chars>`, DaemonSet and
/// Job pods `<name>-<5 chars>`, a CronJob's pods `<name>-<scheduled minute,
/// 8+ digits>-<5 chars>`, StatefulSet pods `<name>-<ordinal>`.
pub fn workload_of(pod: &str) -> Option<String> {
    fn is_suffix(s: &str) -> bool {
        generated(s, 5..=5)
    }
    fn is_number(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    let mut parts: Vec<&str> = pod.split('-').collect();
    if parts.len() < 2 {
        return Some(pod.to_string());
    }
    let last = parts[parts.len() - 1];
    // A generated suffix can be all digits (2, 4-9): one in a few hundred
    // Deployment pods. A StatefulSet does not reach ordinal 20000.
    if is_suffix(last) {
        parts.pop();
        let before = parts[parts.len() - 1];
        if parts.len() >= 2 && (is_rs_hash(before) || (is_number(before) && before.len() >= 8)) {
            parts.pop();
        }
    } else if is_number(last) {
        parts.pop();
    }
    Some(parts.join("-"))
}

/// The Deployment a ReplicaSet belongs to: its name less the pod-template
/// hash (`checkout-7d9f8b6c4` -> `checkout`); other names as they are.
pub fn deployment_of_replicaset(replicaset: &str) -> String {
    match replicaset.rsplit_once('-') {
        Some((deployment, hash)) if !deployment.is_empty() && is_rs_hash(hash) => {
            deployment.to_string()
        }
        _ => replicaset.to_string(),
    }
}

/// Kubernetes draws generated name suffixes and pod-template hashes from
/// this alphabet (no vowels, no 0/1/3), which tells them from name words.
fn generated(s: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&s.len())
        && s.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
}

fn is_rs_hash(s: &str) -> bool {
    generated(s, 6..=10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_from_pod_names() {
        assert_eq!(workload_of("web-7d9f8c6b5-x2x9q").as_deref(), Some("web"));
        assert_eq!(
            workload_of("order-api-5f7b9c8d4f-bxcdz").as_deref(),
            Some("order-api")
        );
        assert_eq!(workload_of("kafka-2").as_deref(), Some("kafka"));
        assert_eq!(
            workload_of("release-notes").as_deref(),
            Some("release-notes"),
            "words are not hashes"
        );
        assert_eq!(
            workload_of("node-exporter-8kq2z").as_deref(),
            Some("node-exporter")
        );
        assert_eq!(workload_of("standalone").as_deref(), Some("standalone"));
        assert_eq!(
            workload_of("web-7d9f8c6b5-24568").as_deref(),
            Some("web"),
            "a generated suffix of digits"
        );
        assert_eq!(
            workload_of("backup-28577280-x2x9q").as_deref(),
            Some("backup"),
            "a CronJob's pod"
        );
        assert_eq!(
            workload_of("migrate-2024-x2x9q").as_deref(),
            Some("migrate-2024")
        );
        assert_eq!(workload_of("kafka-12").as_deref(), Some("kafka"));
        assert_eq!(deployment_of_replicaset("checkout-7d9f8b6c4"), "checkout");
        assert_eq!(
            deployment_of_replicaset("order-api-5f7b9c8d4f"),
            "order-api"
        );
        assert_eq!(deployment_of_replicaset("release-notes"), "release-notes");
    }
}
