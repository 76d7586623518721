//! Prometheus metrics, served on a listener of their own.
//!
//! Each [`Application`](crate::Application) owns one [`Metrics`] (its own
//! registry, no process-global recorder), so servers running side by side
//! in one test binary do not count into each other. RPC figures come from
//! [`RpcMetricsLayer`], a tower layer that sees every gRPC call (gRPC-web
//! included, after translation); the use cases count what only they know
//! (decisions, reasons, refusals). Labels take values from small fixed sets
//! (method names, status codes, decisions, reason codes): never an article,
//! client or comment id.
//!
//! Names follow Prometheus conventions: `commentd_` prefix, `_total` for
//! counters, base units (`_seconds`, `_bytes`).

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use http_body::{Body, Frame, SizeHint};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};
use tokio::net::TcpListener;
use tonic::codegen::http;
use tracing::{Instrument, Span, field};

/// The RPC methods counted by name; anything else counts as "other".
const METHODS: &[&str] = &[
    "comments.v1.CommentService/SubmitComment",
    "comments.v1.CommentService/CheckComment",
    "comments.v1.CommentService/GetComment",
    "comments.v1.CommentService/ListComments",
    "comments.v1.CommentService/SubscribeComments",
    "comments.v1.ModerationService/ListHeldComments",
    "comments.v1.ModerationService/ModerateComment",
    "comments.v1.ModerationService/GetArticle",
    "comments.v1.ModerationService/UpdateArticle",
    "comments.v1.ModerationService/ListTerms",
    "comments.v1.ModerationService/AddTerms",
    "comments.v1.ModerationService/RemoveTerms",
    "comments.v1.ModerationService/BanClient",
    "comments.v1.ModerationService/UnbanClient",
    "comments.v1.ModerationService/ListBans",
    "comments.v1.ModerationService/ListAuditEvents",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Methods whose response is a stream: their duration is how long a client
/// listened, not how fast the server answered, so no latency is recorded.
const STREAMING: &[&str] = &[
    "comments.v1.CommentService/SubscribeComments",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Whether `path` (`/package.Service/Method`) is a method whose response
/// is a stream.
pub fn is_streaming(path: &str) -> bool {
    STREAMING.contains(&path.trim_start_matches('/'))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: &'static str,
    pub code: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub filter: &'static str,
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms .. about 6.5 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// What the log writer reports per durable group.
#[derive(Debug, Clone)]
pub struct CommitMetrics {
    /// Appends per group made durable.
    pub batch_appends: Histogram,
    /// Time to write and sync one group.
    pub duration: Histogram,
    /// Groups whose write failed or was refused (disk full).
    pub errors: Counter,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        Self {
            batch_appends: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            duration: latency_histogram(),
            errors: Counter::default(),
        }
    }
}

/// Every metric commentd exports.
pub struct Metrics {
    registry: Registry,
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: HistogramFamily<MethodLabels>,
    pub submissions: Family<DecisionLabels, Counter>,
    pub reasons: Family<ReasonLabels, Counter>,
    pub screening_duration: Histogram,
    pub commits: CommitMetrics,
    pub store_size: Gauge,
    pub disk_free: Gauge,
    pub held_comments: Gauge,
    pub subscribers: Gauge,
    pub open_calls: Gauge,
    pub connections: Gauge,
    pub subscriber_lags: Counter,
    pub subscriber_catch_ups: Counter,
    /// Calls refused by a rate limit, by limit.
    pub rate_limited: Family<LimitLabels, Counter>,
    /// Calls or connections refused because a capacity limit was reached.
    pub capacity_refusals: Family<LimitLabels, Counter>,
    pub duplicates: Counter,
    pub serving: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("commentd");
        let metrics = Self {
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(latency_histogram),
            submissions: Family::default(),
            reasons: Family::default(),
            screening_duration: latency_histogram(),
            commits: CommitMetrics::default(),
            store_size: Gauge::default(),
            disk_free: Gauge::default(),
            held_comments: Gauge::default(),
            subscribers: Gauge::default(),
            open_calls: Gauge::default(),
            connections: Gauge::default(),
            subscriber_lags: Counter::default(),
            subscriber_catch_ups: Counter::default(),
            rate_limited: Family::default(),
            capacity_refusals: Family::default(),
            duplicates: Counter::default(),
            serving: Gauge::default(),
            registry: Registry::default(),
        };
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("COMMENTD_COMMIT"),
            })
            .set(1);
        let r = &mut registry;
        r.register(
            "build_info",
            "Version and commit of this binary (always 1)",
            build_info,
        );
        r.register(
            "rpc_requests",
            "gRPC calls finished, by method and status code",
            metrics.rpc_requests.clone(),
        );
        r.register_with_unit(
            "rpc_duration",
            "Time from a unary call's request to the end of its response, by method",
            Unit::Seconds,
            metrics.rpc_duration.clone(),
        );
        r.register(
            "submissions",
            "Screened submissions, by decision",
            metrics.submissions.clone(),
        );
        r.register(
            "screening_reasons",
            "Findings of the filters on submissions, by filter and reason code",
            metrics.reasons.clone(),
        );
        r.register_with_unit(
            "screening_duration",
            "Time to screen one comment (submissions and checks)",
            Unit::Seconds,
            metrics.screening_duration.clone(),
        );
        r.register(
            "commit_batch_appends",
            "Appends made durable per group commit",
            metrics.commits.batch_appends.clone(),
        );
        r.register_with_unit(
            "commit_duration",
            "Time to write and sync one group commit (with a NATS log: to acknowledged and mirrored)",
            Unit::Seconds,
            metrics.commits.duration.clone(),
        );
        r.register(
            "commit_errors",
            "Group commits that failed or were refused (disk full)",
            metrics.commits.errors.clone(),
        );
        r.register_with_unit(
            "store_size",
            "Size of the data folder on disk",
            Unit::Bytes,
            metrics.store_size.clone(),
        );
        r.register_with_unit(
            "disk_free",
            "Free space on the data folder's disk",
            Unit::Bytes,
            metrics.disk_free.clone(),
        );
        r.register(
            "held_comments",
            "Comments waiting for a moderator",
            metrics.held_comments.clone(),
        );
        r.register(
            "subscribers",
            "Live SubscribeComments streams",
            metrics.subscribers.clone(),
        );
        r.register(
            "open_calls",
            "Calls and streams in progress",
            metrics.open_calls.clone(),
        );
        r.register(
            "connections",
            "Open client connections",
            metrics.connections.clone(),
        );
        r.register(
            "subscriber_lags",
            "Times a subscriber fell behind its article's buffer",
            metrics.subscriber_lags.clone(),
        );
        r.register(
            "subscriber_catch_ups",
            "Catch-ups from the store that brought a lagging subscriber back to live",
            metrics.subscriber_catch_ups.clone(),
        );
        r.register(
            "rate_limited",
            "Calls refused by a rate limit, by limit (client_id, address, check, auth)",
            metrics.rate_limited.clone(),
        );
        r.register(
            "capacity_refusals",
            "Calls and connections refused at a capacity limit, by limit",
            metrics.capacity_refusals.clone(),
        );
        r.register(
            "duplicates",
            "Submissions found to repeat a recent text of the same client",
            metrics.duplicates.clone(),
        );
        r.register(
            "serving",
            "1 while the server reports SERVING, 0 otherwise",
            metrics.serving.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts one refusal by rate limit.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// Counts one refusal at a capacity limit.
    pub fn refused_at_capacity(&self, limit: &'static str) {
        self.capacity_refusals
            .get_or_create(&LimitLabels { limit })
            .inc();
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped;
/// `refresh` runs before each scrape (gauges read from the store).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    refresh: Arc<dyn Fn() + Send + Sync>,
) {
    use hyper::{Method, Response, StatusCode, server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "metrics listener cannot accept; retrying shortly");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        let refresh = refresh.clone();
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let scrape = request.method() == Method::GET && request.uri().path() == "/metrics";
            let metrics = metrics.clone();
            let refresh = refresh.clone();
            async move {
                let response = if scrape {
                    // Reads the store (the held queue, sizes): off the
                    // async threads.
                    let text = tokio::task::spawn_blocking(move || {
                        refresh();
                        metrics.encode()
                    })
                    .await
                    .unwrap_or_default();
                    Response::builder()
                        .header(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(http_body_util::Full::<bytes::Bytes>::from(text))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(http_body_util::Full::<bytes::Bytes>::from(
                            "only /metrics is served here\n",
                        ))
                };
                Ok::<_, Infallible>(response.expect("a valid response"))
            }
        });
        tokio::spawn(async move {
            let connection = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            // A scraper that stalls is dropped with its connection.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), connection).await;
        });
    }
}

