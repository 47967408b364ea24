//! Each Caffe layer as ONNX nodes with Caffe's semantics: Conv, MaxPool/AveragePool with
//! Caffe's rounded-up, clipped windows as explicit end pads, Flatten + Gemm, Relu, Softmax.

use siamese_net::{LayerSpec, NetSpec};
use siamese_proto::onnx::GraphProto;

use crate::ExportError;
use crate::graph::{Attr, Graph};
use crate::settings::{conv_window, pool_window};

/// The graph of `spec`, `params[i]` holding the values of `spec.params[i]`.
pub fn translate(spec: &NetSpec, params: &[&[f32]]) -> Result<GraphProto, ExportError> {
    let mut t = Translator {
        spec,
        params,
        graph: Graph::default(),
        current: vec![None; spec.blobs.len()],
        last_writer: vec![None; spec.blobs.len()],
        weights: vec![None; spec.params.len()],
    };
    t.graph.proto.name = Some(spec.name.clone());
    for (index, layer) in spec.layers.iter().enumerate() {
        for &top in &layer.tops {
            t.last_writer[top] = Some(index);
        }
    }
    // The outputs' names are the blobs' own: reserve them before any other value is named.
    for &out in &spec.outputs {
        t.graph.unique_name(&spec.blobs[out].name);
    }
    for (index, layer) in spec.layers.iter().enumerate() {
        t.layer(index, layer)?;
    }
    if t.graph.proto.input.is_empty() {
        return Err(ExportError::Net {
            net: spec.name.clone(),
            message: "no Input layer (export takes a deploy net, e.g. mnist_siamese.prototxt)"
                .into(),
        });
    }
    for &out in &spec.outputs {
        let blob = &spec.blobs[out];
        let shape = blob.shape.clone().unwrap_or_default();
        t.graph.output(&blob.name, &shape);
    }
    Ok(t.graph.proto)
}

struct Translator<'a> {
    spec: &'a NetSpec,
    params: &'a [&'a [f32]],
    graph: Graph,
    /// Per blob: the ONNX value holding its latest version.
    current: Vec<Option<String>>,
    /// Per blob: the layer that writes it last (its value takes the blob's name).
    last_writer: Vec<Option<usize>>,
    /// Per parameter: its initializer, once written.
    weights: Vec<Option<String>>,
}

