//! Grids as Slurm job arrays without a cluster, through the binary: the sbatch script `slurm`
//! writes (snapshot), and `--submit` through a stand-in sbatch (and without one). The tasks
//! themselves (`run-cell`) are tested in siamese-grid (`tests/run_cell_tasks.rs`).

#[path = "../../grid/tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use siamese_grid::cell_folder::CellFolder;
use siamese_grid::cell_trainer::CellSummary;

const TINY: &str = "name = \"tiny\"\niterations = 12\ntest_interval = 4\nsnapshot_interval = 5\n[grid]\nmargin = [1, 2, 4]\n";

const BIN: &str = env!("CARGO_BIN_EXE_siamese-tui");

fn siamese_tui(cwd: &Path, path: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("PATH", path)
        .output()
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A stand-in `sbatch` in `bin/` that logs its arguments and answers `answer` on stdout
/// (exit 0) or on stderr (exit 1) when `fail`.
fn fake_sbatch(dir: &Path, answer: &str, fail: bool) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let reply = if fail {
        format!("echo '{answer}' >&2; exit 1")
    } else {
        format!("echo '{answer}'")
    };
    let script = format!(
        "#!/bin/sh\necho \"$@\" > '{}'\n{reply}\n",
        dir.join("sbatch.args").display()
    );
    let path = bin.join("sbatch");
    fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Four cells, the second already finished.
fn four_cells(dir: &Path) -> PathBuf {
    let body = TINY.replace("[1, 2, 4]", "[1, 2, 4, 8]");
    let file = support::experiment_file(dir, "tiny", &body);
    let done = CellFolder::new(dir.join("runs/tiny/001-margin_2"));
    fs::create_dir_all(&done.dir).unwrap();
    done.write_done(&CellSummary {
        iterations: 12,
        train_loss: 0.1,
        test_loss: 0.1,
        metrics: siamese_testkit::embedding_metrics(0.9, 0.6000, 0.9),
        wall_seconds: 1.0,
    })
    .unwrap();
    file
}

#[test]
fn the_sbatch_script_runs_the_unfinished_cells() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    four_cells(&dir_path);
    let output = siamese_tui(
        &dir_path,
        "/usr/bin:/bin",
        &[
            "slurm",
            "tiny.toml",
            "--partition",
            "debug",
            "--time",
            "30",
            "--cpus-per-task",
            "2",
            "--gpus-per-task",
            "1",
            "--max-parallel",
            "2",
        ],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let script_path = dir_path.join("runs/tiny/slurm/tiny.sbatch");
    assert!(
        stdout.starts_with(&format!("wrote {} (3 of 4 cells)\n", script_path.display())),
        "{stdout}"
    );
    assert!(dir_path.join("runs/tiny/grid.toml").is_file());
    let exe = Path::new(BIN).canonicalize().unwrap();
    let script = fs::read_to_string(&script_path)
        .unwrap()
        .replace(exe.to_str().unwrap(), "[EXE]")
        .replace(dir_path.to_str().unwrap(), "[TMP]");
    insta::assert_snapshot!(script);
}

#[test]
fn submit_hands_the_script_to_sbatch_and_prints_the_job_id() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    four_cells(&dir_path);
    let bin = fake_sbatch(&dir_path, "4242;siamese-ci", false);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let output = siamese_tui(&dir_path, &path, &["slurm", "tiny.toml", "--submit"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("submitted job array 4242; task logs in "),
        "{stdout}"
    );
    let args = fs::read_to_string(dir_path.join("sbatch.args")).unwrap();
    assert_eq!(
        args.trim(),
        format!(
            "--parsable {}",
            dir_path.join("runs/tiny/slurm/tiny.sbatch").display()
        )
    );
}

#[test]
fn submit_errors_say_what_went_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    four_cells(&dir_path);
    let script = dir_path.join("runs/tiny/slurm/tiny.sbatch");
    let empty = dir_path.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let output = siamese_tui(
        &dir_path,
        empty.to_str().unwrap(),
        &["slurm", "tiny.toml", "--submit"],
    );
    assert!(!output.status.success());
    assert_eq!(
        text(&output).1,
        format!(
            "siamese-tui: sbatch not found on PATH: --submit needs Slurm's client commands; the script is written, submit it where Slurm runs with `sbatch {}`\n",
            script.display()
        )
    );
    assert!(script.is_file());

    let bin = fake_sbatch(
        &dir_path,
        "sbatch: error: invalid partition specified: gpu",
        true,
    );
    let output = siamese_tui(
        &dir_path,
        bin.to_str().unwrap(),
        &["slurm", "tiny.toml", "--submit"],
    );
    assert!(!output.status.success());
    assert_eq!(
        text(&output).1,
        format!(
            "siamese-tui: sbatch {} failed (exit status: 1): sbatch: error: invalid partition specified: gpu\n",
            script.display()
        )
    );

    let output = siamese_tui(
        &dir_path,
        "/usr/bin:/bin",
        &["slurm", "tiny.toml", "--partition", "gpu long"],
    );
    assert_eq!(
        text(&output).1,
        "siamese-tui: --partition `gpu long` cannot go on an #SBATCH line: expected no spaces, quotes, `#` or `\\`\n"
    );
}

#[test]
fn a_finished_grid_has_nothing_to_submit() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    four_cells(&dir_path);
    let body = TINY.replace("[1, 2, 4]", "[2]");
    support::experiment_file(&dir_path, "tiny", &body);
    fs::rename(
        dir_path.join("runs/tiny/001-margin_2"),
        dir_path.join("runs/tiny/000-margin_2"),
    )
    .unwrap();
    // No sbatch on PATH: were anything submitted, this would fail.
    let output = siamese_tui(
        &dir_path,
        "/nonexistent",
        &["slurm", "tiny.toml", "--submit"],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("every cell of tiny is finished (1 cells); nothing to submit."),
        "{stdout}"
    );
    assert!(!dir_path.join("runs/tiny/slurm").exists());
}
