//! `Net` on a CUDA GPU: the device copies of its blobs and parameters, each layer's GPU op
//! run in order, the SGD step on the device, and the host mirror kept in step.

use std::sync::Arc;

use cudarc::driver::CudaSlice;
use siamese_net::NetSpec;

use super::{Net, NetLayer};
use crate::cuda::{GpuBlob, GpuDevice, GpuOp, Scratch};
use crate::{Blob, Device, LayerError, LearnableParam};

/// What a net on a GPU keeps on the device. Blob slots are `None` only while lent to a layer.
pub(super) struct GpuState {
    gpu: Arc<GpuDevice>,
    blobs: Vec<Option<GpuBlob>>,
    params: Vec<Option<GpuBlob>>,
    /// SGD momentum history per learnable param, allocated (zeros) on first use.
    history: Vec<Option<CudaSlice<f32>>>,
    scratch: Vec<Scratch>,
    /// Per blob: made by a layer that runs on the host (Data, Input), so its host copy is
    /// current (labels are checked there without a download).
    on_host: Vec<bool>,
    /// The host copies of the params were changed (or handed out mutably): upload before use.
    host_params_newer: bool,
    /// The first device error met where it could not be returned (backward, clear diffs).
    error: Option<String>,
}

fn no_gpu_op(l: &NetLayer) -> LayerError {
    LayerError::device(format!(
        "layer \"{}\" ({}) has no CUDA implementation; run it with --device cpu",
        l.name, l.kind
    ))
}

fn internal(what: &str) -> LayerError {
    LayerError::device(format!("internal: {what}"))
}

/// Takes the blobs `ids` out of `store` (returned by `put_back`).
fn lend(store: &mut [Option<GpuBlob>], ids: &[usize]) -> Result<Vec<GpuBlob>, LayerError> {
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

fn slot(store: &[Option<GpuBlob>], i: usize) -> Result<&GpuBlob, LayerError> {
    store[i]
        .as_ref()
        .ok_or_else(|| internal("device blob missing"))
}

fn slot_mut(store: &mut [Option<GpuBlob>], i: usize) -> Result<&mut GpuBlob, LayerError> {
    store[i]
        .as_mut()
        .ok_or_else(|| internal("device blob missing"))
}

/// Builds on the CPU (same seed, same weights), checks every layer has a GPU op, uploads.
pub(super) fn gpu_net(spec: &NetSpec, seed: u64, ordinal: usize) -> Result<Net, LayerError> {
    let mut net = Net::new(spec, seed)?;
    if let Some(l) = net.layers.iter().find(|l| l.layer.gpu_op().is_none()) {
        return Err(no_gpu_op(l));
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
        if l.layer.gpu_op() == Some(GpuOp::Host) {
            l.tops.iter().for_each(|&t| on_host[t] = true);
        }
    }
    net.gpu = Some(Box::new(GpuState {
        on_host,
        history: (0..params.len()).map(|_| None).collect(),
        scratch: (0..net.layers.len()).map(|_| Scratch::default()).collect(),
        gpu,
        blobs,
        params,
        host_params_newer: false,
        error: None,
    }));
    net.device = Device::Gpu(ordinal);
    Ok(net)
}

impl GpuState {
    /// Before device work: no earlier error, the context current, host param edits uploaded.
    fn ready(&mut self, host: &[LearnableParam]) -> Result<(), LayerError> {
        if let Some(e) = &self.error {
            return Err(LayerError::device(e.clone()));
        }
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
        if let Err(e) = result
            && self.error.is_none()
        {
            self.error = Some(e.to_string().trim_start_matches("GPU: ").to_string());
        }
    }
}

/// The device state of a GPU net.
fn state(gpu: &Option<Box<GpuState>>) -> Result<&GpuState, LayerError> {
    gpu.as_deref()
        .ok_or_else(|| internal("GPU net without device state"))
}

/// The device state, made ready (see `GpuState::ready`).
fn ready_state<'a>(
    gpu: &'a mut Option<Box<GpuState>>,
    params: &[LearnableParam],
) -> Result<&'a mut GpuState, LayerError> {
    let state = gpu
        .as_deref_mut()
        .ok_or_else(|| internal("GPU net without device state"))?;
    state.ready(params)?;
    Ok(state)
}