impl Translator<'_> {
    fn layer(&mut self, index: usize, layer: &LayerSpec) -> Result<(), ExportError> {
        match layer.proto.r#type() {
            "Input" => {
                for &top in &layer.tops {
                    let name = self.top(index, layer, top);
                    self.graph.input(&name, &self.shape(top));
                }
                Ok(())
            }
            "Convolution" => self.convolution(index, layer),
            "Pooling" => self.pooling(index, layer),
            "InnerProduct" => self.inner_product(index, layer),
            "ReLU" => {
                let slope = layer.proto.relu_param.unwrap_or_default().negative_slope();
                let (op, attrs) = if slope == 0.0 {
                    ("Relu", vec![])
                } else {
                    ("LeakyRelu", vec![("alpha", Attr::Float(slope))])
                };
                self.unary(index, layer, op, attrs);
                Ok(())
            }
            "Softmax" => {
                let axis = layer.proto.softmax_param.unwrap_or_default().axis();
                self.unary(
                    index,
                    layer,
                    "Softmax",
                    vec![("axis", Attr::Int(i64::from(axis)))],
                );
                Ok(())
            }
            // At test time Caffe's Dropout passes its input through (it scales while training).
            "Dropout" | "Split" => {
                for (k, &top) in layer.tops.iter().enumerate() {
                    let input = self.bottom(layer.bottoms[0]);
                    let output = self.top(index, layer, top);
                    let node = format!("{}/{k}", layer.name);
                    self.graph
                        .node("Identity", &node, &[&input], &[&output], vec![]);
                }
                Ok(())
            }
            other => Err(ExportError::Unsupported {
                layer: layer.name.clone(),
                kind: other.to_string(),
            }),
        }
    }

    /// A one-input, one-output node.
    fn unary(&mut self, index: usize, layer: &LayerSpec, op: &str, attrs: Vec<(&str, Attr)>) {
        let input = self.bottom(layer.bottoms[0]);
        let output = self.top(index, layer, layer.tops[0]);
        self.graph
            .node(op, &layer.name, &[&input], &[&output], attrs);
    }

    fn convolution(&mut self, index: usize, layer: &LayerSpec) -> Result<(), ExportError> {
        let p = layer.proto.convolution_param.clone().unwrap_or_default();
        let input_shape = self.shape(layer.bottoms[0]);
        if p.axis() != 1 && p.axis() != 1 - input_shape.len() as i32 {
            return Err(self.unexact(layer, format!("axis {}: only axis 1 is exported", p.axis())));
        }
        let weight_shape = self.spec.params[layer.params[0]].shape.clone();
        let kernel: Vec<i64> = weight_shape[2..].iter().map(|&k| k as i64).collect();
        let w = conv_window(&layer.proto, kernel.len());
        let group = (input_shape[1] / weight_shape[1].max(1)) as i64;
        let weights: Vec<String> = (0..layer.params.len())
            .map(|s| self.weight(layer, s))
            .collect();
        for (k, (&bottom, &top)) in layer.bottoms.iter().zip(&layer.tops).enumerate() {
            let input = self.bottom(bottom);
            let output = self.top(index, layer, top);
            let mut inputs = vec![input.as_str()];
            inputs.extend(weights.iter().map(String::as_str));
            let attrs = vec![
                ("kernel_shape", Attr::Ints(kernel.clone())),
                ("strides", Attr::Ints(w.stride.clone())),
                ("pads", Attr::Ints([w.pad.clone(), w.pad.clone()].concat())),
                ("dilations", Attr::Ints(w.dilation.clone())),
                ("group", Attr::Int(group)),
            ];
            let node = node_name(layer, k);
            self.graph.node("Conv", &node, &inputs, &[&output], attrs);
        }
        Ok(())
    }

    /// Caffe's pooled size rounds up and drops a last window that would start in the end
    /// padding; ONNX's floor rounding gives the same windows with end pads that make the
    /// last window fit. MAX ignores padding as Caffe's clipped windows do; AVE divides by the
    /// window within the begin pad..end of input + pad, which ONNX's count_include_pad
    /// matches only while the end pad is no more than Caffe's.
    fn pooling(&mut self, index: usize, layer: &LayerSpec) -> Result<(), ExportError> {
        if layer.tops.len() > 1 {
            return Err(self.unexact(layer, "a mask top has no ONNX equivalent".into()));
        }
        let input = self.shape(layer.bottoms[0]);
        let output = self.shape(layer.tops[0]);
        let w = pool_window(&layer.proto, input[2], input[3]);
        let mut end_pads = [0i64; 2];
        for axis in 0..2 {
            let (size, pooled) = (input[2 + axis] as i64, output[2 + axis] as i64);
            let (k, s, p) = (w.kernel[axis], w.stride[axis], w.pad[axis]);
            let end = ((pooled - 1) * s + k - size - p).max(0);
            if (size + p + end - k) / s + 1 != pooled || (!w.max && end > p) {
                return Err(self.unexact(
                    layer,
                    format!("no ONNX pads give Caffe's {pooled} windows over {size} (kernel {k}, stride {s}, pad {p})"),
                ));
            }
            end_pads[axis] = end;
        }
        let mut attrs = vec![
            ("kernel_shape", Attr::Ints(w.kernel.to_vec())),
            ("strides", Attr::Ints(w.stride.to_vec())),
            (
                "pads",
                Attr::Ints(vec![w.pad[0], w.pad[1], end_pads[0], end_pads[1]]),
            ),
        ];
        if !w.max {
            attrs.push(("count_include_pad", Attr::Int(1)));
        }
        let op = if w.max { "MaxPool" } else { "AveragePool" };
        self.unary(index, layer, op, attrs);
        Ok(())
    }

    /// Caffe flattens the axes from `axis` on and multiplies by the weights `[out, in]`
    /// (`[in, out]` with `transpose`), then adds the bias.
    fn inner_product(&mut self, index: usize, layer: &LayerSpec) -> Result<(), ExportError> {
        let p = layer.proto.inner_product_param.clone().unwrap_or_default();
        let rank = self.shape(layer.bottoms[0]).len() as i32;
        if p.axis() != 1 && p.axis() != 1 - rank {
            return Err(self.unexact(layer, format!("axis {}: only axis 1 is exported", p.axis())));
        }
        let input = self.bottom(layer.bottoms[0]);
        let flat = self.graph.unique_name(&format!("{}/flatten", layer.name));
        let node = format!("{}/flatten", layer.name);
        self.graph.node(
            "Flatten",
            &node,
            &[&input],
            &[&flat],
            vec![("axis", Attr::Int(1))],
        );
        let weights: Vec<String> = (0..layer.params.len())
            .map(|s| self.weight(layer, s))
            .collect();
        let output = self.top(index, layer, layer.tops[0]);
        let mut inputs = vec![flat.as_str()];
        inputs.extend(weights.iter().map(String::as_str));
        let attrs = vec![("transB", Attr::Int(i64::from(!p.transpose())))];
        self.graph
            .node("Gemm", &layer.name, &inputs, &[&output], attrs);
        Ok(())
    }

    fn unexact(&self, layer: &LayerSpec, message: String) -> ExportError {
        ExportError::Layer {
            layer: layer.name.clone(),
            kind: layer.proto.r#type().to_string(),
            message,
        }
    }

    fn shape(&self, blob: usize) -> Vec<usize> {
        self.spec.blobs[blob].shape.clone().unwrap_or_default()
    }

    /// The value holding blob `id` now (the spec orders layers so it exists).
    fn bottom(&self, id: usize) -> String {
        self.current[id].clone().unwrap_or_default()
    }

    /// A new value for `top` written by layer `index`: the blob's name when this is its last
    /// write or an Input, else `<layer>/<blob>` (in-place layers write a blob more than once).
    fn top(&mut self, index: usize, layer: &LayerSpec, top: usize) -> String {
        let blob = &self.spec.blobs[top].name;
        let name = if self.spec.outputs.contains(&top) && self.last_writer[top] == Some(index) {
            blob.clone() // reserved in `translate`
        } else if self.last_writer[top] == Some(index) || layer.proto.r#type() == "Input" {
            self.graph.unique_name(blob)
        } else {
            self.graph.unique_name(&format!("{}/{blob}", layer.name))
        };
        self.current[top] = Some(name.clone());
        name
    }

    /// The initializer of the layer's parameter `slot` (weight 0, bias 1), written once
    /// (layers sharing a parameter share it).
    fn weight(&mut self, layer: &LayerSpec, slot: usize) -> String {
        let id = layer.params[slot];
        if let Some(name) = &self.weights[id] {
            return name.clone();
        }
        let info = &self.spec.params[id];
        let what = if slot == 0 { "weight" } else { "bias" };
        let owner = &self.spec.layers[info.owner.0].name;
        let name = self.graph.unique_name(&format!("{owner}/{what}"));
        self.graph.initializer(&name, &info.shape, self.params[id]);
        self.weights[id] = Some(name.clone());
        name
    }
}

/// A node's name: the layer's, with the bottom's index when a layer makes several nodes.
fn node_name(layer: &LayerSpec, k: usize) -> String {
    if layer.bottoms.len() > 1 {
        format!("{}/{k}", layer.name)
    } else {
        layer.name.clone()
    }
}