/// Binds the metrics listener (port 0 picks a free one).
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Counts every gRPC call by method and status, times unary ones, and
/// runs each in an `rpc` span (method, status) that the handlers' spans
/// nest in.
#[derive(Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<Metrics>,
}

impl RpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path().trim_start_matches('/');
        let method = METHODS
            .iter()
            .copied()
            .find(|known| *known == path)
            .unwrap_or("other");
        let span = tracing::info_span!("rpc", rpc.method = method, grpc.status = field::Empty);
        let call = Call {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            code: None,
            span: span.clone(),
        };
        let response = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let response = response.await?;
            let mut call = call;
            // A trailers-only response (an error) carries its status here.
            call.code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .map(code_name);
            Ok(response.map(|body| ObservedBody { body, call }))
        })
    }
}

/// One call being observed; recorded when its response body is dropped.
struct Call {
    metrics: Arc<Metrics>,
    method: &'static str,
    started: Instant,
    code: Option<&'static str>,
    span: Span,
}

impl Drop for Call {
    fn drop(&mut self) {
        // No status: the client went away (or the stream was reset) first.
        let code = self.code.unwrap_or("CANCELLED");
        self.span.record("grpc.status", code);
        self.metrics
            .rpc_requests
            .get_or_create(&RpcLabels {
                method: self.method,
                code,
            })
            .inc();
        if !STREAMING.contains(&self.method) {
            self.metrics
                .rpc_duration
                .get_or_create(&MethodLabels {
                    method: self.method,
                })
                .observe(self.started.elapsed().as_secs_f64());
        }
    }
}

/// A response body that reads the status from the trailers.
pub struct ObservedBody<B> {
    body: B,
    call: Call,
}

impl<B: Body + Unpin> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(code) = trailers
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
        {
            self.call.code = Some(code_name(code));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The name of a `grpc-status` value.
fn code_name(value: &str) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    value
        .parse::<usize>()
        .ok()
        .and_then(|code| NAMES.get(code).copied())
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_the_build_info_and_prefixed_names() {
        let metrics = Metrics::new();
        metrics
            .submissions
            .get_or_create(&DecisionLabels {
                decision: "approved",
            })
            .inc();
        let text = metrics.encode();
        assert!(text.contains("commentd_build_info{version=\""), "{text}");
        assert!(
            text.contains("commentd_submissions_total{decision=\"approved\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE commentd_screening_duration_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn status_codes_have_names() {
        assert_eq!(code_name("0"), "OK");
        assert_eq!(code_name("16"), "UNAUTHENTICATED");
        assert_eq!(code_name("99"), "UNKNOWN");
        assert_eq!(code_name("x"), "UNKNOWN");
    }
}
