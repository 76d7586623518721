//! Toxicity: incivility that has no swear word in it.
//!
//! Most abuse under news articles is insults ("idiots", "lefty loser"),
//! identity attacks and threats written in clean words, which rustrict's
//! lists and the tweet-trained offensive model do not see. The toxicity
//! model was trained on posts from news sites' comment sections (Civil
//! Comments, rated toxic by their readers) against clean news text, tweets
//! and comments (docs/FILTERS.md). Its finding HOLDS the comment: an insult
//! is a newsroom's call, not a filter's. Outright rejection stays with the
//! profanity filter.

use std::sync::Arc;

use super::{ContentFilter, ScreenInput, classifier::Model};
use crate::domain::{Decision, Filter, Reason};

/// Whether the toxicity model's finding holds a comment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToxicityPolicy {
    /// Hold what the model rates toxic; off, the finding is informational.
    pub hold: bool,
}

impl Default for ToxicityPolicy {
    fn default() -> Self {
        Self { hold: true }
    }
}

pub struct ToxicityFilter {
    policy: ToxicityPolicy,
    model: Option<Arc<Model>>,
}

impl ToxicityFilter {
    pub fn new(policy: ToxicityPolicy, model: Option<Arc<Model>>) -> Self {
        Self { policy, model }
    }
}

impl ContentFilter for ToxicityFilter {
    fn inspect(&self, input: &ScreenInput<'_>, findings: &mut Vec<Reason>) {
        let Some(model) = &self.model else {
            return;
        };
        let score = model.score_features(input.features);
        if score < model.threshold {
            return;
        }
        findings.push(Reason {
            filter: Filter::Toxicity,
            code: "toxicity.model".to_owned(),
            message: format!(
                "The toxicity model rates the text uncivil ({score:.2}); strongest words: {}.",
                model.strongest_words(input.text)
            ),
            category: Some("incivility".to_owned()),
            severity: None,
            decision: if self.policy.hold {
                Decision::Held
            } else {
                Decision::Approved
            },
        });
    }
}
