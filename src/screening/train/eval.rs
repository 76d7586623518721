//! Measuring the filters on labeled comments, exactly as `CheckComment`
//! would judge them.
//!
//! An item counts as *flagged* by a filter when the pipeline's decision is
//! not APPROVED and at least one non-approving reason comes from that
//! filter. Figures: accuracy, precision, recall, negative accuracy (the share
//! of clean items passed), the confusion matrix, and throughput of the whole
//! pipeline (MB/s and comments/s on one thread) with latency percentiles.
//!
//! With cross-validation, each fold's model is trained on the other folds
//! only ([`super::folds`]), so no figure comes from a comment the model was
//! trained on.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{self as training, LabeledComment, ModelKind};
use crate::{
    domain::{CommentText, Decision, Filter},
    screening::{Models, Pipeline, ProfanityPolicy, SpamPolicy, TermList, ToxicityPolicy},
};

/// A confusion matrix plus timing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub true_positives: u64,
    pub false_positives: u64,
    pub true_negatives: u64,
    pub false_negatives: u64,
    /// Items skipped because they are not valid comment texts (empty).
    pub skipped: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Per-comment screening latencies, sorted.
    pub latencies: Vec<Duration>,
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

impl Metrics {
    pub fn total(&self) -> u64 {
        self.true_positives + self.false_positives + self.true_negatives + self.false_negatives
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positives + self.true_negatives, self.total())
    }

    pub fn precision(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }

    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }

    /// The share of clean items passed.
    pub fn negative_accuracy(&self) -> f64 {
        ratio(
            self.true_negatives,
            self.true_negatives + self.false_positives,
        )
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn comments_per_second(&self) -> f64 {
        self.total() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn latency_percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[index]
    }

    /// Counts one judged item.
    pub fn count(&mut self, flagged: bool, positive: bool) {
        match (flagged, positive) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
            (false, true) => self.false_negatives += 1,
        }
    }

    /// Adds another fold's counts.
    pub fn merge(&mut self, other: Metrics) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.true_negatives += other.true_negatives;
        self.false_negatives += other.false_negatives;
        self.skipped += other.skipped;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort();
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  accuracy {:.2}%  precision {:.2}%  recall {:.2}%  negative accuracy {:.2}%",
            self.accuracy() * 100.0,
            self.precision() * 100.0,
            self.recall() * 100.0,
            self.negative_accuracy() * 100.0
        )?;
        writeln!(
            f,
            "  confusion: TP {}  FP {}  TN {}  FN {}  (skipped {})",
            self.true_positives,
            self.false_positives,
            self.true_negatives,
            self.false_negatives,
            self.skipped
        )?;
        write!(
            f,
            "  throughput: {:.2} MB/s, {:.0} comments/s (one thread); latency p50 {:.0} µs, p99 {:.0} µs",
            self.megabytes_per_second(),
            self.comments_per_second(),
            self.latency_percentile(0.5).as_secs_f64() * 1e6,
            self.latency_percentile(0.99).as_secs_f64() * 1e6
        )
    }
}

/// The filters whose reasons count as "flagged" for a kind of data: for
/// toxicity, whatever holds or rejects an uncivil comment (the toxicity
/// model or the profanity filter).
pub fn filters_of(kind: ModelKind) -> &'static [Filter] {
    match kind {
        ModelKind::Spam => &[Filter::Spam],
        ModelKind::Offensive => &[Filter::Profanity],
        ModelKind::Toxicity => &[Filter::Toxicity, Filter::Profanity],
    }
}

/// The default pipeline with the given models (no term lists).
pub fn pipeline_with(models: Models) -> Pipeline {
    Pipeline::new(
        ProfanityPolicy::default(),
        SpamPolicy::default(),
        ToxicityPolicy::default(),
        Arc::new(TermList::default()),
        models,
    )
}

/// Whether the pipeline flagged one comment through one of `filters`:
/// not approved, with a non-approving reason from one of them.
pub fn flagged(pipeline: &Pipeline, filters: &[Filter], text: &str) -> Option<bool> {
    let text = CommentText::parse(text, usize::MAX).ok()?;
    let verdict = pipeline.screen(None, &text);
    Some(
        verdict.decision != Decision::Approved
            && verdict
                .reasons
                .iter()
                .any(|r| filters.contains(&r.filter) && r.decision != Decision::Approved),
    )
}

/// Screens every item and counts how `filters` judged it.
pub fn evaluate(pipeline: &Pipeline, filters: &[Filter], items: &[&LabeledComment]) -> Metrics {
    evaluate_each(pipeline, filters, items, |_, _| {})
}

/// [`evaluate`], telling `each` how every screened item was judged.
fn evaluate_each(
    pipeline: &Pipeline,
    filters: &[Filter],
    items: &[&LabeledComment],
    mut each: impl FnMut(&LabeledComment, bool),
) -> Metrics {
    let mut metrics = Metrics::default();
    for item in items {
        let started = Instant::now();
        let Some(flagged) = flagged(pipeline, filters, &item.text) else {
            metrics.skipped += 1;
            continue;
        };
        let took = started.elapsed();
        metrics.elapsed += took;
        metrics.latencies.push(took);
        metrics.bytes += item.text.len() as u64;
        metrics.count(flagged, item.positive);
        each(item, flagged);
    }
    metrics.latencies.sort();
    metrics
}

