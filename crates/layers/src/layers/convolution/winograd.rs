//! Winograd's F(4×4, 5×5) for 5×5 unit-stride convolutions on the CPU: each 4×4 output tile
//! is computed from its 8×8 input tile in a transformed space where 400 multiply-adds become 64.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use super::lanes::{Lanes, Simd, with_lanes};
use super::sum_in_lanes;
use crate::backend::{ConvGeometry, as_task, splits_across_pool, vectorized};
use crate::blob::{AllocError, try_resize};

/// Output tile side.
const TILE: usize = 4;
/// Input tile side: the output tile plus the kernel's reach (4 + 5 − 1).
const PATCH: usize = 8;
/// Values of one transformed tile or filter.
const BLOCK: usize = PATCH * PATCH;
/// Taps of one 5×5 filter.
const TAPS: usize = 25;
/// A block's values are stored in `PLANES` planes of `LANES` (see [`Planes`]).
const LANES: usize = 16;
const PLANES: usize = BLOCK / LANES;

/// Fewer input channels than this run faster by im2col + GEMM: the transforms' cost per
/// output does not shrink with the channels, the saved multiply-adds do (one channel, as
/// LeNet's conv1 has, would spend more on transforms than it saves).
const MIN_CHANNELS: usize = 4;

/// Outputs per product in the forward pass and the input gradient (two register blocks).
const OUTPUT_BLOCK: usize = 10;
/// Outputs per task of the filter gradient (one register block): 10 tasks for LeNet's 50.
const GRAD_OUTPUT_BLOCK: usize = 5;

/// Whether a convolution of geometry `g` runs through Winograd's algorithm.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.kernel == [5, 5] && g.stride == [1, 1] && g.dilation == [1, 1] && g.channels >= MIN_CHANNELS
}

/// The sizes one batch of a convolution runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Layout {
    pub channels: usize,
    pub outputs: usize,
    /// Input and output planes, `[height, width]`.
    pub input: [usize; 2],
    pub output: [usize; 2],
    pub pad: [usize; 2],
    pub batch: usize,
    /// Images per task (the last task may have fewer).
    pub per_task: usize,
}

impl Layout {
    pub fn new(g: &ConvGeometry, outputs: usize, batch: usize, per_task: usize) -> Self {
        Self {
            channels: g.channels,
            outputs,
            input: [g.height, g.width],
            output: g.output_size().unwrap_or([0, 0]),
            pad: g.pad,
            batch,
            per_task,
        }
    }

    fn tiles_across(&self) -> usize {
        self.output[1].div_ceil(TILE)
    }

    fn tiles_per_image(&self) -> usize {
        self.output[0].div_ceil(TILE) * self.tiles_across()
    }

    fn tasks(&self) -> usize {
        self.batch.div_ceil(self.per_task)
    }

    /// The images of task `t`.
    fn task_images(&self, t: usize) -> Range<usize> {
        let first = t * self.per_task;
        first..self.batch.min(first + self.per_task)
    }

    /// Values of one full task's transformed input tiles.
    fn task_inputs(&self) -> usize {
        self.channels * self.per_task * self.tiles_per_image() * BLOCK
    }

    /// The buffers' lengths in values: filters, kept input tiles, one scratch slot.
    fn lens(&self) -> [usize; 3] {
        [
            self.outputs * self.channels * BLOCK,
            self.tasks() * self.task_inputs(),
            self.slot_regions(OUTPUT_BLOCK)
                .iter()
                .sum::<usize>()
                .max(self.filter_gradient_regions().iter().sum()),
        ]
    }

    /// A slot in the forward pass and the input gradient: a task's input tiles (or their
    /// gradients), then the products of a block of `outputs`.
    fn slot_regions(&self, outputs: usize) -> [usize; 2] {
        let task_tiles = self.per_task * self.tiles_per_image();
        [
            self.channels * task_tiles * BLOCK,
            outputs * task_tiles * BLOCK,
        ]
    }

    /// A slot in the filter gradient: a task's input tiles (when not kept), the top
    /// gradient's tiles of a block of outputs, and their ∂U.
    fn filter_gradient_regions(&self) -> [usize; 3] {
        let [tiles, top_tiles] = self.slot_regions(GRAD_OUTPUT_BLOCK);
        [tiles, top_tiles, GRAD_OUTPUT_BLOCK * self.channels * BLOCK]
    }

    /// The upper left pixel of tile `t` of an output plane.
    fn tile_origin(&self, t: usize) -> [usize; 2] {
        [
            t / self.tiles_across() * TILE,
            t % self.tiles_across() * TILE,
        ]
    }

    /// The upper left pixel of tile `t`'s input patch (negative inside the padding).
    fn patch_origin(&self, t: usize) -> [isize; 2] {
        let [y, x] = self.tile_origin(t);
        [
            y as isize - self.pad[0] as isize,
            x as isize - self.pad[1] as isize,
        ]
    }

    /// Values of one input image and one output image.
    fn image_sizes(&self) -> (usize, usize) {
        (
            self.channels * plane(self.input),
            self.outputs * plane(self.output),
        )
    }
}

/// Pixels of a plane of `[height, width]`.
fn plane([h, w]: [usize; 2]) -> usize {
    h * w
}

/// The bytes a Winograd convolution of `layout` keeps (for the memory plan), with scratch for
/// `threads` threads.
pub(super) fn scratch_bytes(layout: &Layout, threads: usize) -> Vec<(&'static str, u64)> {
    let [filters, inputs, slot] = layout.lens().map(|n| n as u64 * 4);
    vec![
        ("Winograd filters", filters),
        ("Winograd input tiles (kept for backward)", inputs),
        (
            "Winograd scratch",
            slot.saturating_mul(slots_for(layout, threads) as u64),
        ),
    ]
}

/// One scratch slot per thread that can run a task at once.
fn slots_for(layout: &Layout, threads: usize) -> usize {
    threads.clamp(1, layout.tasks().max(1))
}

/// The state of a convolution computed by Winograd's algorithm.
///
/// For a tile `d` and a filter `g`, `Y = Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A` (Lavin and Gray, 2015, with
/// the points 0, ±1, ±2, ±½ and ∞). The transformed filters `U`, tiles `V` and products `M`
/// are blocks of 64 values, a block's 8×8 matrix column by column (`[j·8 + i]` is row `i`,
/// column `j`: the order the transforms produce without a second transpose). The backward pass
/// is the exact adjoint of these maps (`∂M = A·∂Y·Aᵀ`, `∂V = U ⊙ ∂M`, `∂d = B·∂V·Bᵀ`,
/// `∂U = Σ ∂M ⊙ V`, `∂g = Gᵀ·∂U·G`), so the gradients are those of the convolution the forward
/// pass computes. Error against f64: about 5× that of im2col + GEMM (docs/performance.md).
#[derive(Debug, Default)]
pub(super) struct Winograd {
    /// U = G·g·Gᵀ of every filter, an `[outputs][channels]` [`Planes::by_row`] matrix, made
    /// by each forward pass.
    filters: Vec<f32>,
    /// V = Bᵀ·d·B of every input tile of the batch, per task a `[channels][its tiles]`
    /// matrix, for the filter gradient. Allocated by the first backward pass, so that a net
    /// that only runs forward (a test net, a deploy net) keeps none.
    inputs: Vec<f32>,
    /// Whether `inputs` holds the tiles of the last forward pass.
    inputs_kept: bool,
    /// Per-thread scratch (see [`with_slot`]).
    slots: Vec<Mutex<Vec<f32>>>,
}

