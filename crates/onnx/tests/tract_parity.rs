//! The exported models run in tract (a pure-Rust ONNX runtime) and give what siamese's own
//! forward pass gives: Caffe's siamese and LeNet deploy nets on the sample's test digits, and
//! Caffe's pooling windows (rounded up, last one clipped) on small inputs.

use prost::Message;
use siamese_data::idx::read_images;
use siamese_layers::Net;
use siamese_layers::embed::{cap_input_batch, embed_images};
use siamese_net::parse::parse_net_text;
use siamese_net::{NetSpec, load_net};
use siamese_proto::{NetParameter, Phase};
use siamese_testkit::{caffe_reference, sample_dir, seeded_uniform};
use tract_onnx::prelude::*;

/// Test digits run through both (the dev profile runs tract's unoptimised paths slowly).
const DIGITS: usize = 300;
/// The largest difference allowed between tract's outputs and siamese's.
const TOLERANCE: f32 = 1e-5;

/// `param` built for the TEST phase with seeded random weights, and the net holding them.
fn net_with_random_weights(mut param: NetParameter, batch: usize) -> (NetSpec, Net) {
    cap_input_batch(&mut param, batch);
    let spec = NetSpec::build(&param, Phase::Test, None).unwrap();
    let mut net = Net::new(&spec, 0).unwrap();
    for (i, p) in net.learnable_params_mut().iter_mut().enumerate() {
        p.blob.data = seeded_uniform(p.blob.data.len(), 11 + i as u64, 0.1);
    }
    (spec, net)
}

fn export(spec: &NetSpec, net: &Net) -> Vec<u8> {
    let params: Vec<&[f32]> = net
        .learnable_params()
        .iter()
        .map(|p| p.blob.data.as_slice())
        .collect();
    siamese_onnx::export_bytes(spec, &params).unwrap()
}

/// Runs `model` in tract on one input of `shape`.
fn run_tract(model: &[u8], shape: &[usize], input: Vec<f32>) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &model[..])
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let tensor = Tensor::from_shape(shape, &input).unwrap();
    let out = plan.run(tvec!(tensor.into_tvalue())).unwrap();
    let view = out[0].to_plain_array_view::<f32>().unwrap();
    view.iter().copied().collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= TOLERANCE, "{what}: largest difference {worst}");
}

/// The deploy net at `name` exported, then tract against `embed_images` on the test digits,
/// in two batch sizes (the model's batch is dynamic).
fn check_deploy_net(name: &str, output: &str) {
    let Some(model) = caffe_reference(name) else {
        return;
    };
    let (spec, mut net) = net_with_random_weights(load_net(&model).unwrap(), 64);
    let onnx = export(&spec, &net);
    let images = read_images(&sample_dir().join("t10k-images-idx3-ubyte.gz")).unwrap();
    let scale = 0.00390625;
    let want = embed_images(&mut net, &images, DIGITS, scale, 64).unwrap();
    assert_eq!(want.output, output);
    let pixels = images.rows * images.cols;
    for batch in [DIGITS, 7] {
        let input = images.pixels[..batch * pixels]
            .iter()
            .map(|&p| f32::from(p) * scale)
            .collect();
        let got = run_tract(&onnx, &[batch, 1, images.rows, images.cols], input);
        let what = format!("{name}, batch {batch}");
        assert_close(&got, &want.values[..batch * want.dim], &what);
    }
}

#[test]
fn siamese_deploy_net_matches_embed_on_the_test_digits() {
    check_deploy_net("v2/mnist_siamese.prototxt", "feat");
}

#[test]
fn lenet_deploy_net_matches_on_the_test_digits() {
    check_deploy_net("v2/lenet.prototxt", "prob");
}

#[test]
fn model_declares_opset_13_a_dynamic_batch_and_the_output_blob_name() {
    let Some(model) = caffe_reference("v2/mnist_siamese.prototxt") else {
        return;
    };
    let (spec, net) = net_with_random_weights(load_net(&model).unwrap(), 1);
    let m = siamese_proto::onnx::ModelProto::decode(export(&spec, &net).as_slice()).unwrap();
    assert_eq!(m.opset_import[0].version, Some(13));
    let graph = m.graph.unwrap();
    let names = |v: &[siamese_proto::onnx::ValueInfoProto]| -> Vec<String> {
        v.iter().map(|i| i.name().to_string()).collect()
    };
    assert_eq!(
        (names(&graph.input), names(&graph.output)),
        (vec!["data".to_string()], vec!["feat".to_string()])
    );
    let dims = format!("{:?}", graph.input[0].r#type);
    assert!(
        dims.contains("DimParam(\"N\")") && dims.contains("DimValue(28)"),
        "{dims}"
    );
    let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type()).collect();
    assert_eq!(
        ops,
        [
            "Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Gemm", "Relu", "Flatten", "Gemm",
            "Flatten", "Gemm"
        ]
    );
}

