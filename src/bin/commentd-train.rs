//! `commentd-train`: trains and measures the screening models. Built only
//! with `--features train`, so the server binary stays free of it.

use std::process::ExitCode;

use clap::Parser;
use commentd::screening::train::commands::{self, TrainCli, TrainCommand};

fn main() -> anyhow::Result<ExitCode> {
    match TrainCli::parse().command {
        TrainCommand::Train(args) => commands::train(&args)?,
        TrainCommand::Eval(args) => {
            if !commands::eval(&args)? {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
