//! Generates crates/proto's Rust code (and caffe's descriptor set) from caffe.proto and
//! onnx.proto with protox (a pure-Rust protobuf compiler, no `protoc` needed) and prost-build.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The files codegen owns, relative to the workspace root, and their fresh contents: Caffe's
/// messages with their descriptor set (for the prototxt reader), and ONNX's messages.
pub fn generate() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let root = crate::workspace_root();
    let generated = root.join("crates/proto/src/generated");
    let (caffe, fds) = rust_code(&root, "caffe")?;
    let (onnx, _) = rust_code(&root, "onnx")?;
    Ok(vec![
        (generated.join("caffe.rs"), caffe),
        (generated.join("caffe.fds.bin"), fds),
        (generated.join("onnx.rs"), onnx),
    ])
}

/// prost's code for crates/proto/proto/<name>.proto (package `name`) and its encoded
/// `FileDescriptorSet`.
fn rust_code(root: &Path, name: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let proto_dir = root.join("crates/proto/proto");
    let fds = protox::compile([proto_dir.join(format!("{name}.proto"))], [&proto_dir])
        .with_context(|| format!("compiling crates/proto/proto/{name}.proto"))?;
    let fds_bytes = prost::Message::encode_to_vec(&fds);

    let out = tempdir(root)?;
    prost_build::Config::new()
        .out_dir(&out)
        .compile_fds(fds)
        .context("generating Rust code with prost-build")?;
    let code =
        std::fs::read(out.join(format!("{name}.rs"))).context("reading prost-build output")?;
    let _ = std::fs::remove_dir_all(&out);
    Ok((code, fds_bytes))
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
    /// Fails when crates/proto/proto/{caffe,onnx}.proto was edited without `cargo xtask codegen`.
    #[test]
    fn checked_in_proto_code_is_fresh() {
        super::run(true).unwrap();
    }
}
