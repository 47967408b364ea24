//! `Net` on a CUDA GPU: the device copies of its blobs and parameters, each layer's
//! `CudaLayer` code run in order, the fused SGD step, and the host mirrors kept in step.

use std::sync::Arc;

use cudarc::driver::CudaSlice;
use siamese_net::NetSpec;

use super::{FusedSgd, Net, NetLayer, Placement};
use crate::cuda::{CudaSupport, GpuBlob, GpuDevice, Scratch};
use crate::{Blob, DeviceError, LayerError, LearnableParam};

/// What a net on a GPU keeps on the device. Blob slots are `None` only while lent to a layer.
pub(super) struct GpuState {
    ordinal: usize,
    gpu: Arc<GpuDevice>,
    blobs: Vec<Option<GpuBlob>>,
    params: Vec<Option<GpuBlob>>,
    /// The fused SGD step's history per learnable param (allocated on first use).
    history: Vec<Option<CudaSlice<f32>>>,
    /// The device history is newer than the net's host history.
    history_on_device: bool,
    scratch: Vec<Scratch>,
    /// Per blob: made by a layer that runs on the host (Data, Input), so its host copy is
    /// current (labels are checked there without a download).
    on_host: Vec<bool>,
    /// The host copies of the params were changed (or handed out mutably): upload before use.
    host_params_newer: bool,
    /// The first device error met where it could not be returned (backward, clear diffs),
    /// with the layer it came from.
    error: Option<(Option<String>, DeviceError)>,
}

fn internal(what: &str) -> DeviceError {
    DeviceError::Failed(format!("internal: {what}"))
}

/// Takes the blobs `ids` out of `store` (returned by `put_back`).
fn lend(store: &mut [Option<GpuBlob>], ids: &[usize]) -> Result<Vec<GpuBlob>, DeviceError> {
    let mut lent = Vec::with_capacity(ids.len());
    for &i in ids {
        match store[i].take() {
            Some(b) => lent.push(b),
            None => {
                put_back(store, ids, lent);
                return Err(internal("a device blob was lent twice"));
            }
        }
    }
    Ok(lent)
}

fn put_back(store: &mut [Option<GpuBlob>], ids: &[usize], lent: Vec<GpuBlob>) {
    for (&i, b) in ids.iter().zip(lent) {
        store[i] = Some(b);
    }
}

fn slot(store: &[Option<GpuBlob>], i: usize) -> Result<&GpuBlob, DeviceError> {
    store[i]
        .as_ref()
        .ok_or_else(|| internal("device blob missing"))
}

fn slot_mut(store: &mut [Option<GpuBlob>], i: usize) -> Result<&mut GpuBlob, DeviceError> {
    store[i]
        .as_mut()
        .ok_or_else(|| internal("device blob missing"))
}

/// Builds on the CPU (same seed, same weights), checks every layer has CUDA code, uploads.
pub(super) fn gpu_net(spec: &NetSpec, seed: u64, ordinal: usize) -> Result<Net, LayerError> {
    let mut net = Net::new(spec, seed)?;
    if let Some(l) = net
        .layers
        .iter()
        .find(|l| l.layer.cuda_support() == CudaSupport::Unsupported)
    {
        let kind = l.layer.kind();
        return Err(LayerError::in_layer(
            &l.name,
            DeviceError::Unsupported { kind: kind.into() },
        ));
    }
    let gpu = GpuDevice::get(ordinal)?;
    gpu.bind()?;
    let mut blobs = Vec::with_capacity(net.blobs.len());
    for b in &net.blobs {
        let mut g = GpuBlob::zeros(&gpu, &b.shape)?;
        g.upload(&gpu, b, false)?;
        blobs.push(Some(g));
    }
    let mut params = Vec::with_capacity(net.params.len());
    for p in &net.params {
        let mut g = GpuBlob::zeros(&gpu, &p.blob.shape)?;
        g.upload(&gpu, &p.blob, true)?;
        params.push(Some(g));
    }
    let mut on_host = vec![false; net.blobs.len()];
    for l in &net.layers {
        if l.layer.cuda_support() == CudaSupport::Host {
            l.tops.iter().for_each(|&t| on_host[t] = true);
        }
    }
    net.placement = Placement::Gpu(Box::new(GpuState {
        ordinal,
        on_host,
        history: (0..params.len()).map(|_| None).collect(),
        history_on_device: false,
        scratch: (0..net.layers.len()).map(|_| Scratch::default()).collect(),
        gpu,
        blobs,
        params,
        host_params_newer: false,
        error: None,
    }));
    Ok(net)
}

impl GpuState {
    pub(super) fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The kept error, if a call that could not return it met one.
    fn pending(&self) -> Result<(), LayerError> {
        match &self.error {
            None => Ok(()),
            Some((Some(layer), e)) => Err(LayerError::in_layer(layer, e.clone())),
            Some((None, e)) => Err(e.clone().into()),
        }
    }