impl Winograd {
    /// Sizes the buffers for `layout` (allocating only when one grows).
    pub fn reshape(&mut self, layout: &Layout) -> Result<(), AllocError> {
        let [filters, inputs, slot] = layout.lens();
        try_resize(&mut self.filters, filters, 0.0, "Winograd filters")?;
        if !self.inputs.is_empty() {
            try_resize(&mut self.inputs, inputs, 0.0, "Winograd input tiles")?;
        }
        self.inputs_kept = false;
        let slots = slots_for(layout, rayon::current_num_threads());
        while self.slots.len() < slots {
            self.slots.push(Mutex::new(Vec::new()));
        }
        for s in &mut self.slots {
            let s = s.get_mut().unwrap_or_else(PoisonError::into_inner);
            try_resize(s, slot, 0.0, "Winograd scratch")?;
        }
        Ok(())
    }

    /// The convolution of `images` (`[batch, channels, h, w]`) into `top`.
    pub fn forward(
        &mut self,
        lay: &Layout,
        images: &[f32],
        weights: &[f32],
        bias: Option<&[f32]>,
        top: &mut [f32],
    ) {
        let (image_in, image_out) = lay.image_sizes();
        let keep = self.inputs.len() >= lay.tasks() * lay.task_inputs();
        let Self {
            filters,
            inputs,
            slots,
            ..
        } = self;
        transform_filters(lay, weights, filters);
        let (filters, slots) = (&*filters, &*slots);
        let task = |t: usize, out: &mut [f32], kept: Option<&mut [f32]>| {
            as_task(|| {
                let n = lay.task_images(t);
                let images = &images[n.start * image_in..n.end * image_in];
                with_slot(slots, |slot| {
                    let (tiles, products) = match kept {
                        Some(tiles) => (tiles, slot),
                        None => slot.split_at_mut(lay.slot_regions(0)[0]),
                    };
                    with_lanes!(s => transform_inputs(s, lay, images, tiles));
                    forward_outputs(lay, filters, tiles, bias, products, out);
                })
            })
        };
        let tops = top[..lay.batch * image_out].par_chunks_mut(lay.per_task * image_out);
        if keep {
            tops.zip(inputs.par_chunks_mut(lay.task_inputs()))
                .enumerate()
                .for_each(|(t, (out, tiles))| task(t, out, Some(tiles)));
        } else {
            tops.enumerate().for_each(|(t, out)| task(t, out, None));
        }
        self.inputs_kept = keep;
    }

    /// Adds the filter and bias gradients of `top_diff` to `weight_diff` and `bias_diff`, and
    /// overwrites `bottom_diff` (when given) with the input gradient of `images`.
    pub fn backward(
        &mut self,
        lay: &Layout,
        images: &[f32],
        top_diff: &[f32],
        weight_diff: &mut [f32],
        bias_diff: Option<&mut [f32]>,
        bottom_diff: Option<&mut [f32]>,
    ) {
        self.keep_inputs(lay, images);
        let Self {
            filters,
            inputs,
            inputs_kept,
            slots,
        } = self;
        let (filters, slots) = (&*filters, &*slots);
        let kept = inputs_kept.then_some(&inputs[..]);
        let block_filters = GRAD_OUTPUT_BLOCK * lay.channels;
        let with_bias = bias_diff.is_some();
        // ∂U and ∂g (and the bias gradient) per block of outputs, each summed over the whole
        // batch in order: no partial sums to combine, the same bits on any thread count.
        let bias_sums: Vec<[f32; GRAD_OUTPUT_BLOCK]> = weight_diff
            [..lay.outputs * lay.channels * TAPS]
            .par_chunks_mut(block_filters * TAPS)
            .enumerate()
            .map(|(b, weight_diff)| {
                as_task(|| {
                    let first = b * GRAD_OUTPUT_BLOCK;
                    let outputs = first..lay.outputs.min(first + GRAD_OUTPUT_BLOCK);
                    let sources = (images, kept, top_diff);
                    with_slot(slots, |slot| {
                        filter_gradient(lay, outputs.clone(), sources, slot, weight_diff)
                    });
                    let mut sums = [0.0; GRAD_OUTPUT_BLOCK];
                    if with_bias {
                        bias_gradient(lay, outputs, top_diff, &mut sums);
                    }
                    sums
                })
            })
            .collect();
        if let Some(bias_diff) = bias_diff {
            // Blocks in order; only the last may be short, so its padding falls off the end.
            for (d, s) in bias_diff.iter_mut().zip(bias_sums.iter().flatten()) {
                *d += s;
            }
        }
        let Some(bottom_diff) = bottom_diff else {
            return;
        };
        let (image_in, image_out) = lay.image_sizes();
        bottom_diff[..lay.batch * image_in]
            .par_chunks_mut(lay.per_task * image_in)
            .enumerate()
            .for_each(|(t, diff)| {
                as_task(|| {
                    let n = lay.task_images(t);
                    let dy = &top_diff[n.start * image_out..n.end * image_out];
                    with_slot(slots, |slot| input_gradient(lay, filters, dy, slot, diff));
                })
            });
    }

    /// Makes sure `inputs` holds the tiles of `images` for the filter gradient: the first
    /// backward pass allocates it and transforms them (later forward passes keep theirs).
    /// Where the allocation fails the filter gradient transforms each task's tiles itself.
    fn keep_inputs(&mut self, lay: &Layout, images: &[f32]) {
        let len = lay.tasks() * lay.task_inputs();
        if self.inputs_kept
            || try_resize(&mut self.inputs, len, 0.0, "Winograd input tiles").is_err()
        {
            return;
        }
        let image_in = lay.image_sizes().0;
        self.inputs[..len]
            .par_chunks_mut(lay.task_inputs())
            .enumerate()
            .for_each(|(t, tiles)| {
                let n = lay.task_images(t);
                let images = &images[n.start * image_in..n.end * image_in];
                as_task(|| with_lanes!(s => transform_inputs(s, lay, images, tiles)));
            });
        self.inputs_kept = true;
    }
}