/// A net of one Input `[1, 2, size, size]` and one Pooling layer with `pooling`.
fn pooling_net(size: usize, pooling: &str) -> NetParameter {
    let text = format!(
        "name: \"pool\"\nlayer {{ name: \"data\" type: \"Input\" top: \"data\" input_param {{ shape {{ dim: 1 dim: 2 dim: {size} dim: {size} }} }} }}\n\
         layer {{ name: \"pool\" type: \"Pooling\" bottom: \"data\" top: \"out\" pooling_param {{ {pooling} }} }}\n"
    );
    parse_net_text(&text, "pool.prototxt").unwrap()
}

/// Pooling through tract against siamese's own forward pass on random inputs.
fn check_pooling(size: usize, pooling: &str, caffe_side: usize) {
    let (spec, mut net) = net_with_random_weights(pooling_net(size, pooling), 1);
    let out = spec.blob_id("out").unwrap();
    assert_eq!(
        spec.blobs[out].shape.as_deref().unwrap()[2],
        caffe_side,
        "{pooling}"
    );
    let input = seeded_uniform(2 * size * size, size as u64, 1.0);
    net.blob_mut("data").unwrap().data.copy_from_slice(&input);
    net.forward().unwrap();
    let want = net.blob("out").unwrap().data.clone();
    let got = run_tract(&export(&spec, &net), &[1, 2, size, size], input);
    assert_close(&got, &want, &format!("{size}x{size}, {pooling}"));
}

#[test]
fn caffe_pooling_windows_round_up_and_clip_the_last_one() {
    // Rounded up: a last window that overhangs the input.
    check_pooling(6, "pool: MAX kernel_size: 3 stride: 2", 3);
    // Rounded up with padding, the last window inside the end padding.
    check_pooling(7, "pool: MAX kernel_size: 3 stride: 2 pad: 1", 4);
    // Rounded up, then a window that would start in the padding dropped.
    check_pooling(3, "pool: MAX kernel_size: 2 stride: 2 pad: 1", 2);
    // LeNet's own, and averages that count the padding as Caffe does.
    check_pooling(24, "pool: MAX kernel_size: 2 stride: 2", 12);
    check_pooling(7, "pool: AVE kernel_size: 3 stride: 2 pad: 1", 4);
    check_pooling(5, "pool: AVE global_pooling: true", 1);
}

#[test]
fn what_onnx_cannot_express_is_an_error_naming_the_layer() {
    // An average whose last window overhangs the input: Caffe divides by the clipped window.
    let (spec, net) =
        net_with_random_weights(pooling_net(6, "pool: AVE kernel_size: 3 stride: 2"), 1);
    let params: Vec<&[f32]> = net
        .learnable_params()
        .iter()
        .map(|p| p.blob.data.as_slice())
        .collect();
    let e = siamese_onnx::export(&spec, &params)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("layer \"pool\" (Pooling): no ONNX pads give Caffe's 3 windows"),
        "{e}"
    );

    let text = "name: \"s\"\nlayer { name: \"data\" type: \"Input\" top: \"data\" input_param { shape { dim: 1 dim: 4 } } }\n\
                layer { name: \"halves\" type: \"Slice\" bottom: \"data\" top: \"a\" top: \"b\" slice_param { axis: 1 } }\n";
    let (spec, _) = net_with_random_weights(parse_net_text(text, "s.prototxt").unwrap(), 1);
    let e = siamese_onnx::export(&spec, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "layer \"halves\" (Slice): not supported by ONNX export (supported: Input, Convolution,"
        ),
        "{e}"
    );
}

/// Found by the onnx_export fuzz target: a net name with a newline (prototxt's `\n`) made the
/// error two lines.
#[test]
fn names_with_newlines_stay_on_one_line_in_errors() {
    let param = parse_net_text("name: \"two\\nlines\"\n", "s.prototxt").unwrap();
    let spec = NetSpec::build(&param, siamese_proto::Phase::Test, None).unwrap();
    let message = siamese_onnx::export(&spec, &[]).unwrap_err().to_string();
    assert_eq!(
        message,
        "net \"two\\nlines\": no Input layer (export takes a deploy net, e.g. mnist_siamese.prototxt)"
    );
    assert!(!message.contains('\n'), "{message}");
}
