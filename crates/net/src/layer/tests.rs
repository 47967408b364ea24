//! The shape rules of every layer family, each case one line through `check`/`check_err`.

use super::*;
use crate::parse::parse_net_text;
use crate::shape::Shape;

type Shapes = Vec<Option<Shape>>;

/// Runs the rule of the single layer in `text` on `bottoms`; `Ok(tops, params)` or the error.
fn run(text: &str, bottoms: &[Option<Shape>]) -> Result<(Shapes, Shapes), String> {
    let net = parse_net_text(text, "t").map_err(|e| e.to_string())?;
    let layer = &net.layer[0];
    LayerConfig::parse(layer)
        .and_then(|c| c.infer(layer.name(), bottoms, layer.top.len(), Some([1, 28, 28])))
        .map(|i| (i.tops, i.params))
        .map_err(|e| e.to_string())
}

fn check(text: &str, bottom: &[usize], expect: &[usize]) {
    let (tops, _) = run(text, &[Some(bottom.to_vec())]).unwrap();
    assert_eq!(tops[0].as_deref(), Some(expect), "{text}");
}

fn check_err(text: &str, bottoms: &[Option<Shape>], expect: &str) {
    let e = run(text, bottoms).unwrap_err();
    assert!(e.contains(expect), "{e}\nexpected to contain: {expect}");
}

#[test]
fn convolution_shapes() {
    let conv = |p: &str| {
        format!(
            "layer {{ name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param {{ {p} }} }}"
        )
    };
    check(
        &conv("num_output: 20 kernel_size: 5"),
        &[64, 1, 28, 28],
        &[64, 20, 24, 24],
    );
    check(
        &conv("num_output: 8 kernel_size: 3 stride: 2 pad: 1"),
        &[2, 3, 7, 7],
        &[2, 8, 4, 4],
    );
    check(
        &conv("num_output: 8 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_w: 2"),
        &[1, 3, 9, 9],
        &[1, 8, 4, 13],
    );
    check(
        &conv("num_output: 4 kernel_size: 3 dilation: 2"),
        &[1, 2, 9, 9],
        &[1, 4, 5, 5],
    );
    let (_, params) = run(
        &conv("num_output: 6 kernel_size: 3 group: 2"),
        &[Some(vec![1, 4, 5, 5])],
    )
    .unwrap();
    assert_eq!(params, [Some(vec![6, 2, 3, 3]), Some(vec![6])]);
    let (_, params) = run(
        &conv("num_output: 6 kernel_size: 3 bias_term: false"),
        &[Some(vec![1, 4, 5, 5])],
    )
    .unwrap();
    assert_eq!(params, [Some(vec![6, 4, 3, 3])]);
    check_err(
        &conv("num_output: 6 kernel_size: 3 group: 4"),
        &[Some(vec![1, 4, 5, 5])],
        "divisible by group 4",
    );
    check_err(
        &conv("num_output: 6 kernel_size: 7"),
        &[Some(vec![1, 4, 5, 5])],
        "does not fit the input [1, 4, 5, 5]",
    );
    check_err(
        &conv("num_output: 6"),
        &[Some(vec![1, 4, 5, 5])],
        "kernel (or kernel_h and kernel_w) is required",
    );
    check_err(
        &conv("num_output: 6 kernel_size: 3 stride: 0"),
        &[Some(vec![1, 4, 5, 5])],
        "must be positive",
    );
    check_err(
        &conv("num_output: 6 kernel_size: 3 stride_h: 2"),
        &[Some(vec![1, 4, 5, 5])],
        "stride [2, 0]",
    );
    check_err(
        &conv("num_output: 6 kernel_size: 3 kernel_h: 2 kernel_w: 2"),
        &[Some(vec![1, 4, 5, 5])],
        "not both",
    );
}

