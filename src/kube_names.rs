//! Kubernetes' naming rules: which workload a pod or ReplicaSet name
//! belongs to. Pure functions on names, shared by the store (the `workload`
//! column of a series) and event ingest (the node an event marks); they
//! must not do IO or know either.

/// The workload a pod name belongs to, from Kubernetes' naming rules:
/// Deployment pods are `<name>-<replicaset hash>-<5 chars>`, DaemonSet and
/// Job pods `<name>-<5 chars>`, a CronJob's pods `<name>-<scheduled minute,
/// 8+ digits>-<5 chars>`, StatefulSet pods `<name>-<ordinal>`.
pub fn workload_of(pod: &str) -> Option<&str> {
    fn is_suffix(s: &str) -> bool {
        generated(s, 5..=5)
    }
    fn is_number(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    // The workload is the pod's name less its generated parts: a prefix of
    // it, found without allocating (a fleet's first scrape asks this of
    // every new series).
    let Some((rest, last)) = pod.rsplit_once('-') else {
        return Some(pod);
    };
    // A generated suffix can be all digits (2, 4-9): one in a few hundred
    // Deployment pods. A StatefulSet does not reach ordinal 20000.
    if is_suffix(last) {
        if let Some((head, before)) = rest.rsplit_once('-') {
            if is_rs_hash(before) || (is_number(before) && before.len() >= 8) {
                return Some(head);
            }
        }
        Some(rest)
    } else if is_number(last) {
        Some(rest)
    } else {
        Some(pod)
    }
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
        assert_eq!(workload_of("web-7d9f8c6b5-x2x9q"), Some("web"));
        assert_eq!(workload_of("order-api-5f7b9c8d4f-bxcdz"), Some("order-api"));
        assert_eq!(workload_of("kafka-2"), Some("kafka"));
        assert_eq!(
            workload_of("release-notes"),
            Some("release-notes"),
            "words are not hashes"
        );
        assert_eq!(workload_of("node-exporter-8kq2z"), Some("node-exporter"));
        assert_eq!(workload_of("standalone"), Some("standalone"));
        assert_eq!(
            workload_of("web-7d9f8c6b5-24568"),
            Some("web"),
            "a generated suffix of digits"
        );
        assert_eq!(
            workload_of("backup-28577280-x2x9q"),
            Some("backup"),
            "a CronJob's pod"
        );
        assert_eq!(workload_of("migrate-2024-x2x9q"), Some("migrate-2024"));
        assert_eq!(workload_of("kafka-12"), Some("kafka"));
        assert_eq!(deployment_of_replicaset("checkout-7d9f8b6c4"), "checkout");
        assert_eq!(
            deployment_of_replicaset("order-api-5f7b9c8d4f"),
            "order-api"
        );
        assert_eq!(deployment_of_replicaset("release-notes"), "release-notes");
    }
}
