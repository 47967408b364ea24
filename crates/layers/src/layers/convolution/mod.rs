//! Convolution: per image, im2col then one GEMM with the weights `[num_output, channels, kh,
//! kw]` (Caffe's layout) straight into the top, or Winograd's F(4×4, 5×5) for 5×5 unit-stride
//! layers with several input channels ([`winograd`]); images split into tasks across the pool.

mod lanes;
mod winograd;

use rayon::prelude::*;
use siamese_net::LayerKind;
use siamese_net::layer::ConvConfig;

use super::Layer;
use crate::backend::{ConvGeometry, Gemm};
use crate::backend::{as_task, vectorized};
use crate::blob::try_resize;
use crate::{Backend, Blob, LayerError};

/// Caffe's `Convolution` (groups of 1, 2-D).
#[derive(Debug)]
pub struct Convolution {
    name: String,
    config: ConvConfig,
    pub(crate) num_output: usize,
    pub(crate) bias: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    pub(crate) geometry: Option<ConvGeometry>,
    pub(crate) batch: usize,
    /// Per task: one image's column matrix `[channels·kh·kw, out_h·out_w]` (cache-sized),
    /// reused for its gradient.
    cols: Vec<f32>,
    /// Per task: its share of the weight gradient `[num_output, channels·kh·kw]`, then of the
    /// bias gradient `[num_output]`, summed in task order (the same bits on any thread count).
    partials: Vec<f32>,
    /// The Winograd path's state, for the geometry it [`winograd::applies`] to (then `cols`
    /// and `partials` stay empty).
    winograd: Option<winograd::Winograd>,
}

/// The sum of `values` over 8 interleaved partial sums (vectorised; a plain `sum` is one long
/// chain of dependent adds), combined in a fixed order.
#[inline(always)]
fn sum_in_lanes(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, v)| *l += v);
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + b) + (c + d)) + ((e + f) + (g + h)) + tail
}

/// Images per task: the batch is cut into tasks of this many images whatever the thread
/// count, so the weight gradient (summed per task, then over tasks in order) has the same bits
/// on 1 or 16 threads; 128 images make 16 tasks, enough to keep a busy core from holding the
/// others up.
const IMAGES_PER_TASK: usize = 8;

/// Unpadded, unit stride and dilation: LeNet's convolutions.
fn is_plain(g: &ConvGeometry) -> bool {
    g.pad == [0, 0] && g.stride == [1, 1] && g.dilation == [1, 1]
}

/// Row length of a task's weight-gradient partial `[num_output, pitch]`: `channels·kh·kw`,
/// rounded up to the 16 f32 lanes for plain geometry (the columns are then built transposed,
/// see [`im2col_transposed`], and the GEMM only reads them in place with that row count).
fn weight_grad_pitch(g: &ConvGeometry) -> usize {
    if is_plain(g) {
        g.col_rows().next_multiple_of(16)
    } else {
        g.col_rows()
    }
}

/// One image's columns transposed, `[out_h·out_w, pitch]`: row `s` holds output position
/// `s`'s `channels·kh·kw` inputs in Caffe's column order, then zeros up to `pitch`. For
/// [`is_plain`] geometry only. Written here rather than as a `Backend` operation: it exists
/// to suit the CPU GEMM's operand layout.
#[inline(always)]
fn im2col_transposed(
    g: &ConvGeometry,
    offsets: &[usize],
    pitch: usize,
    image: &[f32],
    cols: &mut [f32],
) {
    /// Each row: the `kw`-wide windows at `offsets` from the output position's pixel. Called
    /// with LeNet's widths as literals, so that each copy inlines to fixed moves.
    #[inline(always)]
    fn gather(
        g: &ConvGeometry,
        kw: usize,
        offsets: &[usize],
        pitch: usize,
        image: &[f32],
        cols: &mut [f32],
    ) {
        let [out_h, out_w] = g.output_size().unwrap_or([0, 0]);
        let mut rows = cols.chunks_exact_mut(pitch);
        for oh in 0..out_h {
            for ow in 0..out_w {
                let Some(row) = rows.next() else { return };
                let base = oh * g.width + ow;
                let (inputs, padding) = row.split_at_mut(offsets.len() * kw);
                for (dst, &offset) in inputs.chunks_exact_mut(kw).zip(offsets) {
                    dst.copy_from_slice(&image[base + offset..][..kw]);
                }
                padding.fill(0.0);
            }
        }
    }
    match g.kernel[1] {
        5 => gather(g, 5, offsets, pitch, image, cols),
        3 => gather(g, 3, offsets, pitch, image, cols),
        kw => gather(g, kw, offsets, pitch, image, cols),
    }
}

