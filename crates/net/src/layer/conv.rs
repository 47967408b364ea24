//! Convolution: Caffe's ConvolutionParameter (N-D kernel, stride, pad, dilation, groups) and
//! its output size `(in + 2·pad − (dilation·(kernel − 1) + 1)) / stride + 1`.

use siamese_proto::{FillerParameter, LayerParameter};

use super::{Inferred, LayerKind, Rule, weight_and_bias};
use crate::NetError;
use crate::shape::{Shape, fmt_shape};

/// One window setting over the spatial axes, as the prototxt gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Spatial {
    /// One value for every spatial axis (the field given once, or its default).
    All(usize),
    /// One value per spatial axis (the repeated field).
    PerAxis(Vec<usize>),
    /// The `_h`/`_w` pair (2 spatial axes; a missing one is Caffe's field default, 0).
    HeightWidth([usize; 2]),
}

impl Spatial {
    fn parse(
        r: &Rule,
        what: &str,
        repeated: &[u32],
        hw: (Option<u32>, Option<u32>),
        default: Option<usize>,
    ) -> Result<Spatial, NetError> {
        if hw.0.is_some() || hw.1.is_some() {
            if !repeated.is_empty() {
                return Err(r.err(format!("give either {what} or {what}_h/{what}_w, not both")));
            }
            return Ok(Spatial::HeightWidth([
                hw.0.unwrap_or(0) as usize,
                hw.1.unwrap_or(0) as usize,
            ]));
        }
        match (repeated, default) {
            ([], Some(d)) => Ok(Spatial::All(d)),
            ([], None) => Err(r.err(format!("{what} (or {what}_h and {what}_w) is required"))),
            ([v], _) => Ok(Spatial::All(*v as usize)),
            (values, _) => Ok(Spatial::PerAxis(
                values.iter().map(|&v| v as usize).collect(),
            )),
        }
    }

    /// The values for `n` spatial axes.
    fn dims(&self, r: &Rule, what: &str, n: usize) -> Result<Vec<usize>, NetError> {
        match self {
            Spatial::All(v) => Ok(vec![*v; n]),
            Spatial::HeightWidth(hw) if n == 2 => Ok(hw.to_vec()),
            Spatial::HeightWidth(_) => Err(r.err(format!(
                "{what}_h/{what}_w need 2 spatial axes, the input has {n}"
            ))),
            Spatial::PerAxis(v) if v.len() == n => Ok(v.clone()),
            Spatial::PerAxis(v) => {
                Err(r.err(format!("{} {what} values for {n} spatial axes", v.len())))
            }
        }
    }
}

/// Caffe's `Convolution` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvConfig {
    pub num_output: usize,
    pub bias_term: bool,
    pub group: usize,
    /// The channel axis (Caffe's `axis`, maybe negative); the spatial axes follow it.
    pub axis: i32,
    pub kernel: Spatial,
    pub stride: Spatial,
    pub pad: Spatial,
    pub dilation: Spatial,
    pub weight_filler: Option<FillerParameter>,
    pub bias_filler: Option<FillerParameter>,
}

/// The window of a convolution over `n` spatial axes, each value checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWindow {
    pub kernel: Vec<usize>,
    pub stride: Vec<usize>,
    pub pad: Vec<usize>,
    pub dilation: Vec<usize>,
}

