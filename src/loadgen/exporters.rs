//! The series each exporter kind exposes, with realistic names, labels and
//! counts: node exporter, kubelet/cAdvisor, kube-state-metrics and DCGM.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::render::{BlockBuilder, Model, Type};
use super::{hash, Pod};

const C: Type = Type::Counter;
const G: Type = Type::Gauge;

fn rng(seed: u64, parts: &[u64]) -> SmallRng {
    SmallRng::seed_from_u64(hash(seed, parts))
}

fn counter(r: &mut SmallRng, rate_lo: f64, rate_hi: f64, int: bool) -> Model {
    Model::Counter {
        base: 0.0,
        rate: r.random_range(rate_lo..rate_hi),
        int,
    }
}

fn gauge(r: &mut SmallRng, lo: f64, hi: f64, int: bool) -> Model {
    let base = r.random_range(lo..hi);
    Model::Gauge {
        base,
        amp: base * r.random_range(0.02..0.2),
        w: std::f64::consts::TAU / r.random_range(120.0..1800.0),
        phase: r.random_range(0.0..std::f64::consts::TAU),
        int,
    }
}

const CPU_MODES: [&str; 8] = [
    "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
];
const NODE_CPUS: usize = 16;
const MEMINFO: [&str; 44] = [
    "Active",
    "Active_anon",
    "Active_file",
    "AnonHugePages",
    "AnonPages",
    "Bounce",
    "Buffers",
    "Cached",
    "CommitLimit",
    "Committed_AS",
    "DirectMap1G",
    "DirectMap2M",
    "DirectMap4k",
    "Dirty",
    "FileHugePages",
    "FilePmdMapped",
    "HardwareCorrupted",
    "HugePages_Free",
    "HugePages_Rsvd",
    "HugePages_Surp",
    "HugePages_Total",
    "Hugepagesize",
    "Hugetlb",
    "Inactive",
    "Inactive_anon",
    "Inactive_file",
    "KReclaimable",
    "KernelStack",
    "Mapped",
    "MemAvailable",
    "MemFree",
    "MemTotal",
    "Mlocked",
    "NFS_Unstable",
    "PageTables",
    "Percpu",
    "SReclaimable",
    "SUnreclaim",
    "Shmem",
    "Slab",
    "SwapCached",
    "SwapFree",
    "SwapTotal",
    "Unevictable",
];
const MOUNTS: [(&str, &str, &str); 8] = [
    ("/dev/nvme0n1p1", "ext4", "/"),
    ("/dev/nvme0n1p15", "vfat", "/boot/efi"),
    ("/dev/nvme1n1", "xfs", "/var/lib/kubelet"),
    ("/dev/nvme1n1", "xfs", "/var/lib/containerd"),
    ("tmpfs", "tmpfs", "/run"),
    ("tmpfs", "tmpfs", "/run/lock"),
    ("tmpfs", "tmpfs", "/dev/shm"),
    (
        "shm",
        "tmpfs",
        "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/shm",
    ),
];
const NET_COUNTERS: [&str; 16] = [
    "receive_bytes",
    "receive_compressed",
    "receive_drop",
    "receive_errs",
    "receive_fifo",
    "receive_frame",
    "receive_multicast",
    "receive_packets",
    "transmit_bytes",
    "transmit_carrier",
    "transmit_colls",
    "transmit_compressed",
    "transmit_drop",
    "transmit_errs",
    "transmit_fifo",
    "transmit_packets",
];
const NET_GAUGES: [&str; 7] = [
    "up",
    "mtu_bytes",
    "speed_bytes",
    "carrier",
    "transmit_queue_length",
    "iface_id",
    "flags",
];
const DISKS: [&str; 4] = ["nvme0n1", "nvme1n1", "dm-0", "sda"];
const DISK_COUNTERS: [&str; 16] = [
    "reads_completed_total",
    "reads_merged_total",
    "read_bytes_total",
    "read_time_seconds_total",
    "writes_completed_total",
    "writes_merged_total",
    "written_bytes_total",
    "write_time_seconds_total",
    "io_time_seconds_total",
    "io_time_weighted_seconds_total",
    "discards_completed_total",
    "discards_merged_total",
    "discarded_sectors_total",
    "discard_time_seconds_total",
    "flush_requests_total",
    "flush_requests_time_seconds_total",
];
const NETSTAT: [&str; 30] = [
    "Icmp6_InErrors",
    "Icmp6_InMsgs",
    "Icmp6_OutMsgs",
    "Icmp_InErrors",
    "Icmp_InMsgs",
    "Icmp_OutMsgs",
    "Ip6_InOctets",
    "Ip6_OutOctets",
    "IpExt_InOctets",
    "IpExt_OutOctets",
    "Ip_Forwarding",
    "TcpExt_ListenDrops",
    "TcpExt_ListenOverflows",
    "TcpExt_SyncookiesFailed",
    "TcpExt_SyncookiesRecv",
    "TcpExt_SyncookiesSent",
    "TcpExt_TCPSynRetrans",
    "TcpExt_TCPTimeouts",
    "Tcp_ActiveOpens",
    "Tcp_CurrEstab",
    "Tcp_InErrs",
    "Tcp_InSegs",
    "Tcp_OutRsts",
    "Tcp_OutSegs",
    "Tcp_PassiveOpens",
    "Tcp_RetransSegs",
    "Udp6_InDatagrams",
    "Udp_InDatagrams",
    "Udp_NoPorts",
    "Udp_OutDatagrams",
];
const SOCKSTAT: [&str; 15] = [
    "FRAG6_inuse",
    "FRAG6_memory",
    "FRAG_inuse",
    "FRAG_memory",
    "RAW6_inuse",
    "RAW_inuse",
    "TCP6_inuse",
    "TCP_alloc",
    "TCP_inuse",
    "TCP_mem",
    "TCP_mem_bytes",
    "TCP_orphan",
    "TCP_tw",
    "UDP_inuse",
    "sockets_used",
];
const COLLECTORS: [&str; 38] = [
    "arp",
    "bcache",
    "bonding",
    "btrfs",
    "conntrack",
    "cpu",
    "cpufreq",
    "diskstats",
    "dmi",
    "edac",
    "entropy",
    "fibrechannel",
    "filefd",
    "filesystem",
    "hwmon",
    "infiniband",
    "ipvs",
    "loadavg",
    "mdadm",
    "meminfo",
    "netclass",
    "netdev",
    "netstat",
    "nfs",
    "nfsd",
    "nvme",
    "os",
    "powersupplyclass",
    "pressure",
    "rapl",
    "schedstat",
    "selinux",
    "sockstat",
    "softnet",
    "stat",
    "tapestats",
    "textfile",
    "thermal_zone",
];