/// For [`im2col_transposed`]: the offset of each window (channel, kernel row) from the
/// top-left pixel of an output position's field, in Caffe's column order. Built once per
/// backward, outside the tasks, so that they allocate nothing.
fn window_offsets(g: &ConvGeometry) -> Vec<usize> {
    (0..g.channels)
        .flat_map(|c| (0..g.kernel[0]).map(move |ki| c * g.height * g.width + ki * g.width))
        .collect()
}

fn images_per_task(batch: usize) -> usize {
    IMAGES_PER_TASK.min(batch.max(1))
}

/// The Winograd path's sizes for `batch` images of geometry `g`.
fn winograd_layout(g: &ConvGeometry, outputs: usize, batch: usize) -> winograd::Layout {
    winograd::Layout::new(g, outputs, batch, images_per_task(batch))
}

/// Lengths of `cols` and `partials` for `batch` images of geometry `g` (saturating).
fn scratch_lens(batch: usize, g: &ConvGeometry, outputs: usize, spatial: usize) -> (usize, usize) {
    let tasks = batch.div_ceil(images_per_task(batch));
    let pitch = weight_grad_pitch(g);
    let partial = outputs.saturating_mul(pitch + 1);
    (
        tasks.saturating_mul(pitch).saturating_mul(spatial),
        tasks.saturating_mul(partial),
    )
}

/// The bytes of the scratch a convolution of `config` keeps for a bottom of `shape` (for the
/// memory plan; settings this implementation refuses keep none).
pub(crate) fn scratch_bytes(
    name: &str,
    config: &ConvConfig,
    shape: &[usize],
) -> Vec<(&'static str, u64)> {
    let Ok(layer) = Convolution::new(name, config) else {
        return Vec::new();
    };
    let Ok((g, top)) = layer.geometry_for(shape) else {
        return Vec::new();
    };
    if winograd::applies(&g) {
        let layout = winograd_layout(&g, layer.num_output, shape[0]);
        return winograd::scratch_bytes(&layout, rayon::current_num_threads());
    }
    let (cols, partials) = scratch_lens(shape[0], &g, layer.num_output, top[2] * top[3]);
    let bytes = |n: usize| (n as u64).saturating_mul(4);
    vec![
        ("im2col columns", bytes(cols)),
        ("weight-gradient partials", bytes(partials)),
    ]
}

impl Convolution {
    /// Fails for the settings this implementation does not cover: groups, another channel
    /// axis than 1.
    pub fn new(name: &str, config: &ConvConfig) -> Result<Self, LayerError> {
        if config.group != 1 {
            return Err(LayerError::config(
                name,
                format!("group: {} is not supported (only 1)", config.group),
            ));
        }
        if config.axis != 1 {
            return Err(LayerError::config(
                name,
                format!("axis: {} is not supported (only 1)", config.axis),
            ));
        }
        let w = config.window(name, 2)?;
        let pair = |v: &[usize]| [v[0], v[1]];
        Ok(Self {
            name: name.to_string(),
            config: config.clone(),
            num_output: config.num_output,
            bias: config.bias_term,
            kernel: pair(&w.kernel),
            stride: pair(&w.stride),
            pad: pair(&w.pad),
            dilation: pair(&w.dilation),
            geometry: None,
            batch: 0,
            cols: Vec::new(),
            partials: Vec::new(),
            winograd: None,
        })
    }

    /// The geometry and the top shape for a bottom of `shape` (the net's shape rule).
    fn geometry_for(&self, shape: &[usize]) -> Result<(ConvGeometry, Vec<usize>), LayerError> {
        let &[_, channels, height, width] = shape else {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "Convolution needs a 4-axis bottom (N, C, H, W), got {}",
                    crate::blob::shape_string(shape)
                ),
            ));
        };
        let top = self.config.output_shape(&self.name, shape)?;
        let g = ConvGeometry {
            channels,
            height,
            width,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
        };
        Ok((g, top))
    }
}

impl Layer for Convolution {
    fn kind(&self) -> LayerKind {
        LayerKind::Convolution
    }

    fn setup(&mut self, bottom: &[Blob], num_tops: usize) -> Result<Vec<Vec<usize>>, LayerError> {
        super::check_tops(&self.name, self.kind(), num_tops, 1)?;
        let (g, _) = self.geometry_for(&bottom[0].shape)?;
        let mut shapes = vec![vec![
            self.num_output,
            g.channels,
            self.kernel[0],
            self.kernel[1],
        ]];
        if self.bias {
            shapes.push(vec![self.num_output]);
        }
        Ok(shapes)
    }

