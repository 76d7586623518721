//! Training the learned comment classifiers (see
//! [`crate::screening::classifier`]) from labeled data; used by the
//! `commentd-train` binary (`train` and `eval`), built with the `train`
//! feature so that the server never links the CSV reader.
//!
//! # Data
//! - Spam: the YouTube Spam Collection (T. C. Alberto, J. V. Lochter,
//!   T. A. Almeida, "TubeSpam: Comment Spam Filtering on YouTube", ICMLA
//!   2015; UCI Machine Learning Repository, CC BY 4.0), read by
//!   [`load_youtube_spam`]: one CSV file per video.
//! - Offensive language: T. Davidson, D. Warmsley, M. Macy, I. Weber,
//!   "Automated Hate Speech Detection and the Problem of Offensive Language",
//!   ICWSM 2017 (MIT licence), read by [`load_davidson`]. Hate speech and
//!   offensive language are both positive; "neither" is negative.
//! - Toxicity (news incivility): posts from news sites' comment sections
//!   rated toxic (Civil Comments / Toxic Spans, J. Pavlopoulos et al., ACL
//!   2022; CC0), read by [`load_civil_toxic`], against clean text: the
//!   legitimate YouTube comments, the "neither" tweets and plain news text
//!   (news articles and editorial snippets, one a line, read by
//!   [`load_clean_text`] and cut into sentences). The clean news text keeps
//!   the model from learning "news vocabulary = toxic" (and the editorials,
//!   "sharp opinion = toxic"), since the news posts have no clean class of
//!   their own.
//! - Rows marked `training_only` are used to train and never scored (the
//!   spam model tried clean news text that way; see docs/FILTERS.md).
//!
//! # Model
//! Logistic regression over the classifier's hashed features (2^18 buckets),
//! fitted by FTRL-proximal SGD with a fixed shuffle seed, then quantised to
//! i8 weights: the quantised model is what ships, so it is also what every
//! score used for a decision here comes from. Only the offensive model adds
//! rustrict's category × severity findings as features.
//!
//! # Honest cross-validation
//! Comments under one video share authors, campaigns and wording, so a spam
//! model scored on comments from the videos it was trained on looks far
//! better than it is on a new video. [`folds`] therefore holds out whole
//! groups for spam (leave one video out); tweets have no such structure and
//! get stratified k-fold with a fixed seed. `commentd eval` trains with
//! [`train`] on each fold's training part only and scores the held-out part,
//! so every reported figure comes from comments the model never saw,
//! including during threshold selection.
//!
//! # Thresholds
//! Scores on training data are over-confident, so [`train`] chooses the
//! decision threshold on pooled out-of-fold scores from cross-validation over
//! its own input (the same [`folds`]), then fits the shipped model on all of
//! it:
//! - spam: the highest recall whose precision is at least
//!   [`SPAM_MIN_PRECISION`] (flagging a real reader as a spammer is the costly
//!   error);
//! - offensive: the highest negative accuracy (fewest clean comments flagged)
//!   whose recall is at least [`OFFENSIVE_MIN_RECALL`].
//!
//! Training is deterministic: the same rows in the same order give the same
//! model file, whatever the number of threads.

pub mod commands;
pub mod eval;

use std::collections::BTreeMap;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::screening::{
    Normalized,
    classifier::{self, FLAG_CONTENT_WORDS, FLAG_RUSTRICT, Model},
};

/// Hashed feature space: 2^18 buckets (256 KiB of i8 weights in memory).
pub const HASH_BITS: u8 = 18;
/// Spam threshold rule: highest recall with at least this precision.
pub const SPAM_MIN_PRECISION: f64 = 0.98;
/// Offensive threshold rule: highest negative accuracy with at least this
/// recall.
pub const OFFENSIVE_MIN_RECALL: f64 = 0.978;
/// Toxicity threshold rule: highest recall that flags at most this share of
/// the clean texts (holding a reader's ordinary comment is the costly error).
pub const TOXICITY_MAX_FALSE_POSITIVE_RATE: f64 = 0.005;
/// Folds of the threshold-choosing cross-validation when it is stratified
/// k-fold (always for offensive; for spam with fewer than two groups).
pub const THRESHOLD_FOLDS: usize = 5;

