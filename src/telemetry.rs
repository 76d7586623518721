//! Logging and traces: `tracing` to stderr, text or JSON, filtered by
//! `RUST_LOG`; with the `otlp` feature and an endpoint, spans are also
//! exported over OTLP/gRPC.
//!
//! Every call runs in an `rpc` span (see [`crate::metrics`]), with the
//! handler's span (article id, decision) and the screening and store spans
//! inside it; JSON lines carry the fields of the spans they happen in.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::config::LogFormat;

/// Flushes exported spans on [`Telemetry::shutdown`].
#[derive(Default)]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (a no-op without an exporter).
    pub async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            // Blocking, and its exports run on this runtime: off the
            // worker threads.
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(error) = provider.shutdown() {
                    eprintln!("flushing traces failed: {error}");
                }
            })
            .await;
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default `info`.
/// `otlp_endpoint` (e.g. `http://collector:4317`) needs the `otlp` feature
/// and a tokio runtime.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let output = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(output);
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::trace::TracerProvider;

        let provider = otlp_endpoint.map(otlp::provider).transpose()?;
        let layer = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer().with_tracer(provider.tracer("commentd"))
        });
        // Already installed (tests start several servers in one process):
        // keep it.
        let _ = registry.with(layer).try_init();
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        if otlp_endpoint.is_some() {
            anyhow::bail!(
                "--otlp-endpoint needs a commentd built with the `otlp` feature (cargo build --release --features otlp)"
            );
        }
        let _ = registry.try_init();
        Ok(Telemetry::default())
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::Arc;

    use anyhow::Context;
    use opentelemetry_otlp::WithExportConfig;
    use opentelemetry_sdk::{
        Resource,
        error::{OTelSdkError, OTelSdkResult},
        trace::{SdkTracerProvider, SpanData, SpanExporter},
    };

    /// A provider exporting to `endpoint` in batches.
    pub fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("the OTLP exporter needs a tokio runtime")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .with_context(|| format!("invalid OTLP endpoint {endpoint:?}"))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(OnRuntime {
                inner: Arc::new(exporter),
                runtime,
            })
            .with_resource(
                Resource::builder()
                    .with_service_name("commentd")
                    .with_attribute(opentelemetry::KeyValue::new(
                        "service.version",
                        env!("CARGO_PKG_VERSION"),
                    ))
                    .build(),
            )
            .build();
        Ok(provider)
    }

    /// Runs the exporter's calls on the application's runtime: the SDK's
    /// batch processor exports from a thread of its own, where tonic's
    /// client would find no reactor.
    #[derive(Debug)]
    struct OnRuntime<E> {
        inner: Arc<E>,
        runtime: tokio::runtime::Handle,
    }

    impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let inner = self.inner.clone();
            self.runtime
                .spawn(async move { inner.export(batch).await })
                .await
                .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?
        }

        fn shutdown_with_timeout(&mut self, timeout: std::time::Duration) -> OTelSdkResult {
            match Arc::get_mut(&mut self.inner) {
                Some(inner) => inner.shutdown_with_timeout(timeout),
                None => Ok(()),
            }
        }
    }
}
