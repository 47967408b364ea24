//! The window settings of Convolution and Pooling layers as Caffe reads them (one value, one
//! per axis, or the `_h`/`_w` pair); siamese-net has checked them when it built the spec.

use siamese_proto::LayerParameter;
use siamese_proto::pooling_parameter::PoolMethod;

/// A spatial setting for `n` axes: the `_h`/`_w` pair, else the repeated field (one value
/// for all axes or one per axis), else `default`.
fn spatial(repeated: &[u32], hw: (Option<u32>, Option<u32>), default: u32, n: usize) -> Vec<i64> {
    if hw.0.is_some() || hw.1.is_some() {
        // As Caffe: the other one of the pair takes the field's default (0).
        return vec![i64::from(hw.0.unwrap_or(0)), i64::from(hw.1.unwrap_or(0))];
    }
    match repeated {
        [] => vec![i64::from(default); n],
        [v] => vec![i64::from(*v); n],
        values => values.iter().map(|&v| i64::from(v)).collect(),
    }
}

/// Stride, pad and dilation of a convolution over `n` spatial axes (the kernel and group
/// follow from its weight shape).
pub struct ConvWindow {
    pub stride: Vec<i64>,
    pub pad: Vec<i64>,
    pub dilation: Vec<i64>,
}

pub fn conv_window(layer: &LayerParameter, n: usize) -> ConvWindow {
    let p = layer.convolution_param.clone().unwrap_or_default();
    ConvWindow {
        stride: spatial(&p.stride, (p.stride_h, p.stride_w), 1, n),
        pad: spatial(&p.pad, (p.pad_h, p.pad_w), 0, n),
        dilation: spatial(&p.dilation, (None, None), 1, n),
    }
}

/// A 2-D pooling window.
pub struct PoolWindow {
    pub max: bool,
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub pad: [i64; 2],
}

/// The pooling window of `layer` over an input of `height` x `width`.
pub fn pool_window(layer: &LayerParameter, height: usize, width: usize) -> PoolWindow {
    let p = layer.pooling_param.unwrap_or_default();
    let pair = |one: Option<u32>, h: Option<u32>, w: Option<u32>, default: u32| {
        let [h, w] = [h.or(one).unwrap_or(default), w.or(one).unwrap_or(default)];
        [i64::from(h), i64::from(w)]
    };
    let kernel = if p.global_pooling() {
        [height as i64, width as i64]
    } else {
        pair(p.kernel_size, p.kernel_h, p.kernel_w, 0)
    };
    PoolWindow {
        max: p.pool() == PoolMethod::Max,
        kernel,
        stride: pair(p.stride, p.stride_h, p.stride_w, 1),
        pad: pair(p.pad, p.pad_h, p.pad_w, 0),
    }
}