/// Runs `f` on the scratch slot of this pool thread. A thread beyond the slots made at reshape
/// (a larger pool than then) shares one and waits for it: slower, never wrong, as a task holds
/// its slot only while it computes (tasks never wait on each other).
fn with_slot<R>(slots: &[Mutex<Vec<f32>>], f: impl FnOnce(&mut [f32]) -> R) -> R {
    let index = rayon::current_thread_index().unwrap_or(0) % slots.len();
    let mut slot = slots[index].lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut slot)
}

/// U = G·g·Gᵀ of every `[outputs][channels]` 5×5 filter of `weights` into `filters`, a
/// [`Planes::by_row`] matrix (each output's blocks together, so outputs are made in parallel).
fn transform_filters(lay: &Layout, weights: &[f32], filters: &mut [f32]) {
    let per_output = lay.channels * BLOCK;
    let transform = |(u, g): (&mut [f32], &[f32])| {
        with_lanes!(s => {
            for (c, g) in g.chunks_exact(TAPS).enumerate() {
                store_block(s, transform_filter(s, g), u, Planes::by_row(lay.channels), [0, c]);
            }
        })
    };
    let (filters, weights) = (
        &mut filters[..lay.outputs * per_output],
        &weights[..lay.outputs * lay.channels * TAPS],
    );
    if splits_across_pool() {
        filters
            .par_chunks_mut(per_output)
            .zip(weights.par_chunks(lay.channels * TAPS))
            .for_each(transform);
    } else {
        filters
            .chunks_mut(per_output)
            .zip(weights.chunks(lay.channels * TAPS))
            .for_each(transform);
    }
}

/// U = G·g·Gᵀ of one 5×5 filter, as the columns of its block.
#[inline(always)]
fn transform_filter<S: Simd>(s: S, g: &[f32]) -> [S::Wide; 8] {
    // G·g: rows i, lanes b (3 of them zeros); transposed, rows b; G· that: columns j.
    let rows: [S::Wide; 5] = std::array::from_fn(|a| {
        let mut row = [0.0; PATCH];
        row[..5].copy_from_slice(&g[a * 5..][..5]);
        s.load8(&row)
    });
    let t = s.transpose8(g_rows(rows));
    g_rows([t[0], t[1], t[2], t[3], t[4]])
}

/// `weight_diff += Gᵀ·∂U·G` for each filter of a block of outputs (`grad`, a
/// [`Planes::by_row`] matrix of blocks).
fn add_filter_gradients(channels: usize, grad: &[f32], weight_diff: &mut [f32]) {
    let du = Planes::by_row(channels);
    with_lanes!(s => {
        for (f, dw) in weight_diff.chunks_exact_mut(TAPS).enumerate() {
            let block = load_block(s, grad, du, [f / channels, f % channels]);
            for (a, row) in filter_gradient_of(s, block).into_iter().enumerate() {
                let mut values = [0.0; PATCH];
                s.store8(row, &mut values);
                for (d, v) in dw[a * 5..][..5].iter_mut().zip(values) {
                    *d += v;
                }
            }
        }
    })
}

/// Gᵀ·∂U·G of one block (its columns): rows of 5 lanes (and 3 of zeros).
#[inline(always)]
fn filter_gradient_of<S: Simd>(s: S, columns: [S::Wide; 8]) -> [S::Wide; 5] {
    // ∂U·G: rows b, lanes i; transposed, rows i (lanes b); Gᵀ· that: rows a.
    let v = gt_rows(columns);
    let zero = S::Wide::splat(0.0);
    gt_rows(s.transpose8([v[0], v[1], v[2], v[3], v[4], zero, zero, zero]))
}

/// Every input tile of `images` (one task's) transformed, into `tiles` as a
/// `[channels][tile]` matrix of blocks, tiles numbered image by image.
#[inline(always)]
fn transform_inputs<S: Simd>(s: S, lay: &Layout, images: &[f32], tiles: &mut [f32]) {
    let per_image = lay.tiles_per_image();
    let count = images.len() / (lay.channels * plane(lay.input));
    let v = Planes::matrix(lay.channels, count * per_image);
    for c in 0..lay.channels {
        for n in 0..count {
            let pixels = &images[(n * lay.channels + c) * plane(lay.input)..][..plane(lay.input)];
            for t in 0..per_image {
                let rows = input_patch(s, pixels, lay.input, lay.patch_origin(t));
                let block = bt_rows(s.transpose8(bt_rows(rows)));
                store_block(s, block, tiles, v, [c, n * per_image + t]);
            }
        }
    }
}

/// The products of one task's tiles with every filter, block of outputs by block, each
/// transformed back into `out` (`[images][outputs][h][w]`) with its bias.
fn forward_outputs(
    lay: &Layout,
    filters: &[f32],
    tiles: &[f32],
    bias: Option<&[f32]>,
    slot: &mut [f32],
    out: &mut [f32],
) {
    let image_out = lay.outputs * plane(lay.output);
    let count = out.len() / image_out;
    let task_tiles = count * lay.tiles_per_image();
    let products = &mut slot[..OUTPUT_BLOCK * task_tiles * BLOCK];
    for o0 in (0..lay.outputs).step_by(OUTPUT_BLOCK) {
        let outputs = OUTPUT_BLOCK.min(lay.outputs - o0);
        let m = Planes::matrix(outputs, task_tiles);
        // M(o, t) = Σ_c U(o, c) ⊙ V(c, t)
        tuple_product(
            [outputs, task_tiles, lay.channels],
            (
                &filters[o0 * lay.channels * BLOCK..],
                Planes::by_row(lay.channels),
            ),
            (tiles, Planes::matrix(lay.channels, task_tiles)),
            (products, m),
            false,
        );
        with_lanes!(s => output_tiles(s, lay, o0..o0 + outputs, products, m, bias, out));
    }
}

/// Y = Aᵀ·M·A plus the bias, of every product `(o − first output, tile)` in `m`, into `out`.
#[inline(always)]
fn output_tiles<S: Simd>(
    s: S,
    lay: &Layout,
    outputs: Range<usize>,
    products: &[f32],
    m: Planes,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let per_image = lay.tiles_per_image();
    let count = out.len() / (lay.outputs * plane(lay.output));
    let first = outputs.start;
    for o in outputs {
        let b = bias.map_or(0.0, |b| b[o]);
        for n in 0..count {
            let pixels = &mut out[(n * lay.outputs + o) * plane(lay.output)..][..plane(lay.output)];
            for t in 0..per_image {
                let block = load_block(s, products, m, [o - first, n * per_image + t]);
                let y = at_rows(s.wide_to_narrow(at_rows(block)));
                store_output(s, y, b, lay.output, lay.tile_origin(t), pixels);
            }
        }
    }
}

