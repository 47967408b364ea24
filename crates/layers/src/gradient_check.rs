//! Test support: Caffe's numerical gradient check (central differences against `backward`) and
//! fixed-precision text rendering of blobs for insta snapshots.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Blob, CpuBackend, Layer};

/// A blob of uniform(-1, 1) values.
pub fn random_blob(shape: &[usize], seed: u64) -> Blob {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count = shape.iter().product();
    Blob::from_data(
        shape,
        (0..count).map(|_| rng.random_range(-1.0..1.0)).collect(),
    )
}

/// A blob of distinct values 0.05 apart, shuffled, centred on zero and none closer to zero
/// than 0.025: no two differ by less than the check's step, so maxima and signs are stable.
pub fn distinct_blob(shape: &[usize], seed: u64) -> Blob {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let count: usize = shape.iter().product();
    let mut values: Vec<f32> = (0..count)
        .map(|i| (i as f32 - count as f32 / 2.0 + 0.5) * 0.05)
        .collect();
    values.shuffle(&mut rng);
    Blob::from_data(shape, values)
}

/// Renders a blob as text: its shape, then rows along the last axis, fixed 4 decimals.
pub fn render(blob: &Blob) -> String {
    let mut out = format!("shape {:?}\n", blob.shape);
    let row = blob.shape.last().copied().unwrap_or(1).max(1);
    for chunk in blob.data.chunks(row) {
        let cells: Vec<String> = chunk.iter().map(|v| format!("{v:9.4}")).collect();
        out.push_str(&cells.join(" "));
        out.push('\n');
    }
    out
}

/// Caffe's `GradientChecker`: objective `E = ½ Σ top²` over all tops, analytic gradients from
/// `backward` with `top.diff = top.data`, numeric ones by central differences of `step`;
/// passes when `|analytic − numeric| ≤ threshold · max(|analytic|, |numeric|, 1)`.
pub struct GradientCheck {
    step: f32,
    threshold: f32,
    tops: usize,
}

#[derive(Clone, Copy)]
enum Target {
    Bottom(usize, usize),
    Param(usize, usize),
}

impl GradientCheck {
    pub fn new() -> Self {
        Self {
            step: 1e-2,
            threshold: 1e-3,
            tops: 1,
        }
    }

    /// The finite difference's step (default 0.01). For a layer linear in each input the
    /// objective is quadratic, so central differences are exact at any step, and a larger one
    /// keeps the tops' rounding from swamping the difference.
    pub fn step(self, step: f32) -> Self {
        Self { step, ..self }
    }

    /// The number of tops the layer produces (default 1).
    pub fn tops(self, tops: usize) -> Self {
        Self { tops, ..self }
    }

    /// Sets the layer up and checks every bottom it allows a gradient for, and every parameter
    /// (filled with uniform(-1, 1) from `seed`).
    pub fn check(&self, layer: &mut dyn Layer, bottom: Vec<Blob>, seed: u64) {
        let shapes = layer.setup(&bottom, self.tops).unwrap();
        let params: Vec<Blob> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| random_blob(s, seed * 100 + i as u64))
            .collect();
        self.check_with(layer, bottom, params);
    }

    /// Like [`GradientCheck::check`] with the given parameters; the layer is already set up.
    pub fn check_with(&self, layer: &mut dyn Layer, mut bottom: Vec<Blob>, mut params: Vec<Blob>) {
        let mut top: Vec<Blob> = (0..self.tops).map(|_| Blob::default()).collect();
        let propagate: Vec<bool> = (0..bottom.len())
            .map(|i| layer.allows_backward(i))
            .collect();
        self.objective(layer, &bottom, &params, &mut top);
        for t in &mut top {
            t.diff.copy_from_slice(&t.data);
        }
        for p in &mut params {
            p.diff.fill(0.0);
        }
        for b in &mut bottom {
            b.diff.fill(f32::NAN); // backward must overwrite every checked bottom diff
        }
        layer.backward(&CpuBackend, &top, &mut params, &propagate, &mut bottom);
        let mut targets = Vec::new();
        for (i, b) in bottom.iter().enumerate().filter(|&(i, _)| propagate[i]) {
            targets.extend((0..b.count()).map(|j| (Target::Bottom(i, j), b.diff[j])));
        }
        for (i, p) in params.iter().enumerate() {
            targets.extend((0..p.count()).map(|j| (Target::Param(i, j), p.diff[j])));
        }
        assert!(!targets.is_empty(), "{}: nothing to check", layer.kind());
        for (target, analytic) in targets {
            let numeric = self.numeric(layer, &mut bottom, &mut params, &mut top, target);
            let what = match target {
                Target::Bottom(i, j) => format!("{} bottom {i}[{j}]", layer.kind()),
                Target::Param(i, j) => format!("{} param {i}[{j}]", layer.kind()),
            };
            self.compare(analytic, numeric, &what);
        }
    }

    fn objective(
        &self,
        layer: &mut dyn Layer,
        bottom: &[Blob],
        params: &[Blob],
        top: &mut [Blob],
    ) -> f64 {
        layer.reshape(bottom, top).unwrap();
        layer.forward(&CpuBackend, bottom, params, top).unwrap();
        top.iter()
            .flat_map(|t| &t.data)
            .map(|&v| 0.5 * v as f64 * v as f64)
            .sum()
    }

    fn numeric(
        &self,
        layer: &mut dyn Layer,
        bottom: &mut [Blob],
        params: &mut [Blob],
        top: &mut [Blob],
        target: Target,
    ) -> f64 {
        let set = |bottom: &mut [Blob], params: &mut [Blob], v: f32| match target {
            Target::Bottom(i, j) => bottom[i].data[j] = v,
            Target::Param(i, j) => params[i].data[j] = v,
        };
        let original = match target {
            Target::Bottom(i, j) => bottom[i].data[j],
            Target::Param(i, j) => params[i].data[j],
        };
        set(bottom, params, original + self.step);
        let plus = self.objective(layer, bottom, params, top);
        set(bottom, params, original - self.step);
        let minus = self.objective(layer, bottom, params, top);
        set(bottom, params, original);
        (plus - minus) / (2.0 * self.step as f64)
    }

    fn compare(&self, analytic: f32, numeric: f64, what: &str) {
        let analytic = analytic as f64;
        let scale = analytic.abs().max(numeric.abs()).max(1.0);
        assert!(
            (analytic - numeric).abs() <= self.threshold as f64 * scale,
            "{what}: analytic {analytic} vs numeric {numeric}"
        );
    }
}
