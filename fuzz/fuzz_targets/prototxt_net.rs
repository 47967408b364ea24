//! Fuzzes the net prototxt reader: any text is parsed (either syntax, V1 upgrade) and, when it
//! parses, checked into a NetSpec for both phases. Every outcome must be Ok or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siamese_net::NetSpec;
use siamese_proto::Phase;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(param) = siamese_net::parse::parse_net_text(text, "fuzz.prototxt") {
        for phase in [Phase::Train, Phase::Test] {
            if let Ok(spec) = NetSpec::build(&param, phase, None) {
                let _ = spec.require_shapes();
                let _ = spec.param_count();
                let _ = siamese_net::table::render(&spec);
                let _ = siamese_net::dot::render(&spec);
            }
        }
    }
});