/// `weight_diff += ∂g` of `outputs`: their ∂U over the whole batch, task by task, from the
/// kept input tiles (or tiles transformed here from `images`) and the top gradient.
fn filter_gradient(
    lay: &Layout,
    outputs: Range<usize>,
    (images, kept, top_diff): (&[f32], Option<&[f32]>, &[f32]),
    slot: &mut [f32],
    weight_diff: &mut [f32],
) {
    let (image_in, image_out) = lay.image_sizes();
    let [tiles_len, top_len, grad_len] = lay.filter_gradient_regions();
    let (made, rest) = slot.split_at_mut(tiles_len);
    let (dm, rest) = rest.split_at_mut(top_len);
    let grad = &mut rest[..grad_len];
    let block_outputs = outputs.len();
    for task in 0..lay.tasks() {
        let n = lay.task_images(task);
        let task_tiles = n.len() * lay.tiles_per_image();
        let tiles: &[f32] = match kept {
            Some(kept) => &kept[task * lay.task_inputs()..][..lay.task_inputs()],
            None => {
                let images = &images[n.start * image_in..n.end * image_in];
                with_lanes!(s => transform_inputs(s, lay, images, made));
                made
            }
        };
        let top_tiles = Planes::matrix(block_outputs, task_tiles);
        let dy = &top_diff[n.start * image_out..n.end * image_out];
        with_lanes!(s => transform_top_diff(s, lay, outputs.clone(), dy, dm, top_tiles));
        // ∂U(o, c) += Σ_t ∂M(o, t) ⊙ V(c, t)
        tuple_product(
            [block_outputs, lay.channels, task_tiles],
            (dm, top_tiles),
            (tiles, Planes::matrix(lay.channels, task_tiles).transposed()),
            (grad, Planes::by_row(lay.channels)),
            task > 0,
        );
    }
    add_filter_gradients(lay.channels, grad, weight_diff);
}

/// The bias gradient of `outputs` into `sums`: each output's top gradient summed image by
/// image.
fn bias_gradient(lay: &Layout, outputs: Range<usize>, top_diff: &[f32], sums: &mut [f32]) {
    let out_plane = plane(lay.output);
    for (sum, o) in sums.iter_mut().zip(outputs) {
        *sum = vectorized(
            #[inline(always)]
            || {
                (0..lay.batch).fold(0.0, |s, n| {
                    s + sum_in_lanes(&top_diff[(n * lay.outputs + o) * out_plane..][..out_plane])
                })
            },
        );
    }
}

/// ∂M = A·∂Y·Aᵀ of `outputs` for every tile of `dy` (a task's images) into `dm`, an
/// `[outputs][tile]` matrix of blocks.
#[inline(always)]
fn transform_top_diff<S: Simd>(
    s: S,
    lay: &Layout,
    outputs: Range<usize>,
    dy: &[f32],
    dm: &mut [f32],
    at: Planes,
) {
    let (per_image, out_plane) = (lay.tiles_per_image(), plane(lay.output));
    let count = dy.len() / (lay.outputs * out_plane);
    for (row, o) in outputs.enumerate() {
        for n in 0..count {
            let pixels = &dy[(n * lay.outputs + o) * out_plane..][..out_plane];
            for t in 0..per_image {
                let rows = output_patch(s, pixels, lay.output, lay.tile_origin(t));
                let block = a_rows(s.narrow_to_wide(a_rows(rows)));
                store_block(s, block, dm, at, [row, n * per_image + t]);
            }
        }
    }
}

/// The input gradient of one task's images: ∂V = Σ_o U(o, ·) ⊙ ∂M(o, ·), block of outputs by
/// block, then each tile's B·∂V·Bᵀ added into `diff` (`[images][channels][h][w]`).
fn input_gradient(lay: &Layout, filters: &[f32], dy: &[f32], slot: &mut [f32], diff: &mut [f32]) {
    let count = diff.len() / (lay.channels * plane(lay.input));
    let task_tiles = count * lay.tiles_per_image();
    let (dv, dm) = slot.split_at_mut(lay.slot_regions(0)[0]);
    let v = Planes::matrix(lay.channels, task_tiles);
    for o0 in (0..lay.outputs).step_by(OUTPUT_BLOCK) {
        let outputs = o0..lay.outputs.min(o0 + OUTPUT_BLOCK);
        let block_outputs = outputs.len();
        let m = Planes::matrix(block_outputs, task_tiles);
        with_lanes!(s => transform_top_diff(s, lay, outputs, dy, dm, m));
        // ∂V(c, t) += Σ_o U(o, c) ⊙ ∂M(o, t)
        tuple_product(
            [lay.channels, task_tiles, block_outputs],
            (
                &filters[o0 * lay.channels * BLOCK..],
                Planes::by_row(lay.channels).transposed(),
            ),
            (dm, m),
            (dv, v),
            o0 > 0,
        );
    }
    diff.fill(0.0);
    with_lanes!(s => input_tiles(s, lay, dv, v, diff));
}

/// B·∂V·Bᵀ of every `(channel, tile)` block of `dv`, added into `diff` at its patch.
#[inline(always)]
fn input_tiles<S: Simd>(s: S, lay: &Layout, dv: &[f32], v: Planes, diff: &mut [f32]) {
    let per_image = lay.tiles_per_image();
    let count = diff.len() / (lay.channels * plane(lay.input));
    for c in 0..lay.channels {
        for n in 0..count {
            let pixels = &mut diff[(n * lay.channels + c) * plane(lay.input)..][..plane(lay.input)];
            for t in 0..per_image {
                let block = load_block(s, dv, v, [c, n * per_image + t]);
                let patch = b_rows(s.transpose8(b_rows(block)));
                add_input_patch(s, patch, lay.input, lay.patch_origin(t), pixels);
            }
        }
    }
}

// ---- The transforms' passes, over rows of lanes --------------------------------------------

/// Bᵀ·rows: the input transform's pass (8 rows to 8). The passes are the transform matrices
/// (the tests' `G`, `BT` and `AT`) written out, sharing the sums of symmetric rows.
#[inline(always)]
fn bt_rows<L: Lanes>(d: [L; 8]) -> [L; 8] {
    let p = d[4].scale(4.25).sub(d[2]).sub(d[6]);
    let q = d[3].scale(4.25).sub(d[1]).sub(d[5]);
    let a3 = d[2].scale(0.25).sub(d[4].scale(1.25)).add(d[6]);
    let b3 = d[1].scale(0.5).sub(d[3].scale(2.5)).add(d[5].scale(2.0));
    let a5 = d[2].scale(4.0).sub(d[4].scale(5.0)).add(d[6]);
    let b5 = d[1].scale(2.0).sub(d[3].scale(2.5)).add(d[5].scale(0.5));
    [
        d[0].sub(d[6]).add(d[4].sub(d[2]).scale(5.25)),
        p.add(q),
        p.sub(q),
        a3.add(b3),
        a3.sub(b3),
        a5.add(b5),
        a5.sub(b5),
        d[7].sub(d[1]).add(d[3].sub(d[5]).scale(5.25)),
    ]
}

