//! The application: opens the store, binds the listener, wires the services,
//! and runs until a shutdown signal.
//!
//! Shutdown order: report NOT_SERVING, end live streams (with UNAVAILABLE, so
//! clients resume elsewhere or later), stop accepting and let in-flight
//! calls finish (up to the grace period), then flush and close the store.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch};
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Identity, Server, ServerTlsConfig},
};
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    api::{CommentApi, ModerationApi, pb},
    auth::{ModeratorAuth, ModeratorTokens},
    comments::{Comments, SubmitLimits},
    config::{Config, LogTarget},
    domain::ReservedNames,
    hub::Hub,
    metrics::{self, Metrics, RpcMetricsLayer},
    moderators::Moderators,
    peer::TrustedProxies,
    screening::{Models, Pipeline, TermList, pool::ScreeningPool},
    store::{CommitListener, Store, StoreOptions, Writability},
    transport::{self, CallLimitLayer},
};

/// Initial HTTP/2 connection window: large enough for thousands of streams
/// on one connection (h2 closes a connection near 2,000 open streams with
/// the default window).
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

type CommentServer = pb::comment_service_server::CommentServiceServer<CommentApi>;
type ModerationServer = pb::moderation_service_server::ModerationServiceServer<ModerationApi>;

pub struct Application {
    config: Config,
    listener: TcpListener,
    local_addr: SocketAddr,
    metrics: Arc<Metrics>,
    metrics_listener: Option<TcpListener>,
    store: Store,
    comments: Arc<Comments>,
    moderators: Arc<Moderators>,
    moderator_tokens: ModeratorTokens,
    trusted_proxies: TrustedProxies,
    tls: Option<ServerTlsConfig>,
    shutdown: watch::Sender<bool>,
}

