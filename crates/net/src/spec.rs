//! `NetSpec`: a net definition turned into a checked graph for one phase, as Caffe's Net::Init
//! does: include/exclude rules, implicit Split layers, in-place blobs, shared parameters, shapes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use siamese_proto::param_spec::DimCheckMode;
use siamese_proto::{
    FillerParameter, LayerParameter, NetParameter, NetState, NetStateRule, ParamSpec, Phase,
};

use crate::NetError;
use crate::data_probe::{DataProbe, probe_data_source};
use crate::layer::{DataConfig, LayerConfig, LayerKind};
use crate::paths::resolve_in;
use crate::shape::{Shape, count, fmt_shape};

/// A net ready to be instantiated: layers in execution order with blob and parameter ids.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    pub name: String,
    pub phase: Phase,
    pub layers: Vec<LayerSpec>,
    pub blobs: Vec<BlobSpec>,
    /// Distinct (learnable) parameter blobs; a parameter shared by name appears once.
    pub params: Vec<ParamInfo>,
    /// Blob ids not consumed by any later layer (the net's outputs), in blob id order.
    pub outputs: Vec<usize>,
    /// Things the user should know that do not stop the net from loading (unreadable sources).
    pub warnings: Vec<String>,
}

/// One layer, after phase filtering and split insertion.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    pub name: String,
    /// The typed settings (the type is [`LayerSpec::kind`]).
    pub config: LayerConfig,
    /// The upgraded definition (for inserted splits, the one Caffe would write).
    pub proto: LayerParameter,
    pub bottoms: Vec<usize>,
    /// Blob ids; in-place layers have tops == bottoms.
    pub tops: Vec<usize>,
    /// `ParamInfo` ids of this layer's parameter blobs in Caffe order (weight, bias).
    pub params: Vec<usize>,
    /// One per top: explicit `loss_weight`s, else 1 for top 0 of `*Loss` layers, else 0.
    pub loss_weights: Vec<f32>,
    /// The resolved `data_param.source` of Data layers.
    pub data_source: Option<PathBuf>,
    /// What the probe of `data_source` found (`None` when it could not be read).
    pub data_probe: Option<DataProbe>,
}

/// A blob (activation) of the net.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobSpec {
    pub name: String,
    /// `None` when it depends on a data source that could not be read; `[]` is a scalar.
    pub shape: Option<Vec<usize>>,
}

/// A distinct parameter blob.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// The shared name, if the layers name it.
    pub name: Option<String>,
    /// Caffe's display name: the shared name, else the slot index ("0", "1").
    pub display_name: String,
    /// conv weight [out, in/group, kh, kw], bias [out]; ip weight [out, in], bias [out].
    /// Empty when unknown (it depends on an unreadable data source; see `NetSpec::warnings`).
    pub shape: Vec<usize>,
    /// (layer index, slot) of the layer that owns it: the first one to use it.
    pub owner: (usize, usize),
    /// Every (layer index, slot) that uses it, the owner first.
    pub users: Vec<(usize, usize)>,
    /// The owner's `lr_mult`, or the first sharer's that gives one (as Caffe); default 1.
    pub lr_mult: f32,
    /// Likewise for `decay_mult`.
    pub decay_mult: f32,
    /// The owner's filler for this slot (Caffe's default, constant 0, when not given).
    pub filler: Option<FillerParameter>,
}

impl LayerSpec {
    /// The layer's type.
    pub fn kind(&self) -> LayerKind {
        self.config.kind()
    }
}

impl ParamInfo {
    /// Whether the shape is known.
    pub fn is_shaped(&self) -> bool {
        !self.shape.is_empty()
    }

    /// Number of values, `None` when the shape is unknown.
    pub fn count(&self) -> Option<usize> {
        self.is_shaped().then(|| count(&self.shape)).flatten()
    }
}