/// B·rows: the input gradient's pass (8 rows to 8), the adjoint of [`bt_rows`].
#[inline(always)]
fn b_rows<L: Lanes>(v: [L; 8]) -> [L; 8] {
    let (s12, d12) = (v[1].add(v[2]), v[1].sub(v[2]));
    let (s34, d34) = (v[3].add(v[4]), v[3].sub(v[4]));
    let (s56, d56) = (v[5].add(v[6]), v[5].sub(v[6]));
    [
        v[0],
        d34.scale(0.5).add(d56.scale(2.0)).sub(d12).sub(v[7]),
        s34.scale(0.25)
            .sub(v[0].scale(5.25).add(s12))
            .add(s56.scale(4.0)),
        d12.scale(4.25)
            .sub(d34.scale(2.5).add(d56.scale(2.5)))
            .add(v[7].scale(5.25)),
        v[0].scale(5.25)
            .add(s12.scale(4.25))
            .sub(s34.scale(1.25).add(s56.scale(5.0))),
        d34.scale(2.0)
            .add(d56.scale(0.5))
            .sub(d12.add(v[7].scale(5.25))),
        s34.add(s56).sub(v[0].add(s12)),
        v[7],
    ]
}

/// Aᵀ·rows: the output transform's pass (8 rows to 4).
#[inline(always)]
fn at_rows<L: Lanes>(m: [L; 8]) -> [L; 4] {
    let (s12, d12) = (m[1].add(m[2]), m[1].sub(m[2]));
    let (s34, d34) = (m[3].add(m[4]), m[3].sub(m[4]));
    let (s56, d56) = (m[5].add(m[6]), m[5].sub(m[6]));
    [
        m[0].add(s12).add(s34).add(s56),
        d12.add(d34.scale(2.0)).add(d56.scale(0.5)),
        s12.add(s34.scale(4.0)).add(s56.scale(0.25)),
        d12.add(d34.scale(8.0)).add(d56.scale(0.125)).add(m[7]),
    ]
}

/// G·rows: the filter transform's pass (5 rows to 8).
#[inline(always)]
fn g_rows<L: Lanes>(g: [L; 5]) -> [L; 8] {
    let (e1, o1) = (g[0].add(g[2]).add(g[4]), g[1].add(g[3]));
    let e3 = g[0]
        .scale(1.0 / 90.0)
        .add(g[2].scale(2.0 / 45.0))
        .add(g[4].scale(8.0 / 45.0));
    let o3 = g[1].scale(1.0 / 45.0).add(g[3].scale(4.0 / 45.0));
    let e5 = g[0]
        .scale(32.0 / 45.0)
        .add(g[2].scale(8.0 / 45.0))
        .add(g[4].scale(2.0 / 45.0));
    let o5 = g[1].scale(16.0 / 45.0).add(g[3].scale(4.0 / 45.0));
    [
        g[0],
        e1.add(o1).scale(2.0 / 9.0),
        e1.sub(o1).scale(2.0 / 9.0),
        e3.add(o3),
        e3.sub(o3),
        e5.add(o5),
        e5.sub(o5),
        g[4],
    ]
}

/// Gᵀ·rows: the filter gradient's pass (8 rows to 5), the adjoint of [`g_rows`].
#[inline(always)]
fn gt_rows<L: Lanes>(u: [L; 8]) -> [L; 5] {
    let (s12, d12) = (
        u[1].add(u[2]).scale(2.0 / 9.0),
        u[1].sub(u[2]).scale(2.0 / 9.0),
    );
    let (s34, d34) = (u[3].add(u[4]), u[3].sub(u[4]));
    let (s56, d56) = (u[5].add(u[6]), u[5].sub(u[6]));
    [
        u[0].add(s12)
            .add(s34.scale(1.0 / 90.0))
            .add(s56.scale(32.0 / 45.0)),
        d12.add(d34.scale(1.0 / 45.0)).add(d56.scale(16.0 / 45.0)),
        s12.add(s34.scale(2.0 / 45.0)).add(s56.scale(8.0 / 45.0)),
        d12.add(d34.scale(4.0 / 45.0)).add(d56.scale(4.0 / 45.0)),
        s12.add(s34.scale(8.0 / 45.0))
            .add(s56.scale(2.0 / 45.0))
            .add(u[7]),
    ]
}

/// A·rows: the top gradient's pass (4 rows to 8), the adjoint of [`at_rows`].
#[inline(always)]
fn a_rows<L: Lanes>(x: [L; 4]) -> [L; 8] {
    let (e1, f1) = (x[0].add(x[2]), x[1].add(x[3]));
    let (e2, f2) = (
        x[0].add(x[2].scale(4.0)),
        x[1].scale(2.0).add(x[3].scale(8.0)),
    );
    let (e3, f3) = (
        x[0].add(x[2].scale(0.25)),
        x[1].scale(0.5).add(x[3].scale(0.125)),
    );
    [
        x[0],
        e1.add(f1),
        e1.sub(f1),
        e2.add(f2),
        e2.sub(f2),
        e3.add(f3),
        e3.sub(f3),
        x[3],
    ]
}

// ---- Tiles in and out of planes and images -------------------------------------------------

/// Block `at` of the matrix `m` in `data`, as its 8 columns of 8 values.
#[inline(always)]
fn load_block<S: Simd>(s: S, data: &[f32], m: Planes, [a, b]: [usize; 2]) -> [S::Wide; 8] {
    std::array::from_fn(|j| s.load8(&data[m.column(a, b, j)..]))
}

#[inline(always)]
fn store_block<S: Simd>(
    s: S,
    block: [S::Wide; 8],
    data: &mut [f32],
    m: Planes,
    [a, b]: [usize; 2],
) {
    for (j, column) in block.into_iter().enumerate() {
        s.store8(column, &mut data[m.column(a, b, j)..]);
    }
}

/// Whether the 8×8 patch at `origin` lies inside a plane of `[h, w]`.
fn patch_inside([y, x]: [isize; 2], [h, w]: [usize; 2]) -> bool {
    y >= 0 && x >= 0 && y as usize + PATCH <= h && x as usize + PATCH <= w
}