#[test]
fn pooling_rounds_up_and_clips_the_last_window() {
    let pool = |p: &str| {
        format!(
            "layer {{ name: \"p\" type: \"Pooling\" bottom: \"x\" top: \"y\" pooling_param {{ {p} }} }}"
        )
    };
    check(
        &pool("pool: MAX kernel_size: 2 stride: 2"),
        &[64, 20, 24, 24],
        &[64, 20, 12, 12],
    );
    // ceil((5 - 2) / 2) + 1 = 3 (Caffe rounds up).
    check(
        &pool("pool: MAX kernel_size: 2 stride: 2"),
        &[1, 1, 5, 5],
        &[1, 1, 3, 3],
    );
    // With pad 1: ceil((4 + 2 - 3) / 2) + 1 = 3; (3-1)*2 = 4 >= 4 + 1? no, stays 3.
    check(
        &pool("pool: AVE kernel_size: 3 stride: 2 pad: 1"),
        &[1, 1, 4, 4],
        &[1, 1, 3, 3],
    );
    // h=5, k=2, s=2, p=1: ceil(5/2)+1 = 4; (4-1)*2 = 6 >= 5+1: clipped to 3.
    check(
        &pool("pool: MAX kernel_size: 2 stride: 2 pad: 1"),
        &[1, 1, 5, 5],
        &[1, 1, 3, 3],
    );
    check(
        &pool("pool: AVE global_pooling: true"),
        &[2, 3, 7, 5],
        &[2, 3, 1, 1],
    );
    check(
        &pool("kernel_h: 2 kernel_w: 3"),
        &[1, 1, 4, 6],
        &[1, 1, 3, 4],
    );
    check_err(
        &pool("pool: MAX kernel_size: 2 pad: 2"),
        &[Some(vec![1, 1, 5, 5])],
        "smaller than the kernel",
    );
    check_err(
        &pool("pool: MAX kernel_size: 9"),
        &[Some(vec![1, 1, 5, 5])],
        "larger than the padded input [1, 1, 5, 5]",
    );
    check_err(
        &pool("pool: STOCHASTIC kernel_size: 2"),
        &[Some(vec![1, 1, 5, 5])],
        "only MAX and AVE",
    );
    check_err(
        &pool("kernel_size: 2"),
        &[Some(vec![1, 25])],
        "needs a 4-D input, got [1, 25]",
    );
}

#[test]
fn inner_product_flattens_trailing_dims() {
    let ip = |p: &str| {
        format!(
            "layer {{ name: \"i\" type: \"InnerProduct\" bottom: \"x\" top: \"y\" inner_product_param {{ {p} }} }}"
        )
    };
    check(&ip("num_output: 500"), &[64, 50, 4, 4], &[64, 500]);
    check(&ip("num_output: 7 axis: 2"), &[2, 3, 4, 5], &[2, 3, 7]);
    let (_, params) = run(&ip("num_output: 500"), &[Some(vec![64, 50, 4, 4])]).unwrap();
    assert_eq!(params, [Some(vec![500, 800]), Some(vec![500])]);
    let (_, params) = run(
        &ip("num_output: 3 transpose: true bias_term: false"),
        &[Some(vec![2, 5])],
    )
    .unwrap();
    assert_eq!(params, [Some(vec![5, 3])]);
    check_err(
        &ip("num_output: 3 axis: 4"),
        &[Some(vec![2, 5])],
        "axis 4 is out of range",
    );
}

#[test]
fn slice_splits_along_axis() {
    let text = "layer { name: \"s\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" slice_param { slice_dim: 1 slice_point: 1 } }";
    let (tops, _) = run(text, &[Some(vec![64, 2, 28, 28])]).unwrap();
    assert_eq!(tops, [Some(vec![64, 1, 28, 28]), Some(vec![64, 1, 28, 28])]);
    let even =
        "layer { name: \"s\" type: \"Slice\" bottom: \"x\" top: \"a\" top: \"b\" top: \"c\" }";
    let (tops, _) = run(even, &[Some(vec![2, 6])]).unwrap();
    assert_eq!(tops, vec![Some(vec![2, 2]); 3]);
    check_err(
        even,
        &[Some(vec![2, 5])],
        "cannot split axis 1 of [2, 5] (5) evenly into 3 tops",
    );
    check_err(text, &[Some(vec![64, 1, 28, 28])], "must increase strictly");
}