    /// Before device work: no earlier error, the context current, host param edits uploaded.
    fn ready(&mut self, host: &[LearnableParam]) -> Result<(), LayerError> {
        self.pending()?;
        self.gpu.bind()?;
        if self.host_params_newer {
            for (i, p) in host.iter().enumerate() {
                slot_mut(&mut self.params, i)?.upload(&self.gpu, &p.blob, true)?;
            }
            self.host_params_newer = false;
        }
        Ok(())
    }

    /// Keeps the first error of a call that cannot return it.
    fn record(&mut self, result: Result<(), LayerError>) {
        let Err(e) = result else { return };
        if self.error.is_some() {
            return;
        }
        self.error = Some(match e {
            LayerError::LayerDevice { layer, error } => (Some(layer), error),
            LayerError::Device(error) => (None, error),
            other => (None, DeviceError::Failed(other.to_string())),
        });
    }

    pub(super) fn synchronize(&self) -> Result<(), LayerError> {
        self.pending()?;
        self.gpu.bind()?;
        Ok(self.gpu.synchronize()?)
    }

    /// The net's host history was replaced: the device copy is stale.
    pub(super) fn history_replaced(&mut self) {
        self.history_on_device = false;
    }

    /// The update history: `host`, or the device's when the fused step has moved on.
    pub(super) fn current_history(&self, host: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, LayerError> {
        if !self.history_on_device {
            return Ok(host.to_vec());
        }
        self.pending()?;
        self.gpu.bind()?;
        let mut out = Vec::with_capacity(host.len());
        for (h, d) in host.iter().zip(&self.history) {
            let device = d
                .as_ref()
                .ok_or_else(|| internal("device history missing"))?;
            out.push(crate::cuda::download_floats(&self.gpu, device, h.len())?);
        }
        Ok(out)
    }

    /// Brings blob `s` (data and diff) to its host copy.
    pub(super) fn download_blob(&self, s: usize, host: &mut Blob) -> Result<(), LayerError> {
        self.gpu.bind()?;
        Ok(slot(&self.blobs, s)?.download(&self.gpu, host, true)?)
    }

    /// Makes the host params current (data and diff) and marks them newer than the device's.
    pub(super) fn params_to_host(&mut self, host: &mut [LearnableParam]) -> Result<(), LayerError> {
        if self.host_params_newer {
            return Ok(());
        }
        self.pending()?;
        self.gpu.bind()?;
        for (i, p) in host.iter_mut().enumerate() {
            slot(&self.params, i)?.download(&self.gpu, &mut p.blob, true)?;
        }
        self.host_params_newer = true;
        Ok(())
    }

    /// The current values of param `i` (downloaded when the device has them).
    pub(super) fn param_data(&self, i: usize) -> Result<Option<Vec<f32>>, LayerError> {
        self.pending()?;
        if self.host_params_newer {
            return Ok(None);
        }
        self.gpu.bind()?;
        Ok(Some(slot(&self.params, i)?.data_to_vec(&self.gpu)?))
    }
}

impl Net {
    /// The device state of this GPU net.
    fn gpu_state(&mut self) -> Result<&mut GpuState, DeviceError> {
        match &mut self.placement {
            Placement::Gpu(state) => Ok(&mut **state),
            Placement::Host => Err(internal("a GPU call on a host net")),
        }
    }

    /// The device state, made ready (see `GpuState::ready`).
    fn ready_state(&mut self) -> Result<&mut GpuState, LayerError> {
        let Placement::Gpu(state) = &mut self.placement else {
            return Err(internal("a GPU call on a host net").into());
        };
        state.ready(&self.params)?;
        Ok(&mut **state)
    }

    pub(super) fn gpu_forward_layer(&mut self, index: usize) -> Result<f32, LayerError> {
        self.ready_state()?;
        let on_host = self.with_lent(index, |l, backend| {
            l.layer
                .reshape(&l.lent_bottoms, &mut l.lent_tops)
                .map_err(|e| e.in_layer_named(&l.name))?;
            let on_host = l.layer.cuda_support() == CudaSupport::Host;
            if on_host {
                l.layer
                    .forward(backend, &l.lent_bottoms, &l.lent_params, &mut l.lent_tops)?;
            }
            Ok::<_, LayerError>(on_host)
        })?;
        let Placement::Gpu(state) = &mut self.placement else {
            return Err(internal("a GPU call on a host net").into());
        };
        let l = &self.layers[index];
        let in_layer = |e| LayerError::in_layer(&l.name, e);
        let gpu = state.gpu.clone();
        for &t in &l.tops {
            let host = &self.blobs[t];
            let device = slot_mut(&mut state.blobs, t).map_err(in_layer)?;
            if on_host {
                device.upload(&gpu, host, false).map_err(in_layer)?;
            } else {
                device.reshape(&gpu, &host.shape).map_err(in_layer)?;
            }
        }
        if !on_host {
            check_labels(state, l, &self.blobs)?;
            run_forward(state, index, l, &self.blobs).map_err(in_layer)?;
        }
        loss_of(state, l, &mut self.blobs).map_err(in_layer)
    }

