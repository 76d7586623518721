//! The gRPC layer: generated code, conversions at the edge, service impls.
//!
//! Requests are parsed into domain types here (collecting every bad field
//! into one `INVALID_ARGUMENT`), and domain results are turned back into
//! protobuf messages. Nothing below this module sees a prost type.

pub mod codec;
mod comments;
pub(crate) mod convert;
mod moderation;

pub use comments::CommentApi;
pub use moderation::ModerationApi;

/// Code generated from `proto/comments/v1/comments.proto`.
pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("comments.v1");

    /// The encoded descriptor set, served by the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/comments_descriptor.bin"));
}
