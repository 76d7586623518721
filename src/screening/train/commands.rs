//! `commentd-train train` and `commentd-train eval`: flags and reports.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{
    LabeledComment, ModelKind, eval, load_civil_toxic, load_clean_text, load_davidson,
    load_youtube_spam,
};
use crate::screening::{Models, classifier::Model};

/// Trains and measures commentd's screening models (docs/FILTERS.md).
#[derive(Debug, Parser)]
#[command(version)]
pub struct TrainCli {
    #[command(subcommand)]
    pub command: TrainCommand,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train a classifier from labeled files and write the model file.
    Train(TrainArgs),
    /// Measure the filters on labeled files, as CheckComment judges them.
    Eval(EvalArgs),
}

/// Which classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    Spam,
    Offensive,
    Toxicity,
}

impl From<ModelChoice> for ModelKind {
    fn from(choice: ModelChoice) -> Self {
        match choice {
            ModelChoice::Spam => Self::Spam,
            ModelChoice::Offensive => Self::Offensive,
            ModelChoice::Toxicity => Self::Toxicity,
        }
    }
}

/// The labeled files; which of them a classifier reads is said in [`load`].
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// YouTube Spam Collection CSV files (spam; their legitimate comments
    /// are clean examples for toxicity).
    #[arg(long, num_args = 1..)]
    pub spam: Vec<PathBuf>,
    /// Davidson et al. CSV files (offensive; their "neither" tweets are
    /// clean examples for toxicity).
    #[arg(long, num_args = 1..)]
    pub offensive: Vec<PathBuf>,
    /// Civil Comments / Toxic Spans CSV files (toxicity positives).
    #[arg(long, num_args = 1..)]
    pub toxic: Vec<PathBuf>,
    /// Plain clean text, one article or paragraph a line (toxicity
    /// negatives).
    #[arg(long, num_args = 1..)]
    pub clean: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The classifier to train.
    #[arg(long, value_enum)]
    pub kind: ModelChoice,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the model (e.g. src/screening/models/spam.bin).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct EvalArgs {
    /// The labeled files: each filter is measured whose files are given
    /// (spam: --spam; offensive: --offensive; toxicity: --toxic, with
    /// --clean, --spam and --offensive as clean examples).
    #[command(flatten)]
    pub data: DataArgs,
    /// Ordinary news comments, one a line: the share the whole pipeline
    /// (embedded models, or those of --models) approves. Never used for training.
    #[arg(long)]
    pub ordinary: Option<PathBuf>,
    /// Cross-validate: screen each fold with a model trained on the other
    /// folds only (spam: leave one file out; others: k-fold), instead of
    /// the embedded models.
    #[arg(long)]
    pub cross_validate: bool,
    /// Screen with the model files of this folder (spam.bin, offensive.bin,
    /// toxicity.bin; any missing one stays embedded) instead of the
    /// embedded models: checks a retrained model before it is built in.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Folds for k-fold cross-validation.
    #[arg(long, default_value_t = 5)]
    pub folds: usize,
    /// Exit 1 when a figure is below its floor: NAME=PERCENT, where NAME is
    /// spam|offensive|toxicity . accuracy|precision|recall|negative_accuracy,
    /// toxicity.unanimous_recall (news posts every rater judged toxic) or
    /// ordinary.approved (repeatable).
    #[arg(long = "floor", value_parser = parse_floor)]
    pub floors: Vec<(String, f64)>,
}

fn parse_floor(raw: &str) -> Result<(String, f64), String> {
    let (name, value) = raw
        .split_once('=')
        .ok_or_else(|| "expected NAME=PERCENT".to_owned())?;
    let known = ["accuracy", "precision", "recall", "negative_accuracy"];
    let valid = matches!(name, "toxicity.unanimous_recall" | "ordinary.approved")
        || name.split_once('.').is_some_and(|(kind, figure)| {
            matches!(kind, "spam" | "offensive" | "toxicity") && known.contains(&figure)
        });
    if !valid {
        return Err(format!("unknown figure {name:?}"));
    }
    let value: f64 = value
        .parse()
        .map_err(|_| format!("not a number: {value:?}"))?;
    Ok((name.to_owned(), value))
}

