//! commentd: a comment moderation service for news sites, over gRPC.
//!
//! A submitted comment is validated, screened (profanity, toxicity, spam,
//! duplicates, rate limit) and then approved (stored durably and streamed live to the
//! article's subscribers), held for a moderator, or rejected with reasons.
//!
//! # Layout
//! - [`config`]: flags and `COMMENTD_*` environment variables.
//! - [`telemetry`]: tracing subscriber (text or JSON).
//! - [`app`]: [`Application`]: store, listener, services, graceful shutdown.
//! - [`api`]: the gRPC layer: generated code, conversions, service impls.
//! - [`error`]: the one mapping from errors to gRPC statuses.
//! - [`comments`]: the readers' use cases (submit, check, get, list, subscribe).
//! - [`moderators`]: the moderators' use cases (queue, actions, settings,
//!   terms, bans, audit); [`auth`]: their bearer tokens.
//! - [`paging`]: opaque page tokens.
//! - [`domain`]: validated types, comments, verdicts; no protobuf.
//! - [`screening`]: the screening pipeline: one text normaliser, one file
//!   per filter, the learned classifiers; `screening::train` (feature
//!   `train`, binary `commentd-train`) trains and measures them.
//! - [`store`]: sled key layout, group commit, durability.
//! - [`hub`]: live fan-out per article, with the slow-subscriber policy.
//!
//! Dependencies point inward: `api` uses `comments`, which uses
//! `screening`, `store` and `hub`; those know only `domain`.
//!
//! # The log
//! Stored comments take ids from one server-wide sequence: a comment id is a
//! position in the log of writes. The per-article lists and the live fan-out
//! are views of that log, and a subscriber's cursor is a position in it.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod comments;
pub mod config;
pub mod domain;
pub mod error;
pub mod hub;
pub mod moderators;
pub mod paging;
pub mod screening;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
