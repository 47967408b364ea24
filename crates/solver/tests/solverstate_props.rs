//! Property tests: whatever a `.solverstate` holds (random bytes, damaged snapshots, any
//! iteration, history and `learned_net`), resuming from it restores the solver or gives a
//! one-line error naming a file, never a panic; a restored solver trains on.
//! (The same decoding is fuzzed by `fuzz/fuzz_targets/solverstate.rs`.)

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use siamese_proto::{BlobProto, BlobShape, Datum, Message, SolverState};
use siamese_solver::solver::Solver;

struct Fixture {
    dir: tempfile::TempDir,
    solver: Solver,
    /// A snapshot written by the solver itself: (solverstate bytes, caffemodel path).
    good: (Vec<u8>, PathBuf),
}

/// A tiny net (4 inputs -> 2 -> 1, momentum SGD) over 8 records, snapshotted at iteration 2.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let records = (0..8u8).map(|i| {
        let datum = Datum {
            channels: Some(1),
            height: Some(2),
            width: Some(2),
            data: Some(vec![i, 2 * i, 3 * i, 4 * i]),
            label: Some(i32::from(i % 3)),
            ..Default::default()
        };
        (format!("{i:08}"), datum)
    });
    siamese_data::leveldb::write_datums(&db, records, false).unwrap();
    let net = format!(
        "name: \"t\" layer {{ name: \"data\" type: \"Data\" top: \"data\" top: \"label\" \
         data_param {{ source: \"{}\" batch_size: 3 }} }} \
         layer {{ name: \"ip1\" type: \"InnerProduct\" bottom: \"data\" top: \"ip1\" \
         inner_product_param {{ num_output: 2 weight_filler {{ type: \"xavier\" }} }} }} \
         layer {{ name: \"ip2\" type: \"InnerProduct\" bottom: \"ip1\" top: \"ip2\" \
         inner_product_param {{ num_output: 1 }} }} \
         layer {{ name: \"loss\" type: \"EuclideanLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }}",
        db.display()
    );
    let prefix = dir.path().join("s");
    let solver_text = format!(
        "net_param {{ {net} }} base_lr: 0.01 momentum: 0.9 lr_policy: \"step\" gamma: 0.5 \
         stepsize: 2 max_iter: 2 snapshot_prefix: \"{}\" random_seed: 3 test_interval: 0",
        prefix.display()
    );
    let param = siamese_net::parse::parse_solver_text(&solver_text, "s.prototxt").unwrap();
    let mut solver = Solver::new(param, None).unwrap();
    solver.solve(&mut |_| {}).unwrap();
    let state = solver
        .last_snapshot()
        .expect("a final snapshot")
        .to_path_buf();
    let good = (
        std::fs::read(&state).unwrap(),
        state.with_extension("caffemodel"),
    );
    Fixture { dir, solver, good }
}

thread_local! {
    static FIXTURE: RefCell<Fixture> = RefCell::new(fixture());
}

/// Restores from `bytes` written as a solverstate; a success then trains one iteration.
fn restore(bytes: &[u8]) -> Result<(), String> {
    FIXTURE.with_borrow_mut(|f| {
        let path = f.dir.path().join("x.solverstate");
        std::fs::write(&path, bytes).unwrap();
        match f.solver.restore(&path) {
            Ok(()) => {
                let iter = f.solver.iter();
                f.solver.step(1, &mut |_| {}).map_err(|e| e.to_string())?;
                assert!(f.solver.iter() == iter.saturating_add(1));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{msg:?}");
                assert!(msg.starts_with(f.dir.path().to_str().unwrap()), "{msg}");
                Err(msg)
            }
        }
    })
}

fn good() -> (Vec<u8>, PathBuf) {
    FIXTURE.with_borrow(|f| f.good.clone())
}

fn history() -> impl Strategy<Value = Vec<BlobProto>> {
    // The net has 4 parameters of 8, 2, 2 and 1 values: right counts are likely.
    let blob = (
        prop_oneof![Just(8usize), Just(2), Just(1), 0usize..10],
        any::<bool>(),
    )
        .prop_map(|(n, double)| BlobProto {
            shape: Some(BlobShape {
                dim: vec![n as i64],
            }),
            data: if double { vec![] } else { vec![0.1; n] },
            double_data: if double { vec![0.1; n] } else { vec![] },
            ..Default::default()
        });
    prop::collection::vec(blob, 3..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = restore(&bytes);
    }

    #[test]
    fn damaged_snapshots_never_panic(
        cut in 0.0f64..1.2,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
    ) {
        let mut bytes = good().0;
        for (at, xor) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= xor;
        }
        bytes.truncate((cut.min(1.0) * bytes.len() as f64) as usize);
        let _ = restore(&bytes);
    }

    #[test]
    fn any_state_restores_or_names_the_problem(
        iter in prop_oneof![Just(0), Just(2), Just(-1), Just(i32::MAX), any::<i32>()],
        current_step in prop_oneof![Just(0), Just(1), Just(-3), any::<i32>()],
        learned in 0usize..4,
        history in history(),
        good_history in any::<bool>(),
    ) {
        let (bytes, model) = good();
        let history = if good_history {
            SolverState::decode(bytes.as_slice()).unwrap().history
        } else {
            history
        };
        let learned_net = match learned {
            0 => None,
            1 => Some(model.display().to_string()),
            2 => Some("/nonexistent/x.caffemodel".to_string()),
            _ => Some(Path::new(&model).with_file_name("x.solverstate").display().to_string()),
        };
        let state = SolverState {
            iter: Some(iter),
            learned_net,
            history,
            current_step: Some(current_step),
        };
        let _ = restore(&state.encode_to_vec());
    }
}

#[test]
fn the_solvers_own_snapshot_restores_and_a_negative_iteration_does_not() {
    let (bytes, _) = good();
    restore(&bytes).unwrap();
    let mut state = SolverState::decode(bytes.as_slice()).unwrap();
    state.iter = Some(-4);
    let err = restore(&state.encode_to_vec()).unwrap_err();
    assert!(
        err.ends_with("iter -4 and current_step 0, expected counts of at least 0"),
        "{err}"
    );
}