/// The 8×8 pixels of `pixels` (`[h, w]`) from `origin`, zeros outside it.
#[inline(always)]
fn input_patch<S: Simd>(
    s: S,
    pixels: &[f32],
    [h, w]: [usize; 2],
    origin: [isize; 2],
) -> [S::Wide; 8] {
    let [y0, x0] = origin;
    if patch_inside(origin, [h, w]) {
        let at = y0 as usize * w + x0 as usize;
        return std::array::from_fn(|y| s.load8(&pixels[at + y * w..]));
    }
    std::array::from_fn(|y| {
        let row: [f32; PATCH] = std::array::from_fn(|x| {
            pixel_at([h, w], y0 + y as isize, x0 + x as isize).map_or(0.0, |i| pixels[i])
        });
        s.load8(&row)
    })
}

/// The index of pixel `(y, x)` in a plane of `[h, w]`, if it lies inside.
#[inline(always)]
fn pixel_at([h, w]: [usize; 2], y: isize, x: isize) -> Option<usize> {
    (y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w).then(|| y as usize * w + x as usize)
}

/// Adds the 8×8 `patch` into `pixels` (`[h, w]`) at `origin`, dropping what falls outside.
#[inline(always)]
fn add_input_patch<S: Simd>(
    s: S,
    patch: [S::Wide; 8],
    [h, w]: [usize; 2],
    origin: [isize; 2],
    pixels: &mut [f32],
) {
    let [y0, x0] = origin;
    if patch_inside(origin, [h, w]) {
        let at = y0 as usize * w + x0 as usize;
        for (y, row) in patch.into_iter().enumerate() {
            let dst = &mut pixels[at + y * w..];
            s.store8(s.load8(dst).add(row), dst);
        }
        return;
    }
    for (y, row) in patch.into_iter().enumerate() {
        let mut values = [0.0; PATCH];
        s.store8(row, &mut values);
        for (x, v) in values.into_iter().enumerate() {
            if let Some(i) = pixel_at([h, w], y0 + y as isize, x0 + x as isize) {
                pixels[i] += v;
            }
        }
    }
}

/// The 4×4 top gradient of the tile at `origin` of `pixels` (`[h, w]`), zeros past its edge.
#[inline(always)]
fn output_patch<S: Simd>(
    s: S,
    pixels: &[f32],
    [h, w]: [usize; 2],
    [y0, x0]: [usize; 2],
) -> [S::Narrow; 4] {
    if y0 + TILE <= h && x0 + TILE <= w {
        return std::array::from_fn(|y| s.load4(&pixels[(y0 + y) * w + x0..]));
    }
    std::array::from_fn(|y| {
        let row: [f32; TILE] = std::array::from_fn(|x| {
            pixel_at([h, w], (y0 + y) as isize, (x0 + x) as isize).map_or(0.0, |i| pixels[i])
        });
        s.load4(&row)
    })
}

/// Writes the 4×4 output tile `y` plus `bias` into `pixels` (`[h, w]`) at `origin`, within it.
#[inline(always)]
fn store_output<S: Simd>(
    s: S,
    y: [S::Narrow; 4],
    bias: f32,
    [h, w]: [usize; 2],
    [y0, x0]: [usize; 2],
    pixels: &mut [f32],
) {
    let bias = S::Narrow::splat(bias);
    for (dy, row) in y.into_iter().enumerate().take(h - y0) {
        let row = row.add(bias);
        let dst = &mut pixels[(y0 + dy) * w + x0..];
        if x0 + TILE <= w {
            s.store4(row, dst);
        } else {
            let mut values = [0.0; TILE];
            s.store4(row, &mut values);
            dst[..w - x0].copy_from_slice(&values[..w - x0]);
        }
    }
}

// ---- The products in the transformed space ------------------------------------------------

/// A matrix of blocks stored as [`PLANES`] planes: values `16p..16p + 16` of block `(a, b)` lie
/// at `p·plane + (a·rows + b·cols)·16`. A product's pass over one plane then reads memory
/// that is contiguous, not one line of every four.
#[derive(Clone, Copy, Debug)]
struct Planes {
    plane: usize,
    rows: usize,
    cols: usize,
}

impl Planes {
    /// An `[n_rows][n_cols]` matrix stored row by row.
    fn matrix(n_rows: usize, n_cols: usize) -> Self {
        Self {
            plane: n_rows * n_cols * LANES,
            rows: n_cols,
            cols: 1,
        }
    }

    /// Rows one after another, each row's planes together (`[row][plane][column]`).
    fn by_row(n_cols: usize) -> Self {
        Self {
            plane: n_cols * LANES,
            rows: PLANES * n_cols,
            cols: 1,
        }
    }

    /// The same values read as the transposed matrix.
    fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            ..self
        }
    }

    fn at(&self, plane: usize, a: usize, b: usize) -> usize {
        plane * self.plane + (a * self.rows + b * self.cols) * LANES
    }

    /// Where column `j` (8 values) of block `(a, b)` starts.
    fn column(&self, a: usize, b: usize, j: usize) -> usize {
        self.at(j / 2, a, b) + j % 2 * PATCH
    }

    /// Values an `[n_a, n_b]` matrix spans.
    fn span(&self, n_a: usize, n_b: usize) -> usize {
        if n_a == 0 || n_b == 0 {
            return 0;
        }
        self.at(PLANES - 1, n_a - 1, n_b - 1) + LANES
    }
}

/// `out(i, j) = [out(i, j) +] Σ_k l(i, k) ⊙ r(k, j)` for `[ni, nj, nk]` blocks, value by value
/// (64 independent products of matrices). Each value is one chain of fused multiply-adds over
/// `k` in order, whatever the blocking or the instruction set: the same bits everywhere.
fn tuple_product(
    [ni, nj, nk]: [usize; 3],
    (l, ls): (&[f32], Planes),
    (r, rs): (&[f32], Planes),
    (out, os): (&mut [f32], Planes),
    accumulate: bool,
) {
    let args = Product::new([ni, nj, nk], (l, ls), (r, rs), (out, os), accumulate);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F; the operands span their blocks (checked by `Product::new`).
            return unsafe { product_avx512(&args) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: as above, for AVX2 and FMA.
            return unsafe { product_avx2(&args) };
        }
    }
    // SAFETY: the operands span their blocks (checked by `Product::new`).
    unsafe { product::<8, 2, 2>(&args) }
}

/// [`tuple_product`]'s checked arguments.
struct Product {
    shape: [usize; 3],
    l: *const f32,
    ls: Planes,
    r: *const f32,
    rs: Planes,
    out: *mut f32,
    os: Planes,
    accumulate: bool,
}

