//! Command line and environment: every flag has a `COMMENTD_*` twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    domain::{CommentText, Severity},
    screening::{
        ProfanityPolicy, SpamPolicy, ToxicityPolicy, pool::PoolSize, rate_limit::RatePolicy,
    },
    transport::{CallLimits, ConnectionLimits},
};

/// commentd: a comment moderation service for news sites, over gRPC.
///
/// Without a subcommand it serves (same as `commentd serve`).
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once per process: the size of the serve flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server (the default).
    Serve(ServeArgs),
    /// Ask a running server's grpc.health.v1.Health/Check: exit 0 when
    /// SERVING, 1 otherwise (for container health checks; needs no shell).
    Healthcheck(HealthcheckArgs),
    /// Derive the views (listings, queues, indexes) from the whole log, as
    /// every start does, report the time it took, then exit; the server
    /// must not be running.
    RebuildViews(DataDirArgs),
    /// Publish the embedded (sled) log of --data-dir into the NATS
    /// JetStream stream of --log, keeping every comment id (new ids continue
    /// above them), then exit; start the replicas with `--log nats://…` and
    /// empty data dirs. A migration cut short resumes. Needs a build with
    /// `--features nats`; the server must not be running.
    MigrateToNats(MigrateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DataDirArgs {
    /// Where the store lives.
    #[arg(long, env = "COMMENTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Where the log lives.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Where the log lives: `sled` (in --data-dir, the default), or the
    /// NATS servers of a JetStream log shared by several replicas
    /// (`nats://a:4222,nats://b:4222`; needs a build with `--features nats`).
    #[arg(long, env = "COMMENTD_LOG", default_value = "sled", value_parser = parse_log)]
    pub log: String,

    /// The JetStream stream of a NATS log; its subjects are the name in
    /// lower case, then `.>`.
    #[arg(long, env = "COMMENTD_LOG_STREAM", default_value = "COMMENTS")]
    pub log_stream: String,

    /// Copies JetStream keeps of the stream, when commentd creates it.
    #[arg(long, env = "COMMENTD_LOG_REPLICAS", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub log_replicas: u8,

    /// Longest wait (ms) for the NATS log to acknowledge an append; after it
    /// the caller gets UNAVAILABLE (retry with the same idempotency_key).
    #[arg(long, env = "COMMENTD_LOG_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub log_timeout_ms: u64,
}

impl LogArgs {
    pub fn target(&self) -> LogTarget {
        if self.log == "sled" {
            LogTarget::Sled
        } else {
            LogTarget::Nats {
                servers: self.log.clone(),
                stream: self.log_stream.clone(),
                replicas: usize::from(self.log_replicas),
                timeout: Duration::from_millis(self.log_timeout_ms),
            }
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The data dir of the embedded log to publish.
    #[arg(long, env = "COMMENTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// The server's address; an unspecified host (0.0.0.0, [::]) means
    /// this machine.
    #[arg(long, env = "COMMENTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The service to ask about ("" for the whole server).
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A profanity severity threshold, or `never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Threshold {
    Mild,
    Moderate,
    Severe,
    Never,
}

impl Threshold {
    fn severity(self) -> Option<Severity> {
        match self {
            Self::Mild => Some(Severity::Mild),
            Self::Moderate => Some(Severity::Moderate),
            Self::Severe => Some(Severity::Severe),
            Self::Never => None,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on for gRPC.
    #[arg(long, env = "COMMENTD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Folder of the sled database (created if missing).
    #[arg(long, env = "COMMENTD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Size of sled's page cache in MiB (the process's memory grows to about
    /// this plus the models and connections).
    #[arg(long, env = "COMMENTD_CACHE_MB", default_value_t = defaults::CACHE_MB)]
    pub cache_mb: u64,

    /// Free space (MiB) kept on the data disk: below it (or below a
    /// quarter of the disk, if less) writes get UNAVAILABLE and health
    /// reports NOT_SERVING until space is freed; reads keep working.
    #[arg(long, env = "COMMENTD_MIN_FREE_DISK_MB", default_value_t = defaults::MIN_FREE_DISK_MB)]
    pub min_free_disk_mb: u64,

    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, env = "COMMENTD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Export traces over OTLP/gRPC to this endpoint (e.g.
    /// http://collector:4317); needs a build with the `otlp` feature.
    #[arg(long, env = "COMMENTD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format; filter with RUST_LOG (default: info).
    #[arg(long, env = "COMMENTD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Longest comment text, in characters after trimming.
    #[arg(long, env = "COMMENTD_MAX_TEXT_CHARS", default_value_t = CommentText::DEFAULT_MAX_CHARS)]
    pub max_text_chars: usize,

    /// Largest request message in bytes; larger ones get OUT_OF_RANGE.
    #[arg(long, env = "COMMENTD_MAX_MESSAGE_BYTES", default_value_t = defaults::MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Submissions a client_id may make in a burst; 0 disables rate limiting.
    #[arg(long, env = "COMMENTD_RATE_LIMIT_BURST", default_value_t = defaults::RATE_LIMIT_BURST)]
    pub rate_limit_burst: u32,

    /// Milliseconds for a client_id to regain one submission.
    #[arg(long, env = "COMMENTD_RATE_LIMIT_INTERVAL_MS", default_value_t = defaults::RATE_LIMIT_INTERVAL_MS)]
    pub rate_limit_interval_ms: u64,

    /// Seconds during which the same text from the same client_id is a
    /// duplicate; 0 disables duplicate detection.
    #[arg(long, env = "COMMENTD_DUPLICATE_WINDOW_SECS", default_value_t = defaults::DUPLICATE_WINDOW_SECS)]
    pub duplicate_window_secs: u64,

    /// Links a comment may carry before it is held for review.
    #[arg(long, env = "COMMENTD_MAX_LINKS", default_value_t = defaults::MAX_LINKS)]
    pub max_links: usize,

    /// Hold comments written mostly in capitals or looking like gibberish
    /// (by default these are informational reasons only).
    #[arg(long, env = "COMMENTD_HOLD_SHOUTING")]
    pub hold_shouting: bool,

    /// Lowest profanity severity that holds a comment for review: applies to
    /// author names, and to texts the language model rates offensive
    /// (`never`: approve them instead).
    #[arg(
        long,
        env = "COMMENTD_PROFANITY_HOLD_AT",
        value_enum,
        default_value = "moderate"
    )]
    pub profanity_hold_at: Threshold,

    /// Lowest profanity severity that rejects a comment the language model
    /// rates offensive (and an author name).
    #[arg(
        long,
        env = "COMMENTD_PROFANITY_REJECT_AT",
        value_enum,
        default_value = "severe"
    )]
    pub profanity_reject_at: Threshold,

    /// Offensive-language model score (0–1) from which an offensive text is
    /// rejected rather than held.
    #[arg(
        long,
        env = "COMMENTD_PROFANITY_REJECT_CONFIDENCE",
        default_value_t = 0.99
    )]
    pub profanity_reject_confidence: f32,

    /// Hold profanity of at least this severity even when the language model
    /// rates the text harmless (`never`: trust the model).
    #[arg(
        long,
        env = "COMMENTD_PROFANITY_ALWAYS_HOLD_AT",
        value_enum,
        default_value = "never"
    )]
    pub profanity_always_hold_at: Threshold,

    /// Hold comments the toxicity model rates uncivil (insults, attacks,
    /// threats without swear words); `false` keeps its finding as an
    /// informational reason.
    #[arg(
        long,
        env = "COMMENTD_TOXICITY_HOLD",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub toxicity_hold: bool,

    /// Hours an idempotency key is remembered.
    #[arg(long, env = "COMMENTD_IDEMPOTENCY_TTL_HOURS", default_value_t = defaults::IDEMPOTENCY_TTL_HOURS)]
    pub idempotency_ttl_hours: u64,

    /// Events buffered per article for live subscribers; a subscriber that
    /// falls further behind is caught up from the store.
    #[arg(long, env = "COMMENTD_STREAM_BUFFER", default_value_t = defaults::STREAM_BUFFER)]
    pub stream_buffer: usize,

    /// Most concurrent HTTP/2 streams (calls, subscriptions) per
    /// connection; the client is told, and waits or opens another.
    #[arg(long, env = "COMMENTD_MAX_CONCURRENT_STREAMS", default_value_t = defaults::MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,

    /// Most open connections; one more is closed at once (UNAVAILABLE).
    #[arg(long, env = "COMMENTD_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS, value_parser = at_least_one())]
    pub max_connections: usize,

    /// Most open connections from one address (IPv6: one /64; trusted
    /// proxies excepted); one more is closed at once.
    #[arg(long, env = "COMMENTD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = defaults::MAX_CONNECTIONS_PER_ADDRESS, value_parser = at_least_one())]
    pub max_connections_per_address: usize,

    /// Most calls and streams in progress on all connections together;
    /// one more gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "COMMENTD_MAX_STREAMS", default_value_t = defaults::MAX_STREAMS, value_parser = at_least_one())]
    pub max_streams: usize,

    /// Most unary calls in progress on all connections together (each may
    /// hold a request message while it arrives); one more gets
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "COMMENTD_MAX_CALLS", default_value_t = defaults::MAX_CALLS, value_parser = at_least_one())]
    pub max_calls: usize,

    /// Most calls and streams in progress from one peer address (trusted
    /// proxies excepted); one more gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "COMMENTD_MAX_STREAMS_PER_ADDRESS", default_value_t = defaults::MAX_STREAMS_PER_ADDRESS, value_parser = at_least_one())]
    pub max_streams_per_address: usize,

    /// Most live subscriptions on one connection; one more gets
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "COMMENTD_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = defaults::MAX_SUBSCRIPTIONS_PER_CONNECTION, value_parser = at_least_one())]
    pub max_subscriptions_per_connection: usize,

    /// Seconds a call may take, reading its request included (a request
    /// that never finishes arriving is dropped then); a client's shorter
    /// grpc-timeout wins. Streams' responses are not limited.
    #[arg(long, env = "COMMENTD_REQUEST_TIMEOUT_SECS", default_value_t = defaults::REQUEST_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,

    /// Seconds a connection may stay open with no call or stream in
    /// progress (keep-alive pings do not count) before it is closed.
    #[arg(long, env = "COMMENTD_IDLE_TIMEOUT_SECS", default_value_t = defaults::IDLE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,

    /// Seconds between HTTP/2 keep-alive pings to each client.
    #[arg(long, env = "COMMENTD_KEEPALIVE_INTERVAL_SECS", default_value_t = defaults::KEEPALIVE_INTERVAL_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_interval_secs: u64,

    /// Seconds to wait for a ping's answer before dropping the connection.
    #[arg(long, env = "COMMENTD_KEEPALIVE_TIMEOUT_SECS", default_value_t = defaults::KEEPALIVE_TIMEOUT_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub keepalive_timeout_secs: u64,

    /// Submissions per second one address may make, whatever the
    /// client_ids it sends (bursts of twice that); 0 disables. Raise it, or
    /// list the backend in --trusted-proxies, when one backend posts for
    /// all readers.
    #[arg(long, env = "COMMENTD_PEER_RATE_LIMIT_PER_SEC", default_value_t = defaults::PEER_RATE_PER_SEC)]
    pub peer_rate_limit_per_sec: u32,

    /// CheckComment calls per second one address may make (bursts of twice
    /// that); 0 disables.
    #[arg(long, env = "COMMENTD_CHECK_RATE_LIMIT_PER_SEC", default_value_t = defaults::CHECK_RATE_PER_SEC)]
    pub check_rate_limit_per_sec: u32,

    /// Failed moderator authentications one address may make per minute
    /// before its attempts are refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "COMMENTD_AUTH_FAILURES_PER_MINUTE", default_value_t = defaults::AUTH_FAILURES_PER_MINUTE)]
    pub auth_failures_per_minute: u32,

    /// Proxies (addresses or CIDR networks) whose X-Forwarded-For names
    /// the client that per-address limits count; repeatable or
    /// comma-separated. The header is ignored from any other peer.
    #[arg(
        long = "trusted-proxy",
        env = "COMMENTD_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,

    /// Screenings running at once, on their own threads (0: one per core).
    #[arg(long, env = "COMMENTD_SCREENING_WORKERS", default_value_t = 0)]
    pub screening_workers: usize,

    /// Screenings waiting for a worker before more calls get
    /// RESOURCE_EXHAUSTED (0: 64 per worker).
    #[arg(long, env = "COMMENTD_SCREENING_QUEUE", default_value_t = 0)]
    pub screening_queue: usize,

    /// Author names readers may not use, nor look-alikes of them
    /// (add the names your staff comment under); comma-separated, empty
    /// for none.
    #[arg(
        long,
        env = "COMMENTD_RESERVED_AUTHOR_NAMES",
        value_delimiter = ',',
        default_value = defaults::RESERVED_AUTHOR_NAMES
    )]
    pub reserved_author_names: Vec<String>,

    /// File of moderator tokens, one `name:token` per line. Without it,
    /// every ModerationService call is UNAUTHENTICATED.
    #[arg(long, env = "COMMENTD_MODERATOR_TOKENS_FILE")]
    pub moderator_tokens_file: Option<PathBuf>,

    /// PEM certificate (chain) to serve TLS; needs --tls-key.
    #[arg(long, env = "COMMENTD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "COMMENTD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    #[command(flatten)]
    pub log: LogArgs,

    /// Allow browsers on this origin (e.g. https://news.example) to call the
    /// API with gRPC-web across origins; repeatable, `*` for any. Off by
    /// default: a site that proxies gRPC-web on its own origin needs none.
    #[arg(
        long = "cors-allow-origin",
        env = "COMMENTD_CORS_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_allow_origins: Vec<String>,

    /// Seconds to let in-flight calls finish after SIGTERM/SIGINT.
    #[arg(long, env = "COMMENTD_SHUTDOWN_GRACE_SECS", default_value_t = defaults::SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace_secs: u64,
}

/// Counts that must be at least 1 (a limit of 0 would refuse everything).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// Everything the application needs, resolved from the flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub cache_mb: u64,
    pub min_free_disk_mb: u64,
    pub max_text_chars: usize,
    pub max_message_bytes: usize,
    pub rate: RatePolicy,
    pub duplicate_window: Duration,
    pub spam: SpamPolicy,
    pub profanity: ProfanityPolicy,
    pub toxicity: ToxicityPolicy,
    pub idempotency_ttl: Duration,
    pub stream_buffer: usize,
    pub max_concurrent_streams: u32,
    pub connections: ConnectionLimits,
    pub calls: CallLimits,
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Submissions per caller address.
    pub peer_rate: RatePolicy,
    /// CheckComment calls per caller address.
    pub check_rate: RatePolicy,
    /// Failed moderator authentications per caller address.
    pub auth_failures: RatePolicy,
    pub trusted_proxies: Vec<String>,
    pub screening: PoolSize,
    pub reserved_author_names: Vec<String>,
    pub shutdown_grace: Duration,
    pub moderator_tokens_file: Option<PathBuf>,
    /// Origins allowed to call with gRPC-web across origins (CORS).
    pub cors_allow_origins: Vec<String>,
    /// Certificate and key files (PEM) for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub log: LogTarget,
}

/// Where the log of events lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// sled in the data folder: one process.
    Sled,
    /// A NATS JetStream stream shared by replicas; each replica keeps its
    /// mirror and views in its own data folder.
    Nats {
        servers: String,
        stream: String,
        replicas: usize,
        timeout: Duration,
    },
}

/// `sled`, or comma-separated `nats://` (or `tls://`) server URLs.
fn parse_log(value: &str) -> Result<String, String> {
    let valid = value == "sled"
        || value.split(',').all(|url| {
            let url = url.trim();
            (url.starts_with("nats://") || url.starts_with("tls://")) && url.len() > 7
        });
    if valid {
        Ok(value.to_owned())
    } else {
        Err(
            "expected `sled` or NATS server URLs such as nats://127.0.0.1:4222 (comma-separated)"
                .to_owned(),
        )
    }
}

impl ServeArgs {
    pub fn config(&self) -> Config {
        Config {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            data_dir: self.data_dir.clone(),
            cache_mb: self.cache_mb,
            min_free_disk_mb: self.min_free_disk_mb,
            max_text_chars: self.max_text_chars,
            max_message_bytes: self.max_message_bytes,
            rate: RatePolicy {
                burst: self.rate_limit_burst,
                interval: Duration::from_millis(self.rate_limit_interval_ms),
            },
            duplicate_window: Duration::from_secs(self.duplicate_window_secs),
            spam: SpamPolicy {
                max_links: self.max_links,
                hold_style: self.hold_shouting,
            },
            profanity: ProfanityPolicy {
                hold_at: self.profanity_hold_at.severity(),
                reject_at: self.profanity_reject_at.severity(),
                reject_confidence: self.profanity_reject_confidence,
                always_hold_at: self.profanity_always_hold_at.severity(),
            },
            toxicity: ToxicityPolicy {
                hold: self.toxicity_hold,
            },
            idempotency_ttl: Duration::from_secs(self.idempotency_ttl_hours * 3600),
            stream_buffer: self.stream_buffer,
            max_concurrent_streams: self.max_concurrent_streams,
            connections: ConnectionLimits {
                max_connections: self.max_connections,
                max_connections_per_address: self.max_connections_per_address,
                max_subscriptions_per_connection: self.max_subscriptions_per_connection,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            },
            calls: CallLimits {
                max_streams: self.max_streams,
                max_calls: self.max_calls,
                max_streams_per_address: self.max_streams_per_address,
                request_timeout: Duration::from_secs(self.request_timeout_secs),
            },
            keepalive_interval: Duration::from_secs(self.keepalive_interval_secs),
            keepalive_timeout: Duration::from_secs(self.keepalive_timeout_secs),
            peer_rate: RatePolicy::per_second(
                self.peer_rate_limit_per_sec,
                self.peer_rate_limit_per_sec.saturating_mul(2),
            ),
            check_rate: RatePolicy::per_second(
                self.check_rate_limit_per_sec,
                self.check_rate_limit_per_sec.saturating_mul(2),
            ),
            auth_failures: defaults::auth_failures(self.auth_failures_per_minute),
            trusted_proxies: self.trusted_proxies.clone(),
            screening: defaults::screening(self.screening_workers, self.screening_queue),
            reserved_author_names: self.reserved_author_names.clone(),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            moderator_tokens_file: self.moderator_tokens_file.clone(),
            cors_allow_origins: self.cors_allow_origins.clone(),
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            log: self.log.target(),
        }
    }
}

impl Config {
    /// The defaults, with the given data folder and an ephemeral port on
    /// loopback: what tests and benchmarks start from. Ignores the process's
    /// arguments and `COMMENTD_*` variables.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            data_dir: data_dir.into(),
            cache_mb: defaults::CACHE_MB,
            min_free_disk_mb: defaults::MIN_FREE_DISK_MB,
            max_text_chars: CommentText::DEFAULT_MAX_CHARS,
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            rate: RatePolicy::default(),
            duplicate_window: Duration::from_secs(defaults::DUPLICATE_WINDOW_SECS),
            spam: SpamPolicy::default(),
            profanity: ProfanityPolicy::default(),
            toxicity: ToxicityPolicy::default(),
            idempotency_ttl: Duration::from_secs(defaults::IDEMPOTENCY_TTL_HOURS * 3600),
            stream_buffer: defaults::STREAM_BUFFER,
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS,
            connections: ConnectionLimits {
                max_connections: defaults::MAX_CONNECTIONS,
                max_connections_per_address: defaults::MAX_CONNECTIONS_PER_ADDRESS,
                max_subscriptions_per_connection: defaults::MAX_SUBSCRIPTIONS_PER_CONNECTION,
                idle_timeout: Duration::from_secs(defaults::IDLE_TIMEOUT_SECS),
            },
            calls: CallLimits {
                max_streams: defaults::MAX_STREAMS,
                max_calls: defaults::MAX_CALLS,
                max_streams_per_address: defaults::MAX_STREAMS_PER_ADDRESS,
                request_timeout: Duration::from_secs(defaults::REQUEST_TIMEOUT_SECS),
            },
            keepalive_interval: Duration::from_secs(defaults::KEEPALIVE_INTERVAL_SECS),
            keepalive_timeout: Duration::from_secs(defaults::KEEPALIVE_TIMEOUT_SECS),
            peer_rate: RatePolicy::per_second(
                defaults::PEER_RATE_PER_SEC,
                2 * defaults::PEER_RATE_PER_SEC,
            ),
            check_rate: RatePolicy::per_second(
                defaults::CHECK_RATE_PER_SEC,
                2 * defaults::CHECK_RATE_PER_SEC,
            ),
            auth_failures: defaults::auth_failures(defaults::AUTH_FAILURES_PER_MINUTE),
            trusted_proxies: Vec::new(),
            screening: PoolSize::default(),
            reserved_author_names: defaults::RESERVED_AUTHOR_NAMES
                .split(',')
                .map(str::to_owned)
                .collect(),
            shutdown_grace: Duration::from_secs(defaults::SHUTDOWN_GRACE_SECS),
            moderator_tokens_file: None,
            cors_allow_origins: Vec::new(),
            tls: None,
            log: LogTarget::Sled,
        }
    }
}

/// Built-in defaults shared by the flags and [`Config::ephemeral`].
mod defaults {
    pub const CACHE_MB: u64 = 256;
    pub const MIN_FREE_DISK_MB: u64 = 64;
    pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
    pub const RATE_LIMIT_BURST: u32 = 3;
    pub const RATE_LIMIT_INTERVAL_MS: u64 = 3000;
    pub const DUPLICATE_WINDOW_SECS: u64 = 600;
    pub const MAX_LINKS: usize = 2;
    pub const IDEMPOTENCY_TTL_HOURS: u64 = 24;
    pub const STREAM_BUFFER: usize = 1024;
    pub const MAX_CONCURRENT_STREAMS: u32 = 1_000;
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 1_000;
    pub const MAX_STREAMS: usize = 20_000;
    pub const MAX_CALLS: usize = 2_048;
    pub const MAX_STREAMS_PER_ADDRESS: usize = 2_000;
    pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 500;
    pub const REQUEST_TIMEOUT_SECS: u64 = 10;
    pub const IDLE_TIMEOUT_SECS: u64 = 300;
    pub const KEEPALIVE_INTERVAL_SECS: u64 = 30;
    pub const KEEPALIVE_TIMEOUT_SECS: u64 = 10;
    pub const PEER_RATE_PER_SEC: u32 = 100;
    pub const CHECK_RATE_PER_SEC: u32 = 20;
    pub const AUTH_FAILURES_PER_MINUTE: u32 = 10;
    pub const RESERVED_AUTHOR_NAMES: &str =
        "admin,administrator,moderator,moderators,staff,editor,editors,commentd,system";
    pub const SHUTDOWN_GRACE_SECS: u64 = 10;

    /// `per_minute` failures, all of them allowed at once.
    pub fn auth_failures(per_minute: u32) -> super::RatePolicy {
        if per_minute == 0 {
            return super::RatePolicy::per_second(0, 0);
        }
        super::RatePolicy {
            burst: per_minute,
            interval: super::Duration::from_secs(60) / per_minute,
        }
    }

    /// 0 workers: one per core; 0 queue: 64 per worker.
    pub fn screening(workers: usize, queue: usize) -> super::PoolSize {
        let default = super::PoolSize::default();
        let workers = if workers == 0 {
            default.workers
        } else {
            workers
        };
        super::PoolSize {
            workers,
            queue: if queue == 0 { 64 * workers } else { queue },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_defaults_match_the_built_in_defaults() {
        let from_flags = Cli::parse_from(["commentd"]).serve.config();
        let built_in = Config::ephemeral("./data");
        assert_eq!(from_flags.rate, built_in.rate);
        assert_eq!(from_flags.spam, built_in.spam);
        assert_eq!(from_flags.profanity, built_in.profanity);
        assert_eq!(from_flags.toxicity, built_in.toxicity);
        assert_eq!(from_flags.duplicate_window, built_in.duplicate_window);
        assert_eq!(from_flags.max_message_bytes, built_in.max_message_bytes);
        assert_eq!(from_flags.connections, built_in.connections);
        assert_eq!(from_flags.peer_rate, built_in.peer_rate);
        assert_eq!(from_flags.check_rate, built_in.check_rate);
        assert_eq!(from_flags.auth_failures, built_in.auth_failures);
        assert_eq!(from_flags.screening, built_in.screening);
        assert_eq!(
            from_flags.reserved_author_names,
            built_in.reserved_author_names
        );
        assert_eq!(from_flags.calls, built_in.calls);
    }

    #[test]
    fn limits_and_timeouts_of_zero_are_refused() {
        for flag in [
            "--idle-timeout-secs",
            "--request-timeout-secs",
            "--max-streams",
            "--max-calls",
        ] {
            assert!(
                Cli::try_parse_from(["commentd", flag, "0"]).is_err(),
                "{flag} 0"
            );
        }
        assert!(Cli::try_parse_from(["commentd", "--max-calls", "1"]).is_ok());
    }

    #[test]
    fn no_subcommand_and_serve_take_the_same_flags() {
        let cli = Cli::parse_from(["commentd", "--listen", "0.0.0.0:9000"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen.port(), 9000);
        let cli = Cli::parse_from(["commentd", "serve", "--data-dir", "/tmp/x"]);
        assert!(matches!(cli.command, Some(Command::Serve(args)) if args.data_dir == *"/tmp/x"));
    }
}
