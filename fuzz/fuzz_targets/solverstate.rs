//! Fuzzes `.solverstate` decoding as `Solver::restore` does it: the SolverState message, its
//! history checked against the deploy net's parameters (one SGD history blob each), and the
//! path of the weights it names.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use siamese_proto::{Phase, SolverState};
use siamese_solver::snapshot::{history_from_state, learned_net_path};

/// Element counts of the deploy net's learnable parameters.
fn counts() -> &'static [usize] {
    static COUNTS: OnceLock<Vec<usize>> = OnceLock::new();
    COUNTS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../experiments/siamese/mnist_siamese.prototxt"
        );
        let mut param = siamese_net::load_net(Path::new(path)).expect("deploy net parses");
        param.layer[0]
            .input_param
            .as_mut()
            .expect("Input layer")
            .shape[0]
            .dim[0] = 1;
        let spec = siamese_net::NetSpec::build(&param, Phase::Test, None).expect("builds");
        let net = siamese_layers::Net::new(&spec, 1).expect("constructs");
        net.learnable_params()
            .iter()
            .map(|p| p.blob.count())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(state) = SolverState::decode(data) else {
        return;
    };
    let path = Path::new("fuzz/s_iter_1.solverstate");
    let _ = history_from_state(path, &state, counts());
    if let Some(learned) = state.learned_net.as_deref() {
        let _ = learned_net_path(path, learned);
    }
});
