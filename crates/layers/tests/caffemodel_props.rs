//! Property tests: whatever bytes are given as a `.caffemodel` for this project's siamese deploy
//! net, loading them gives the weights or a one-line error naming the file, never a panic.
//! (The same entry point is fuzzed by `fuzz/fuzz_targets/caffemodel.rs`.)

use std::cell::RefCell;
use std::path::Path;

use proptest::prelude::*;
use prost::Message;
use siamese_layers::Net;
use siamese_net::{NetSpec, load_net};
use siamese_proto::{BlobProto, BlobShape, LayerParameter, NetParameter, Phase, V1LayerParameter};

/// The deploy net with a batch of one digit (the weights are those of the full net).
fn deploy_net() -> Net {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments/siamese/mnist_siamese.prototxt");
    let mut param = load_net(&path).unwrap();
    param.layer[0].input_param.as_mut().unwrap().shape[0].dim[0] = 1;
    let spec = NetSpec::build(&param, Phase::Test, None).unwrap();
    Net::new(&spec, 7).unwrap()
}

thread_local! {
    static NET: RefCell<Net> = RefCell::new(deploy_net());
    /// The deploy net's own weights, encoded as a `.caffemodel`.
    static GOOD: Vec<u8> = deploy_net().to_proto().encode_to_vec();
}

/// Writes `bytes` as a file and loads it into the deploy net; a success runs a forward pass.
fn load(bytes: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.caffemodel");
    std::fs::write(&path, bytes).unwrap();
    NET.with_borrow_mut(|net| match net.load_caffemodel(&path) {
        Ok(()) => {
            net.forward().map_err(|e| format!("forward: {e}"))?;
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with(&path.display().to_string()),
                "error does not name the file: {msg}"
            );
            assert!(!msg.contains('\n'), "error is not one line: {msg}");
            Err(msg)
        }
    })
}

const NAMES: &[&str] = &["conv1", "conv2", "ip1", "ip2", "feat", "pool1", "other"];

/// A blob with a modern or legacy shape whose data length is right or not.
fn blob() -> impl Strategy<Value = BlobProto> {
    (
        prop::collection::vec(-2i64..12, 0..5),
        any::<bool>(),
        prop_oneof![Just(None), (0usize..40).prop_map(Some)],
        any::<bool>(),
    )
        .prop_map(|(dims, legacy, len, double)| {
            let count: i64 = dims.iter().map(|&d| d.max(0)).product();
            let len = len.unwrap_or(count as usize);
            let mut p = BlobProto::default();
            if legacy {
                let get = |i: usize| dims.get(i).map(|&d| d as i32);
                (p.num, p.channels, p.height, p.width) = (get(0), get(1), get(2), get(3));
            } else {
                p.shape = Some(BlobShape { dim: dims });
            }
            if double {
                p.double_data = vec![0.5; len];
            } else {
                p.data = vec![f32::NAN; len];
            }
            p
        })
}

/// A NetParameter naming the deploy net's layers (or others), V2 `layer` or V1 `layers`.
fn net_parameter() -> impl Strategy<Value = NetParameter> {
    let layer = (
        0..NAMES.len(),
        prop::collection::vec(blob(), 0..3),
        any::<bool>(),
    );
    (prop::collection::vec(layer, 0..4), any::<bool>()).prop_map(|(layers, v1)| {
        let mut p = NetParameter::default();
        for (name, blobs, conv) in layers {
            let name = Some(NAMES[name].to_string());
            if v1 {
                p.layers.push(V1LayerParameter {
                    name,
                    r#type: Some(if conv { 4 } else { 14 }),
                    blobs,
                    ..Default::default()
                });
            } else {
                p.layer.push(LayerParameter {
                    name,
                    blobs,
                    ..Default::default()
                });
            }
        }
        p
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = load(&bytes);
    }

    #[test]
    fn damaged_good_files_never_panic(
        cut in 0.0f64..1.0,
        flips in prop::collection::vec((0.0f64..1.0, 1u8..=255), 0..8),
    ) {
        let mut bytes = GOOD.with(Clone::clone);
        for (at, xor) in flips {
            let i = (at * bytes.len() as f64) as usize;
            bytes[i] ^= xor;
        }
        bytes.truncate(((cut * 1.2).min(1.0) * bytes.len() as f64) as usize);
        let _ = load(&bytes);
    }

    #[test]
    fn structured_weights_load_or_name_the_problem(param in net_parameter()) {
        let _ = load(&param.encode_to_vec());
    }
}

#[test]
fn the_good_file_loads() {
    load(&GOOD.with(Clone::clone)).unwrap();
    let err = load(&GOOD.with(|g| g[..g.len() / 2].to_vec())).unwrap_err();
    assert!(err.contains("not a binary NetParameter"), "{err}");
}