/// FTRL-proximal hyper-parameters of the spam model (chosen by
/// leave-one-video-out cross-validation).
const SPAM_FTRL: Ftrl = Ftrl {
    alpha: 1.0,
    beta: 1.0,
    l1: 1e-4,
    l2: 1e-3,
    epochs: 20,
};
/// FTRL-proximal hyper-parameters of the offensive model (chosen by
/// stratified 5-fold cross-validation).
const OFFENSIVE_FTRL: Ftrl = Ftrl {
    alpha: 0.1,
    beta: 1.0,
    l1: 0.0,
    l2: 0.0,
    epochs: 8,
};
/// Seed of the stratified fold assignment.
const FOLD_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
/// Seed of the per-epoch example shuffle in [`fit`].
const SHUFFLE_SEED: u64 = 12345;
/// Placeholder threshold for the quantised fold models (only their scores are
/// used).
const UNSET_THRESHOLD: f32 = 0.5;
/// Comments per featurisation job.
const FEATURIZE_CHUNK: usize = 1024;

/// Which classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// Comment spam (self-promotion, links, "check out my channel").
    Spam,
    /// Offensive language and hate speech.
    Offensive,
    /// Incivility in news comments: insults, attacks, threats.
    Toxicity,
}

impl ModelKind {
    /// Model flags: which optional feature families the model uses.
    fn flags(self) -> u8 {
        match self {
            Self::Spam => 0,
            Self::Offensive => FLAG_RUSTRICT,
            Self::Toxicity => FLAG_RUSTRICT | FLAG_CONTENT_WORDS,
        }
    }

    fn ftrl(self) -> Ftrl {
        match self {
            Self::Spam => SPAM_FTRL,
            Self::Offensive | Self::Toxicity => OFFENSIVE_FTRL,
        }
    }

    /// Decision threshold for pooled out-of-fold `(score, positive)` pairs.
    fn threshold(self, scores: &[(f32, bool)]) -> f32 {
        match self {
            Self::Spam => threshold_for_precision(scores, SPAM_MIN_PRECISION),
            Self::Offensive => threshold_for_recall(scores, OFFENSIVE_MIN_RECALL),
            Self::Toxicity => {
                threshold_for_false_positive_rate(scores, TOXICITY_MAX_FALSE_POSITIVE_RATE)
            }
        }
    }
}

/// One labeled comment; `group` = source file index (spam: one per video) or
/// fold.
#[derive(Debug, Clone, Default)]
pub struct LabeledComment {
    /// The comment as published (HTML entities and tags included).
    pub text: String,
    /// Spam, offensive language / hate speech, or toxic.
    pub positive: bool,
    /// Which source the comment came from; see [`folds`].
    pub group: usize,
    /// The data set it came from, for figures per source.
    pub source: &'static str,
    /// Every rater agreed on the label (Civil Comments: no rater ticked
    /// "not toxic"); true where a data set has one label per row.
    pub unanimous: bool,
    /// Used to train, never scored (see the module doc).
    pub training_only: bool,
}

/// Reading a labeled data set failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    /// The file could not be opened.
    #[error("cannot open {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid CSV (or not UTF-8).
    #[error("cannot read {} as CSV", path.display())]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    /// The header row lacks a column the loader needs.
    #[error("{}: no {column:?} column in the header row", path.display())]
    MissingColumn { path: PathBuf, column: &'static str },
    /// A label cell holds something other than the data set's class codes.
    #[error("{}, line {line}: unexpected {column} value {value:?}", path.display())]
    BadLabel {
        path: PathBuf,
        line: u64,
        column: &'static str,
        value: String,
    },
}

/// YouTube Spam Collection CSVs (COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS; header
/// row), group = file index.
///
/// Columns are found by header name; CLASS must be `1` (spam) or `0`. Rows
/// keep file order, and both the order and the grouping feed into training,
/// so pass the paths in a stable order (e.g. sorted) for reproducible models.
pub fn load_youtube_spam(paths: &[PathBuf]) -> Result<Vec<LabeledComment>, TrainingError> {
    let spam = |class: &str| match class {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    };
    let mut docs = Vec::new();
    for (group, path) in paths.iter().enumerate() {
        read_labeled_csv(path, group, "CONTENT", "CLASS", spam, &mut docs)?;
    }
    for doc in &mut docs {
        doc.source = "youtube";
    }
    Ok(docs)
}

/// Davidson CSV (row id, count, hate_speech, offensive_language, neither,
/// class, tweet); positive = class 0 or 1. group = 0.
///
/// Columns are found by header name (`class`, `tweet`); class must be 0
/// (hate speech), 1 (offensive language) or 2 (neither).
pub fn load_davidson(paths: &[PathBuf]) -> Result<Vec<LabeledComment>, TrainingError> {
    let offensive = |class: &str| match class {
        "0" | "1" => Some(true),
        "2" => Some(false),
        _ => None,
    };
    let mut docs = Vec::new();
    for path in paths {
        read_labeled_csv(path, 0, "tweet", "class", offensive, &mut docs)?;
    }
    for doc in &mut docs {
        doc.source = "davidson";
    }
    Ok(docs)
}