/// Node exporter: ~800 series per node.
pub fn node_exporter(b: &mut BlockBuilder, seed: u64, node_id: u64, node: &str, veths: usize) {
    let r = &mut rng(seed, &[1, node_id]);
    let cpu_names: Vec<String> = (0..NODE_CPUS).map(|c| c.to_string()).collect();
    for cpu in &cpu_names {
        for mode in CPU_MODES {
            let rate = match mode {
                "idle" => r.random_range(0.3..0.9),
                "user" => r.random_range(0.05..0.6),
                "system" => r.random_range(0.01..0.15),
                _ => r.random_range(0.0..0.01),
            };
            b.add(
                "node_cpu_seconds_total",
                C,
                "Seconds the CPUs spent in each mode.",
                "",
                &[("cpu", cpu), ("mode", mode)],
                Model::Counter {
                    base: 0.0,
                    rate,
                    int: false,
                },
            );
        }
    }
    for cpu in &cpu_names {
        for mode in ["nice", "user"] {
            b.add(
                "node_cpu_guest_seconds_total",
                C,
                "Seconds the CPUs spent in guests (VMs) for each mode.",
                "",
                &[("cpu", cpu), ("mode", mode)],
                Model::Const(0.0),
            );
        }
    }
    for cpu in &cpu_names {
        for (m, help) in [
            (
                "node_schedstat_running_seconds_total",
                "Number of seconds CPU spent running a process.",
            ),
            (
                "node_schedstat_waiting_seconds_total",
                "Number of seconds spent by processing waiting for this CPU.",
            ),
            (
                "node_schedstat_timeslices_total",
                "Number of timeslices executed by CPU.",
            ),
        ] {
            let m2 = counter(r, 0.1, 50.0, false);
            b.add(m, C, help, "", &[("cpu", cpu)], m2);
        }
        for (m, help) in [
            (
                "node_softnet_processed_total",
                "Number of processed packets",
            ),
            ("node_softnet_dropped_total", "Number of dropped packets"),
            (
                "node_softnet_times_squeezed_total",
                "Number of times processing packets ran out of quota",
            ),
        ] {
            let m2 = counter(r, 0.0, 300.0, true);
            b.add(m, C, help, "", &[("cpu", cpu)], m2);
        }
    }
    // A node's memory is fixed; what is available or free moves within it
    // (a heatmap of used memory reads MemAvailable / MemTotal).
    let total = [32.0, 64.0, 128.0, 256.0][r.random_range(0..4usize)] * (1u64 << 30) as f64;
    for field in MEMINFO {
        let name = format!("node_memory_{field}_bytes");
        let m = match field {
            "MemTotal" => Model::Const(total),
            "MemAvailable" => gauge(r, total * 0.25, total * 0.7, true),
            "MemFree" => gauge(r, total * 0.05, total * 0.2, true),
            "SwapTotal" | "SwapFree" | "SwapCached" => Model::Const(0.0),
            _ => gauge(r, 1e6, total * 0.05, true),
        };
        b.add(
            &name,
            G,
            &format!("Memory information field {field}_bytes."),
            "",
            &[],
            m,
        );
    }
    for (device, fstype, mountpoint) in MOUNTS {
        let labels = [
            ("device", device),
            ("fstype", fstype),
            ("mountpoint", mountpoint),
        ];
        let size = r.random_range(1e8..2e12f64).floor();
        for (m, help, model) in [
            (
                "node_filesystem_size_bytes",
                "Filesystem size in bytes.",
                Model::Const(size),
            ),
            (
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                gauge(r, size * 0.2, size * 0.8, true),
            ),
            (
                "node_filesystem_free_bytes",
                "Filesystem free space in bytes.",
                gauge(r, size * 0.25, size * 0.85, true),
            ),
            (
                "node_filesystem_files",
                "Filesystem total file nodes.",
                Model::Const((size / 16384.0).floor()),
            ),
            (
                "node_filesystem_files_free",
                "Filesystem total free file nodes.",
                gauge(r, size / 40000.0, size / 20000.0, true),
            ),
            (
                "node_filesystem_readonly",
                "Filesystem read-only status.",
                Model::Const(0.0),
            ),
            (
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                Model::Const(0.0),
            ),
        ] {
            b.add(m, G, help, "", &labels, model);
        }
    }
    let mut devices: Vec<String> = ["lo", "eth0", "cni0", "flannel.1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for v in 0..veths {
        devices.push(format!(
            "veth{:08x}",
            hash(seed, &[2, node_id, v as u64]) as u32
        ));
    }
    for dev in &devices {
        for c in NET_COUNTERS {
            let int_rate = if c.ends_with("bytes") { 2e6 } else { 2e3 };
            let m = counter(r, 0.0, int_rate, true);
            b.add(
                &format!("node_network_{c}_total"),
                C,
                &format!("Network device statistic {c}."),
                "",
                &[("device", dev)],
                m,
            );
        }
        for g in NET_GAUGES {
            b.add(
                &format!("node_network_{g}"),
                G,
                &format!("Network device property {g}."),
                "",
                &[("device", dev)],
                Model::Const(if g == "mtu_bytes" { 1500.0 } else { 1.0 }),
            );
        }
    }
    for dev in DISKS {
        for c in DISK_COUNTERS {
            let m = counter(
                r,
                0.0,
                if c.contains("bytes") || c.contains("sectors") {
                    5e6
                } else {
                    50.0
                },
                !c.contains("seconds"),
            );
            b.add(
                &format!("node_disk_{c}"),
                C,
                "Disk statistic.",
                "",
                &[("device", dev)],
                m,
            );
        }
        let m = gauge(r, 0.0, 4.0, true);
        b.add(
            "node_disk_io_now",
            G,
            "The number of I/Os currently in progress.",
            "",
            &[("device", dev)],
            m,
        );
    }
    for f in NETSTAT {
        let m = counter(r, 0.0, 500.0, true);
        b.add(
            &format!("node_netstat_{f}"),
            Type::Untyped,
            &format!("Statistic {f}."),
            "",
            &[],
            m,
        );
    }
    for f in SOCKSTAT {
        let m = gauge(r, 0.0, 2000.0, true);
        b.add(
            &format!("node_sockstat_{f}"),
            G,
            &format!("Number of {f}."),
            "",
            &[],
            m,
        );
    }
    for (i, chip) in ["platform_coretemp_0", "platform_coretemp_1"]
        .iter()
        .enumerate()
    {
        for s in 0..8 {
            let sensor = format!("temp{}", s + 1);
            let m = gauge(r, 35.0 + i as f64, 75.0, false);
            b.add(
                "node_hwmon_temp_celsius",
                G,
                "Hardware monitor for temperature (input)",
                "",
                &[("chip", chip), ("sensor", &sensor)],
                m,
            );
        }
    }
    for res in ["cpu", "io", "memory"] {
        let m = counter(r, 0.0, 0.05, false);
        b.add(
            &format!("node_pressure_{res}_waiting_seconds_total"),
            C,
            "Total time in seconds that processes have waited for this resource",
            "",
            &[],
            m,
        );
    }
    for res in ["io", "memory"] {
        let m = counter(r, 0.0, 0.01, false);
        b.add(
            &format!("node_pressure_{res}_stalled_seconds_total"),
            C,
            "Total time in seconds no process could make progress",
            "",
            &[],
            m,
        );
    }
    for (m, t, help, model) in [
        (
            "node_load1",
            G,
            "1m load average.",
            gauge(r, 0.5, 12.0, false),
        ),
        (
            "node_load5",
            G,
            "5m load average.",
            gauge(r, 0.5, 12.0, false),
        ),
        (
            "node_load15",
            G,
            "15m load average.",
            gauge(r, 0.5, 12.0, false),
        ),
        (
            "node_boot_time_seconds",
            G,
            "Node boot time, in unixtime.",
            Model::StartTime,
        ),
        (
            "node_time_seconds",
            G,
            "System time in seconds since epoch (1970).",
            Model::Now,
        ),
        (
            "node_context_switches_total",
            C,
            "Total number of context switches.",
            counter(r, 1e3, 1e5, true),
        ),
        (
            "node_intr_total",
            C,
            "Total number of interrupts serviced.",
            counter(r, 1e3, 1e5, true),
        ),
        (
            "node_forks_total",
            C,
            "Total number of forks.",
            counter(r, 1.0, 100.0, true),
        ),
        (
            "node_procs_running",
            G,
            "Number of processes in runnable state.",
            gauge(r, 1.0, 20.0, true),
        ),
        (
            "node_procs_blocked",
            G,
            "Number of processes blocked waiting for I/O to complete.",
            gauge(r, 0.0, 3.0, true),
        ),
        (
            "node_entropy_available_bits",
            G,
            "Bits of available entropy.",
            Model::Const(256.0),
        ),
        (
            "node_filefd_allocated",
            G,
            "File descriptor statistics: allocated.",
            gauge(r, 5e3, 5e4, true),
        ),
        (
            "node_filefd_maximum",
            G,
            "File descriptor statistics: maximum.",
            Model::Const(9.223372036854776e18),
        ),
        (
            "node_nf_conntrack_entries",
            G,
            "Number of currently allocated flow entries for connection tracking.",
            gauge(r, 1e3, 5e4, true),
        ),
        (
            "node_nf_conntrack_entries_limit",
            G,
            "Maximum size of connection tracking table.",
            Model::Const(262144.0),
        ),
        (
            "node_vmstat_pgfault",
            Type::Untyped,
            "/proc/vmstat information field pgfault.",
            counter(r, 1e3, 1e5, true),
        ),
        (
            "node_vmstat_pgmajfault",
            Type::Untyped,
            "/proc/vmstat information field pgmajfault.",
            counter(r, 0.0, 10.0, true),
        ),
        (
            "node_vmstat_pgpgin",
            Type::Untyped,
            "/proc/vmstat information field pgpgin.",
            counter(r, 0.0, 1e4, true),
        ),
        (
            "node_vmstat_pgpgout",
            Type::Untyped,
            "/proc/vmstat information field pgpgout.",
            counter(r, 0.0, 1e4, true),
        ),
        (
            "node_vmstat_pswpin",
            Type::Untyped,
            "/proc/vmstat information field pswpin.",
            Model::Const(0.0),
        ),
        (
            "node_vmstat_pswpout",
            Type::Untyped,
            "/proc/vmstat information field pswpout.",
            Model::Const(0.0),
        ),
        (
            "node_vmstat_oom_kill",
            Type::Untyped,
            "/proc/vmstat information field oom_kill.",
            Model::Const(0.0),
        ),
    ] {
        b.add(m, t, help, "", &[], model);
    }
    b.add(
        "node_uname_info",
        G,
        "Labeled system information as provided by the uname system call.",
        "",
        &[
            ("domainname", "(none)"),
            ("machine", "x86_64"),
            ("nodename", node),
            ("release", "6.1.0-27-cloud-amd64"),
            ("sysname", "Linux"),
            (
                "version",
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)",
            ),
        ],
        Model::Const(1.0),
    );
    b.add("node_os_info", G, "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.", "",
        &[("build_id", ""), ("id", "debian"), ("id_like", ""), ("image_id", ""), ("image_version", ""), ("name", "Debian GNU/Linux"), ("pretty_name", "Debian GNU/Linux 12 (bookworm)"), ("variant", ""), ("variant_id", ""), ("version", "12 (bookworm)"), ("version_codename", "bookworm"), ("version_id", "12")],
        Model::Const(1.0));
    b.add("node_exporter_build_info", G, "A metric with a constant '1' value labeled by version, revision, branch, goversion from which node_exporter was built, and the goos and goarch for the build.", "",
        &[("branch", "HEAD"), ("goarch", "amd64"), ("goos", "linux"), ("goversion", "go1.22.5"), ("revision", "f1e0e8360aa60b6cb5e5cc1560bed348fc2c1895"), ("tags", "unknown"), ("version", "1.8.2")],
        Model::Const(1.0));
    for col in COLLECTORS {
        let m = gauge(r, 0.0001, 0.05, false);
        b.add(
            "node_scrape_collector_duration_seconds",
            G,
            "node_exporter: Duration of a collector scrape.",
            "",
            &[("collector", col)],
            m,
        );
    }
    for col in COLLECTORS {
        b.add(
            "node_scrape_collector_success",
            G,
            "node_exporter: Whether a collector succeeded.",
            "",
            &[("collector", col)],
            Model::Const(1.0),
        );
    }
    go_process(b, r, "node_exporter");
}