    fn reshape(&mut self, bottom: &[Blob], top: &mut [Blob]) -> Result<(), LayerError> {
        let (g, shape) = self.geometry_for(&bottom[0].shape)?;
        if let Some(old) = self.geometry
            && old.channels != g.channels
        {
            return Err(LayerError::shape(
                &self.name,
                format!(
                    "input channels changed from {} to {}",
                    old.channels, g.channels
                ),
            ));
        }
        let (out_h, out_w) = (shape[2], shape[3]);
        self.batch = bottom[0].num();
        self.geometry = Some(g);
        top[0].reshape(&shape)?;
        if winograd::applies(&g) {
            let layout = winograd_layout(&g, self.num_output, self.batch);
            return Ok(self.winograd.get_or_insert_default().reshape(&layout)?);
        }
        let (cols, partials) = scratch_lens(self.batch, &g, self.num_output, out_h * out_w);
        try_resize(&mut self.cols, cols, 0.0, "im2col columns")?;
        try_resize(
            &mut self.partials,
            partials,
            0.0,
            "weight-gradient partials",
        )?;
        Ok(())
    }

    fn forward(
        &mut self,
        backend: &dyn Backend,
        bottom: &[Blob],
        params: &[Blob],
        top: &mut [Blob],
    ) -> Result<(), LayerError> {
        let g = self.geometry.expect("reshape before forward");
        let (k, spatial, outputs) = (g.col_rows(), g.out_spatial(), self.num_output);
        let (image_in, image_out) = (g.channels * g.height * g.width, outputs * spatial);
        if self.batch == 0 || image_out == 0 {
            return Ok(());
        }
        let per_task = images_per_task(self.batch);
        let weights = params[0].data.as_slice();
        let bias = self.bias.then(|| params[1].data.as_slice());
        let images = bottom[0].data.as_slice();
        if let Some(fast) = &mut self.winograd {
            let layout = winograd_layout(&g, outputs, self.batch);
            fast.forward(&layout, images, weights, bias, &mut top[0].data);
            return Ok(());
        }
        let product = Gemm::new(false, false, outputs, spatial, k);
        top[0].data[..self.batch * image_out]
            .par_chunks_mut(per_task * image_out)
            .zip(self.cols.par_chunks_mut(k * spatial))
            .enumerate()
            .for_each(|(t, (out, col))| {
                as_task(|| {
                    for (i, out) in out.chunks_exact_mut(image_out).enumerate() {
                        let n = t * per_task + i;
                        backend.im2col(&g, 1, &images[n * image_in..][..image_in], col);
                        // The image's [num_output, spatial] product is its top, in Caffe's layout.
                        backend.gemm(product, weights, col, out);
                        if let Some(bias) = bias {
                            vectorized(
                                #[inline(always)]
                                || {
                                    for (row, b) in out.chunks_exact_mut(spatial).zip(bias) {
                                        for v in row.iter_mut() {
                                            *v += b;
                                        }
                                    }
                                },
                            );
                        }
                    }
                })
            });
        Ok(())
    }