/// Civil Comments / Toxic Spans CSV (comment_id, text, raters,
/// not_toxic_votes, ...): every post positive, `unanimous` when
/// `not_toxic_votes` is 0. group = 0.
pub fn load_civil_toxic(paths: &[PathBuf]) -> Result<Vec<LabeledComment>, TrainingError> {
    let mut docs = Vec::new();
    for path in paths {
        let mut votes = Vec::new();
        read_labeled_csv(
            path,
            0,
            "text",
            "not_toxic_votes",
            |cell| {
                let parsed = cell.parse::<u32>().ok();
                votes.push(parsed == Some(0));
                parsed.map(|_| true)
            },
            &mut docs,
        )?;
        let first = docs.len() - votes.len();
        for (doc, unanimous) in docs[first..].iter_mut().zip(votes) {
            doc.unanimous = unanimous;
            doc.source = "civil-comments";
        }
    }
    Ok(docs)
}

/// Plain clean text (one article, paragraph or snippet a line; lines
/// starting with `#` skipped) cut at sentence ends, each sentence one
/// negative comment, group = 0. Single sentences rather than paragraphs:
/// many reader comments are one sentence, and a model that saw clean text
/// only in long pieces learns that short texts lean toxic. A file that is
/// not UTF-8 is read as Latin-1.
pub fn load_clean_text(paths: &[PathBuf]) -> Result<Vec<LabeledComment>, TrainingError> {
    let mut docs = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(|source| TrainingError::Io {
            path: path.to_owned(),
            source,
        })?;
        // Older corpora are Latin-1: read bytes that are not UTF-8 as such.
        let text = String::from_utf8(bytes)
            .unwrap_or_else(|error| error.into_bytes().iter().map(|&b| char::from(b)).collect());
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            docs.extend(
                line.split_inclusive(". ")
                    .filter(|sentence| !sentence.trim().is_empty())
                    .map(|sentence| clean_piece(sentence.to_owned())),
            );
        }
    }
    Ok(docs)
}

fn clean_piece(text: String) -> LabeledComment {
    LabeledComment {
        text: text.trim().to_owned(),
        source: "clean-text",
        unanimous: true,
        ..LabeledComment::default()
    }
}

/// Appends the comments of a CSV file with a header row to `docs`, in file
/// order and all in `group`, locating the text and label columns by
/// (case-insensitive) name and decoding the trimmed label cell with `label`.
fn read_labeled_csv(
    path: &Path,
    group: usize,
    text_column: &'static str,
    label_column: &'static str,
    mut label: impl FnMut(&str) -> Option<bool>,
    docs: &mut Vec<LabeledComment>,
) -> Result<(), TrainingError> {
    let csv_error = |source| TrainingError::Csv {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(|source| TrainingError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut reader = csv::Reader::from_reader(file);
    let headers = reader.headers().map_err(csv_error)?;
    let column = |name: &'static str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| TrainingError::MissingColumn {
                path: path.to_owned(),
                column: name,
            })
    };
    let (text_at, label_at) = (column(text_column)?, column(label_column)?);

    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, csv::Position::line);
        // Every record has the header's length (the reader is not flexible),
        // so a missing cell cannot happen; treat it as a bad label anyway.
        let class = record.get(label_at).unwrap_or_default().trim();
        let positive = label(class).ok_or_else(|| TrainingError::BadLabel {
            path: path.to_owned(),
            line,
            column: label_column,
            value: class.to_owned(),
        })?;
        let text = record.get(text_at).unwrap_or_default().to_owned();
        docs.push(LabeledComment {
            text,
            positive,
            group,
            unanimous: true,
            ..LabeledComment::default()
        });
    }
    Ok(())
}

