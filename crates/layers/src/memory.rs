//! What a net will hold in host memory, reckoned from its spec before anything is allocated,
//! and what this process may still use (its cgroup's limit where one is set, MemAvailable).

use std::fmt;

use siamese_net::{LayerKind, NetSpec};

/// Resident memory of a siamese process beyond what a plan lists: the binary and its
/// libraries, the threads' stacks, the GEMM packing buffers and the allocator's slack.
/// Measured once: the peak RSS of `siamese train` of a one-weight net, 8.1 MiB on 1 and on 2
/// threads (docs/reliability.md, "Memory budget").
pub const PROCESS_OVERHEAD_BYTES: u64 = 8_500_000;

/// One consumer of memory: what it is, how its size comes about, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryItem {
    /// `ip1 weights`, `conv1 top "conv1"`, `data reader "data"`.
    pub what: String,
    /// `20000000 × 800 (value, gradient)`.
    pub detail: String,
    pub bytes: u64,
}

impl fmt::Display for MemoryItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail.as_str() {
            "" => write!(f, "{} = {}", self.what, format_bytes(self.bytes)),
            detail => write!(f, "{} {detail} = {}", self.what, format_bytes(self.bytes)),
        }
    }
}

/// Everything a net (or a solver with its nets) will allocate, item by item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    pub items: Vec<MemoryItem>,
}

impl MemoryPlan {
    /// The plan of the net `spec` describes: each parameter with its gradient, each layer's
    /// tops with their gradients (every top is a blob of its own), each layer's scratch and
    /// each Data layer's records (held once, plus their decoding while loading).
    /// Blobs whose shape is unknown (an unreadable data source) are left out.
    pub fn of_net(spec: &NetSpec) -> MemoryPlan {
        let mut plan = MemoryPlan::default();
        for p in &spec.params {
            let Some(owner) = spec.layers.get(p.owner.0) else {
                continue;
            };
            if p.is_shaped() {
                let slot = if p.owner.1 == 0 { "weights" } else { "bias" };
                plan.push(
                    format!("{} {slot}", owner.name),
                    format!("{} (value, gradient)", dims(&p.shape)),
                    bytes_of(&p.shape, 2 * 4),
                );
            }
        }
        let shape_of = |b: usize| spec.blobs[b].shape.as_deref();
        for layer in &spec.layers {
            for &t in &layer.tops {
                if let Some(shape) = shape_of(t) {
                    plan.push(
                        format!("{} top \"{}\"", layer.name, spec.blobs[t].name),
                        format!("{} (data, gradient)", dims(shape)),
                        bytes_of(shape, 2 * 4),
                    );
                }
            }
            let bottoms: Option<Vec<&[usize]>> =
                layer.bottoms.iter().map(|&b| shape_of(b)).collect();
            let tops: Option<Vec<&[usize]>> = layer.tops.iter().map(|&t| shape_of(t)).collect();
            if let (Some(bottoms), Some(tops)) = (bottoms, tops) {
                for (what, bytes) in
                    crate::layers::scratch_bytes(&layer.name, &layer.config, &bottoms, &tops)
                {
                    plan.push(format!("{} {what}", layer.name), String::new(), bytes);
                }
            }
        }
        plan.add_data_readers(spec);
        plan
    }

    /// Each Data layer holds its records as bytes with an f32 label; loading one decodes all
    /// its records first (the largest such moment is counted once).
    fn add_data_readers(&mut self, spec: &NetSpec) {
        let mut loading: Option<MemoryItem> = None;
        for layer in spec.layers.iter().filter(|l| l.kind() == LayerKind::Data) {
            let Some(probe) = layer.data_probe else {
                continue;
            };
            let record = probe.shape.iter().product::<usize>() as u64;
            let records = probe.records as u64;
            self.push(
                format!("{} records", layer.name),
                format!("{records} × {record} bytes"),
                records.saturating_mul(record + 4),
            );
            let decoded = records.saturating_mul(record + DECODED_RECORD_OVERHEAD);
            if loading.as_ref().is_none_or(|l| l.bytes < decoded) {
                loading = Some(MemoryItem {
                    what: format!("{} loading", layer.name),
                    detail: format!("{records} decoded records"),
                    bytes: decoded,
                });
            }
        }
        self.items.extend(loading);
    }

    pub fn push(&mut self, what: String, detail: String, bytes: u64) {
        self.items.push(MemoryItem {
            what,
            detail,
            bytes,
        });
    }

    /// The same plan with `prefix` before every item's name (`test net: `).
    pub fn prefixed(mut self, prefix: &str) -> MemoryPlan {
        for item in &mut self.items {
            item.what.insert_str(0, prefix);
        }
        self
    }

    pub fn append(&mut self, other: MemoryPlan) {
        self.items.extend(other.items);
    }

    /// Bytes of every item, plus [`PROCESS_OVERHEAD_BYTES`].
    pub fn total(&self) -> u64 {
        self.items
            .iter()
            .fold(PROCESS_OVERHEAD_BYTES, |n, i| n.saturating_add(i.bytes))
    }

