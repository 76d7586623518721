//! The `commentd` binary: parse flags, start logging, serve until a signal.

use std::process::ExitCode;

use clap::Parser;
use commentd::{
    Application,
    app::shutdown_signal,
    cli,
    config::{Cli, Command},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(cli.serve)) {
        Command::Serve(args) => {
            let telemetry = telemetry::init(args.log_format, args.otlp_endpoint.as_deref())?;
            let application = Application::build(args.config()).await?;
            let served = application.run_until_stopped(shutdown_signal()).await;
            telemetry.shutdown().await;
            served?;
        }
        Command::RebuildViews(args) => {
            telemetry::init(commentd::config::LogFormat::Text, None)?;
            cli::rebuild_views(&args).await?;
        }
        Command::MigrateToNats(args) => {
            telemetry::init(commentd::config::LogFormat::Text, None)?;
            cli::migrate_to_nats(&args).await?;
        }
        Command::Healthcheck(args) => {
            if !cli::healthcheck(&args).await {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
