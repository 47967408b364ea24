//! Shape rules: for each supported layer type, the top shapes and parameter blob shapes that
//! follow from its bottom shapes and settings, with Caffe's checks (LayerSetUp + Reshape).

use siamese_proto::LayerParameter;
use siamese_proto::pooling_parameter::PoolMethod;

use crate::NetError;

/// A blob shape; `[]` is a scalar.
pub type Shape = Vec<usize>;

/// The layer types siamese has shape rules for (Caffe type names).
pub const SUPPORTED_TYPES: &[&str] = &[
    "Accuracy",
    "ContrastiveLoss",
    "Convolution",
    "Data",
    "Dropout",
    "EuclideanLoss",
    "InnerProduct",
    "Input",
    "Pooling",
    "ReLU",
    "Slice",
    "Softmax",
    "SoftmaxWithLoss",
    "Split",
];

/// What a layer's rule derives: one shape per top, one per parameter blob (`None`: unknown
/// because an input shape is unknown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inferred {
    pub tops: Vec<Option<Shape>>,
    pub params: Vec<Option<Shape>>,
}

/// Formats a shape as `[64, 1, 28, 28]`.
pub fn fmt_shape(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Number of elements, `None` on overflow.
pub fn count(s: &[usize]) -> Option<usize> {
    s.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

struct Rule<'a> {
    layer: &'a LayerParameter,
    kind: &'a str,
}

impl Rule<'_> {
    fn err(&self, message: impl Into<String>) -> NetError {
        NetError::layer(self.layer.name(), self.kind, message)
    }

    fn counts(
        &self,
        bottoms: usize,
        tops: std::ops::RangeInclusive<usize>,
    ) -> Result<(), NetError> {
        let (nb, nt) = (self.layer.bottom.len(), self.layer.top.len());
        if nb != bottoms {
            return Err(self.err(format!("needs {bottoms} bottom(s), has {nb}")));
        }
        if !tops.contains(&nt) {
            let want = if tops.start() == tops.end() {
                tops.start().to_string()
            } else if *tops.end() == usize::MAX {
                format!("at least {}", tops.start())
            } else {
                format!("{} to {}", tops.start(), tops.end())
            };
            return Err(self.err(format!("needs {want} top(s), has {nt}")));
        }
        Ok(())
    }

    /// Caffe's CanonicalAxisIndex.
    fn axis(&self, axis: i32, shape: &[usize]) -> Result<usize, NetError> {
        let n = shape.len() as i64;
        let a = i64::from(axis);
        if a < -n || a >= n {
            return Err(self.err(format!(
                "axis {axis} is out of range for a {n}-D input {}",
                fmt_shape(shape)
            )));
        }
        Ok(if a < 0 { (a + n) as usize } else { a as usize })
    }

    fn checked(&self, s: Shape) -> Result<Shape, NetError> {
        count(&s)
            .map(|_| s.clone())
            .ok_or_else(|| self.err(format!("shape {} is too large", fmt_shape(&s))))
    }
}

/// Number of parameter blobs a layer has (Caffe order: weight, then bias).
pub(crate) fn param_blob_count(layer: &LayerParameter) -> usize {
    match layer.r#type() {
        "Convolution" => {
            1 + usize::from(
                layer
                    .convolution_param
                    .clone()
                    .unwrap_or_default()
                    .bias_term(),
            )
        }
        "InnerProduct" => {
            1 + usize::from(
                layer
                    .inner_product_param
                    .clone()
                    .unwrap_or_default()
                    .bias_term(),
            )
        }
        _ => 0,
    }
}