    fn backward(
        &mut self,
        backend: &dyn Backend,
        top: &[Blob],
        params: &mut [Blob],
        propagate_down: &[bool],
        bottom: &mut [Blob],
    ) {
        let g = self.geometry.expect("reshape before backward");
        let (k, spatial, outputs) = (g.col_rows(), g.out_spatial(), self.num_output);
        let (image_in, image_out) = (g.channels * g.height * g.width, outputs * spatial);
        if self.batch == 0 || image_out == 0 {
            return;
        }
        if let Some(fast) = &mut self.winograd {
            let layout = winograd_layout(&g, outputs, self.batch);
            let (weights, bias) = params.split_at_mut(1);
            let bias_diff = bias
                .first_mut()
                .filter(|_| self.bias)
                .map(|b| b.diff.as_mut_slice());
            let Blob { data, diff, .. } = &mut bottom[0];
            let bottom_diff = propagate_down[0].then_some(diff.as_mut_slice());
            fast.backward(
                &layout,
                data,
                top[0].diff.as_slice(),
                &mut weights[0].diff,
                bias_diff,
                bottom_diff,
            );
            return;
        }
        let per_task = images_per_task(self.batch);
        let tasks = self.batch.div_ceil(per_task);
        let (pitch, transposed) = (weight_grad_pitch(&g), is_plain(&g));
        let partial = outputs * (pitch + 1);
        let (top_diff, weights) = (top[0].diff.as_slice(), params[0].data.as_slice());
        let Blob { data, diff, .. } = &mut bottom[0];
        let images = data.as_slice();
        // dW += dy · colsᵀ. For plain geometry the columns are built transposed, [spatial,
        // pitch], so that the product reads them as they lie: given `[k, spatial]` rows the
        // GEMM first copied all of them into its panels, for every image.
        let weight_grad = if transposed {
            Gemm::new(false, false, outputs, pitch, spatial).accumulate()
        } else {
            Gemm::new(false, true, outputs, k, spatial).accumulate()
        };
        let col_grad = Gemm::new(true, false, k, spatial, outputs);
        let offsets = window_offsets(&g);
        // Task t: images t·per_task.. into its own partial sums (and its images' diffs).
        let task = |t: usize, col: &mut [f32], partial: &mut [f32], diff: Option<&mut [f32]>| {
            as_task(|| {
                partial.fill(0.0);
                let (weight_part, bias_part) = partial.split_at_mut(outputs * pitch);
                let count = per_task.min(self.batch - t * per_task);
                let mut diff = diff;
                for i in 0..count {
                    let n = t * per_task + i;
                    let dy = &top_diff[n * image_out..][..image_out];
                    let image = &images[n * image_in..][..image_in];
                    if transposed {
                        vectorized(
                            #[inline(always)]
                            || im2col_transposed(&g, &offsets, pitch, image, col),
                        );
                    } else {
                        backend.im2col(&g, 1, image, col);
                    }
                    backend.gemm(weight_grad, dy, col, weight_part);
                    vectorized(
                        #[inline(always)]
                        || {
                            for (b, row) in bias_part.iter_mut().zip(dy.chunks_exact(spatial)) {
                                *b += sum_in_lanes(row);
                            }
                        },
                    );
                    if let Some(diff) = diff.as_deref_mut() {
                        // The column buffer is free now: reuse it for the columns' gradient.
                        backend.gemm(col_grad, weights, dy, col);
                        backend.col2im(&g, 1, col, &mut diff[i * image_in..][..image_in]);
                    }
                }
            })
        };
        let cols = self.cols[..tasks * pitch * spatial].par_chunks_mut(pitch * spatial);
        let partials = self.partials[..tasks * partial].par_chunks_mut(partial);
        if propagate_down[0] {
            let diffs = diff[..self.batch * image_in].par_chunks_mut(per_task * image_in);
            cols.zip(partials)
                .zip(diffs)
                .enumerate()
                .for_each(|(t, ((c, p), d))| task(t, c, p, Some(d)));
        } else {
            cols.zip(partials)
                .enumerate()
                .for_each(|(t, (c, p))| task(t, c, p, None));
        }
        // Fixed order, whatever ran where and on how many threads: the same bits. Each row of
        // the weight gradient (one output's) sums the tasks' partials in task order.
        let partials = &self.partials[..tasks * partial];
        let sum_row = |o: usize, row: &mut [f32]| {
            for part in partials.chunks_exact(partial) {
                let part = &part[o * pitch..][..row.len()];
                row.iter_mut().zip(part).for_each(|(d, p)| *d += p);
            }
        };
        let weight_diff = &mut params[0].diff[..outputs * k];
        if rayon::current_num_threads() > 1 {
            weight_diff
                .par_chunks_mut(k)
                .enumerate()
                .for_each(|(o, row)| sum_row(o, row));
        } else {
            for (o, row) in weight_diff.chunks_mut(k).enumerate() {
                sum_row(o, row);
            }
        }
        if self.bias {
            // The bias partials follow the `outputs` rows of `pitch`: row `outputs`.
            sum_row(outputs, &mut params[1].diff[..outputs]);
        }
    }

    fn forward_flops(&self) -> u64 {
        self.geometry.map_or(0, |g| {
            2 * (self.num_output * g.col_rows() * self.batch * g.out_spatial()) as u64
        })
    }
}

#[cfg(test)]
mod tests {
    use siamese_proto::{ConvolutionParameter, LayerParameter};

    use super::*;
    use crate::CpuBackend;
    use crate::gradient_check::{GradientCheck, random_blob, render};