impl Application {
    /// Opens the store and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let hub = Arc::new(Hub::new(config.stream_buffer, 0));
        let publish_to = hub.clone();
        let store_options = StoreOptions {
            idempotency_ttl: config.idempotency_ttl,
            cache_bytes: config.cache_mb * 1024 * 1024,
            min_free_bytes: config.min_free_disk_mb * 1024 * 1024,
            commit_metrics: metrics.commits.clone(),
        };
        let on_commit: CommitListener =
            Box::new(move |events, durable_through| publish_to.publish(events, durable_through));
        let store = open_store(&config, &store_options, on_commit).await?;
        hub.publish(&[], store.last_position());
        let terms = Arc::new(TermList::new(&store.terms()?));
        let moderator_tokens = match &config.moderator_tokens_file {
            Some(path) => ModeratorTokens::load(path)?,
            None => ModeratorTokens::default(),
        };
        if moderator_tokens.is_empty() {
            tracing::warn!("no moderator tokens configured: ModerationService refuses every call");
        }
        let tls = match &config.tls {
            Some((cert, key)) => {
                let cert = std::fs::read(cert)
                    .with_context(|| format!("cannot read TLS certificate {}", cert.display()))?;
                let key = std::fs::read(key)
                    .with_context(|| format!("cannot read TLS key {}", key.display()))?;
                Some(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            }
            None => None,
        };

        let listener = transport::bind(config.listen)
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(
                metrics::bind(address)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {address}"))?,
            ),
            None => None,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let trusted_proxies = TrustedProxies::parse(&config.trusted_proxies)?;
        let reserved_names =
            ReservedNames::new(config.reserved_author_names.iter().map(String::as_str));
        let pipeline = Pipeline::new(
            config.profanity,
            config.spam,
            config.toxicity,
            terms.clone(),
            Models::embedded()?,
        );
        let comments = Arc::new(Comments::new(
            store.clone(),
            hub,
            ScreeningPool::new(pipeline, config.screening, metrics.clone()),
            &SubmitLimits {
                client_rate: config.rate,
                peer_rate: config.peer_rate,
                check_rate: config.check_rate,
                duplicate_window: config.duplicate_window,
                max_text_chars: config.max_text_chars,
            },
            reserved_names,
            metrics.clone(),
            shutdown_rx,
        ));
        let moderators = Arc::new(Moderators::new(store.clone(), terms));
        Ok(Self {
            config,
            listener,
            local_addr,
            metrics,
            metrics_listener,
            store,
            comments,
            moderators,
            moderator_tokens,
            trusted_proxies,
            tls,
            shutdown,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            local_addr,
            metrics,
            metrics_listener,
            store,
            comments,
            moderators,
            moderator_tokens,
            trusted_proxies,
            tls,
            shutdown,
        } = self;
        let metrics_server = metrics_listener.map(|listener| {
            let refresh_store = store.clone();
            let refresh_metrics = metrics.clone();
            let data_dir = config.data_dir.clone();
            let refresh = Arc::new(move || {
                let metrics = &refresh_metrics;
                if let Ok(size) = refresh_store.size_on_disk() {
                    metrics
                        .store_size
                        .set(i64::try_from(size).unwrap_or(i64::MAX));
                }
                if let Ok(free) = fs2::available_space(&data_dir) {
                    metrics
                        .disk_free
                        .set(i64::try_from(free).unwrap_or(i64::MAX));
                }
                metrics
                    .held_comments
                    .set(i64::try_from(refresh_store.held_count()).unwrap_or(i64::MAX));
            });
            tokio::spawn(metrics::serve(listener, metrics.clone(), refresh))
        });

        let (health, health_service) = tonic_health::server::health_reporter();
        let health_service = health_service.max_decoding_message_size(config.max_message_bytes);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?
            .max_decoding_message_size(config.max_message_bytes);
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?
            .max_decoding_message_size(config.max_message_bytes);
        let comment_service = CommentServer::new(CommentApi::new(
            comments,
            trusted_proxies.clone(),
            config.connections.max_subscriptions_per_connection,
            metrics.clone(),
        ))
        .max_decoding_message_size(config.max_message_bytes);
        let moderation_service = InterceptedService::new(
            ModerationServer::new(ModerationApi::new(moderators))
                .max_decoding_message_size(config.max_message_bytes),
            ModeratorAuth::new(
                moderator_tokens,
                config.auth_failures,
                trusted_proxies.clone(),
                metrics.clone(),
            ),
        );
        let serving = Arc::new(Serving {
            health: health.clone(),
            metrics: metrics.clone(),
            stopped: tokio::sync::Mutex::new(false),
        });
        serving.set(true).await;
        // For liveness probes: SERVING while the process runs, whatever
        // the store's state (a restart does not cure a full disk).
        health
            .set_service_status("liveness", tonic_health::ServingStatus::Serving)
            .await;
        // NOT_SERVING while the store refuses writes (a full disk), SERVING
        // again once it takes them; ends at shutdown.
        tokio::spawn(report_writability(
            store.writability(),
            serving.clone(),
            shutdown.subscribe(),
        ));

        let mut stopping = shutdown.subscribe();
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .context("invalid TLS configuration")?;
        }
        let cors = cors_layer(&config.cors_allow_origins)?;
        let server = builder
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_concurrent_streams(config.max_concurrent_streams)
            .http2_keepalive_interval(Some(config.keepalive_interval))
            .http2_keepalive_timeout(Some(config.keepalive_timeout))
            // gRPC-web for browsers: HTTP/1.1 accepted and translated by
            // tonic-web; CORS only for the configured origins.
            .accept_http1(true)
            .layer(cors)
            .layer(tonic_web::GrpcWebLayer::new())
            // Inside gRPC-web: sees gRPC-web calls as gRPC, after
            // translation, and counts the limits' refusals too.
            .layer(RpcMetricsLayer::new(metrics.clone()))
            // Inside CORS and gRPC-web, so that browsers can read its
            // refusals and timeouts.
            .layer(CallLimitLayer::new(
                config.calls,
                trusted_proxies.clone(),
                metrics.clone(),
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(comment_service)
            .add_service(moderation_service)
            // The accept loop sets TCP_NODELAY itself (with
            // `serve_with_incoming*` the builder's TCP settings are ignored).
            .serve_with_incoming_shutdown(
                transport::incoming(
                    listener,
                    config.connections,
                    trusted_proxies.clone(),
                    metrics.clone(),
                ),
                async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                },
            );
        tokio::pin!(server);
        tracing::info!("commentd listening on {local_addr}");

        tokio::select! {
            result = &mut server => result.context("the gRPC server failed")?,
            () = signal => {
                tracing::info!("shutdown signal received; finishing in-flight calls");
                let _ = shutdown.send(true);
                serving.stop().await;
                match tokio::time::timeout(config.shutdown_grace, &mut server).await {
                    Ok(result) => result.context("the gRPC server failed")?,
                    Err(_) => tracing::warn!(
                        grace = ?config.shutdown_grace,
                        "in-flight calls did not finish within the grace period"
                    ),
                }
            }
        }
        if let Some(metrics_server) = metrics_server {
            metrics_server.abort();
        }
        store
            .close()
            .await
            .context("flushing the store on shutdown")?;
        tracing::info!("commentd stopped");
        Ok(())
    }
}

/// The services' health and the metric that mirrors it; once stopped,
/// nothing reports SERVING again.
struct Serving {
    health: HealthReporter,
    metrics: Arc<Metrics>,
    stopped: tokio::sync::Mutex<bool>,
}

impl Serving {
    async fn set(&self, serving: bool) {
        let stopped = self.stopped.lock().await;
        if !*stopped {
            set_serving(&self.health, &self.metrics, serving).await;
        }
    }