/// Applies the rule of `layer` (whose type is in [`SUPPORTED_TYPES`]). `data_shape` is the
/// `[channels, height, width]` of a Data layer's records when known.
pub(crate) fn infer(
    layer: &LayerParameter,
    bottoms: &[Option<Shape>],
    data_shape: Option<[usize; 3]>,
) -> Result<Inferred, NetError> {
    let kind = layer.r#type();
    let r = Rule { layer, kind };
    let nt = layer.top.len();
    let same = |b: &Option<Shape>| Inferred {
        tops: vec![b.clone(); nt],
        params: vec![],
    };
    let scalar_tops = |extra: Option<Shape>| {
        let mut tops = vec![Some(vec![])];
        if nt > 1 {
            tops.push(extra);
        }
        Inferred {
            tops,
            params: vec![],
        }
    };
    match kind {
        "Data" => data(&r, data_shape),
        "Input" => input(&r),
        "Slice" => {
            r.counts(1, 1..=usize::MAX)?;
            slice(&r, &bottoms[0])
        }
        "Split" => {
            r.counts(1, 1..=usize::MAX)?;
            Ok(same(&bottoms[0]))
        }
        "ReLU" | "Dropout" => {
            r.counts(1, 1..=1)?;
            if kind == "Dropout" {
                let ratio = layer.dropout_param.unwrap_or_default().dropout_ratio();
                if !(0.0..1.0).contains(&ratio) {
                    return Err(r.err(format!("dropout_ratio {ratio} must be in [0, 1)")));
                }
            }
            Ok(same(&bottoms[0]))
        }
        "Softmax" => {
            r.counts(1, 1..=1)?;
            if let Some(b) = &bottoms[0] {
                r.axis(layer.softmax_param.unwrap_or_default().axis(), b)?;
            }
            Ok(same(&bottoms[0]))
        }
        "Convolution" => convolution(&r, bottoms),
        "Pooling" => pooling(&r, bottoms),
        "InnerProduct" => inner_product(&r, bottoms),
        "SoftmaxWithLoss" => {
            r.counts(2, 1..=2)?;
            let axis = layer.softmax_param.unwrap_or_default().axis();
            check_labels(&r, bottoms, axis)?;
            Ok(scalar_tops(bottoms[0].clone()))
        }
        "Accuracy" => {
            r.counts(2, 1..=2)?;
            let p = layer.accuracy_param.unwrap_or_default();
            let classes = check_labels(&r, bottoms, p.axis())?;
            if let Some(classes) = classes
                && p.top_k() as usize > classes
            {
                return Err(r.err(format!(
                    "top_k {} is more than the {classes} classes of {}",
                    p.top_k(),
                    fmt_shape(bottoms[0].as_deref().unwrap_or_default())
                )));
            }
            Ok(scalar_tops(classes.map(|c| vec![c])))
        }
        "ContrastiveLoss" => {
            r.counts(3, 1..=1)?;
            contrastive(&r, bottoms)?;
            Ok(scalar_tops(None))
        }
        "EuclideanLoss" => {
            r.counts(2, 1..=1)?;
            if let (Some(a), Some(b)) = (&bottoms[0], &bottoms[1])
                && (a.first() != b.first() || count(a) != count(b))
            {
                return Err(r.err(format!(
                    "inputs must have the same size: {} vs {}",
                    fmt_shape(a),
                    fmt_shape(b)
                )));
            }
            Ok(scalar_tops(None))
        }
        other => Err(NetError::UnknownLayerType {
            layer: layer.name().to_string(),
            kind: other.to_string(),
            supported: SUPPORTED_TYPES.to_vec(),
        }),
    }
}

fn data(r: &Rule, data_shape: Option<[usize; 3]>) -> Result<Inferred, NetError> {
    r.counts(0, 1..=2)?;
    let dp = r.layer.data_param.clone().unwrap_or_default();
    let batch = dp.batch_size() as usize;
    if batch == 0 {
        return Err(r.err("data_param.batch_size must be positive"));
    }
    let crop = r
        .layer
        .transform_param
        .clone()
        .unwrap_or_default()
        .crop_size() as usize;
    let top = match data_shape {
        Some([c, h, w]) if crop > 0 => {
            if crop > h || crop > w {
                return Err(r.err(format!(
                    "crop_size {crop} is larger than the {h}x{w} records"
                )));
            }
            Some(r.checked(vec![batch, c, crop, crop])?)
        }
        Some([c, h, w]) => Some(r.checked(vec![batch, c, h, w])?),
        None => None,
    };
    let mut tops = vec![top];
    if r.layer.top.len() > 1 {
        tops.push(Some(vec![batch]));
    }
    Ok(Inferred {
        tops,
        params: vec![],
    })
}