impl NetSpec {
    /// Builds the net of `param` for `phase`; data sources are resolved from the current folder,
    /// falling back to `base_dir` (the folder of the prototxt).
    pub fn build(
        param: &NetParameter,
        phase: Phase,
        base_dir: Option<&Path>,
    ) -> Result<NetSpec, NetError> {
        let mut state = param.state.clone().unwrap_or_default();
        state.set_phase(phase);
        let mut kept = Vec::new();
        for layer in &param.layer {
            if layer_included(layer, &state)? {
                kept.push(layer.clone());
            }
        }
        let layers = insert_splits(kept, phase)?;
        let mut b = Builder {
            spec: NetSpec {
                name: param.name().to_string(),
                phase,
                layers: vec![],
                blobs: vec![],
                params: vec![],
                outputs: vec![],
                warnings: vec![],
            },
            base_dir,
            producers: HashMap::new(),
            available: HashSet::new(),
            param_by_name: HashMap::new(),
            param_has: vec![],
        };
        for layer in layers {
            b.add(layer)?;
        }
        let mut outputs: Vec<usize> = b.available.into_iter().collect();
        outputs.sort_unstable();
        b.spec.outputs = outputs;
        Ok(b.spec)
    }

    /// Ok when every blob and parameter shape is known; else an error naming the first unknown
    /// blob and the warnings that explain it.
    pub fn require_shapes(&self) -> Result<(), NetError> {
        match self.blobs.iter().find(|b| b.shape.is_none()) {
            None => Ok(()),
            Some(b) => Err(NetError::Invalid(format!(
                "net '{}': the shape of blob '{}' is unknown ({})",
                self.name,
                b.name,
                self.warnings.join("; ")
            ))),
        }
    }

    /// Total number of distinct parameter values; `None` when some shape is unknown.
    pub fn param_count(&self) -> Option<usize> {
        self.params
            .iter()
            .try_fold(0usize, |acc, p| acc.checked_add(p.count()?))
    }

    /// The id of the blob called `name`.
    pub fn blob_id(&self, name: &str) -> Option<usize> {
        self.blobs.iter().position(|b| b.name == name)
    }
}

/// Caffe's StateMeetsRule.
fn state_meets_rule(state: &NetState, rule: &NetStateRule) -> bool {
    if rule.phase.is_some() && rule.phase() != state.phase() {
        return false;
    }
    if rule.min_level.is_some() && state.level() < rule.min_level() {
        return false;
    }
    if rule.max_level.is_some() && state.level() > rule.max_level() {
        return false;
    }
    rule.stage.iter().all(|s| state.stage.contains(s))
        && !rule.not_stage.iter().any(|s| state.stage.contains(s))
}

/// Caffe's FilterNet for one layer: no rules, or an exclude rule not met, or an include rule met.
fn layer_included(layer: &LayerParameter, state: &NetState) -> Result<bool, NetError> {
    if !layer.include.is_empty() && !layer.exclude.is_empty() {
        return Err(NetError::Invalid(format!(
            "layer '{}': give either include or exclude rules, not both",
            layer.name()
        )));
    }
    let mut included = layer.include.is_empty();
    if layer.exclude.iter().any(|r| state_meets_rule(state, r)) {
        included = false;
    }
    if layer.include.iter().any(|r| state_meets_rule(state, r)) {
        included = true;
    }
    Ok(included)
}

fn split_layer_name(layer: &str, blob: &str, top: usize) -> String {
    format!("{blob}_{layer}_{top}_split")
}

fn split_blob_name(layer: &str, blob: &str, top: usize, i: usize) -> String {
    format!("{blob}_{layer}_{top}_split_{i}")
}

