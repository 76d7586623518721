//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed),
//! generates the tonic service code, and writes the encoded descriptor set
//! that the reflection service serves (compile_fds does not write it).
//! Also records the commit built (`COMMENTD_COMMIT`, for the build-info
//! metric): from that variable if set (image builds without `.git`), else
//! from git, else "unknown".

use std::{env, fs, path::PathBuf, process::Command};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rustc-env=COMMENTD_COMMIT={}", commit());

    let descriptors = protox::compile(["comments/v1/comments.proto"], ["proto"])?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("comments_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::api::codec::StrictProstCodec")
        .compile_fds(descriptors)?;
    Ok(())
}

fn commit() -> String {
    println!("cargo:rerun-if-env-changed=COMMENTD_COMMIT");
    if let Ok(commit) = env::var("COMMENTD_COMMIT") {
        return commit;
    }
    if let Ok(head) = fs::read_to_string(".git/HEAD") {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(reference) = head.trim().strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{reference}");
        }
    }
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map(|commit| commit.trim().to_owned())
        .filter(|commit| !commit.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