fn input(r: &Rule) -> Result<Inferred, NetError> {
    r.counts(0, 1..=usize::MAX)?;
    let shapes = r.layer.input_param.clone().unwrap_or_default().shape;
    let nt = r.layer.top.len();
    if !(shapes.len() == 1 || shapes.len() == nt) {
        return Err(r.err(format!(
            "input_param needs 1 shape or one per top ({nt}), has {}",
            shapes.len()
        )));
    }
    let mut tops = Vec::with_capacity(nt);
    for i in 0..nt {
        let dims = &shapes[if shapes.len() == 1 { 0 } else { i }].dim;
        let shape = dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| r.err(format!("negative dimension {d} in input shape")))
            })
            .collect::<Result<Shape, _>>()?;
        tops.push(Some(r.checked(shape)?));
    }
    Ok(Inferred {
        tops,
        params: vec![],
    })
}

fn slice(r: &Rule, bottom: &Option<Shape>) -> Result<Inferred, NetError> {
    let nt = r.layer.top.len();
    let Some(b) = bottom else {
        return Ok(Inferred {
            tops: vec![None; nt],
            params: vec![],
        });
    };
    let p = r.layer.slice_param.clone().unwrap_or_default();
    let axis = if p.slice_dim.is_some() {
        let d = p.slice_dim() as usize;
        if d >= b.len() {
            return Err(r.err(format!(
                "slice_dim {d} is out of range for {}",
                fmt_shape(b)
            )));
        }
        d
    } else {
        r.axis(p.axis(), b)?
    };
    let dim = b[axis];
    let sizes: Vec<usize> = if p.slice_point.is_empty() {
        if dim % nt != 0 {
            return Err(r.err(format!(
                "cannot split axis {axis} of {} ({dim}) evenly into {nt} tops",
                fmt_shape(b)
            )));
        }
        vec![dim / nt; nt]
    } else {
        if p.slice_point.len() != nt - 1 {
            return Err(r.err(format!(
                "{} slice_point(s) for {nt} tops; needs {}",
                p.slice_point.len(),
                nt - 1
            )));
        }
        let mut points = vec![0usize];
        points.extend(p.slice_point.iter().map(|&s| s as usize));
        points.push(dim);
        if points.windows(2).any(|w| w[0] >= w[1]) {
            return Err(r.err(format!(
                "slice points {:?} must increase strictly within axis {axis} of {}",
                p.slice_point,
                fmt_shape(b)
            )));
        }
        points.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let tops = sizes
        .into_iter()
        .map(|s| {
            let mut t = b.clone();
            t[axis] = s;
            Some(t)
        })
        .collect();
    Ok(Inferred {
        tops,
        params: vec![],
    })
}

/// `Some(dims)` from the repeated field, the `_h`/`_w` pair, or a default.
fn spatial(
    r: &Rule,
    what: &str,
    repeated: &[u32],
    hw: (Option<u32>, Option<u32>),
    default: Option<usize>,
    n: usize,
) -> Result<Vec<usize>, NetError> {
    if hw.0.is_some() || hw.1.is_some() {
        if n != 2 {
            return Err(r.err(format!(
                "{what}_h/{what}_w need 2 spatial axes, the input has {n}"
            )));
        }
        if !repeated.is_empty() {
            return Err(r.err(format!("give either {what} or {what}_h/{what}_w, not both")));
        }
        // As Caffe: the other one of the pair takes the field's default (0).
        return Ok(vec![hw.0.unwrap_or(0) as usize, hw.1.unwrap_or(0) as usize]);
    }
    match (repeated.len(), default) {
        (0, Some(d)) => Ok(vec![d; n]),
        (0, None) => Err(r.err(format!("{what} (or {what}_h and {what}_w) is required"))),
        (1, _) => Ok(vec![repeated[0] as usize; n]),
        (k, _) if k == n => Ok(repeated.iter().map(|&v| v as usize).collect()),
        (k, _) => Err(r.err(format!("{k} {what} values for {n} spatial axes"))),
    }
}

/// Output length of a convolution window sweep; `None` when the window does not fit.
fn conv_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Option<usize> {
    let extent = (dilation as u128) * (kernel as u128 - 1) + 1;
    let padded = input as u128 + 2 * pad as u128;
    (padded >= extent).then(|| ((padded - extent) / stride as u128 + 1) as usize)
}

fn convolution(r: &Rule, bottoms: &[Option<Shape>]) -> Result<Inferred, NetError> {
    let nb = r.layer.bottom.len();
    if nb == 0 || r.layer.top.len() != nb {
        return Err(r.err(format!(
            "needs at least one bottom and as many tops as bottoms, has {nb} bottom(s) and {} top(s)",
            r.layer.top.len()
        )));
    }
    let p = r.layer.convolution_param.clone().unwrap_or_default();
    let known: Vec<&Shape> = bottoms.iter().flatten().collect();
    if let Some(w) = known.windows(2).find(|w| w[0] != w[1]) {
        return Err(r.err(format!(
            "all bottoms must have the same shape: {} vs {}",
            fmt_shape(w[0]),
            fmt_shape(w[1])
        )));
    }
    let b = known.first().copied();
    let axis = match b {
        Some(b) => r.axis(p.axis(), b)?,
        None => 1,
    };
    let n_spatial = b.map_or(2, |b| b.len() - axis - 1);
    if n_spatial == 0 {
        return Err(r.err(format!("needs spatial axes after the channel axis {axis}")));
    }
    let kernel = spatial(
        r,
        "kernel",
        &p.kernel_size,
        (p.kernel_h, p.kernel_w),
        None,
        n_spatial,
    )?;
    let stride = spatial(
        r,
        "stride",
        &p.stride,
        (p.stride_h, p.stride_w),
        Some(1),
        n_spatial,
    )?;
    let pad = spatial(r, "pad", &p.pad, (p.pad_h, p.pad_w), Some(0), n_spatial)?;
    let dilation = spatial(r, "dilation", &p.dilation, (None, None), Some(1), n_spatial)?;
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        return Err(r.err(format!(
            "kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be positive"
        )));
    }
    let out = p.num_output() as usize;
    let group = p.group() as usize;
    if out == 0 || group == 0 || !out.is_multiple_of(group) {
        return Err(r.err(format!(
            "num_output {out} must be positive and divisible by group {group}"
        )));
    }
    let bias = p.bias_term().then(|| Some(vec![out]));
    let Some(b) = b else {
        let mut params = vec![None];
        params.extend(bias);
        return Ok(Inferred {
            tops: vec![None; nb],
            params,
        });
    };
    let channels = b[axis];
    if channels % group != 0 {
        return Err(r.err(format!(
            "input channels {channels} of {} are not divisible by group {group}",
            fmt_shape(b)
        )));
    }
    let mut top = b[..=axis].to_vec();
    top[axis] = out;
    for i in 0..n_spatial {
        let input = b[axis + 1 + i];
        let o = conv_out(input, kernel[i], stride[i], pad[i], dilation[i]).ok_or_else(|| {
            r.err(format!(
                "kernel {kernel:?} (dilation {dilation:?}) does not fit the input {} with pad {pad:?}",
                fmt_shape(b)
            ))
        })?;
        top.push(o);
    }
    let mut weight = vec![out, channels / group];
    weight.extend(&kernel);
    let mut params = vec![Some(r.checked(weight)?)];
    params.extend(bias);
    let top = r.checked(top)?;
    Ok(Inferred {
        tops: vec![Some(top); nb],
        params,
    })
}