    /// The `n` largest items, largest first.
    pub fn biggest(&self, n: usize) -> Vec<MemoryItem> {
        let mut items = self.items.clone();
        items.sort_by_key(|i| std::cmp::Reverse(i.bytes));
        items.truncate(n);
        items
    }

    /// Fails when the plan does not fit `available` (`None`: nothing known, nothing checked).
    /// `what` names who needs it ("net \"mnist_siamese\"", "solver").
    pub fn check(&self, what: &str, available: Option<Available>) -> Result<(), MemoryError> {
        match available {
            Some(a) if self.total() > a.bytes => Err(MemoryError {
                what: what.to_string(),
                needed: self.total(),
                available: a,
                biggest: self.biggest(3),
                more: self.items.len() > 3,
            }),
            _ => Ok(()),
        }
    }

    /// [`MemoryPlan::check`] against what this process may use now.
    pub fn check_now(&self, what: &str) -> Result<(), MemoryError> {
        self.check(what, Available::now())
    }
}

/// A decoded Datum beside its bytes, while a database loads: the key, the struct and the
/// allocator's rounding of both heap blocks.
const DECODED_RECORD_OVERHEAD: u64 =
    (std::mem::size_of::<(String, siamese_proto::Datum)>() + 16 + 2 * 16) as u64;

/// A plan that does not fit: who needs how much, the biggest consumers, what is available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs {} ({}{}), {} available ({})",
    format_bytes(*needed),
    biggest.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
    if *more { ", …" } else { "" },
    format_bytes(available.bytes),
    available.source
)]
pub struct MemoryError {
    pub what: String,
    pub needed: u64,
    pub available: Available,
    pub biggest: Vec<MemoryItem>,
    /// Whether there are items beyond `biggest`.
    pub more: bool,
}

/// Memory this process may still use, and where that figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Available {
    pub bytes: u64,
    pub source: AvailableSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AvailableSource {
    /// The room left under the tightest memory limit of this process's cgroup.
    Cgroup,
    /// `MemAvailable` of /proc/meminfo.
    MemAvailable,
}

impl fmt::Display for AvailableSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AvailableSource::Cgroup => "left under the cgroup's memory limit",
            AvailableSource::MemAvailable => "MemAvailable",
        })
    }
}

impl Available {
    /// The tighter of the cgroup's room and MemAvailable; `None` where neither can be read.
    pub fn now() -> Option<Available> {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let meminfo = read("/proc/meminfo").and_then(|t| mem_available(&t));
        let cgroup = cgroup_room(&read);
        match (cgroup, meminfo) {
            (Some(c), Some(m)) if c < m => Some(Available {
                bytes: c,
                source: AvailableSource::Cgroup,
            }),
            (Some(c), None) => Some(Available {
                bytes: c,
                source: AvailableSource::Cgroup,
            }),
            (_, Some(m)) => Some(Available {
                bytes: m,
                source: AvailableSource::MemAvailable,
            }),
            (None, None) => None,
        }
    }
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.saturating_mul(1024))
}

/// The room under the tightest limit of this process's cgroup (v2, walking up to the root;
/// else v1's memory controller); `None` when no limit is set.
fn cgroup_room(read: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let room = |limit: &str, usage: &str| -> Option<u64> {
        let limit: u64 = limit.trim().parse().ok()?;
        let usage: u64 = usage.trim().parse().unwrap_or(0);
        // v1 reports "no limit" as a number near 2^63.
        (limit < 1 << 60).then(|| limit.saturating_sub(usage))
    };
    let own = read("/proc/self/cgroup")?;
    if let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) {
        let mut dir = format!("/sys/fs/cgroup{}", path.trim_end_matches('/'));
        let mut tightest: Option<u64> = None;
        loop {
            let here = read(&format!("{dir}/memory.max"))
                .zip(read(&format!("{dir}/memory.current")).or(Some(String::new())))
                .and_then(|(l, u)| room(&l, &u));
            if let Some(r) = here {
                tightest = Some(tightest.map_or(r, |t| t.min(r)));
            }
            match dir.rfind('/') {
                Some(i) if dir.len() > "/sys/fs/cgroup".len() => dir.truncate(i),
                _ => break,
            }
        }
        return tightest;
    }
    let v1 = "/sys/fs/cgroup/memory";
    room(
        &read(&format!("{v1}/memory.limit_in_bytes"))?,
        &read(&format!("{v1}/memory.usage_in_bytes")).unwrap_or_default(),
    )
}

/// `count(shape) · per_value` bytes, saturating.
fn bytes_of(shape: &[usize], per_value: u64) -> u64 {
    shape
        .iter()
        .fold(per_value, |n, &d| n.saturating_mul(d as u64))
}

/// `64 × 20 × 24 × 24`; a scalar is `1`.
fn dims(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "1".to_string();
    }
    let d: Vec<String> = shape.iter().map(ToString::to_string).collect();
    d.join(" × ")
}