#[test]
fn losses_and_accuracy_are_scalars_with_label_checks() {
    let sm =
        "layer { name: \"l\" type: \"SoftmaxWithLoss\" bottom: \"p\" bottom: \"y\" top: \"loss\" }";
    let (tops, _) = run(sm, &[Some(vec![64, 10]), Some(vec![64])]).unwrap();
    assert_eq!(tops, [Some(vec![])]);
    check_err(
        sm,
        &[Some(vec![64, 10]), Some(vec![32])],
        "labels [32] do not match predictions [64, 10]",
    );
    let acc = "layer { name: \"a\" type: \"Accuracy\" bottom: \"p\" bottom: \"y\" top: \"acc\" top: \"per_class\" }";
    let (tops, _) = run(acc, &[Some(vec![64, 10]), Some(vec![64])]).unwrap();
    assert_eq!(tops, [Some(vec![]), Some(vec![10])]);
    let acc_k = "layer { name: \"a\" type: \"Accuracy\" bottom: \"p\" bottom: \"y\" top: \"acc\" accuracy_param { top_k: 11 } }";
    check_err(
        acc_k,
        &[Some(vec![64, 10]), Some(vec![64])],
        "top_k 11 is more than the 10 classes",
    );
    let c = "layer { name: \"c\" type: \"ContrastiveLoss\" bottom: \"a\" bottom: \"b\" bottom: \"s\" top: \"loss\" }";
    let (tops, _) = run(c, &[Some(vec![64, 2]), Some(vec![64, 2]), Some(vec![64])]).unwrap();
    assert_eq!(tops, [Some(vec![])]);
    check_err(
        c,
        &[Some(vec![64, 2]), Some(vec![64, 3]), Some(vec![64])],
        "[64, 2] vs [64, 3]",
    );
    check_err(
        c,
        &[Some(vec![64, 2]), Some(vec![64, 2]), Some(vec![32])],
        "[32] for features [64, 2]",
    );
    let e =
        "layer { name: \"e\" type: \"EuclideanLoss\" bottom: \"a\" bottom: \"b\" top: \"loss\" }";
    check_err(e, &[Some(vec![4, 2]), Some(vec![4, 3])], "same size");
}

#[test]
fn data_and_input_tops() {
    let d =
        "layer { name: \"d\" type: \"Data\" top: \"x\" top: \"y\" data_param { batch_size: 64 } }";
    let (tops, _) = run(d, &[]).unwrap();
    assert_eq!(tops, [Some(vec![64, 1, 28, 28]), Some(vec![64])]);
    check_err(
        "layer { name: \"d\" type: \"Data\" top: \"x\" }",
        &[],
        "batch_size must be positive",
    );
    let i = "layer { name: \"i\" type: \"Input\" top: \"a\" top: \"b\" input_param { shape { dim: 2 dim: 3 } } }";
    let (tops, _) = run(i, &[]).unwrap();
    assert_eq!(tops, [Some(vec![2, 3]), Some(vec![2, 3])]);
    check_err(
        "layer { name: \"i\" type: \"Input\" top: \"a\" input_param { shape { dim: -2 } } }",
        &[],
        "negative dimension -2",
    );
}

#[test]
fn unknown_type_lists_supported_ones() {
    check_err(
        "layer { name: \"x\" type: \"LSTM\" }",
        &[],
        "unknown layer type 'LSTM'; supported types: Accuracy, ContrastiveLoss",
    );
}

#[test]
fn unknown_inputs_give_unknown_tops() {
    let conv = "layer { name: \"c\" type: \"Convolution\" bottom: \"x\" top: \"y\" convolution_param { num_output: 3 kernel_size: 2 } }";
    let (tops, params) = run(conv, &[None]).unwrap();
    assert_eq!(tops, [None]);
    assert_eq!(params, [None, Some(vec![3])]);
}

#[test]
fn kinds_are_caffe_type_names_in_order() {
    let names = LayerKind::names();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), 14);
    for &kind in LayerKind::ALL {
        assert_eq!(LayerKind::from_name(kind.name()), Some(kind));
        assert_eq!(kind.to_string(), kind.name());
    }
    assert_eq!(LayerKind::from_name("LSTM"), None);
}