fn pooling(r: &Rule, bottoms: &[Option<Shape>]) -> Result<Inferred, NetError> {
    r.counts(1, 1..=2)?;
    let p = r.layer.pooling_param.unwrap_or_default();
    let method = PoolMethod::try_from(p.pool.unwrap_or(0));
    if !matches!(method, Ok(PoolMethod::Max | PoolMethod::Ave)) {
        return Err(r.err("only MAX and AVE pooling are supported"));
    }
    if r.layer.top.len() == 2 && method != Ok(PoolMethod::Max) {
        return Err(r.err("a second (mask) top needs MAX pooling"));
    }
    let has_kernel = p.kernel_size.is_some() || p.kernel_h.is_some() || p.kernel_w.is_some();
    let pick = |one: Option<u32>,
                h: Option<u32>,
                w: Option<u32>,
                what: &str,
                default: Option<u32>| {
        match (one, h, w) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                Err(r.err(format!("give either {what} or {what}_h/{what}_w, not both")))
            }
            (Some(v), None, None) => Ok([v as usize; 2]),
            (None, Some(h), Some(w)) => Ok([h as usize, w as usize]),
            (None, None, None) => default
                .map(|d| [d as usize; 2])
                .ok_or_else(|| r.err(format!("{what} (or {what}_h and {what}_w) is required"))),
            _ => Err(r.err(format!("{what}_h and {what}_w must be given together"))),
        }
    };
    let stride = pick(p.stride, p.stride_h, p.stride_w, "stride", Some(1))?;
    let pad = pick(p.pad, p.pad_h, p.pad_w, "pad", Some(0))?;
    if stride.contains(&0) {
        return Err(r.err("stride must be positive"));
    }
    let nt = r.layer.top.len();
    let Some(b) = &bottoms[0] else {
        if !p.global_pooling() {
            pick(p.kernel_size, p.kernel_h, p.kernel_w, "kernel_size", None)?;
        }
        return Ok(Inferred {
            tops: vec![None; nt],
            params: vec![],
        });
    };
    if b.len() != 4 {
        return Err(r.err(format!("needs a 4-D input, got {}", fmt_shape(b))));
    }
    let (h, w) = (b[2], b[3]);
    let kernel = if p.global_pooling() {
        if has_kernel {
            return Err(r.err("global_pooling takes no kernel size"));
        }
        if pad != [0, 0] || stride != [1, 1] {
            return Err(r.err("global_pooling needs pad 0 and stride 1"));
        }
        [h, w]
    } else {
        pick(p.kernel_size, p.kernel_h, p.kernel_w, "kernel_size", None)?
    };
    if kernel.contains(&0) {
        return Err(r.err("kernel size must be positive"));
    }
    if pad[0] >= kernel[0] || pad[1] >= kernel[1] {
        return Err(r.err(format!(
            "pad {pad:?} must be smaller than the kernel {kernel:?}"
        )));
    }
    let pooled = |input: usize, k: usize, s: usize, p: usize| -> Result<usize, NetError> {
        let (input, k, s, p) = (input as u128, k as u128, s as u128, p as u128);
        if input + 2 * p < k {
            return Err(r.err(format!(
                "kernel {kernel:?} is larger than the padded input {}",
                fmt_shape(b)
            )));
        }
        // Caffe rounds up, then drops a last window that would start inside the padding.
        let mut n = (input + 2 * p - k).div_ceil(s) + 1;
        if p > 0 && (n - 1) * s >= input + p {
            n -= 1;
        }
        Ok(n as usize)
    };
    let top = vec![
        b[0],
        b[1],
        pooled(h, kernel[0], stride[0], pad[0])?,
        pooled(w, kernel[1], stride[1], pad[1])?,
    ];
    Ok(Inferred {
        tops: vec![Some(top); nt],
        params: vec![],
    })
}