    fn conv(num_output: u32, kernel: u32, stride: u32, pad: u32, bias: bool) -> Convolution {
        let p = LayerParameter {
            name: Some("conv".into()),
            convolution_param: Some(ConvolutionParameter {
                num_output: Some(num_output),
                kernel_size: vec![kernel],
                stride: vec![stride],
                pad: vec![pad],
                bias_term: Some(bias),
                ..Default::default()
            }),
            ..Default::default()
        };
        Convolution::new("conv", &ConvConfig::parse(&p).unwrap()).unwrap()
    }

    fn ramp(shape: &[usize]) -> Blob {
        let count = shape.iter().product();
        Blob::from_data(shape, (0..count).map(|v| v as f32).collect())
    }

    #[test]
    fn ramp_snapshot() {
        // 2 filters 3x3 on a 1x1x6x6 ramp: filter 0 = all ones (window sums), filter 1 = a
        // single 1 at (0, 2) (picks the window's top-right pixel), bias (0.5, -1).
        let mut layer = conv(2, 3, 1, 0, true);
        let bottom = [ramp(&[1, 1, 6, 6])];
        let mut w = Blob::new(&[2, 1, 3, 3]);
        w.data[..9].fill(1.0);
        w.data[9 + 2] = 1.0;
        let params = [w, Blob::from_data(&[2], vec![0.5, -1.0])];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        insta::assert_snapshot!(render(&top[0]));
    }

    #[test]
    fn stride_and_pad_snapshot() {
        let mut layer = conv(1, 3, 2, 1, false);
        let bottom = [ramp(&[1, 1, 6, 6])];
        let params = [Blob::from_data(&[1, 1, 3, 3], vec![1.0; 9])];
        let mut top = [Blob::default()];
        layer.setup(&bottom, 1).unwrap();
        layer.reshape(&bottom, &mut top).unwrap();
        layer
            .forward(&CpuBackend, &bottom, &params, &mut top)
            .unwrap();
        insta::assert_snapshot!(render(&top[0]));
    }