impl Product {
    /// Panics when an operand is shorter than the blocks its layout spans.
    fn new(
        [ni, nj, nk]: [usize; 3],
        (l, ls): (&[f32], Planes),
        (r, rs): (&[f32], Planes),
        (out, os): (&mut [f32], Planes),
        accumulate: bool,
    ) -> Self {
        assert!(
            l.len() >= ls.span(ni, nk)
                && r.len() >= rs.span(nk, nj)
                && out.len() >= os.span(ni, nj),
            "tuple_product: operands shorter than their blocks"
        );
        Self {
            shape: [ni, nj, nk],
            l: l.as_ptr(),
            ls,
            r: r.as_ptr(),
            rs,
            out: out.as_mut_ptr(),
            os,
            accumulate,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
/// # Safety
/// The CPU has AVX-512F; `p`'s operands span their blocks.
unsafe fn product_avx512(p: &Product) {
    // 5 × 4 accumulators of 16 lanes, 5 + 1 operand registers: 26 of the 32 vector registers.
    unsafe { product::<16, 5, 4>(p) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
/// # Safety
/// The CPU has AVX2 and FMA; `p`'s operands span their blocks.
unsafe fn product_avx2(p: &Product) {
    // 3 × 4 accumulators of 8 lanes, 3 + 1 operand registers: the 16 vector registers.
    unsafe { product::<8, 3, 4>(p) }
}

/// [`tuple_product`] in register blocks of `BI × BJ` blocks' `W` values at a time.
///
/// # Safety
/// `p`'s operands span their blocks.
#[inline(always)]
unsafe fn product<const W: usize, const BI: usize, const BJ: usize>(p: &Product) {
    let [ni, nj, _] = p.shape;
    for plane in 0..PLANES {
        for lane in (0..LANES).step_by(W) {
            // Rows outside: a row block's left operands stay in L1 across the columns. (Columns
            // outside measured 2-3% slower on one thread, the same on two: docs/performance.md.)
            for i0 in (0..ni).step_by(BI) {
                for j0 in (0..nj).step_by(BJ) {
                    let at = [plane, lane, i0, j0];
                    // SAFETY: (forwarded) every block touched is inside the operands.
                    unsafe {
                        if i0 + BI <= ni && j0 + BJ <= nj {
                            register_block::<W, BI, BJ>(p, at);
                        } else {
                            for i in i0..ni.min(i0 + BI) {
                                for j in j0..nj.min(j0 + BJ) {
                                    register_block::<W, 1, 1>(p, [plane, lane, i, j]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Values `lane..lane + W` of plane `plane` of the `BI × BJ` output blocks from `(i0, j0)`.
///
/// # Safety
/// `p`'s operands span their blocks and the register block lies inside the output.
#[inline(always)]
unsafe fn register_block<const W: usize, const BI: usize, const BJ: usize>(
    p: &Product,
    [plane, lane, i0, j0]: [usize; 4],
) {
    // SAFETY (the pointer arithmetic and accesses below): inside the operands by the
    // caller's contract.
    let load = |ptr: *const f32| -> [f32; W] { unsafe { ptr.cast::<[f32; W]>().read_unaligned() } };
    let l: [*const f32; BI] =
        std::array::from_fn(|i| unsafe { p.l.add(p.ls.at(plane, i0 + i, 0) + lane) });
    let r: [*const f32; BJ] =
        std::array::from_fn(|j| unsafe { p.r.add(p.rs.at(plane, 0, j0 + j) + lane) });
    let out: [[*mut f32; BJ]; BI] = std::array::from_fn(|i| {
        std::array::from_fn(|j| unsafe { p.out.add(p.os.at(plane, i0 + i, j0 + j) + lane) })
    });
    let (l_step, r_step) = (p.ls.cols * LANES, p.rs.rows * LANES);
    let mut acc = [[[0.0f32; W]; BJ]; BI];
    if p.accumulate {
        for (acc, out) in acc.iter_mut().zip(&out) {
            for (a, &o) in acc.iter_mut().zip(out) {
                *a = load(o);
            }
        }
    }
    for k in 0..p.shape[2] {
        let lv: [[f32; W]; BI] = std::array::from_fn(|i| load(unsafe { l[i].add(k * l_step) }));
        for j in 0..BJ {
            let rv = load(unsafe { r[j].add(k * r_step) });
            for i in 0..BI {
                for x in 0..W {
                    acc[i][j][x] = lv[i][x].mul_add(rv[x], acc[i][j][x]);
                }
            }
        }
    }
    for (acc, out) in acc.iter().zip(&out) {
        for (a, &o) in acc.iter().zip(out) {
            unsafe { o.cast::<[f32; W]>().write_unaligned(*a) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lanes;
    use super::*;

    /// The filter transform G (8 × 5). Signs of rows 0–2 flipped from Lavin's construction, with
    /// Bᵀ's rows 0–2, so that each row starts positive; the product is unchanged.
    #[rustfmt::skip]
    const G: [[f32; 5]; 8] = [
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [2.0 / 9.0; 5],
        [2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0, 2.0 / 9.0],
        [1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0, 4.0 / 45.0, 8.0 / 45.0],
        [1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0, -4.0 / 45.0, 8.0 / 45.0],
        [32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0, 4.0 / 45.0, 2.0 / 45.0],
        [32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0, -4.0 / 45.0, 2.0 / 45.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
    ];

    /// Bᵀ and Aᵀ as matrices, for checking the hand-written passes.
    const BT: [[f32; 8]; 8] = [
        [1.0, 0.0, -5.25, 0.0, 5.25, 0.0, -1.0, 0.0],
        [0.0, -1.0, -1.0, 4.25, 4.25, -1.0, -1.0, 0.0],
        [0.0, 1.0, -1.0, -4.25, 4.25, 1.0, -1.0, 0.0],
        [0.0, 0.5, 0.25, -2.5, -1.25, 2.0, 1.0, 0.0],
        [0.0, -0.5, 0.25, 2.5, -1.25, -2.0, 1.0, 0.0],
        [0.0, 2.0, 4.0, -2.5, -5.0, 0.5, 1.0, 0.0],
        [0.0, -2.0, 4.0, 2.5, -5.0, -0.5, 1.0, 0.0],
        [0.0, -1.0, 0.0, 5.25, 0.0, -5.25, 0.0, 1.0],
    ];
    const AT: [[f32; 8]; 4] = [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 0.0],
        [0.0, 1.0, 1.0, 4.0, 4.0, 0.25, 0.25, 0.0],
        [0.0, 1.0, -1.0, 8.0, -8.0, 0.125, -0.125, 1.0],
    ];

    /// `mat · v` in f64, `mat` given by its entries.
    fn apply(rows: usize, cols: usize, entry: impl Fn(usize, usize) -> f32, v: &[f32]) -> Vec<f64> {
        (0..rows)
            .map(|r| (0..cols).map(|c| entry(r, c) as f64 * v[c] as f64).sum())
            .collect()
    }

    fn close(got: &[[f32; 1]], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g[0] as f64 - w).abs() < 1e-5 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn the_passes_are_the_transform_matrices() {
        let v: Vec<f32> = (0..8).map(|i| (i as f32 * 0.37 - 1.1).sin()).collect();
        let lanes: [[f32; 1]; 8] = std::array::from_fn(|i| [v[i]]);
        close(&bt_rows(lanes), &apply(8, 8, |r, c| BT[r][c], &v));
        close(&b_rows(lanes), &apply(8, 8, |r, c| BT[c][r], &v));
        close(&at_rows(lanes), &apply(4, 8, |r, c| AT[r][c], &v));
        let four: [[f32; 1]; 4] = std::array::from_fn(|i| [v[i]]);
        close(&a_rows(four), &apply(8, 4, |r, c| AT[c][r], &v));
        let five: [[f32; 1]; 5] = std::array::from_fn(|i| [v[i]]);
        close(&g_rows(five), &apply(8, 5, |r, c| G[r][c], &v));
        close(&gt_rows(lanes), &apply(5, 8, |r, c| G[c][r], &v));
    }

    /// The transforms compute a 1-D 5-tap correlation: Aᵀ·[(G·g) ⊙ (Bᵀ·d)] = the 4 outputs
    /// of `g` over `d`.
    #[test]
    fn the_transforms_are_a_correlation() {
        let d: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7 + 0.3).cos()).collect();
        let g: Vec<f32> = (0..5).map(|i| (i as f32 * 1.3 - 0.2).sin()).collect();
        let gg = apply(8, 5, |r, c| G[r][c], &g);
        let bd = apply(8, 8, |r, c| BT[r][c], &d);
        let m: Vec<f32> = gg.iter().zip(&bd).map(|(a, b)| (a * b) as f32).collect();
        let y = apply(4, 8, |r, c| AT[r][c], &m);
        for (i, y) in y.iter().enumerate() {
            let want: f32 = (0..5).map(|k| g[k] * d[i + k]).sum();
            assert!((y - want as f64).abs() < 1e-5, "{y} vs {want}");
        }
    }

    /// Every register blocking and instruction set gives the product the same bits as one
    /// multiply-add chain per value.
    #[test]
    fn the_product_is_one_chain_per_value() {
        let [ni, nj, nk] = [7, 9, 6];
        let fill = |n: usize, seed: f32| -> Vec<f32> {
            (0..n * BLOCK)
                .map(|i| ((i as f32 + seed) * 0.618).sin())
                .collect()
        };
        let (l, r) = (fill(ni * nk, 0.5), fill(nk * nj, 1.5));
        let (ls, rs) = (Planes::matrix(ni, nk), Planes::matrix(nj, nk).transposed());
        let os = Planes::matrix(ni, nj);
        let start = fill(ni * nj, 2.5);
        for accumulate in [false, true] {
            let mut want = start.clone();
            for (i, j, p, x) in itertools(ni, nj) {
                let at = os.at(p, i, j) + x;
                let mut acc = if accumulate { want[at] } else { 0.0 };
                for k in 0..nk {
                    acc = l[ls.at(p, i, k) + x].mul_add(r[rs.at(p, k, j) + x], acc);
                }
                want[at] = acc;
            }
            let mut got = start.clone();
            tuple_product([ni, nj, nk], (&l, ls), (&r, rs), (&mut got, os), accumulate);
            assert_eq!(got, want);
            let mut portable = start.clone();
            let args = Product::new(
                [ni, nj, nk],
                (&l, ls),
                (&r, rs),
                (&mut portable, os),
                accumulate,
            );
            // SAFETY: `Product::new` checked the operands' spans.
            unsafe { product::<8, 2, 2>(&args) };
            assert_eq!(portable, want);
        }
    }

    fn random(len: usize, seed: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i as f32 + seed) * 0.618).sin())
            .collect()
    }

    /// 3 tasks (the last partial) of 6-channel 9×11 images, 7 outputs, padding 1.
    fn small_layout() -> Layout {
        let g = ConvGeometry {
            channels: 6,
            height: 9,
            width: 11,
            kernel: [5, 5],
            stride: [1, 1],
            pad: [1, 1],
            dilation: [1, 1],
        };
        Layout::new(&g, 7, 5, 2)
    }

    /// A net that only runs forward keeps no input tiles; the first backward pass makes them,
    /// and later forward passes keep theirs.
    #[test]
    fn only_a_backward_pass_keeps_input_tiles() {
        let lay = small_layout();
        let (image_in, image_out) = lay.image_sizes();
        let images = random(lay.batch * image_in, 1.0);
        let weights = random(lay.outputs * lay.channels * TAPS, 2.0);
        let mut top = vec![0.0; lay.batch * image_out];
        let mut w = Winograd::default();
        w.reshape(&lay).unwrap();
        w.forward(&lay, &images, &weights, None, &mut top);
        w.forward(&lay, &images, &weights, None, &mut top);
        assert!(w.inputs.is_empty() && !w.inputs_kept);
        let mut dw = vec![0.0; weights.len()];
        w.backward(&lay, &images, &top, &mut dw, None, None);
        assert!(w.inputs_kept && w.inputs.len() == lay.tasks() * lay.task_inputs());
        w.forward(&lay, &images, &weights, None, &mut top);
        assert!(w.inputs_kept);
    }

    /// The filter gradient from tiles it transforms itself (when keeping them failed) has the
    /// bits of the one from kept tiles.
    #[test]
    fn the_filter_gradient_without_kept_tiles_is_the_same() {
        let lay = small_layout();
        let (image_in, image_out) = lay.image_sizes();
        let images = random(lay.batch * image_in, 3.0);
        let top_diff = random(lay.batch * image_out, 4.0);
        let mut kept = vec![0.0; lay.tasks() * lay.task_inputs()];
        for (t, tiles) in kept.chunks_mut(lay.task_inputs()).enumerate() {
            let count = lay.per_task.min(lay.batch - t * lay.per_task);
            let images = &images[t * lay.per_task * image_in..][..count * image_in];
            transform_inputs(lanes::Portable, &lay, images, tiles);
        }
        let mut slot = vec![0.0; lay.lens()[2]];
        let outputs = 2..lay.outputs;
        let mut with_kept = vec![0.5; outputs.len() * lay.channels * TAPS];
        let mut without = with_kept.clone();
        let sources = (&images[..], Some(&kept[..]), &top_diff[..]);
        filter_gradient(&lay, outputs.clone(), sources, &mut slot, &mut with_kept);
        let sources = (&images[..], None, &top_diff[..]);
        filter_gradient(&lay, outputs, sources, &mut slot, &mut without);
        assert_eq!(with_kept, without);
        assert!(with_kept.iter().any(|&v| v != 0.5));
    }

    /// Every (row, column, plane, lane) of an `[ni, nj]` matrix of blocks.
    fn itertools(ni: usize, nj: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        (0..ni).flat_map(move |i| {
            (0..nj).flat_map(move |j| {
                (0..PLANES).flat_map(move |p| (0..LANES).map(move |x| (i, j, p, x)))
            })
        })
    }
}