/// The labeled data of one classifier, from the files given. Files are read
/// in name order, so folds and models do not depend on the order given.
fn load(kind: ModelKind, data: &DataArgs) -> anyhow::Result<Vec<LabeledComment>> {
    let DataArgs {
        spam,
        offensive,
        toxic,
        clean,
    } = data;
    let sorted = |paths: &[PathBuf]| {
        let mut paths = paths.to_vec();
        paths.sort();
        paths
    };
    let mut items = match kind {
        // Clean news text teaches the spam model news vocabulary, as
        // training-only legitimate rows (YouTube's comments alone are scored);
        // with it the model needs a higher minimum precision
        // (SPAM_MIN_PRECISION, docs/FILTERS.md).
        ModelKind::Spam => {
            let mut items = load_youtube_spam(&sorted(spam))?;
            items.extend(
                load_clean_text(&sorted(clean))?
                    .into_iter()
                    .map(|mut item| {
                        item.training_only = true;
                        item
                    }),
            );
            items
        }
        ModelKind::Offensive => load_davidson(&sorted(offensive))?,
        ModelKind::Toxicity => {
            let mut items = load_civil_toxic(&sorted(toxic))?;
            items.extend(load_clean_text(&sorted(clean))?);
            let clean_only =
                |loaded: Vec<LabeledComment>| loaded.into_iter().filter(|item| !item.positive);
            items.extend(clean_only(load_youtube_spam(&sorted(spam))?));
            items.extend(clean_only(load_davidson(&sorted(offensive))?));
            items
        }
    };
    items.retain(|item| !item.text.trim().is_empty());
    anyhow::ensure!(
        items.iter().any(|i| i.positive) && items.iter().any(|i| !i.positive),
        "{kind:?} needs positive and negative rows: check the files given"
    );
    Ok(items)
}

/// `commentd-train train`: fit a model on the files and write it.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let kind = ModelKind::from(args.kind);
    let items = load(kind, &args.data).context("loading labeled data")?;
    let started = std::time::Instant::now();
    let model = super::train(kind, &items);
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

/// `commentd-train eval`: print the figures; returns false when a floor is
/// missed.
pub fn eval(args: &EvalArgs) -> anyhow::Result<bool> {
    let mut models = Models::embedded()?;
    if let Some(dir) = &args.models {
        for (file, slot) in [
            ("spam.bin", &mut models.spam),
            ("offensive.bin", &mut models.offensive),
            ("toxicity.bin", &mut models.toxicity),
        ] {
            let path = dir.join(file);
            if path.exists() {
                let bytes = std::fs::read(&path)?;
                let model = Model::from_bytes(&bytes)
                    .map_err(|error| error.context(&path.display().to_string()))?;
                *slot = Some(Arc::new(model));
            }
        }
    }
    let mut figures: Vec<(String, f64)> = Vec::new();
    for (name, kind, given) in [
        ("spam", ModelKind::Spam, !args.data.spam.is_empty()),
        (
            "offensive",
            ModelKind::Offensive,
            !args.data.offensive.is_empty(),
        ),
        ("toxicity", ModelKind::Toxicity, !args.data.toxic.is_empty()),
    ] {
        if !given {
            continue;
        }
        let items = load(kind, &args.data)?;
        let (metrics, breakdown) = if args.cross_validate {
            eval::cross_validate(kind, &items, args.folds)
        } else {
            let pipeline = eval::pipeline_with(models.clone());
            let scored: Vec<&LabeledComment> = items.iter().filter(|i| !i.training_only).collect();
            let metrics = eval::evaluate(&pipeline, eval::filters_of(kind), &scored);
            (metrics, eval::Breakdown::default())
        };
        let method = match (args.cross_validate, kind) {
            (false, _) => "embedded model".to_owned(),
            (true, ModelKind::Spam) => "leave-one-file-out cross-validation".to_owned(),
            (true, _) => format!("{}-fold cross-validation", args.folds),
        };
        println!("{name} filter: {} items, {method}", metrics.total());
        println!("{metrics}");
        for (part, part_metrics) in &breakdown.parts {
            println!(
                "  {part}: {} items, flagged {:.2}% of positives, passed {:.2}% of negatives",
                part_metrics.total(),
                100.0 * part_metrics.recall(),
                100.0 * part_metrics.negative_accuracy()
            );
        }
        for (figure, value) in [
            ("accuracy", metrics.accuracy()),
            ("precision", metrics.precision()),
            ("recall", metrics.recall()),
            ("negative_accuracy", metrics.negative_accuracy()),
        ] {
            figures.push((format!("{name}.{figure}"), 100.0 * value));
        }
        if let Some(unanimous) = breakdown.get("civil-comments/unanimous") {
            figures.push((
                "toxicity.unanimous_recall".to_owned(),
                100.0 * unanimous.recall(),
            ));
        }
        if kind == ModelKind::Offensive {
            let pipeline = eval::pipeline_with(models.clone());
            let sized = eval::sized_latency(&pipeline, &items, 500);
            println!(
                "  500-byte comments: {} screened, p50 {:.0} µs, p99 {:.0} µs, {:.2} MB/s",
                sized.total(),
                sized.latency_percentile(0.5).as_secs_f64() * 1e6,
                sized.latency_percentile(0.99).as_secs_f64() * 1e6,
                sized.megabytes_per_second()
            );
        }
    }
    if let Some(path) = &args.ordinary {
        let lines =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let pipeline = eval::pipeline_with(models.clone());
        let (total, not_approved) = eval::ordinary(&pipeline, &lines);
        let approved = 100.0 * (total - not_approved.len()) as f64 / total.max(1) as f64;
        let by = args
            .models
            .as_ref()
            .map_or("the embedded models".to_owned(), |dir| {
                format!("the models in {}", dir.display())
            });
        println!(
            "ordinary news comments ({}): {total} screened by {by}, {approved:.2}% approved",
            path.display()
        );
        for line in &not_approved {
            println!("  not approved: {line}");
        }
        figures.push(("ordinary.approved".to_owned(), approved));
    }
    long_text_cost(&models);
    Ok(check_floors(&figures, &args.floors))
}