    /// Forward and backward of LeNet's conv2 on `threads` threads, run inside the pool as
    /// the TUI does: top, weight, bias and input gradients.
    fn conv2_on(threads: usize) -> Vec<Vec<f32>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut layer = conv(50, 5, 1, 0, true);
            let mut bottom = [random_blob(&[20, 20, 12, 12], 3)];
            layer.setup(&bottom, 1).unwrap();
            let mut params = [random_blob(&[50, 20, 5, 5], 4), random_blob(&[50], 5)];
            let mut top = [Blob::default()];
            layer.reshape(&bottom, &mut top).unwrap();
            layer
                .forward(&CpuBackend, &bottom, &params, &mut top)
                .unwrap();
            top[0].diff = random_blob(&top[0].shape, 6).data;
            layer.backward(&CpuBackend, &top, &mut params, &[true], &mut bottom);
            vec![
                top[0].data.clone(),
                params[0].diff.clone(),
                params[1].diff.clone(),
                bottom[0].diff.clone(),
            ]
        })
    }

    #[test]
    fn same_bits_on_any_thread_count() {
        let one = conv2_on(1);
        assert_eq!(one, conv2_on(3));
        assert!(one[1].iter().any(|&g| g != 0.0), "a weight gradient");
    }

    /// A 5×5 unit-stride convolution padded by `pad` (`[n, c, h, w]` bottom) and its
    /// gradients, in f64 by the definition: top, weight, bias and bottom gradients.
    fn direct_5x5(
        bottom: &Blob,
        pad: usize,
        weights: &Blob,
        bias: &Blob,
        top_diff: &[f32],
    ) -> [Vec<f64>; 4] {
        let &[n, c, h, w] = bottom.shape.as_slice() else {
            unreachable!()
        };
        let (o, oh, ow) = (weights.shape[0], h + 2 * pad - 4, w + 2 * pad - 4);
        let inside = |y: usize, x: usize| {
            (y >= pad && x >= pad && y - pad < h && x - pad < w).then(|| (y - pad, x - pad))
        };
        let wt = |f: usize, ch: usize, ky: usize, kx: usize| {
            weights.data[((f * c + ch) * 5 + ky) * 5 + kx] as f64
        };
        let (mut top, mut dw, mut db) = (
            vec![0.0; n * o * oh * ow],
            vec![0.0; o * c * 25],
            vec![0.0; o],
        );
        let mut dx = vec![0.0; n * c * h * w];
        for i in 0..n {
            for f in 0..o {
                for y in 0..oh {
                    for xx in 0..ow {
                        let at = ((i * o + f) * oh + y) * ow + xx;
                        let dy = top_diff[at] as f64;
                        top[at] = bias.data[f] as f64;
                        db[f] += dy;
                        for ch in 0..c {
                            for ky in 0..5 {
                                for kx in 0..5 {
                                    let Some((py, px)) = inside(y + ky, xx + kx) else {
                                        continue;
                                    };
                                    let pixel = ((i * c + ch) * h + py) * w + px;
                                    let x = bottom.data[pixel] as f64;
                                    top[at] += wt(f, ch, ky, kx) * x;
                                    dw[((f * c + ch) * 5 + ky) * 5 + kx] += dy * x;
                                    dx[pixel] += dy * wt(f, ch, ky, kx);
                                }
                            }
                        }
                    }
                }
            }
        }
        [top, dw, db, dx]
    }

    /// 5×5 unit-stride convolutions against the definition: LeNet's conv1 (28×28, one
    /// channel: im2col with the CPU backend's fixed-width paths) and conv2 (20 channels of
    /// 12×12: Winograd), and Winograd with partial tiles, padding and a non-square input.
    #[test]
    fn lenet_shapes_match_the_definition() {
        for (channels, [h, w], outputs, pad) in [
            (1, [28, 28], 4, 0),
            (20, [12, 12], 50, 0),
            (4, [9, 11], 3, 0),
            (5, [7, 6], 2, 2),
        ] {
            let mut layer = conv(outputs as u32, 5, 1, pad as u32, true);
            let mut bottom = [random_blob(&[3, channels, h, w], 7)];
            let mut params = [
                random_blob(&[outputs, channels, 5, 5], 8),
                random_blob(&[outputs], 9),
            ];
            let mut top = [Blob::default()];
            layer.setup(&bottom, 1).unwrap();
            layer.reshape(&bottom, &mut top).unwrap();
            assert_eq!(layer.winograd.is_some(), channels >= 4);
            layer
                .forward(&CpuBackend, &bottom, &params, &mut top)
                .unwrap();
            top[0].diff = random_blob(&top[0].shape, 10).data;
            layer.backward(&CpuBackend, &top, &mut params, &[true], &mut bottom);
            let want = direct_5x5(&bottom[0], pad, &params[0], &params[1], &top[0].diff);
            let got = [
                &top[0].data,
                &params[0].diff,
                &params[1].diff,
                &bottom[0].diff,
            ];
            for (name, (got, want)) in ["top", "weights", "bias", "bottom"]
                .iter()
                .zip(got.iter().zip(&want))
            {
                assert_eq!(got.len(), want.len(), "{name}");
                let largest = want.iter().fold(0.0f64, |m, w| m.max(w.abs()));
                for (g, w) in got.iter().zip(want) {
                    assert!(
                        (*g as f64 - w).abs() < 1e-5 * (1.0 + largest),
                        "{channels}×{h}×{w} pad {pad} {name}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn gradients() {
        for (kernel, stride, pad, bias) in [(3, 1, 0, true), (2, 2, 1, false), (3, 2, 1, true)] {
            let mut layer = conv(3, kernel, stride, pad, bias);
            let bottom = vec![random_blob(&[2, 2, 5, 6], 1)];
            GradientCheck::new().check(&mut layer, bottom, 2);
        }
        // Winograd's path (5×5, unit stride, 4 channels): a partial tile, and padding. Its
        // tops round 5× coarser than im2col's, hence the larger (exact: linear layer) step.
        for pad in [0, 1] {
            let mut layer = conv(2, 5, 1, pad, true);
            let bottom = vec![random_blob(&[2, 4, 6, 9], 1)];
            layer.setup(&bottom, 1).unwrap();
            assert!(winograd::applies(
                &layer.geometry_for(&bottom[0].shape).unwrap().0
            ));
            GradientCheck::new().step(1.0).check(&mut layer, bottom, 2);
        }
    }

    #[test]
    fn rejects_bad_configs() {
        let mut layer = conv(2, 7, 1, 0, true);
        let err = layer.setup(&[Blob::new(&[1, 1, 6, 6])], 1).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not fit the input [1, 1, 6, 6]"),
            "{err}"
        );
        let err = layer.setup(&[Blob::new(&[1, 36])], 1).unwrap_err();
        assert!(err.to_string().contains("4-axis bottom"), "{err}");
        let p = LayerParameter {
            name: Some("c".into()),
            convolution_param: Some(ConvolutionParameter {
                num_output: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = ConvConfig::parse(&p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer 'c' (Convolution): kernel (or kernel_h and kernel_w) is required"
        );
    }
}
