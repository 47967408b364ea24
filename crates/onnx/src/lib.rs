//! siamese-onnx: a Caffe deploy net (its checked `NetSpec`) and trained weights as a standard
//! ONNX model (opset 13), every translated layer with Caffe's semantics.
//!
//! The model's inputs are the net's Input tops (`data`: float32 `[N, C, H, W]`, N dynamic),
//! taking pixels as the deploy net does (already scaled; Caffe's MNIST nets: byte × 1/256).
//! Its outputs are named after the net's output blobs (`feat` for the siamese deploy net).

mod error;
mod graph;
mod layers;
mod settings;

use prost::Message;
use siamese_net::NetSpec;
use siamese_proto::onnx::{ModelProto, OperatorSetIdProto, StringStringEntryProto};

pub use error::ExportError;
pub use graph::BATCH;

/// The ONNX operator set the models use (Softmax along one axis, as Caffe's, needs 13).
pub const OPSET: i64 = 13;
/// The ONNX IR version that goes with opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;

/// The Caffe layer types export translates; any other is an [`ExportError::Unsupported`].
pub const SUPPORTED_TYPES: &[&str] = &[
    "Input",
    "Convolution",
    "Pooling",
    "InnerProduct",
    "ReLU",
    "Softmax",
    "Dropout",
    "Split",
];

/// The ONNX model of `spec` (built for the TEST phase) with `params[i]` the values of
/// `spec.params[i]`.
pub fn export(spec: &NetSpec, params: &[&[f32]]) -> Result<ModelProto, ExportError> {
    check_supported(spec)?;
    check_params(spec, params)?;
    let graph = layers::translate(spec, params)?;
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("siamese".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "Caffe net \"{}\". Inputs take pixels as the deploy net does: already scaled \
             (Caffe's MNIST nets: byte x 0.00390625).",
            spec.name
        )),
        metadata_props: vec![StringStringEntryProto {
            key: Some("caffe_net".into()),
            value: Some(spec.name.clone()),
        }],
        graph: Some(graph),
        ..Default::default()
    })
}

/// [`export`], encoded as the bytes of a `.onnx` file.
pub fn export_bytes(spec: &NetSpec, params: &[&[f32]]) -> Result<Vec<u8>, ExportError> {
    Ok(export(spec, params)?.encode_to_vec())
}

/// Ok when every layer of `spec` has a translation, else the error naming the first that has
/// none (front ends call it before loading weights).
pub fn check_supported(spec: &NetSpec) -> Result<(), ExportError> {
    match spec
        .layers
        .iter()
        .find(|l| !SUPPORTED_TYPES.contains(&l.proto.r#type()))
    {
        Some(l) => Err(ExportError::Unsupported {
            layer: l.name.clone(),
            kind: l.proto.r#type().to_string(),
        }),
        None => Ok(()),
    }
}

fn check_params(spec: &NetSpec, params: &[&[f32]]) -> Result<(), ExportError> {
    let fail = |message: String| ExportError::Net {
        net: spec.name.clone(),
        message,
    };
    if params.len() != spec.params.len() {
        return Err(fail(format!(
            "{} parameter blobs given, the net has {}",
            params.len(),
            spec.params.len()
        )));
    }
    if let Some(b) = spec.blobs.iter().find(|b| b.shape.is_none()) {
        return Err(fail(format!("the shape of blob \"{}\" is unknown", b.name)));
    }
    for (info, values) in spec.params.iter().zip(params) {
        if info.count() != Some(values.len()) {
            return Err(fail(format!(
                "parameter {} of layer \"{}\": {} values, its shape {:?} holds {:?}",
                info.display_name,
                spec.layers[info.owner.0].name,
                values.len(),
                info.shape,
                info.count()
            )));
        }
    }
    Ok(())
}