/// The go_* and process_* series every Go exporter carries (~45).
fn go_process(b: &mut BlockBuilder, r: &mut SmallRng, _job: &str) {
    for q in ["0", "0.25", "0.5", "0.75", "1"] {
        let m = gauge(r, 1e-5, 1e-3, false);
        b.add(
            "go_gc_duration_seconds",
            Type::Summary,
            "A summary of the pause duration of garbage collection cycles.",
            "",
            &[("quantile", q)],
            m,
        );
    }
    let m = counter(r, 1e-4, 1e-3, false);
    b.add(
        "go_gc_duration_seconds",
        Type::Summary,
        "A summary of the pause duration of garbage collection cycles.",
        "_sum",
        &[],
        m,
    );
    let m = counter(r, 0.01, 0.2, true);
    b.add(
        "go_gc_duration_seconds",
        Type::Summary,
        "A summary of the pause duration of garbage collection cycles.",
        "_count",
        &[],
        m,
    );
    let m = gauge(r, 8.0, 40.0, true);
    b.add(
        "go_goroutines",
        G,
        "Number of goroutines that currently exist.",
        "",
        &[],
        m,
    );
    b.add(
        "go_info",
        G,
        "Information about the Go environment.",
        "",
        &[("version", "go1.22.5")],
        Model::Const(1.0),
    );
    let m = gauge(r, 6.0, 20.0, true);
    b.add("go_threads", G, "Number of OS threads created.", "", &[], m);
    for f in [
        "alloc_bytes",
        "buck_hash_sys_bytes",
        "gc_sys_bytes",
        "heap_alloc_bytes",
        "heap_idle_bytes",
        "heap_inuse_bytes",
        "heap_objects",
        "heap_released_bytes",
        "heap_sys_bytes",
        "last_gc_time_seconds",
        "mcache_inuse_bytes",
        "mcache_sys_bytes",
        "mspan_inuse_bytes",
        "mspan_sys_bytes",
        "next_gc_bytes",
        "other_sys_bytes",
        "stack_inuse_bytes",
        "stack_sys_bytes",
        "sys_bytes",
    ] {
        let m = gauge(r, 1e4, 3e7, true);
        b.add(
            &format!("go_memstats_{f}"),
            G,
            &format!("Number of {f}."),
            "",
            &[],
            m,
        );
    }
    for f in [
        "alloc_bytes_total",
        "frees_total",
        "lookups_total",
        "mallocs_total",
    ] {
        let m = counter(r, 10.0, 1e5, true);
        b.add(
            &format!("go_memstats_{f}"),
            C,
            &format!("Total number of {f}."),
            "",
            &[],
            m,
        );
    }
    for (m, t, help, model) in [
        (
            "process_cpu_seconds_total",
            C,
            "Total user and system CPU time spent in seconds.",
            counter(r, 0.001, 0.05, false),
        ),
        (
            "process_max_fds",
            G,
            "Maximum number of open file descriptors.",
            Model::Const(1048576.0),
        ),
        (
            "process_open_fds",
            G,
            "Number of open file descriptors.",
            gauge(r, 8.0, 30.0, true),
        ),
        (
            "process_resident_memory_bytes",
            G,
            "Resident memory size in bytes.",
            gauge(r, 1.5e7, 4e7, true),
        ),
        (
            "process_start_time_seconds",
            G,
            "Start time of the process since unix epoch in seconds.",
            Model::StartTime,
        ),
        (
            "process_virtual_memory_bytes",
            G,
            "Virtual memory size in bytes.",
            gauge(r, 7e8, 1.5e9, true),
        ),
        (
            "process_virtual_memory_max_bytes",
            G,
            "Maximum amount of virtual memory available in bytes.",
            Model::Const(1.8446744073709552e19),
        ),
    ] {
        b.add(m, t, help, "", &[], model);
    }
    for code in ["200", "500", "503"] {
        let m = if code == "200" {
            Model::Counter {
                base: 0.0,
                rate: 1.0 / 15.0,
                int: true,
            }
        } else {
            Model::Const(0.0)
        };
        b.add(
            "promhttp_metric_handler_requests_total",
            C,
            "Total number of scrapes by HTTP status code.",
            "",
            &[("code", code)],
            m,
        );
    }
    b.add(
        "promhttp_metric_handler_requests_in_flight",
        G,
        "Current number of scrapes being served.",
        "",
        &[],
        Model::Const(1.0),
    );
}

