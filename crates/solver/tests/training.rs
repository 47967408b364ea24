//! End-to-end solver runs on a tiny regression net over a LevelDB made here: determinism,
//! resume equals an uninterrupted run, stop/snapshot requests, NaN stop, iter_size.

use std::path::{Path, PathBuf};

use siamese_layers::{Device, probe_gpu};
use siamese_proto::{Message, NetParameter, SolverParameter};
use siamese_solver::snapshot::read_solver_state;
use siamese_solver::solver::{Solver, SolverEvent};
use siamese_solver::{DeviceChoice, SolverControl, SolverError};

/// 24 records of 2×2 pixels; the label is a smooth function of the pixels.
fn write_db(dir: &Path) -> PathBuf {
    siamese_testkit::write_db(
        &dir.join("train_db"),
        siamese_testkit::ramp_datums(24, 1, |px| (px[0] as i32 + px[3] as i32) / 64),
    )
}

fn net_text(db: &Path, batch: u32) -> String {
    format!(
        r#"name: "tiny"
layer {{ name: "data" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.00390625 }}
  data_param {{ source: "{}" batch_size: {batch} backend: LEVELDB }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  param {{ lr_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
  inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param {{ num_output: 1 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"#,
        db.display()
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    solver_file: PathBuf,
    prefix: String,
}

/// Writes the DB, the net and a solver file with `extra` settings appended.
fn setup(extra: &str, batch: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = write_db(dir.path());
    std::fs::write(dir.path().join("net.prototxt"), net_text(&db, batch)).unwrap();
    let prefix = dir.path().join("snaps").join("tiny").display().to_string();
    std::fs::create_dir(dir.path().join("snaps")).unwrap();
    let solver = format!(
        "net: \"{}\"\ntest_iter: 2\ntest_interval: 5\nbase_lr: 0.05\nmomentum: 0.9\n\
         weight_decay: 0.001\nlr_policy: \"multistep\"\ngamma: 0.5\nstepvalue: 3\nstepvalue: 6\n\
         stepvalue: 9\ndisplay: 2\nmax_iter: 20\nsnapshot: 10\nsnapshot_prefix: \"{prefix}\"\n\
         random_seed: 7\n{extra}",
        dir.path().join("net.prototxt").display()
    );
    let solver_file = dir.path().join("solver.prototxt");
    std::fs::write(&solver_file, solver).unwrap();
    Setup {
        _dir: dir,
        solver_file,
        prefix,
    }
}

fn solver(s: &Setup, max_iter: i32) -> Solver {
    let mut p: SolverParameter = siamese_net::load_solver(&s.solver_file).unwrap();
    p.max_iter = Some(max_iter);
    Solver::new(p, Some(&s.solver_file)).unwrap()
}

/// (iteration, loss bits) of every trained iteration and (iteration, test loss bits).
type Trace = (Vec<(i32, u32)>, Vec<(i32, u32)>);

fn run(solver: &mut Solver) -> (Trace, Vec<SolverEvent>) {
    let mut events = Vec::new();
    solver.solve(&mut |e| events.push(e.clone())).unwrap();
    let mut trace: Trace = (Vec::new(), Vec::new());
    for e in &events {
        match e {
            SolverEvent::Iteration { iter, loss, .. } => trace.0.push((*iter, loss.to_bits())),
            SolverEvent::Test { iter, outputs, .. } => {
                trace.1.push((*iter, outputs[0].value.to_bits()))
            }
            _ => {}
        }
    }
    (trace, events)
}

#[test]
fn same_seed_gives_bit_identical_losses() {
    let s = setup("", 4);
    let (a, _) = run(&mut solver(&s, 12));
    let (b, _) = run(&mut solver(&s, 12));
    assert_eq!(a.0.len(), 12);
    assert_eq!(a, b);
    // the loss moves: the net is training
    assert_ne!(a.0[0].1, a.0[11].1);
}

fn check_resume(extra: &str) {
    let s = setup(extra, 4);
    let (full, _) = run(&mut solver(&s, 20));

    let mut first = solver(&s, 10);
    let (head, events) = run(&mut first);
    let state_path = PathBuf::from(format!("{}_iter_10.solverstate", s.prefix));
    assert!(events.iter().any(|e| matches!(e, SolverEvent::Snapshot { iter: 10, solverstate, .. } if *solverstate == state_path)));
    let mut resumed = solver(&s, 20);
    resumed.restore(&state_path).unwrap();
    assert_eq!(resumed.iter(), 10);
    let (tail, _) = run(&mut resumed);

    let joined: Vec<_> = head.0.iter().chain(&tail.0).copied().collect();
    assert_eq!(
        joined, full.0,
        "train losses of 0..10 + resumed 10..20 differ from 0..20"
    );
    let tests: Vec<_> = head
        .1
        .iter()
        .filter(|t| t.0 < 10)
        .chain(&tail.1)
        .copied()
        .collect();
    assert_eq!(tests, full.1, "test losses differ");
}

#[test]
fn resumed_sgd_run_equals_uninterrupted_run() {
    check_resume("");
}

#[test]
fn resumed_adam_run_equals_uninterrupted_run() {
    check_resume("type: \"Adam\"\nmomentum2: 0.99\n");
}

#[test]
fn snapshot_files_are_caffe_messages() {
    let s = setup("", 4);
    let mut sv = solver(&s, 10);
    run(&mut sv);
    let state = read_solver_state(Path::new(&format!("{}_iter_10.solverstate", s.prefix))).unwrap();
    assert_eq!(state.iter(), 10);
    assert_eq!(state.current_step(), 3, "multistep passed 3, 6 and 9");
    let model = format!("{}_iter_10.caffemodel", s.prefix);
    assert_eq!(state.learned_net(), model);
    // ip1 weight, ip1 bias, ip2 weight, ip2 bias; SGD keeps one history blob per param
    let sizes: Vec<usize> = state.history.iter().map(|h| h.data.len()).collect();
    assert_eq!(sizes, [12, 3, 3, 1]);
    let net = NetParameter::decode(std::fs::read(&model).unwrap().as_slice()).unwrap();
    let with_blobs: Vec<&str> = net
        .layer
        .iter()
        .filter(|l| !l.blobs.is_empty())
        .map(|l| l.name())
        .collect();
    assert_eq!(with_blobs, ["ip1", "ip2"]);
}

#[test]
fn stop_request_snapshots_and_stops_snapshot_request_goes_on() {
    let s = setup("", 4);
    let mut sv = solver(&s, 20);
    let control = SolverControl::new();
    sv.set_control(control.clone());
    control.request_snapshot();
    let mut events = Vec::new();
    let mut stopped = false;
    sv.solve(&mut |e| {
        events.push(e.clone());
        if let SolverEvent::Iteration { iter: 3, .. } = e
            && !stopped
        {
            control.request_stop();
            stopped = true;
        }
    })
    .unwrap();
    let snaps: Vec<i32> = events
        .iter()
        .filter_map(|e| match e {
            SolverEvent::Snapshot { iter, .. } => Some(*iter),
            _ => None,
        })
        .collect();
    // the snapshot request is taken between the batches of the test at iteration 0
    assert_eq!(snaps, [0, 4]);
    assert!(matches!(
        events.last(),
        Some(SolverEvent::Finished {
            iter: 4,
            stopped_early: true
        })
    ));
    assert_eq!(sv.iter(), 4);
}

#[test]
fn exploding_loss_stops_naming_iteration_and_snapshot() {
    let s = setup("", 4);
    let mut p = siamese_net::load_solver(&s.solver_file).unwrap();
    p.base_lr = Some(1e18);
    p.lr_policy = Some("fixed".into());
    p.snapshot = Some(1);
    p.test_interval = Some(0);
    let mut sv = Solver::new(p, Some(&s.solver_file)).unwrap();
    let err = sv.solve(&mut |_| {}).unwrap_err();
    let SolverError::NonFiniteLoss {
        iter,
        last_snapshot,
        ..
    } = &err
    else {
        panic!("expected a non-finite loss error, got {err}");
    };
    assert!(*iter >= 1, "the first loss is finite");
    let expected = PathBuf::from(format!("{}_iter_{iter}.solverstate", s.prefix));
    assert_eq!(last_snapshot.as_ref(), Some(&expected));
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("at iteration {iter}")) && msg.contains("solverstate"),
        "{msg}"
    );
}

#[test]
fn iter_size_accumulates_like_a_bigger_batch() {
    let big = setup("", 4);
    let small = setup("iter_size: 2\n", 2);
    let (a, _) = run(&mut solver(&big, 6));
    let (b, _) = run(&mut solver(&small, 6));
    for ((ia, la), (ib, lb)) in a.0.iter().zip(&b.0) {
        let (la, lb) = (f32::from_bits(*la), f32::from_bits(*lb));
        assert_eq!(ia, ib);
        assert!(
            (la - lb).abs() <= 1e-5 * la.abs().max(1.0),
            "iteration {ia}: {la} vs {lb}"
        );
    }
}

#[test]
fn clock_seed_is_reported_when_random_seed_is_negative() {
    let s = setup("", 4);
    let mut p = siamese_net::load_solver(&s.solver_file).unwrap();
    p.random_seed = Some(-1);
    let sv = Solver::new(p, Some(&s.solver_file)).unwrap();
    assert!(sv.seed_from_clock());
    assert!(!solver(&s, 1).seed_from_clock());
    assert_eq!(solver(&s, 1).seed(), 7);
}

/// Caffe's solver files say (or default to) `solver_mode: GPU`. Where no GPU can be used they
/// still train, on the CPU, exactly as with `solver_mode: CPU`, after one notice saying why;
/// asking for the GPU explicitly is an error with the same reason.
#[test]
fn solver_mode_gpu_without_a_usable_gpu_trains_on_the_cpu_after_one_notice() {
    let Err(reason) = probe_gpu(0) else {
        println!("skipped: GPU 0 can be used here, so nothing falls back");
        return;
    };
    let on_cpu = setup("solver_mode: CPU\n", 4);
    let mut cpu = solver(&on_cpu, 6);
    assert_eq!(cpu.device(), Device::Cpu);
    let (cpu_trace, cpu_events) = run(&mut cpu);
    assert!(
        !cpu_events
            .iter()
            .any(|e| matches!(e, SolverEvent::Notice(_))),
        "{cpu_events:?}"
    );

    let default_gpu = setup("", 4);
    let mut fallback = solver(&default_gpu, 6);
    assert_eq!(fallback.device(), Device::Cpu);
    let (trace, events) = run(&mut fallback);
    let expected = format!("solver_mode GPU (device_id 0): {reason}; running on the CPU");
    assert_eq!(events[0], SolverEvent::Notice(expected));
    let notices = events
        .iter()
        .filter(|e| matches!(e, SolverEvent::Notice(_)))
        .count();
    assert_eq!(notices, 1);
    assert_eq!(
        trace, cpu_trace,
        "the fallback trains as solver_mode CPU does"
    );

    let p = siamese_net::load_solver(&on_cpu.solver_file).unwrap();
    let strict = DeviceChoice::Required(Device::Gpu(0));
    let err = Solver::with_device(p, Some(&on_cpu.solver_file), strict)
        .err()
        .expect("an unusable GPU asked for is an error");
    assert_eq!(err.to_string(), format!("GPU: {reason}"));
}
