//! Compiles `proto/` with protox (pure Rust: no system `protoc` needed),
//! generates the tonic service code, and writes the encoded descriptor set
//! that the reflection service serves (compile_fds does not write it).

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");

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
