//! Bad nets give one clear error naming the layers, blobs and shapes involved; phase rules
//! pick Caffe's layers; and no input, however mangled, makes the crate panic.

use proptest::prelude::*;
use siamese_net::{LayerKind, NetError, NetSpec, parse::parse_net_text};
use siamese_proto::Phase;

const INPUT: &str = "layer { name: \"in\" type: \"Input\" top: \"x\" input_param { shape { dim: 4 dim: 1 dim: 8 dim: 8 } } }\n";

fn build(layers: &str) -> Result<NetSpec, NetError> {
    let param = parse_net_text(&format!("name: \"t\"\n{INPUT}{layers}"), "t.prototxt")?;
    NetSpec::build(&param, Phase::Train, None)
}

/// `build(layers)` fails with a message containing every piece of `expect`.
fn check(layers: &str, expect: &[&str]) {
    let e = build(layers).expect_err("expected an error").to_string();
    for piece in expect {
        assert!(e.contains(piece), "{e}\n  does not contain: {piece}");
    }
}

fn conv(name: &str, bottom: &str, top: &str, out: u32, kernel: u32, w: &str) -> String {
    format!(
        "layer {{ name: \"{name}\" type: \"Convolution\" bottom: \"{bottom}\" top: \"{top}\" \
         param {{ name: \"{w}\" }} convolution_param {{ num_output: {out} kernel_size: {kernel} }} }}\n"
    )
}

#[test]
fn missing_bottom_names_layer_and_blob() {
    check(
        &conv("c", "y", "z", 2, 3, "w"),
        &["layer 'c'", "bottom 'y'", "TRAIN", "available: x"],
    );
}

#[test]
fn duplicate_top_names_both_layers() {
    let text = conv("c1", "x", "z", 2, 3, "w1") + &conv("c2", "x", "z", 2, 3, "w2");
    check(&text, &["layer 'c2'", "top 'z'", "layer 'c1'"]);
}

#[test]
fn shared_param_with_other_shape_names_layers_and_shapes() {
    let text = conv("c1", "x", "a", 2, 3, "w") + &conv("c2", "x", "b", 2, 5, "w");
    check(
        &text,
        &[
            "shared parameter 'w'",
            "'c1'",
            "[2, 1, 3, 3]",
            "'c2'",
            "[2, 1, 5, 5]",
        ],
    );
}

