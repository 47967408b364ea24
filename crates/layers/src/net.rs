//! `Net`: a `NetSpec` instantiated on a backend: layers in order over blobs, forward (total
//! weighted loss) and backward with Caffe's semantics, shared parameters and weights I/O.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use siamese_net::{LayerKind, LayerSpec, NetSpec};
use siamese_proto::{NetParameter, Phase};

use crate::caffemodel::{blob_to_proto, copy_proto_into, read_net_parameter, write_atomic};
use crate::filler::fill;
use crate::layers::DynLayer;
use crate::memory::MemoryPlan;
use crate::{Backend, Blob, CpuBackend, LayerError};

mod device_ops;
#[cfg(feature = "cuda")]
mod gpu;

pub use device_ops::FusedSgd;

/// Where a net's blobs and parameters live: the host only, or a GPU (with host mirrors).
/// Without the `cuda` feature there is no GPU placement at all.
enum Placement {
    Host,
    #[cfg(feature = "cuda")]
    Gpu(Box<gpu::GpuState>),
}

/// One distinct learnable parameter (shared ones appear once), in Caffe's
/// `learnable_params` order.
#[derive(Clone, Debug, PartialEq)]
pub struct LearnableParam {
    /// Caffe's display name: the shared name, else the slot index.
    pub name: String,
    pub blob: Blob,
    pub lr_mult: f32,
    pub decay_mult: f32,
}

/// A layer with its wiring, lent blobs and backward flags.
struct NetLayer {
    name: String,
    kind: LayerKind,
    spec: LayerSpec,
    layer: Box<DynLayer>,
    /// Storage ids (see `Net::blobs`).
    bottoms: Vec<usize>,
    tops: Vec<usize>,
    /// `Net::params` ids.
    params: Vec<usize>,
    loss_weights: Vec<f32>,
    need_backward: bool,
    propagate_down: Vec<bool>,
    /// Reused holders for the blobs lent to the layer during a call (no allocation).
    lent_bottoms: Vec<Blob>,
    lent_tops: Vec<Blob>,
    lent_params: Vec<Blob>,
}

/// A net ready to run. Each top gets its own blob, so an in-place layer (ReLU) reads its input
/// from the blob before it; `blob(name)` returns the latest blob of that name, as in Caffe.
pub struct Net {
    name: String,
    phase: Phase,
    backend: Box<dyn Backend>,
    layers: Vec<NetLayer>,
    blobs: Vec<Blob>,
    blob_names: Vec<String>,
    latest: HashMap<String, usize>,
    params: Vec<LearnableParam>,
    outputs: Vec<usize>,
    /// The solver's update history in Caffe's order (see [`Net::set_update_history`]).
    history: Vec<Vec<f32>>,
    placement: Placement,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Net")
            .field("name", &self.name)
            .field("phase", &self.phase)
            .field("backend", &self.backend.name())
            .field("layers", &self.layer_names())
            .finish()
    }
}

impl Net {
    /// Builds the net of `spec` on the CPU backend, filling parameters with their fillers from
    /// a ChaCha8 RNG seeded by `seed` (same seed, same weights).
    pub fn new(spec: &NetSpec, seed: u64) -> Result<Net, LayerError> {
        Self::with_backend(spec, seed, Box::new(CpuBackend::new()))
    }

