//! Graphviz DOT of a `NetSpec`, in the manner of Caffe's draw_net.py: layers as boxes with
//! their key settings, blobs as octagons, shared parameters as dashed edges between layers.

use std::fmt::Write;

use crate::shape::fmt_shape;
use crate::{LayerKind, LayerSpec, NetSpec};

/// Renders `net` as a DOT digraph (left to right, as draw_net.py's default).
pub fn render(net: &NetSpec) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&net.name));
    let _ = writeln!(
        out,
        "  graph [rankdir=LR, label={}];",
        quote(&format!("{} ({})", net.name, net.phase.as_str_name()))
    );
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=10];");
    for (b, blob) in net.blobs.iter().enumerate() {
        let shape = blob.shape.as_deref().map_or("?".into(), fmt_shape);
        let _ = writeln!(
            out,
            "  blob{b} [shape=octagon, style=filled, fillcolor=\"#E0E0E0\", label={}];",
            quote(&format!("{}\n{shape}", blob.name))
        );
    }
    for (li, layer) in net.layers.iter().enumerate() {
        let in_place =
            layer.tops.len() == 1 && layer.bottoms.len() == 1 && layer.tops == layer.bottoms;
        let color = match layer.kind() {
            LayerKind::Convolution => "#FF5050",
            LayerKind::Pooling => "#FF9900",
            LayerKind::InnerProduct => "#CC33FF",
            _ if in_place => "#90EE90",
            _ => "#6495ED",
        };
        let mut label = format!("{}\n({})", layer.name, layer.kind());
        for line in settings(layer) {
            label.push('\n');
            label.push_str(&line);
        }
        for (slot, &pid) in layer.params.iter().enumerate() {
            let p = &net.params[pid];
            let shape = if p.is_shaped() {
                fmt_shape(&p.shape)
            } else {
                "?".into()
            };
            let which = ["weight", "bias"].get(slot).copied().unwrap_or("param");
            match &p.name {
                Some(name) if p.users.len() > 1 => {
                    let _ = write!(label, "\n{which}: {name} {shape} (shared)");
                }
                Some(name) => {
                    let _ = write!(label, "\n{which}: {name} {shape}");
                }
                None => {
                    let _ = write!(label, "\n{which}: {shape}");
                }
            }
        }
        let _ = writeln!(
            out,
            "  layer{li} [shape=box, style=filled, fillcolor=\"{color}\", label={}];",
            quote(&label)
        );
        for &b in &layer.bottoms {
            let _ = writeln!(out, "  blob{b} -> layer{li};");
        }
        for &t in &layer.tops {
            let _ = writeln!(out, "  layer{li} -> blob{t};");
        }
    }
    for p in &net.params {
        let (Some(name), Some(&(owner, _))) = (&p.name, p.users.first()) else {
            continue;
        };
        for &(user, _) in p.users.iter().skip(1) {
            let _ = writeln!(
                out,
                "  layer{owner} -> layer{user} [style=dashed, dir=none, constraint=false, color=\"#888888\", fontsize=8, label={}];",
                quote(name)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// The settings draw_net.py shows for a layer.
fn settings(layer: &LayerSpec) -> Vec<String> {
    let p = &layer.proto;
    let mut lines = Vec::new();
    match layer.kind() {
        LayerKind::Convolution => {
            let c = p.convolution_param.clone().unwrap_or_default();
            let list = |v: &[u32], h: Option<u32>, w: Option<u32>, d: u32| match (h, w) {
                (None, None) if v.is_empty() => d.to_string(),
                (None, None) => v.iter().map(u32::to_string).collect::<Vec<_>>().join("x"),
                (h, w) => format!("{}x{}", h.unwrap_or(0), w.unwrap_or(0)),
            };
            lines.push(format!(
                "kernel size: {}",
                list(&c.kernel_size, c.kernel_h, c.kernel_w, 0)
            ));
            lines.push(format!(
                "stride: {}",
                list(&c.stride, c.stride_h, c.stride_w, 1)
            ));
            lines.push(format!("pad: {}", list(&c.pad, c.pad_h, c.pad_w, 0)));
            lines.push(format!("num output: {}", c.num_output()));
            if c.group() != 1 {
                lines.push(format!("group: {}", c.group()));
            }
        }
        LayerKind::Pooling => {
            let q = p.pooling_param.unwrap_or_default();
            lines.push(format!("pool: {}", q.pool().as_str_name()));
            if q.global_pooling() {
                lines.push("global".into());
            } else {
                lines.push(format!(
                    "kernel size: {}",
                    q.kernel_size
                        .map_or(format!("{}x{}", q.kernel_h(), q.kernel_w()), |k| k
                            .to_string())
                ));
                lines.push(format!("stride: {}", q.stride()));
                lines.push(format!("pad: {}", q.pad()));
            }
        }
        LayerKind::InnerProduct => {
            let q = p.inner_product_param.clone().unwrap_or_default();
            lines.push(format!("num output: {}", q.num_output()));
        }
        LayerKind::Data => {
            let d = p.data_param.clone().unwrap_or_default();
            lines.push(format!("batch size: {}", d.batch_size()));
            lines.push(format!("source: {}", d.source()));
        }
        LayerKind::Slice => {
            let s = p.slice_param.clone().unwrap_or_default();
            lines.push(format!("slice points: {:?}", s.slice_point));
        }
        LayerKind::Dropout => {
            let d = p.dropout_param.unwrap_or_default();
            lines.push(format!("ratio: {}", d.dropout_ratio()));
        }
        LayerKind::ContrastiveLoss => {
            let c = p.contrastive_loss_param.unwrap_or_default();
            lines.push(format!("margin: {}", c.margin()));
        }
        _ => {}
    }
    if let Some(w) = layer.loss_weights.iter().find(|&&w| w != 0.0) {
        lines.push(format!("loss weight: {w}"));
    }
    lines
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quote_escapes() {
        assert_eq!(super::quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
