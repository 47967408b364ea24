//! Counts behind the speed figures: images per forward pass, FLOPs per training pass, and
//! the process's peak resident memory.

use siamese_layers::Net;
use siamese_net::{LayerKind, NetSpec};

/// Images one forward pass reads: each Data/Input layer's batch, times the number of parts a
/// Slice layer cuts its first top into (a siamese pair record is two images).
pub fn images_per_forward(spec: &NetSpec) -> usize {
    spec.layers
        .iter()
        .filter(|l| matches!(l.kind(), LayerKind::Data | LayerKind::Input))
        .filter_map(|l| {
            let top = *l.tops.first()?;
            let batch = *spec.blobs[top].shape.as_ref()?.first()?;
            let parts = spec
                .layers
                .iter()
                .find(|s| s.kind() == LayerKind::Slice && s.bottoms.first() == Some(&top))
                .map_or(1, |s| s.tops.len());
            Some(batch * parts)
        })
        .sum()
}

/// FLOPs of one forward and backward pass: the forward FLOPs of every layer times 3
/// (the backward pass computes both the data and the weight gradients, about twice the forward).
pub fn train_flops_per_forward(net: &Net) -> f64 {
    3.0 * forward_flops(net)
}

/// FLOPs of one forward pass.
pub fn forward_flops(net: &Net) -> f64 {
    (0..net.layer_names().len())
        .map(|i| net.layer_flops(i) as f64)
        .sum()
}

/// Peak resident set size in MiB (`VmHWM` of /proc/self/status); `None` where unavailable.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