/// Figures of one part of the items (a data set, or its unanimous rows).
#[derive(Debug, Clone, Default)]
pub struct Breakdown {
    pub parts: Vec<(String, Metrics)>,
}

impl Breakdown {
    fn add(&mut self, part: String, flagged: bool, positive: bool) {
        let index = match self.parts.iter().position(|(name, _)| *name == part) {
            Some(index) => index,
            None => {
                self.parts.push((part, Metrics::default()));
                self.parts.len() - 1
            }
        };
        self.parts[index].1.count(flagged, positive);
    }

    /// The figures of one part, by name.
    pub fn get(&self, part: &str) -> Option<&Metrics> {
        self.parts
            .iter()
            .find(|(name, _)| name == part)
            .map(|(_, m)| m)
    }
}

/// Cross-validated figures: each fold is screened by a pipeline whose model
/// for `kind` was trained on the other folds only. Returns the figures of
/// every scored item and per source (`source`, and `source/unanimous`).
pub fn cross_validate(kind: ModelKind, items: &[LabeledComment], k: usize) -> (Metrics, Breakdown) {
    let mut total = Metrics::default();
    let mut breakdown = Breakdown::default();
    for (train, test) in training::folds(kind, items, k) {
        let training_set: Vec<LabeledComment> = train.iter().map(|&i| items[i].clone()).collect();
        let model = Some(Arc::new(training::train(kind, &training_set)));
        let mut models = Models::embedded().unwrap_or_default();
        match kind {
            ModelKind::Spam => models.spam = model,
            ModelKind::Offensive => models.offensive = model,
            ModelKind::Toxicity => models.toxicity = model,
        }
        let pipeline = pipeline_with(models);
        let test_set: Vec<&LabeledComment> = test.iter().map(|&i| &items[i]).collect();
        total.merge(evaluate_each(
            &pipeline,
            filters_of(kind),
            &test_set,
            |item, flagged| {
                breakdown.add(item.source.to_owned(), flagged, item.positive);
                if item.unanimous && item.source == "civil-comments" {
                    breakdown.add(format!("{}/unanimous", item.source), flagged, item.positive);
                }
            },
        ));
    }
    (total, breakdown)
}

/// Ordinary comments (one a line, `#` lines skipped) screened by the whole
/// pipeline: how many are approved, and the text and reasons of the others.
pub fn ordinary(pipeline: &Pipeline, lines: &str) -> (usize, Vec<String>) {
    let mut total = 0;
    let mut not_approved = Vec::new();
    for line in lines.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Ok(text) = CommentText::parse(line, usize::MAX) else {
            continue;
        };
        total += 1;
        let verdict = pipeline.screen(None, &text);
        if verdict.decision != Decision::Approved {
            let codes: Vec<String> = verdict
                .reasons
                .iter()
                .filter(|r| r.decision != Decision::Approved)
                .map(|r| r.message.clone())
                .collect();
            not_approved.push(format!("{line}  [{}]", codes.join(" ")));
        }
    }
    (total, not_approved)
}

/// Latency of the whole pipeline on comments of about `size` bytes, made by
/// joining consecutive items.
pub fn sized_latency(pipeline: &Pipeline, items: &[LabeledComment], size: usize) -> Metrics {
    let mut joined = Vec::new();
    let mut current = String::new();
    for item in items {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(item.text.trim());
        if current.len() >= size {
            let cut = (0..=size)
                .rev()
                .find(|&i| current.is_char_boundary(i))
                .unwrap_or(0);
            current.truncate(cut);
            joined.push(LabeledComment {
                text: std::mem::take(&mut current),
                ..LabeledComment::default()
            });
        }
    }
    let refs: Vec<&LabeledComment> = joined.iter().collect();
    evaluate(pipeline, &[Filter::Profanity], &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_follow_the_confusion_matrix() {
        let metrics = Metrics {
            true_positives: 90,
            false_positives: 10,
            true_negatives: 80,
            false_negatives: 20,
            ..Metrics::default()
        };
        assert!((metrics.accuracy() - 0.85).abs() < 1e-9);
        assert!((metrics.precision() - 0.9).abs() < 1e-9);
        assert!((metrics.recall() - 90.0 / 110.0).abs() < 1e-9);
        assert!((metrics.negative_accuracy() - 80.0 / 90.0).abs() < 1e-9);
    }

    #[test]
    fn an_item_counts_as_flagged_only_through_its_filter() {
        let pipeline = pipeline_with(Models::embedded().unwrap());
        let spam = LabeledComment {
            text: "fuck you, go kill yourself".to_owned(),
            positive: true,
            ..LabeledComment::default()
        };
        let items = [&spam];
        // Rejected for profanity: flagged by the profanity filter, not spam.
        assert_eq!(
            evaluate(&pipeline, &[Filter::Profanity], &items).true_positives,
            1
        );
        assert_eq!(
            evaluate(&pipeline, &[Filter::Spam], &items).false_negatives,
            1
        );
    }
}
