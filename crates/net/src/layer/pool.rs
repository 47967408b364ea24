//! Pooling: Caffe's PoolingParameter (MAX and AVE, 2-D, global pooling) and its pooled size,
//! rounded up, then clipped so the last window starts inside the image.

use siamese_proto::LayerParameter;
use siamese_proto::pooling_parameter::PoolMethod as ProtoMethod;

use super::{Inferred, LayerKind, Rule};
use crate::NetError;
use crate::shape::fmt_shape;

/// The pooling methods siamese supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMethod {
    Max,
    Ave,
}

/// Caffe's `Pooling` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub method: PoolMethod,
    /// `[kernel_h, kernel_w]`; with `global` the whole plane instead.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub global: bool,
}

/// Caffe's pooled size of one axis: `ceil((in + 2·pad − kernel) / stride) + 1`, minus one when
/// pad > 0 and the last window would start at or beyond `in + pad`. `None` when the kernel
/// exceeds the padded input.
pub fn pooled_len(input: usize, kernel: usize, stride: usize, pad: usize) -> Option<usize> {
    let (input, k, s, p) = (input as u128, kernel as u128, stride as u128, pad as u128);
    if input + 2 * p < k {
        return None;
    }
    let mut n = (input + 2 * p - k).div_ceil(s) + 1;
    if p > 0 && (n - 1) * s >= input + p {
        n -= 1;
    }
    Some(n as usize)
}

/// `[h, w]` from the single field or the `_h`/`_w` pair, else `default`.
fn pick(
    r: &Rule,
    what: &str,
    (one, h, w): (Option<u32>, Option<u32>, Option<u32>),
    default: Option<usize>,
) -> Result<[usize; 2], NetError> {
    match (one, h, w) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err(r.err(format!("give either {what} or {what}_h/{what}_w, not both")))
        }
        (Some(v), None, None) => Ok([v as usize; 2]),
        (None, Some(h), Some(w)) => Ok([h as usize, w as usize]),
        (None, None, None) => default
            .map(|d| [d; 2])
            .ok_or_else(|| r.err(format!("{what} (or {what}_h and {what}_w) is required"))),
        _ => Err(r.err(format!("{what}_h and {what}_w must be given together"))),
    }
}

impl PoolConfig {
    /// Reads the settings of `layer`, with Caffe's checks of them.
    pub fn parse(layer: &LayerParameter) -> Result<Self, NetError> {
        let r = Rule::new(layer.name(), LayerKind::Pooling);
        let p = layer.pooling_param.unwrap_or_default();
        let method = match ProtoMethod::try_from(p.pool.unwrap_or(0)) {
            Ok(ProtoMethod::Max) => PoolMethod::Max,
            Ok(ProtoMethod::Ave) => PoolMethod::Ave,
            _ => return Err(r.err("only MAX and AVE pooling are supported")),
        };
        let stride = pick(&r, "stride", (p.stride, p.stride_h, p.stride_w), Some(1))?;
        let pad = pick(&r, "pad", (p.pad, p.pad_h, p.pad_w), Some(0))?;
        if stride.contains(&0) {
            return Err(r.field_err("pooling_param.stride", "stride must be positive"));
        }
        let kernel_fields = (p.kernel_size, p.kernel_h, p.kernel_w);
        let global = p.global_pooling();
        let kernel = if global {
            if kernel_fields != (None, None, None) {
                return Err(r.err("global_pooling takes no kernel size"));
            }
            if pad != [0, 0] || stride != [1, 1] {
                return Err(r.err("global_pooling needs pad 0 and stride 1"));
            }
            [0, 0]
        } else {
            let kernel = pick(&r, "kernel", kernel_fields, None)?;
            if kernel.contains(&0) {
                return Err(
                    r.field_err("pooling_param.kernel_size", "kernel size must be positive")
                );
            }
            if pad[0] >= kernel[0] || pad[1] >= kernel[1] {
                return Err(r.err(format!(
                    "pad {pad:?} must be smaller than the kernel {kernel:?}"
                )));
            }
            kernel
        };
        Ok(PoolConfig {
            method,
            kernel,
            stride,
            pad,
            global,
        })
    }

    /// The kernel over planes of `height × width`.
    pub fn kernel_for(&self, height: usize, width: usize) -> [usize; 2] {
        if self.global {
            [height, width]
        } else {
            self.kernel
        }
    }

    /// The top shape for a bottom of shape `bottom`, with Caffe's checks.
    pub fn output_shape(&self, layer: &str, bottom: &[usize]) -> Result<[usize; 4], NetError> {
        self.output_for(&Rule::new(layer, LayerKind::Pooling), bottom)
    }

    fn output_for(&self, r: &Rule, b: &[usize]) -> Result<[usize; 4], NetError> {
        let &[n, c, h, w] = b else {
            return Err(r.err(format!("needs a 4-D input, got {}", fmt_shape(b))));
        };
        let kernel = self.kernel_for(h, w);
        let pooled = |i: usize, input: usize| {
            pooled_len(input, kernel[i], self.stride[i], self.pad[i]).ok_or_else(|| {
                r.err(format!(
                    "kernel {kernel:?} is larger than the padded input {}",
                    fmt_shape(b)
                ))
            })
        };
        Ok([n, c, pooled(0, h)?, pooled(1, w)?])
    }

    pub(super) fn infer(
        &self,
        r: &Rule,
        bottom: Option<&[usize]>,
        tops: usize,
    ) -> Result<Inferred, NetError> {
        if tops == 2 && self.method != PoolMethod::Max {
            return Err(r.err("a second (mask) top needs MAX pooling"));
        }
        let top = bottom.map(|b| self.output_for(r, b)).transpose()?;
        Ok(Inferred::same(top.map(|t| t.to_vec()), tops))
    }
}

#[cfg(test)]
mod tests {
    use super::pooled_len;

    #[test]
    fn pooled_size_follows_caffe() {
        // LeNet: 24 -> 12, 8 -> 4.
        assert_eq!(pooled_len(24, 2, 2, 0), Some(12));
        assert_eq!(pooled_len(8, 2, 2, 0), Some(4));
        // Rounded up: a partial last window (6 - 3) / 2 = 1.5 -> 2, + 1.
        assert_eq!(pooled_len(6, 3, 2, 0), Some(3));
        assert_eq!(pooled_len(7, 2, 2, 0), Some(4));
        // Clipped: with pad 1 and size 5: ceil((5 + 2 - 2)/2) + 1 = 4; (4-1)*2 = 6 >= 5 + 1.
        assert_eq!(pooled_len(6, 2, 2, 1), Some(4));
        assert_eq!(pooled_len(5, 2, 2, 1), Some(3));
        assert_eq!(pooled_len(1, 3, 1, 0), None);
    }
}
