//! Hostile peers against the real binary (issue 12): each test spawns
//! `commentd` as a child process on an ephemeral port with a fresh data
//! folder, attacks it the way a hostile or broken client would, and
//! measures it from outside (resident memory and CPU time from
//! `/proc/PID`, so the test's own clients are not counted).
//!
//! The figures are printed to stderr: `cargo test --test hostile --
//! --nocapture` shows them. They come from the debug build `cargo test`
//! makes: memory per stream or connection is close to the release
//! binary's, CPU per screening is not (about 15 times more).
//! `HOSTILE_COMMENTD_BIN=target/release/commentd` runs them against another
//! binary (a release build, or an older one to see a test fail; the child
//! gets no `COMMENTD_*` variable, only the flags each test passes).

mod auth;
mod connections;
mod descriptors;
mod grpc_web;
mod half_open;
mod idle;
mod screening;
mod server;
mod subscriptions;