fn inner_product(r: &Rule, bottoms: &[Option<Shape>]) -> Result<Inferred, NetError> {
    r.counts(1, 1..=1)?;
    let p = r.layer.inner_product_param.clone().unwrap_or_default();
    let n = p.num_output() as usize;
    if n == 0 {
        return Err(r.err("num_output must be positive"));
    }
    let bias = p.bias_term().then(|| Some(vec![n]));
    let Some(b) = &bottoms[0] else {
        let mut params = vec![None];
        params.extend(bias);
        return Ok(Inferred {
            tops: vec![None],
            params,
        });
    };
    let axis = r.axis(p.axis(), b)?;
    let k = count(&b[axis..]).ok_or_else(|| r.err("input is too large"))?;
    let mut top = b[..axis].to_vec();
    top.push(n);
    let weight = if p.transpose() {
        vec![k, n]
    } else {
        vec![n, k]
    };
    let mut params = vec![Some(r.checked(weight)?)];
    params.extend(bias);
    Ok(Inferred {
        tops: vec![Some(r.checked(top)?)],
        params,
    })
}

/// Caffe's check that the labels (bottom 1) have one entry per prediction of bottom 0 along
/// `axis`; returns the number of classes when known.
fn check_labels(r: &Rule, bottoms: &[Option<Shape>], axis: i32) -> Result<Option<usize>, NetError> {
    let (Some(pred), label) = (&bottoms[0], &bottoms[1]) else {
        return Ok(None);
    };
    let axis = r.axis(axis, pred)?;
    let outer = count(&pred[..axis]).unwrap_or(usize::MAX);
    let inner = count(&pred[axis + 1..]).unwrap_or(usize::MAX);
    if let Some(label) = label
        && Some(outer.saturating_mul(inner)) != count(label)
    {
        return Err(r.err(format!(
            "labels {} do not match predictions {}: needs {} label(s), one per prediction along axis {axis}",
            fmt_shape(label),
            fmt_shape(pred),
            outer.saturating_mul(inner)
        )));
    }
    Ok(Some(pred[axis]))
}

