//! Fuzzes ONNX export: any text as a deploy net (batch capped to 1, as `siamese export` does),
//! checked, then exported with made-up weights of the right sizes; the model must decode back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use siamese_net::NetSpec;
use siamese_proto::Phase;
use siamese_proto::onnx::ModelProto;

/// Weights beyond this many values are skipped: the fuzzer looks for logic errors, not memory.
const MAX_WEIGHTS: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut param) = siamese_net::parse::parse_net_text(text, "fuzz.prototxt") else {
        return;
    };
    siamese_layers::embed::cap_input_batch(&mut param, 1);
    let Ok(spec) = NetSpec::build(&param, Phase::Test, None) else {
        return;
    };
    if let Err(e) = siamese_onnx::check_supported(&spec) {
        assert!(!e.to_string().contains('\n'), "{e}");
        return;
    }
    let sizes: Option<Vec<usize>> = spec
        .params
        .iter()
        .map(|p| p.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)))
        .collect();
    let Some(sizes) = sizes else {
        return;
    };
    if sizes
        .iter()
        .try_fold(0usize, |n, &s| n.checked_add(s))
        .is_none_or(|n| n > MAX_WEIGHTS)
    {
        return;
    }
    let values: Vec<Vec<f32>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| ((i + j) % 7) as f32 * 0.25 - 0.5).collect())
        .collect();
    let params: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
    match siamese_onnx::export_bytes(&spec, &params) {
        Ok(bytes) => {
            let model = ModelProto::decode(bytes.as_slice()).expect("an exported model decodes");
            assert!(model.graph.is_some(), "an exported model has a graph");
        }
        Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
    }
});