/// Caffe's InsertSplits: a top read by several bottoms (or read and used as a loss) gets a
/// Split layer right after its producer, and each reader its own split top.
fn insert_splits(
    layers: Vec<LayerParameter>,
    phase: Phase,
) -> Result<Vec<LayerParameter>, NetError> {
    type TopIdx = (usize, usize);
    let mut last_top: HashMap<&str, TopIdx> = HashMap::new();
    let mut source: HashMap<TopIdx, TopIdx> = HashMap::new();
    let mut readers: HashMap<TopIdx, usize> = HashMap::new();
    let mut loss_weight: HashMap<TopIdx, f32> = HashMap::new();
    let mut produced: Vec<&str> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for (j, bottom) in layer.bottom.iter().enumerate() {
            let top = *last_top
                .get(bottom.as_str())
                .ok_or_else(|| NetError::MissingBottom {
                    layer: layer.name().to_string(),
                    bottom: bottom.clone(),
                    phase: phase.as_str_name().to_string(),
                    available: produced.iter().map(|s| s.to_string()).collect(),
                })?;
            source.insert((i, j), top);
            *readers.entry(top).or_default() += 1;
        }
        for (j, top) in layer.top.iter().enumerate() {
            last_top.insert(top, (i, j));
            if !produced.contains(&top.as_str()) {
                produced.push(top);
            }
        }
        for (j, &w) in layer.loss_weight.iter().enumerate().take(layer.top.len()) {
            loss_weight.insert((i, j), w);
            if w != 0.0 {
                *readers.entry((i, j)).or_default() += 1;
            }
        }
    }
    let mut next_split: HashMap<TopIdx, usize> = HashMap::new();
    let mut out = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let mut layer = layer.clone();
        for j in 0..layer.bottom.len() {
            let top = source[&(i, j)];
            if readers[&top] > 1 {
                let producer = layers[top.0].name();
                let k = next_split.entry(top).or_default();
                layer.bottom[j] = split_blob_name(producer, &layer.bottom[j], top.1, *k);
                *k += 1;
            }
        }
        let mut splits = Vec::new();
        for j in 0..layer.top.len() {
            let n = readers.get(&(i, j)).copied().unwrap_or(0);
            if n > 1 {
                let w = loss_weight.get(&(i, j)).copied().unwrap_or(0.0);
                let blob = layer.top[j].clone();
                splits.push(LayerParameter {
                    name: Some(split_layer_name(layer.name(), &blob, j)),
                    r#type: Some("Split".into()),
                    bottom: vec![blob.clone()],
                    top: (0..n)
                        .map(|k| split_blob_name(layer.name(), &blob, j, k))
                        .collect(),
                    loss_weight: if w != 0.0 {
                        (0..n).map(|k| if k == 0 { w } else { 0.0 }).collect()
                    } else {
                        vec![]
                    },
                    ..Default::default()
                });
                if w != 0.0 {
                    layer.loss_weight.clear();
                    *next_split.entry((i, j)).or_default() += 1;
                }
            }
        }
        out.push(layer);
        out.extend(splits);
    }
    Ok(out)
}

struct Builder<'a> {
    spec: NetSpec,
    base_dir: Option<&'a Path>,
    /// Blob name -> (blob id, name of the layer that first produced it).
    producers: HashMap<String, (usize, String)>,
    available: HashSet<usize>,
    param_by_name: HashMap<String, usize>,
    /// Per ParamInfo: whether lr_mult / decay_mult were given explicitly (Caffe's has_params_lr).
    param_has: Vec<(bool, bool)>,
}

