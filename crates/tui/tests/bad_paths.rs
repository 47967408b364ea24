//! An experiment file naming a folder where a prototxt is expected, through the real
//! `siamese-tui` binary: the error says what stands there, not "not found".

use std::process::Command;

#[test]
fn a_folder_named_as_the_net_says_it_is_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("net.prototxt");
    std::fs::create_dir(&folder).unwrap();
    let solver = dir.path().join("solver.prototxt");
    std::fs::write(&solver, "").unwrap();
    let exp = dir.path().join("exp.toml");
    std::fs::write(
        &exp,
        format!("solver = {solver:?}\nnet = {folder:?}\niterations = 1\ntest_interval = 1\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_siamese-tui"))
        .current_dir(dir.path())
        .args(["--headless", "--out", "runs"])
        .arg(&exp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let want = format!(
        "{}:2: net file {} is a folder, expected a file",
        exp.display(),
        folder.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!dir.path().join("runs").exists());
}
