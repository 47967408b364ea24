//! Building an ONNX graph: nodes with attributes, float initializers, typed inputs and
//! outputs with a dynamic batch, and unique value names.

use std::collections::HashSet;

use siamese_proto::onnx::{
    AttributeProto, GraphProto, NodeProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto, attribute_proto::AttributeType, tensor_proto::DataType,
    tensor_shape_proto::Dimension, tensor_shape_proto::dimension, type_proto,
};

/// The symbolic name of the batch dimension of the inputs and outputs.
pub const BATCH: &str = "N";

/// An attribute value of a node.
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

/// A graph under construction.
#[derive(Default)]
pub struct Graph {
    pub proto: GraphProto,
    names: HashSet<String>,
}

impl Graph {
    /// `wanted` if no value has that name yet, else `wanted_2`, `wanted_3`, ….
    pub fn unique_name(&mut self, wanted: &str) -> String {
        let mut name = wanted.to_string();
        let mut k = 2;
        while self.names.contains(&name) {
            name = format!("{wanted}_{k}");
            k += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// Adds a node `op` named `name` from `inputs` to `outputs`.
    pub fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) {
        self.proto.node.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(name.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs.into_iter().map(|(n, a)| attribute(n, a)).collect(),
            ..Default::default()
        });
    }

    /// Adds a float32 initializer `name` of `dims` holding `values` (little-endian raw data).
    pub fn initializer(&mut self, name: &str, dims: &[usize], values: &[f32]) {
        self.proto.initializer.push(TensorProto {
            name: Some(name.into()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
    }

    /// A float32 graph input of `shape`, its first dimension the dynamic batch.
    pub fn input(&mut self, name: &str, shape: &[usize]) {
        self.proto.input.push(value_info(name, shape));
    }

    /// A float32 graph output of `shape`, its first dimension the dynamic batch.
    pub fn output(&mut self, name: &str, shape: &[usize]) {
        self.proto.output.push(value_info(name, shape));
    }
}

fn attribute(name: &str, value: Attr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.into()),
        ..Default::default()
    };
    match value {
        Attr::Int(i) => {
            a.r#type = Some(AttributeType::Int as i32);
            a.i = Some(i);
        }
        Attr::Ints(v) => {
            a.r#type = Some(AttributeType::Ints as i32);
            a.ints = v;
        }
        Attr::Float(f) => {
            a.r#type = Some(AttributeType::Float as i32);
            a.f = Some(f);
        }
    }
    a
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| Dimension {
            value: Some(if i == 0 {
                dimension::Value::DimParam(BATCH.into())
            } else {
                dimension::Value::DimValue(d as i64)
            }),
            ..Default::default()
        })
        .collect();
    let tensor = type_proto::Tensor {
        elem_type: Some(DataType::Float as i32),
        shape: Some(TensorShapeProto { dim }),
    };
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(tensor)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