    pub(super) fn gpu_backward_layer(&mut self, index: usize) {
        let result = self.try_gpu_backward_layer(index);
        self.gpu_record(result);
    }

    fn try_gpu_backward_layer(&mut self, index: usize) -> Result<(), LayerError> {
        self.ready_state()?;
        let Placement::Gpu(state) = &mut self.placement else {
            return Err(internal("a GPU call on a host net").into());
        };
        let l = &self.layers[index];
        if l.layer.cuda_support() == CudaSupport::Host {
            return Ok(());
        }
        run_backward(state, index, l).map_err(|e| LayerError::in_layer(&l.name, e))
    }

    /// Downloads the outputs so `outputs()` is current.
    pub(super) fn gpu_download_outputs(&mut self) -> Result<(), LayerError> {
        let Placement::Gpu(state) = &self.placement else {
            return Err(internal("a GPU call on a host net").into());
        };
        for &s in &self.outputs {
            slot(&state.blobs, s)?.download(&state.gpu, &mut self.blobs[s], false)?;
        }
        Ok(())
    }

    pub(super) fn gpu_clear_param_diffs(&mut self) {
        let result = self.ready_state().and_then(|state| {
            for i in 0..state.params.len() {
                let p = slot_mut(&mut state.params, i)?;
                let n = p.count();
                crate::cuda::fill(&state.gpu, &mut p.diff, n, 0.0)?;
            }
            Ok(())
        });
        self.gpu_record(result);
    }

    /// The fused SGD step, the history uploaded first when the host's is newer.
    pub(super) fn gpu_fused_sgd(&mut self, step: FusedSgd) -> Result<(), LayerError> {
        let mults: Vec<(f32, f32)> = self
            .params
            .iter()
            .map(|p| (p.lr_mult, p.decay_mult))
            .collect();
        let Placement::Gpu(state) = &mut self.placement else {
            return Err(internal("a GPU call on a host net").into());
        };
        state.ready(&self.params)?;
        let gpu = state.gpu.clone();
        if !state.history_on_device {
            for (slot, h) in state.history.iter_mut().zip(&self.history) {
                let buf = match slot {
                    Some(b) if b.len() >= h.len().max(1) => b,
                    other => other.insert(crate::cuda::alloc_zeros(&gpu, h.len())?),
                };
                crate::cuda::upload_floats(&gpu, h, buf)?;
            }
            state.history_on_device = true;
        }
        for (i, (lr_mult, decay_mult)) in mults.into_iter().enumerate() {
            let p = slot_mut(&mut state.params, i)?;
            let n = p.count();
            let history = state.history[i]
                .as_mut()
                .ok_or_else(|| internal("device history missing"))?;
            let param_step = crate::cuda::SgdStep {
                local_rate: step.rate * lr_mult,
                momentum: step.momentum,
                local_decay: step.weight_decay * decay_mult,
                l1: step.l1,
            };
            param_step.run(&gpu, &mut p.data, &mut p.diff, history, n)?;
        }
        Ok(())
    }

    /// Before a host update: the device history (if newer) into the net's host history.
    pub(super) fn gpu_history_to_host(&mut self) -> Result<(), LayerError> {
        let Placement::Gpu(state) = &mut self.placement else {
            return Ok(());
        };
        if state.history_on_device {
            self.history = state.current_history(&self.history)?;
            state.history_on_device = false;
        }
        Ok(())
    }

