//! `siamese train` killed with SIGKILL at random (seeded) moments, then resumed from its last
//! snapshot, ends with exactly the weights of an uninterrupted run; and a kill that lands while a
//! snapshot is being written never leaves a corrupt file under a snapshot's final name.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use siamese_e2e::siamese;
use siamese_proto::{NetParameter, SolverState};

/// One training configuration: tower width, snapshot interval, iterations, learning rate.
#[derive(Clone, Copy)]
struct Run {
    width: u32,
    snapshot: u32,
    max_iter: u32,
    base_lr: f32,
}

/// A siamese pair net in miniature: 2-channel 2×2 records sliced into two towers sharing their
/// weights by name, a contrastive loss; `ip_width` sets the towers' size (the snapshot size).
fn setup(dir: &Path, run: Run) -> PathBuf {
    let ip_width = run.width;
    let db = siamese_testkit::write_db(
        &dir.join("pairs"),
        siamese_testkit::ramp_datums(40, 2, |px| i32::from(px[0] > 128)),
    );
    let tower = |side: &str, bottom: &str| {
        format!(
            "layer {{ name: \"ip{side}\" type: \"InnerProduct\" bottom: \"{bottom}\" top: \"h{side}\"
  param {{ name: \"w1\" }} param {{ name: \"b1\" }}
  inner_product_param {{ num_output: {ip_width} weight_filler {{ type: \"xavier\" }} }} }}
layer {{ name: \"relu{side}\" type: \"ReLU\" bottom: \"h{side}\" top: \"h{side}\" }}
layer {{ name: \"feat{side}\" type: \"InnerProduct\" bottom: \"h{side}\" top: \"f{side}\"
  param {{ name: \"w2\" }} param {{ name: \"b2\" }}
  inner_product_param {{ num_output: 2 weight_filler {{ type: \"xavier\" }} }} }}
"
        )
    };
    let net = format!(
        "name: \"pairs\"
layer {{ name: \"data\" type: \"Data\" top: \"pair\" top: \"sim\"
  transform_param {{ scale: 0.00390625 }} data_param {{ source: \"{}\" batch_size: 4 }} }}
layer {{ name: \"slice\" type: \"Slice\" bottom: \"pair\" top: \"a\" top: \"b\"
  slice_param {{ slice_dim: 1 slice_point: 1 }} }}
{}{}layer {{ name: \"loss\" type: \"ContrastiveLoss\" bottom: \"fa\" bottom: \"fb\" bottom: \"sim\"
  top: \"loss\" contrastive_loss_param {{ margin: 1 }} }}
",
        db.display(),
        tower("a", "a"),
        tower("b", "b")
    );
    std::fs::write(dir.join("net.prototxt"), net).unwrap();
    std::fs::create_dir_all(dir.join("snaps")).unwrap();
    let solver = format!(
        "net: \"net.prototxt\"\nbase_lr: {}\nmomentum: 0.9\nweight_decay: 0.0005\n\
         lr_policy: \"inv\"\ngamma: 0.0001\npower: 0.75\ndisplay: 1\nmax_iter: {}\n\
         snapshot: {}\nsnapshot_prefix: \"snaps/pairs\"\nrandom_seed: 11\n",
        run.base_lr, run.max_iter, run.snapshot
    );
    let path = dir.join("solver.prototxt");
    std::fs::write(&path, solver).unwrap();
    path
}

fn train(dir: &Path, resume: Option<&Path>) -> Child {
    let mut cmd = siamese();
    cmd.current_dir(dir)
        .args(["train", "--solver", "solver.prototxt", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(state) = resume {
        cmd.arg("--snapshot").arg(state);
    }
    cmd.spawn().unwrap()
}

/// Every parameter value of a .caffemodel, layer by layer, as bits.
fn weights(path: &Path) -> Vec<(String, Vec<u32>)> {
    let param = NetParameter::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    param
        .layer
        .iter()
        .map(|l| {
            let bits = l
                .blobs
                .iter()
                .flat_map(|b| b.data.iter().map(|v| v.to_bits()));
            (l.name().to_string(), bits.collect())
        })
        .collect()
}

/// Snapshots under their final names: every one must decode completely. Returns the iteration
/// of the latest complete pair (solverstate + the caffemodel it names), and how many temporary
/// files (snapshots cut mid-write) lie beside them.
fn check_snapshots(dir: &Path) -> (Option<u32>, usize) {
    let snaps = dir.join("snaps");
    let mut latest = None;
    let mut temporary = 0;
    for entry in std::fs::read_dir(&snaps).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            temporary += 1;
            continue;
        }
        let bytes = std::fs::read(snaps.join(&name)).unwrap();
        if let Some(stem) = name.strip_suffix(".solverstate") {
            let state = SolverState::decode(bytes.as_slice())
                .unwrap_or_else(|e| panic!("{name} is corrupt: {e}"));
            let iter: u32 = stem.rsplit('_').next().unwrap().parse().unwrap();
            assert_eq!(state.iter(), iter as i32, "{name}");
            let model = dir.join(state.learned_net());
            assert!(
                model.is_file(),
                "{name} names a missing {}",
                model.display()
            );
            latest = latest.max(Some(iter));
        } else {
            assert!(name.ends_with(".caffemodel"), "unexpected file {name}");
            let net = NetParameter::decode(bytes.as_slice())
                .unwrap_or_else(|e| panic!("{name} is corrupt: {e}"));
            assert!(net.layer.iter().any(|l| !l.blobs.is_empty()), "{name}");
        }
    }
    (latest, temporary)
}

fn final_model(dir: &Path, run: Run) -> PathBuf {
    dir.join(format!("snaps/pairs_iter_{}.caffemodel", run.max_iter))
}

/// The final weights of a run left alone.
fn uninterrupted(run: Run) -> Vec<(String, Vec<u32>)> {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), run);
    let out = train(dir.path(), None).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    weights(&final_model(dir.path(), run))
}

/// How many complete snapshots (solverstate files under their final names) lie in `dir`.
fn complete_snapshots(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("snaps"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".solverstate"))
                .count()
        })
        .unwrap_or(0)
}

/// Kills training at seeded random points, resumes from the latest snapshot, and repeats until
/// a run finishes. A kill is triggered by progress, not by wall-clock guesses (which break on a
/// loaded machine): once 1–3 new snapshots have appeared, the run is killed after a further
/// random 0–`jitter_ms` ms, so kills land anywhere, mid-write included. After `max_kills`
/// kills the run is left to finish. Returns the final weights, the kills and the temporary
/// files seen.
fn killed_and_resumed(
    run: Run,
    seed: u64,
    max_kills: usize,
    jitter_ms: u64,
) -> (Vec<(String, Vec<u32>)>, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), run);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut kills, mut temporary) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(
            Instant::now() < deadline,
            "no run finished after {kills} kills"
        );
        let (latest, _) = check_snapshots(dir.path());
        let resume = latest.map(|i| PathBuf::from(format!("snaps/pairs_iter_{i}.solverstate")));
        let target = complete_snapshots(dir.path()) + rng.random_range(1..=3usize);
        let jitter = Duration::from_millis(rng.random_range(0..=jitter_ms));
        let mut child = train(dir.path(), resume.as_deref());
        let mut kill_at: Option<Instant> = None;
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "{err}");
                break true;
            }
            if kills < max_kills {
                if kill_at.is_none() && complete_snapshots(dir.path()) >= target {
                    kill_at = Some(Instant::now() + jitter);
                }
                if kill_at.is_some_and(|at| Instant::now() >= at) {
                    child.kill().unwrap(); // SIGKILL
                    child.wait().unwrap();
                    kills += 1;
                    break false;
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let (_, temp) = check_snapshots(dir.path());
        temporary = temporary.max(temp);
        if finished {
            // Each run starts by removing the files of snapshots cut by the kills before it.
            assert_eq!(temp, 0, "temporary files left after the finishing run");
            return (weights(&final_model(dir.path(), run)), kills, temporary);
        }
    }
}

#[test]
fn killed_training_resumes_to_the_same_weights() {
    let run = Run {
        width: 8,
        snapshot: 200,
        max_iter: 6000,
        base_lr: 0.02,
    };
    let expected = uninterrupted(run);
    for seed in [1, 2] {
        let (got, kills, _) = killed_and_resumed(run, seed, 3, 30);
        assert!(kills > 0, "seed {seed}: the run finished before any kill");
        assert_eq!(got, expected, "seed {seed}: {kills} kills");
    }
}

/// Big snapshots every few iterations, so kills often land mid-write: no corrupt file ever
/// lies under a final name (`check_snapshots` decodes every one after each kill).
#[test]
fn kill_during_a_snapshot_never_leaves_a_corrupt_file() {
    let run = Run {
        width: 2000,
        snapshot: 2,
        max_iter: 120,
        base_lr: 0.002,
    };
    let expected = uninterrupted(run);
    let (got, kills, temporary) = killed_and_resumed(run, 7, 4, 5);
    assert!(kills > 0, "the run finished before any kill");
    assert_eq!(got, expected, "{kills} kills");
    eprintln!("{kills} kills, at most {temporary} cut snapshot(s) seen as temporary files");
}

/// A kill mid-snapshot leaves a `.<name>.tmp-<pid>-<host>-<nonce>` file; the next run removes such files once
/// their process is gone, says so, and leaves every other file alone.
#[test]
fn resumed_training_removes_the_temp_files_of_killed_snapshots() {
    let run = Run {
        width: 8,
        snapshot: 20,
        max_iter: 40,
        base_lr: 0.02,
    };
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), run);
    assert!(train(dir.path(), None).wait().unwrap().success());
    let gone = siamese_testkit::gone_pid();
    let snaps = dir.path().join("snaps");
    let stale = siamese_testkit::temp_name_of("pairs_iter_40.caffemodel", gone);
    let kept = [
        siamese_testkit::temp_name_of("pairs_iter_40.solverstate", 1), // pid 1 runs: maybe writing
        format!("pairs_iter_40.caffemodel.tmp{gone}"),                 // not our writer's name
        "notes.txt".to_string(),
    ];
    for name in kept.iter().chain([&stale]) {
        std::fs::write(snaps.join(name), b"cut").unwrap();
    }
    let out = siamese()
        .current_dir(dir.path())
        .args(["train", "--solver", "solver.prototxt", "--threads", "1"])
        .args(["--snapshot", "snaps/pairs_iter_20.solverstate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line =
        format!("Removed snaps/{stale}: a snapshot file cut short when an earlier run was killed");
    assert!(stdout.lines().any(|l| l == line), "{stdout}");
    assert_eq!(stdout.matches("Removed ").count(), 1, "{stdout}");
    assert!(!snaps.join(&stale).exists());
    for name in &kept {
        assert_eq!(std::fs::read(snaps.join(name)).unwrap(), b"cut", "{name}");
    }
}