/// Bytes in decimal units with one decimal: `64.0 GB`, `3.2 MB`, `812 B`.
pub fn format_bytes(bytes: u64) -> String {
    if bytes == u64::MAX {
        return "more than 18 EB (the size overflows)".to_string();
    }
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        1_000_000_000..1_000_000_000_000 => format!("{:.1} GB", b / 1e9),
        _ => format!("{:.1} TB", b / 1e12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use siamese_net::parse::parse_net_text;
    use siamese_proto::Phase;

    fn spec(text: &str) -> NetSpec {
        NetSpec::build(
            &parse_net_text(text, "t.prototxt").unwrap(),
            Phase::Train,
            None,
        )
        .unwrap()
    }

    const BIG_IP: &str = "name: \"big\"
        layer { name: \"in\" type: \"Input\" top: \"x\" input_param { shape { dim: 2 dim: 800 } } }
        layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" inner_product_param { num_output: 20000000 } }";

    #[test]
    fn a_plan_counts_params_tops_and_gradients() {
        let plan = MemoryPlan::of_net(&spec(BIG_IP));
        let weights = plan.items.iter().find(|i| i.what == "ip1 weights").unwrap();
        assert_eq!(weights.bytes, 20_000_000 * 800 * 8);
        assert_eq!(weights.detail, "20000000 × 800 (value, gradient)");
        let top = plan
            .items
            .iter()
            .find(|i| i.what == "ip1 top \"y\"")
            .unwrap();
        assert_eq!(top.bytes, 2 * 20_000_000 * 8);
        let input = plan
            .items
            .iter()
            .find(|i| i.what == "in top \"x\"")
            .unwrap();
        assert_eq!(input.bytes, 2 * 800 * 8);
    }

    #[test]
    fn too_much_names_the_biggest_consumers_and_what_is_available() {
        let plan = MemoryPlan::of_net(&spec(BIG_IP));
        let available = Available {
            bytes: 22_900_000_000,
            source: AvailableSource::MemAvailable,
        };
        let e = plan
            .check("net \"big\"", Some(available))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("net \"big\" needs 128.5 GB (ip1 weights 20000000 × 800 (value, gradient) = 128.0 GB, "), "{e}");
        assert!(e.ends_with(", 22.9 GB available (MemAvailable)"), "{e}");
        assert!(!e.contains('\n'));
        let roomy = Available {
            bytes: u64::MAX - 1,
            ..available
        };
        assert_eq!(plan.check("net", Some(roomy)), Ok(()));
        assert_eq!(plan.check("net", None), Ok(()));
    }

    #[test]
    fn sizes_that_overflow_saturate_and_never_fit() {
        assert_eq!(bytes_of(&[usize::MAX, 2], 8), u64::MAX);
        let mut plan = MemoryPlan::of_net(&spec(BIG_IP));
        plan.push("huge".into(), String::new(), u64::MAX);
        assert_eq!(plan.total(), u64::MAX);
        let all = Available {
            bytes: u64::MAX - 1,
            source: AvailableSource::Cgroup,
        };
        let e = plan.check("net", Some(all)).unwrap_err().to_string();
        assert!(
            e.contains("huge = more than 18 EB (the size overflows)"),
            "{e}"
        );
    }

    #[test]
    fn available_memory_reads_meminfo_and_cgroup_limits() {
        assert_eq!(
            mem_available("MemTotal: 100 kB\nMemAvailable:    2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(mem_available("MemTotal: 100 kB\n"), None);
        let files = |limit: &'static str| {
            move |p: &str| -> Option<String> {
                match p {
                    "/proc/self/cgroup" => Some("0::/user.slice/job\n".into()),
                    "/sys/fs/cgroup/user.slice/job/memory.max" => Some(limit.into()),
                    "/sys/fs/cgroup/user.slice/job/memory.current" => Some("1000\n".into()),
                    "/sys/fs/cgroup/user.slice/memory.max" => Some("5000\n".into()),
                    "/sys/fs/cgroup/user.slice/memory.current" => Some("2000\n".into()),
                    _ => None,
                }
            }
        };
        assert_eq!(cgroup_room(&files("10000\n")), Some(3000));
        assert_eq!(cgroup_room(&files("2500\n")), Some(1500));
        let unlimited = |p: &str| -> Option<String> {
            match p {
                "/proc/self/cgroup" => Some("0::/\n".into()),
                "/sys/fs/cgroup/memory.max" => Some("max\n".into()),
                _ => None,
            }
        };
        assert_eq!(cgroup_room(&unlimited), None);
        let v1 = |p: &str| -> Option<String> {
            match p {
                "/proc/self/cgroup" => Some("4:memory:/\n".into()),
                "/sys/fs/cgroup/memory/memory.limit_in_bytes" => Some("8000\n".into()),
                "/sys/fs/cgroup/memory/memory.usage_in_bytes" => Some("3000\n".into()),
                _ => None,
            }
        };
        assert_eq!(cgroup_room(&v1), Some(5000));
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(format_bytes(812), "812 B");
        assert_eq!(format_bytes(3_200_000), "3.2 MB");
        assert_eq!(format_bytes(64_000_000_000), "64.0 GB");
        assert_eq!(format_bytes(1_600_000_000_000), "1.6 TB");
    }
}