/// Found by the onnx_export fuzz target: this used to index past the built layers and panic.
#[test]
fn a_layer_sharing_a_param_with_itself_names_it() {
    let text = "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" \
                param { name: \"w\" } param { name: \"w\" } inner_product_param { num_output: 3 } }\n";
    check(text, &["shared parameter 'w'", "'ip'", "[3, 64]", "[3]"]);
}

#[test]
fn shared_param_with_other_lr_mult_is_an_error() {
    let text = "layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" param { name: \"w\" lr_mult: 1 } inner_product_param { num_output: 2 } }\n\
                layer { name: \"b\" type: \"InnerProduct\" bottom: \"x\" top: \"b\" param { name: \"w\" lr_mult: 3 } inner_product_param { num_output: 2 } }";
    check(text, &["shared parameter 'w'", "layer 'b'", "lr_mult 3"]);
}

#[test]
fn shape_that_does_not_fit_names_layer_and_shape() {
    check(
        &conv("big", "x", "z", 2, 9, "w"),
        &["layer 'big' (Convolution)", "[4, 1, 8, 8]"],
    );
}

#[test]
fn unknown_type_lists_supported_types() {
    check(
        "layer { name: \"l\" type: \"LRN\" bottom: \"x\" top: \"y\" }",
        &["layer 'l'", "'LRN'", "Convolution", "SoftmaxWithLoss"],
    );
}

#[test]
fn too_many_param_specs() {
    check(
        "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"x\" param { lr_mult: 1 } }",
        &["layer 'r' (ReLU)", "1 param specs", "0 parameter blob"],
    );
}

#[test]
fn include_and_exclude_together_is_an_error() {
    check(
        "layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"x\" include { phase: TRAIN } exclude { phase: TEST } }",
        &["layer 'r'", "not both"],
    );
}

#[test]
fn phase_rules_follow_caffe() {
    let text = "layer { name: \"tr\" type: \"ReLU\" bottom: \"x\" top: \"x\" include { phase: TRAIN } }\n\
                layer { name: \"te\" type: \"ReLU\" bottom: \"x\" top: \"x\" include { phase: TEST } }\n\
                layer { name: \"nte\" type: \"ReLU\" bottom: \"x\" top: \"x\" exclude { phase: TEST } }\n\
                layer { name: \"stage\" type: \"ReLU\" bottom: \"x\" top: \"x\" include { stage: \"deploy\" } }\n\
                layer { name: \"lvl\" type: \"ReLU\" bottom: \"x\" top: \"x\" include { min_level: 1 } }";
    let param = parse_net_text(&format!("{INPUT}{text}"), "t").unwrap();
    let names = |phase| -> Vec<String> {
        NetSpec::build(&param, phase, None)
            .unwrap()
            .layers
            .into_iter()
            .map(|l| l.name)
            .collect()
    };
    assert_eq!(names(Phase::Train), ["in", "tr", "nte"]);
    assert_eq!(names(Phase::Test), ["in", "te"]);
}

#[test]
fn splits_and_loss_weights_follow_caffe() {
    let text = "layer { name: \"ip\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" inner_product_param { num_output: 2 } loss_weight: 0.5 }\n\
                layer { name: \"l\" type: \"EuclideanLoss\" bottom: \"y\" bottom: \"y\" top: \"loss\" }";
    let net = build(text).unwrap();
    let split = &net.layers[2];
    assert_eq!(
        (split.name.as_str(), split.kind()),
        ("y_ip_0_split", LayerKind::Split)
    );
    let tops: Vec<_> = split
        .tops
        .iter()
        .map(|&t| net.blobs[t].name.as_str())
        .collect();
    assert_eq!(tops, ["y_ip_0_split_0", "y_ip_0_split_1", "y_ip_0_split_2"]);
    // The loss weight moves to the split's first top; the readers get the others.
    assert_eq!(split.loss_weights, [0.5, 0.0, 0.0]);
    assert_eq!(net.layers[1].loss_weights, [0.0]);
    let loss = &net.layers[3];
    let bottoms: Vec<_> = loss
        .bottoms
        .iter()
        .map(|&b| net.blobs[b].name.as_str())
        .collect();
    assert_eq!(bottoms, ["y_ip_0_split_1", "y_ip_0_split_2"]);
    assert_eq!(loss.loss_weights, [1.0]);
    assert_eq!(net.blobs[loss.tops[0]].shape, Some(vec![]));
    let names: Vec<_> = net
        .outputs
        .iter()
        .map(|&b| net.blobs[b].name.as_str())
        .collect();
    assert_eq!(names, ["y_ip_0_split_0", "loss"]);
}

#[test]
fn in_place_layers_share_the_blob() {
    let net = build("layer { name: \"r\" type: \"ReLU\" bottom: \"x\" top: \"x\" }\nlayer { name: \"d\" type: \"Dropout\" bottom: \"x\" top: \"x\" }").unwrap();
    assert_eq!(net.blobs.len(), 1);
    assert_eq!(net.layers[1].tops, net.layers[1].bottoms);
    assert_eq!(net.outputs, [0]);
}

#[test]
fn permissive_sharing_checks_counts_only() {
    let a = "layer { name: \"a\" type: \"InnerProduct\" bottom: \"x\" top: \"a\" param { name: \"w\" } inner_product_param { num_output: 4 bias_term: false } }\n";
    let b = "layer { name: \"b\" type: \"InnerProduct\" bottom: \"x\" top: \"b\" param { name: \"w\" share_mode: PERMISSIVE } inner_product_param { num_output: 4 transpose: true bias_term: false } }";
    let c = "layer { name: \"b\" type: \"InnerProduct\" bottom: \"x\" top: \"b\" param { name: \"w\" share_mode: PERMISSIVE } inner_product_param { num_output: 5 bias_term: false } }";
    let net = build(&format!("{a}{b}")).unwrap();
    assert_eq!(net.params.len(), 1);
    // Layer 1 is the Split that Caffe inserts for the two readers of x.
    assert_eq!(net.params[0].users, [(2, 0), (3, 0)]);
    check(
        &format!("{a}{c}"),
        &["shared parameter 'w'", "[4, 64]", "[5, 64]"],
    );
}

/// The reference files, for mutation.
fn reference_texts() -> Vec<String> {
    let dirs = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/caffe-reference"
        ),
        "/work/shared/caffe-reference",
    ];
    let dir = dirs
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("Caffe's reference files are missing; looked in {dirs:?}"));
    [
        "v2/mnist_siamese_train_test.prototxt",
        "v2/lenet_train_test.prototxt",
        "v1-2014/mnist_siamese_train_test.prototxt",
        "v2/mnist_siamese.prototxt",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(dir.join(f)).unwrap())
    .collect()
}

/// Parses and builds in both phases; any outcome but a panic is fine.
fn parse_and_build(text: &str) {
    if let Ok(param) = parse_net_text(text, "fuzz") {
        for phase in [Phase::Train, Phase::Test] {
            if let Ok(net) = NetSpec::build(&param, phase, None) {
                let _ = siamese_net::table::render(&net);
                let _ = siamese_net::dot::render(&net);
            }
        }
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    ":",
    "\"",
    "#",
    "layer",
    "layers",
    "0",
    "-1",
    "4294967296",
    "1e40",
    "MAX",
    "bottom: \"data\"",
    "top: \"data\"",
    "kernel_size: 0",
    "stride: 0",
    "num_output: 0",
    "group: 0",
    "pad: 9",
    "slice_point: 0",
    "axis: -9",
    "dim: -1",
    "dim: 0",
    "type: \"Pooling\"",
    "type: \"Split\"",
    "param { name: \"conv1_w\" }",
    "global_pooling: true",
    "loss_weight: 2",
    "include { phase: TEST }",
    "\u{e9}",
    "\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        parse_and_build(&text);
    }

    #[test]
    fn mutated_reference_files_never_panic(
        file in 0usize..4,
        edits in prop::collection::vec((0.0f64..1.0, 0usize..TOKENS.len(), 0usize..3), 1..6),
    ) {
        let mut text = reference_texts()[file].clone();
        for (at, token, op) in edits {
            let mut i = (at * text.len() as f64) as usize;
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match op {
                0 => text.insert_str(i, TOKENS[token]),
                1 => {
                    let mut end = (i + 1 + token).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(i..end, "");
                }
                _ => {
                    // Replace the number or word at i with a token.
                    let end = text[i..].find(|c: char| c.is_whitespace()).map_or(text.len(), |e| i + e);
                    text.replace_range(i..end, TOKENS[token]);
                }
            }
        }
        parse_and_build(&text);
    }
}