/// Honest folds: Spam = leave-one-group-out when there are >= 2 groups (else
/// stratified k-fold); Offensive = stratified k-fold (deterministic seed).
/// Returns (train indices, test indices) per fold.
///
/// Every index is in exactly one test set, and never in its own fold's
/// training set. Indices are ascending within each set. `k` (at least 2) is
/// ignored for leave-one-group-out; folds that would have an empty test set
/// (more folds than comments) are left out.
#[must_use]
pub fn folds(kind: ModelKind, docs: &[LabeledComment], k: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    let by_group = kind == ModelKind::Spam && {
        let mut scored = docs.iter().filter(|d| !d.training_only);
        let first = scored.next().map(|d| d.group);
        scored.any(|d| Some(d.group) != first)
    };
    let assignment = if by_group {
        group_assignment(docs)
    } else {
        stratified_assignment(docs, k.max(2))
    };
    let n_folds = assignment.iter().max().map_or(0, |&f| f + 1);
    (0..n_folds)
        .map(|fold| {
            (0..docs.len())
                .partition::<Vec<usize>, _>(|&i| docs[i].training_only || assignment[i] != fold)
        })
        .filter(|(_, test)| !test.is_empty())
        .collect()
}

/// Fold of each comment for leave-one-group-out: the rank of its group.
fn group_assignment(docs: &[LabeledComment]) -> Vec<usize> {
    let mut rank: BTreeMap<usize, usize> = docs
        .iter()
        .filter(|d| !d.training_only)
        .map(|d| (d.group, 0))
        .collect();
    for (r, slot) in rank.values_mut().enumerate() {
        *slot = r;
    }
    docs.iter()
        .map(|d| rank.get(&d.group).copied().unwrap_or(0))
        .collect()
}

/// Fold of each comment for stratified k-fold: each class shuffled (positives
/// first, one seeded generator) and dealt round-robin.
fn stratified_assignment(docs: &[LabeledComment], k: usize) -> Vec<usize> {
    let mut assignment = vec![0; docs.len()];
    let mut rng = XorShift64(FOLD_SEED);
    for class in [true, false] {
        let mut members: Vec<usize> = (0..docs.len())
            .filter(|&i| docs[i].positive == class)
            .collect();
        rng.shuffle(&mut members);
        for (n, i) in members.into_iter().enumerate() {
            assignment[i] = n % k;
        }
    }
    assignment
}

/// Trains the production model on `docs` (FTRL-proximal LR with the
/// hyper-parameters the research chose, 2^18 buckets, i8 quantised, rustrict
/// features only for Offensive), choosing the threshold by inner
/// cross-validation on `docs` only (Spam: highest recall with precision >=
/// 97.5%; Offensive: highest negative accuracy with recall >= 97.8%), exactly
/// as the research did. Deterministic.
///
/// The cross-validation uses [`folds`] with [`THRESHOLD_FOLDS`]: one model
/// per fold, fitted on the fold's training part, scores its test part; the
/// rule is applied to the pooled scores. The returned model is fitted on all
/// of `docs`. With no positive (or no negative) comments the threshold
/// degenerates (flags nothing, or everything the rule allows).
#[must_use]
pub fn train(kind: ModelKind, docs: &[LabeledComment]) -> Model {
    let flags = kind.flags();
    let ftrl = kind.ftrl();
    let features = featurize(docs, flags);
    let labels: Vec<bool> = docs.iter().map(|d| d.positive).collect();
    let folds = folds(kind, docs, THRESHOLD_FOLDS);
    let everything: Vec<usize> = (0..docs.len()).collect();

    // Jobs 0..folds.len() are the cross-validation fits; the last job is the
    // production fit on everything.
    let mut models = parallel_map(folds.len() + 1, |job| {
        let rows = folds.get(job).map_or(&everything, |(train, _)| train);
        let (weights, bias) = fit(&features, &labels, rows, ftrl);
        Model::quantise(HASH_BITS, flags, bias, UNSET_THRESHOLD, &weights)
    });
    let mut model = models
        .pop()
        .expect("the production fit is always scheduled");

    let mut out_of_fold: Vec<(usize, f32)> = folds
        .iter()
        .zip(&models)
        .flat_map(|((_, test), fold_model)| {
            test.iter().map(|&i| {
                (
                    i,
                    classifier::sigmoid(fold_model.margin_features(&features[i])),
                )
            })
        })
        .collect();
    out_of_fold.sort_unstable_by_key(|&(i, _)| i);
    let pooled: Vec<(f32, bool)> = out_of_fold
        .into_iter()
        .map(|(i, score)| (score, labels[i]))
        .collect();
    model.threshold = kind.threshold(&pooled);
    model
}