impl Net {
    pub(super) fn gpu_forward_layer(&mut self, index: usize) -> Result<f32, LayerError> {
        ready_state(&mut self.gpu, &self.params)?;
        let on_host = self.with_lent(index, |l, backend| {
            l.layer.reshape(&l.lent_bottoms, &mut l.lent_tops)?;
            let on_host = matches!(l.layer.gpu_op(), Some(GpuOp::Host));
            if on_host {
                l.layer
                    .forward(backend, &l.lent_bottoms, &l.lent_params, &mut l.lent_tops)?;
            }
            Ok::<_, LayerError>(on_host)
        })?;
        let state = self
            .gpu
            .as_deref_mut()
            .ok_or_else(|| internal("no device state"))?;
        let l = &self.layers[index];
        let gpu = state.gpu.clone();
        for &t in &l.tops {
            let host = &self.blobs[t];
            let device = slot_mut(&mut state.blobs, t)?;
            if on_host {
                device.upload(&gpu, host, false)?;
            } else {
                device.reshape(&gpu, &host.shape)?;
            }
        }
        if !on_host {
            check_labels(state, l, &self.blobs)?;
            run_forward(state, index, l, &self.blobs)?;
        }
        loss_of(state, l, &mut self.blobs)
    }

    pub(super) fn gpu_backward_layer(&mut self, index: usize) {
        let result = self.try_gpu_backward_layer(index);
        if let Some(state) = self.gpu.as_deref_mut() {
            state.record(result);
        }
    }