/// Output length of a convolution window sweep (Caffe's formula); `None` when the window does
/// not fit the padded input.
pub fn conv_output_len(
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

impl ConvConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let r = Rule::new(layer.name(), LayerKind::Convolution);
        let p = layer.convolution_param.clone().unwrap_or_default();
        let num_output = p.num_output() as usize;
        let group = p.group() as usize;
        if num_output == 0 || group == 0 || !num_output.is_multiple_of(group) {
            let field = if group == 0 {
                "convolution_param.group"
            } else {
                "convolution_param.num_output"
            };
            return Err(r.field_err(
                field,
                format!("num_output {num_output} must be positive and divisible by group {group}"),
            ));
        }
        Ok(ConvConfig {
            num_output,
            bias_term: p.bias_term(),
            group,
            axis: p.axis(),
            kernel: Spatial::parse(&r, "kernel", &p.kernel_size, (p.kernel_h, p.kernel_w), None)?,
            stride: Spatial::parse(&r, "stride", &p.stride, (p.stride_h, p.stride_w), Some(1))?,
            pad: Spatial::parse(&r, "pad", &p.pad, (p.pad_h, p.pad_w), Some(0))?,
            dilation: Spatial::parse(&r, "dilation", &p.dilation, (None, None), Some(1))?,
            weight_filler: p.weight_filler,
            bias_filler: p.bias_filler,
        })
    }

    pub(super) fn param_fillers(&self) -> Vec<FillerParameter> {
        weight_and_bias(&self.weight_filler, &self.bias_filler, self.bias_term)
    }

    /// The window over `n` spatial axes; every value but the padding must be positive.
    pub fn window(&self, layer: &str, n: usize) -> Result<ConvWindow, NetError> {
        self.window_for(&Rule::new(layer, LayerKind::Convolution), n)
    }

    fn window_for(&self, r: &Rule, n: usize) -> Result<ConvWindow, NetError> {
        let w = ConvWindow {
            kernel: self.kernel.dims(r, "kernel", n)?,
            stride: self.stride.dims(r, "stride", n)?,
            pad: self.pad.dims(r, "pad", n)?,
            dilation: self.dilation.dims(r, "dilation", n)?,
        };
        let zero = [
            (&w.kernel, "convolution_param.kernel_size"),
            (&w.stride, "convolution_param.stride"),
            (&w.dilation, "convolution_param.dilation"),
        ]
        .into_iter()
        .find(|(v, _)| v.contains(&0));
        if let Some((_, field)) = zero {
            return Err(r.field_err(
                field,
                format!(
                    "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                    w.kernel, w.stride, w.dilation
                ),
            ));
        }
        Ok(w)
    }

    /// The top shape for a bottom of shape `bottom`, with Caffe's checks.
    pub fn output_shape(&self, layer: &str, bottom: &[usize]) -> Result<Shape, NetError> {
        self.output_for(&Rule::new(layer, LayerKind::Convolution), bottom)
    }

    /// The weight shape `[num_output, channels / group, kernel...]`.
    pub fn weight_shape(&self, channels: usize, window: &ConvWindow) -> Shape {
        let mut weight = vec![self.num_output, channels / self.group];
        weight.extend(&window.kernel);
        weight
    }

    fn output_for(&self, r: &Rule, b: &[usize]) -> Result<Shape, NetError> {
        let axis = r.axis(self.axis, b)?;
        let n_spatial = b.len() - axis - 1;
        if n_spatial == 0 {
            return Err(r.err(format!("needs spatial axes after the channel axis {axis}")));
        }
        let w = self.window_for(r, n_spatial)?;
        let channels = b[axis];
        if !channels.is_multiple_of(self.group) {
            return Err(r.err(format!(
                "input channels {channels} of {} are not divisible by group {}",
                fmt_shape(b),
                self.group
            )));
        }
        let mut top = b[..=axis].to_vec();
        top[axis] = self.num_output;
        for i in 0..n_spatial {
            let input = b[axis + 1 + i];
            let o = conv_output_len(input, w.kernel[i], w.stride[i], w.pad[i], w.dilation[i])
                .ok_or_else(|| {
                    r.err(format!(
                        "kernel {:?} (dilation {:?}) does not fit the input {} with pad {:?}",
                        w.kernel,
                        w.dilation,
                        fmt_shape(b),
                        w.pad
                    ))
                })?;
            top.push(o);
        }
        r.checked(top)
    }

    pub(super) fn infer(
        &self,
        r: &Rule,
        bottoms: &[Option<Shape>],
        tops: usize,
    ) -> Result<Inferred, NetError> {
        let nb = bottoms.len();
        if nb == 0 || tops != nb {
            return Err(r.err(format!(
                "needs at least one bottom and as many tops as bottoms, has {nb} bottom(s) and {tops} top(s)"
            )));
        }
        let known: Vec<&Shape> = bottoms.iter().flatten().collect();
        if let Some(w) = known.windows(2).find(|w| w[0] != w[1]) {
            return Err(r.err(format!(
                "all bottoms must have the same shape: {} vs {}",
                fmt_shape(w[0]),
                fmt_shape(w[1])
            )));
        }
        let bias = self.bias_term.then(|| Some(vec![self.num_output]));
        let Some(b) = known.first().copied() else {
            self.window_for(r, 2)?;
            let mut params = vec![None];
            params.extend(bias);
            return Ok(Inferred {
                tops: vec![None; bottoms.len()],
                params,
            });
        };
        let top = self.output_for(r, b)?;
        let axis = r.axis(self.axis, b)?;
        let window = self.window_for(r, b.len() - axis - 1)?;
        let mut params = vec![Some(r.checked(self.weight_shape(b[axis], &window))?)];
        params.extend(bias);
        Ok(Inferred {
            tops: vec![Some(top); bottoms.len()],
            params,
        })
    }
}
