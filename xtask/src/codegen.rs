//! Generates crates/proto's Rust code and file descriptor set from caffe.proto with
//! protox (a pure-Rust protobuf compiler, so no `protoc` is needed) and prost-build.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The files codegen owns, relative to the workspace root, and their fresh contents.
pub fn generate() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let root = crate::workspace_root();
    let proto_dir = root.join("crates/proto/proto");
    let fds = protox::compile([proto_dir.join("caffe.proto")], [&proto_dir])
        .context("compiling crates/proto/proto/caffe.proto")?;
    let fds_bytes = prost::Message::encode_to_vec(&fds);

    let out = tempdir(&root)?;
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(fds)
        .context("generating Rust code with prost-build")?;
    let code = std::fs::read(out.join("caffe.rs")).context("reading prost-build output")?;
    let _ = std::fs::remove_dir_all(&out);

    let generated = root.join("crates/proto/src/generated");
    Ok(vec![
        (generated.join("caffe.rs"), code),
        (generated.join("caffe.fds.bin"), fds_bytes),
    ])
}

pub fn run(check: bool) -> Result<()> {
    let mut stale = Vec::new();
    for (path, contents) in generate()? {
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(contents.as_slice()) {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else {
            std::fs::create_dir_all(path.parent().unwrap())?;
            siamese_files::write_atomic(&path, &contents)?;
            println!("updated {}", path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated files are stale, run `cargo xtask codegen`: {}",
            stale.join(", ")
        );
    }
    Ok(())
}

fn tempdir(root: &Path) -> Result<PathBuf> {
    let dir = root
        .join("target")
        .join(format!("xtask-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    /// Fails when crates/proto/proto/caffe.proto was edited without `cargo xtask codegen`.
    #[test]
    fn checked_in_proto_code_is_fresh() {
        super::run(true).unwrap();
    }
}