    fn try_gpu_backward_layer(&mut self, index: usize) -> Result<(), LayerError> {
        let state = ready_state(&mut self.gpu, &self.params)?;
        let l = &self.layers[index];
        let op = l.layer.gpu_op().ok_or_else(|| no_gpu_op(l))?;
        if op == GpuOp::Host {
            return Ok(());
        }
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
            (Ok(b), Ok(p)) => op.backward(
                &gpu,
                &mut state.scratch[index],
                &tops,
                p,
                &l.propagate_down,
                b,
            ),
            (Err(e), _) | (_, Err(e)) => Err(internal(&e.to_string())),
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

    /// Downloads the outputs so `outputs()` is current.
    pub(super) fn gpu_download_outputs(&mut self) -> Result<(), LayerError> {
        let state = state(&self.gpu)?;
        for &s in &self.outputs {
            slot(&state.blobs, s)?.download(&state.gpu, &mut self.blobs[s], false)?;
        }
        Ok(())
    }

    pub(super) fn gpu_clear_param_diffs(&mut self) {
        let result = ready_state(&mut self.gpu, &self.params).and_then(|state| {
            for i in 0..state.params.len() {
                let p = slot_mut(&mut state.params, i)?;
                let n = p.count();
                crate::cuda::fill(&state.gpu, &mut p.diff, n, 0.0)?;
            }
            Ok(())
        });
        if let Some(state) = self.gpu.as_deref_mut() {
            state.record(result);
        }
    }

    pub(super) fn gpu_synchronize(&self) -> Result<(), LayerError> {
        let state = state(&self.gpu)?;
        if let Some(e) = &state.error {
            return Err(LayerError::device(e.clone()));
        }
        state.gpu.bind()?;
        state.gpu.synchronize()
    }

    pub(super) fn gpu_sgd_update(
        &mut self,
        rate: f32,
        momentum: f32,
        weight_decay: f32,
        l1: bool,
    ) -> Result<(), LayerError> {
        let mults: Vec<(f32, f32)> = self
            .params
            .iter()
            .map(|p| (p.lr_mult, p.decay_mult))
            .collect();
        let state = ready_state(&mut self.gpu, &self.params)?;
        let gpu = state.gpu.clone();
        for (i, (lr_mult, decay_mult)) in mults.into_iter().enumerate() {
            let p = slot_mut(&mut state.params, i)?;
            let n = p.count();
            let history = match &mut state.history[i] {
                Some(h) => h,
                empty => empty.insert(crate::cuda::alloc_zeros(&gpu, n)?),
            };
            let step = crate::cuda::SgdStep {
                local_rate: rate * lr_mult,
                momentum,
                local_decay: weight_decay * decay_mult,
                l1,
            };
            step.run(&gpu, &mut p.data, &mut p.diff, history, n)?;
        }
        Ok(())
    }

    pub(super) fn gpu_history(&self) -> Result<Vec<Vec<f32>>, LayerError> {
        let state = state(&self.gpu)?;
        state.gpu.bind()?;
        let mut out = Vec::with_capacity(self.params.len());
        for (p, h) in self.params.iter().zip(&state.history) {
            let n = p.blob.count();
            out.push(match h {
                Some(h) => crate::cuda::download_floats(&state.gpu, h, n)?,
                None => vec![0.0; n],
            });
        }
        Ok(out)
    }

    pub(super) fn gpu_set_history(&mut self, history: &[Vec<f32>]) -> Result<(), LayerError> {
        let state = ready_state(&mut self.gpu, &self.params)?;
        let gpu = state.gpu.clone();
        for (slot, h) in state.history.iter_mut().zip(history) {
            let buf = match slot {
                Some(b) if b.len() >= h.len() => b,
                other => other.insert(crate::cuda::alloc_zeros(&gpu, h.len())?),
            };
            crate::cuda::upload_floats(&gpu, h, buf)?;
        }
        Ok(())
    }

    /// Brings blob `s` (data and diff) to the host copy.
    pub(super) fn gpu_download_blob(&mut self, s: usize) -> Result<(), LayerError> {
        let state = state(&self.gpu)?;
        state.gpu.bind()?;
        slot(&state.blobs, s)?.download(&state.gpu, &mut self.blobs[s], true)
    }

    /// Before the host copies of the params are changed: makes them current (data and
    /// diff) and marks them as newer than the device's.
    pub(super) fn gpu_params_to_host(&mut self) -> Result<(), LayerError> {
        let Some(state) = self.gpu.as_deref_mut() else {
            return Ok(());
        };
        if state.host_params_newer {
            return Ok(());
        }
        state.gpu.bind()?;
        for (i, p) in self.params.iter_mut().enumerate() {
            slot(&state.params, i)?.download(&state.gpu, &mut p.blob, true)?;
        }
        state.host_params_newer = true;
        Ok(())
    }

    /// The current values of param `i` (downloaded when the device has them).
    pub(super) fn gpu_param_data(&self, i: usize) -> Result<Option<Vec<f32>>, LayerError> {
        let Some(state) = self.gpu.as_deref() else {
            return Ok(None);
        };
        if state.host_params_newer {
            return Ok(None);
        }
        state.gpu.bind()?;
        slot(&state.params, i)?.data_to_vec(&state.gpu).map(Some)
    }

    /// Records an error met by a call that cannot return it.
    pub(super) fn gpu_record(&mut self, result: Result<(), LayerError>) {
        if let Some(state) = self.gpu.as_deref_mut() {
            state.record(result);
        }
    }
}

/// Runs layer `l`'s GPU op forward over its lent device blobs (shapes checked against the
/// host's, which the layer's reshape just set).
fn run_forward(
    state: &mut GpuState,
    index: usize,
    l: &NetLayer,
    host: &[Blob],
) -> Result<(), LayerError> {
    for &b in &l.bottoms {
        if slot(&state.blobs, b)?.shape != host[b].shape {
            return Err(LayerError::device(format!(
                "layer \"{}\": bottom shape on the GPU {:?}, expected {:?} (run the layers \
                 before it first)",
                l.name,
                slot(&state.blobs, b)?.shape,
                host[b].shape
            )));
        }
    }
    let op = l.layer.gpu_op().ok_or_else(|| no_gpu_op(l))?;
    let bottoms = lend(&mut state.blobs, &l.bottoms)?;
    let mut tops = lend(&mut state.blobs, &l.tops);
    let mut params = lend(&mut state.params, &l.params);
    let result = match (&mut tops, &mut params) {
        (Ok(t), Ok(p)) => op.forward(&state.gpu, &mut state.scratch[index], &bottoms, p, t),
        (Err(e), _) | (_, Err(e)) => Err(internal(&e.to_string())),
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

/// The CPU layers' label check for SoftmaxWithLoss and Accuracy (their kernels give NaN for a
/// label outside [0, classes) instead of failing): same error, same first bad label. Labels made
/// on the host are read there; others are downloaded (a sync, only in nets that make labels on
/// the GPU).
fn check_labels(state: &GpuState, l: &NetLayer, host: &[Blob]) -> Result<(), LayerError> {
    let (classes, ignore) = match l.layer.gpu_op() {
        Some(GpuOp::SoftmaxWithLoss {
            dims: (_, classes, _),
            ignore_label,
            ..
        })
        | Some(GpuOp::Accuracy {
            dims: (_, classes, _),
            ignore_label,
            ..
        }) => (classes, ignore_label),
        _ => return Ok(()),
    };
    let &b = l
        .bottoms
        .get(1)
        .ok_or_else(|| internal("a loss layer without labels"))?;
    let downloaded;
    let labels = if state.on_host[b] {
        &host[b].data[..host[b].count()]
    } else {
        downloaded = slot(&state.blobs, b)?.data_to_vec(&state.gpu)?;
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
fn loss_of(state: &GpuState, l: &NetLayer, host: &mut [Blob]) -> Result<f32, LayerError> {
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