    async fn stop(&self) {
        let mut stopped = self.stopped.lock().await;
        *stopped = true;
        set_serving(&self.health, &self.metrics, false).await;
    }
}

/// The store over the configured log.
async fn open_store(
    config: &Config,
    options: &StoreOptions,
    on_commit: CommitListener,
) -> anyhow::Result<Store> {
    match &config.log {
        LogTarget::Sled => Store::open(&config.data_dir, options, on_commit).with_context(|| {
            format!(
                "cannot open the data folder {} (is another commentd using it, or is it not writable?)",
                config.data_dir.display()
            )
        }),
        #[cfg(feature = "nats")]
        LogTarget::Nats {
            servers,
            stream,
            replicas,
            timeout,
        } => Store::open_nats(
            &config.data_dir,
            options,
            crate::store::nats_log::NatsLogOptions {
                servers: servers.clone(),
                stream: stream.clone(),
                replicas: *replicas,
                duplicate_window: options.idempotency_ttl,
                timeout: *timeout,
                metrics: options.commit_metrics.clone(),
            },
            on_commit,
        )
        .await
        .with_context(|| {
            format!(
                "cannot open the replica's store in {} over the NATS log",
                config.data_dir.display()
            )
        }),
        #[cfg(not(feature = "nats"))]
        LogTarget::Nats { .. } => anyhow::bail!(
            "--log nats://… needs a commentd built with the `nats` feature (cargo build --release --features nats)"
        ),
    }
}

async fn report_writability(
    mut writability: watch::Receiver<Writability>,
    serving: Arc<Serving>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        let writable = *writability.borrow_and_update() == Writability::Writable;
        serving.set(writable).await;
        tokio::select! {
            changed = writability.changed() => if changed.is_err() { return },
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}

async fn set_serving(health: &HealthReporter, metrics: &Metrics, serving: bool) {
    metrics.serving.set(i64::from(serving));
    let status = if serving {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    for service in [
        "comments.v1.CommentService",
        "comments.v1.ModerationService",
    ] {
        health.set_service_status(service, status).await;
    }
}

/// CORS for gRPC-web calls from the given origins; with none, no
/// cross-origin call is allowed (the layer adds no headers).
fn cors_layer(origins: &[String]) -> anyhow::Result<CorsLayer> {
    use tonic::codegen::http::{HeaderName, HeaderValue, Method};
    let layer = CorsLayer::new()
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(
            [
                "content-type",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "authorization",
            ]
            .map(HeaderName::from_static),
        )
        .expose_headers(
            ["grpc-status", "grpc-message", "grpc-status-details-bin"].map(HeaderName::from_static),
        )
        .max_age(std::time::Duration::from_secs(3600));
    if origins.iter().any(|origin| origin == "*") {
        return Ok(layer.allow_origin(AllowOrigin::any()));
    }
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin).with_context(|| format!("invalid CORS origin {origin:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(layer.allow_origin(AllowOrigin::list(origins)))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
