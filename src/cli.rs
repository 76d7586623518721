//! The subcommands besides `serve`: `healthcheck`, `rebuild-views`,
//! `migrate-to-nats`. It prints to standard
//! output (the server itself only logs). Training and measuring the models
//! is the `commentd-train` binary's work (`--features train`).

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use crate::{
    config::{DataDirArgs, HealthcheckArgs, LogTarget, MigrateArgs},
    store::{Store, StoreOptions},
};

/// `commentd rebuild-views`: applies the whole log to the views, as every
/// start does (they are held in memory), and drops views an earlier version
/// wrote to disk; prints how far they reach and how long it took: a check
/// of the log and of the time a start takes.
pub async fn rebuild_views(args: &DataDirArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let store = Store::open(
        &args.data_dir,
        &StoreOptions::default(),
        Box::new(|_, _| {}),
    )?;
    let applied = store.last_position();
    store.close().await?;
    println!(
        "views rebuilt from the log up to position {applied} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `commentd migrate-to-nats`: publishes the sled log into the stream;
/// prints what it did.
pub async fn migrate_to_nats(args: &MigrateArgs) -> anyhow::Result<()> {
    let LogTarget::Nats {
        servers,
        stream,
        replicas,
        timeout,
    } = args.log.target()
    else {
        anyhow::bail!("--log must name the NATS servers (nats://host:4222) to migrate to");
    };
    #[cfg(feature = "nats")]
    {
        let started = std::time::Instant::now();
        let options = StoreOptions::default();
        let db = Store::open_db(&args.data_dir, &options)?;
        let migrated = crate::store::nats_log::publish_sled_log(
            &db,
            &crate::store::nats_log::NatsLogOptions {
                servers,
                stream: stream.clone(),
                replicas,
                duplicate_window: options.idempotency_ttl,
                timeout,
                metrics: crate::metrics::CommitMetrics::default(),
            },
        )
        .await?;
        println!(
            "published {} events into the stream {stream} in {:.1} s; it holds positions 1 to {}, so comment ids are unchanged and new ones continue above",
            migrated.published,
            started.elapsed().as_secs_f64(),
            migrated.last
        );
        Ok(())
    }
    #[cfg(not(feature = "nats"))]
    {
        let _ = (servers, stream, replicas, timeout);
        anyhow::bail!(
            "this commentd was built without the `nats` feature (cargo build --release --features nats)"
        )
    }
}

/// `commentd healthcheck`: true when the server answers SERVING in time.
pub async fn healthcheck(args: &HealthcheckArgs) -> bool {
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(timeout)
            .connect()
            .await?;
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        let response = client
            .check(tonic_health::pb::HealthCheckRequest {
                service: args.service.clone(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(status)) => {
            println!("{addr}: {}", status.as_str_name());
            status == tonic_health::pb::health_check_response::ServingStatus::Serving
        }
        Ok(Err(error)) => {
            println!("{addr}: unhealthy: {error:#}");
            false
        }
        Err(_) => {
            println!("{addr}: no answer within {timeout:?}");
            false
        }
    }
}
