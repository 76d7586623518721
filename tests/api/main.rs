//! Integration tests: the real server on an ephemeral port, a real tonic
//! client, a fresh sled folder per test. Set TEST_LOG=1 to see server logs.

#[path = "../support/data_dir.rs"]
mod data_dir;
mod disk_full;
mod durability;
mod grpc_web;
mod healthcheck;
mod helpers;
mod hostile;
mod listing;
mod metrics;
mod moderation;
#[path = "../support/pages.rs"]
mod pages;
mod screening;
mod streaming;
mod submission;
mod tls;
mod transport;
mod upgrade;
mod validation;
