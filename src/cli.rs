//! The subcommands besides `serve`: `train`, `eval` and `healthcheck`. They
//! print reports to standard output (the server itself only logs).

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use anyhow::Context;

use crate::{
    config::{EvalArgs, HealthcheckArgs, ModelChoice, TrainArgs},
    evaluation::{self, Metrics},
    moderation::Models,
    training::{self, LabeledComment, ModelKind},
};

fn kind(choice: ModelChoice) -> ModelKind {
    match choice {
        ModelChoice::Spam => ModelKind::Spam,
        ModelChoice::Offensive => ModelKind::Offensive,
    }
}

/// Loads the files in name order, so folds and models do not depend on the
/// order they were given in.
fn load(kind: ModelKind, paths: &[PathBuf]) -> anyhow::Result<Vec<LabeledComment>> {
    let mut paths = paths.to_vec();
    paths.sort();
    let paths = &paths;
    let items = match kind {
        ModelKind::Spam => training::load_youtube_spam(paths),
        ModelKind::Offensive => training::load_davidson(paths),
    }
    .context("loading labeled data")?;
    anyhow::ensure!(!items.is_empty(), "no labeled rows in {paths:?}");
    Ok(items)
}

/// `commentd train`: fit a model on the files and write it.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let kind = kind(args.kind);
    let items = load(kind, &args.data)?;
    let started = std::time::Instant::now();
    let model = training::train(kind, &items);
    let bytes = model.to_bytes();
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "trained {kind:?} on {} rows ({} positive) in {:.1} s: threshold {:.3}, {} non-zero weights, {} bytes -> {}",
        items.len(),
        items.iter().filter(|i| i.positive).count(),
        started.elapsed().as_secs_f64(),
        model.threshold,
        model.weights.iter().filter(|w| **w != 0).count(),
        bytes.len(),
        args.out.display()
    );
    Ok(())
}

/// `commentd eval`: print the figures; returns false when a floor is missed.
pub fn eval(args: &EvalArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !args.spam.is_empty() || !args.offensive.is_empty(),
        "give --spam and/or --offensive files"
    );
    let embedded = Models::embedded().map_err(anyhow::Error::msg)?;
    let mut all_met = true;
    for (name, kind, paths) in [
        ("spam", ModelKind::Spam, &args.spam),
        ("offensive", ModelKind::Offensive, &args.offensive),
    ] {
        if paths.is_empty() {
            continue;
        }
        let items = load(kind, paths)?;
        let metrics = if args.cross_validate {
            evaluation::cross_validate(kind, &items, args.folds)
        } else {
            let pipeline = evaluation::pipeline_with(embedded.clone());
            let refs: Vec<&LabeledComment> = items.iter().collect();
            evaluation::evaluate(&pipeline, evaluation::filter_of(kind), &refs)
        };
        let method = if args.cross_validate {
            match kind {
                ModelKind::Spam => "leave-one-file-out cross-validation".to_owned(),
                ModelKind::Offensive => format!("{}-fold cross-validation", args.folds),
            }
        } else {
            "embedded model".to_owned()
        };
        println!("{name} filter: {} items, {method}", metrics.total());
        println!("{metrics}");
        if kind == ModelKind::Offensive {
            let pipeline = evaluation::pipeline_with(embedded.clone());
            let sized = evaluation::sized_latency(&pipeline, &items, 500);
            println!(
                "  500-byte comments: {} screened, p50 {:.0} µs, p99 {:.0} µs, {:.2} MB/s",
                sized.total(),
                sized.latency_percentile(0.5).as_secs_f64() * 1e6,
                sized.latency_percentile(0.99).as_secs_f64() * 1e6,
                sized.megabytes_per_second()
            );
        }
        all_met &= check_floors(name, &metrics, &args.floors);
    }
    Ok(all_met)
}

fn check_floors(name: &str, metrics: &Metrics, floors: &[(String, f64)]) -> bool {
    let mut met = true;
    for (floor_name, floor) in floors {
        let Some(figure) = floor_name
            .strip_prefix(name)
            .and_then(|f| f.strip_prefix('.'))
        else {
            continue;
        };
        let value = 100.0
            * match figure {
                "accuracy" => metrics.accuracy(),
                "precision" => metrics.precision(),
                "recall" => metrics.recall(),
                _ => metrics.negative_accuracy(),
            };
        if value < *floor {
            println!("  FLOOR MISSED: {floor_name} = {value:.2}% < {floor:.2}%");
            met = false;
        } else {
            println!("  floor met: {floor_name} = {value:.2}% >= {floor:.2}%");
        }
    }
    met
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