impl Builder<'_> {
    /// Adds `layer`: its bottoms consumed, its settings parsed, its shape rule applied, its
    /// tops and parameters registered.
    fn add(&mut self, layer: LayerParameter) -> Result<(), NetError> {
        let li = self.spec.layers.len();
        if LayerKind::from_name(layer.r#type()).is_none() {
            return Err(NetError::UnknownLayerType {
                layer: layer.name().to_string(),
                kind: layer.r#type().to_string(),
                supported: LayerKind::names(),
            });
        }
        let bottoms = self.take_bottoms(&layer)?;
        let config = LayerConfig::parse(&layer)?;
        let (data_source, data_probe) = match &config {
            LayerConfig::Data(data) => self.data_source(layer.name(), data),
            _ => (None, None),
        };
        let data_shape = data_probe.map(|p| p.shape);
        let bottom_shapes: Vec<Option<Shape>> = bottoms
            .iter()
            .map(|&b| self.spec.blobs[b].shape.clone())
            .collect();
        let inferred = config.infer(layer.name(), &bottom_shapes, layer.top.len(), data_shape)?;
        let tops = self.add_tops(&layer, config.kind(), &bottoms, inferred.tops)?;
        let params = self.add_params(li, &layer, &config, inferred.params)?;
        let loss_weights = loss_weights(&layer, config.kind())?;
        self.spec.layers.push(LayerSpec {
            name: layer.name().to_string(),
            config,
            proto: layer,
            bottoms,
            tops,
            params,
            loss_weights,
            data_source,
            data_probe,
        });
        Ok(())
    }

    /// The blob ids of `layer`'s bottoms, which it consumes. After split insertion every bottom
    /// names a produced, not yet consumed blob.
    fn take_bottoms(&mut self, layer: &LayerParameter) -> Result<Vec<usize>, NetError> {
        let mut bottoms = Vec::with_capacity(layer.bottom.len());
        for name in &layer.bottom {
            let id = self
                .producers
                .get(name)
                .map(|p| p.0)
                .filter(|id| self.available.contains(id))
                .ok_or_else(|| NetError::MissingBottom {
                    layer: layer.name().to_string(),
                    bottom: name.clone(),
                    phase: self.spec.phase.as_str_name().to_string(),
                    available: self.available_names(),
                })?;
            self.available.remove(&id);
            bottoms.push(id);
        }
        Ok(bottoms)
    }

    /// Registers `layer`'s tops with the shapes its rule gave: an in-place top keeps its
    /// bottom's blob (and shape), any other top is a new blob.
    fn add_tops(
        &mut self,
        layer: &LayerParameter,
        kind: LayerKind,
        bottoms: &[usize],
        shapes: Vec<Option<Shape>>,
    ) -> Result<Vec<usize>, NetError> {
        let mut tops = Vec::with_capacity(layer.top.len());
        for (j, (name, top_shape)) in layer.top.iter().zip(shapes).enumerate() {
            let id = if layer.bottom.get(j) == Some(name) {
                let id = bottoms[j];
                if top_shape != self.spec.blobs[id].shape {
                    return Err(NetError::layer(
                        layer.name(),
                        kind.name(),
                        format!(
                            "in-place top '{name}' would change shape from {} to {}",
                            show(&self.spec.blobs[id].shape),
                            show(&top_shape)
                        ),
                    ));
                }
                id
            } else if let Some((_, first)) = self.producers.get(name) {
                return Err(NetError::DuplicateTop {
                    layer: layer.name().to_string(),
                    top: name.clone(),
                    first: first.clone(),
                });
            } else {
                self.spec.blobs.push(BlobSpec {
                    name: name.clone(),
                    shape: top_shape,
                });
                let id = self.spec.blobs.len() - 1;
                self.producers
                    .insert(name.clone(), (id, layer.name().to_string()));
                id
            };
            self.available.insert(id);
            tops.push(id);
        }
        Ok(tops)
    }

    fn available_names(&self) -> Vec<String> {
        let mut ids: Vec<_> = self.available.iter().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| self.spec.blobs[id].name.clone())
            .collect()
    }

    /// Resolves and probes a Data layer's source; unreadable sources become warnings.
    fn data_source(
        &mut self,
        layer: &str,
        data: &DataConfig,
    ) -> (Option<PathBuf>, Option<DataProbe>) {
        let Some(source) = data.source.as_deref() else {
            self.spec.warnings.push(format!(
                "layer '{layer}': no data_param.source; shapes that depend on it are unknown"
            ));
            return (None, None);
        };
        let path = resolve_in(source, self.base_dir);
        match probe_data_source(&path, data.backend()) {
            Ok(probe) => (Some(path), Some(probe)),
            Err(why) => {
                let resolved = if path == Path::new(source) {
                    String::new()
                } else {
                    format!(" ({})", path.display())
                };
                self.spec.warnings.push(format!(
                    "layer '{layer}': data source '{source}'{resolved}: {why}; shapes that depend on it are unknown"
                ));
                (Some(path), None)
            }
        }
    }

    /// Caffe's AppendParam for every parameter blob of layer `li`.
    fn add_params(
        &mut self,
        li: usize,
        layer: &LayerParameter,
        config: &LayerConfig,
        shapes: Vec<Option<Shape>>,
    ) -> Result<Vec<usize>, NetError> {
        let fillers = config.param_fillers();
        let n = fillers.len();
        if layer.param.len() > n {
            return Err(NetError::layer(
                layer.name(),
                config.kind().name(),
                format!(
                    "{} param specs given, but the layer has {n} parameter blob(s)",
                    layer.param.len()
                ),
            ));
        }
        let default_spec = ParamSpec::default();
        let mut ids = Vec::with_capacity(n);
        for (slot, (shape, filler)) in shapes.into_iter().zip(fillers).enumerate() {
            let spec = layer.param.get(slot).unwrap_or(&default_spec);
            let name = spec.name.clone().filter(|s| !s.is_empty());
            let shared = name
                .as_ref()
                .and_then(|n| self.param_by_name.get(n).copied());
            let id = match shared {
                None => {
                    self.spec.params.push(ParamInfo {
                        display_name: name.clone().unwrap_or_else(|| slot.to_string()),
                        name: name.clone(),
                        shape: shape.unwrap_or_default(),
                        owner: (li, slot),
                        users: vec![(li, slot)],
                        lr_mult: spec.lr_mult(),
                        decay_mult: spec.decay_mult(),
                        filler: Some(filler),
                    });
                    self.param_has
                        .push((spec.lr_mult.is_some(), spec.decay_mult.is_some()));
                    let id = self.spec.params.len() - 1;
                    if let Some(name) = name {
                        self.param_by_name.insert(name, id);
                    }
                    id
                }
                Some(id) => {
                    self.share(id, li, slot, layer, spec, shape)?;
                    id
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    fn share(
        &mut self,
        id: usize,
        li: usize,
        slot: usize,
        layer: &LayerParameter,
        spec: &ParamSpec,
        shape: Option<Shape>,
    ) -> Result<(), NetError> {
        // The owner may be this very layer (two of its slots share a name); it is not pushed yet.
        let owner_layer = match self.spec.layers.get(self.spec.params[id].owner.0) {
            Some(owner) => owner.name.clone(),
            None => layer.name().to_string(),
        };
        let p = &mut self.spec.params[id];
        let name = p.display_name.clone();
        if let Some(shape) = shape {
            if p.shape.is_empty() {
                p.shape = shape;
            } else {
                let permissive = spec.share_mode() == DimCheckMode::Permissive;
                let fits = if permissive {
                    count(&p.shape) == count(&shape)
                } else {
                    p.shape == shape
                };
                if !fits {
                    return Err(NetError::SharedParamMismatch {
                        name,
                        owner: owner_layer,
                        owner_shape: p.shape.clone(),
                        layer: layer.name().to_string(),
                        shape,
                    });
                }
            }
        }
        p.users.push((li, slot));
        let has = &mut self.param_has[id];
        for (given, value, has_it, what) in [
            (
                spec.lr_mult.is_some(),
                spec.lr_mult(),
                &mut has.0,
                "lr_mult",
            ),
            (
                spec.decay_mult.is_some(),
                spec.decay_mult(),
                &mut has.1,
                "decay_mult",
            ),
        ] {
            if !given {
                continue;
            }
            let current = if what == "lr_mult" {
                &mut p.lr_mult
            } else {
                &mut p.decay_mult
            };
            if *has_it && *current != value {
                return Err(NetError::Invalid(format!(
                    "shared parameter '{name}': layer '{}' gives {what} {value}, but {} was already given (layer '{owner_layer}')",
                    layer.name(),
                    current
                )));
            }
            *has_it = true;
            *current = value;
        }
        Ok(())
    }
}

fn show(s: &Option<Shape>) -> String {
    s.as_deref().map_or("unknown".into(), fmt_shape)
}

/// Caffe's SetLossWeights with LossLayer's default of 1 on top 0.
fn loss_weights(layer: &LayerParameter, kind: LayerKind) -> Result<Vec<f32>, NetError> {
    let nt = layer.top.len();
    if !layer.loss_weight.is_empty() {
        if layer.loss_weight.len() != nt {
            return Err(NetError::layer(
                layer.name(),
                kind.name(),
                format!(
                    "{} loss_weight(s) for {nt} top(s); give none or one per top",
                    layer.loss_weight.len()
                ),
            ));
        }
        return Ok(layer.loss_weight.clone());
    }
    let mut w = vec![0.0; nt];
    if kind.is_loss() && nt > 0 {
        w[0] = 1.0;
    }
    Ok(w)
}