/// Caffe's legacy 4-D view: a missing trailing axis reads as 1.
fn legacy(s: &[usize], i: usize) -> usize {
    s.get(i).copied().unwrap_or(1)
}

fn contrastive(r: &Rule, bottoms: &[Option<Shape>]) -> Result<(), NetError> {
    if let (Some(a), Some(b)) = (&bottoms[0], &bottoms[1]) {
        let flat = |s: &Shape| s.len() <= 4 && legacy(s, 2) == 1 && legacy(s, 3) == 1;
        if legacy(a, 0) != legacy(b, 0) || legacy(a, 1) != legacy(b, 1) || !flat(a) || !flat(b) {
            return Err(r.err(format!(
                "the two feature inputs must both be N x C (x 1 x 1) and alike: {} vs {}",
                fmt_shape(a),
                fmt_shape(b)
            )));
        }
    }
    if let (Some(a), Some(sim)) = (&bottoms[0], &bottoms[2])
        && (sim.len() > 4 || legacy(sim, 0) != legacy(a, 0) || count(sim) != Some(legacy(a, 0)))
    {
        return Err(r.err(format!(
            "the similarity input must hold one value per pair: {} for features {}",
            fmt_shape(sim),
            fmt_shape(a)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_net_text;

    type Shapes = Vec<Option<Shape>>;

    /// Runs the rule of the single layer in `text` on `bottoms`; `Ok(tops, params)` or the error.
    fn run(text: &str, bottoms: &[Option<Shape>]) -> Result<(Shapes, Shapes), String> {
        let net = parse_net_text(text, "t").map_err(|e| e.to_string())?;
        infer(&net.layer[0], bottoms, Some([1, 28, 28]))
            .map(|i| (i.tops, i.params))
            .map_err(|e| e.to_string())
    }

    fn check(text: &str, bottom: &[usize], expect: &[usize]) {
        let (tops, _) = run(text, &[Some(bottom.to_vec())]).unwrap();
        assert_eq!(tops[0].as_deref(), Some(expect), "{text}");
    }

    fn check_err(text: &str, bottoms: &[Option<Shape>], expect: &str) {
        let e = run(text, bottoms).unwrap_err();
        assert!(e.contains(expect), "{e}\nexpected to contain: {expect}");
    }

    #[test]
    fn convolution_shapes() {
        let conv = |p: &str| {
            format!(
                "layer {{ name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param {{ {p} }} }}"
            )
        };
        check(
            &conv("num_output: 20 kernel_size: 5"),
            &[64, 1, 28, 28],
            &[64, 20, 24, 24],
        );
        check(
            &conv("num_output: 8 kernel_size: 3 stride: 2 pad: 1"),
            &[2, 3, 7, 7],
            &[2, 8, 4, 4],
        );
        check(
            &conv("num_output: 8 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_w: 2"),
            &[1, 3, 9, 9],
            &[1, 8, 4, 13],
        );
        check(
            &conv("num_output: 4 kernel_size: 3 dilation: 2"),
            &[1, 2, 9, 9],
            &[1, 4, 5, 5],
        );
        let (_, params) = run(
            &conv("num_output: 6 kernel_size: 3 group: 2"),
            &[Some(vec![1, 4, 5, 5])],
        )
        .unwrap();
        assert_eq!(params, [Some(vec![6, 2, 3, 3]), Some(vec![6])]);
        let (_, params) = run(
            &conv("num_output: 6 kernel_size: 3 bias_term: false"),
            &[Some(vec![1, 4, 5, 5])],
        )
        .unwrap();
        assert_eq!(params, [Some(vec![6, 4, 3, 3])]);
        check_err(
            &conv("num_output: 6 kernel_size: 3 group: 4"),
            &[Some(vec![1, 4, 5, 5])],
            "divisible by group 4",
        );
        check_err(
            &conv("num_output: 6 kernel_size: 7"),
            &[Some(vec![1, 4, 5, 5])],
            "does not fit the input [1, 4, 5, 5]",
        );
        check_err(
            &conv("num_output: 6"),
            &[Some(vec![1, 4, 5, 5])],
            "kernel (or kernel_h and kernel_w) is required",
        );
        check_err(
            &conv("num_output: 6 kernel_size: 3 stride: 0"),
            &[Some(vec![1, 4, 5, 5])],
            "must be positive",
        );
        check_err(
            &conv("num_output: 6 kernel_size: 3 stride_h: 2"),
            &[Some(vec![1, 4, 5, 5])],
            "stride [2, 0]",
        );
        check_err(
            &conv("num_output: 6 kernel_size: 3 kernel_h: 2 kernel_w: 2"),
            &[Some(vec![1, 4, 5, 5])],
            "not both",
        );
    }

    #[test]
    fn pooling_rounds_up_and_clips_the_last_window() {
        let pool = |p: &str| {
            format!(
                "layer {{ name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"y\" pooling_param {{ {p} }} }}"
            )
        };
        check(
            &pool("pool: MAX kernel_size: 2 stride: 2"),
            &[64, 20, 24, 24],
            &[64, 20, 12, 12],
        );
        // ceil((5 - 2) / 2) + 1 = 3 (Caffe rounds up).
        check(
            &pool("pool: MAX kernel_size: 2 stride: 2"),
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
        );
        // With pad 1: ceil((4 + 2 - 3) / 2) + 1 = 3; (3-1)*2 = 4 >= 4 + 1? no, stays 3.
        check(
            &pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"),
            &[1, 1, 4, 4],
            &[1, 1, 3, 3],
        );
        // h=5, k=2, s=2, p=1: ceil(5/2)+1 = 4; (4-1)*2 = 6 >= 5+1: clipped to 3.
        check(
            &pool("pool: MAX kernel_size: 2 stride: 2 pad: 1"),
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
        );
        check(
            &pool("pool: AVE global_pooling: true"),
            &[2, 3, 7, 5],
            &[2, 3, 1, 1],
        );
        check(
            &pool("kernel_h: 2 kernel_w: 3"),
            &[1, 1, 4, 6],
            &[1, 1, 3, 4],
        );
        check_err(
            &pool("pool: MAX kernel_size: 2 pad: 2"),
            &[Some(vec![1, 1, 5, 5])],
            "smaller than the kernel",
        );
        check_err(
            &pool("pool: MAX kernel_size: 9"),
            &[Some(vec![1, 1, 5, 5])],
            "larger than the padded input [1, 1, 5, 5]",
        );
        check_err(
            &pool("pool: STOCHASTIC kernel_size: 2"),
            &[Some(vec![1, 1, 5, 5])],
            "only MAX and AVE",
        );
        check_err(
            &pool("kernel_size: 2"),
            &[Some(vec![1, 25])],
            "needs a 4-D input, got [1, 25]",
        );
    }

    #[test]
    fn inner_product_flattens_trailing_dims() {
        let ip = |p: &str| {
            format!(
                "layer {{ name: \"i\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" inner_product_param {{ {p} }} }}"
            )
        };
        check(&ip("num_output: 500"), &[64, 50, 4, 4], &[64, 500]);
        check(&ip("num_output: 7 axis: 2"), &[2, 3, 4, 5], &[2, 3, 7]);
        let (_, params) = run(&ip("num_output: 500"), &[Some(vec![64, 50, 4, 4])]).unwrap();
        assert_eq!(params, [Some(vec![500, 800]), Some(vec![500])]);
        let (_, params) = run(
            &ip("num_output: 3 transpose: true bias_term: false"),
            &[Some(vec![2, 5])],
        )
        .unwrap();
        assert_eq!(params, [Some(vec![5, 3])]);
        check_err(
            &ip("num_output: 3 axis: 4"),
            &[Some(vec![2, 5])],
            "axis 4 is out of range",
        );
    }

    #[test]
    fn slice_splits_along_axis() {
        let text = "layer { name: \"s\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" slice_param { slice_dim: 1 slice_point: 1 } }";
        let (tops, _) = run(text, &[Some(vec![64, 2, 28, 28])]).unwrap();
        assert_eq!(tops, [Some(vec![64, 1, 28, 28]), Some(vec![64, 1, 28, 28])]);
        let even =
            "layer { name: \"s\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" top: \"c\" }";
        let (tops, _) = run(even, &[Some(vec![2, 6])]).unwrap();
        assert_eq!(tops, vec![Some(vec![2, 2]); 3]);
        check_err(
            even,
            &[Some(vec![2, 5])],
            "cannot split axis 1 of [2, 5] (5) evenly into 3 tops",
        );
        check_err(text, &[Some(vec![64, 1, 28, 28])], "must increase strictly");
    }

    #[test]
    fn losses_and_accuracy_are_scalars_with_label_checks() {
        let sm = "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"p\" bottom: \"y\" top: \"loss\" }";
        let (tops, _) = run(sm, &[Some(vec![64, 10]), Some(vec![64])]).unwrap();
        assert_eq!(tops, [Some(vec![])]);
        check_err(
            sm,
            &[Some(vec![64, 10]), Some(vec![32])],
            "labels [32] do not match predictions [64, 10]",
        );
        let acc = "layer { name: \"a\" type: \"Accuracy\" bottom: \"p\" bottom: \"y\" top: \"acc\" top: \"per_class\" }";
        let (tops, _) = run(acc, &[Some(vec![64, 10]), Some(vec![64])]).unwrap();
        assert_eq!(tops, [Some(vec![]), Some(vec![10])]);
        let acc_k = "layer { name: \"a\" type: \"Accuracy\" bottom: \"p\" bottom: \"y\" top: \"acc\" accuracy_param { top_k: 11 } }";
        check_err(
            acc_k,
            &[Some(vec![64, 10]), Some(vec![64])],
            "top_k 11 is more than the 10 classes",
        );
        let c = "layer { name: \"c\" type: \"ContrastiveLoss\" bottom: \"a\" bottom: \"b\" bottom: \"s\" top: \"loss\" }";
        let (tops, _) = run(c, &[Some(vec![64, 2]), Some(vec![64, 2]), Some(vec![64])]).unwrap();
        assert_eq!(tops, [Some(vec![])]);
        check_err(
            c,
            &[Some(vec![64, 2]), Some(vec![64, 3]), Some(vec![64])],
            "[64, 2] vs [64, 3]",
        );
        check_err(
            c,
            &[Some(vec![64, 2]), Some(vec![64, 2]), Some(vec![32])],
            "[32] for features [64, 2]",
        );
        let e = "layer { name: \"e\" type: \"EuclideanLoss\" bottom: \"a\" bottom: \"b\" top: \"loss\" }";
        check_err(e, &[Some(vec![4, 2]), Some(vec![4, 3])], "same size");
    }

    #[test]
    fn data_and_input_tops() {
        let d = "layer { name: \"d\" type: \"Data\" top: \"x\" top: \"y\" data_param { batch_size: 64 } }";
        let (tops, _) = run(d, &[]).unwrap();
        assert_eq!(tops, [Some(vec![64, 1, 28, 28]), Some(vec![64])]);
        check_err(
            "layer { name: \"d\" type: \"Data\" top: \"x\" }",
            &[],
            "batch_size must be positive",
        );
        let i = "layer { name: \"i\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 2 dim: 3 } } }";
        let (tops, _) = run(i, &[]).unwrap();
        assert_eq!(tops, [Some(vec![2, 3]), Some(vec![2, 3])]);
        check_err(
            "layer { name: \"i\" type: \"Input\" top: \"a\" input_param { shape { dim: -2 } } }",
            &[],
            "negative dimension -2",
        );
    }

    #[test]
    fn unknown_type_lists_supported_ones() {
        check_err(
            "layer { name: \"x\" type: \"LSTM\" }",
            &[],
            "unknown layer type 'LSTM'; supported types: Accuracy, ContrastiveLoss",
        );
    }

    #[test]
    fn unknown_inputs_give_unknown_tops() {
        let conv = "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param { num_output: 3 kernel_size: 2 } }";
        let (tops, params) = run(conv, &[None]).unwrap();
        assert_eq!(tops, [None]);
        assert_eq!(params, [None, Some(vec![3])]);
    }
}