/// cAdvisor series of one pod (pod cgroup + network) and its containers:
/// ~28 per container plus ~16 per pod.
pub fn cadvisor_pod(b: &mut BlockBuilder, seed: u64, pod: &Pod) {
    let r = &mut rng(seed, &[3, pod.identity]);
    let pod_id = format!("/kubepods/burstable/pod{}", pod.uid);
    let pause_id = format!("{pod_id}/{}", pod.sandbox_id);
    let cpu_rate: f64 = r.random_range(0.01..1.5);
    let mem: f64 = r.random_range(3e7..4e9f64).floor();
    // Pod cgroup (container="" like kubelet's cAdvisor endpoint).
    let pod_labels = [
        ("container", ""),
        ("id", pod_id.as_str()),
        ("image", ""),
        ("name", ""),
        ("namespace", pod.namespace.as_str()),
        ("pod", pod.name.as_str()),
    ];
    b.add(
        "container_cpu_usage_seconds_total",
        C,
        "Cumulative cpu time consumed in seconds.",
        "",
        &[
            ("container", ""),
            ("cpu", "total"),
            ("id", &pod_id),
            ("image", ""),
            ("name", ""),
            ("namespace", &pod.namespace),
            ("pod", &pod.name),
        ],
        Model::Counter {
            base: 0.0,
            rate: cpu_rate * 1.02,
            int: false,
        },
    );
    b.add(
        "container_memory_working_set_bytes",
        G,
        "Current working set in bytes.",
        "",
        &pod_labels,
        Model::Gauge {
            base: mem * 1.1,
            amp: mem * 0.05,
            w: 0.01,
            phase: 0.0,
            int: true,
        },
    );
    b.add(
        "container_memory_usage_bytes",
        G,
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        "",
        &pod_labels,
        Model::Gauge {
            base: mem * 1.3,
            amp: mem * 0.05,
            w: 0.01,
            phase: 0.0,
            int: true,
        },
    );
    b.add(
        "container_spec_cpu_shares",
        G,
        "CPU share of the container.",
        "",
        &pod_labels,
        Model::Const(1024.0),
    );
    // Pause container: network lives in the sandbox.
    let pause_labels = [
        ("container", "POD"),
        ("id", pause_id.as_str()),
        ("image", "registry.k8s.io/pause:3.9"),
        ("name", pod.sandbox_id.as_str()),
        ("namespace", pod.namespace.as_str()),
        ("pod", pod.name.as_str()),
    ];
    for (m, lo, hi) in [
        ("receive_bytes_total", 1e3, 5e6),
        ("receive_packets_total", 1.0, 5e3),
        ("receive_errors_total", 0.0, 0.01),
        ("receive_packets_dropped_total", 0.0, 0.1),
        ("transmit_bytes_total", 1e3, 5e6),
        ("transmit_packets_total", 1.0, 5e3),
        ("transmit_errors_total", 0.0, 0.01),
        ("transmit_packets_dropped_total", 0.0, 0.1),
    ] {
        let model = counter(r, lo, hi, true);
        b.add(
            &format!("container_network_{m}"),
            C,
            &format!("Cumulative count of {m}"),
            "",
            &[
                ("container", "POD"),
                ("id", &pause_id),
                ("image", "registry.k8s.io/pause:3.9"),
                ("interface", "eth0"),
                ("name", &pod.sandbox_id),
                ("namespace", &pod.namespace),
                ("pod", &pod.name),
            ],
            model,
        );
    }
    b.add(
        "container_memory_working_set_bytes",
        G,
        "Current working set in bytes.",
        "",
        &pause_labels,
        Model::Const(401408.0),
    );
    b.add(
        "container_cpu_usage_seconds_total",
        C,
        "Cumulative cpu time consumed in seconds.",
        "",
        &[
            ("container", "POD"),
            ("cpu", "total"),
            ("id", &pause_id),
            ("image", "registry.k8s.io/pause:3.9"),
            ("name", &pod.sandbox_id),
            ("namespace", &pod.namespace),
            ("pod", &pod.name),
        ],
        Model::Counter {
            base: 0.0,
            rate: 0.0001,
            int: false,
        },
    );
    for c in &pod.containers {
        let id = format!("{pod_id}/{}", c.id);
        let l = [
            ("container", c.name.as_str()),
            ("id", id.as_str()),
            ("image", c.image.as_str()),
            ("name", c.id.as_str()),
            ("namespace", pod.namespace.as_str()),
            ("pod", pod.name.as_str()),
        ];
        let cpu = cpu_rate / pod.containers.len() as f64;
        let cmem = mem / pod.containers.len() as f64;
        let with = |extra: (&'static str, &'static str)| {
            let mut v: Vec<(&str, &str)> = l.to_vec();
            v.push(extra);
            v.sort_by(|a, b| a.0.cmp(b.0));
            v
        };
        b.add(
            "container_cpu_usage_seconds_total",
            C,
            "Cumulative cpu time consumed in seconds.",
            "",
            &with(("cpu", "total")),
            Model::Counter {
                base: 0.0,
                rate: cpu,
                int: false,
            },
        );
        b.add(
            "container_cpu_user_seconds_total",
            C,
            "Cumulative user cpu time consumed in seconds.",
            "",
            &l,
            Model::Counter {
                base: 0.0,
                rate: cpu * 0.8,
                int: false,
            },
        );
        b.add(
            "container_cpu_system_seconds_total",
            C,
            "Cumulative system cpu time consumed in seconds.",
            "",
            &l,
            Model::Counter {
                base: 0.0,
                rate: cpu * 0.2,
                int: false,
            },
        );
        b.add(
            "container_cpu_cfs_periods_total",
            C,
            "Number of elapsed enforcement period intervals.",
            "",
            &l,
            Model::Counter {
                base: 0.0,
                rate: 10.0,
                int: true,
            },
        );
        let m = counter(r, 0.0, 2.0, true);
        b.add(
            "container_cpu_cfs_throttled_periods_total",
            C,
            "Number of throttled period intervals.",
            "",
            &l,
            m,
        );
        let m = counter(r, 0.0, 0.2, false);
        b.add(
            "container_cpu_cfs_throttled_seconds_total",
            C,
            "Total time duration the container has been throttled.",
            "",
            &l,
            m,
        );
        for (m, f) in [
            ("container_memory_usage_bytes", 1.2),
            ("container_memory_working_set_bytes", 1.0),
            ("container_memory_rss", 0.8),
            ("container_memory_cache", 0.3),
            ("container_memory_mapped_file", 0.05),
            ("container_memory_max_usage_bytes", 1.4),
        ] {
            let model = Model::Gauge {
                base: cmem * f,
                amp: cmem * 0.05,
                w: r.random_range(0.001..0.02),
                phase: 0.0,
                int: true,
            };
            b.add(m, G, "Container memory statistic in bytes.", "", &l, model);
        }
        b.add(
            "container_memory_swap",
            G,
            "Container swap usage in bytes.",
            "",
            &l,
            Model::Const(0.0),
        );
        b.add(
            "container_memory_failcnt",
            C,
            "Number of memory usage hits limits",
            "",
            &l,
            Model::Const(0.0),
        );
        for (ft, sc, rate) in [
            ("pgfault", "container", 50.0),
            ("pgfault", "hierarchy", 50.0),
            ("pgmajfault", "container", 0.01),
            ("pgmajfault", "hierarchy", 0.01),
        ] {
            let mut v: Vec<(&str, &str)> = l.to_vec();
            v.push(("failure_type", ft));
            v.push(("scope", sc));
            v.sort_by(|a, b| a.0.cmp(b.0));
            b.add(
                "container_memory_failures_total",
                C,
                "Cumulative count of memory allocation failures.",
                "",
                &v,
                Model::Counter {
                    base: 0.0,
                    rate,
                    int: true,
                },
            );
        }
        for (m, lo, hi) in [
            ("reads_bytes_total", 0.0, 1e5),
            ("writes_bytes_total", 0.0, 1e5),
            ("reads_total", 0.0, 10.0),
            ("writes_total", 0.0, 10.0),
        ] {
            let model = counter(r, lo, hi, true);
            b.add(
                &format!("container_fs_{m}"),
                C,
                &format!("Cumulative count of {m}"),
                "",
                &with(("device", "/dev/nvme1n1")),
                model,
            );
        }
        let m = gauge(r, 1e4, 1e8, true);
        b.add(
            "container_fs_usage_bytes",
            G,
            "Number of bytes that are consumed by the container on this filesystem.",
            "",
            &with(("device", "/dev/nvme1n1")),
            m,
        );
        b.add(
            "container_last_seen",
            G,
            "Last time a container was seen by the exporter",
            "",
            &l,
            Model::Now,
        );
        b.add(
            "container_start_time_seconds",
            G,
            "Start time of the container since unix epoch in seconds.",
            "",
            &l,
            Model::StartTime,
        );
        b.add(
            "container_spec_cpu_period",
            G,
            "CPU period of the container.",
            "",
            &l,
            Model::Const(100000.0),
        );
        b.add(
            "container_spec_cpu_shares",
            G,
            "CPU share of the container.",
            "",
            &l,
            Model::Const(c.cpu_request * 1024.0),
        );
        b.add(
            "container_spec_memory_limit_bytes",
            G,
            "Memory limit for the container.",
            "",
            &l,
            Model::Const(c.mem_limit),
        );
        let m = gauge(r, 1.0, 200.0, true);
        b.add(
            "container_threads",
            G,
            "Number of threads running inside the container",
            "",
            &l,
            m,
        );
        let m = gauge(r, 5.0, 500.0, true);
        b.add(
            "container_file_descriptors",
            G,
            "Number of open file descriptors for the container.",
            "",
            &l,
            m,
        );
        b.add(
            "container_oom_events_total",
            C,
            "Count of out of memory events observed for the container",
            "",
            &l,
            Model::Const(0.0),
        );
    }
}