    /// Like [`Net::new`] on the given backend. Fails before allocating anything when the net's
    /// [`MemoryPlan`] does not fit in what this process may use.
    pub fn with_backend(
        spec: &NetSpec,
        seed: u64,
        backend: Box<dyn Backend>,
    ) -> Result<Net, LayerError> {
        MemoryPlan::of_net(spec).check_now(&format!("net \"{}\"", spec.name))?;
        let mut net = Net {
            name: spec.name.clone(),
            phase: spec.phase,
            backend,
            layers: Vec::with_capacity(spec.layers.len()),
            blobs: Vec::new(),
            blob_names: Vec::new(),
            latest: HashMap::new(),
            params: spec
                .params
                .iter()
                .map(|p| LearnableParam {
                    name: p.display_name.clone(),
                    blob: Blob::default(),
                    lr_mult: p.lr_mult,
                    decay_mult: p.decay_mult,
                })
                .collect(),
            outputs: Vec::new(),
            history: Vec::new(),
            placement: Placement::Host,
        };
        let mut shaped = vec![false; spec.params.len()];
        // Storage of each spec blob so far (a top always gets a fresh blob).
        let mut current: Vec<Option<usize>> = vec![None; spec.blobs.len()];
        for (index, ls) in spec.layers.iter().enumerate() {
            let bottoms = ls
                .bottoms
                .iter()
                .map(|&b| {
                    current[b].ok_or_else(|| {
                        LayerError::config(
                            &ls.name,
                            format!(
                                "bottom \"{}\" is not produced by an earlier layer",
                                spec.blobs[b].name
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if has_duplicates(&bottoms) || has_duplicates(&ls.params) {
                return Err(LayerError::config(
                    &ls.name,
                    "the same bottom or parameter appears twice",
                ));
            }
            let tops: Vec<usize> = ls
                .tops
                .iter()
                .map(|&t| {
                    net.blobs.push(Blob::default());
                    net.blob_names.push(spec.blobs[t].name.clone());
                    current[t] = Some(net.blobs.len() - 1);
                    net.blobs.len() - 1
                })
                .collect();
            let seed = seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let layer = crate::layers::build(
                &ls.name,
                &ls.config,
                spec.phase,
                seed,
                ls.data_source.as_deref(),
            )?;
            net.layers.push(NetLayer {
                name: ls.name.clone(),
                kind: ls.kind(),
                spec: ls.clone(),
                layer,
                bottoms,
                params: ls.params.clone(),
                loss_weights: ls.loss_weights.clone(),
                need_backward: false,
                propagate_down: vec![false; ls.bottoms.len()],
                lent_bottoms: Vec::with_capacity(ls.bottoms.len()),
                lent_tops: Vec::with_capacity(tops.len()),
                lent_params: Vec::with_capacity(ls.params.len()),
                tops,
            });
            net.setup_layer(index, spec, &mut shaped)?;
        }
        for (s, name) in net.blob_names.iter().enumerate() {
            net.latest.insert(name.clone(), s);
        }
        net.outputs = spec.outputs.iter().filter_map(|&b| current[b]).collect();
        net.fill_params(spec, seed)?;
        net.plan_backward();
        Ok(net)
    }

    /// Runs the layer's setup and first reshape, creating or checking its parameter blobs.
    fn setup_layer(
        &mut self,
        index: usize,
        spec: &NetSpec,
        shaped: &mut [bool],
    ) -> Result<(), LayerError> {
        let shapes = self.with_lent(index, |l, _| l.layer.setup(&l.lent_bottoms, l.tops.len()))?;
        let l = &self.layers[index];
        if shapes.len() != l.params.len() {
            return Err(LayerError::config(
                &l.name,
                format!(
                    "{} has {} parameter blobs, the net definition gives it {}",
                    l.kind,
                    shapes.len(),
                    l.params.len()
                ),
            ));
        }
        for (slot, (&pid, shape)) in l.params.iter().zip(&shapes).enumerate() {
            let info = &spec.params[pid];
            let param = &mut self.params[pid].blob;
            if !shaped[pid] {
                *param = Blob::default();
                param
                    .reshape(shape)
                    .map_err(|e| LayerError::from(e).in_layer_named(&l.name))?;
                shaped[pid] = true;
            } else if param.shape != *shape && param.count() != shape.iter().product::<usize>() {
                return Err(LayerError::shape(
                    &l.name,
                    format!(
                        "shared parameter \"{}\" (slot {slot}) has shape {:?} here, {:?} in its owner",
                        info.display_name, shape, param.shape
                    ),
                ));
            }
        }
        self.reshape_layer(index)
    }

    fn fill_params(&mut self, spec: &NetSpec, seed: u64) -> Result<(), LayerError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (param, info) in self.params.iter_mut().zip(&spec.params) {
            let filler = info.filler.clone().unwrap_or_default();
            let owner = &spec.layers[info.owner.0].name;
            let what = format!("{owner} (parameter {})", info.display_name);
            fill(&filler, &mut param.blob, &mut rng, &what)?;
        }
        Ok(())
    }

    /// Caffe's Net::Init backward analysis: which layers run backward and which bottoms get a
    /// gradient. A layer needs backward when a bottom does or it has a parameter with
    /// `lr_mult != 0`; layers that contribute nothing to a loss are skipped.
    fn plan_backward(&mut self) {
        let mut blob_needs = vec![false; self.blobs.len()];
        for l in &mut self.layers {
            let mut need = l.params.iter().any(|&p| self.params[p].lr_mult != 0.0);
            for (j, &b) in l.bottoms.iter().enumerate() {
                let allowed = l.layer.allows_backward(j)
                    && l.spec.proto.propagate_down.get(j).copied().unwrap_or(true);
                l.propagate_down[j] = blob_needs[b] && allowed;
                need |= l.propagate_down[j];
            }
            l.need_backward = need;
            for &t in &l.tops {
                blob_needs[t] = need;
            }
        }
        let mut under_loss = vec![false; self.blobs.len()];
        for l in self.layers.iter_mut().rev() {
            let contributes = l
                .tops
                .iter()
                .zip(&l.loss_weights)
                .any(|(&t, &w)| w != 0.0 || under_loss[t]);
            if !contributes {
                l.need_backward = false;
                l.propagate_down.fill(false);
            } else {
                for &b in &l.bottoms {
                    under_loss[b] = true;
                }
            }
        }
    }

    /// Lends the layer's bottoms, tops and parameters, runs `f`, and takes them back.
    fn with_lent<R>(
        &mut self,
        index: usize,
        f: impl FnOnce(&mut NetLayer, &dyn Backend) -> R,
    ) -> R {
        let l = &mut self.layers[index];
        l.lent_bottoms.extend(
            l.bottoms
                .iter()
                .map(|&b| std::mem::take(&mut self.blobs[b])),
        );
        l.lent_tops
            .extend(l.tops.iter().map(|&t| std::mem::take(&mut self.blobs[t])));
        l.lent_params.extend(
            l.params
                .iter()
                .map(|&p| std::mem::take(&mut self.params[p].blob)),
        );
        let result = f(l, self.backend.as_ref());
        for (&b, blob) in l.bottoms.iter().zip(l.lent_bottoms.drain(..)) {
            self.blobs[b] = blob;
        }
        for (&t, blob) in l.tops.iter().zip(l.lent_tops.drain(..)) {
            self.blobs[t] = blob;
        }
        for (&p, blob) in l.params.iter().zip(l.lent_params.drain(..)) {
            self.params[p].blob = blob;
        }
        result
    }

    fn reshape_layer(&mut self, index: usize) -> Result<(), LayerError> {
        self.with_lent(index, |l, _| {
            l.layer
                .reshape(&l.lent_bottoms, &mut l.lent_tops)
                .map_err(|e| e.in_layer_named(&l.name))
        })
    }

    /// Runs layer `index` forward (reshaping it first); returns its weighted loss.
    pub fn forward_layer(&mut self, index: usize) -> Result<f32, LayerError> {
        match self.placement {
            Placement::Host => self.host_forward_layer(index),
            #[cfg(feature = "cuda")]
            Placement::Gpu(_) => self.gpu_forward_layer(index),
        }
    }

    fn host_forward_layer(&mut self, index: usize) -> Result<f32, LayerError> {
        self.with_lent(index, |l, backend| {
            l.layer
                .reshape(&l.lent_bottoms, &mut l.lent_tops)
                .map_err(|e| e.in_layer_named(&l.name))?;
            l.layer
                .forward(backend, &l.lent_bottoms, &l.lent_params, &mut l.lent_tops)?;
            Ok(l.lent_tops
                .iter()
                .zip(&l.loss_weights)
                .filter(|&(_, &w)| w != 0.0)
                .map(|(t, &w)| w * t.data.iter().sum::<f32>())
                .sum())
        })
    }

    /// Runs layer `index` backward if the net needs its gradient; a loss top's diff is set to
    /// its loss weight first.
    pub fn backward_layer(&mut self, index: usize) {
        if !self.layers[index].need_backward {
            return;
        }
        match self.placement {
            Placement::Host => self.host_backward_layer(index),
            #[cfg(feature = "cuda")]
            Placement::Gpu(_) => self.gpu_backward_layer(index),
        }
    }

    fn host_backward_layer(&mut self, index: usize) {
        self.with_lent(index, |l, backend| {
            for (t, &w) in l.lent_tops.iter_mut().zip(&l.loss_weights) {
                if w != 0.0 {
                    t.diff.fill(w);
                }
            }
            l.layer.backward(
                backend,
                &l.lent_tops,
                &mut l.lent_params,
                &l.propagate_down,
                &mut l.lent_bottoms,
            );
        })
    }

    /// Runs every layer forward; returns the total weighted loss.
    pub fn forward(&mut self) -> Result<f32, LayerError> {
        let mut loss = 0.0;
        for i in 0..self.layers.len() {
            loss += self.forward_layer(i)?;
        }
        #[cfg(feature = "cuda")]
        if let Placement::Gpu(_) = self.placement {
            self.gpu_download_outputs()?;
        }
        Ok(loss)
    }

    /// Runs backward from the losses: parameter gradients accumulate into the parameters'
    /// diffs (see [`Net::clear_param_diffs`]).
    pub fn backward(&mut self) {
        for i in (0..self.layers.len()).rev() {
            self.backward_layer(i);
        }
    }

    /// Zeroes every parameter's diff (the solver does this each iteration).
    pub fn clear_param_diffs(&mut self) {
        match self.placement {
            Placement::Host => self.params.iter_mut().for_each(|p| p.blob.diff.fill(0.0)),
            #[cfg(feature = "cuda")]
            Placement::Gpu(_) => self.gpu_clear_param_diffs(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The compute backend's name for logs (`cpu-gemm`, `cpu-openblas`, `cuda`).
    pub fn backend_name(&self) -> &'static str {
        match self.placement {
            Placement::Host => self.backend.name(),
            #[cfg(feature = "cuda")]
            Placement::Gpu(_) => "cuda",
        }
    }

    pub fn learnable_params(&self) -> &[LearnableParam] {
        &self.params
    }

    /// On a GPU net this downloads the params (data and diff) first and uploads them before
    /// the next device use (a download error is returned by the next device call).
    pub fn learnable_params_mut(&mut self) -> &mut [LearnableParam] {
        #[cfg(feature = "cuda")]
        if let Placement::Gpu(_) = self.placement {
            let result = self.params_to_host();
            self.gpu_record(result);
        }
        &mut self.params
    }

    /// The latest blob called `name` (after an in-place layer: its output).
    pub fn blob(&self, name: &str) -> Option<&Blob> {
        self.latest.get(name).map(|&s| &self.blobs[s])
    }

    pub fn blob_mut(&mut self, name: &str) -> Option<&mut Blob> {
        self.latest.get(name).map(|&s| &mut self.blobs[s])
    }

    /// The net's outputs (blobs no later layer consumes: losses, accuracy, features).
    pub fn outputs(&self) -> Vec<(&str, &Blob)> {
        self.outputs
            .iter()
            .map(|&s| (self.blob_names[s].as_str(), &self.blobs[s]))
            .collect()
    }

    /// The loss weight of each output (same order as [`Net::outputs`]; 0 for non-losses),
    /// for logging `loss = 0.1 (* 1 = 0.1 loss)` as Caffe does.
    pub fn output_loss_weights(&self) -> Vec<f32> {
        self.outputs
            .iter()
            .map(|&s| {
                self.layers
                    .iter()
                    .find_map(|l| {
                        l.tops
                            .iter()
                            .position(|&t| t == s)
                            .map(|j| l.loss_weights[j])
                    })
                    .unwrap_or(0.0)
            })
            .collect()
    }

    /// Tops of the Input layers, by name.
    pub fn input_names(&self) -> Vec<&str> {
        self.layers
            .iter()
            .filter(|l| l.kind == LayerKind::Input)
            .flat_map(|l| l.tops.iter().map(|&t| self.blob_names[t].as_str()))
            .collect()
    }

    /// Gives the Input top `name` a new shape (the blob is resized at once; later layers
    /// follow on the next forward).
    pub fn reshape_input(&mut self, name: &str, shape: &[usize]) -> Result<(), LayerError> {
        let found = self.layers.iter().enumerate().find_map(|(i, l)| {
            let slot = l.tops.iter().position(|&t| self.blob_names[t] == name)?;
            (l.kind == LayerKind::Input).then_some((i, slot))
        });
        let Some((index, slot)) = found else {
            return Err(LayerError::config(
                name,
                "no Input layer has a top of this name",
            ));
        };
        self.layers[index].layer.set_input_shape(slot, shape);
        self.reshape_layer(index)
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn layer_names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// Caffe type of layer `index`.
    pub fn layer_kind(&self, index: usize) -> LayerKind {
        self.layers[index].kind
    }

    /// Whether layer `index` runs backward.
    pub fn layer_needs_backward(&self, index: usize) -> bool {
        self.layers[index].need_backward
    }

    /// Forward FLOPs of layer `index` at its current shapes (products only).
    pub fn layer_flops(&self, index: usize) -> u64 {
        self.layers[index].layer.forward_flops()
    }

    /// Record positions of the Data layers, in layer order (for exact resume).
    pub fn data_positions(&self) -> Vec<usize> {
        self.layers
            .iter()
            .filter_map(|l| l.layer.data_position())
            .collect()
    }

    /// Restores what [`Net::data_positions`] returned.
    pub fn set_data_positions(&mut self, positions: &[usize]) -> Result<(), LayerError> {
        let data: Vec<&mut NetLayer> = self
            .layers
            .iter_mut()
            .filter(|l| l.layer.data_position().is_some())
            .collect();
        if data.len() != positions.len() {
            return Err(LayerError::config(
                &self.name,
                format!(
                    "{} data positions for {} data layers",
                    positions.len(),
                    data.len()
                ),
            ));
        }
        for (l, &p) in data.into_iter().zip(positions) {
            l.layer.seek_data(p)?;
        }
        Ok(())
    }

    /// Copies parameters from `other` layer by layer (matched by name, shapes checked); how
    /// the test net takes the train net's weights. Layers `other` lacks are left as they are.
    pub fn copy_params_from(&mut self, other: &Net) -> Result<(), LayerError> {
        self.params_to_host()?;
        let by_name: HashMap<&str, &NetLayer> =
            other.layers.iter().map(|l| (l.name.as_str(), l)).collect();
        for l in &self.layers {
            let Some(src) = by_name.get(l.name.as_str()) else {
                continue;
            };
            if src.params.len() != l.params.len() {
                return Err(LayerError::shape(
                    &l.name,
                    format!(
                        "{} parameter blobs here, {} in the source net",
                        l.params.len(),
                        src.params.len()
                    ),
                ));
            }
            for (&dst, &from) in l.params.iter().zip(&src.params) {
                let current = other.current_param_data(from)?;
                let from = &other.params[from].blob;
                let to = &mut self.params[dst].blob;
                if from.shape != to.shape {
                    return Err(LayerError::shape(
                        &l.name,
                        format!(
                            "parameter shape {:?} here, {:?} in the source net",
                            to.shape, from.shape
                        ),
                    ));
                }
                to.data
                    .copy_from_slice(current.as_deref().unwrap_or(&from.data));
            }
        }
        Ok(())
    }

    /// The net with its weights as Caffe writes a `.caffemodel`: every layer's definition with
    /// its parameter blobs (shared ones under each layer that uses them).
    ///
    /// On a GPU net the params are downloaded; should that fail, the host copies are used
    /// (see [`Net::save_caffemodel`], which reports the error instead).
    pub fn to_proto(&self) -> NetParameter {
        self.try_to_proto()
            .unwrap_or_else(|_| self.proto_with(|p| blob_to_proto(&self.params[p].blob)))
    }

    /// Like [`Net::to_proto`], but a failed download from the GPU is an error (snapshots use
    /// this, so they never save stale weights).
    pub fn try_to_proto(&self) -> Result<NetParameter, LayerError> {
        let current: Vec<Option<Vec<f32>>> = (0..self.params.len())
            .map(|p| self.current_param_data(p))
            .collect::<Result<_, _>>()?;
        Ok(self.proto_with(|p| {
            let blob = &self.params[p].blob;
            match &current[p] {
                Some(data) => blob_to_proto(&Blob::from_data(&blob.shape, data.clone())),
                None => blob_to_proto(blob),
            }
        }))
    }

    fn proto_with(&self, blob: impl Fn(usize) -> siamese_proto::BlobProto) -> NetParameter {
        NetParameter {
            name: Some(self.name.clone()),
            layer: self
                .layers
                .iter()
                .map(|l| {
                    let mut proto = l.spec.proto.clone();
                    proto.blobs = l.params.iter().map(|&p| blob(p)).collect();
                    proto
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Loads weights from a NetParameter (V1 `layers` are upgraded first): each layer of the
    /// file that has a namesake here gives its blobs, checked against the shapes.
    pub fn load_proto(&mut self, param: &NetParameter) -> Result<(), LayerError> {
        self.load_proto_from(param, "weights")
    }

    fn load_proto_from(&mut self, param: &NetParameter, origin: &str) -> Result<(), LayerError> {
        self.params_to_host()?;
        let upgraded;
        let param = if param.layers.is_empty() {
            param
        } else {
            upgraded = siamese_net::upgrade::upgrade_net(param.clone())?;
            &upgraded
        };
        let weights = |message: String| LayerError::Weights {
            path: origin.to_string(),
            message,
        };
        for source in &param.layer {
            let Some(l) = self.layers.iter().find(|l| l.name == source.name()) else {
                continue;
            };
            if source.blobs.len() != l.params.len() {
                return Err(weights(format!(
                    "layer \"{}\": {} blobs in the file, the net expects {}",
                    l.name,
                    source.blobs.len(),
                    l.params.len()
                )));
            }
            for (slot, (proto, &p)) in source.blobs.iter().zip(&l.params).enumerate() {
                let what = format!("layer \"{}\" blob {slot}", l.name);
                copy_proto_into(proto, &mut self.params[p].blob, &what).map_err(weights)?;
            }
        }
        Ok(())
    }

    /// Writes the weights as a binary `.caffemodel`, atomically (temporary file + rename).
    pub fn save_caffemodel(&self, path: &Path) -> Result<(), LayerError> {
        write_atomic(path, &self.try_to_proto()?.encode_to_vec())
    }

    /// Reads weights from a `.caffemodel` (V1 or V2) written by Caffe or by siamese.
    pub fn load_caffemodel(&mut self, path: &Path) -> Result<(), LayerError> {
        let param = read_net_parameter(path)?;
        self.load_proto_from(&param, &path.display().to_string())
    }
}

fn has_duplicates(ids: &[usize]) -> bool {
    ids.iter().enumerate().any(|(i, a)| ids[..i].contains(a))
}
