//! `siamese export` end to end: Caffe's siamese deploy net with weights saved by siamese
//! becomes an ONNX model; a train/test net is refused with the layer named, leaving no file.

mod support;

use prost::Message;
use siamese_proto::onnx::ModelProto;
use support::{arg, deploy_model, one_line_error, random_weights, siamese, success};

#[test]
fn writes_the_deploy_net_as_onnx_and_names_unsupported_layers() {
    let Some(model) = deploy_model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("w.caffemodel");
    random_weights(&model, &weights);
    let out = dir.path().join("siamese.onnx");
    let export = |model: &std::path::Path| {
        siamese(&[
            "export",
            "--model",
            &arg(model),
            "--weights",
            &arg(&weights),
            "--out",
            &arg(&out),
        ])
    };
    let run = export(&model);
    success(&run);
    let said = String::from_utf8_lossy(&run.stderr);
    assert!(
        said.contains("(ONNX opset 13; input \"data\" [N, 1, 28, 28]; output \"feat\" [N, 2])"),
        "{said}"
    );
    let m = ModelProto::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let graph = m.graph.unwrap();
    assert_eq!(graph.output[0].name(), "feat");
    assert_eq!(
        graph.initializer.len(),
        10,
        "weights and biases of conv1, conv2, ip1, ip2, feat"
    );
    std::fs::remove_file(&out).unwrap();

    let train = model.with_file_name("mnist_siamese_train_test.prototxt");
    let err = one_line_error(&export(&train));
    assert!(
        err.contains("(Data): not supported by ONNX export"),
        "{err}"
    );
    assert!(!out.exists());
}