/// kube-state-metrics series of one pod: ~26 per pod plus ~19 per container.
pub fn ksm_pod(b: &mut BlockBuilder, seed: u64, pod: &Pod, node: &str, host_ip: &str) {
    let r = &mut rng(seed, &[4, pod.identity]);
    let ns = pod.namespace.as_str();
    let name = pod.name.as_str();
    let uid = pod.uid.as_str();
    let base = [("namespace", ns), ("pod", name), ("uid", uid)];
    b.add(
        "kube_pod_info",
        G,
        "Information about pod.",
        "",
        &[
            ("created_by_kind", "ReplicaSet"),
            ("created_by_name", &pod.replicaset),
            ("host_ip", host_ip),
            ("host_network", "false"),
            ("namespace", ns),
            ("node", node),
            ("pod", name),
            ("pod_ip", &pod.ip),
            ("priority_class", "default"),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    b.add(
        "kube_pod_owner",
        G,
        "Information about the Pod's owner.",
        "",
        &[
            ("namespace", ns),
            ("owner_is_controller", "true"),
            ("owner_kind", "ReplicaSet"),
            ("owner_name", &pod.replicaset),
            ("pod", name),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    b.add(
        "kube_pod_labels",
        G,
        "Kubernetes labels converted to Prometheus labels.",
        "",
        &[
            ("label_app_kubernetes_io_name", &pod.workload),
            ("label_pod_template_hash", &pod.template_hash),
            ("namespace", ns),
            ("pod", name),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    b.add(
        "kube_pod_created",
        G,
        "Unix creation timestamp",
        "",
        &base,
        Model::StartTime,
    );
    b.add(
        "kube_pod_start_time",
        G,
        "Start time in unix timestamp for a pod.",
        "",
        &base,
        Model::StartTime,
    );
    b.add(
        "kube_pod_status_scheduled_time",
        G,
        "Unix timestamp when pod moved into scheduled status",
        "",
        &base,
        Model::StartTime,
    );
    b.add(
        "kube_pod_status_ready_time",
        G,
        "Readiness achieved time in unix timestamp for a pod.",
        "",
        &base,
        Model::StartTime,
    );
    for phase in ["Failed", "Pending", "Running", "Succeeded", "Unknown"] {
        b.add(
            "kube_pod_status_phase",
            G,
            "The pods current phase.",
            "",
            &[
                ("namespace", ns),
                ("phase", phase),
                ("pod", name),
                ("uid", uid),
            ],
            Model::Const(if phase == "Running" { 1.0 } else { 0.0 }),
        );
    }
    for (fam, help) in [
        (
            "kube_pod_status_ready",
            "Describes whether the pod is ready to serve requests.",
        ),
        (
            "kube_pod_status_scheduled",
            "Describes the status of the scheduling process for the pod.",
        ),
    ] {
        for cond in ["false", "true", "unknown"] {
            b.add(
                fam,
                G,
                help,
                "",
                &[
                    ("condition", cond),
                    ("namespace", ns),
                    ("pod", name),
                    ("uid", uid),
                ],
                Model::Const(if cond == "true" { 1.0 } else { 0.0 }),
            );
        }
    }
    for qos in ["BestEffort", "Burstable", "Guaranteed"] {
        b.add(
            "kube_pod_status_qos_class",
            G,
            "The pods current qosClass.",
            "",
            &[
                ("namespace", ns),
                ("pod", name),
                ("qos_class", qos),
                ("uid", uid),
            ],
            Model::Const(if qos == "Burstable" { 1.0 } else { 0.0 }),
        );
    }
    b.add(
        "kube_pod_restart_policy",
        G,
        "Describes the restart policy in use by this pod.",
        "",
        &[
            ("namespace", ns),
            ("pod", name),
            ("type", "Always"),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    b.add(
        "kube_pod_service_account",
        G,
        "The service account for a pod.",
        "",
        &[
            ("namespace", ns),
            ("pod", name),
            ("service_account", &pod.workload),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
    ] {
        b.add(
            "kube_pod_tolerations",
            G,
            "Information about the pod tolerations",
            "",
            &[
                ("effect", effect),
                ("key", key),
                ("namespace", ns),
                ("operator", "Exists"),
                ("pod", name),
                ("toleration_seconds", "300"),
                ("uid", uid),
            ],
            Model::Const(1.0),
        );
    }
    b.add(
        "kube_pod_ips",
        G,
        "Pod IP addresses",
        "",
        &[
            ("ip", &pod.ip),
            ("ip_family", "4"),
            ("namespace", ns),
            ("pod", name),
            ("uid", uid),
        ],
        Model::Const(1.0),
    );
    for c in &pod.containers {
        let cn = c.name.as_str();
        let cl = [
            ("container", cn),
            ("namespace", ns),
            ("pod", name),
            ("uid", uid),
        ];
        let cid = format!("containerd://{}", c.id);
        b.add(
            "kube_pod_container_info",
            G,
            "Information about a container in a pod.",
            "",
            &[
                ("container", cn),
                ("container_id", &cid),
                ("image", &c.image),
                ("image_id", &c.image_id),
                ("image_spec", &c.image),
                ("namespace", ns),
                ("pod", name),
                ("uid", uid),
            ],
            Model::Const(1.0),
        );
        for (fam, v) in [
            ("kube_pod_container_status_ready", 1.0),
            ("kube_pod_container_status_running", 1.0),
            ("kube_pod_container_status_terminated", 0.0),
            ("kube_pod_container_status_waiting", 0.0),
        ] {
            b.add(
                fam,
                G,
                "Describes the container's status.",
                "",
                &cl,
                Model::Const(v),
            );
        }
        let restarts = if r.random_bool(0.05) {
            r.random_range(0.0005..0.003)
        } else {
            0.0
        };
        b.add(
            "kube_pod_container_status_restarts_total",
            C,
            "The number of container restarts per container.",
            "",
            &cl,
            Model::Counter {
                base: 0.0,
                rate: restarts,
                int: true,
            },
        );
        b.add(
            "kube_pod_container_state_started",
            G,
            "Start time in unix timestamp for a pod container.",
            "",
            &cl,
            Model::StartTime,
        );
        for (fam, help, f) in [
            (
                "kube_pod_container_resource_requests",
                "The number of requested request resource by a container.",
                1.0,
            ),
            (
                "kube_pod_container_resource_limits",
                "The number of requested limit resource by a container.",
                2.0,
            ),
        ] {
            b.add(
                fam,
                G,
                help,
                "",
                &[
                    ("container", cn),
                    ("namespace", ns),
                    ("node", node),
                    ("pod", name),
                    ("resource", "cpu"),
                    ("uid", uid),
                    ("unit", "core"),
                ],
                Model::Const(c.cpu_request * f),
            );
            b.add(
                fam,
                G,
                help,
                "",
                &[
                    ("container", cn),
                    ("namespace", ns),
                    ("node", node),
                    ("pod", name),
                    ("resource", "memory"),
                    ("uid", uid),
                    ("unit", "byte"),
                ],
                Model::Const(c.mem_limit / 2.0 * f),
            );
        }
        for reason in [
            "ContainerCreating",
            "CrashLoopBackOff",
            "CreateContainerConfigError",
            "ErrImagePull",
            "ImagePullBackOff",
        ] {
            b.add(
                "kube_pod_container_status_waiting_reason",
                G,
                "Describes the reason the container is currently in waiting state.",
                "",
                &[
                    ("container", cn),
                    ("namespace", ns),
                    ("pod", name),
                    ("reason", reason),
                    ("uid", uid),
                ],
                Model::Const(0.0),
            );
        }
        for reason in ["Completed", "Error", "OOMKilled"] {
            b.add(
                "kube_pod_container_status_last_terminated_reason",
                G,
                "Describes the last reason the container was in terminated state.",
                "",
                &[
                    ("container", cn),
                    ("namespace", ns),
                    ("pod", name),
                    ("reason", reason),
                    ("uid", uid),
                ],
                Model::Const(0.0),
            );
        }
    }
}

/// kube-state-metrics series of one node (~22).
pub fn ksm_node(b: &mut BlockBuilder, seed: u64, node_id: u64, node: &str, host_ip: &str) {
    let r = &mut rng(seed, &[5, node_id]);
    b.add(
        "kube_node_info",
        G,
        "Information about a cluster node.",
        "",
        &[
            ("container_runtime_version", "containerd://1.7.22"),
            ("internal_ip", host_ip),
            ("kernel_version", "6.1.0-27-cloud-amd64"),
            ("kubelet_version", "v1.30.5"),
            ("kubeproxy_version", "v1.30.5"),
            ("node", node),
            ("os_image", "Debian GNU/Linux 12 (bookworm)"),
            ("pod_cidr", "10.244.0.0/24"),
            (
                "provider_id",
                &format!("aws:///us-east-1a/i-{:017x}", node_id),
            ),
            (
                "system_uuid",
                &format!("ec2{:029x}", hash(seed, &[6, node_id]) as u128),
            ),
        ],
        Model::Const(1.0),
    );
    b.add(
        "kube_node_created",
        G,
        "Unix creation timestamp",
        "",
        &[("node", node)],
        Model::StartTime,
    );
    for cond in [
        "DiskPressure",
        "MemoryPressure",
        "NetworkUnavailable",
        "PIDPressure",
        "Ready",
    ] {
        for status in ["false", "true", "unknown"] {
            let on = (cond == "Ready") == (status == "true") && status != "unknown";
            b.add(
                "kube_node_status_condition",
                G,
                "The condition of a cluster node.",
                "",
                &[("condition", cond), ("node", node), ("status", status)],
                Model::Const(if on { 1.0 } else { 0.0 }),
            );
        }
    }
    for (res, unit, v) in [
        ("cpu", "core", 16.0),
        ("memory", "byte", 6.7e10),
        ("pods", "integer", 110.0),
        ("ephemeral_storage", "byte", 1.9e11),
    ] {
        b.add(
            "kube_node_status_capacity",
            G,
            "The capacity for different resources of a node.",
            "",
            &[("node", node), ("resource", res), ("unit", unit)],
            Model::Const(v),
        );
        b.add(
            "kube_node_status_allocatable",
            G,
            "The allocatable for different resources of a node.",
            "",
            &[("node", node), ("resource", res), ("unit", unit)],
            Model::Const((v * 0.92f64).floor()),
        );
    }
    let _ = r.random::<u64>();
    b.add(
        "kube_node_spec_unschedulable",
        G,
        "Whether a node can schedule new pods.",
        "",
        &[("node", node)],
        Model::Const(0.0),
    );
}

/// kube-state-metrics series of one Deployment (~8).
pub fn ksm_deployment(b: &mut BlockBuilder, ns: &str, name: &str, replicas: f64) {
    let l = [("deployment", name), ("namespace", ns)];
    for (fam, v) in [
        ("kube_deployment_spec_replicas", replicas),
        ("kube_deployment_status_replicas", replicas),
        ("kube_deployment_status_replicas_available", replicas),
        ("kube_deployment_status_replicas_unavailable", 0.0),
        ("kube_deployment_status_replicas_updated", replicas),
        ("kube_deployment_status_observed_generation", 3.0),
        ("kube_deployment_metadata_generation", 3.0),
    ] {
        b.add(fam, G, "Deployment status.", "", &l, Model::Const(v));
    }
    b.add(
        "kube_deployment_created",
        G,
        "Unix creation timestamp",
        "",
        &l,
        Model::StartTime,
    );
}

const DCGM: [(&str, Type, &str, f64, f64); 21] = [
    (
        "DCGM_FI_DEV_SM_CLOCK",
        G,
        "SM clock frequency (in MHz).",
        1100.0,
        1980.0,
    ),
    (
        "DCGM_FI_DEV_MEM_CLOCK",
        G,
        "Memory clock frequency (in MHz).",
        2619.0,
        2620.0,
    ),
    (
        "DCGM_FI_DEV_MEMORY_TEMP",
        G,
        "Memory temperature (in C).",
        35.0,
        60.0,
    ),
    (
        "DCGM_FI_DEV_GPU_TEMP",
        G,
        "GPU temperature (in C).",
        30.0,
        75.0,
    ),
    (
        "DCGM_FI_DEV_POWER_USAGE",
        G,
        "Power draw (in W).",
        70.0,
        690.0,
    ),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        C,
        "Total energy consumption since boot (in mJ).",
        7e4,
        6.9e5,
    ),
    (
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        C,
        "Total number of PCIe retries.",
        0.0,
        0.001,
    ),
    (
        "DCGM_FI_DEV_GPU_UTIL",
        G,
        "GPU utilization (in %).",
        0.0,
        100.0,
    ),
    (
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        G,
        "Memory utilization (in %).",
        0.0,
        60.0,
    ),
    (
        "DCGM_FI_DEV_ENC_UTIL",
        G,
        "Encoder utilization (in %).",
        0.0,
        1.0,
    ),
    (
        "DCGM_FI_DEV_DEC_UTIL",
        G,
        "Decoder utilization (in %).",
        0.0,
        1.0,
    ),
    (
        "DCGM_FI_DEV_XID_ERRORS",
        G,
        "Value of the last XID error encountered.",
        0.0,
        0.5,
    ),
    (
        "DCGM_FI_DEV_FB_FREE",
        G,
        "Frame buffer memory free (in MiB).",
        1000.0,
        80000.0,
    ),
    (
        "DCGM_FI_DEV_FB_USED",
        G,
        "Frame buffer memory used (in MiB).",
        500.0,
        80000.0,
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL",
        C,
        "Total number of NVLink bandwidth counters for all lanes.",
        0.0,
        1e6,
    ),
    (
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        G,
        "vGPU License status",
        0.0,
        0.5,
    ),
    (
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        C,
        "Number of remapped rows for uncorrectable errors",
        0.0,
        0.0001,
    ),
    (
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        C,
        "Number of remapped rows for correctable errors",
        0.0,
        0.0001,
    ),
    (
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        G,
        "Whether remapping of rows has failed",
        0.0,
        0.5,
    ),
    (
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        G,
        "Ratio of time the graphics engine is active.",
        0.0,
        1.0,
    ),
    (
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        G,
        "Ratio of cycles the tensor (HMMA) pipe is active.",
        0.0,
        0.8,
    ),
];

/// DCGM exporter: 21 series per GPU (+1 DRAM activity = 22).
pub fn dcgm_gpu(b: &mut BlockBuilder, seed: u64, node_id: u64, gpu: usize, host: &str) {
    let r = &mut rng(seed, &[7, node_id, gpu as u64]);
    let g = gpu.to_string();
    let dev = format!("nvidia{gpu}");
    let h = hash(seed, &[8, node_id, gpu as u64]);
    let uuid = format!(
        "GPU-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        h as u32,
        (h >> 32) as u16,
        (h >> 48) as u16,
        (h >> 8) as u16,
        hash(h, &[gpu as u64]) & 0xffff_ffff_ffff
    );
    let l = [
        ("gpu", g.as_str()),
        ("UUID", uuid.as_str()),
        ("device", dev.as_str()),
        ("modelName", "NVIDIA H100 80GB HBM3"),
        ("Hostname", host),
        ("DCGM_FI_DRIVER_VERSION", "550.90.07"),
    ];
    for (name, typ, help, lo, hi) in DCGM {
        let int = !name.contains("PROF");
        let m = if typ == C {
            counter(r, lo, hi.max(lo + 1e-9), true)
        } else {
            gauge(r, lo, hi.max(lo + 1e-9), int)
        };
        b.add(name, typ, help, "", &l, m);
    }
    let m = gauge(r, 0.0, 0.7, false);
    b.add(
        "DCGM_FI_PROF_DRAM_ACTIVE",
        G,
        "Ratio of cycles the device memory interface is active sending or receiving data.",
        "",
        &l,
        m,
    );
}
