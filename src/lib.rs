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
//! - [`transport`]: what a peer may hold (connections, streams, idle
//!   time) and the accept loop; [`peer`]: the address per-peer limits
//!   count (trusted proxies' `X-Forwarded-For`).
//! - [`api`]: the gRPC layer: generated code, conversions, service impls.
//! - [`error`]: the one mapping from errors to gRPC statuses.
//! - [`metrics`]: Prometheus metrics (one registry per application), the
//!   RPC metrics layer and the `/metrics` listener.
//! - [`comments`]: the readers' use cases (submit, check, get, list,
//!   subscribe): screening, policy and the events a submission appends.
//! - [`moderators`]: the moderators' use cases (queue, actions, settings,
//!   terms, bans, audit): the moderation rules, as events with conditions;
//!   [`auth`]: their bearer tokens.
//! - [`paging`]: opaque page tokens.
//! - [`domain`]: validated types, comments, verdicts; no protobuf.
//! - [`screening`]: the screening pipeline: one text normaliser, one file
//!   per filter, the learned classifiers; `screening::train` (feature
//!   `train`, binary `commentd-train`) trains and measures them.
//! - [`store`]: the log of events behind the `CommentLog` seam (sled by
//!   default: group commit, `fdatasync`), the views derived from it (in
//!   memory, rebuilt from the log at every start), the format version and
//!   migrations.
//! - [`hub`]: live fan-out per article, with the slow-subscriber policy.
//!
//! Dependencies point inward: `api` uses `comments` and `moderators` (and
//! `domain`); those use `screening`, `store` and `hub`, which know only
//! `domain` (the store also its own event types).
//!
//! # The log
//! Everything that happens is one event at one position of the log: a
//! screened submission (approved, held or rejected), a moderator's action, a
//! change of settings, terms or bans. A comment's id is the position of the
//! event that published it, so ids order all comments; the per-article lists,
//! the review queue and the audit indexes are views of the log, and a
//! subscriber's cursor is a position in it. An acknowledged write is durable
//! and visible in the views.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod comments;
pub mod config;
pub mod domain;
pub mod error;
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;
pub mod hub;
pub mod metrics;
pub mod moderators;
pub mod paging;
pub mod peer;
pub mod screening;
pub mod store;
pub mod telemetry;
pub mod transport;

pub use app::Application;
pub use config::Config;