/// Features of every comment, as the classifier extracts them at run time.
fn featurize(docs: &[LabeledComment], flags: u8) -> Vec<Vec<(u32, f32)>> {
    let chunks: Vec<&[LabeledComment]> = docs.chunks(FEATURIZE_CHUNK).collect();
    parallel_map(chunks.len(), |c| {
        chunks[c]
            .iter()
            .map(|doc| {
                let mut features = Vec::new();
                let text = Normalized::new(&doc.text);
                classifier::extract(&text, flags, HASH_BITS, None, &mut features);
                features
            })
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// FTRL-proximal hyper-parameters (McMahan et al., "Ad Click Prediction: a
/// View from the Trenches", KDD 2013). The bias is unregularised.
#[derive(Debug, Clone, Copy)]
struct Ftrl {
    /// Learning-rate scale.
    alpha: f32,
    /// Learning-rate smoothing.
    beta: f32,
    /// L1 strength (sparsity).
    l1: f32,
    /// L2 strength.
    l2: f32,
    /// Passes over the training rows, each in a fresh shuffled order.
    epochs: usize,
}

impl Ftrl {
    /// The weight implied by the accumulators `z` and `n` of one coordinate.
    fn weight(&self, z: f32, n: f32) -> f32 {
        if z.abs() <= self.l1 {
            0.0
        } else {
            -(z - z.signum() * self.l1) / ((self.beta + n.sqrt()) / self.alpha + self.l2)
        }
    }

    fn bias(&self, z: f32, n: f32) -> f32 {
        -z / ((self.beta + n.sqrt()) / self.alpha)
    }
}

/// Fits logistic regression by FTRL-proximal on the rows `rows` of
/// `features`/`labels`. Returns (dense weights, bias).
fn fit(features: &[Vec<(u32, f32)>], labels: &[bool], rows: &[usize], p: Ftrl) -> (Vec<f32>, f32) {
    let dim = 1usize << HASH_BITS;
    let mut z = vec![0f32; dim];
    let mut n = vec![0f32; dim];
    let (mut z_bias, mut n_bias) = (0f32, 0f32);
    let mut order = rows.to_vec();
    let mut rng = XorShift64(SHUFFLE_SEED);
    for _ in 0..p.epochs {
        rng.shuffle(&mut order);
        for &row in &order {
            let x = &features[row];
            let bias = p.bias(z_bias, n_bias);
            let mut margin = bias;
            for &(j, v) in x {
                margin += p.weight(z[j as usize], n[j as usize]) * v;
            }
            let target = if labels[row] { 1.0 } else { 0.0 };
            let g = classifier::sigmoid(margin) - target;

            let sigma = ((n_bias + g * g).sqrt() - n_bias.sqrt()) / p.alpha;
            z_bias += g - sigma * bias;
            n_bias += g * g;
            for &(j, v) in x {
                let j = j as usize;
                let w = p.weight(z[j], n[j]);
                let gj = g * v;
                let sigma = ((n[j] + gj * gj).sqrt() - n[j].sqrt()) / p.alpha;
                z[j] += gj - sigma * w;
                n[j] += gj * gj;
            }
        }
    }
    let weights = z.iter().zip(&n).map(|(&z, &n)| p.weight(z, n)).collect();
    (weights, p.bias(z_bias, n_bias))
}

/// Spam rule: the lowest threshold (so the highest recall) at which the
/// flagged comments have at least `min_precision` precision. Cut points lie
/// midway between distinct scores; if none qualifies, the threshold is just
/// above the highest score (nothing is flagged).
fn threshold_for_precision(scores: &[(f32, bool)], min_precision: f64) -> f32 {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best = sorted.first().map_or(0.5, |&(top, _)| top + 1e-6);
    let (mut tp, mut fp) = (0usize, 0usize);
    for (k, &(score, positive)) in sorted.iter().enumerate() {
        if positive {
            tp += 1;
        } else {
            fp += 1;
        }
        let next = sorted.get(k + 1).map(|&(s, _)| s);
        if next == Some(score) {
            continue; // a cut point cannot split equal scores
        }
        if tp as f64 / (tp + fp) as f64 >= min_precision {
            best = next.map_or(score, |next| 0.5 * (score + next));
        }
    }
    best
}

/// Toxicity rule: the lowest threshold (so the most positives flagged) that
/// flags at most `max_rate` of the negatives; midway between the highest
/// negative score it lets through and the next higher score.
fn threshold_for_false_positive_rate(scores: &[(f32, bool)], max_rate: f64) -> f32 {
    let mut negatives: Vec<f32> = scores.iter().filter(|s| !s.1).map(|s| s.0).collect();
    negatives.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_rate * negatives.len() as f64).floor() as usize;
    match negatives.get(allowed) {
        // Every negative at or below this score passes.
        Some(&passing) => {
            let above = scores
                .iter()
                .map(|s| s.0)
                .filter(|&s| s > passing)
                .reduce(f32::min);
            above.map_or(passing + 1e-6, |above| 0.5 * (passing + above))
        }
        None => scores.iter().map(|s| s.0).reduce(f32::min).unwrap_or(0.5),
    }
}

/// Offensive rule: the highest threshold (so the fewest negatives flagged)
/// that still flags at least `min_recall` of the positives; midway between
/// the last positive it must flag and the next lower score. Without
/// positives, just above the highest score.
fn threshold_for_recall(scores: &[(f32, bool)], min_recall: f64) -> f32 {
    let mut positives: Vec<f32> = scores.iter().filter(|s| s.1).map(|s| s.0).collect();
    positives.sort_by(|a, b| b.total_cmp(a));
    if positives.is_empty() {
        return scores
            .iter()
            .map(|s| s.0)
            .reduce(f32::max)
            .map_or(0.5, |top| top + 1e-6);
    }
    let needed = ((min_recall * positives.len() as f64).ceil() as usize).clamp(1, positives.len());
    let lowest_flagged = positives[needed - 1];
    let below = scores
        .iter()
        .map(|s| s.0)
        .filter(|&s| s < lowest_flagged)
        .reduce(f32::max);
    below.map_or(lowest_flagged, |below| 0.5 * (lowest_flagged + below))
}

/// Runs `job(0..jobs)` on up to `available_parallelism` threads; results in
/// job order. A panicking job panics the caller.
fn parallel_map<T: Send>(jobs: usize, job: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(jobs);
    if workers <= 1 {
        return (0..jobs).map(job).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= jobs {
                            break mine;
                        }
                        mine.push((i, job(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, result)| result).collect()
}

/// xorshift64: a tiny fixed-seed generator, so folds and shuffles are the
/// same on every platform and release (and match the research runs).
struct XorShift64(u64);

impl XorShift64 {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Fisher–Yates shuffle.
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAMMY: [&str; 8] = [
        "check out my channel http://x.com/{}",
        "please subscribe to my channel {} thanks",
        "CHECK OUT MY NEW VIDEO {} http://bit.ly/{}",
        "free gift cards at http://www.win-{}.com now",
        "follow me on twitter @promo{} and check my channel",
        "hey guys check out my music channel, subscribe {}",
        "make money from home {} visit http://cash.net/{}",
        "like and subscribe to my channel for {} giveaways",
    ];
    const NORMAL: [&str; 8] = [
        "this song reminds me of summer {}",
        "the chorus at 2:{} gives me chills",
        "who else is listening to this in 20{}",
        "i love the dancing in this video so much",
        "her voice is beautiful, best song of {}",
        "my little brother sings this all day {}",
        "the beat drop at 1:{} is amazing",
        "still a classic after all these years, {} times watched",
    ];

    fn synthetic() -> Vec<LabeledComment> {
        let mut docs = Vec::new();
        for i in 0..40 {
            for (templates, positive) in [(&SPAMMY, true), (&NORMAL, false)] {
                docs.push(LabeledComment {
                    text: templates[i % templates.len()].replace("{}", &(10 + i).to_string()),
                    positive,
                    group: i % 2,
                    ..LabeledComment::default()
                });
            }
        }
        docs
    }

    #[test]
    fn trained_spam_model_separates_synthetic_data() {
        let docs = synthetic();
        let model = train(ModelKind::Spam, &docs);
        assert_eq!((model.hash_bits, model.flags), (HASH_BITS, 0));
        assert!(model.threshold > 0.0 && model.threshold < 1.0, "{model:?}");
        let flagged = |text: &str| model.is_flagged(&Normalized::new(text));
        for doc in &docs {
            assert_eq!(flagged(&doc.text), doc.positive, "{:?}", doc.text);
        }
        assert!(flagged(
            "check out my channel and subscribe http://y.com/99"
        ));
        assert!(!flagged("i love this song, the chorus is beautiful"));
    }

    #[test]
    fn training_is_deterministic_and_round_trips() {
        let docs = synthetic();
        let bytes = train(ModelKind::Spam, &docs).to_bytes();
        assert_eq!(bytes, train(ModelKind::Spam, &docs).to_bytes());
        let loaded = Model::from_bytes(&bytes).expect("a trained model loads");
        assert_eq!(loaded.to_bytes(), bytes);
    }

    #[test]
    fn offensive_model_uses_rustrict_features() {
        let docs: Vec<LabeledComment> = (0..12)
            .flat_map(|i| {
                [
                    (format!("shut up you stupid bitch {i}"), true),
                    (format!("what a lovely morning at the beach {i}"), false),
                ]
            })
            .map(|(text, positive)| LabeledComment {
                text,
                positive,
                ..LabeledComment::default()
            })
            .collect();
        let model = train(ModelKind::Offensive, &docs);
        assert_eq!(model.flags, FLAG_RUSTRICT);
        assert!(model.is_flagged(&Normalized::new("you stupid bitch")));
        assert!(!model.is_flagged(&Normalized::new("a lovely morning at the beach")));
    }

    fn assert_partition(folds: &[(Vec<usize>, Vec<usize>)], n: usize) {
        let mut tested = vec![0; n];
        for (train, test) in folds {
            assert!(!test.is_empty());
            let mut both: Vec<usize> = train.iter().chain(test).copied().collect();
            both.sort_unstable();
            assert_eq!(
                both,
                (0..n).collect::<Vec<_>>(),
                "train and test overlap or miss"
            );
            for &i in test {
                tested[i] += 1;
            }
        }
        assert!(tested.iter().all(|&t| t == 1), "{tested:?}");
    }

    #[test]
    fn folds_are_honest_partitions() {
        let mut docs = synthetic();
        for (i, doc) in docs.iter_mut().enumerate() {
            doc.group = [7, 3, 3, 9, 7][i % 5];
        }
        // Spam with several groups: leave one group out, in group order.
        let spam = folds(ModelKind::Spam, &docs, 5);
        assert_eq!(spam.len(), 3);
        assert_partition(&spam, docs.len());
        for ((_, test), group) in spam.iter().zip([3, 7, 9]) {
            assert!(test.iter().all(|&i| docs[i].group == group));
        }
        // Offensive (groups ignored): stratified k-fold.
        for k in [2, 3, 5, 7] {
            let offensive = folds(ModelKind::Offensive, &docs, k);
            assert_eq!(offensive.len(), k);
            assert_partition(&offensive, docs.len());
            for (_, test) in &offensive {
                // 40 of each class, dealt round-robin: every fold is balanced.
                let positives = test.iter().filter(|&&i| docs[i].positive).count();
                assert_eq!(2 * positives, test.len());
            }
        }
        // Spam with one group falls back to stratified k-fold.
        docs.iter_mut().for_each(|d| d.group = 0);
        let single = folds(ModelKind::Spam, &docs, 4);
        assert_eq!(single.len(), 4);
        assert_partition(&single, docs.len());
        // Degenerate sizes.
        assert!(folds(ModelKind::Offensive, &[], 5).is_empty());
        assert_partition(&folds(ModelKind::Offensive, &docs[..3], 5), 3);
        assert_eq!(folds(ModelKind::Spam, &docs, 0).len(), 2);
    }

    #[test]
    fn threshold_rules() {
        let scores = [
            (0.9, true),
            (0.8, true),
            (0.7, false),
            (0.6, true),
            (0.2, false),
        ];
        assert!((threshold_for_precision(&scores, 0.975) - 0.75).abs() < 1e-6);
        assert!((threshold_for_precision(&scores, 0.7) - 0.4).abs() < 1e-6);
        assert!((threshold_for_precision(&scores, 0.6) - 0.2).abs() < 1e-6);
        assert!(threshold_for_precision(&[(0.9, false)], 0.975) > 0.9);
        assert!((threshold_for_recall(&scores, 0.6) - 0.75).abs() < 1e-6);
        assert!((threshold_for_recall(&scores, 1.0) - 0.4).abs() < 1e-6);
        assert!(threshold_for_recall(&[(0.9, false)], 0.978) > 0.9);
        assert!((threshold_for_recall(&[], 0.978) - 0.5).abs() < 1e-6);
        // Negatives 0.7, 0.7, 0.2: at most a third flagged lets 0.7 through.
        assert!((threshold_for_false_positive_rate(&scores, 0.34) - 0.75).abs() < 1e-6);
        assert!((threshold_for_false_positive_rate(&scores, 0.0) - 0.75).abs() < 1e-6);
        assert!((threshold_for_false_positive_rate(&scores, 0.67) - 0.4).abs() < 1e-6);
    }

    #[test]
    fn training_only_rows_are_never_tested() {
        let mut docs = synthetic();
        for doc in docs.iter_mut().step_by(3) {
            doc.training_only = true;
        }
        for kind in [ModelKind::Spam, ModelKind::Toxicity] {
            for (train, test) in folds(kind, &docs, 5) {
                assert!(test.iter().all(|&i| !docs[i].training_only));
                assert!(
                    docs.iter()
                        .enumerate()
                        .all(|(i, d)| !d.training_only || train.contains(&i))
                );
            }
        }
    }

    #[test]
    fn loads_civil_comments_and_clean_text() -> Result<(), TrainingError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let civil = write(
            &dir,
            "c.csv",
            "comment_id,text,raters,not_toxic_votes,whole_post_toxic_votes,span_types\n\
             1,\"idiots, all of them\",3,0,1,Insult:3\n\
             2,borderline,3,2,0,Other toxicity:1\n",
        );
        let docs = load_civil_toxic(&[civil])?;
        assert_eq!(
            summary(&docs),
            [("idiots, all of them", true, 0), ("borderline", true, 0)]
        );
        assert!(docs[0].unanimous && !docs[1].unanimous);
        let long = format!("{}. {}. Short end.", "a".repeat(200), "b".repeat(200));
        let clean = write(&dir, "n.cor", &format!("# comment\nOne. Two.\n\n{long}\n"));
        let docs = load_clean_text(&[clean])?;
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        assert_eq!(texts.len(), 5, "{texts:?}");
        assert_eq!(texts[..2], ["One.", "Two."]);
        assert_eq!(texts[4], "Short end.");
        assert!(docs.iter().all(|d| !d.positive && d.text.len() <= 201));
        Ok(())
    }

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("temp file is writable");
        path
    }

    /// `(text, positive, group)` of each loaded comment.
    fn summary(docs: &[LabeledComment]) -> Vec<(&str, bool, usize)> {
        docs.iter()
            .map(|d| (d.text.as_str(), d.positive, d.group))
            .collect()
    }

    #[test]
    fn loads_youtube_spam_csv() -> Result<(), TrainingError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = write(
            &dir,
            "a.csv",
            "COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS\n\
             id1,Ann,2014-01-01,\"Hi, check out\nmy \"\"channel\"\"\",1\n\
             id2,Bob,2014-01-02,nice song,0\n",
        );
        let b = write(
            &dir,
            "b.csv",
            "COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS\r\nid3,Cy,2015-01-01,\"<a href=\"\"http://x\"\">2:19</a>, wow\",0\r\n",
        );
        let docs = load_youtube_spam(&[a.clone(), b])?;
        assert_eq!(
            summary(&docs),
            [
                ("Hi, check out\nmy \"channel\"", true, 0),
                ("nice song", false, 0),
                ("<a href=\"http://x\">2:19</a>, wow", false, 1),
            ]
        );

        let bad = write(
            &dir,
            "bad.csv",
            "COMMENT_ID,AUTHOR,DATE,CONTENT,CLASS\nx,y,z,text,spam\n",
        );
        match load_youtube_spam(&[a, bad.clone()]) {
            Err(TrainingError::BadLabel {
                path,
                line: 2,
                value,
                ..
            }) => {
                assert_eq!((path, value.as_str()), (bad, "spam"));
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.path().join("missing.csv");
        match load_youtube_spam(std::slice::from_ref(&missing)) {
            Err(e @ TrainingError::Io { .. }) => {
                assert!(e.to_string().contains("missing.csv"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        Ok(())
    }

    #[test]
    fn loads_davidson_csv() -> Result<(), TrainingError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(
            &dir,
            "d.csv",
            ",count,hate_speech,offensive_language,neither,class,tweet\n\
             0,3,0,0,3,2,\"hello, world\"\n\
             1,3,0,3,0,1,\"two\nlines, \"\"quoted\"\"\"\n\
             2,3,2,1,0,0,plain\n",
        );
        let docs = load_davidson(std::slice::from_ref(&path))?;
        assert_eq!(
            summary(&docs),
            [
                ("hello, world", false, 0),
                ("two\nlines, \"quoted\"", true, 0),
                ("plain", true, 0),
            ]
        );

        let no_tweet = write(&dir, "n.csv", ",count,class\n0,3,1\n");
        assert!(matches!(
            load_davidson(&[no_tweet]),
            Err(TrainingError::MissingColumn {
                column: "tweet",
                ..
            })
        ));
        let ragged = write(&dir, "r.csv", ",class,tweet\n0,1,a\n1,2\n");
        assert!(matches!(
            load_davidson(&[ragged]),
            Err(TrainingError::Csv { .. })
        ));
        Ok(())
    }
}