    /// Records an error met by a call that cannot return it.
    pub(super) fn gpu_record(&mut self, result: Result<(), LayerError>) {
        if let Ok(state) = self.gpu_state() {
            state.record(result);
        }
    }
}

/// Runs layer `l`'s CUDA forward over its lent device blobs (shapes checked against the
/// host's, which the layer's reshape just set).
fn run_forward(
    state: &mut GpuState,
    index: usize,
    l: &NetLayer,
    host: &[Blob],
) -> Result<(), DeviceError> {
    for &b in &l.bottoms {
        let shape = &slot(&state.blobs, b)?.shape;
        if *shape != host[b].shape {
            return Err(DeviceError::Failed(format!(
                "bottom shape on the GPU {shape:?}, expected {:?} (run the layers before it \
                 first)",
                host[b].shape
            )));
        }
    }
    let bottoms = lend(&mut state.blobs, &l.bottoms)?;
    let mut tops = lend(&mut state.blobs, &l.tops);
    let mut params = lend(&mut state.params, &l.params);
    let result = match (&mut tops, &mut params) {
        (Ok(t), Ok(p)) => {
            l.layer
                .cuda_forward(&state.gpu, &mut state.scratch[index], &bottoms, p, t)
        }
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    put_back(&mut state.blobs, &l.bottoms, bottoms);
    if let Ok(t) = tops {
        put_back(&mut state.blobs, &l.tops, t);
    }
    if let Ok(p) = params {
        put_back(&mut state.params, &l.params, p);
    }
    result
}

/// Sets the loss tops' diffs to their weights, then runs layer `l`'s CUDA backward over its
/// lent device blobs.
fn run_backward(state: &mut GpuState, index: usize, l: &NetLayer) -> Result<(), DeviceError> {
    let gpu = state.gpu.clone();
    for (&t, &w) in l.tops.iter().zip(&l.loss_weights) {
        if w != 0.0 {
            let top = slot_mut(&mut state.blobs, t)?;
            let n = top.count();
            crate::cuda::fill(&gpu, &mut top.diff, n, w)?;
        }
    }
    let tops = lend(&mut state.blobs, &l.tops)?;
    let mut bottoms = lend(&mut state.blobs, &l.bottoms);
    let mut params = lend(&mut state.params, &l.params);
    let result = match (&mut bottoms, &mut params) {
        (Ok(b), Ok(p)) => l.layer.cuda_backward(
            &gpu,
            &mut state.scratch[index],
            &tops,
            p,
            &l.propagate_down,
            b,
        ),
        (Err(e), _) | (_, Err(e)) => Err(e.clone()),
    };
    put_back(&mut state.blobs, &l.tops, tops);
    if let Ok(b) = bottoms {
        put_back(&mut state.blobs, &l.bottoms, b);
    }
    if let Ok(p) = params {
        put_back(&mut state.params, &l.params, p);
    }
    result
}

/// The CPU layers' label check for the layers that ask for it (`CudaLayer::cuda_labels`:
/// their kernels give NaN for a label outside [0, classes) instead of failing): same error,
/// same first bad label. Labels made on the host are read there; others are downloaded (a
/// sync, only in nets that make labels on the GPU).
fn check_labels(state: &GpuState, l: &NetLayer, host: &[Blob]) -> Result<(), LayerError> {
    let Some((classes, ignore)) = l.layer.cuda_labels() else {
        return Ok(());
    };
    let in_layer = |e| LayerError::in_layer(&l.name, e);
    let &b = l
        .bottoms
        .get(1)
        .ok_or_else(|| in_layer(internal("a loss layer without labels")))?;
    let downloaded;
    let labels = if state.on_host[b] {
        &host[b].data[..host[b].count()]
    } else {
        let blob = slot(&state.blobs, b).map_err(in_layer)?;
        downloaded = blob.data_to_vec(&state.gpu).map_err(in_layer)?;
        &downloaded[..]
    };
    match first_bad_label(labels, classes, ignore) {
        None => Ok(()),
        Some(label) => Err(LayerError::shape(
            &l.name,
            format!("label {label} outside the {classes} classes"),
        )),
    }
}

/// The first label (as the CPU layers read it, `as i32`) that is neither `ignore` nor a class.
fn first_bad_label(labels: &[f32], classes: usize, ignore: Option<i32>) -> Option<i32> {
    labels
        .iter()
        .map(|&v| v as i32)
        .find(|&label| Some(label) != ignore && (label < 0 || label as usize >= classes))
}

/// The layer's weighted loss: its loss tops downloaded (the only sync of a forward pass).
fn loss_of(state: &GpuState, l: &NetLayer, host: &mut [Blob]) -> Result<f32, DeviceError> {
    let mut loss = 0.0;
    for (&t, &w) in l.tops.iter().zip(&l.loss_weights) {
        if w != 0.0 {
            slot(&state.blobs, t)?.download(&state.gpu, &mut host[t], false)?;
            loss += w * host[t].data.iter().sum::<f32>();
        }
    }
    Ok(loss)
}

#[cfg(test)]
mod tests {
    use super::first_bad_label;

    #[test]
    fn labels_outside_the_classes_are_found_as_the_cpu_layers_find_them() {
        assert_eq!(first_bad_label(&[0.0, 2.0, 1.0], 3, None), None);
        assert_eq!(first_bad_label(&[0.0, 3.0, -1.0], 3, None), Some(3));
        assert_eq!(first_bad_label(&[-1.0, 3.0], 3, Some(-1)), Some(3));
        assert_eq!(first_bad_label(&[-1.0, 2.9], 3, Some(-1)), None);
        assert_eq!(first_bad_label(&[255.0], 10, Some(255)), None);
    }
}