/// Prints the slowest screening of a few 5,000-character texts built to hit
/// rustrict's and the features' slow paths (the bound is 5 ms each).
fn long_text_cost(models: &Models) {
    let pipeline = eval::pipeline_with(models.clone());
    // The first screening builds rustrict's word trie (about 15 ms): not a
    // cost of any text.
    if let Ok(warm_up) = crate::domain::CommentText::parse("Warming up.", usize::MAX) {
        let _ = pipeline.screen(None, &warm_up);
    }
    let texts = [
        ("\"x x x ...\"", "x ".repeat(2500)),
        ("one 5,000-letter word", "a".repeat(5000)),
        ("\"xxx...\"", "x".repeat(5000)),
        ("\"x.x.x...\"", "x.".repeat(2500)),
        ("\"x-x x-x...\"", "x-x ".repeat(1250)),
        ("\"xy xy...\"", "xy ".repeat(1666)),
        ("\"s s s...\"", "s ".repeat(2500)),
        ("\"o o o...\"", "o ".repeat(2500)),
        ("spaced-out swearing", "f u c k ".repeat(625)),
        ("single letters between words", "x yy ".repeat(1000)),
        ("l33t and symbols", "$h1t @ss ".repeat(555)),
        (
            "symbols and x k l i at random",
            scrambled("*(x|!#@kli ", 5000),
        ),
        ("symbols at random", scrambled("*(|!#@)[]{}<>", 5000)),
        ("x k l i at random", scrambled("xkli ", 5000)),
        (
            "look-alikes just under the obfuscation share",
            scrambled("*(nmrtsdh ", 5000),
        ),
        (
            "letters at random",
            scrambled("abcdefghijklmnopqrstuvwxyz  ", 5000),
        ),
        (
            "sentences",
            "The council voted 7 to 2 on the budget. ".repeat(122),
        ),
    ];
    let cost = |text: &str, runs: usize| {
        let Ok(text) = crate::domain::CommentText::parse(text, usize::MAX) else {
            return std::time::Duration::ZERO;
        };
        (0..runs)
            .map(|_| {
                let started = std::time::Instant::now();
                let _ = pipeline.screen(None, &text);
                started.elapsed()
            })
            .max()
            .unwrap_or_default()
    };
    for (name, text) in texts {
        println!(
            "  5,000 characters of {name}: slowest of 5 screenings {:.2} ms",
            cost(&text, 5).as_secs_f64() * 1e3
        );
    }
    // Every printable ASCII character and a few look-alikes, alone, spaced
    // and dotted, and every pair of lower-case letters, spaced.
    let mut patterns: Vec<String> = (' '..='~')
        .chain(['×', 'х', 'о', 'ｘ', 'é'])
        .flat_map(|c| [c.to_string(), format!("{c} "), format!("{c}.")])
        .collect();
    for a in 'a'..='z' {
        patterns.extend(('a'..='z').map(|b| format!("{a}{b} ")));
    }
    let (slowest, pattern) = patterns
        .iter()
        .map(|pattern| {
            let text = pattern.repeat(5000 / pattern.chars().count());
            (cost(&text, 1), pattern.as_str())
        })
        .max()
        .unwrap_or_default();
    println!(
        "  5,000 characters of any of {} one- and two-letter patterns: slowest {:.2} ms ({pattern:?} repeated)",
        patterns.len(),
        slowest.as_secs_f64() * 1e3
    );
}

/// `length` characters drawn from `alphabet` by a fixed pseudo-random sequence.
fn scrambled(alphabet: &str, length: usize) -> String {
    let alphabet: Vec<char> = alphabet.chars().collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..length)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            alphabet[(state >> 33) as usize % alphabet.len()]
        })
        .collect()
}

fn check_floors(figures: &[(String, f64)], floors: &[(String, f64)]) -> bool {
    let mut met = true;
    for (name, floor) in floors {
        match figures.iter().find(|(figure, _)| figure == name) {
            Some((_, value)) if value >= floor => {
                println!("  floor met: {name} = {value:.2}% >= {floor:.2}%");
            }
            Some((_, value)) => {
                println!("  FLOOR MISSED: {name} = {value:.2}% < {floor:.2}%");
                met = false;
            }
            None => {
                println!("  FLOOR NOT MEASURED: {name} (give the files it needs)");
                met = false;
            }
        }
    }
    met
}
