//! Fuzzes `.caffemodel` decoding and loading into this project's siamese deploy net (batch 1):
//! any bytes must either load (then a forward pass runs) or give an error.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use siamese_layers::Net;
use siamese_proto::{NetParameter, Phase};

fn deploy_net() -> Net {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../experiments/siamese/mnist_siamese.prototxt"
    );
    let mut param = siamese_net::load_net(std::path::Path::new(path)).expect("deploy net parses");
    // One digit instead of 10,000: the weights are the same, the blobs small.
    let input = param.layer[0]
        .input_param
        .as_mut()
        .expect("Input layer first");
    input.shape[0].dim[0] = 1;
    let spec = siamese_net::NetSpec::build(&param, Phase::Test, None).expect("deploy net builds");
    Net::new(&spec, 1).expect("deploy net constructs")
}

thread_local! {
    static NET: RefCell<Net> = RefCell::new(deploy_net());
}

fuzz_target!(|data: &[u8]| {
    let Ok(param) = NetParameter::decode(data) else {
        return;
    };
    NET.with_borrow_mut(|net| {
        if net.load_proto(&param).is_ok() {
            let _ = net.forward();
            let _ = net.to_proto();
        }
    });
});
